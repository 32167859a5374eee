"""``ppo-jax sweep``: a grid of traced settings × seeds in one compiled program, with statistics."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from ppo_jax.cli import common, finetune
from ppo_jax.cli.common import UserError
from ppo_jax.cli.rundir import default_out, prepare_out_dir


def add_parser(sub) -> None:
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
    finetune.add_arguments(sweep)
    hosts = sweep.add_argument_group("several hosts (jax.distributed)")
    hosts.add_argument("--distributed", action="store_true",
                       help="join a multi-process run; alone, JAX detects the cluster (SLURM, Open MPI, ...)")
    hosts.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0")
    hosts.add_argument("--num-processes", type=int, help="number of processes")
    hosts.add_argument("--process-id", type=int, help="this process, 0..N-1; process 0 writes the files")
    sweep.set_defaults(func=run)


def parse_grid(pairs: Sequence[str]) -> dict:
    """``--grid key=v1,v2`` pairs as {key: [values]}."""
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
        grid[key] = [common.yaml_value(item) for item in items]
    return grid


def check_distributed(args: argparse.Namespace) -> None:
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


def start_distributed(args: argparse.Namespace) -> None:
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


def _plan(args):
    """The grid, seeds and directory, checked before anything compiles."""
    overrides = common.parse_sets(args.set or [])
    grid_values = parse_grid(args.grid or [])
    both = sorted(set(overrides) & set(grid_values))
    if both:
        raise UserError(f"{', '.join(both)}: given by both --set and --grid; keep one.")
    seeds = common.seed_list(args.seeds, args.seed)
    check_distributed(args)
    out = Path(args.out) if args.out else default_out(args.config, prefix="sweep-")
    if args.process_id in (None, 0):
        prepare_out_dir(out, args.overwrite)
    # Before anything starts a JAX backend (validating the env id imports gymnax, which does).
    start_distributed(args)

    from ppo_jax.config import ConfigError, load_config_from
    from ppo_jax.sweeps import make_grid

    try:
        config = load_config_from(args.config, overrides)
        grid = make_grid(config, grid_values)
    except ConfigError as err:
        raise UserError(str(err)) from None
    return grid, seeds, out


def _header(run, err) -> None:
    import jax

    config = run.config
    err.print(
        f"ppo-jax sweep: {config.env_id}, {run.num_points} grid point(s) × {len(run.seeds)} seed(s) = "
        f"{run.num_runs} runs × {config.env_steps:,} env steps, in 1 compiled program on {run.num_devices} "
        f"{jax.devices()[0].platform} device(s)"
        + (f" in {jax.process_count()} processes" if jax.process_count() > 1 else "")
        + (f" ({run.padded_runs - run.num_runs} padding runs)" if run.padded_runs > run.num_runs else "")
    )
    if common.rounding_notice(config):
        err.print(common.rounding_notice(config))
    err.print(f"memory (from shapes, before compiling): {run.memory.describe()}")


def _train(args, run, err, main_process: bool):
    import numpy as np

    from ppo_jax.cli.console import Progress

    config = run.config
    err.print("compiling…")
    state = run.compile()
    measured = run.compiled_memory()
    err.print(
        f"compiled in {run.compile_seconds:.1f} s"
        + (f"; memory by XLA's count: {measured / 2**20:,.1f} MiB per device" if measured else "")
    )
    progress = Progress(config.env_steps, enabled=not args.no_progress and main_process, console=err)
    last_return = [float("nan")]

    def on_chunk(updates_done, point, seconds):
        steps = updates_done * config.batch_size
        recent = point["episode_return"]
        if np.isfinite(recent).any():
            last_return[0] = float(np.nanmean(recent))
        progress.update(steps, steps * run.num_runs / max(seconds, 1e-9), last_return[0])

    try:
        return run.run(state, on_chunk)
    finally:
        progress.close()


def _report(out: Path, result, run, err) -> None:
    from ppo_jax import report

    extra = {**common.environment(), "memory_estimate_bytes_per_device": run.memory.per_device_bytes}
    summary = report.write_sweep_dir(out, result, common.command_line(), extra)
    warning = report.too_few_seeds(len(result.seeds))
    for rank, p in enumerate(summary.ranking[:3]):
        st = summary.points[p]
        err.print(f"{'best' if rank == 0 else f'#{rank + 1}':>4}: {report.label(result, p)} · "
                  f"final return IQM {report.format_interval(st.iqm, 1, warning is None)}")
    if summary.comparison is not None:
        err.print(f"P(best > second) = {report.format_interval(summary.comparison.probability, 3, warning is None)}")
    if warning:
        err.print(f"ppo-jax: warning: {warning}")
    diverged = int((result.nonfinite != 0).sum())
    if diverged:
        err.print(f"ppo-jax: warning: {diverged} run(s) went non-finite; see {out / 'report.md'}.")
    err.print(
        f"train {result.train_seconds:.1f} s · {result.steps_per_second:,.0f} env steps/s · "
        f"compile {result.compile_seconds:.1f} s"
    )


def run(args: argparse.Namespace) -> int:
    grid, seeds, out = _plan(args)

    import jax
    from rich.console import Console

    from ppo_jax import logs
    from ppo_jax.sweeps import SweepRun

    common.enable_compile_cache()
    main_process = jax.process_index() == 0
    tune = finetune.resolve(grid.configs, args)
    sweep_run = SweepRun(grid, seeds, init_from=tune.start, reference=tune.reference)
    err = Console(stderr=True, quiet=not main_process)
    if main_process:
        out.mkdir(parents=True, exist_ok=True)
        logs.write_config(out / "config.yaml", grid.base.to_dict())
    _header(sweep_run, err)
    result = _train(args, sweep_run, err, main_process)
    if not main_process:
        return 0
    _report(out, result, sweep_run, err)
    print(f"sweep written to {out}")
    return 0
