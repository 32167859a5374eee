"""The three stages as host programs: data in, one compiled training program, a stage directory out.

Everything that can be refused (settings, stage directories and their shapes)
is checked before the first compilation.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax.cli.common import command_line
from ppo_jax.networks import transformer
from ppo_jax.rlhf import labeler, ppo, reward, sft, stages, text
from ppo_jax.rlhf.config import RLHFConfig


def _conditions() -> dict:
    """Where and how loaded: the timings mean little without them."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "load_average": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
        "device": jax.devices()[0].device_kind,
        "process_cpu_seconds": usage.ru_utime + usage.ru_stime,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command_line(),
    }


def _params_shape(config: RLHFConfig):
    return jax.eval_shape(lambda: transformer.init(config.transformer, jax.random.key(0)))


def run_sft(config: RLHFConfig, out: Path, log=print) -> dict:
    s, d = config.sft, config.data
    start = time.time()
    examples = text.sft_examples(
        "train", s.steps * s.batch_size, d.prompt_len, d.response_len, d.max_words, s.seed
    )
    held = text.sft_examples(
        "held_out", s.eval_examples, d.prompt_len, d.response_len, d.max_words, s.seed + 1
    )
    log(f"sft: {s.steps} steps of {s.batch_size} sequences of {examples.shape[1]} tokens")
    params, losses = jax.jit(sft.make_train(config))(
        jax.random.key(s.seed), jnp.asarray(examples.reshape(s.steps, s.batch_size, -1))
    )
    losses = np.asarray(losses)
    train_time = time.time() - start
    ppl = float(np.exp(sft.held_out_nll(config, params, held)))
    unigram = text.unigram_perplexity(examples[:, 1:].ravel(), held[:, 1:].ravel())
    prompts = text.prompts("held_out", 512, d.prompt_len, d.response_len, s.seed + 2)
    seqs = reward.sampler(config, 1.0)(params, prompts, s.seed + 3)[:8]
    summary = {
        "stage": "sft",
        "held_out_perplexity": ppl,
        "unigram_held_out_perplexity": unigram,
        "final_train_loss": float(losses[-100:].mean()),
        "samples": [
            {"prompt": text.decode(q[: d.prompt_len]), "response": text.decode(q[d.prompt_len :])}
            for q in seqs
        ],
        "seconds": time.time() - start,
        "train_seconds_with_compile": train_time,
        **_conditions(),
    }
    log(f"sft: held-out perplexity {ppl:.3f} (unigram {unigram:.3f}), {summary['seconds']:.0f} s")
    stages.save(out, "sft", config, params, summary)
    return summary


def _pairs(config, params, split: str, n: int, seed: int, rng):
    d, r = config.data, config.reward
    prompts = text.prompts(split, n, d.prompt_len, d.response_len, seed)
    sample = reward.sampler(config, r.temperature)
    a, b = sample(params, prompts, seed + 1), sample(params, prompts, seed + 2)
    gold_a, gold_b = labeler.gold_scores(a[:, d.prompt_len :]), labeler.gold_scores(b[:, d.prompt_len :])
    return a, b, gold_a, gold_b, labeler.label(gold_a, gold_b, r.label_temperature, rng)


def run_reward(config: RLHFConfig, sft_dir: Path, out: Path, log=print) -> dict:
    r, d = config.reward, config.data
    start = time.time()
    ref = stages.load(sft_dir, _params_shape(config))
    rng = np.random.default_rng(r.seed)
    log(f"reward: sampling {r.num_pairs} + {r.held_out_pairs} pairs from the reference")
    a, b, _, _, y = _pairs(config, ref, "train", r.num_pairs, r.seed, rng)
    ha, hb, hga, hgb, hy = _pairs(config, ref, "held_out", r.held_out_pairs, r.seed + 10, rng)
    sample_time = time.time() - start
    steps = r.num_pairs // r.batch_size
    order = np.concatenate([rng.permutation(r.num_pairs)[: steps * r.batch_size] for _ in range(r.epochs)])
    shape = (r.epochs * steps, r.batch_size)
    params = reward.with_fresh_head(ref, jax.random.key(r.seed), config.model.d_model)
    log(f"reward: {r.epochs} epoch(s), {shape[0]} steps of {r.batch_size} pairs")
    params, losses = jax.jit(reward.make_train(config))(
        params,
        jnp.asarray(a[order].reshape(shape + (-1,))),
        jnp.asarray(b[order].reshape(shape + (-1,))),
        jnp.asarray(y[order].reshape(shape)),
    )
    norm_prompts = text.prompts("train", r.norm_samples, d.prompt_len, d.response_len, r.seed + 20)
    norm_seqs = reward.sampler(config, config.ppo.temperature)(ref, norm_prompts, r.seed + 21)
    raw = reward.scores(config, params, norm_seqs)
    mean, std = float(raw.mean()), float(raw.std())

    def accuracy(a, b, y):
        return labeler.pair_accuracy(reward.scores(config, params, a), reward.scores(config, params, b), y)

    held_scores = reward.normalize(reward.scores(config, params, ha), mean, std)
    summary = {
        "stage": "reward",
        "held_out_accuracy": accuracy(ha, hb, hy),
        "train_accuracy": accuracy(a[:2048], b[:2048], y[:2048]),
        "noise_ceiling": labeler.noise_ceiling(hga, hgb, hy),
        "expected_noise_ceiling": labeler.expected_ceiling(hga, hgb, r.label_temperature),
        "held_out_pairs": r.held_out_pairs,
        "held_out_ties": float(np.mean(hga == hgb)),
        "pair_temperature": r.temperature,
        "label_temperature": r.label_temperature,
        "held_out_corr_with_gold": float(np.corrcoef(held_scores, hga)[0, 1]),
        "normalization": {
            "mean": mean,
            "std": std,
            "samples": r.norm_samples,
            "temperature": config.ppo.temperature,
        },
        "reference_gold_mean": float(labeler.gold_scores(norm_seqs[:, d.prompt_len :]).mean()),
        "final_train_loss": float(np.asarray(losses)[-20:].mean()),
        "sample_seconds": sample_time,
        "seconds": time.time() - start,
        **_conditions(),
    }
    log(
        f"reward: held-out accuracy {summary['held_out_accuracy']:.3f} (noise ceiling {summary['noise_ceiling']:.3f}), "
        f"{summary['seconds']:.0f} s"
    )
    stages.save(
        out, "reward", config, {"params": params, "mean": jnp.float32(mean), "std": jnp.float32(std)}, summary
    )
    return summary


def load_reward(config: RLHFConfig, reward_dir: Path):
    target = {"params": _params_shape(config), "mean": jnp.float32(0), "std": jnp.float32(0)}
    return stages.load(reward_dir, target)


def _label(settings: dict, seed: int) -> str:
    """``beta=0.05 seed=0``: β is named as the docs name it, other settings by their key."""
    parts = [f"{'beta' if k == 'kl_coef' else k}={v:g}" for k, v in settings.items()]
    return " ".join(parts + [f"seed={seed}"])


def run_ppo(config: RLHFConfig, sft_dir: Path, reward_dir: Path, out: Path, seeds, betas, log=print) -> dict:
    """β × seeds in one program (``ppo-jax rlhf ppo --betas --seeds``)."""
    return run_points(config, sft_dir, reward_dir, out, [{"kl_coef": float(b)} for b in betas], seeds, log)


def run_points(
    config: RLHFConfig, sft_dir: Path, reward_dir: Path, out: Path, points, seeds, log=print
) -> dict:
    """Every ``(point, seed)`` in one compiled program, point-major; a point is ``{ppo.Hypers field: value}``.

    Writes the stage directory (summary.json with the reference and every run, curves.json, samples.txt).
    """
    c, d = config.ppo, config.data
    start = time.time()
    ref = stages.load(sft_dir, _params_shape(config))
    rm = load_reward(config, reward_dir)
    train, env = ppo.make_train(config)
    pool = text.prompts("train", 8192, d.prompt_len, d.response_len, c.seed)
    env_params = env.params(jnp.asarray(pool), rm["params"], rm["mean"], rm["std"])
    grid = [(dict(point), int(seed)) for point in points for seed in seeds]
    keys = jnp.stack([jax.random.key(s) for _, s in grid])
    hypers = jax.tree.map(lambda *x: jnp.stack(x), *[ppo.hypers(config, **p) for p, _ in grid])
    log(
        f"ppo: {len(grid)} runs ({len(points)} setting(s) × seeds {', '.join(map(str, seeds))}), "
        f"{c.num_updates} updates of {c.batch_size} responses each, one program"
    )
    params, metrics = jax.jit(jax.vmap(train, in_axes=(0, 0, None, None)))(keys, hypers, ref, env_params)
    metrics = jax.tree.map(np.asarray, metrics)
    train_time = time.time() - start

    eval_prompts = jnp.asarray(
        text.prompts("held_out", c.eval_prompts, d.prompt_len, d.response_len, c.seed + 1)
    )
    evaluate = jax.jit(lambda p, k: ppo.evaluate(config, p, ref, env_params, eval_prompts, k))
    eval_key = jax.random.key(c.seed + 2)
    runs = [_evaluated(config, evaluate(ref, eval_key), {"run": "reference"})]
    for i, (point, seed) in enumerate(grid):
        one = jax.tree.map(lambda x, i=i: x[i], params)
        about = {"run": _label(point, seed), "beta": _beta(config, point), "seed": seed, "settings": point}
        runs.append(_evaluated(config, evaluate(one, eval_key), about))
    summary = {
        "stage": "ppo",
        "runs": runs,
        "kl_target": c.kl_target,
        "train_seconds_with_compile": train_time,
        "seconds": time.time() - start,
        **_conditions(),
    }
    log(f"ppo: {summary['seconds']:.0f} s")
    for r in runs:
        log(
            f"  {r['run']}: RM {r['rm_score']:+.3f}  gold {r['gold']:.3f}  KL {r['kl']:.2f}  length {r['length']:.1f}"
        )
    stages.save(out, "ppo", config, params, summary)
    (out / "curves.json").write_text(json.dumps(_curves(config, metrics, grid)))
    (out / "samples.txt").write_text(_samples_text(runs))
    return summary


def _beta(config: RLHFConfig, point: dict) -> float:
    return float(point.get("kl_coef", config.ppo.kl_coef))


def _evaluated(config, result, about: dict) -> dict:
    seqs, rm, kl, length = (np.asarray(x) for x in result)
    p = config.data.prompt_len
    gold = labeler.gold_scores(seqs[:, p:])
    samples = [
        {"prompt": text.decode(q[:p]), "response": text.decode(q[p:]), "gold": float(g), "rm": float(s)}
        for q, g, s in zip(seqs[:8], gold, rm)
    ]
    return {
        **about,
        "rm_score": float(rm.mean()),
        "gold": float(gold.mean()),
        "kl": float(kl.mean()),
        "length": float(length.mean()),
        "samples": samples,
    }


def _curves(config, metrics, grid) -> list[dict]:
    """Per run, per update: the training metrics and the gold score of that update's responses."""
    out = []
    for i, (point, seed) in enumerate(grid):
        responses = metrics["responses"][i]
        gold = [float(labeler.gold_scores(r.astype(np.int32)).mean()) for r in responses]
        shown = {
            u: [text.decode(r.astype(np.int32)) for r in responses[u][:4]]
            for u in sorted({0, len(responses) // 4, len(responses) // 2, len(responses) - 1})
        }
        row = {k: metrics[k][i].tolist() for k in metrics if k != "responses"}
        about = {"beta": _beta(config, point), "seed": seed, "settings": point}
        out.append({**about, "gold": gold, "samples_at_update": shown, **row})
    return out


def _samples_text(runs) -> str:
    lines = []
    for r in runs:
        lines.append(f"== {r['run']}: RM {r['rm_score']:+.3f}, gold {r['gold']:.3f}, KL {r['kl']:.2f}")
        lines += [
            f"  [{s['prompt']}] {s['response']!r}  (gold {s['gold']:g}, RM {s['rm']:+.2f})"
            for s in r["samples"]
        ]
    return "\n".join(lines) + "\n"
