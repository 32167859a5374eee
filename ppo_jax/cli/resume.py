"""What ``train --resume``, ``sweep --resume`` and ``pbt --resume`` share: checkpoint options,
the refusals of options that would change a run, and the checks and restoring of a saved run
(saving, and reporting a stop, are ``ppo_jax.cli.session``'s)."""

from __future__ import annotations

import math
import os
import shlex
from pathlib import Path
from typing import Optional

from ppo_jax.cli.common import UserError

DEFAULT_CHECKPOINTS_PER_RUN = 10
DEFAULT_KEEP = 3


def checkpoint_options(args, config, saved: Optional[dict] = None) -> tuple[int, int]:
    """``--checkpoint-every`` and ``--keep``, else the saved ones, else the defaults."""
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


def refuse_options(resume: str, options: list[tuple[str, object]], what: str = "run") -> None:
    """Refuse every option given (not None) beside ``--resume``: a run keeps its own."""
    given = [name for name, value in options if value is not None]
    if given:
        raise UserError(
            f"--resume {resume}: {', '.join(given)} cannot be combined with --resume; the config, seeds "
            f"and directory are the {what}'s own. To change settings, start a new {what}."
        )


def latest(run_dir: Path, kind: str) -> tuple[int, dict]:
    """The latest checkpoint of a ``kind`` ("train" or "sweep") directory and its meta, writable."""
    from ppo_jax import checkpoint

    try:
        update, meta = checkpoint.latest_checkpoint(run_dir)
    except checkpoint.RunDirError as err:
        message = str(err)
        if kind == "sweep":
            message = message.replace("'ppo-jax train'", "'ppo-jax sweep'").replace(
                "ppo-jax train CONFIG", "ppo-jax sweep CONFIG"
            )
        raise UserError(f"--resume {message}") from None
    saved_kind = meta.get("kind", "train")
    if saved_kind != kind:
        raise UserError(
            f"--resume {run_dir}: this is a {saved_kind} directory, not a {kind} one; continue it with: "
            f"ppo-jax {saved_kind} --resume {shlex.quote(str(run_dir))}"
        )
    try:
        checkpoint.check_prng_impl(run_dir, meta)
    except checkpoint.RunDirError as err:
        raise UserError(f"--resume {err}") from None
    if not os.access(run_dir, os.W_OK) or not os.access(checkpoint.checkpoint_dir(run_dir), os.W_OK):
        raise UserError(
            f"--resume {run_dir}: the run directory is not writable; a resumed run appends to it."
        )
    return update, meta


def saved_config(run_dir: Path, update: int, meta: dict, finished_hint: str, what: str = "run"):
    """The checkpoint's config, refused when config.yaml was edited after it or the run is finished."""
    from ppo_jax.config import ConfigError, from_dict, load_config

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
            f"--resume {run_dir}: the {what} is finished ({update} of {saved.num_updates} updates); nothing to "
            f"resume. {finished_hint}"
        )
    return saved


def add_run_options(
    parser, *, seeds_help: str, out_help: str, resume_metavar: str, resume_help: str, checkpoint_help: str
) -> None:
    """The options ``train`` and ``sweep`` share: seeds, overrides, where to write, checkpoints, resume."""
    parser.add_argument("--seeds", type=int, help=seeds_help)
    parser.add_argument("--seed", type=int, help="first seed (seeds are SEED..SEED+N-1; default 0)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
    parser.add_argument("--out", help=out_help)
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    parser.add_argument("--resume", metavar=resume_metavar, help=resume_help)
    parser.add_argument("--checkpoint-every", type=int, metavar="UPDATES", help=checkpoint_help)
    parser.add_argument(
        "--keep", type=int, metavar="N", help=f"keep the last N checkpoints (default {DEFAULT_KEEP})"
    )


def add_cpu_devices(parser) -> None:
    parser.add_argument(
        "--cpu-devices",
        type=int,
        metavar="N",
        help="on a CPU backend, split it into N devices that train seeds in parallel "
        "(default: one per core; 1: one device)",
    )


def shared_options(args) -> list:
    """``(name, value)`` of the run options a resume takes from the checkpoint instead (train and sweep)."""
    return [
        ("CONFIG", args.config),
        ("--set", args.set),
        ("--seeds", args.seeds),
        ("--seed", args.seed),
        ("--out", args.out),
        ("--overwrite", args.overwrite or None),
        ("--init-from", args.init_from),
        ("--init-seed", args.init_seed),
        ("--kl-ref", args.kl_ref),
    ]


def restore_log_points_run(run, plan, template, what: str):
    """For ``sweep`` and ``pbt``: refuse a disk too small for ``plan.keep`` checkpoints of ``run``;
    then ``None`` for a fresh run, else the checkpoint of ``plan.start_update`` restored into
    ``run.checkpoint_target(template, plan.log_points_done)``. ``what`` names the run in messages."""
    from ppo_jax import checkpoint

    per_checkpoint = checkpoint.state_nbytes(run.checkpoint_target(template, len(run.plan)))
    try:
        checkpoint.check_free_space(
            plan.out,
            per_checkpoint * (plan.keep + 1) + 2**20,
            f"{what} ({plan.keep} checkpoints of {checkpoint._size(per_checkpoint)})",
        )
        if plan.fresh:
            return None
        return checkpoint.restore_state(
            plan.out, plan.start_update, run.checkpoint_target(template, plan.log_points_done)
        )
    except checkpoint.CheckpointError as err:
        raise UserError(f"--resume {err}" if not plan.fresh else str(err)) from None
