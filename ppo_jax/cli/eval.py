"""``ppo-jax eval``: whole episodes with each seed's saved policy; writes eval.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from ppo_jax.cli.common import UserError


def add_parser(sub) -> None:
    evaluate = sub.add_parser(
        "eval",
        help="evaluate a trained run",
        description="Play whole episodes with each seed's saved policy; write eval.json.",
    )
    evaluate.add_argument("run_dir", help="a run directory written by 'ppo-jax train'")
    evaluate.add_argument("--episodes", type=int, default=100, help="episodes per seed (default 100)")
    evaluate.add_argument(
        "--stochastic", action="store_true", help="sample actions (default: the distribution's mode)"
    )
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the evaluation episodes (default 0)")
    evaluate.set_defaults(func=run)


def load_run_or_exit(run_dir: str):
    from ppo_jax.checkpoint import RunDirError
    from ppo_jax.config import ConfigError
    from ppo_jax.policy import load_run

    try:
        return load_run(run_dir)
    except (RunDirError, ConfigError) as err:
        raise UserError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise UserError(f"--episodes must be at least 1, got {args.episodes}.")
    loaded = load_run_or_exit(args.run_dir)
    from ppo_jax import logs
    from ppo_jax.evaluate import evaluate_run

    result = evaluate_run(loaded, num_episodes=args.episodes, stochastic=args.stochastic, seed=args.seed)
    kind = "stochastic" if args.stochastic else "deterministic (mode)"
    print(
        f"{loaded.config.env_id} after {loaded.update} updates ({result['env_steps']:,} env steps/seed), "
        f"{args.episodes} episodes per seed, {kind} actions, obs normalization: {result['obs_normalization']}"
    )
    for entry in result["per_seed"]:
        print(f"  seed {entry['seed']}: {entry['mean']:.1f} ± {entry['std']:.1f}")
    print(f"  all seeds: {result['mean']:.1f} ± {result['std_between_seeds']:.1f} (std between seed means)")
    logs.write_summary(Path(args.run_dir) / "eval.json", result)
    print(f"written to {Path(args.run_dir) / 'eval.json'}")
    return 0
