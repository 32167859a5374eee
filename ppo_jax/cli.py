"""``ppo-jax``: the command line. IO only; training is ``ppo_jax.driver``.

    ppo-jax train CONFIG.yaml [--seeds N] [--set key=value ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

EXIT_USAGE = 2
EXIT_NONFINITE = 3


class UserError(Exception):
    """Bad input from the user: printed without a traceback, exit code 2."""


def _parse_sets(pairs: Sequence[str]) -> dict:
    import yaml

    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set {pair!r}: expected key=value, for example --set learning_rate=3e-4")
        key, raw = pair.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        overrides[key] = value
    return overrides


def _default_out(config_path: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{Path(config_path).stem}-{stamp}"


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(
            f"--out {out}: directory exists and is not empty; choose another --out or pass --overwrite."
        )
    parent = out.parent if not out.exists() else out
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise UserError(f"--out {out}: {probe} is not writable.")


def _enable_compile_cache() -> None:
    import jax

    if os.environ.get("PPO_JAX_NO_CACHE"):
        return
    cache = os.environ.get("PPO_JAX_CACHE_DIR", str(Path.home() / ".cache" / "ppo_jax" / "xla"))
    try:
        Path(cache).mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


class _Progress:
    """A rich progress bar on a terminal; a plain line per ~10% elsewhere."""

    def __init__(self, total_steps: int, enabled: bool, console):
        self.console = console
        self.total = total_steps
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self._next_report = 0.1
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("env steps/seed · {task.fields[sps]} · return {task.fields[ret]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.bar.add_task("train", total=total_steps, sps="-", ret="-")
            self.bar.start()

    def update(self, steps: int, sps: float, ret: float) -> None:
        if not self.enabled:
            return
        sps_text = f"{sps:,.0f} steps/s"
        ret_text = f"{ret:.1f}"
        if self.live:
            self.bar.update(self.task, completed=steps, sps=sps_text, ret=ret_text)
        elif steps >= self._next_report * self.total or steps == self.total:
            self.console.print(f"  {steps:>12,}/{self.total:,} env steps/seed · {sps_text} · recent return {ret_text}")
            self._next_report += 0.1

    def close(self) -> None:
        if self.live:
            self.bar.stop()


def cmd_train(args: argparse.Namespace) -> int:
    from ppo_jax.config import ConfigError, load_config

    overrides = _parse_sets(args.set or [])
    try:
        config = load_config(args.config, **overrides)
    except ConfigError as err:
        raise UserError(str(err)) from None
    if args.seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {args.seeds}.")
    if args.seed < 0:
        raise UserError(f"--seed must be ≥ 0, got {args.seed}.")
    out = Path(args.out) if args.out else _default_out(args.config)
    _prepare_out_dir(out, args.overwrite)

    import jax
    import numpy as np

    from ppo_jax import logs
    from ppo_jax.driver import ChunkedRun

    _enable_compile_cache()
    seeds = list(range(args.seed, args.seed + args.seeds))
    out.mkdir(parents=True, exist_ok=True)
    logs.write_config(out / "config.yaml", config.to_dict())

    from rich.console import Console

    err = Console(stderr=True)
    err.print(
        f"ppo-jax: {config.env_id}, {len(seeds)} seed(s) × {config.env_steps:,} env steps "
        f"({config.num_updates} updates of {config.num_envs}×{config.num_steps}) on {jax.devices()[0].platform}"
    )
    run = ChunkedRun(config, seeds)
    err.print("compiling…")
    state = run.compile()
    err.print(f"compiled in {run.compile_seconds:.1f} s")

    csv_writer = logs.MetricsCSV(out / "metrics.csv", seeds)
    progress = _Progress(config.env_steps, enabled=not args.no_progress, console=err)
    history = []
    last_return = [float("nan")]  # long episodes (Freeway: 2,500 steps) skip many chunks

    def on_chunk(first_update, metrics, seconds):
        csv_writer.append(first_update, metrics)
        history.append(metrics)
        steps = int(metrics["env_steps"][0, -1])
        sps = steps * len(seeds) / max(seconds, 1e-9)
        recent = logs.recent_return({k: np.concatenate([h[k] for h in history[-3:]], axis=1) for k in metrics})
        if np.isfinite(recent):
            last_return[0] = recent
        progress.update(steps, sps, last_return[0])

    try:
        state, metrics = run.run(state, on_chunk)
    finally:
        progress.close()

    final = logs.final_returns(metrics)
    env_steps_done = int(metrics["env_steps"][0, -1])
    total_steps = env_steps_done * len(seeds)
    summary = {
        "env_id": config.env_id,
        "seeds": seeds,
        "env_steps": env_steps_done,
        "final_return": final,
        "final_return_mean": float(np.nanmean(final)) if np.isfinite(final).any() else None,
        "compile_seconds": run.compile_seconds,
        "train_seconds": run.train_seconds,
        "steps_per_second": total_steps / run.train_seconds,
        "num_updates": config.num_updates,
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.devices()[0].platform,
        "host": platform.node(),
        "jax_version": jax.__version__,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in ["ppo-jax"] + sys.argv[1:]),
    }
    if run.nonfinite is not None:
        summary["stopped"] = {
            "reason": f"non-finite {run.nonfinite.quantity}",
            "seed": run.nonfinite.seed,
            "update": run.nonfinite.update,
        }
    logs.write_summary(out / "summary.json", summary)
    logs.plot_curves(out / "curves.png", metrics, seeds, title=f"{config.env_id} — {len(seeds)} seed(s)")
    err.print(
        f"final return per seed (last {int(logs.FINAL_FRACTION * 100)}% of training): "
        + ", ".join(f"{x:.1f}" for x in final)
    )
    err.print(
        f"train {run.train_seconds:.1f} s · {summary['steps_per_second']:,.0f} env steps/s · "
        f"compile {run.compile_seconds:.1f} s"
    )
    print(f"run written to {out}")
    if run.nonfinite is not None:
        bad = run.nonfinite
        err.print(
            f"ppo-jax: error: non-finite {bad.quantity} at update {bad.update} (seed {bad.seed}); "
            f"training stopped at the end of that chunk. Metrics up to it are in {out / 'metrics.csv'}. "
            "Lower learning_rate or max_grad_norm, or turn on normalize_obs / normalize_reward."
        )
        return EXIT_NONFINITE
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ppo-jax", description="PPO in pure, jitted JAX on gymnax.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train from a YAML config", description="Train from a YAML config.")
    train.add_argument("config", help="YAML preset, e.g. configs/cartpole.yaml")
    train.add_argument("--seeds", type=int, default=1, help="number of seeds trained at once (vmapped)")
    train.add_argument("--seed", type=int, default=0, help="first seed (seeds are SEED..SEED+N-1)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
    train.add_argument("--out", help="run directory (default: runs/<config>-<time>)")
    train.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    train.add_argument("--no-progress", action="store_true", help="no progress output")
    train.set_defaults(func=cmd_train)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"ppo-jax: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ppo-jax: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
