"""``ppo-jax sweep``: a grid of traced settings × seeds in one compiled program, with statistics."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Optional, Sequence

from ppo_jax.cli import common, options, resume, session, sweep_rlhf
from ppo_jax.cli.common import UserError
from ppo_jax.cli.options import DEFAULT_CHECKPOINTS_PER_RUN
from ppo_jax.cli.rundir import default_out, prepare_out_dir
from ppo_jax.cli.session import Plan
from ppo_jax.finetune import cli as finetune

DEFAULT_SEEDS = 8


def add_parser(sub) -> None:
    sweep = sub.add_parser(
        "sweep",
        help="grid × seeds in one compiled program, with statistics",
        description="Train a grid of traced settings × seeds in one compiled program, split over every device; "
        "write report.md, curves.png, results.csv (tidy) and sweep.json.",
    )
    sweep.add_argument("config", nargs="?", help="YAML preset, e.g. configs/cartpole.yaml")
    sweep.add_argument(
        "--grid",
        action="append",
        metavar="KEY=V1,V2,...",
        help="a traced setting and its values (repeatable; the grid is their product)",
    )
    options.add_run_options(
        sweep,
        seeds_help=f"seeds per grid point (default {DEFAULT_SEEDS})",
        out_help="sweep directory (default: runs/sweep-<config>-<time>)",
        resume_metavar="SWEEP_DIR",
        resume_help="continue a stopped sweep from its latest checkpoint",
        checkpoint_help="checkpoint every run of the sweep every UPDATES updates, at the next log point "
        f"(default: about {DEFAULT_CHECKPOINTS_PER_RUN} per sweep; 0: only at the end "
        "and on SIGINT/SIGTERM)",
    )
    sweep.add_argument("--no-progress", action="store_true", help="no progress output")
    sweep.add_argument(
        "--bar",
        type=float,
        metavar="RETURN",
        help="report per grid point how many seeds reach this final return (e.g. 475 for CartPole)",
    )
    finetune.add_arguments(sweep)
    sweep_rlhf.add_arguments(sweep)
    options.add_cpu_devices(sweep)
    hosts = sweep.add_argument_group("several hosts (jax.distributed)")
    hosts.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run; alone, JAX detects the cluster (SLURM, Open MPI, ...)",
    )
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
        raise UserError(
            f"--process-id must lie in [0, {(args.num_processes or 1) - 1}], got {args.process_id}."
        )


def start_distributed(args: argparse.Namespace) -> None:
    """Join the other processes of a multi-host sweep (``jax.distributed``)."""
    if not args.distributed and args.coordinator is None:
        return
    import jax

    if not jax.config.jax_enable_preemption_service:  # type: ignore[attr-defined]  # a flag
        raise UserError(
            "sweep: JAX's preemption service is off (jax_enable_preemption_service, e.g. "
            "JAX_ENABLE_PREEMPTION_SERVICE=false); a sweep over several processes needs it to stop every "
            "process at the same log point on SIGTERM or SIGINT. Turn it back on."
        )
    # Collectives between CPU processes (the gather of per-run results) need gloo;
    # the setting is ignored on GPU and TPU.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=args.coordinator, num_processes=args.num_processes, process_id=args.process_id
    )


def _plan_fresh(args) -> Plan:
    """The grid, seeds and directory, checked before anything compiles."""
    if args.config is None:
        raise UserError("sweep: give a CONFIG.yaml to start a sweep, or --resume SWEEP_DIR to continue one.")
    overrides = common.parse_sets(args.set or [])
    grid_values = parse_grid(args.grid or [])
    both = sorted(set(overrides) & set(grid_values))
    if both:
        raise UserError(f"{', '.join(both)}: given by both --set and --grid; keep one.")
    seeds = common.seed_list(
        DEFAULT_SEEDS if args.seeds is None else args.seeds, 0 if args.seed is None else args.seed
    )
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
    every, keep = options.checkpoint_options(args, config)
    return Plan(grid, seeds, out, every, keep, first_command=common.command_line())


def _plan_resume(args) -> Plan:
    """The stopped sweep's own grid, seeds and directory, from its latest checkpoint."""
    resume.refuse_options(args.resume, options.shared_options(args) + [("--grid", args.grid)], what="sweep")
    # A sweep over several processes resumes over several: every process restores its own shards.
    check_distributed(args)
    start_distributed(args)
    out = Path(args.resume)
    update, meta = resume.latest(out, "sweep")
    config = resume.saved_config(
        out, update, meta, f"Its results are in {out / 'results.csv'}.", what="sweep"
    )

    from ppo_jax.config import ConfigError
    from ppo_jax.sweeps import make_grid

    try:
        grid = make_grid(config, meta["grid"])
    except ConfigError as err:
        raise UserError(f"--resume {out}: the saved grid: {err}") from None
    every, keep = options.checkpoint_options(args, config, meta)
    return Plan(
        grid,
        [int(s) for s in meta["seeds"]],
        out,
        every,
        keep,
        update,
        meta.get("command", ""),
        log_points_done=int(meta["log_points_done"]),
        devices=int(meta["devices"]),
        log_plan=meta.get("plan"),
    )


def _header(run, plan: Plan, err) -> None:
    import jax

    from ppo_jax.cli.console import header_lines

    config = run.config
    what = (
        f"ppo-jax sweep: {config.env_id}, {run.num_points} grid point(s) × {len(run.seeds)} seed(s) = "
        f"{run.num_runs} runs"
    )
    if not plan.fresh:
        what = f"ppo-jax sweep: resuming {plan.out} after update {plan.start_update}: {what[len('ppo-jax sweep: ') :]}"
    detail = f"each {config.env_steps:,} env steps, all in 1 compiled program"
    if run.padded_runs > run.num_runs:
        detail += f" (+{run.padded_runs - run.num_runs} padding runs)"
    platform, processes = jax.devices()[0].platform, jax.process_count()
    for line in header_lines(what, detail, run.num_devices, platform, processes, split="the runs"):
        err.print(line, soft_wrap=True)
    if plan.fresh and common.rounding_notice(config):
        err.print(common.rounding_notice(config))
    err.print(f"memory (from shapes, before compiling): {run.memory.describe()}")


class _Session(session.Session):
    """The host side of a sweep between log points: progress, checkpoints, signals."""

    def __init__(self, plan: Plan, run, progress, checkpointer, stop):
        meta = {
            "kind": "sweep",
            "config": plan.config.to_dict(),
            "grid": {k: list(v) for k, v in plan.runs.axes.items()},
            "seeds": plan.seeds,
            "num_updates": run.config.num_updates,
            "devices": run.num_devices,
            "plan": run.plan,
        }
        super().__init__(plan, progress, checkpointer, stop, meta)
        self.run = run

    def on_chunk(self, updates_done, point, seconds):
        import numpy as np

        steps = updates_done * self.run.config.batch_size
        if np.isfinite(point["episode_return"]).any():
            self.last_return = float(np.nanmean(point["episode_return"]))
        done_here = steps - self.plan.start_update * self.run.config.batch_size
        self.progress.update(steps, done_here * self.run.num_runs / max(seconds, 1e-9), self.last_return)

    def on_state(self, updates_done, state, pieces) -> bool:
        tree = lambda: self.run.checkpoint_tree(state, pieces)
        return self.save_if_due(updates_done, tree, log_points_done=len(pieces))


def _restore(run, plan: Plan, state):
    """Refuse a disk too small for the checkpoints; return (state, log points) to start from."""
    import jax

    from ppo_jax.sweeps import log_points_of

    restored = resume.restore_log_points_run(run, plan, state, "this sweep")
    if restored is None:
        return state, []
    runs = jax.device_put(restored["runs"], jax.tree.map(lambda x: x.sharding, state))
    return runs, log_points_of(restored)


def _train(args, plan: Plan, run, err, main_process: bool):
    """Compile, restore, run every log point; return (result, session).

    Over several processes, every process saves and restores its own devices' share
    of each checkpoint (orbax's multi-host checkpoints), and they all stop at the same
    log point after SIGTERM or SIGINT reaches any of them (``session.PreemptionStop``).
    """
    import jax

    from ppo_jax.cli.signals import StopOnSignal

    err.print("compiling…")
    state = run.compile()
    measured = run.compiled_memory()
    err.print(
        f"compiled in {run.compile_seconds:.1f} s"
        + (f"; memory by XLA's count: {measured / 2**20:,.1f} MiB per device" if measured else "")
    )
    state, pieces = _restore(run, plan, state)
    progress = session.progress(plan, not args.no_progress and main_process, err)
    stop = StopOnSignal(err) if jax.process_count() == 1 else session.PreemptionStop(err)
    with stop:
        host = _Session(plan, run, progress, session.checkpointer(plan), stop)
        try:
            result = run.run(state, host.on_chunk, pieces=pieces, on_state=host.on_state)
        finally:
            host.close()
    return result, host


def _report(plan: Plan, result, run, host: _Session, err, bar: Optional[float] = None) -> None:
    """Write the sweep's files; print its ranking, or mark a partial report as such."""
    from ppo_jax.io import logs, report

    out = plan.out
    extra = {
        **common.environment(),
        **common.numerics(run.config),
        "memory_estimate_bytes_per_device": run.memory.per_device_bytes,
        "num_updates": run.config.num_updates,
        "updates_done": run.updates_done,
        "host_io_seconds": run.host_times.io,
        "device_wait_seconds": run.host_times.wait,
    }
    if not plan.fresh:
        extra["resumed"] = plan.resumed()
    stopped = host.stopped(run)
    if stopped:
        extra["stopped"] = stopped
    command = plan.first_command or common.command_line()
    summary = report.write_sweep_dir(out, result, command, extra, bar=bar)
    if stopped:
        note = (
            f"**Partial: stopped ({stopped['reason']}) after update {run.updates_done} of "
            f"{run.config.num_updates}; final returns are empty until the sweep ends. Continue with "
            f"`ppo-jax sweep --resume {out}`.**\n\n"
        )
        logs.write_atomic(out / "report.md", note + (out / "report.md").read_text())
        return
    _print_ranking(result, summary, err, bar)
    _print_warnings(result, out, err)
    err.print(
        f"train {result.train_seconds:.1f} s · {result.steps_per_second:,.0f} env steps/s · "
        f"compile {result.compile_seconds:.1f} s"
    )


def _print_ranking(result, summary, err, bar: Optional[float]) -> None:
    """The best three grid points with their final-return IQM, and how sure the order of the first two is."""
    from ppo_jax.io import report

    warning = report.too_few_seeds(len(result.seeds))
    for rank, p in enumerate(summary.ranking[:3]):
        st = summary.points[p]
        iqm = report.format_interval(st.iqm, report.return_digits(st.iqm.value), warning is None)
        reached = (
            ""
            if bar is None
            else f" · {report.seeds_at_or_above(result, p, bar)}/{len(result.seeds)} ≥ {bar:g}"
        )
        err.print(
            f"rank {rank + 1}: grid point {p} ({report.label(result, p)}) · final return IQM {iqm}{reached}"
        )
    if report.is_tie(summary):
        err.print("the best two tie on IQM: these seeds do not order them")
    elif summary.comparison is not None:
        err.print(
            f"P(best > second) = {report.format_interval(summary.comparison.probability, 3, warning is None)}"
        )
    if warning:
        err.print(f"ppo-jax: warning: {warning}")


def _print_warnings(result, out: Path, err) -> None:
    """Runs whose episodes were cut too soon, and runs that went non-finite."""
    import numpy as np

    dropped = np.asarray(result.curves["cuts_dropped"])
    if np.nanmax(dropped, initial=0.0) > 0:
        err.print(
            f"ppo-jax: warning: {int((np.nan_to_num(dropped) > 0).any(-1).sum())} run(s) had episodes cut by the "
            "time limit sooner than the env's declared limit allows (metric cuts_dropped); those steps were "
            "bootstrapped from the next episode's reset. Declare the env's true limit."
        )
    diverged = int((result.nonfinite != 0).sum())
    if diverged:
        err.print(f"ppo-jax: warning: {diverged} run(s) went non-finite; see {out / 'report.md'}.")


def _end(plan: Plan, run, host: _Session, err) -> int:
    """Say how the sweep ended and how to continue it; return the exit code."""
    import jax

    hint = f"ppo-jax sweep --resume {shlex.quote(str(plan.out))}"
    if jax.process_count() > 1:
        hint += (
            " (on every process, with its --coordinator, --num-processes and --process-id, or --distributed)"
        )
    last = host.checkpointer.last_saved
    saved = (
        f"every run's state saved in {plan.out / 'checkpoints' / str(last)}; "
        f"results so far in {plan.out / 'results.csv'}"
    )
    code = host.report_interruption(err, run, what="The sweep", saved=saved, hint=hint)
    return 0 if code is None else code


def run(args: argparse.Namespace) -> int:
    common.set_cpu_devices(args.cpu_devices)  # before anything starts JAX's backend
    if sweep_rlhf.wanted(args):
        return sweep_rlhf.run(args, DEFAULT_SEEDS)
    plan = _plan_fresh(args) if args.resume is None else _plan_resume(args)

    import jax
    from rich.console import Console

    from ppo_jax.sweeps import SweepRun

    common.enable_compile_cache()
    main_process = jax.process_index() == 0
    tune = finetune.resolve(plan.runs.configs, args, resume=None if plan.fresh else plan.out)
    sweep_run = SweepRun(plan.runs, plan.seeds, init_from=tune.start, reference=tune.reference)
    session.check_layout(plan, sweep_run, "sweep")
    err = Console(stderr=True, quiet=not main_process)
    if main_process and plan.fresh:
        session.start_dir(plan, args.overwrite)
        tune.save(plan.out)
    _header(sweep_run, plan, err)
    result, host = _train(args, plan, sweep_run, err, main_process)
    if main_process:  # process 0 writes the files; every process exits with how the sweep ended
        _report(plan, result, sweep_run, host, err, getattr(args, "bar", None))
        print(f"sweep written to {plan.out}")
    return _end(plan, sweep_run, host, err)
