"""The command-line options ``train``, ``sweep`` and ``pbt`` share, and how checkpoint options
are settled (given, else the run's saved ones, else the defaults)."""

from __future__ import annotations

import math
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


def add_run_options(
    parser, *, seeds_help: str, out_help: str, resume_metavar: str, resume_help: str, checkpoint_help: str
) -> None:
    """The options ``train`` and ``sweep`` share: seeds, then ``add_run_dir_options``."""
    parser.add_argument("--seeds", type=int, help=seeds_help)
    parser.add_argument("--seed", type=int, help="first seed (seeds are SEED..SEED+N-1; default 0)")
    add_run_dir_options(
        parser,
        out_help=out_help,
        resume_metavar=resume_metavar,
        resume_help=resume_help,
        checkpoint_help=checkpoint_help,
    )


def add_run_dir_options(
    parser, *, out_help: str, resume_metavar: str, resume_help: str, checkpoint_help: str
) -> None:
    """The options every training command (``train``, ``sweep``, ``pbt``) shares: overrides,
    where to write, checkpoints, resume."""
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
