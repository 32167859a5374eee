"""What ``train --resume``, ``sweep --resume`` and ``pbt --resume`` share: the refusals of options
that would change a run, and the checks and restoring of a saved run (the options themselves are
``ppo_jax.cli.options``'; saving, and reporting a stop, ``ppo_jax.cli.session``'s)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from ppo_jax.cli.common import UserError


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
    from ppo_jax.io import checkpoint

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


def restore_log_points_run(run, plan, template, what: str):
    """For ``sweep`` and ``pbt``: refuse a disk too small for ``plan.keep`` checkpoints of ``run``;
    then ``None`` for a fresh run, else the checkpoint of ``plan.start_update`` restored into
    ``run.checkpoint_target(template, plan.log_points_done)``. ``what`` names the run in messages."""
    from ppo_jax.io import checkpoint

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
