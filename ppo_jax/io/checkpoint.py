"""Checkpoints: the whole ``TrainState`` of every seed, with the run's config.

Layout inside a run directory::

    checkpoints/<updates done>/state   params, optimizer state, normalization
                                        statistics, env state, RNG keys, update
                                        counter — every leaf [seeds, ...]
    checkpoints/<updates done>/meta    JSON: config, seeds, updates done

orbax writes each checkpoint into a temporary directory and renames it once
every file is on disk, so a crash mid-write never leaves a directory that looks
like a whole checkpoint; the oldest checkpoints are removed only after a new one
is complete. IO only: these functions run on the host between jitted chunks.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import threading
from pathlib import Path
from typing import Any, Optional

import jax
import numpy as np

CHECKPOINT_DIR = "checkpoints"
FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint could not be written or read (disk full, unwritable, corrupt)."""


class RunDirError(ValueError):
    """A directory given as a run is not one, or has no usable checkpoint (a user error)."""


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def _ocp():
    # orbax is heavy to import; only commands that touch checkpoints pay for it.
    import orbax.checkpoint as ocp

    return ocp


def preload() -> threading.Thread:
    """Import orbax on a thread of its own (about a second), e.g. while the programs
    compile: the first checkpoint would otherwise import it in the middle of training,
    with the device idle once the chunk in flight is done."""
    thread = threading.Thread(target=_ocp, name="ppo_jax-import-orbax", daemon=True)
    thread.start()
    return thread


def _manager(directory: Path, keep: Optional[int], create: bool):
    ocp = _ocp()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        create=create,
        # A writer (not a reader) clears what a failed or killed save left behind.
        cleanup_tmp_directories=create,
        # Saves happen between chunks. Pipelined (driver.run_chunks), the next
        # chunk already runs during the save; unpipelined, it donates the
        # state's buffers, so a save must finish before training goes on.
        enable_async_checkpointing=False,
    )
    return ocp.CheckpointManager(directory.absolute(), options=options)


def saved_updates(run_dir: str | Path) -> list[int]:
    """Updates-done of the complete checkpoints in ``run_dir`` (oldest first).

    Reads the directory only: unfinished (temporary) checkpoints are not listed.
    """
    directory = checkpoint_dir(run_dir)
    if not directory.is_dir():
        return []
    return sorted(int(step) for step in _manager(directory, None, create=False).all_steps())


def read_meta(run_dir: str | Path, update: int) -> dict[str, Any]:
    """The JSON saved beside checkpoint ``update``: config, seeds, updates done."""
    ocp = _ocp()
    manager = _manager(checkpoint_dir(run_dir), None, create=False)
    try:
        restored = manager.restore(update, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    except Exception as err:  # orbax raises many kinds; all mean "unreadable"
        raise CheckpointError(
            f"checkpoint {update} in {checkpoint_dir(run_dir)} cannot be read: {err}"
        ) from err
    finally:
        manager.close()
    meta = dict(restored["meta"])
    _check_format(run_dir, update, meta)
    return meta


def _check_format(run_dir: str | Path, update: int, meta: dict[str, Any]) -> None:
    """``CheckpointError`` unless checkpoint ``update`` was written in the layout this
    version reads (its state's tree and its meta's keys)."""
    saved = meta.get("format")
    if saved != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {update} in {checkpoint_dir(run_dir)} is in checkpoint format {saved!r}, but this "
            f"version of ppo_jax reads format {FORMAT_VERSION}; load or resume it with the ppo_jax version "
            "that wrote it."
        )


def restore_state(run_dir: str | Path, update: int, target: Any) -> Any:
    """Read the train state of checkpoint ``update`` into the structure of ``target``.

    ``target`` is a pytree of arrays or ``jax.ShapeDtypeStruct`` (e.g. from
    ``jax.eval_shape``) with the same structure, shapes and dtypes as the saved
    state; the values come back bit for bit as they were saved.
    """
    ocp = _ocp()
    device = jax.devices()[0]

    def abstract(x):
        sharding = getattr(x, "sharding", None) or jax.sharding.SingleDeviceSharding(device)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    manager = _manager(checkpoint_dir(run_dir), None, create=False)
    try:
        restored = manager.restore(
            update,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(jax.tree.map(abstract, target))),
        )
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {update} in {checkpoint_dir(run_dir)} cannot be read: {err}"
        ) from err
    finally:
        manager.close()
    return restored["state"]


def latest_checkpoint(run_dir: str | Path, update: Optional[int] = None) -> tuple[int, dict[str, Any]]:
    """The latest complete checkpoint of ``run_dir`` (or the one after ``update``
    updates) and its meta; ``RunDirError`` naming what is missing otherwise."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunDirError(f"{run_dir}: no such directory.")
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: not a directory; expected a run directory written by 'ppo-jax train'.")
    if not (run_dir / "config.yaml").is_file():
        raise RunDirError(
            f"{run_dir}: not a ppo-jax run directory (no config.yaml); expected the --out of 'ppo-jax train'."
        )
    steps = saved_updates(run_dir)
    if not steps:
        raise RunDirError(
            f"{run_dir}: has no checkpoint (nothing complete under {CHECKPOINT_DIR}/); the run stopped before "
            "its first one. Start it again with 'ppo-jax train CONFIG --out DIR --overwrite'."
        )
    if update is None:
        update = steps[-1]
    elif update not in steps:
        raise RunDirError(
            f"{run_dir}: no checkpoint after {update} updates; saved: {', '.join(map(str, steps))}."
        )
    try:
        meta = read_meta(run_dir, update)
    except CheckpointError as err:
        raise RunDirError(str(err)) from None
    return update, meta


def prng_impl() -> str:
    """The name of the PRNG implementation this process draws keys with (``JAX_DEFAULT_PRNG_IMPL``)."""
    return jax.config.jax_default_prng_impl  # type: ignore[attr-defined]  # a flag, set at run time


def check_prng_impl(run_dir: str | Path, meta: dict[str, Any]) -> None:
    """``RunDirError`` unless this process uses the PRNG implementation the run saved
    its keys with: they are its raw key data, which another would refuse (another key
    shape) or read as other keys."""
    saved = meta.get("prng_impl", "threefry2x32")  # checkpoints from before it was recorded
    current = prng_impl()
    if saved != current:
        raise RunDirError(
            f"{run_dir}: the run drew its random numbers with JAX's {saved!r} PRNG, but this process "
            f"uses {current!r}; set JAX_DEFAULT_PRNG_IMPL={saved} to load or resume it."
        )


def state_nbytes(state: Any) -> int:
    """Bytes of the arrays of ``state`` (arrays or ShapeDtypeStructs)."""
    return int(sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(state)))


def check_free_space(directory: Path, needed: int, what: str) -> None:
    """Raise ``CheckpointError`` if the disk holding ``directory`` has less than ``needed`` bytes free."""
    probe = Path(directory)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise CheckpointError(
            f"{directory}: {_size(free)} free on its disk, but {what} needs about {_size(needed)}. "
            "Free some space or choose another --out."
        )


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


class Checkpointer:
    """Writes checkpoints of one run, keeping the last ``keep``."""

    def __init__(self, run_dir: str | Path, keep: int):
        self.run_dir = Path(run_dir)
        self.directory = checkpoint_dir(run_dir)
        self.keep = keep
        self._manager: Any = None  # an orbax CheckpointManager, made on the first save
        self.last_saved: Optional[int] = None

    def save(self, update: int, state: Any, meta: dict[str, Any]) -> Path:
        """Write ``state`` (all seeds) and ``meta`` as checkpoint ``update``.

        Raises ``CheckpointError`` if the write fails; earlier checkpoints are
        left as they were.
        """
        ocp = _ocp()
        meta = {
            **meta,
            "format": FORMAT_VERSION,
            "update": int(update),
            "prng_impl": prng_impl(),  # the keys in the state are its raw data
            "saved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        try:
            if self._manager is None:
                self._manager = _manager(self.directory, self.keep, create=True)
            self._manager.save(
                int(update),
                args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                force=True,
            )
            self._manager.wait_until_finished()
        except Exception as err:
            previous = (
                f"checkpoint {self.last_saved} is intact"
                if self.last_saved is not None
                else "no earlier checkpoint"
            )
            raise CheckpointError(
                f"could not write checkpoint {update} in {self.directory}: {err} ({previous})"
            ) from err
        self.last_saved = int(update)
        return self.directory / str(int(update))

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None
