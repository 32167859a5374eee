"""Stage 3 as a sweep: a grid of traced PPO settings × seeds in one compiled program.

``ppo-jax sweep configs/rlhf/pipeline.yaml --grid ppo.kl_coef=0,0.05 --seeds 3
--sft DIR --reward DIR`` lands here (``rlhf_sweep``). The grid may vary only the
settings that ``ppo.Hypers`` traces; anything that sets a shape (batch size,
updates, lengths) or a static choice stays one value per program, so it is
refused with a pointer to ``--set``. The sweep directory is a finished ``ppo``
stage (summary.json, curves.json, samples.txt, checkpoints) plus sweep.json
(the grid, the seeds, the command) and results.csv (one row per run).
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ppo_jax.config import ConfigError
from ppo_jax.rlhf import config as rlhf_config
from ppo_jax.rlhf import stages
from ppo_jax.rlhf.ppo import Hypers

TRACED = tuple(f"ppo.{name}" for name in Hypers._fields)
RESULTS = ("rm_score", "gold", "kl", "length")


def grid_points(config: rlhf_config.RLHFConfig, grid: Mapping[str, Sequence[Any]]) -> list[dict]:
    """The grid's product as ``[{Hypers field: value}, ...]``, each point checked as a config."""
    if not grid:
        raise ConfigError(
            f"sweep: an RLHF sweep needs --grid, e.g. --grid ppo.kl_coef=0,0.05; traced: {', '.join(TRACED)}."
        )
    axes = {}
    for key, values in grid.items():
        dotted = key if "." in key else f"ppo.{key}"
        if dotted not in TRACED:
            raise ConfigError(
                f"--grid {key}: not a traced stage-3 setting, so it cannot vary inside one compiled program; "
                f"traced: {', '.join(TRACED)} (set others with --set)."
            )
        if dotted == "ppo.kl_target" and config.ppo.kl_target is None:
            raise ConfigError(
                "--grid ppo.kl_target: the config has kl_target: null (β fixed, no controller); "
                "set a kl_target to grid over it."
            )
        if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
            raise ConfigError(f"--grid {key}: expected one or more numbers, got {list(values)!r}.")
        axes[dotted] = [float(v) for v in values]
    points = []
    for combo in itertools.product(*axes.values()):
        sets = dict(zip(axes, combo))
        config.with_sets(sets)  # each point must be a valid config
        for name, least in (("ppo.learning_rate", 0.0), ("ppo.clip_eps", 0.0), ("ppo.vf_coef", -1.0)):
            if sets.get(name, 1.0) <= least:
                raise ConfigError(f"--grid {name}: must be > {max(least, 0):g}, got {sets[name]:g}.")
        points.append({k.removeprefix("ppo."): v for k, v in sets.items()})
    return points


def rlhf_sweep(
    config_path: str | Path,
    grid: Mapping[str, Sequence[Any]],
    seeds: int,
    seed: int | None,
    out: str | Path,
    sft_dir: str | Path,
    reward_dir: str | Path,
    overrides: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    log=print,
) -> dict:
    """Run a stage-3 grid × ``seeds`` seeds (from ``seed``, default ``ppo.seed``); write the sweep's files.

    Everything (config, overrides, grid, stage directories, ``out``) is checked before anything
    compiles; a bad one raises ``ConfigError``. Returns the stage's summary.
    """
    plan = plan_sweep(config_path, grid, seeds, seed, out, sft_dir, reward_dir, overrides, overwrite)
    from ppo_jax.rlhf import run

    summary = run.run_points(
        plan["config"], plan["sft"], plan["reward"], plan["out"], plan["points"], plan["seeds"], log
    )
    write_sweep_files(plan, summary)
    return summary


def plan_sweep(
    config_path, grid, seeds, seed, out, sft_dir, reward_dir, overrides=None, overwrite=False
) -> dict:
    """What ``rlhf_sweep`` will run, settled and checked; nothing compiled, nothing written."""
    config = rlhf_config.load(config_path).with_sets(dict(overrides or {}))
    if both := sorted(set(overrides or {}) & {k if "." in k else f"ppo.{k}" for k in grid}):
        raise ConfigError(f"{', '.join(both)}: given by both --set and --grid; keep one.")
    points = grid_points(config, grid)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds!r}.")
    first = config.ppo.seed if seed is None else int(seed)
    sft = stages.check(sft_dir, "sft", config)
    reward = stages.check(reward_dir, "reward", config)
    for given in (sft, reward):
        if Path(given).resolve() == Path(out).resolve():
            raise ConfigError(f"--out {out}: is an input stage directory; choose a new one.")
    out = stages.check_out(out, overwrite)
    return {
        "config": config,
        "points": points,
        "seeds": list(range(first, first + seeds)),
        "sft": sft,
        "reward": reward,
        "out": out,
        "grid": {k if "." in k else f"ppo.{k}": [float(v) for v in vs] for k, vs in grid.items()},
    }


def write_sweep_files(plan: dict, summary: dict) -> None:
    """sweep.json (what ran) and results.csv (one tidy row per run, the reference first)."""
    out = plan["out"]
    about = {
        "kind": "rlhf-sweep",
        "grid": plan["grid"],
        "seeds": plan["seeds"],
        "sft": str(plan["sft"]),
        "reward": str(plan["reward"]),
        "command": summary.get("command", ""),
    }
    (out / "sweep.json").write_text(json.dumps(about, indent=2))
    keys = [k.removeprefix("ppo.") for k in plan["grid"]]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", *keys, "seed", *RESULTS])
        for r in summary["runs"]:
            settings = r.get("settings", {})
            writer.writerow(
                [r["run"], *(settings.get(k, "") for k in keys), r.get("seed", ""), *(r[m] for m in RESULTS)]
            )
