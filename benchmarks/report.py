"""RESULTS.md from the result files of ``benchmarks.run``: tables, plots, CSVs.

    python -m benchmarks.report [OUT]      # regenerate OUT/RESULTS.md (default: benchmarks)

Reads ``OUT/results/{throughput,torch,peers,seeds}.json`` and, when present,
``OUT/results/gpu/*.json`` and ``OUT/results/presets/*.json``; writes
``OUT/RESULTS.md``, PNG plots and CSVs into ``OUT/results/``. The section
"Where the time goes" is ``benchmarks/analysis.md``, written by hand, included
as it is.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Optional, Sequence

import numpy as np

from benchmarks.common import REPO, THRESHOLDS, final_return, machine_line, median_ci, reach

ANALYSIS = Path(__file__).resolve().parent / "analysis.md"
IMPL_NAMES = {
    "torch": "PyTorch (benchmarks/torch_ppo.py)",
    "torch_compile": "PyTorch + torch.compile (torch_ppo.py --compile)",
    "sb3": "Stable-Baselines3",
    "sbx": "sbx (SB3's JAX port, same jax)",
    "skrl": "skrl's PPO at its own defaults",
    "ppo_jax": "ppo_jax",
}
GPU_COMMAND = "python -m benchmarks.run --gpu"


def _load(path: Path) -> Optional[dict]:
    return json.loads(path.read_text()) if path.exists() else None


def _rows(jobs: list[dict], kind: str) -> list[dict]:
    return [r for j in jobs for r in j.get("rows", []) if r.get("kind") == kind]


def _fmt(x, digits: int = 0, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, (int, float)):
        return f"{x:,.{digits}f}{unit}"
    return str(x)


def _provenance(d: dict) -> str:
    v = d.get("versions", {})
    ver = ", ".join(f"{k} {x}" for k, x in v.items() if x)
    return (
        f"- **Machine:** {machine_line(d['machine'])}\n"
        f"- **Date:** {d['date']} · **mode:** {d['mode']}"
        + (
            f" · **load average** (1 min, when written): {d['load_average']}"
            + (
                " — a loaded machine: timings are not quiet-machine numbers"
                if d["load_average"] > 1.5
                else ""
            )
            if d.get("load_average") is not None
            else ""
        )
        + "\n"
        f"- **Command:** `{d['command']}`\n"
        f"- **Versions:** {ver}\n"
    )


def _failures(jobs: list[dict]) -> str:
    """Lines naming the jobs that did not end well; "" when all did."""
    lines = []
    for j in jobs:
        if j.get("status") != "ok":
            tail = (j.get("stderr_tail") or "").strip().splitlines()[-1:] or [""]
            lines.append(f"- a job ended `{j.get('status')}`: `{j.get('command', '')[:160]}` {tail[0][:200]}")
    return ("\n" + "\n".join(lines) + "\n") if lines else ""


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c) for c in columns})


class Col(NamedTuple):
    """One column of a results table: its header, how a row's cell is written, right-aligned or not."""

    header: str
    cell: Callable[[dict], str]
    numeric: bool = True


def num(key: str, digits: int = 0, scale: float = 1.0) -> Callable[[dict], str]:
    """A cell writing ``row[key] / scale`` with ``digits`` decimals (— when missing)."""
    return lambda r: _fmt(None if r.get(key) is None else r[key] / scale, digits)


def text(key: str) -> Callable[[dict], str]:
    return lambda r: str(r.get(key, ""))


# Training beside its floor (the env stepped by the policy's forward pass alone): shared by the
# throughput and suite tables.
TRAIN_VS_FLOOR = [
    Col("num_envs", num("num_envs")),
    Col("env steps", num("env_steps")),
    Col("compile (s)", num("compile_seconds", 1)),
    Col("train steps/s", num("steps_per_second")),
    Col("floor steps/s", num("floor_steps_per_second")),
    Col("train ÷ floor", num("train_vs_floor", 3)),
]


def _table(cols: Sequence[Col], rows: Iterable[dict]) -> list[str]:
    """A markdown table's header, alignment line and one line per row."""
    return [
        "| " + " | ".join(c.header for c in cols) + " |",
        "|" + "|".join("---:" if c.numeric else "---" for c in cols) + "|",
        *("| " + " | ".join(c.cell(r) for c in cols) + " |" for r in rows),
    ]


def _names(words: str) -> list[str]:
    return words.split()


# The columns of each CSV written beside RESULTS.md (raw numbers, unformatted).
CSV_COLUMNS = {
    "throughput": _names(
        "env_id num_envs num_steps num_updates env_steps compile_seconds run_seconds steps_per_second "
        "floor_steps_per_second train_vs_floor flops_per_update achieved_flops_per_second "
        "xla_flops_whole_program peak_rss_mib"
    ),
    "seeds": _names(
        "seeds env_steps_per_seed compile_seconds run_seconds total_seconds seconds_per_agent "
        "steps_per_second peak_rss_mib device_peak_bytes device"
    ),
    "cores": _names(
        "seeds devices_visible devices_used env_steps_per_seed compile_seconds run_seconds "
        "steps_per_second cpu_over_wall"
    ),
    "cores_data_parallel": _names(
        "config num_envs way devices_used env_steps compile_seconds steps_per_second cpu_over_wall"
    ),
    "peers": _names(
        "settings implementation jax devices env_steps compile_seconds run_seconds steps_per_second"
    ),
    "compile": _names("config env_id phase compile_seconds lower_seconds"),
    "torch_v1": _names("env_id implementation seeds steps_per_second reached_seconds final_return"),
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


def throughput_section(d: dict, res: Path, prefix: str = "") -> tuple[str, dict]:
    rows = _rows(d["jobs"], "throughput")
    matmul = next(iter(_rows(d["jobs"], "matmul")), None)
    facts = {"rows": rows, "matmul": matmul}
    out = [
        "Training env steps per second of one agent (`jax.jit(train)`, compiled ahead of time, "
        "compile apart), beside the **floor**: the same envs stepped by the same policy's forward "
        "pass and sampling in a jitted scan, no learning. FLOP/s: XLA's cost analysis of each loop "
        "body (one env step; one minibatch step with backward pass and Adam) times its trip count, "
        "divided by the run time — XLA counts a loop body once, so the whole program's own count "
        "(last column) is far too small to use.\n"
    ]
    if matmul:
        out.append(
            f"Machine's fp32 matmul rate (`[{matmul['matmul_n']}]²` under jit, best of 10): "
            f"**{matmul['matmul_flops_per_second'] / 1e9:,.1f} GFLOP/s**.\n"
        )
    matmul_rate = matmul["matmul_flops_per_second"] if matmul else None
    out += _table(
        [
            Col("env", text("env_id"), numeric=False),
            *TRAIN_VS_FLOOR[:3],
            Col("run (s)", num("run_seconds", 2)),
            *TRAIN_VS_FLOOR[3:],
            Col("achieved GFLOP/s", num("achieved_flops_per_second", 2, 1e9)),
            Col(
                "% of matmul",
                lambda r: _fmt(matmul_rate and 100 * r["achieved_flops_per_second"] / matmul_rate, 1),
            ),
            Col("XLA whole-program GFLOP", num("xla_flops_whole_program", 3, 1e9)),
        ],
        rows,
    )
    out.append(suites_table(d.get("suites") or {}))
    cw = d.get("cold_warm") or {}
    if cw:
        out.append(
            "\nCold and warm start of the CLI (`ppo-jax train`, CartPole preset, one seed): a fresh "
            "persistent compilation cache, then a second process with the same cache.\n"
        )
        out.append("| start | compile (s) | train (s) | whole process (s, imports included) | status |")
        out.append("|---|---:|---:|---:|---|")
        for phase in ("cold", "warm"):
            p = cw.get(phase, {})
            out.append(
                f"| {phase} | {_fmt(p.get('compile_seconds'), 2)} | {_fmt(p.get('train_seconds'), 2)} | "
                f"{_fmt(p.get('process_seconds'), 1)} | {p.get('status')} |"
            )
        facts["cold_compile"] = cw.get("cold", {}).get("compile_seconds")
        facts["warm_compile"] = cw.get("warm", {}).get("compile_seconds")
    if rows:
        _write_csv(res / "throughput.csv", rows, CSV_COLUMNS["throughput"])
        plt = _plt()
        envs = sorted({r["env_id"] for r in rows})
        fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 3.6), squeeze=False)
        for ax, env in zip(axes[0], envs):
            rs = [r for r in rows if r["env_id"] == env]
            n = [r["num_envs"] for r in rs]
            ax.loglog(n, [r["steps_per_second"] for r in rs], "o-", label="training")
            ax.loglog(n, [r["floor_steps_per_second"] for r in rs], "s--", label="floor: env + forward")
            ax.set(title=env, xlabel="num_envs", ylabel="env steps / s")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(res / "throughput.png", dpi=110)
        plt.close(fig)
        out.append(f"\n![throughput]({prefix}throughput.png)\n")
    out.append(_failures(d["jobs"]))
    return "\n".join(out), facts


def suites_table(suites: dict) -> str:
    """Per-suite rows: each suite's preset (a few updates at a small size), or why it was not run."""
    if not suites:
        return ""
    out = [
        "\nPer environment suite: its preset (`configs/`, `configs/gpu/`) at the size given, training "
        "vs the floor, run where the suite's extra is installed in the benchmark's interpreter.\n",
    ]
    cols = [
        Col("suite", text("suite"), numeric=False),
        Col("env", text("env_id"), numeric=False),
        *TRAIN_VS_FLOOR,
        Col("status", text("status"), numeric=False),
    ]
    out += _table(cols, [])
    for name, job in suites.items():
        rows = [r for r in job.get("rows", []) if r.get("kind") == "suite_throughput"]
        status = job.get("status", "?")
        if not rows:
            tail = (job.get("stderr_tail") or "").strip().splitlines()[-1:] or [""]
            why = "no rows" if status == "ok" else status
            if not status.startswith("not installed"):  # a failure: its last line of stderr says why
                why = f"{why}: {tail[0][:120]}"
            rows = [{"suite": name, "env_id": f"`{job.get('config', '')}`", "status": why}]
        out += _table(cols, [{"suite": name, "status": status, **r} for r in rows])[2:]
    return "\n".join(out) + "\n"


def _impl_runs(env: dict, impl: str) -> list[dict]:
    return [r for j in env.get(impl, []) for r in j.get("rows", [])]


def torch_section(d: dict, res: Path, prefix: str) -> tuple[str, dict]:
    """The torch section: the one-core / whole-machine layout (format 2), or the older one."""
    return (_torch_section_v2 if d.get("format") == 2 else _torch_section_v1)(d, res, prefix)


def _torch_section_v1(d: dict, res: Path, prefix: str) -> tuple[str, dict]:
    facts = {}
    out = [
        f"Reached = at the end of a rollout, the mean return of the last ≥{d['window']} finished "
        "episodes (whole rollouts) is at or above the threshold; the same rule for every "
        "implementation (`benchmarks/common.py: reach`). Times count from the start of training "
        "(ppo_jax: before `build`, so compile is included; PyTorch and SB3: env and network "
        "creation included), imports excluded. ppo_jax learns of it at the end of a chunk (1/50 of "
        "the run), PyTorch and SB3 at the end of each rollout. Final return: mean return of the "
        "episodes finished in the last 5% of the steps taken. PyTorch and SB3 use one CPU thread "
        "(`torch.set_num_threads(1)`): on 2 cores their default of 2 threads was up to 20× "
        "slower for networks this small; ppo_jax's XLA program also runs on one core. PyTorch and "
        "SB3 runs are capped in time (they stop after the update that passes the cap) so that the "
        "suite fits its budget; a capped run says so.\n"
    ]
    if d.get("skipped"):
        out.append(f"**PyTorch and SB3 {d['skipped']}.** Only ppo_jax's side was measured.\n")
    if d.get("note"):
        out.append(f"**{d['note']}**\n")
    if d.get("torch_python"):
        out.append(f"PyTorch and SB3 ran in {d['torch_python']}.\n")
    if d.get("sbx_env"):
        env = d["sbx_env"]
        out.append(
            f"sbx (SB3's JAX port) ran in its own venv (`{env['venv']}`) on the same jax as ppo_jax: "
            f"{', '.join(f'`{p}`' for p in env.get('installed') or env.get('pins', []))}. Settings matched "
            "as for SB3 (`vf_coef / 2`: SB3 and sbx use a plain MSE; the learning-rate schedule shifted to "
            "ppo_jax's; the preset's reward clip); what still differs is listed in `sb3_ppo.py` and "
            "`sbx_ppo.py`.\n"
        )
    elif d.get("sbx_skipped"):
        out.append(f"sbx: {d['sbx_skipped']}.\n")
    all_rows = []
    for env_id, env in d["envs"].items():
        threshold = env["threshold"]
        out.append(
            f"\n#### {env_id} (threshold {threshold:g}; `{env['config']}`"
            + (f", overrides {env['overrides']}" if env["overrides"] else "")
            + ")\n"
        )
        out.append(
            "| implementation | seeds | env steps (each) | steps/s | reached after (s) | at env steps | "
            "final return | capped by time |"
        )
        out.append("|---|---:|---:|---:|---|---|---|---|")
        jax_rows = _impl_runs(env, "ppo_jax")
        per_impl = {}
        for r in jax_rows:
            reached = r["reached"]
            per_impl["ppo_jax"] = {
                "steps_per_second": r["steps_per_second"],
                "reached": reached,
                "seeds": r["seeds"],
                "final": r["final_return"],
            }
            out.append(
                f"| ppo_jax ({r['seeds']} seeds vmapped) | {r['seeds']} | {r['env_steps']:,} | "
                f"{_fmt(r['steps_per_second'])} (all seeds) | "
                f"{', '.join(_fmt(x and x['seconds'], 1) for x in reached)} | "
                f"{', '.join(_fmt(x and x['env_steps']) for x in reached)} | "
                f"{', '.join(_fmt(x, 1) for x in r['final_return'])} | no |"
            )
            all_rows.append(
                {
                    "env_id": env_id,
                    "implementation": "ppo_jax",
                    "seeds": r["seeds"],
                    "steps_per_second": r["steps_per_second"],
                    "reached_seconds": [x and x["seconds"] for x in reached],
                    "final_return": r["final_return"],
                }
            )
        for impl in ("torch", "torch_compile", "sb3", "sbx"):
            runs = _impl_runs(env, impl)
            if not runs and not env.get(impl):
                continue
            reached = [reach(r["rollouts"], threshold, d["window"]) for r in runs]
            finals = [final_return(r["rollouts"]) for r in runs]
            sps = [r["steps_per_second"] for r in runs]
            per_impl[impl] = {
                "steps_per_second": float(np.mean(sps)) if sps else None,
                "reached": reached,
                "seeds": len(runs),
                "final": finals,
            }
            name = IMPL_NAMES[impl]
            devices = sorted({str(r.get("device")) for r in runs})
            if devices and devices != ["cpu"]:
                name += f" on {', '.join(devices)}"
            out.append(
                f"| {name} | {len(runs)} | {', '.join(format(r['env_steps'], ',') for r in runs)} | "
                f"{', '.join(_fmt(x) for x in sps)} | {', '.join(_fmt(x and x['seconds'], 1) for x in reached)} | "
                f"{', '.join(_fmt(x and x['env_steps']) for x in reached)} | "
                f"{', '.join(_fmt(x, 1) for x in finals)} | "
                f"{', '.join('yes' if r['stopped_by_time_limit'] else 'no' for r in runs)} |"
            )
            for r, x, f in zip(runs, reached, finals):
                all_rows.append(
                    {
                        "env_id": env_id,
                        "implementation": impl,
                        "seeds": 1,
                        "steps_per_second": r["steps_per_second"],
                        "reached_seconds": [x and x["seconds"]],
                        "final_return": [f],
                    }
                )
        for impl in ("ppo_jax", "torch", "torch_compile", "sb3", "sbx"):
            out.append(_failures(env.get(impl, [])))
        facts[env_id] = per_impl
        _return_plot(env, threshold, d["window"], res / f"returns-{env_id}.png")
        out.append(f"\n![returns against wall-clock]({prefix}returns-{env_id}.png)\n")
    if all_rows:
        _write_csv(res / "torch.csv", all_rows, CSV_COLUMNS["torch_v1"])
    head = d.get("headline")
    if head:
        out.append(headline_text(head, facts.get("CartPole-v1", {}), facts))
        out.append(_failures([head]))
    return "\n".join(out), facts


ONE_CORE_NAMES = {
    "ppo_jax_cold": "ppo_jax, cold (compile included, empty cache)",
    "ppo_jax_warm": "ppo_jax, warm (compiled programs loaded from its cache)",
    "torch": "PyTorch, expert eager (benchmarks/torch_ppo.py)",
    "torch_compile_cold": "PyTorch + torch.compile, cold (compile included)",
    "torch_compile_warm": "PyTorch + torch.compile, warm (inductor cache filled)",
    "sb3": "Stable-Baselines3",
    "sbx": "sbx (SB3's JAX port, same jax)",
    "skrl": "skrl's PPO at its own defaults",
}
COLORS = {"ppo_jax": "C0", "torch": "C1", "torch_compile": "C3", "sb3": "C2", "sbx": "C4", "skrl": "C5"}


def _stale_note(d: dict) -> str:
    """A line saying where the settings this section ran with differ from today's presets."""
    if d.get("presets") is None:
        changed = [c for c in _section_configs(d) if _changed_since(c, d.get("date", ""))]
        if not changed:
            return ""
        return (
            f"**Possibly stale: this section's JSON records no settings to compare, and "
            f"{', '.join(f'`{c}`' for c in changed)} changed in git after it was measured "
            f"({d.get('date', '')[:10]}): it ran with the preset as it was then. Rerun: "
            f"`python -m benchmarks.run --only {d.get('section', 'SECTION')}`.**\n\n"
        )
    lines = []
    for config, then in d["presets"].items():
        path = REPO / config
        now = _yaml(path) if path.exists() else None
        if now != then:
            keys = sorted(set(then or {}) | set(now or {}))
            diff = [
                f"{k} {then.get(k)!r} → {now.get(k)!r}"
                for k in keys
                if (then or {}).get(k) != (now or {}).get(k)
            ]
            lines.append(f"`{config}`: {'; '.join(diff) if now is not None else 'no longer exists'}")
    if not lines:
        return ""
    return (
        "**Settings differ from today's presets** (measured with the first, the file says the second "
        "now): "
        + " · ".join(lines)
        + f". Rerun: `python -m benchmarks.run --only {d.get('section', 'SECTION')}`.\n\n"
    )


def _yaml(path: Path):
    import yaml

    return yaml.safe_load(path.read_text())


def _section_configs(d: dict) -> list[str]:
    import re

    return sorted(set(re.findall(r"configs/[\w/.-]+?\.yaml", json.dumps(d))))


def _changed_since(config: str, date: str) -> bool:
    """Whether git has a commit of ``config`` after ``date`` (ISO)."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%cI", "--", config],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return False
    if not out or not date:
        return False
    from datetime import datetime

    return datetime.fromisoformat(out) > datetime.fromisoformat(date)


def _as_agent(job: dict) -> list[dict]:
    """A job's runs in the agents' format; ppo_jax's solve rows split per seed."""
    out = []
    for r in job.get("rows", []):
        if r.get("kind") != "solve":
            out.append(r)
            continue
        for rollouts in r.get("rollouts", []):
            out.append(
                {
                    "rollouts": rollouts,
                    "env_steps": r["env_steps"],
                    "budget_env_steps": r["budget_env_steps"],
                    "steps_per_second": r["steps_per_second"] / r["seeds"],
                    "cpu_over_wall": r.get("cpu_over_wall"),
                    "compile_seconds": r["compile_seconds"],
                    "stopped_by_time_limit": False,
                }
            )
    return out


def _interval(c: dict, digits: int = 1) -> str:
    if c["median"] is None:
        return "—"
    return f"{_fmt(c['median'], digits)} [{_fmt(c['low'], digits)}, {_fmt(c['high'], digits)}]"


def _one_core_table(env: dict, window: int) -> tuple[list[str], dict, list[dict]]:
    threshold = env["threshold"]
    out = [
        "| implementation | runs | reached | time to threshold (s), median [95% CI] | env steps to it, median | "
        "steps/s, median | CPU ÷ wall, median | env / action step / learner (s), median | compile (s) | "
        "final return, median | capped |",
        "|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    facts, csv_rows = {}, []
    for name, jobs in env.get("one_core", {}).items():
        runs = [r for j in jobs for r in _as_agent(j)]
        failed = sum(1 for j in jobs if j.get("status") != "ok")
        reached = [reach(r["rollouts"], threshold, window) for r in runs]
        t = median_ci([x and x["seconds"] for x in reached])
        steps = median_ci([x and x["env_steps"] for x in reached])
        finals = [final_return(r["rollouts"]) for r in runs]
        med = lambda key, runs=runs: (
            float(np.median([r[key] for r in runs if r.get(key) is not None]))
            if any(r.get(key) is not None for r in runs)
            else None
        )
        parts = [r.get("seconds_in") for r in runs if r.get("seconds_in")]
        split = (
            " / ".join(_fmt(float(np.median([p[k] for p in parts])), 1) for k in ("env", "act", "learn"))
            if parts
            else "—"
        )
        out.append(
            f"| {ONE_CORE_NAMES.get(name, name)} | {len(runs)}{f' ({failed} failed)' if failed else ''} | "
            f"{sum(x is not None for x in reached)} of {len(runs)} | {_interval(t)} | {_fmt(steps['median'])} | "
            f"{_fmt(med('steps_per_second'))} | {_fmt(med('cpu_over_wall'), 2)} | {split} | "
            f"{_fmt(med('compile_seconds'), 1)} | {_fmt(float(np.median([f for f in finals if f is not None])) if any(f is not None for f in finals) else None, 1)} | "
            f"{sum(bool(r.get('stopped_by_time_limit')) for r in runs)} |"
        )
        facts[name] = {
            "reached": reached,
            "final": finals,
            "seeds": len(runs),
            "time": t,
            "steps_per_second": med("steps_per_second"),
            "compile_median": med("compile_seconds"),
        }
        csv_rows += [
            {
                "implementation": name,
                "seed": i,
                "reached_seconds": x and x["seconds"],
                "reached_env_steps": x and x["env_steps"],
                "steps_per_second": r.get("steps_per_second"),
                "cpu_over_wall": r.get("cpu_over_wall"),
                "final_return": f,
            }
            for i, (r, x, f) in enumerate(zip(runs, reached, finals))
        ]
    return out, facts, csv_rows


def _whole_machine_table(whole: dict, threshold: float, window: int) -> list[str]:
    out = [
        f"\nThe whole machine ({whole.get('cores')} cores): ppo_jax's seeds over one forced host device per core "
        "in one process; PyTorch and SB3 one agent per core, all at once, each pinned to its core.\n",
        "| side | agents | aggregate steps/s | cores busy (CPU ÷ wall, summed over its processes) | reached | last to reach (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for impl, jobs in whole.items():
        if impl == "cores":
            continue
        jobs = jobs if isinstance(jobs, list) else [jobs]
        rows = [r for j in jobs for r in j.get("rows", [])]
        if impl == "ppo_jax":
            agents = sum(r["seeds"] for r in rows)
            sps = sum(r["steps_per_second"] for r in rows)
        else:
            agents, sps = len(rows), sum(r["steps_per_second"] for r in rows)
        runs = [r for j in jobs for r in _as_agent(j)]
        reached = [reach(r["rollouts"], threshold, window) for r in runs]
        cpu = [r.get("cpu_over_wall") for r in rows if r.get("cpu_over_wall") is not None]
        last = max((x["seconds"] for x in reached if x), default=None) if all(reached) else None
        out.append(
            f"| {IMPL_NAMES.get(impl, impl)} | {agents} | {_fmt(sps)} | "
            f"{_fmt(sum(cpu) if impl != 'ppo_jax' else (cpu[0] if cpu else None), 2)} | "
            f"{sum(x is not None for x in reached)} of {len(runs)} | {_fmt(last, 1)} |"
        )
        if _failures(jobs):
            out.append(_failures(jobs))
    return out


def _torch_section_v2(d: dict, res: Path, prefix: str) -> tuple[str, dict]:
    pin = d.get("one_core", {})
    where = (
        f"Every process is pinned to core {pin['cpus']} from its start (`os.sched_setaffinity`: every thread "
        f"it starts stays there); ppo_jax runs with `XLA_FLAGS={pin.get('xla_flags')}`, PyTorch, SB3 and skrl "
        "with one torch thread. CPU ÷ wall is the process's CPU time over its wall time while training: at "
        "most 1 here; below 1, the core was shared."
        if pin.get("cpus")
        else "Not pinned to a core (the accelerator does the work); one torch thread."
    )
    out = [
        f"**One agent each on one core**, {d['seeds']} seed(s) per implementation, run {d['order']} "
        f"(so that the machine's drift falls on all alike). {where} Every implementation gets the "
        "preset's env-step budget. Reached = at the end of a rollout, the mean return of the last "
        f"≥{d['window']} finished episodes is at or above the threshold (`benchmarks/common.py: reach`); "
        "times from before the env and networks are made (imports excluded), compile included for every "
        "side that compiles; ppo_jax learns of it at the end of a chunk (1/50 of the run). Medians with a "
        "distribution-free 95% interval (order statistics; a run that never reached counts as +∞; — where "
        "the interval needs more runs). skrl runs its own PPO settings, not the preset's "
        "(`benchmarks/skrl_ppo.py`).\n"
    ]
    for key, what in (("skipped", "PyTorch and SB3"), ("sbx_skipped", "sbx"), ("skrl_skipped", "skrl")):
        if d.get(key):
            out.append(f"{what}: {d[key]}.\n")
    if d.get("torch_python"):
        out.append(f"PyTorch and SB3 ran in {d['torch_python']}.\n")
    facts, csv_rows = {}, []
    for env_id, env in d["envs"].items():
        out.append(
            f"\n#### {env_id} (threshold {env['threshold']:g}; `{env['config']}`"
            + (f", overrides {env['overrides']}" if env["overrides"] else "")
            + ("; each run stops once it reached" if env.get("stop_at_threshold") else "")
            + ")\n"
        )
        table, env_facts, rows = _one_core_table(env, d["window"])
        out += table
        out += [_failures(jobs) for jobs in env.get("one_core", {}).values() if _failures(jobs)]
        csv_rows += [{"env_id": env_id, **r} for r in rows]
        if env.get("whole_machine"):
            out += _whole_machine_table(env["whole_machine"], env["threshold"], d["window"])
        facts[env_id] = {
            **env_facts,
            "ppo_jax": env_facts.get("ppo_jax_cold", {}),
        }
        _curves_plot(env, d["window"], res / f"returns-{env_id}.png")
        out.append(f"\n![returns against env steps and wall-clock]({prefix}returns-{env_id}.png)\n")
    if csv_rows:
        _write_csv(res / "torch.csv", csv_rows, list(csv_rows[0]))
    out.append(_headline(facts))
    return "\n".join(out), facts


def _short(name: str) -> str:
    return ONE_CORE_NAMES.get(name, name).split(" (")[0]


def _rate_line(f: dict) -> list[str]:
    """Training steps/s of one agent each on one core, ppo_jax's (compile apart) against each."""
    rates = {
        n: v["steps_per_second"]
        for n, v in f.items()
        if n != "ppo_jax" and isinstance(v, dict) and v.get("steps_per_second")
    }
    mine = rates.get("ppo_jax_warm") or rates.get("ppo_jax_cold")
    if not mine:
        return []
    theirs = [
        f"{_short(n)} {r:,.0f} (ppo_jax {mine / r:.1f}×)"
        for n, r in rates.items()
        if not n.startswith("ppo_jax")
    ]
    if not theirs:
        return []
    return [
        f"  - training steps/s, one agent each on one core (ppo_jax's without its compile): ppo_jax {mine:,.0f}; "
        + "; ".join(theirs)
        + "."
    ]


def _headline(facts: dict) -> str:
    lines = ["\n#### Headline: wall-clock to the threshold, one agent each on one core\n"]
    for env_id, f in facts.items():
        times = {
            n: v["time"] for n, v in f.items() if n != "ppo_jax" and isinstance(v, dict) and v.get("time")
        }
        parts = [f"{ONE_CORE_NAMES.get(n, n).split(' (')[0]} {_interval(t)} s" for n, t in times.items()]
        if not parts:
            continue
        lines.append(f"- **{env_id}** (median [95% CI]): " + "; ".join(parts) + ".")
        lines += _rate_line(f)
        others = {
            n: t["median"]
            for n, t in times.items()
            if not n.startswith("ppo_jax") and t["median"] is not None
        }
        if not others:
            continue
        best = min(others, key=others.get)
        for phase in ("ppo_jax_cold", "ppo_jax_warm"):
            mine = times.get(phase, {}).get("median")
            if mine is None:
                continue
            ratio = mine / others[best]
            compile_s = f.get(phase, {}).get("compile_median")
            lines.append(
                f"  - {ONE_CORE_NAMES[phase].split(' (')[0]}: {ratio:.2f}× the time of the fastest other "
                f"({ONE_CORE_NAMES.get(best, best).split(' (')[0]}, {others[best]:.1f} s)"
                + (
                    f": slower, and its compile ({compile_s:.1f} s) is part of its time"
                    if ratio > 1 and compile_s
                    else ""
                )
                + "."
            )
    return "\n".join(lines) + "\n"


def _curves_plot(env: dict, window: int, path: Path) -> None:
    """Return against env steps (do they learn alike?) and against wall-clock, side by side."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, jobs in env.get("one_core", {}).items():
        base = next(
            (b for b in COLORS if name.startswith(b) and not (b == "torch" and "compile" in name)), "torch"
        )
        if name.endswith("_warm"):
            continue  # the same learning as the cold run, shifted in time
        for i, r in enumerate(r for j in jobs for r in _as_agent(j)):
            t, n_steps, y = _smoothed(r["rollouts"], window)
            label = name.removesuffix("_cold") if i == 0 else None
            axes[0].plot(n_steps, y, color=COLORS[base], alpha=0.6, lw=0.8, label=label)
            axes[1].plot(t, y, color=COLORS[base], alpha=0.6, lw=0.8)
    for ax, xlabel in zip(axes, ("env steps", "wall-clock seconds since start (log)")):
        ax.axhline(env["threshold"], color="k", ls=":", lw=1)
        ax.set(xlabel=xlabel, ylabel=f"mean return, last ≥{window} episodes")
        ax.grid(True, alpha=0.3)
    axes[1].set_xscale("symlog", linthresh=1.0)
    axes[1].set_xlim(left=0)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _smoothed(rollouts, window: int):
    t, steps, y = [], [], []
    for k in range(1, len(rollouts) + 1):
        n = s = 0.0
        for _, _, c, total in reversed(rollouts[:k]):
            n, s = n + c, s + total
            if n >= window:
                break
        if n > 0:
            t.append(rollouts[k - 1][0])
            steps.append(rollouts[k - 1][1])
            y.append(s / n)
    return t, steps, y


def headline_text(head: dict, cp: dict, facts: dict) -> str:
    rows = head.get("rows", [])
    if not rows:
        return f"\n**Headline:** the ppo_jax run of many seeds did not finish ({head.get('status')}).\n"
    r = rows[0]
    times = [x["seconds"] for x in r["reached"] if x]
    out = [
        f"\n#### Headline: ppo_jax agents that reach {THRESHOLDS['CartPole-v1']:g} on CartPole-v1 "
        f"in the time one PyTorch / SB3 agent needs\n",
        f"{r['seeds']} ppo_jax seeds vmapped in one program (CartPole preset, compile included) "
        + ("stopped when all had reached" if r["stopped_when_all_reached"] else "ran its whole budget")
        + f": {len(times)} of {r['seeds']} reached, the last after "
        f"{_fmt(max(times) if times else None, 1)} s.\n",
        "| reference agent | its time to reach (s) | ppo_jax agents reached by then, measured (of "
        f"{r['seeds']}) | estimated at ppo_jax's rate |",
        "|---|---:|---:|---:|",
    ]
    facts["headline"] = {}
    for impl, name in (("torch", "PyTorch"), ("sb3", "SB3")):
        ref = [x["seconds"] for x in cp.get(impl, {}).get("reached", []) if x]
        if not cp.get(impl):
            continue
        t_ref = float(np.median(ref)) if ref else None
        measured = sum(t <= t_ref for t in times) if t_ref is not None else None
        # When every seed reached before t_ref, the count is capped by the seeds
        # run; the estimate scales the run's rate linearly (one core: vmapped
        # seeds cost linearly more time on a CPU) to t_ref.
        estimate = None
        if t_ref is not None and len(times) == r["seeds"] and times:
            estimate = int(r["seeds"] * t_ref / max(times))
        facts["headline"][impl] = {
            "t_ref": t_ref,
            "measured": measured,
            "estimate": estimate,
            "of": r["seeds"],
        }
        out.append(
            f"| one {name} agent (median of {len(ref)} that reached) | {_fmt(t_ref, 1)} | "
            f"{_fmt(measured)}{'+' if measured == r['seeds'] else ''} | {_fmt(estimate)} |"
        )
    out.append(
        "\nThe estimate is the measured count scaled linearly to the reference time: "
        "seeds × t_ref ÷ (time the last of them reached); it is an estimate, shown only when "
        "every seed reached before t_ref.\n"
    )
    return "\n".join(out)


def _return_plot(env: dict, threshold: float, window: int, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    colors = {"ppo_jax": "C0", "torch": "C1", "sb3": "C2", "torch_compile": "C3", "sbx": "C4"}
    for impl in ("ppo_jax", "torch", "torch_compile", "sb3", "sbx"):
        curves = []
        for r in _impl_runs(env, impl):
            curves += r.get("rollouts", []) if impl == "ppo_jax" else [r["rollouts"]]
        for i, rollouts in enumerate(curves):
            t, y = [], []
            for k in range(1, len(rollouts) + 1):
                n = s = 0.0
                for _, _, c, total in reversed(rollouts[:k]):
                    n, s = n + c, s + total
                    if n >= window:
                        break
                if n > 0:
                    t.append(rollouts[k - 1][0])
                    y.append(s / n)
            ax.plot(t, y, color=colors[impl], alpha=0.8, lw=1, label=impl if i == 0 else None)
    ax.axhline(threshold, color="k", ls=":", lw=1)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set(xlabel="wall-clock seconds since start (log)", ylabel=f"mean return, last ≥{window} episodes")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def peers_section(d: dict, res: Path) -> tuple[str, dict]:
    if d.get("skipped"):
        return f"**{d['skipped']}**\n", {}
    env = d.get("peers_env", {})
    pinned = d.get("pinned_env")
    out = [
        f"rejax's PPO and ppo_jax, one agent each, CartPole-v1, the same settings, each "
        f"`jax.jit(train)` compiled ahead of time then run (no evaluation inside the timed run), run one "
        f"after the other in the same suite. **rejax on the same jax as ppo_jax** (its venv "
        f"`{env.get('venv')}`: {', '.join(f'`{p}`' for p in env.get('installed') or env.get('pins', []))}); "
        "the ratio column compares only those two.\n"
    ]
    if d.get("note"):
        out.append(f"**{d['note']}**\n")
    if pinned:
        out.append(
            f"The last row of each setting is rejax in its older pinned environment (`{pinned.get('venv')}`: "
            f"{', '.join(f'`{p}`' for p in pinned.get('installed') or pinned.get('pins', []))}): a different "
            "jax, so it is shown for reference and used in no ratio or target.\n"
        )
    out += [
        "| settings | implementation | jax | env steps | compile (s) | run (s) | steps/s | ppo_jax ÷ rejax (same jax) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    facts, csv_rows = {}, []
    for row in d["rows"]:
        peer = next(iter(row["rejax"].get("rows", [])), None)
        ours = next(iter(row["ppo_jax"].get("rows", [])), None)
        old = next(iter(row.get("rejax_jax0435", {}).get("rows", [])), None)
        ratio = ours["steps_per_second"] / peer["steps_per_second"] if peer and ours else None
        if peer:  # targets only from rejax on the same jax
            facts[row["settings"]] = {
                "ratio": ratio,
                "rejax_compile": peer["compile_seconds"],
                "ppo_jax_compile": ours and ours["compile_seconds"],
            }
        for name, r, jax_version in (
            ("rejax " + (peer or {}).get("rejax", ""), peer, (peer or {}).get("jax")),
            ("ppo_jax", ours, (d.get("versions") or {}).get("jax")),
            ("rejax, old pinned env (reference only)", old, (old or {}).get("jax")),
        ):
            if r is None:
                continue
            out.append(
                f"| {row['settings']} | {name} | {jax_version} | {r['env_steps']:,} | "
                f"{_fmt(r['compile_seconds'], 1)} | {_fmt(r['run_seconds'], 2)} | {_fmt(r['steps_per_second'])} | "
                f"{_fmt(ratio, 2) if name == 'ppo_jax' else ''} |"
            )
            csv_rows.append({"settings": row["settings"], "implementation": name, "jax": jax_version, **r})
    for row in d["rows"]:
        out.append(
            _failures(
                [row["rejax"], row["ppo_jax"]] + ([row["rejax_jax0435"]] if "rejax_jax0435" in row else [])
            )
        )
    seed_rows = d.get("seed_rows") or []
    if seed_rows:
        n = seed_rows[0]["seeds"]
        out += [
            "",
            f"**{n} seeds, vmapped** (the aggregate: {n} × env steps per seed ÷ run seconds; compile apart). "
            "rejax runs its own way, `jax.jit(jax.vmap(train))` on one device (it has no multi-device "
            "path), with one change that leaves its algorithm untouched: each seed's initial train state is "
            "built outside the vmap (`jax.jit(algo.init_state)` per key, stacked) and only "
            "`train(train_state=...)` is vmapped. flax's orthogonal init is a LAPACK QR, and batched QR under "
            "vmap has deadlocked XLA's CPU thread pool on 2 cores; built per seed, no QR is batched (the init "
            "is untimed and not in the compile column; rejax's plain `jax.jit(jax.vmap(train))(keys)` did not "
            "hang in 3 tries on jax 0.10.2 either, so this is a precaution, not a measured necessity). ppo_jax runs the same seeds as one vmapped program "
            "(its CLI's driver, one chunk) in a process with `--xla_force_host_platform_device_count` 1 (one "
            "device, as rejax) and 2 (the seeds split over both cores: the whole machine, as ppo_jax's CLI "
            "runs by default).\n",
            "| settings | implementation | devices | env steps / seed | compile (s) | run (s) | steps/s (all seeds) "
            "| ÷ rejax (same jax) |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in seed_rows:
            peer = next(iter(row["rejax"].get("rows", [])), None)
            ours = {k: next(iter(row.get(f"ppo_jax_{k}dev", {}).get("rows", [])), None) for k in (1, 2)}
            ratios = {
                k: (o["steps_per_second"] / peer["steps_per_second"] if peer and o else None)
                for k, o in ours.items()
            }
            facts.setdefault("_seeds", {})[row["settings"]] = {
                "seeds": row["seeds"],
                "ratio_1dev": ratios[1],
                "ratio_2dev": ratios[2],
                "devices_2dev": ours[2] and ours[2].get("devices_used"),
            }
            for name, r, devices, ratio in (
                ("rejax " + (peer or {}).get("rejax", ""), peer, 1, None),
                ("ppo_jax", ours[1], ours[1] and ours[1].get("devices_used"), ratios[1]),
                ("ppo_jax", ours[2], ours[2] and ours[2].get("devices_used"), ratios[2]),
            ):
                if r is None:
                    continue
                out.append(
                    f"| {row['settings']} | {name} | {devices} | {r['env_steps']:,} | "
                    f"{_fmt(r['compile_seconds'], 1)} | {_fmt(r['run_seconds'], 2)} | "
                    f"{_fmt(r['steps_per_second'])} | {_fmt(ratio, 2) if ratio is not None else ''} |"
                )
                csv_rows.append(
                    {
                        "settings": f"{row['settings']}, {row['seeds']} seeds vmapped",
                        "implementation": name,
                        "jax": r.get("jax") or (d.get("versions") or {}).get("jax"),
                        "devices": devices,
                        **r,
                    }
                )
        for row in seed_rows:
            out.append(
                _failures([row["rejax"]] + [row[k] for k in ("ppo_jax_1dev", "ppo_jax_2dev") if k in row])
            )
    if csv_rows:
        _write_csv(res / "peers.csv", csv_rows, CSV_COLUMNS["peers"])
    return "\n".join(out), facts


def seeds_section(d: dict, res: Path, prefix: str) -> tuple[str, dict]:
    rows = _rows(d["jobs"], "seeds")
    out = [
        "`jax.jit(jax.vmap(train))` over n seeds, CartPole preset. Memory: peak resident memory "
        "of the process (each count in its own process in a full run) and, on a GPU, the device's "
        "peak bytes in use.\n",
    ]
    out += _table(
        [
            Col("seeds", num("seeds")),
            Col("matmul precision", text("matmul_precision"), numeric=False),
            Col("env steps / seed", num("env_steps_per_seed")),
            Col("compile (s)", num("compile_seconds", 1)),
            Col("run (s)", num("run_seconds", 2)),
            Col("total (s)", num("total_seconds", 2)),
            Col("run s / agent", num("seconds_per_agent", 4)),
            Col("steps/s (all)", num("steps_per_second")),
            Col("peak RSS (MiB)", num("peak_rss_mib")),
            Col("device peak (MiB)", num("device_peak_bytes", 0, 2**20)),
        ],
        rows,
    )
    out.append(_failures(d["jobs"]))
    if rows:
        _write_csv(res / "seeds.csv", rows, CSV_COLUMNS["seeds"])
        plt = _plt()
        fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.loglog([r["seeds"] for r in rows], [r["seconds_per_agent"] for r in rows], "o-")
        ax.set(xlabel="seeds vmapped", ylabel="run seconds per agent")
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(res / "seeds.png", dpi=110)
        plt.close(fig)
        out.append(f"\n![seeds]({prefix}seeds.png)\n")
    return "\n".join(out), {"rows": rows}


def cores_section(d: dict, res: Path) -> tuple[str, dict]:
    rows = _rows(d["jobs"], "cores")
    out = [
        "Seeds in one `ChunkedRun` (the CLI's driver), each count in its own process with "
        "`XLA_FLAGS=--xla_force_host_platform_device_count=N` set by the suite; the seeds are split over the "
        "devices whose count divides them (1 seed uses one device whatever N is). CPU ÷ wall: the cores kept "
        "busy during the run. Aggregate steps/s counts every seed.\n",
    ]
    one = {r["seeds"]: r for r in rows if r["devices_visible"] == 1}
    rows_ratio = [
        {
            **r,
            "ratio": r["steps_per_second"] / one[r["seeds"]]["steps_per_second"]
            if r["seeds"] in one
            else None,
        }
        for r in rows
    ]
    facts = {
        r["seeds"]: {
            "ratio": r["ratio"],
            "steps_per_second": r["steps_per_second"],
            "devices": r["devices_visible"],
        }
        for r in rows_ratio
        if r["devices_visible"] > 1
    }
    out += _table(
        [
            Col("seeds", text("seeds")),
            Col("devices (visible / used)", lambda r: f"{r['devices_visible']} / {r['devices_used']}", False),
            Col("env steps / seed", num("env_steps_per_seed")),
            Col("compile (s)", num("compile_seconds", 1)),
            Col("run (s)", num("run_seconds", 2)),
            Col("steps/s (all seeds)", num("steps_per_second")),
            Col("vs 1 device", lambda r: _fmt(r["ratio"], 2) if r["devices_visible"] > 1 else ""),
            Col("CPU ÷ wall", num("cpu_over_wall", 2)),
            Col("peak RSS (MiB)", num("peak_rss_mib")),
        ],
        rows_ratio,
    )
    out.append(_failures(d["jobs"]))
    if rows:
        _write_csv(res / "cores.csv", rows, CSV_COLUMNS["cores"])
    facts["best_steps_per_second"] = max((r["steps_per_second"] for r in rows), default=None)
    data_parallel, facts["data_parallel"] = _data_parallel_table(_rows(d["jobs"], "data_parallel"), res)
    out.extend(data_parallel)
    return "\n".join(out), facts


def _data_parallel_table(rows: list[dict], res: Path) -> tuple[list[str], dict]:
    """One agent, one device vs data-parallel (``ChunkedRun(data_parallel=D)``): lines and ratios per preset."""
    if not rows:
        return [], {}
    out = [
        "\nOne agent (one seed), its preset's settings: on one device (the CLI's default for one seed) vs "
        "data-parallel over the devices (`ChunkedRun(data_parallel=D)`: each device steps num_envs / D envs and "
        "computes its share of every minibatch's gradient, averaged with `pmean`). Both in one process, "
        "compiled first, then run alternately; steps/s is the median of the runs, every run listed.\n",
    ]
    base = {
        r["config"]: r["steps_per_second"]
        for r in rows
        if r["devices_used"] == 1 and "one device" in r["way"]
    }
    rows_ratio = [
        {**r, "ratio": r["steps_per_second"] / base[r["config"]] if r["config"] in base else None}
        for r in rows
    ]
    facts = {r["config"]: r["ratio"] for r in rows_ratio if r["way"] != "one device"}
    out += _table(
        [
            Col("preset", text("config"), numeric=False),
            Col("envs", text("num_envs")),
            Col("way", text("way"), numeric=False),
            Col("devices used", text("devices_used")),
            Col("env steps", num("env_steps")),
            Col("compile (s)", num("compile_seconds", 1)),
            Col("steps/s", num("steps_per_second")),
            Col("vs one device", lambda r: _fmt(r["ratio"], 2) if r["way"] != "one device" else ""),
            Col("runs", lambda r: ", ".join(f"{x:,}" for x in r["steps_per_second_runs"]), numeric=False),
            Col("CPU ÷ wall", num("cpu_over_wall", 2)),
        ],
        rows_ratio,
    )
    _write_csv(res / "cores_data_parallel.csv", rows, CSV_COLUMNS["cores_data_parallel"])
    return out + [""], facts


def compile_section(d: dict, res: Path) -> tuple[str, dict]:
    rows = _rows(d["jobs"], "compile")
    out = [
        "Each preset's training program compiled as `ppo-jax train` compiles it (`ChunkedRun.compile`: `init` "
        "and every chunk length, one seed), nothing run: first in a fresh process with an empty persistent "
        "compilation cache (cold), then in a second fresh process with that cache (warm): the warm start loads "
        "the executables the cold one kept (`ppo_jax/compile_cache.py`), tracing and lowering nothing. "
        "Tracing + lowering: a separate lowering of the longest chunk, after the compile (Python's share, "
        "which XLA's own cache does not save and the executable cache skips).\n",
        "| preset | env | cold compile (s) | warm compile (s) | tracing + lowering (s) |",
        "|---|---|---:|---:|---:|",
    ]
    by = {}
    for r in rows:
        by.setdefault(r["config"], {})[r["phase"]] = r
    facts = {}
    for config, p in by.items():
        cold, warm = p.get("cold", {}), p.get("warm", {})
        facts[config] = {"cold": cold.get("compile_seconds"), "warm": warm.get("compile_seconds")}
        out.append(
            f"| `{config}` | {(cold or warm).get('env_id')} | {_fmt(cold.get('compile_seconds'), 2)} | "
            f"{_fmt(warm.get('compile_seconds'), 2)} | {_fmt(warm.get('lower_seconds'), 2)} |"
        )
    out.append(_failures(d["jobs"]))
    if rows:
        _write_csv(res / "compile.csv", rows, CSV_COLUMNS["compile"])
    return "\n".join(out), facts


def memory_section(d: dict, res: Path) -> tuple[str, dict]:
    rows = _rows(d["jobs"], "memory")
    out = [
        "Bytes per env step: XLA's memory analysis (temporaries + arguments + outputs) of "
        "`jax.jit(jax.vmap(train))` compiled at two sizes of num_envs × seeds; the slope over the rollout's env "
        "steps (num_envs × seeds × num_steps) is what each env step of a rollout costs (rollout buffer, "
        "pre-drawn randomness, minibatch copies, GAE), the intercept what does not grow. The largest "
        "num_envs × seeds is extrapolated from them at the preset's num_steps: an estimate from the compiler's "
        "plan on this backend (a GPU's allocator and fusion differ), not a run at that size. The CLI's driver "
        "(`ppo-jax train`, pipelined) holds one more train state (parameters, Adam moments, env states: "
        "its size at the preset's num_envs, one seed, in the train-state column) while the next chunk runs; the "
        "CLI columns add it per env at the preset's num_envs per seed (more seeds, each with its own parameters "
        "and Adam moments) on top of the rollout.\n"
    ]
    gibs = sorted({g for r in rows for g in r.get("largest_envs_times_seeds", {})}, key=float)
    out.append(
        "| preset | env | obs shape | num_steps | bytes / env step | fixed (MiB) | train state (KiB) | "
        + " | ".join(f"largest num_envs × seeds in {g} GiB (`jit(vmap(train))` / CLI)" for g in gibs)
        + " | backend |"
    )
    out.append("|---|---|---|---:|---:|---:|---:|" + "---:|" * len(gibs) + "---|")
    facts = {}
    for r in rows:
        if "bytes_per_env_step" not in r:
            out.append(
                f"| `{r['config']}` | {r['env_id']} | — | — | — | — | — |"
                + " — |" * len(gibs)
                + f" {r.get('note')} |"
            )
            continue
        facts[r["env_id"]] = r
        fits, cli = r["largest_envs_times_seeds"], r.get("largest_envs_times_seeds_cli", {})
        state = (
            f"{_fmt(r['train_state_bytes'] / 2**10, 1)} ({r['train_state_num_envs']} envs)"
            if "train_state_bytes" in r
            else "—"
        )
        out.append(
            f"| `{r['config']}` | {r['env_id']} | {tuple(r['obs_shape'])} | {r['num_steps']} | "
            f"{_fmt(r['bytes_per_env_step'], 1)} | {_fmt(r['fixed_bytes'] / 2**20, 1)} | {state} | "
            + " | ".join(f"{_fmt(fits.get(g))} / {_fmt(cli.get(g))}" for g in gibs)
            + f" | {r['backend']} ({r['device']}) |"
        )
    out.append(_failures(d["jobs"]))
    return "\n".join(out), facts


def cnn_section(d: dict, res: Path) -> tuple[str, dict]:
    rows = _rows(d["jobs"], "cnn")
    out = [
        "The CNN torso's convolution (3×3, 16 channels, SAME, on a 10×10×4 MinAtar image), forward + backward, "
        "jitted, for S seeds × N observations. Under `vmap` over seeds XLA makes it one convolution with a feature "
        "group per seed (`grouped`), which cuDNN runs poorly at many groups; the alternative extracts 3×3 patches "
        "once and multiplies them by each seed's kernel in one batched matmul (`patches`). Best of the repeats; "
        "the gradients of the two agree to the relative difference shown.\n",
    ]
    out += _table(
        [
            Col("seeds", num("seeds")),
            Col("rows / seed", num("rows")),
            Col("grouped (ms)", num("grouped_ms", 3)),
            Col("patches (ms)", num("patches_ms", 3)),
            Col("grouped ÷ patches", num("patches_speedup", 2)),
            Col("max rel. diff of grads", lambda r: f"{r['max_rel_diff_grad']:.1e}"),
            Col("device", text("device"), numeric=False),
        ],
        rows,
    )
    out.append(_failures(d["jobs"]))
    return "\n".join(out), {"rows": rows}


def agreement_section(d: dict, res: Path) -> tuple[str, dict]:
    rows = _rows(d["jobs"], "agreement")
    out = [
        "The same `jax.vmap(train)` (a few seeds, a short budget) twice on the GPU at each matmul precision, "
        "and once on the CPU at float32: are two GPU runs bitwise equal, and how far are the final parameters "
        "from the CPU's (max |Δ| ÷ max |θ|)?\n",
        "| device | seeds × env steps | TF32: repeatable | TF32: vs CPU | float32: repeatable | float32: vs CPU |",
        "|---|---|---|---:|---|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['device']} | {r['seeds']} × {r['env_steps_per_seed']:,} | "
            f"{r['tensorfloat32_bitwise_repeatable']} | {r['tensorfloat32_max_rel_diff_vs_cpu']:.1e} | "
            f"{r['float32_bitwise_repeatable']} | {r['float32_max_rel_diff_vs_cpu']:.1e} |"
        )
    out.append(_failures(d["jobs"]))
    return "\n".join(out), {"rows": rows}


# Device peaks (dense, no sparsity) for the GPU model below, from NVIDIA's H100 SXM datasheet.
GPU_PEAKS = {"H100 SXM": {"fp32": 67e12, "tf32": 495e12}}
GPU_FRACTION = 0.05  # the stated fraction of the fp32 peak that 64-wide MLP matmuls are assumed to reach


def gpu_model(facts: dict, cpu_throughput: Optional[dict]) -> str:
    """Expected GPU numbers from FLOPs per env step (XLA's count on the CPU rows) and
    a stated fraction of the device's peak: an estimate, not a measurement."""
    rows = (cpu_throughput or {}).get("rows") or []
    cp = [r for r in rows if r["env_id"] == "CartPole-v1"]
    if not cp:
        return (
            "_Expected numbers: run the CPU `throughput` section first (it supplies FLOPs per env step)._\n"
        )
    r = min(cp, key=lambda r: abs(r["num_envs"] - 64))
    per_step = r["flops_per_update"] / (r["num_envs"] * r["num_steps"])
    steps = 2048 * 499_712
    out = [
        "**Expected (a model, not a measurement).** Training FLOPs per CartPole env step, from XLA's cost "
        f"analysis of the CPU rows above ({r['num_envs']} envs): **{per_step / 1e3:,.0f} kFLOP** (4 epochs × "
        "forward + backward of the two 64-64 MLPs, the rollout's forward pass, Adam). The 2048-agent target is "
        f"2048 × 499,712 = {steps / 1e9:.2f} G env steps = {steps * per_step / 1e12:,.0f} TFLOP. Time = FLOPs ÷ "
        "(fraction × peak):\n",
        "| device | peak used | fraction assumed | expected seconds (2048 agents × 5e5 steps) | expected env steps/s |",
        "|---|---|---:|---:|---:|",
    ]
    for dev, peaks in GPU_PEAKS.items():
        for name, frac in (("fp32", GPU_FRACTION), ("fp32", 0.20), ("tf32", GPU_FRACTION)):
            rate = frac * peaks[name]
            out.append(
                f"| {dev} | {name} {peaks[name] / 1e12:.0f} TFLOP/s | {frac:.0%} | "
                f"{steps * per_step / rate:,.0f} (estimate) | {rate / per_step / 1e6:,.0f} M (estimate) |"
            )
    out.append(
        "\nWhy a small fraction: matmuls of 64 columns fill a sliver of an H100's tensor cores, and the "
        f"update is thousands of small kernels; {GPU_FRACTION:.0%} of the fp32 peak is the stated assumption, "
        "20% a hopeful bound. Compile time (seconds) comes on top. Precision: `--gpu` runs every job at "
        "`matmul_precision: highest` (ppo_jax's default, true float32; torch's default too, so the CUDA "
        "PyTorch row is full fp32) and the 2048-agent target again at `tensorfloat32` (jax's own default on "
        "this GPU, an opt-in in ppo_jax); each row says its precision. TF32 keeps 10 mantissa bits (about 1e-3 relative per product): it is no source of "
        "run-to-run noise, but a GPU run agrees with a CPU run only to that, and RL's feedback (different "
        "actions sampled) makes the curves part after a few updates; with `--matmul-precision float32` they "
        "agree to float32 rounding for longer (summation order still differs). Bitwise repeatability of one "
        "GPU program is a separate matter (atomics in scatters and reductions; "
        "`XLA_FLAGS=--xla_gpu_deterministic_ops=true` removes them): the `agreement` job measures both.\n"
    )
    return "\n".join(out)


def targets_table(f: dict) -> str:
    """Issue 15's targets, each measured, met or not; ratios against rejax come
    only from rejax on the same jax as ppo_jax."""
    out = ["| target | measured | met? |", "|---|---|---|"]

    def line(target, value, met):
        out.append(f"| {target} | {value} | {'—' if met is None else 'yes' if met else 'no'} |")

    cores = f.get("cores", {})
    c8 = cores.get(8)
    if c8 and c8["ratio"] is not None:
        line(
            f"the whole machine: ≥ 1.8× one device's aggregate steps/s, 8 CartPole seeds ({c8['devices']} devices)",
            f"{c8['ratio']:.2f}×",
            c8["ratio"] >= 1.8,
        )
    else:
        line(
            "the whole machine: ≥ 1.8× one device's aggregate steps/s, 8 CartPole seeds",
            "not measured (see Cores)",
            None,
        )
    seeds = f.get("peers", {}).get("_seeds", {})
    for label, p in seeds.items():
        r1, r2 = p["ratio_1dev"], p["ratio_2dev"]
        line(
            f"≥ 1.8× rejax's aggregate for {p['seeds']} vmapped seeds on the same jax ({label}; ppo_jax on the "
            "whole machine, rejax `jax.jit(jax.vmap(train))` on one device, its own way)",
            f"{_fmt(r2, 2)}× with {p['devices_2dev'] or '?'} devices; {_fmt(r1, 2)}× on one device, as rejax",
            None if r2 is None else r2 >= 1.8,
        )
    if not seeds:
        line("≥ 1.8× rejax's aggregate for 8 vmapped seeds on the same jax", "not measured (see Peers)", None)
    peers = {k: v for k, v in f.get("peers", {}).items() if k != "_seeds"}
    for label, p in peers.items():
        ratio = p["ratio"]
        line(
            f"one agent: ≥ 1.0× rejax on the same jax, aim 1.5× ({label})",
            f"{_fmt(ratio, 2)}×",
            None if ratio is None else ratio >= 1.0,
        )
    if not peers:
        line("one agent: ≥ 1.0× rejax on the same jax", "not measured (see Peers)", None)
    p4 = next(iter(peers.values()), None)
    if p4 and p4["rejax_compile"] is not None and p4["ppo_jax_compile"] is not None:
        line(
            f"compile (cold) ≤ rejax's at the same settings ({next(iter(peers))}; `jax.jit(train)`, no cache)",
            f"ppo_jax {p4['ppo_jax_compile']:.1f} s, rejax {p4['rejax_compile']:.1f} s",
            p4["ppo_jax_compile"] <= p4["rejax_compile"],
        )
    comp = f.get("compile", {}).get("configs/cartpole.yaml")
    if comp and comp["warm"] is not None:
        line(
            "CartPole preset's warm-cache compile ≤ 1 s",
            f"{comp['warm']:.2f} s (cold {_fmt(comp['cold'], 2)} s)",
            comp["warm"] <= 1.0,
        )
    else:
        cold = f.get("throughput", {}).get("warm_compile")
        line(
            "CartPole preset's warm-cache compile ≤ 1 s",
            f"{cold:.2f} s (CLI, from Throughput)" if cold is not None else "not measured",
            None if cold is None else cold <= 1,
        )
    cp = f.get("torch", {}).get("CartPole-v1", {})
    jx = cp.get("ppo_jax")
    if jx:
        reached, finals = jx["reached"], jx["final"]
        all_in = all(x is not None for x in reached)
        t = max(x["seconds"] for x in reached) if all_in else None
        solved = sum(1 for x in finals if x is not None and x >= THRESHOLDS["CartPole-v1"])
        line(
            f"CartPole-v1 solved ({jx['seeds']} of {jx['seeds']} seeds ≥ 475) in ≤ 5 s of compile + training, cold cache",
            f"last seed reached after {_fmt(t, 1)} s; final return ≥ 475 for {solved} of {jx['seeds']}",
            (t is not None and t <= 5 and jx["seeds"] >= 4) if all_in else False,
        )
    best = cores.get("best_steps_per_second")
    sb3 = cp.get("sb3", {}).get("steps_per_second")
    if best and sb3:
        line(
            "≥ 60× SB3's steps/s (one agent, one thread) with the whole machine (best aggregate of the Cores table)",
            f"{best / sb3:.1f}× ({best:,.0f} vs {sb3:,.0f})",
            best / sb3 >= 60,
        )
    else:
        line(
            "≥ 60× SB3's steps/s with the whole machine", "not measured (needs the Cores and SB3 rows)", None
        )
    g = f.get("gpu_seeds")
    if g:
        line(
            "GPU: 2048 CartPole agents × 5e5 steps in ≤ 30 s",
            f"{g['total_seconds']:.1f} s (compile {g['compile_seconds']:.1f} + run {g['run_seconds']:.1f}) "
            f"at matmul_precision {g.get('matmul_precision', 'unrecorded')}"
            + "".join(
                f"; {o.get('matmul_precision')}: {o['total_seconds']:.1f} s" for o in g.get("others", [])
            ),
            g["total_seconds"] <= 30,
        )
    else:
        line(
            "GPU: 2048 CartPole agents × 5e5 steps in ≤ 30 s",
            f"not measured: run `{GPU_COMMAND}` on a GPU",
            None,
        )
    return "\n".join(out)


def write(out: Path) -> Path:
    out = Path(out)
    res = out / "results"
    res.mkdir(parents=True, exist_ok=True)
    prefix = "results/"
    facts, parts, modes = {}, [], set()
    titles = {
        "throughput": "1. Throughput, the floor, FLOP/s",
        "torch": "2. Against PyTorch, Stable-Baselines3 and sbx",
        "peers": "3. Against a JAX peer (rejax, same jax)",
        "seeds": "4. Seeds scaling",
        "cores": "5. Cores: seeds over host devices",
        "compile": "6. Compile time per preset",
        "memory": "7. Memory per env step",
        "cnn": "8. The CNN under vmap",
    }
    for name, fn in (
        ("throughput", throughput_section),
        ("torch", torch_section),
        ("peers", peers_section),
        ("seeds", seeds_section),
        ("cores", cores_section),
        ("compile", compile_section),
        ("memory", memory_section),
        ("cnn", cnn_section),
    ):
        d = _load(res / f"{name}.json")
        parts.append(f"## {titles[name]}\n")
        if d is None:
            parts.append(f"Not yet run: `python -m benchmarks.run --only {name}`.\n")
            continue
        parts.append(_provenance(d))
        parts.append(_stale_note(d))
        modes.add(d["mode"])
        if d.get("skipped") and name != "torch":
            parts.append(f"\n**{d['skipped']}**\n")
            continue
        body, facts[name] = fn(d, res, prefix) if name in ("throughput", "torch", "seeds") else fn(d, res)
        parts.append("\n" + body)

    parts.append("## 9. GPU\n")
    parts.append(
        f"Command, on a machine with a CUDA device and jax's CUDA wheels: `{GPU_COMMAND}` (one call, a "
        "400 s budget; the 2048-agent target runs first). On the lent H100 of this project: "
        "`bash benchmarks/gpu_session.sh` (see `benchmarks/README.md`).\n"
    )
    parts.append(gpu_model(facts, facts.get("throughput")))
    gpu = res / "gpu"
    gpu_parts = []
    for name, fn in (
        ("seeds", seeds_section),
        ("torch", torch_section),
        ("throughput", throughput_section),
        ("memory", memory_section),
        ("cnn", cnn_section),
        ("agreement", agreement_section),
    ):
        d = _load(gpu / f"{name}.json")
        if d is None or d.get("skipped"):
            if d is not None:
                gpu_parts.append(f"### GPU: {name}\n\n**{d['skipped']}**\n")
            continue
        if name in ("throughput", "torch", "seeds"):
            body, gfacts = fn(d, gpu, prefix + "gpu/")
        else:
            body, gfacts = fn(d, gpu)
        device = d["machine"].get("gpu") or next(
            (r.get("device") for r in (gfacts or {}).get("rows", [])), None
        )
        gpu_parts.append(f"### GPU ({device}): {name}\n\n{_provenance(d)}\n{_stale_note(d)}{body}")
        if name == "seeds":
            # The target: 2048 agents × the CartPole preset's 5e5 steps (499,712 whole rollouts).
            big = [r for r in gfacts["rows"] if r["seeds"] == 2048 and r["env_steps_per_seed"] >= 499_712]
            if big:  # the target at the default precision; the others beside it
                big.sort(key=lambda r: r.get("matmul_precision") != "highest")
                facts["gpu_seeds"] = {**big[0], "others": big[1:]}
    if gpu_parts:
        parts.extend(gpu_parts)
    else:
        parts.append(
            "No GPU results yet. `--gpu` writes `benchmarks/results/gpu/*.json`, and this "
            "section is regenerated from them (`python -m benchmarks.report`).\n"
        )

    parts.append("## Where the time goes\n")
    parts.append(
        ANALYSIS.read_text().strip() + "\n"
        if ANALYSIS.exists()
        else "_(benchmarks/analysis.md, written by hand, goes here.)_\n"
    )
    presets = sorted((res / "presets").glob("*.json"))
    if presets:
        parts.append("## Presets (CPU training runs)\n")
        parts.append(
            "From `ppo-jax train configs/NAME.yaml --seeds 4`; each run's `summary.json` is in "
            "`results/presets/`.\n\n| preset | env steps/seed | train (s) | compile (s) | steps/s (4 seeds) | "
            "final return (per seed) | finished (UTC) |\n|---|---:|---:|---:|---:|---|---|"
        )
        for p in presets:
            s = json.loads(p.read_text())
            finals = ", ".join(_fmt(x, 1) for x in s.get("final_return", []))
            parts.append(
                f"| {p.stem} | {s['env_steps']:,} | {s['train_seconds']:.0f} | {s['compile_seconds']:.0f} | "
                f"{s['steps_per_second']:,.0f} | {finals} | {str(s.get('finished_at', ''))[:16]} |"
            )
        parts.append("")

    head = [
        "# Benchmark results\n",
        "Written by `python -m benchmarks.run` (see `benchmarks/README.md`); every section says its "
        "machine, date, command and versions. Benchmarks measure and report; they never pass or fail "
        "on time. Raw numbers: `results/*.json` and `*.csv` beside this file.\n",
        "## Targets\n",
        "Aims reported against, met or not.\n",
        targets_table(facts),
        "",
    ]
    if modes & {"quick"}:
        head.insert(
            2,
            "**Smoke-run sizes (`--quick`): these numbers only show that the suite works; "
            "they are not results.**\n",
        )
    path = out / "RESULTS.md"
    path.write_text("\n".join(head + parts).rstrip() + "\n")
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent))
