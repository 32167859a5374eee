"""``ppo-jax rlhf sft|reward|ppo``: the three stages of RLHF on a character-level transformer.

    ppo-jax rlhf sft    CONFIG --out DIR
    ppo-jax rlhf reward CONFIG --sft DIR --out DIR
    ppo-jax rlhf ppo    CONFIG --sft DIR --reward DIR --out DIR [--seeds N] [--betas B1,B2,...]

Every stage accepts ``--set section.key=value`` and ``--overwrite``. Settings
and stage directories are checked before anything compiles (exit 2, nothing
written). See docs/rlhf.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ppo_jax.cli.common import UserError, parse_sets


def add_parser(sub) -> None:
    parser = sub.add_parser("rlhf", help="RLHF on a causal transformer: sft, reward, ppo (docs/rlhf.md)")
    stages = parser.add_subparsers(dest="stage", required=True)
    for stage, help_text in (
        ("sft", "stage 1: the supervised reference (next-token prediction on Python's docs)"),
        ("reward", "stage 2: a Bradley–Terry reward model from the labeler's preferences"),
        ("ppo", "stage 3: PPO against the reward model with a per-token KL leash"),
    ):
        p = stages.add_parser(stage, help=help_text)
        p.add_argument("config", metavar="CONFIG", help="pipeline YAML, e.g. configs/rlhf/pipeline.yaml")
        p.add_argument("--out", required=True, metavar="DIR", help="the stage's directory (written)")
        p.add_argument(
            "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a setting"
        )
        p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
        if stage in ("reward", "ppo"):
            p.add_argument("--sft", required=True, metavar="DIR", help="the --out of 'ppo-jax rlhf sft'")
        if stage == "ppo":
            p.add_argument(
                "--reward", required=True, metavar="DIR", help="the --out of 'ppo-jax rlhf reward'"
            )
            p.add_argument("--seeds", type=int, default=1, metavar="N", help="seeds per β (default 1)")
            p.add_argument(
                "--betas", metavar="B1,B2", help="β values, one compiled program (default: ppo.kl_coef)"
            )
        p.set_defaults(func=run)


def _betas(raw, default: float) -> list[float]:
    if raw is None:
        return [default]
    try:
        betas = [float(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--betas {raw!r}: expected comma-separated numbers, e.g. --betas 0,0.05") from None
    if not betas or min(betas) < 0:
        raise UserError(f"--betas {raw!r}: expected one or more values ≥ 0.")
    return betas


def _plan(args):
    """Everything checked, nothing compiled: (config, stage dirs, out, betas, seeds)."""
    from ppo_jax.config import ConfigError
    from ppo_jax.rlhf import config as rlhf_config
    from ppo_jax.rlhf import stages

    try:
        config = rlhf_config.load(args.config).with_sets(parse_sets(args.set))
        sft_dir = stages.check(args.sft, "sft", config) if args.stage != "sft" else None
        reward_dir = stages.check(args.reward, "reward", config) if args.stage == "ppo" else None
        for given in (sft_dir, reward_dir):
            if given is not None and Path(given).resolve() == Path(args.out).resolve():
                raise UserError(f"--out {args.out}: is an input stage directory; choose a new one.")
        out = stages.check_out(args.out, args.overwrite)
    except ConfigError as err:
        raise UserError(str(err)) from None
    betas, seeds = None, None
    if args.stage == "ppo":
        betas = _betas(args.betas, config.ppo.kl_coef)
        if args.seeds < 1:
            raise UserError(f"--seeds must be at least 1, got {args.seeds}.")
        seeds = list(range(config.ppo.seed, config.ppo.seed + args.seeds))
    return config, sft_dir, reward_dir, out, betas, seeds


def run(args: argparse.Namespace) -> int:
    config, sft_dir, reward_dir, out, betas, seeds = _plan(args)
    from ppo_jax.rlhf import run as stages_run

    if args.stage == "sft":
        stages_run.run_sft(config, out)
    elif args.stage == "reward":
        stages_run.run_reward(config, sft_dir, out)
    else:
        stages_run.run_ppo(config, sft_dir, reward_dir, out, seeds, betas)
    print(f"wrote {out}/summary.json")
    return 0
