"""``ppo-jax eval``: whole episodes with each seed's saved policy; writes eval.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from ppo_jax.cli.common import UserError


def add_parser(sub) -> None:
    evaluate = sub.add_parser(
        "eval",
        help="evaluate a trained run",
        description="Play whole episodes with each seed's saved policy; write eval.json "
        "(an earlier eval.json of the run is kept as eval.N.json).",
    )
    evaluate.add_argument("run_dir", help="a run directory written by 'ppo-jax train'")
    evaluate.add_argument("--episodes", type=int, default=100, help="episodes per seed (default 100)")
    evaluate.add_argument(
        "--stochastic", action="store_true", help="sample actions (default: the distribution's mode)"
    )
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the evaluation episodes (default 0)")
    evaluate.add_argument(
        "--samples",
        type=int,
        default=0,
        metavar="N",
        help="a token policy (ppo_jax.envs.tokens): also print N sentences each seed writes",
    )
    evaluate.set_defaults(func=run)


def load_run_or_exit(run_dir: str):
    from ppo_jax.config import ConfigError
    from ppo_jax.io.checkpoint import RunDirError
    from ppo_jax.runs import load_run

    try:
        return load_run(run_dir)
    except (RunDirError, ConfigError) as err:
        raise UserError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise UserError(f"--episodes must be at least 1, got {args.episodes}.")
    loaded = load_run_or_exit(args.run_dir)
    if args.samples:
        check_samples(loaded, args.samples)
    from ppo_jax.cli.console import return_digits
    from ppo_jax.evaluate import evaluate_run
    from ppo_jax.io import logs

    result = evaluate_run(loaded, num_episodes=args.episodes, stochastic=args.stochastic, seed=args.seed)
    kind = "stochastic" if args.stochastic else "deterministic (mode)"
    print(
        f"{loaded.config.env_id} after {loaded.update} updates ({result['env_steps']:,} env steps/seed), "
        f"{args.episodes} episodes per seed, {kind} actions, obs normalization: {result['obs_normalization']}"
    )
    d = return_digits(min(abs(e["mean"]) for e in result["per_seed"]))
    for entry in result["per_seed"]:
        print(f"  seed {entry['seed']}: {entry['mean']:.{d}f} ± {entry['std']:.{d}f}")
    print(
        f"  all seeds: {result['mean']:.{d}f} ± {result['std_between_seeds']:.{d}f} (std between seed means)"
    )
    if args.samples:
        print_samples(loaded, args.samples, args.stochastic, args.seed)
    path = Path(args.run_dir) / "eval.json"
    kept = keep_previous(path)
    logs.write_summary(path, result)
    print(f"written to {path}" + ("" if kept is None else f" (the previous evaluation kept as {kept.name})"))
    return 0


def keep_previous(path: Path):
    """Move an existing ``eval.json`` to ``eval.N.json`` (the next free N), so that every
    evaluation of a run is kept; the new name, or None if there was none."""
    if not path.exists():
        return None
    n = 1
    while (path.with_name(f"{path.stem}.{n}{path.suffix}")).exists():
        n += 1
    kept = path.with_name(f"{path.stem}.{n}{path.suffix}")
    path.rename(kept)
    return kept


def _token_env(loaded):
    from ppo_jax.envs import tokens

    env = loaded.vec_env.env
    return env if isinstance(env, tokens.Tokens) else None


def check_samples(loaded, samples: int) -> None:
    if samples < 0:
        raise UserError(f"--samples must be 0 or more, got {samples}.")
    if _token_env(loaded) is None:
        raise UserError(
            f"--samples prints the sentences of a token policy (ppo_jax.envs.tokens:...); "
            f"{loaded.config.env_id} is not one. Use 'ppo-jax render' to see other policies."
        )
    if loaded.recurrent:
        raise UserError("--samples does not play recurrent policies yet.")


def print_samples(loaded, samples: int, stochastic: bool, seed: int) -> None:
    """What each training seed's policy writes, with the reward model's score and grammar."""
    import numpy as np

    from ppo_jax.envs import tokens
    from ppo_jax.evaluate import first_episode_actions

    for train_seed in loaded.seeds:
        print(f"  seed {train_seed} writes:")
        for sentence in first_episode_actions(loaded, train_seed, samples, stochastic, seed):
            words = np.asarray(sentence)[None]
            score = int(tokens.rm_score(words)[0])
            grammar = float(tokens.grammatical_fraction(words)[0])
            print(f"    {tokens.decode(sentence):<48} rm {score}, grammatical {grammar:.2f}")
