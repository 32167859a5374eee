"""The run directory: its default name and the checks before anything is written into it."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from ppo_jax.cli.common import UserError


def default_out(config_path: str, prefix: str = "") -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{prefix}{Path(config_path).stem}-{stamp}"


def prepare_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse a file, a non-empty directory (unless ``overwrite``) or an unwritable place."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(
            f"--out {out}: directory exists and is not empty; choose another --out or pass --overwrite."
        )
    probe = out.parent if not out.exists() else out
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise UserError(f"--out {out}: {probe} is not writable.")
