"""``ppo-jax sweep`` on an RLHF pipeline config: stage 3 (PPO) over a grid × seeds.

``ppo-jax sweep configs/rlhf/pipeline.yaml --grid ppo.kl_coef=0,0.05 --seeds 3 --sft DIR
--reward DIR`` runs ``ppo_jax.rlhf.sweep.rlhf_sweep``: one compiled program, the grid over
the traced stage-3 settings. The options of a ``train`` preset's sweep that have no meaning
there (fine-tuning, checkpoints, several hosts, ``--bar``) are refused by name.
"""

from __future__ import annotations

import argparse

from ppo_jax.cli import common
from ppo_jax.cli.common import UserError
from ppo_jax.cli.rundir import default_out

# Options of a preset's sweep that a stage-3 sweep does not take, and why (the message's tail).
NOT_FOR_RLHF = {
    "--resume": "a stage-3 sweep runs to its end in one go",
    "--checkpoint-every": "a stage-3 sweep checkpoints its stage directory at the end",
    "--keep": "a stage-3 sweep checkpoints its stage directory at the end",
    "--bar": "stage 3 reports reward-model and gold scores, not returns",
    "--init-from": "stage 3 starts from --sft",
    "--init-seed": "stage 3 starts from --sft",
    "--kl-ref": "stage 3's KL reference is --sft",
    "--distributed": "a stage-3 sweep runs in one process",
    "--coordinator": "a stage-3 sweep runs in one process",
    "--num-processes": "a stage-3 sweep runs in one process",
    "--process-id": "a stage-3 sweep runs in one process",
}


def add_arguments(parser) -> None:
    group = parser.add_argument_group("RLHF stage 3 (a configs/rlhf pipeline config)")
    group.add_argument("--sft", metavar="DIR", help="the --out of 'ppo-jax rlhf sft'")
    group.add_argument("--reward", metavar="DIR", help="the --out of 'ppo-jax rlhf reward'")


def _given(args: argparse.Namespace, option: str):
    value = getattr(args, option.removeprefix("--").replace("-", "_"), None)
    return None if value is False else value


def wanted(args: argparse.Namespace) -> bool:
    """Whether this sweep is a stage-3 sweep; ``--sft``/``--reward`` on a preset are refused."""
    from ppo_jax.rlhf.config import is_pipeline_config

    if args.config and is_pipeline_config(args.config):
        return True
    given = [name for name in ("--sft", "--reward") if _given(args, name) is not None]
    if given:
        raise UserError(
            f"{', '.join(given)}: only for an RLHF pipeline config (e.g. configs/rlhf/pipeline.yaml); "
            f"{args.config or '--resume ' + str(args.resume)} is a training preset."
        )
    return False


def run(args: argparse.Namespace, default_seeds: int) -> int:
    from ppo_jax.cli.sweep import parse_grid
    from ppo_jax.config import ConfigError
    from ppo_jax.rlhf.sweep import rlhf_sweep

    refused = [f"{name} ({why})" for name, why in NOT_FOR_RLHF.items() if _given(args, name) is not None]
    if refused:
        raise UserError(f"{args.config}: an RLHF pipeline config; not with {'; '.join(refused)}.")
    missing = [name for name in ("--sft", "--reward") if _given(args, name) is None]
    if missing:
        raise UserError(
            f"{args.config}: an RLHF pipeline config; stage 3 needs {' and '.join(missing)} DIR "
            "(the --out of 'ppo-jax rlhf sft' and 'ppo-jax rlhf reward')."
        )
    try:
        rlhf_sweep(
            args.config,
            parse_grid(args.grid or []),
            default_seeds if args.seeds is None else args.seeds,
            args.seed,
            args.out or default_out(args.config, prefix="sweep-"),
            args.sft,
            args.reward,
            common.parse_sets(args.set or []),
            args.overwrite,
        )
    except ConfigError as err:
        raise UserError(str(err)) from None
    return 0
