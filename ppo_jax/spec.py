"""EnvSpec: what the networks and config checks need to know of an env.

It sits below both: ``envs`` builds one from an env, ``networks`` size their heads by it,
and neither imports the other (so importing ``ppo_jax.networks`` imports no gymnax).
"""

from __future__ import annotations

from typing import NamedTuple


class EnvSpec(NamedTuple):
    """What the networks and config checks need to know about an env (static)."""

    env_id: str
    obs_shape: tuple[int, ...]
    discrete: bool
    action_dim: int  # number of actions (discrete) or action dimensions (continuous)
    action_low: tuple[float, ...]  # () for discrete
    action_high: tuple[float, ...]
    max_episode_steps: int  # the time limit; truncation happens there and nowhere else
    action_mask: bool = False  # the env gives a mask of valid (discrete) actions with each observation
    obs_dtype: str = "float32"  # a dtype that holds every observation exactly: rollouts store them in it
    # > 0: observations are token ids in [0, obs_vocab), the env's integer Box space [0, obs_vocab - 1];
    # the last id, obs_vocab - 1, is PAD (a position not written yet), and PADs only follow the tokens.
    obs_vocab: int = 0
