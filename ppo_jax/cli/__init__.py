"""``ppo-jax``: the command line. IO only; training is ``ppo_jax.driver``.

    ppo-jax train CONFIG.yaml [--seeds N] [--set key=value ...] [--out DIR]
    ppo-jax train --resume RUN_DIR
    ppo-jax eval RUN_DIR [--episodes N] [--stochastic] [--seed S]
    ppo-jax render RUN_DIR --out policy.gif [--seed S] [--max-steps N]
    ppo-jax sweep CONFIG.yaml --grid key=v1,v2 [--grid ...] [--seeds N] [--out DIR]
    ppo-jax pbt CONFIG.yaml --explore key=low:high[:log] --ready UPDATES [--population N] [--out DIR]
    ppo-jax rlhf sft|reward|ppo CONFIG ... (docs/rlhf.md)
    ppo-jax settings [--markdown]
    ppo-jax --version

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
    from ppo_jax.cli import pbt, render, rlhf, settings, sweep, train

    parser = argparse.ArgumentParser(prog="ppo-jax", description="PPO in pure, jitted JAX on gymnax.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (train, eval_cmd, render, sweep, pbt, rlhf, settings):
        command.add_parser(sub)
    return parser


def _version() -> str:
    """``ppo-jax 0.1.0 (jax 0.10.2, Python 3.11.9)``, read without starting a JAX backend."""
    import importlib.metadata
    import platform

    from ppo_jax import __version__

    try:
        jax_version = importlib.metadata.version("jax")
    except importlib.metadata.PackageNotFoundError:
        jax_version = "not installed"
    return f"ppo-jax {__version__} (jax {jax_version}, Python {platform.python_version()})"


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
