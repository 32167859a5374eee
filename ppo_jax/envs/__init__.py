"""Environments: one interface (gymnax 1.0's ``Environment``) and the ids that make one.

``make(env_id)`` returns ``(env, params)``; ``env_spec(env_id)`` what networks and
config checks need to know. ``VecEnv`` (in ``vec.py``) steps ``B`` copies.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import gymnax
import numpy as np
from gymnax.environments import spaces


class EnvSpec(NamedTuple):
    """What the networks and config checks need to know about an env (static)."""

    env_id: str
    obs_shape: tuple[int, ...]
    discrete: bool
    action_dim: int  # number of actions (discrete) or action dimensions (continuous)
    action_low: tuple[float, ...]  # () for discrete
    action_high: tuple[float, ...]
    max_episode_steps: int


# ppo_jax's own envs, gymnax Environments (a minimal hook until user-env ids
# 'package.module:Class' land): id -> task of ppo_jax.envs.tokens.Tokens.
OWN_ENVS = {"Tokens-Fluency-v0": "fluency", "Tokens-RM-v0": "rm"}


def registered_env_ids() -> list[str]:
    return list(gymnax.registered_envs) + list(OWN_ENVS)


@functools.lru_cache(maxsize=None)
def make(env_id: str):
    """``(env, params)`` of ``env_id``."""
    if env_id in OWN_ENVS:
        from ppo_jax.envs.tokens import Tokens

        env = Tokens(OWN_ENVS[env_id])
        return env, env.default_params
    return gymnax.make(env_id)


@functools.lru_cache(maxsize=None)
def env_spec(env_id: str) -> EnvSpec:
    env, params = make(env_id)
    action_space = env.action_space(params)
    obs_shape = tuple(int(d) for d in env.observation_space(params).shape)
    if isinstance(action_space, spaces.Discrete):
        return EnvSpec(env_id, obs_shape, True, int(action_space.n), (), (), int(params.max_steps_in_episode))
    if isinstance(action_space, spaces.Box):
        shape = tuple(action_space.shape) or (1,)
        low = np.broadcast_to(np.asarray(action_space.low, np.float32), shape).reshape(-1)
        high = np.broadcast_to(np.asarray(action_space.high, np.float32), shape).reshape(-1)
        return EnvSpec(
            env_id,
            obs_shape,
            False,
            int(np.prod(shape)),
            tuple(float(x) for x in low),
            tuple(float(x) for x in high),
            int(params.max_steps_in_episode),
        )
    raise NotImplementedError(f"{env_id}: action space {type(action_space).__name__} is not supported")



_make = make  # the older private name

from ppo_jax.envs.vec import NormState, StepResult, VecEnv, VecEnvState  # noqa: E402

__all__ = ["EnvSpec", "NormState", "StepResult", "VecEnv", "VecEnvState", "env_spec", "make", "registered_env_ids"]
