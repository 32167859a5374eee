"""The report of the RLHF pipeline (docs/rlhf.md, "The pipeline"), from its three stage directories.

    PYTHONPATH=. python docs/rlhf_pipeline.py --sft runs/rlhf-sft --reward runs/rlhf-reward --ppo runs/rlhf-ppo

Reads each stage's summary.json (and the PPO stage's curves.json), writes
``rlhf-pipeline.md`` and ``rlhf-pipeline.png`` into ``--out`` (default
runs/rlhf-pipeline; ``--out docs`` replaces the committed copies). Nothing is
trained here: every number comes from the stages' own files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
from pathlib import Path

import numpy as np


def _load(directory: str) -> dict:
    path = Path(directory) / "summary.json"
    return {**json.loads(path.read_text()), "_path": path}


def _finished(summary: dict) -> str:
    if "finished_at" in summary:
        return summary["finished_at"]
    # stages from before the time was recorded: the summary file's own time, said as such
    written = dt.datetime.fromtimestamp(summary["_path"].stat().st_mtime, dt.timezone.utc)
    return f"{written:%Y-%m-%dT%H:%M:%SZ} (the time its summary.json was written)"


def _when(summary: dict) -> str:
    load = summary["load_average"]
    cpu = summary.get("process_cpu_seconds")
    return (
        f"finished {_finished(summary)}, {summary['seconds']:.0f} s wall, "
        + (f"{cpu:.0f} s process CPU, " if cpu is not None else "process CPU not recorded, ")
        + f"load average at its end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min)"
    )


def _total(*summaries) -> str:
    cpu = [s.get("process_cpu_seconds") for s in summaries]
    loads = [x for s in summaries for x in s["load_average"]]
    used = f"the stage processes used {sum(c for c in cpu if c is not None):.0f} s of CPU" + (
        " (not recorded for every stage)" if None in cpu else ""
    )
    return (
        f"The three took {sum(s['seconds'] for s in summaries) / 60:.1f} min of wall-clock time in all, "
        f"on {summaries[0].get('cpu_count')} cores whose load average, read at each stage's end, was "
        f"{min(loads):.0f}–{max(loads):.0f} from other jobs; {used}. Not a quiet measurement."
    )


def _commands(args, summaries) -> list[str]:
    """The command each stage recorded, or the documented form for a stage that did not record it."""
    documented = [
        f"ppo-jax rlhf sft CONFIG --out {args.sft}",
        f"ppo-jax rlhf reward CONFIG --sft {args.sft} --out {args.reward}",
        f"ppo-jax rlhf ppo CONFIG --sft {args.sft} --reward {args.reward} --out {args.ppo} ...",
    ]
    return [
        s.get("command", d + "   # (command not recorded by this stage)")
        for s, d in zip(summaries, documented)
    ]


def plot(curves: list[dict], runs: list[dict], kl_target, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = runs[0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    colors = {
        b: c
        for b, c in zip(
            sorted({c["beta"] for c in curves}), ["tab:red", "tab:blue", "tab:green", "tab:purple"]
        )
    }
    for c in curves:
        label = f"β₀ = {c['beta']:g}" if c["seed"] == min(x["seed"] for x in curves) else None
        kl = _smooth(c["kl"], 5)
        axes[0].plot(kl, _smooth(c["score"], 5), color=colors[c["beta"]], alpha=0.7, lw=1.2, label=label)
        axes[1].plot(kl, _smooth(c["gold"], 5), color=colors[c["beta"]], alpha=0.7, lw=1.2, label=label)
    for r in runs[1:]:
        for ax, key in ((axes[0], "rm_score"), (axes[1], "gold")):
            ax.scatter(r["kl"], r[key], color=colors[r["beta"]], edgecolor="k", zorder=3, s=30)
    for ax, key, title in (
        (axes[0], "rm_score", "reward model's score (normalized)"),
        (axes[1], "gold", "labeler's gold score"),
    ):
        ax.axhline(ref[key], color="gray", ls="--", lw=1, label="reference")
        if kl_target:
            ax.axvline(kl_target, color="gray", ls=":", lw=1, label="KL target")
        ax.set_xlabel("KL to the reference, nats per response")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.suptitle(
        "training rollouts (lines, one per seed, 5-update moving averages; KL: the k1 estimate) and "
        "held-out evaluation at the end (dots; exact KL)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _table(runs) -> list[str]:
    lines = [
        "| run | RM score | gold score | KL to reference (nats / response) | length |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['run']} | {r['rm_score']:+.3f} | {r['gold']:.3f} | {r['kl']:.2f} | {r['length']:.1f} |"
        )
    return lines


def _samples(title: str, samples, n=4) -> list[str]:
    out = [f"{title}:", "```"]
    out += [
        f"[{s['prompt']}] {s['response']}    (gold {s['gold']:.1f}, RM {s['rm']:+.2f})" for s in samples[:n]
    ]
    return out + ["```", ""]


def _smooth(x, k=8) -> np.ndarray:
    x = np.asarray(x, float)
    return np.convolve(x, np.ones(k) / k, mode="valid")


def over_optimized(curve: dict) -> dict:
    """Along one run's training (8-update moving averages): did the gold score peak and then fall
    while the reward model's score kept rising past that peak?"""
    gold, rm = _smooth(curve["gold"]), _smooth(curve["score"])
    peak = int(np.argmax(gold))
    return {
        "gold_peak": float(gold[peak]),
        "gold_end": float(gold[-1]),
        "rm_at_peak": float(rm[peak]),
        "rm_end": float(rm[-1]),
        "holds": bool(peak < len(gold) - 1 and gold[-1] < gold[peak] and rm[-1] > rm[peak]),
    }


def _held_out_pairs(rm: dict) -> str:
    return str(rm["held_out_pairs"]) if "held_out_pairs" in rm else "the held-out"


def _expected(rm: dict) -> str:
    if "expected_noise_ceiling" not in rm:
        return ""
    return (
        f" (its expectation over the labeler's draws, mean σ(|Δgold|/τ): {rm['expected_noise_ceiling']:.3f})"
    )


def _bars(sft, rm, ppo, curves) -> list[str]:
    """The issue's "done when" lines, each checked on these numbers."""
    runs, ref = ppo["runs"][1:], ppo["runs"][0]
    leashed = [r for r in runs if r["beta"] > 0]
    target = ppo["kl_target"]
    rm_ok = rm["held_out_accuracy"] >= 0.8 or rm["held_out_accuracy"] >= rm["noise_ceiling"] - 0.05
    minutes = sum(s["seconds"] for s in (sft, rm, ppo)) / 60
    lines = [
        "## The bars",
        "",
        f"- the three commands in about 15 minutes in all: {minutes:.1f} min (under the load said above): **{minutes <= 16}**",
        f"- reference perplexity below the unigram model's: **{sft['held_out_perplexity'] < sft['unigram_held_out_perplexity']}**",
        (
            f"- reward-model accuracy ≥ 0.8 or within 0.05 of the ceiling ({rm['held_out_accuracy']:.3f} vs "
            f"{rm['noise_ceiling']:.3f}): **{rm_ok}**"
        ),
    ]
    for r in leashed:
        curve = next(c for c in curves if c["beta"] == r["beta"] and c["seed"] == r["seed"])
        train_kl = float(np.mean(curve["kl"][-10:]))
        near = target is None or 0.5 * target <= train_kl <= 1.5 * target
        lines.append(
            f"- {r['run']}: gold {r['gold']:.3f} above the reference's {ref['gold']:.3f}: **{r['gold'] > ref['gold']}**; "
            f"KL in training (k1, last 10 updates) {train_kl:.2f} within ×0.5–1.5 of the target {target}: **{near}** "
            f"(held-out, exact: {r['kl']:.2f}; final β {curve['kl_coef'][-1]:.3f})"
        )
    for c in curves:
        if c["beta"] == 0:
            o = over_optimized(c)
            lines.append(
                f"- β = 0, seed {c['seed']}: gold peaked at {o['gold_peak']:.2f} and ended at {o['gold_end']:.2f} while the "
                f"RM score went {o['rm_at_peak']:+.2f} → {o['rm_end']:+.2f} (over-optimization: **{o['holds']}**)"
            )
    return lines + [""]


def report(args) -> str:
    sft, rm, ppo = _load(args.sft), _load(args.reward), _load(args.ppo)
    curves = json.loads((Path(args.ppo) / "curves.json").read_text())
    runs = ppo["runs"]
    lines = [
        "# RLHF pipeline: measured results",
        "",
        (
            f"Written by `docs/rlhf_pipeline.py` from `{args.sft}`, `{args.reward}`, `{args.ppo}` "
            f"(host {platform.node()}, {sft.get('cpu_count')} CPUs, device {sft.get('device')}). "
            "The machine was shared with other jobs: wall times are not quiet measurements."
        ),
        "",
        "Commands:",
        "```bash",
        *_commands(args, (sft, rm, ppo)),
        "```",
        "",
        _total(sft, rm, ppo),
        "",
        "## Stage 1: the supervised reference",
        (
            f"Held-out perplexity **{sft['held_out_perplexity']:.3f}** per character; the unigram model of the "
            f"training tokens: {sft['unigram_held_out_perplexity']:.3f}. ({_when(sft)}.)"
        ),
        "",
        "## Stage 2: the reward model",
        (
            f"Held-out pair accuracy **{rm['held_out_accuracy']:.3f}** on {_held_out_pairs(rm)} pairs written by the "
            f"reference at temperature {rm.get('pair_temperature', 1.0)}; the labeler's noise ceiling on the same pairs "
            f"and labels {rm['noise_ceiling']:.3f}{_expected(rm)} (Bradley–Terry labeler, τ = {rm['label_temperature']}; "
            f"exact ties, {rm['held_out_ties']:.1%} of the pairs in gold, count half right for the reward model and "
            f"the ceiling alike); training-pair accuracy {rm['train_accuracy']:.3f}; correlation of the normalized "
            f"score with the gold score on held-out responses {rm['held_out_corr_with_gold']:.3f}. Normalization: "
            f"raw score − {rm['normalization']['mean']:.3f}, divided by {rm['normalization']['std']:.3f}, from "
            f"{rm['normalization']['samples']} reference responses at temperature "
            f"{rm['normalization']['temperature']}. ({_when(rm)}.)"
        ),
        "",
        "## Stage 3: PPO",
        (
            f"KL target {ppo['kl_target']} nats per response. Each policy (and the reference) answered the same held-out "
            "prompts at the training temperature; the KL is exact per token (Σ over the response of "
            f"KL(π(·|s_t) ‖ π_ref(·|s_t))). ({_when(ppo)}.)"
        ),
        "",
        *_table(runs),
        "",
        *_bars(sft, rm, ppo, curves),
        "![RM and gold score against KL](rlhf-pipeline.png)",
        "",
    ]
    for r in runs[:1] + [r for r in runs[1:] if r["seed"] == runs[1]["seed"]]:
        lines += _samples(f"{r['run']} (held-out prompts, the first ones, not chosen)", r["samples"])
    for c in curves:
        if c["beta"] == 0 and c["seed"] == runs[1]["seed"]:
            lines += [
                "Along training, β = 0, that seed (training prompts; gold score of the update's batch):",
                "```",
            ]
            for u, texts in c["samples_at_update"].items():
                lines.append(
                    f"update {u}: RM {c['score'][int(u)]:+.2f}, gold {c['gold'][int(u)]:.2f}, KL {c['kl'][int(u)]:.1f}"
                )
                lines += [f"    {t!r}" for t in texts]
            lines += ["```", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sft", default="runs/rlhf-sft")
    parser.add_argument("--reward", default="runs/rlhf-reward")
    parser.add_argument("--ppo", default="runs/rlhf-ppo")
    parser.add_argument(
        "--out", default="runs/rlhf-pipeline", help="where to write (docs: the committed copies)"
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ppo = _load(args.ppo)
    plot(
        json.loads((Path(args.ppo) / "curves.json").read_text()),
        ppo["runs"],
        ppo["kl_target"],
        out / "rlhf-pipeline.png",
    )
    (out / "rlhf-pipeline.md").write_text(report(args))
    print(f"wrote {out / 'rlhf-pipeline.md'} and {out / 'rlhf-pipeline.png'}")


if __name__ == "__main__":
    main()
