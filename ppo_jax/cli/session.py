"""What every training command (``train``, ``sweep``, ``pbt``) does around its run: the
plan settled before anything compiles, the run directory's start, the checkpoint-due
rule between chunks, and how a run that stopped early is recorded and reported.

A command's own module says what varies across its runs (seeds, a grid, a population)
and what its files hold; everything here is the same for all three.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
from pathlib import Path
from typing import Any, Callable, Optional

from ppo_jax.cli import common
from ppo_jax.cli.common import EXIT_CHECKPOINT, UserError


@dataclasses.dataclass
class Plan:
    """What a training command will do, settled (and checked) before anything compiles."""

    runs: Any  # train, pbt: the PPOConfig every seed or member starts from; sweep: the Grid
    seeds: list[int]  # train: the seeds; sweep: each grid point's; pbt: the members'
    out: Path
    checkpoint_every: int  # updates between periodic checkpoints; 0: only at the end or on a signal
    keep: int
    start_update: int = 0  # > 0: resuming from the checkpoint after this many updates
    first_command: str = ""  # the command that started the run (kept across resumes)
    log_points_done: int = 0  # sweep, pbt: the log points in the checkpoint resumed from
    devices: Optional[int] = None  # sweep, pbt: the devices the checkpointed run ran on
    log_plan: Optional[list] = None  # sweep, pbt: the updates of each of its log points
    schedule: Optional[list] = None  # train --schedule: [(first update, Hyperparams)]
    explores: tuple = ()  # pbt: the explored settings
    population: Any = None  # pbt: its Population

    @property
    def fresh(self) -> bool:
        return self.start_update == 0

    @property
    def config(self):
        """The config every run shares (a sweep's: its grid's first point, which fixes the program)."""
        return getattr(self.runs, "base", self.runs)

    def resumed(self) -> Optional[dict]:
        """The summary's record of this session when it continues a run, else None."""
        if self.fresh:
            return None
        return {"from_update": self.start_update, "command": common.command_line()}


def check_layout(plan: Plan, run, what: str) -> None:
    """Refuse to resume a sweep or pbt run (``what``) on another count of devices or with other
    log points than its checkpoint's: neither would continue it exactly."""
    if plan.devices is not None and plan.devices != run.num_devices:
        raise UserError(
            f"--resume {plan.out}: the {what} ran on {plan.devices} device(s), this one has "
            f"{run.num_devices}; resume on the same count (on a CPU: --cpu-devices {plan.devices})."
        )
    if plan.log_plan is not None and list(plan.log_plan) != list(run.plan):
        raise UserError(
            f"--resume {plan.out}: its log points ({len(plan.log_plan)}) are not those of this "
            f"version ({len(run.plan)}); it cannot be resumed exactly."
        )


def start_dir(plan: Plan, overwrite: bool, stale: tuple[str, ...] = ()) -> None:
    """Create the run directory and write its config; with ``overwrite``, first remove the
    checkpoints (and ``stale`` folders) of a previous run, which would be taken for this one's."""
    from ppo_jax.io import checkpoint, logs

    plan.out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in (checkpoint.CHECKPOINT_DIR, *stale):
            if (plan.out / name).is_dir():
                shutil.rmtree(plan.out / name)
    logs.write_config(plan.out / "config.yaml", plan.config.to_dict())


def checkpointer(plan: Plan):
    """The run's checkpoint writer, aware of the checkpoint it resumes from."""
    from ppo_jax.io import checkpoint

    writer = checkpoint.Checkpointer(plan.out, plan.keep)
    writer.last_saved = plan.start_update or None
    return writer


def progress(plan: Plan, enabled: bool, console):
    """The progress display of the run's env steps, counted from where it resumes."""
    from ppo_jax.cli.console import Progress

    config = plan.config
    return Progress(
        config.env_steps, enabled=enabled, console=console, start=plan.start_update * config.batch_size
    )


class PreemptionStop:
    """SIGTERM and SIGINT for a run over several processes: every process stops after the
    same chunk, saves its share of the checkpoint there, and exits as a stopped run.

    ``jax.distributed.initialize`` starts JAX's preemption service, whose notifier
    catches SIGTERM in every process (a Python handler would replace it) and tells the
    others through the coordinator. Each process asks ``reached_preemption_sync_point``
    once per chunk, with the chunk's number; the service picks the first number past
    every process's, so all of them answer True at the same chunk, whichever got the
    signal and wherever each was. SIGINT is handed to the notifier as a SIGTERM to this
    process; a second SIGINT aborts at once, without saving.
    """

    def __init__(self, console):
        self.console = console
        self.signum: Optional[int] = None  # set once the processes agree to stop
        self.received: Optional[int] = None  # the signal this process got, if any
        self.chunks = 0

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is not None:
            self.__exit__()
            raise KeyboardInterrupt
        self.received = signum
        self.console.print(
            "ppo-jax: SIGINT: every process finishes its current chunk and saves a checkpoint "
            "(send it again to abort without saving)",
            soft_wrap=True,
        )
        os.kill(os.getpid(), signal.SIGTERM)  # to the preemption notifier, which tells every process

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)

    def due(self) -> bool:
        """Whether the processes stop after this chunk; every process calls it once per chunk."""
        from jax.experimental import multihost_utils

        reached = multihost_utils.reached_preemption_sync_point(self.chunks)
        self.chunks += 1
        if reached and self.signum is None:
            self.signum = self.received or signal.SIGTERM
            self.console.print(
                f"ppo-jax: {self.name}: every process stops after this chunk and saves its share of a "
                "checkpoint",
                soft_wrap=True,
            )
        return reached

    @property
    def name(self) -> str:
        assert self.signum is not None, "no signal was received"
        return signal.Signals(self.signum).name


class Session:
    """The host side of a run between chunks: progress, checkpoints, signals.

    ``meta``: what each checkpoint records of the run beside the state (its kind,
    config, axis, devices and plan); the checkpoint options and the first command
    are added here. ``failure`` holds a failed save's error.
    """

    def __init__(self, plan: Plan, progress, checkpointer, stop, meta: dict):
        self.plan, self.progress = plan, progress
        self.checkpointer, self.stop = checkpointer, stop
        self.failure: list = []
        self.last_return = float("nan")  # long episodes (Freeway: 2,500 steps) skip many chunks
        self.meta = {
            **meta,
            "checkpoint_every": plan.checkpoint_every,
            "keep": plan.keep,
            "command": plan.first_command,
        }

    def save_if_due(self, updates_done: int, tree: Callable[[], Any], **meta) -> bool:
        """The checkpoint rule: save ``tree()`` with the meta (and ``meta``) after a stop
        signal, at the last update, or once ``checkpoint_every`` updates have passed since
        the last save. True: stop the run here (a signal, or a failed save, kept in
        ``failure``)."""
        from ppo_jax.io import checkpoint

        # Read the signal once: one landing after this read stops the run at the next chunk (with its
        # own save), never here without a save. Over several processes, all stop at the same chunk.
        stopping = self.stop.due() if isinstance(self.stop, PreemptionStop) else self.stop.signum is not None
        last = self.checkpointer.last_saved or 0
        every = self.plan.checkpoint_every
        due = updates_done == self.plan.config.num_updates or (every > 0 and updates_done - last >= every)
        if stopping or due:
            try:
                self.checkpointer.save(updates_done, tree(), {**self.meta, **meta})
            except checkpoint.CheckpointError as error:
                self.failure.append(error)
                return True
        return stopping

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        if self.checkpointer is not None:
            self.checkpointer.close()

    def stopped(self, run) -> Optional[dict]:
        """The summary's record of an early stop (a failed save, a signal), else None."""
        if self.failure:
            return {"reason": "checkpoint write failed", "update": run.updates_done}
        if run.stopped_early:
            return {"reason": self.stop.name, "update": run.updates_done}
        return None

    def report_interruption(self, err, run, *, what: str, saved: str, hint: str) -> Optional[int]:
        """Say why the run stopped before its end and how to resume it.

        Args: ``err``, a rich console on stderr; ``run``, the runner (``updates_done``,
        ``stopped_early``); ``what``, "Training", "The sweep", ...; ``saved``, where the
        state was saved; ``hint``, the resume command.
        Returns: the exit code, or None when nothing stopped it early.
        """
        if self.failure:
            err.print(
                f"ppo-jax: error: {self.failure[0]}. {what} stopped at update {run.updates_done}.",
                soft_wrap=True,
            )
            if self.checkpointer is not None and self.checkpointer.last_saved is not None:
                err.print(f"Free some space, then resume with: {hint}", soft_wrap=True)
            return EXIT_CHECKPOINT
        if run.stopped_early:
            err.print(
                f"ppo-jax: stopped by {self.stop.name} after update {run.updates_done} of "
                f"{self.plan.config.num_updates}; {saved}.\nResume with: {hint}",
                soft_wrap=True,
            )
            return 128 + int(self.stop.signum)
        return None
