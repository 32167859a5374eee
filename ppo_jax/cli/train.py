"""``ppo-jax train``: train from a YAML config, or continue a stopped run with ``--resume``."""

from __future__ import annotations

import argparse
import shlex
import shutil
from pathlib import Path
from typing import Optional

from ppo_jax.cli import common, options, resume, session
from ppo_jax.cli.common import EXIT_NONFINITE, UserError
from ppo_jax.cli.options import DEFAULT_CHECKPOINTS_PER_RUN
from ppo_jax.cli.rundir import default_out, prepare_out_dir
from ppo_jax.cli.session import Plan
from ppo_jax.finetune import cli as finetune

SCHEDULE_FILE = "schedule.yaml"  # the --schedule a run was started with, for --resume


def add_parser(sub) -> None:
    train = sub.add_parser(
        "train",
        help="train from a YAML config, or resume a run",
        description="Train from a YAML config, or continue a stopped run with --resume.",
    )
    train.add_argument("config", nargs="?", help="YAML preset, e.g. configs/cartpole.yaml")
    train.add_argument(
        "--env",
        metavar="ENV_ID",
        help="train ENV_ID without a preset: defaults chosen by its action type "
        "(see 'ppo-jax settings'; --set changes them)",
    )
    options.add_run_options(
        train,
        seeds_help="number of seeds trained at once (vmapped; default 1)",
        out_help="run directory (default: runs/<config>-<time>)",
        resume_metavar="RUN_DIR",
        resume_help="continue a stopped run from its latest checkpoint",
        checkpoint_help="save a checkpoint every UPDATES updates, at the next chunk boundary "
        f"(default: about {DEFAULT_CHECKPOINTS_PER_RUN} per run; 0: only at the end "
        "and on SIGINT/SIGTERM)",
    )
    train.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard event files")
    train.add_argument(
        "--wandb",
        nargs="?",
        const="online",
        choices=("online", "offline"),
        help="also log to Weights & Biases (needs ppo_jax[wandb]); 'offline' needs no network",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress output")
    finetune.add_arguments(train)
    options.add_cpu_devices(train)
    train.add_argument(
        "--data-parallel",
        type=int,
        metavar="N",
        help="split every seed's envs and minibatches over N devices, gradients averaged "
        "(off by default: on a 2-core CPU it was slower for the CartPole and Breakout presets; "
        "see benchmarks, Cores)",
    )
    train.add_argument(
        "--schedule",
        metavar="FILE",
        help="traced settings that change at given updates (piecewise constant), e.g. a pbt run's "
        "best_schedule.yaml",
    )
    train.set_defaults(func=run)


# ---------------------------------------------------------------------------
# The plan: checked before anything compiles
# ---------------------------------------------------------------------------


def plan_fresh(args) -> Plan:
    from ppo_jax.config import ConfigError, env_defaults, load_config_from

    if (args.config is None) == (args.env is None):
        raise UserError(
            "train: give a CONFIG.yaml or --env ENV_ID (not both) to start a run, "
            "or --resume RUN_DIR to continue one."
        )
    overrides = common.parse_sets(args.set or [])
    try:
        defaults = {} if args.env is None else env_defaults(args.env)
        config = load_config_from(args.config, {**defaults, **overrides})
    except ConfigError as err:
        raise UserError(str(err)) from None
    seeds = common.seed_list(1 if args.seeds is None else args.seeds, 0 if args.seed is None else args.seed)
    out = Path(args.out) if args.out else default_out(args.config or args.env)
    prepare_out_dir(out, args.overwrite)
    every, keep = options.checkpoint_options(args, config)
    schedule = _schedule(args.schedule, config)
    return Plan(config, seeds, out, every, keep, first_command=common.command_line(), schedule=schedule)


def _schedule(path: Optional[str], config) -> Optional[list]:
    from ppo_jax.config import ConfigError
    from ppo_jax.population import load_schedule

    try:
        return None if path is None else load_schedule(path, config)
    except ConfigError as err:
        raise UserError(str(err)) from None


def _refuse_options_with_resume(args) -> None:
    resume.refuse_options(
        args.resume, options.shared_options(args) + [("--env", args.env), ("--schedule", args.schedule)]
    )


def plan_resume(args) -> Plan:
    _refuse_options_with_resume(args)
    run_dir = Path(args.resume)
    update, meta = resume.latest(run_dir, "train")
    saved = resume.saved_config(
        run_dir, update, meta, f"Evaluate it with: ppo-jax eval {shlex.quote(str(run_dir))}"
    )
    every, keep = options.checkpoint_options(args, saved, meta)
    kept = run_dir / SCHEDULE_FILE  # a --schedule run keeps its schedule beside its config
    schedule = _schedule(str(kept), saved) if kept.is_file() else None
    seeds = [int(s) for s in meta["seeds"]]
    return Plan(saved, seeds, run_dir, every, keep, update, meta.get("command", ""), schedule=schedule)


# ---------------------------------------------------------------------------
# Preparing the run
# ---------------------------------------------------------------------------


def _check_space_and_restore(run, plan: Plan, tensorboard: bool):
    """Refuse a disk too small for the run; return the resumed state (None for a fresh run)."""
    from ppo_jax.io import checkpoint

    try:
        run.remaining_plan(plan.start_update)
    except ValueError:
        raise UserError(
            f"--resume {plan.out}: checkpoint {plan.start_update} is not at a chunk boundary of "
            "this version's driver; it cannot be resumed exactly."
        ) from None
    target = run.abstract_state()  # the program the run compiles, not a second build
    per_checkpoint = checkpoint.state_nbytes(target)
    logs_bytes = plan.config.num_updates * len(plan.seeds) * (300 + (600 if tensorboard else 0))
    try:
        checkpoint.check_free_space(
            plan.out,
            per_checkpoint * (plan.keep + 1) + logs_bytes + 2**20,
            f"this run ({plan.keep} checkpoints of {checkpoint._size(per_checkpoint)} + logs)",
        )
    except checkpoint.CheckpointError as err:
        raise UserError(str(err)) from None
    if plan.fresh:
        return None
    try:
        return checkpoint.restore_state(plan.out, plan.start_update, target)
    except checkpoint.CheckpointError as err:
        raise UserError(f"--resume {err}") from None


def _check_data_parallel(config, count: Optional[int]) -> None:
    """``--data-parallel N``: enough devices, and envs and minibatches that split evenly."""
    if count is None:
        return
    import jax

    from ppo_jax.config import ConfigError
    from ppo_jax.sharding import EnvShards
    from ppo_jax.train import check_shards

    if not 1 <= count <= jax.local_device_count():
        raise UserError(
            f"--data-parallel {count}: this process has {jax.local_device_count()} device(s)"
            " (on a CPU: --cpu-devices N sets how many)."
        )
    try:
        check_shards(config, EnvShards(count))
    except ConfigError as err:
        raise UserError(f"--data-parallel {count}: {err}") from None


def _header(plan: Plan, devices: int, data_parallel: Optional[int] = None) -> list[str]:
    import jax

    from ppo_jax.cli.console import header_lines

    config = plan.config
    what = (
        f"ppo-jax: {config.env_id}, {len(plan.seeds)} seed(s) × {config.env_steps:,} env steps"
        if plan.fresh
        else f"ppo-jax: resuming {plan.out} after update {plan.start_update}"
    )
    detail = f"{config.num_updates} updates of {config.num_envs} envs × {config.num_steps} steps"
    if data_parallel is not None:
        detail += (
            f", data-parallel: {config.num_envs // data_parallel} envs on each of {data_parallel} devices"
        )
    split = "the seeds" if data_parallel is None else "each seed's envs"
    return header_lines(what, detail, devices, jax.devices()[0].platform, jax.process_count(), split)


# ---------------------------------------------------------------------------
# Running: callbacks between chunks
# ---------------------------------------------------------------------------


class _Session(session.Session):
    """The host side of a run between chunks: loggers, progress, checkpoints, signals."""

    def __init__(self, plan: Plan, loggers: list, progress, checkpointer, stop):
        meta = {"kind": "train", "config": plan.config.to_dict(), "seeds": plan.seeds}
        super().__init__(plan, progress, checkpointer, stop, {**meta, "num_updates": plan.config.num_updates})
        self.loggers = loggers
        self.history: list = []

    def on_chunk(self, first_update, metrics, seconds):
        import numpy as np

        from ppo_jax.io import logs

        plan = self.plan
        steps = int(metrics["env_steps"][0, -1])
        sps = (steps - plan.start_update * plan.config.batch_size) * len(plan.seeds) / max(seconds, 1e-9)
        logged = {**metrics, "steps_per_second": np.full(metrics["env_steps"].shape, sps)}
        for logger in self.loggers:
            logger.log(first_update, logged)
        self.history.append(metrics)
        recent = logs.recent_return(
            {k: np.concatenate([h[k] for h in self.history[-3:]], axis=1) for k in metrics}
        )
        if np.isfinite(recent):
            self.last_return = recent
        self.progress.update(steps, sps, self.last_return)

    def on_state(self, updates_done, state) -> bool:
        return self.save_if_due(updates_done, lambda: state)

    def close(self) -> None:
        super().close()
        for logger in self.loggers:
            logger.close()


def _train(args, plan: Plan, err):
    """Compile, restore, run every chunk; return (run, session, metrics of the whole run)."""
    import jax
    import numpy as np

    from ppo_jax.cli.loggers import make_loggers
    from ppo_jax.cli.signals import StopOnSignal
    from ppo_jax.driver import ChunkedRun
    from ppo_jax.io import checkpoint, logs

    common.enable_compile_cache()
    tune = finetune.resolve([plan.config], args, resume=None if plan.fresh else plan.out)
    run = ChunkedRun(
        plan.config,
        plan.seeds,
        init_from=tune.start,
        reference=tune.reference,
        data_parallel=args.data_parallel,
        schedule=plan.schedule,
    )
    restored = _check_space_and_restore(run, plan, not args.no_tensorboard)
    if plan.fresh:
        session.start_dir(plan, args.overwrite, stale=("tensorboard",))
        tune.save(plan.out)
        if args.schedule is not None:
            shutil.copyfile(args.schedule, plan.out / SCHEDULE_FILE)
    loggers = make_loggers(
        plan.out,
        plan.seeds,
        plan.config,
        plan.start_update,
        tensorboard=not args.no_tensorboard,
        wandb_mode=args.wandb,
    )
    for line in _header(plan, run.mesh.size, args.data_parallel):
        err.print(line, soft_wrap=True)
    if plan.fresh and common.rounding_notice(plan.config):
        err.print(common.rounding_notice(plan.config))
    err.print("compiling…")
    checkpoint.preload()
    state = run.compile()
    if restored is not None:  # onto the devices (and shardings) the compiled chunks expect
        state = jax.device_put(restored, jax.tree.map(lambda x: x.sharding, state))
    progress = session.progress(plan, not args.no_progress, err)
    with StopOnSignal(err) as stop:
        host = _Session(plan, loggers, progress, session.checkpointer(plan), stop)
        err.print(f"compiled in {run.compile_seconds:.1f} s")
        try:
            state, metrics = run.run(
                state, host.on_chunk, start_update=plan.start_update, on_state=host.on_state
            )
        finally:
            host.close()
    if not plan.fresh:
        earlier = logs.read_metrics(plan.out / "metrics.csv", plan.seeds, plan.start_update)
        metrics = {
            k: np.concatenate([earlier[k].astype(metrics[k].dtype), metrics[k]], axis=1) for k in metrics
        }
    return run, host, metrics


# ---------------------------------------------------------------------------
# After the run: summary, plots, how it ended
# ---------------------------------------------------------------------------


def _summary(plan: Plan, run, host: _Session, metrics) -> dict:
    import numpy as np

    from ppo_jax.io import checkpoint, logs

    config, out, seeds = plan.config, plan.out, plan.seeds
    final = logs.final_returns(metrics)
    env_steps_done = int(metrics["env_steps"][0, -1])
    session_steps = (env_steps_done - plan.start_update * config.batch_size) * len(seeds)
    last = host.checkpointer.last_saved
    summary = {
        "env_id": config.env_id,
        "seeds": seeds,
        "env_steps": env_steps_done,
        "final_return": final,
        "final_return_mean": float(np.nanmean(final)) if np.isfinite(final).any() else None,
        "compile_seconds": run.compile_seconds,
        "train_seconds": run.train_seconds,
        "steps_per_second": session_steps / run.train_seconds,
        # the host's share of train_seconds: fetch + logs + checkpoints (overlapping the next chunk), and waiting
        "host_io_seconds": run.host_times.io,
        "device_wait_seconds": run.host_times.wait,
        "num_updates": config.num_updates,
        "updates_done": run.updates_done,
        "checkpoint": None if last is None else str(checkpoint.checkpoint_dir(out) / str(last)),
        **common.environment(),
        **common.numerics(config),
        "devices": run.mesh.size,  # the seeds (or with data_parallel, each seed's envs) were split over these
        "data_parallel": run.data_parallel,
        "processes": 1,  # train runs in one process (a sweep can span several)
        "command": plan.first_command,
    }
    if not plan.fresh:
        summary["resumed"] = plan.resumed()
    if run.nonfinite is not None:
        summary["stopped"] = {
            "reason": f"non-finite {run.nonfinite.quantity}",
            "seed": run.nonfinite.seed,
            "update": run.nonfinite.update,
        }
    elif (stopped := host.stopped(run)) is not None:
        summary["stopped"] = stopped
    return summary


def _report_end(plan: Plan, run, host: _Session, summary: dict, err) -> int:
    """Say how the run ended and how to continue it; return the exit code."""
    out, last = plan.out, host.checkpointer.last_saved
    resume_hint = f"ppo-jax train --resume {shlex.quote(str(out))}"
    if run.nonfinite is not None:
        bad = run.nonfinite
        kept = (
            f"The last good checkpoint is {summary['checkpoint']} (update {last})."
            if last is not None
            else "No checkpoint was saved before it."
        )
        err.print(
            f"ppo-jax: error: non-finite {bad.quantity} at update {bad.update} (seed {bad.seed}); "
            f"training stopped at the end of that chunk, whose state was not saved. {kept} "
            f"Metrics up to it are in {out / 'metrics.csv'}. "
            "Lower learning_rate or max_grad_norm, or turn on normalize_obs / normalize_reward.",
            soft_wrap=True,
        )
        return EXIT_NONFINITE
    code = host.report_interruption(
        err, run, what="Training", saved=f"checkpoint saved in {summary['checkpoint']}", hint=resume_hint
    )
    if code is not None:
        return code
    if last is not None:
        err.print(f"checkpoint: {summary['checkpoint']}")
    return 0


def run(args: argparse.Namespace) -> int:
    common.set_cpu_devices(args.cpu_devices)  # before anything starts JAX's backend
    from rich.console import Console

    from ppo_jax.cli.loggers import check_wandb
    from ppo_jax.io import logs, report

    plan = plan_fresh(args) if args.resume is None else plan_resume(args)
    _check_data_parallel(plan.config, args.data_parallel)
    check_wandb(args.wandb)
    err = Console(stderr=True)
    run_, host, metrics = _train(args, plan, err)
    summary = _summary(plan, run_, host, metrics)
    config, out = plan.config, plan.out
    logs.write_summary(out / "summary.json", summary)
    logs.plot_curves(
        out / "curves.png", metrics, plan.seeds, title=f"{config.env_id} — {len(plan.seeds)} seed(s)"
    )
    err.print(
        f"final return per seed (last {int(logs.FINAL_FRACTION * 100)}% of training): "
        + ", ".join(f"{x:.{report.return_digits(x)}f}" for x in summary["final_return"])
    )
    err.print(
        f"train {run_.train_seconds:.1f} s · {summary['steps_per_second']:,.0f} env steps/s · "
        f"compile {run_.compile_seconds:.1f} s"
    )
    print(f"run written to {out}")
    return _report_end(plan, run_, host, summary, err)
