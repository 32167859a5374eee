"""``ppo-jax render``: one episode with a saved policy, written as a GIF."""

from __future__ import annotations

import argparse
from pathlib import Path

from ppo_jax.cli.common import UserError


def add_parser(sub) -> None:
    rend = sub.add_parser(
        "render",
        help="write a GIF of one episode",
        description="Play one episode with a saved policy and write it as a GIF.",
    )
    rend.add_argument("run_dir", help="a run directory written by 'ppo-jax train'")
    rend.add_argument("--out", default="policy.gif", help="GIF to write (default policy.gif)")
    rend.add_argument("--seed", type=int, default=0, help="seed of the episode (default 0)")
    rend.add_argument(
        "--train-seed", type=int, help="which training seed's policy (default: the run's first)"
    )
    rend.add_argument("--max-steps", type=int, help="at most this many steps (default: the env's time limit)")
    rend.add_argument("--stochastic", action="store_true", help="sample actions (default: the mode)")
    rend.set_defaults(func=run)


def _check(args) -> Path:
    from ppo_jax.io import render
    from ppo_jax.io.checkpoint import RunDirError, latest_checkpoint

    out = Path(args.out)
    if out.suffix.lower() != ".gif":
        raise UserError(f"--out {out}: render writes a GIF; give a path ending in .gif.")
    if args.max_steps is not None and args.max_steps < 1:
        raise UserError(f"--max-steps must be at least 1, got {args.max_steps}.")
    if not out.parent.exists():
        raise UserError(f"--out {out}: directory {out.parent} does not exist.")
    try:
        env_id = latest_checkpoint(args.run_dir)[1]["config"]["env_id"]
    except RunDirError as err:
        raise UserError(str(err)) from None
    if not render.drawable(env_id):
        raise UserError(
            f"render: cannot draw {env_id}; the envs it can draw are {', '.join(render.DRAWABLE)} "
            "and xLand-MiniGrid's ('xminigrid:' ids). "
            "Use 'ppo-jax eval' for its returns."
        )
    return out


def run(args: argparse.Namespace) -> int:
    out = _check(args)
    from ppo_jax.cli.eval import load_run_or_exit

    loaded = load_run_or_exit(args.run_dir)
    if args.train_seed is not None and args.train_seed not in loaded.seeds:
        raise UserError(
            f"--train-seed {args.train_seed}: not a seed of this run; its seeds are {loaded.seeds}."
        )
    import numpy as np

    from ppo_jax.io import logs, render

    max_steps = args.max_steps or loaded.spec.max_episode_steps
    states, rewards, ended = render.record_episode(
        loaded, args.train_seed, args.seed, max_steps, args.stochastic
    )
    frames = render.draw_frames(loaded.config.env_id, states, rewards, loaded.config.env_kwargs)
    logs.write_atomic(out, render.gif_bytes(loaded.config.env_id, frames))
    how = "episode ended" if ended else f"cut at --max-steps {max_steps}"
    print(f"{out}: {len(frames)} frames, {len(rewards)} steps ({how}), return {float(np.sum(rewards)):.1f}")
    return 0
