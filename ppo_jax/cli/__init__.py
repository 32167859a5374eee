"""``ppo-jax``: the command line. IO only; training is ``ppo_jax.driver``.

    ppo-jax train CONFIG.yaml [--seeds N] [--set key=value ...] [--out DIR]
    ppo-jax train --resume RUN_DIR
    ppo-jax eval RUN_DIR [--episodes N] [--stochastic] [--seed S]
    ppo-jax render RUN_DIR --out policy.gif [--seed S] [--max-steps N]
    ppo-jax sweep CONFIG.yaml --grid key=v1,v2 [--grid ...] [--seeds N] [--out DIR]
    ppo-jax rlhf sft|reward|ppo CONFIG ... (docs/rlhf.md)
    ppo-jax settings [--markdown]

One module per command (``train``, ``sweep``, ``eval``, ``render``, ``settings``), each with
``add_parser(sub)`` and ``run(args) -> exit code``; the shared pieces are
``common`` (errors, exit codes, values), ``rundir``, ``console``, ``loggers``
and ``signals``. Importing this package starts no JAX backend.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ppo_jax.cli.common import EXIT_CHECKPOINT, EXIT_NONFINITE, EXIT_USAGE, UserError

__all__ = ["EXIT_CHECKPOINT", "EXIT_NONFINITE", "EXIT_USAGE", "UserError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from ppo_jax.cli import eval as eval_cmd
    from ppo_jax.cli import render, rlhf, settings, sweep, train

    parser = argparse.ArgumentParser(prog="ppo-jax", description="PPO in pure, jitted JAX on gymnax.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (train, eval_cmd, render, sweep, rlhf, settings):
        command.add_parser(sub)
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
