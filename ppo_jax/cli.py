"""``ppo-jax``: the command line. IO only; training is ``ppo_jax.driver``.

    ppo-jax train CONFIG.yaml [--seeds N] [--set key=value ...] [--out DIR]
    ppo-jax train --resume RUN_DIR
    ppo-jax eval RUN_DIR [--episodes N] [--stochastic] [--seed S]
    ppo-jax render RUN_DIR --out policy.gif [--seed S] [--max-steps N]
    ppo-jax sweep CONFIG.yaml --grid key=v1,v2 [--grid ...] [--seeds N] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
import platform
import shlex
import shutil
import signal
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

EXIT_USAGE = 2
EXIT_NONFINITE = 3
EXIT_CHECKPOINT = 4


class UserError(Exception):
    """Bad input from the user: printed without a traceback, exit code 2."""


def _parse_sets(pairs: Sequence[str]) -> dict:
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set {pair!r}: expected key=value, for example --set learning_rate=3e-4")
        key, raw = pair.split("=", 1)
        overrides[key.strip()] = _yaml_value(raw)
    return overrides


def _yaml_value(raw: str):
    """A command-line value read as YAML (numbers, null, lists), or the text itself."""
    import yaml

    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw


def _seed_list(num_seeds: int, first_seed: int) -> list[int]:
    if num_seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {num_seeds}.")
    if first_seed < 0:
        raise UserError(f"--seed must be ≥ 0, got {first_seed}.")
    return list(range(first_seed, first_seed + num_seeds))


def _environment() -> dict:
    """Where and when a run ran, for its summary."""
    import jax

    return {
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.devices()[0].platform,
        "host": platform.node(),
        "jax_version": jax.__version__,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


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

    def __init__(self, total_steps: int, enabled: bool, console, start: int = 0):
        self.console = console
        self.total = total_steps
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self._next_report = (math.floor(10 * start / total_steps) + 1) / 10  # a resumed run starts late
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
            self.task = self.bar.add_task("train", total=total_steps, completed=start, sps="-", ret="-")
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


DEFAULT_CHECKPOINTS_PER_RUN = 10
DEFAULT_KEEP = 3


@dataclasses.dataclass
class _Plan:
    """What ``train`` will do, settled (and checked) before anything compiles."""

    config: Any
    seeds: list[int]
    out: Path
    checkpoint_every: int  # updates between periodic checkpoints; 0: only at the end or on a signal
    keep: int
    start_update: int = 0  # > 0: resuming from the checkpoint after this many updates
    first_command: str = ""  # the command that started the run (kept across resumes)


def _command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["ppo-jax"] + sys.argv[1:])


def _checkpoint_options(args, config, saved: Optional[dict] = None) -> tuple[int, int]:
    saved = saved or {}
    every = args.checkpoint_every if args.checkpoint_every is not None else saved.get("checkpoint_every")
    if every is None:
        every = max(1, math.ceil(config.num_updates / DEFAULT_CHECKPOINTS_PER_RUN))
    keep = args.keep if args.keep is not None else saved.get("keep", DEFAULT_KEEP)
    if every < 0:
        raise UserError(f"--checkpoint-every must be ≥ 0 updates (0: only at the end), got {every}.")
    if keep < 1:
        raise UserError(f"--keep must be at least 1 checkpoint, got {keep}.")
    return int(every), int(keep)


def _plan_fresh(args) -> _Plan:
    from ppo_jax.config import ConfigError, load_config

    if args.config is None:
        raise UserError("train: give a CONFIG.yaml to start a run, or --resume RUN_DIR to continue one.")
    overrides = _parse_sets(args.set or [])
    try:
        config = load_config(args.config, **overrides)
    except ConfigError as err:
        raise UserError(str(err)) from None
    seeds = _seed_list(1 if args.seeds is None else args.seeds, 0 if args.seed is None else args.seed)
    out = Path(args.out) if args.out else _default_out(args.config)
    _prepare_out_dir(out, args.overwrite)
    every, keep = _checkpoint_options(args, config)
    return _Plan(config, seeds, out, every, keep, first_command=_command_line())


def _plan_resume(args) -> _Plan:
    from ppo_jax import checkpoint
    from ppo_jax.config import ConfigError, from_dict, load_config

    given = [
        name
        for name, value in (
            ("CONFIG", args.config), ("--set", args.set), ("--seeds", args.seeds), ("--seed", args.seed),
            ("--out", args.out), ("--overwrite", args.overwrite or None),
            ("--init-from", args.init_from), ("--init-seed", args.init_seed), ("--kl-ref", args.kl_ref),
        )
        if value is not None
    ]
    if given:
        raise UserError(
            f"--resume {args.resume}: {', '.join(given)} cannot be combined with --resume; the config, seeds "
            "and directory are the run's own. To change settings, start a new run."
        )
    run_dir = Path(args.resume)
    try:
        update, meta = checkpoint.latest_checkpoint(run_dir)
    except checkpoint.RunDirError as err:
        raise UserError(f"--resume {err}") from None
    if not os.access(run_dir, os.W_OK) or not os.access(checkpoint.checkpoint_dir(run_dir), os.W_OK):
        raise UserError(f"--resume {run_dir}: the run directory is not writable; a resumed run appends to it.")
    try:
        saved = from_dict(meta["config"], where=f"{run_dir}/checkpoints/{update}")
        current = load_config(run_dir / "config.yaml")
    except ConfigError as err:
        raise UserError(f"--resume {run_dir}: {err}") from None
    if current.env_id != saved.env_id:
        raise UserError(
            f"--resume {run_dir}: config.yaml says env_id {current.env_id!r} but the checkpoint belongs to "
            f"{saved.env_id!r}; this directory holds another env's run. Restore config.yaml or start a new run."
        )
    changed = {k: (v, getattr(current, k)) for k, v in saved.to_dict().items() if current.to_dict()[k] != v}
    if changed:
        details = "; ".join(f"'{k}' was {a!r}, now {b!r}" for k, (a, b) in changed.items())
        raise UserError(
            f"--resume {run_dir}: config.yaml was edited after the checkpoint ({details}). A run resumes with "
            "the settings it started with: restore config.yaml, or start a new run with the new settings."
        )
    if update >= saved.num_updates:
        raise UserError(
            f"--resume {run_dir}: the run is finished ({update} of {saved.num_updates} updates); nothing to "
            f"resume. Evaluate it with: ppo-jax eval {shlex.quote(str(run_dir))}"
        )
    every, keep = _checkpoint_options(args, saved, meta)
    plan = _Plan(saved, [int(s) for s in meta["seeds"]], run_dir, every, keep, update,
                 meta.get("command", ""))
    return plan


class _StopOnSignal:
    """SIGINT/SIGTERM ask the run to stop after the current chunk; a second one aborts."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, console):
        self.console = console
        self.signum: Optional[int] = None

    def __enter__(self):
        self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            self.__exit__()
            raise KeyboardInterrupt
        self.signum = signum
        self.console.print(
            f"ppo-jax: {signal.Signals(signum).name}: finishing the current chunk and saving a checkpoint "
            "(send it again to abort without saving)",
            soft_wrap=True,
        )

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _make_loggers(args, plan: _Plan, fresh: bool) -> list:
    from ppo_jax import logs

    loggers = [logs.MetricsCSV(plan.out / "metrics.csv", plan.seeds, keep_before=None if fresh else plan.start_update)]
    if not args.no_tensorboard:
        purge = None if fresh else plan.start_update * plan.config.batch_size + 1
        loggers.append(logs.TensorBoardLogger(plan.out / "tensorboard", plan.seeds, purge_step=purge))
    if args.wandb:
        name = plan.out.name if fresh else f"{plan.out.name}-from-{plan.start_update}"
        try:
            loggers.append(logs.WandbLogger(plan.out, plan.seeds, name=name, mode=args.wandb))
        except Exception as err:  # wandb's own errors: no key, no network in online mode
            for logger in loggers:
                logger.close()
            raise UserError(f"--wandb {args.wandb}: could not start a W&B run: {err}. "
                            "Use --wandb offline to log without a network.") from None
    hparams = {**plan.config.to_dict(), "num_seeds": len(plan.seeds)}
    for logger in loggers:
        logger.log_hparams(hparams)
    return loggers


def cmd_train(args: argparse.Namespace) -> int:
    fresh = args.resume is None
    plan = _plan_fresh(args) if fresh else _plan_resume(args)
    if args.wandb:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise UserError(
                "--wandb: Weights & Biases is not installed; pip install 'ppo_jax[wandb]' (or drop --wandb)."
            ) from None

    import jax
    import numpy as np

    from ppo_jax import checkpoint, logs
    from ppo_jax.driver import ChunkedRun
    from ppo_jax.policy import abstract_state

    config, seeds, out = plan.config, plan.seeds, plan.out
    _enable_compile_cache()
    fine_tune = _fine_tune([config], args, resume=None if fresh else out)
    run = ChunkedRun(config, seeds, init_from=fine_tune.start, reference=fine_tune.reference)
    try:
        run.remaining_plan(plan.start_update)
    except ValueError:
        raise UserError(f"--resume {out}: checkpoint {plan.start_update} is not at a chunk boundary of this "
                        "version's driver; it cannot be resumed exactly.") from None
    target = abstract_state(run.program, seeds)  # the program the run compiles, not a second build
    per_checkpoint = checkpoint.state_nbytes(target)
    logs_bytes = config.num_updates * len(seeds) * (300 + (0 if args.no_tensorboard else 600))
    try:
        checkpoint.check_free_space(out, per_checkpoint * (plan.keep + 1) + logs_bytes + 2**20,
                                    f"this run ({plan.keep} checkpoints of {checkpoint._size(per_checkpoint)} + logs)")
    except checkpoint.CheckpointError as err:
        raise UserError(str(err)) from None
    restored = None
    if not fresh:
        try:
            restored = checkpoint.restore_state(out, plan.start_update, target)
        except checkpoint.CheckpointError as err:
            raise UserError(f"--resume {err}") from None

    if fresh:
        out.mkdir(parents=True, exist_ok=True)
        if args.overwrite:  # a previous run's checkpoints would be taken for this one's
            for stale in (checkpoint.CHECKPOINT_DIR, "tensorboard"):
                if (out / stale).is_dir():
                    shutil.rmtree(out / stale)
        logs.write_config(out / "config.yaml", config.to_dict())
        fine_tune.save(out)

    from rich.console import Console

    err = Console(stderr=True)
    loggers = _make_loggers(args, plan, fresh)
    verb = "ppo-jax" if fresh else f"ppo-jax: resuming {out} after update {plan.start_update},"
    err.print(
        f"{verb} {config.env_id}, {len(seeds)} seed(s) × {config.env_steps:,} env steps "
        f"({config.num_updates} updates of {config.num_envs}×{config.num_steps}) on {jax.devices()[0].platform}"
    )
    err.print("compiling…")
    state = run.compile()
    if restored is not None:
        # Onto the devices (and shardings) the compiled chunks expect.
        state = jax.device_put(restored, jax.tree.map(lambda x: x.sharding, state))

    checkpointer = checkpoint.Checkpointer(out, plan.keep)
    checkpointer.last_saved = plan.start_update or None
    meta = {
        "config": config.to_dict(),
        "seeds": seeds,
        "num_updates": config.num_updates,
        "checkpoint_every": plan.checkpoint_every,
        "keep": plan.keep,
        "command": plan.first_command,
    }
    progress = _Progress(config.env_steps, enabled=not args.no_progress, console=err,
                         start=plan.start_update * config.batch_size)
    history = []
    last_return = [float("nan")]  # long episodes (Freeway: 2,500 steps) skip many chunks
    failure: list = []

    def on_chunk(first_update, metrics, seconds):
        steps = int(metrics["env_steps"][0, -1])
        sps = (steps - plan.start_update * config.batch_size) * len(seeds) / max(seconds, 1e-9)
        logged = {**metrics, "steps_per_second": np.full(metrics["env_steps"].shape, sps)}
        for logger in loggers:
            logger.log(first_update, logged)
        history.append(metrics)
        recent = logs.recent_return({k: np.concatenate([h[k] for h in history[-3:]], axis=1) for k in metrics})
        if np.isfinite(recent):
            last_return[0] = recent
        progress.update(steps, sps, last_return[0])

    with _StopOnSignal(err) as stop:

        def on_state(updates_done, state):
            last = checkpointer.last_saved or 0
            due = (
                stop.signum is not None
                or updates_done == config.num_updates
                or (plan.checkpoint_every > 0 and updates_done - last >= plan.checkpoint_every)
            )
            if due:
                try:
                    checkpointer.save(updates_done, state, meta)
                except checkpoint.CheckpointError as error:
                    failure.append(error)
                    return True
            return stop.signum is not None

        err.print(f"compiled in {run.compile_seconds:.1f} s")
        try:
            state, metrics = run.run(state, on_chunk, start_update=plan.start_update, on_state=on_state)
        finally:
            progress.close()
            for logger in loggers:
                logger.close()
            checkpointer.close()

    if not fresh:
        earlier = logs.read_metrics(out / "metrics.csv", seeds, plan.start_update)
        metrics = {k: np.concatenate([earlier[k].astype(metrics[k].dtype), metrics[k]], axis=1) for k in metrics}
    final = logs.final_returns(metrics)
    env_steps_done = int(metrics["env_steps"][0, -1])
    session_steps = (env_steps_done - plan.start_update * config.batch_size) * len(seeds)
    last_checkpoint = checkpointer.last_saved
    summary = {
        "env_id": config.env_id,
        "seeds": seeds,
        "env_steps": env_steps_done,
        "final_return": final,
        "final_return_mean": float(np.nanmean(final)) if np.isfinite(final).any() else None,
        "compile_seconds": run.compile_seconds,
        "train_seconds": run.train_seconds,
        "steps_per_second": session_steps / run.train_seconds,
        "num_updates": config.num_updates,
        "updates_done": run.updates_done,
        "checkpoint": None if last_checkpoint is None else str(checkpoint.checkpoint_dir(out) / str(last_checkpoint)),
        **_environment(),
        "command": plan.first_command,
    }
    if not fresh:
        summary["resumed"] = {"from_update": plan.start_update, "command": _command_line()}
    if run.nonfinite is not None:
        summary["stopped"] = {
            "reason": f"non-finite {run.nonfinite.quantity}",
            "seed": run.nonfinite.seed,
            "update": run.nonfinite.update,
        }
    elif failure:
        summary["stopped"] = {"reason": "checkpoint write failed", "update": run.updates_done}
    elif run.stopped_early:
        summary["stopped"] = {"reason": stop.name, "update": run.updates_done}
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
    resume_hint = f"ppo-jax train --resume {shlex.quote(str(out))}"
    if run.nonfinite is not None:
        bad = run.nonfinite
        kept = (
            f"The last good checkpoint is {summary['checkpoint']} (update {last_checkpoint})."
            if last_checkpoint is not None
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
    if failure:
        err.print(f"ppo-jax: error: {failure[0]}. Training stopped at update {run.updates_done}.", soft_wrap=True)
        if last_checkpoint is not None:
            err.print(f"Free some space, then resume with: {resume_hint}", soft_wrap=True)
        return EXIT_CHECKPOINT
    if run.stopped_early:
        err.print(
            f"ppo-jax: stopped by {stop.name} after update {run.updates_done} of {config.num_updates}; "
            f"checkpoint saved in {summary['checkpoint']}.\nResume with: {resume_hint}",
            soft_wrap=True,
        )
        return 128 + int(stop.signum)
    if last_checkpoint is not None:
        err.print(f"checkpoint: {summary['checkpoint']}")
    return 0


def _load_run_or_exit(run_dir: str):
    from ppo_jax.checkpoint import RunDirError
    from ppo_jax.config import ConfigError
    from ppo_jax.policy import load_run

    try:
        return load_run(run_dir)
    except (RunDirError, ConfigError) as err:
        raise UserError(str(err)) from None


def cmd_eval(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise UserError(f"--episodes must be at least 1, got {args.episodes}.")
    run = _load_run_or_exit(args.run_dir)
    from ppo_jax import logs
    from ppo_jax.evaluate import evaluate_run

    result = evaluate_run(run, num_episodes=args.episodes, stochastic=args.stochastic, seed=args.seed)
    kind = "stochastic" if args.stochastic else "deterministic (mode)"
    print(f"{run.config.env_id} after {run.update} updates ({result['env_steps']:,} env steps/seed), "
          f"{args.episodes} episodes per seed, {kind} actions, obs normalization: {result['obs_normalization']}")
    for entry in result["per_seed"]:
        print(f"  seed {entry['seed']}: {entry['mean']:.1f} ± {entry['std']:.1f}")
    print(f"  all seeds: {result['mean']:.1f} ± {result['std_between_seeds']:.1f} (std between seed means)")
    logs.write_summary(Path(args.run_dir) / "eval.json", result)
    print(f"written to {Path(args.run_dir) / 'eval.json'}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from ppo_jax import render

    out = Path(args.out)
    if out.suffix.lower() != ".gif":
        raise UserError(f"--out {out}: render writes a GIF; give a path ending in .gif.")
    if args.max_steps is not None and args.max_steps < 1:
        raise UserError(f"--max-steps must be at least 1, got {args.max_steps}.")
    if not out.parent.exists():
        raise UserError(f"--out {out}: directory {out.parent} does not exist.")
    from ppo_jax.checkpoint import RunDirError, latest_checkpoint

    try:
        env_id = latest_checkpoint(args.run_dir)[1]["config"]["env_id"]
    except RunDirError as err:
        raise UserError(str(err)) from None
    if env_id not in render.DRAWABLE:
        raise UserError(
            f"render: cannot draw {env_id}; the envs gymnax can draw are {', '.join(render.DRAWABLE)}. "
            "Use 'ppo-jax eval' for its returns."
        )
    run = _load_run_or_exit(args.run_dir)
    if args.train_seed is not None and args.train_seed not in run.seeds:
        raise UserError(f"--train-seed {args.train_seed}: not a seed of this run; its seeds are {run.seeds}.")
    import numpy as np

    from ppo_jax import logs

    max_steps = args.max_steps or run.spec.max_episode_steps
    states, rewards, ended = render.record_episode(run, args.train_seed, args.seed, max_steps, args.stochastic)
    frames = render.draw_frames(run.config.env_id, states, rewards)
    logs.write_atomic(out, render.gif_bytes(run.config.env_id, frames))
    how = "episode ended" if ended else f"cut at --max-steps {max_steps}"
    print(f"{out}: {len(frames)} frames, {len(rewards)} steps ({how}), return {float(np.sum(rewards)):.1f}")
    return 0


def _parse_grid(pairs: Sequence[str]) -> dict:
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
        grid[key] = [_yaml_value(item) for item in items]
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
    seeds = _seed_list(args.seeds, args.seed)
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
    fine_tune = _fine_tune(grid.configs, args)
    run = SweepRun(grid, seeds, init_from=fine_tune.start, reference=fine_tune.reference)

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

    extra = {**_environment(), "memory_estimate_bytes_per_device": run.memory.per_device_bytes}
    summary = report.write_sweep_dir(out, result, _command_line(), extra)
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


def _fine_tune(configs, args, resume=None):
    """--init-from / --init-seed / --kl-ref, loaded and checked before anything compiles."""
    from ppo_jax.config import ConfigError
    from ppo_jax.reference import for_run

    try:
        return for_run(configs, args.init_from, args.init_seed, args.kl_ref, resume=resume)
    except ConfigError as err:
        raise UserError(str(err)) from None


def _add_fine_tune_arguments(parser) -> None:
    parser.add_argument("--init-from", metavar="RUN_DIR",
                        help="start from that run's network and normalization statistics (fresh optimizer)")
    parser.add_argument("--init-seed", type=int, metavar="S", help="which seed of the --init-from run (default: its first)")
    parser.add_argument("--kl-ref", metavar="RUN_DIR",
                        help="reference policy of the KL penalty kl_ref_coef (default: the --init-from run)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ppo-jax", description="PPO in pure, jitted JAX on gymnax.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train from a YAML config, or resume a run",
                           description="Train from a YAML config, or continue a stopped run with --resume.")
    train.add_argument("config", nargs="?", help="YAML preset, e.g. configs/cartpole.yaml")
    train.add_argument("--seeds", type=int, help="number of seeds trained at once (vmapped; default 1)")
    train.add_argument("--seed", type=int, help="first seed (seeds are SEED..SEED+N-1; default 0)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
    train.add_argument("--out", help="run directory (default: runs/<config>-<time>)")
    train.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its latest checkpoint")
    train.add_argument("--checkpoint-every", type=int, metavar="UPDATES",
                       help="save a checkpoint every UPDATES updates, at the next chunk boundary "
                            f"(default: about {DEFAULT_CHECKPOINTS_PER_RUN} per run; 0: only at the end "
                            "and on SIGINT/SIGTERM)")
    train.add_argument("--keep", type=int, metavar="N", help=f"keep the last N checkpoints (default {DEFAULT_KEEP})")
    train.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard event files")
    train.add_argument("--wandb", nargs="?", const="online", choices=("online", "offline"),
                       help="also log to Weights & Biases (needs ppo_jax[wandb]); 'offline' needs no network")
    train.add_argument("--no-progress", action="store_true", help="no progress output")
    _add_fine_tune_arguments(train)
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("eval", help="evaluate a trained run",
                              description="Play whole episodes with each seed's saved policy; write eval.json.")
    evaluate.add_argument("run_dir", help="a run directory written by 'ppo-jax train'")
    evaluate.add_argument("--episodes", type=int, default=100, help="episodes per seed (default 100)")
    evaluate.add_argument("--stochastic", action="store_true",
                          help="sample actions (default: the distribution's mode)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the evaluation episodes (default 0)")
    evaluate.set_defaults(func=cmd_eval)

    rend = sub.add_parser("render", help="write a GIF of one episode",
                          description="Play one episode with a saved policy and write it as a GIF.")
    rend.add_argument("run_dir", help="a run directory written by 'ppo-jax train'")
    rend.add_argument("--out", default="policy.gif", help="GIF to write (default policy.gif)")
    rend.add_argument("--seed", type=int, default=0, help="seed of the episode (default 0)")
    rend.add_argument("--train-seed", type=int, help="which training seed's policy (default: the run's first)")
    rend.add_argument("--max-steps", type=int, help="at most this many steps (default: the env's time limit)")
    rend.add_argument("--stochastic", action="store_true", help="sample actions (default: the mode)")
    rend.set_defaults(func=cmd_render)

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
    _add_fine_tune_arguments(sweep)
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
