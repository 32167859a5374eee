"""``ppo-jax``: the command line. IO only; training is ``ppo_jax.driver``.

    ppo-jax train CONFIG.yaml [--seeds N] [--set key=value ...] [--out DIR]
    ppo-jax sweep CONFIG.yaml --grid key=v1,v2 [--grid ...] [--seeds N] [--out DIR]
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


def _parse_grid(pairs: Sequence[str]) -> dict:
    import yaml

    grid: dict = {}
    for pair in pairs:
        example = "for example --grid learning_rate=1e-4,3e-4,1e-3"
        if "=" not in pair:
            raise UserError(f"--grid {pair!r}: expected setting=value,value,..., {example}")
        key, raw = (part.strip() for part in pair.split("=", 1))
        if not key:
            raise UserError(f"--grid {pair!r}: no setting before '=', {example}")
        if key in grid:
            raise UserError(f"--grid {key}: given twice; put all its values in one --grid {key}=v1,v2,...")
        items = [item.strip() for item in raw.split(",")] if raw.strip() else []
        if not all(items):
            raise UserError(f"--grid {pair!r}: '{key}' has an empty value between commas, {example}")
        values = []
        for item in items:
            try:
                values.append(yaml.safe_load(item))
            except yaml.YAMLError:
                values.append(item)
        grid[key] = values
    return grid


def _check_distributed(args: argparse.Namespace) -> None:
    manual = (args.coordinator, args.num_processes, args.process_id)
    if not args.distributed and all(x is None for x in manual):
        return
    if not args.distributed and any(x is None for x in manual):
        raise UserError(
            "--coordinator, --num-processes and --process-id go together (or pass --distributed alone to let "
            "JAX detect the cluster: SLURM, Open MPI, Kubernetes, Cloud TPU)."
        )
    if args.num_processes is not None and args.num_processes < 1:
        raise UserError(f"--num-processes must be at least 1, got {args.num_processes}.")
    if args.process_id is not None and not (0 <= args.process_id < (args.num_processes or 1)):
        raise UserError(f"--process-id must lie in [0, {(args.num_processes or 1) - 1}], got {args.process_id}.")


def _start_distributed(args: argparse.Namespace) -> None:
    """Join the other processes of a multi-host sweep (``jax.distributed``)."""
    if not args.distributed and args.coordinator is None:
        return
    import jax

    # Collectives between CPU processes (the gather of per-run results) need gloo;
    # the setting is ignored on GPU and TPU.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=args.coordinator, num_processes=args.num_processes, process_id=args.process_id
    )


def cmd_sweep(args: argparse.Namespace) -> int:
    overrides = _parse_sets(args.set or [])
    grid_values = _parse_grid(args.grid or [])
    both = sorted(set(overrides) & set(grid_values))
    if both:
        raise UserError(f"{', '.join(both)}: given by both --set and --grid; keep one.")
    if args.seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {args.seeds}.")
    if args.seed < 0:
        raise UserError(f"--seed must be ≥ 0, got {args.seed}.")
    _check_distributed(args)
    default = _default_out(args.config)
    out = Path(args.out) if args.out else default.with_name("sweep-" + default.name)
    if args.process_id in (None, 0):
        _prepare_out_dir(out, args.overwrite)
    # Before anything starts a JAX backend (validating the env id imports gymnax, which does).
    _start_distributed(args)

    from ppo_jax.config import ConfigError, load_config
    from ppo_jax.sweeps import make_grid

    try:
        config = load_config(args.config, **overrides)
        grid = make_grid(config, grid_values)
    except ConfigError as err:
        raise UserError(str(err)) from None

    import jax
    import numpy as np

    from ppo_jax import logs, report
    from ppo_jax.sweeps import SweepRun

    _enable_compile_cache()
    main_process = jax.process_index() == 0
    seeds = list(range(args.seed, args.seed + args.seeds))
    run = SweepRun(grid, seeds)

    from rich.console import Console

    err = Console(stderr=True, quiet=not main_process)
    if main_process:
        out.mkdir(parents=True, exist_ok=True)
        logs.write_config(out / "config.yaml", grid.base.to_dict())
    points = len(grid.points)
    err.print(
        f"ppo-jax sweep: {config.env_id}, {points} grid point(s) × {len(seeds)} seed(s) = {run.num_runs} runs "
        f"× {config.env_steps:,} env steps, in 1 compiled program on {run.num_devices} "
        f"{jax.devices()[0].platform} device(s)"
        + (f" in {jax.process_count()} processes" if jax.process_count() > 1 else "")
        + (f" ({run.padded_runs - run.num_runs} padding runs)" if run.padded_runs > run.num_runs else "")
    )
    err.print(f"memory (from shapes, before compiling): {run.memory.describe()}")
    err.print("compiling…")
    state = run.compile()
    measured = run.compiled_memory()
    err.print(
        f"compiled in {run.compile_seconds:.1f} s"
        + (f"; memory by XLA's count: {measured / 2**20:,.1f} MiB per device" if measured else "")
    )

    progress = _Progress(config.env_steps, enabled=not args.no_progress and main_process, console=err)
    last_return = [float("nan")]

    def on_chunk(updates_done, point, seconds):
        steps = updates_done * config.batch_size
        recent = point["episode_return"]
        if np.isfinite(recent).any():
            last_return[0] = float(np.nanmean(recent))
        progress.update(steps, steps * run.num_runs / max(seconds, 1e-9), last_return[0])

    try:
        result = run.run(state, on_chunk)
    finally:
        progress.close()
    if not main_process:
        return 0

    command = " ".join(shlex.quote(a) for a in ["ppo-jax"] + sys.argv[1:])
    extra = {
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.devices()[0].platform,
        "host": platform.node(),
        "jax_version": jax.__version__,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "memory_estimate_bytes_per_device": run.memory.per_device_bytes,
    }
    summary = report.write_sweep_dir(out, result, command, extra)
    for rank, p in enumerate(summary.ranking[:3]):
        st = summary.points[p]
        err.print(f"{'best' if rank == 0 else f'#{rank + 1}':>4}: {report.label(result, p)} · final return IQM {report.format_interval(st.iqm)}")
    if summary.comparison is not None:
        err.print(f"P(best > second) = {report.format_interval(summary.comparison.probability, 3)}")
    diverged = int((result.nonfinite != 0).sum())
    if diverged:
        err.print(f"ppo-jax: warning: {diverged} run(s) went non-finite; see {out / 'report.md'}.")
    err.print(
        f"train {result.train_seconds:.1f} s · {result.steps_per_second:,.0f} env steps/s · "
        f"compile {result.compile_seconds:.1f} s"
    )
    print(f"sweep written to {out}")
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

    sweep = sub.add_parser(
        "sweep", help="grid × seeds in one compiled program, with statistics",
        description="Train a grid of traced settings × seeds in one compiled program, split over every device; "
        "write report.md, curves.png, results.csv (tidy) and sweep.json.",
    )
    sweep.add_argument("config", help="YAML preset, e.g. configs/cartpole.yaml")
    sweep.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                       help="a traced setting and its values (repeatable; the grid is their product)")
    sweep.add_argument("--seeds", type=int, default=8, help="seeds per grid point")
    sweep.add_argument("--seed", type=int, default=0, help="first seed (seeds are SEED..SEED+N-1)")
    sweep.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
    sweep.add_argument("--out", help="sweep directory (default: runs/sweep-<config>-<time>)")
    sweep.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    sweep.add_argument("--no-progress", action="store_true", help="no progress output")
    hosts = sweep.add_argument_group("several hosts (jax.distributed)")
    hosts.add_argument("--distributed", action="store_true",
                       help="join a multi-process run; alone, JAX detects the cluster (SLURM, Open MPI, ...)")
    hosts.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0")
    hosts.add_argument("--num-processes", type=int, help="number of processes")
    hosts.add_argument("--process-id", type=int, help="this process, 0..N-1; process 0 writes the files")
    sweep.set_defaults(func=cmd_sweep)
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
