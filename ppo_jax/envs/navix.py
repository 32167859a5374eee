"""``navix:<Name>`` (``navix:Navix-Empty-5x5-v0``): NAVIX as a gymnax ``Environment``.

Wraps the raw ``_step`` (NAVIX's public ``step`` resets inside itself on the
call after an episode ended) and ``reset``. Endings: NAVIX's ``StepType``
``TERMINATION`` is a termination, ``TRUNCATION`` (its ``max_steps``) a
truncation. That limit is ``params.max_steps_in_episode`` (NAVIX's
``max_steps``; the config's ``max_episode_steps`` replaces it, and NAVIX's
end-of-episode penalty, which scales with ``t / max_steps``, uses the replaced
value). The observation is the env's own (e.g. a symbolic grid), used as an
array (the MLP flattens it). No action mask.
"""

from __future__ import annotations

from typing import Any

import chex
import jax.numpy as jnp
import navix
from flax import struct
from gymnax.environments import environment, spaces
from navix.environments.environment import StepType


@struct.dataclass
class NavixState:
    timestep: Any  # NAVIX's Timestep: its state and last observation
    time: chex.Array  # int32, steps taken in this episode


@struct.dataclass
class NavixParams:
    max_steps_in_episode: int = struct.field(pytree_node=False, default=100)


class NavixEnv(environment.Environment):
    def __init__(self, env: Any, name: str):
        self.navix_env = env
        self._name = name

    @property
    def default_params(self) -> NavixParams:
        return NavixParams(int(self.navix_env.max_steps))

    @property
    def name(self) -> str:
        return self._name

    def _env(self, params):
        return self.navix_env.replace(max_steps=params.max_steps_in_episode)

    def reset_env(self, key, params):
        timestep = self._env(params).reset(key)
        return timestep.observation, NavixState(timestep, jnp.asarray(0, jnp.int32))

    def step_env(self, key, state, action, params):
        timestep = self._env(params)._step(state.timestep, action)
        terminated = timestep.step_type == StepType.TERMINATION
        reward = jnp.asarray(timestep.reward, jnp.float32)
        return timestep.observation, NavixState(timestep, state.time + 1), reward, terminated, {}

    def is_truncated(self, state, params):
        return state.time >= params.max_steps_in_episode

    def action_space(self, params):
        return spaces.Discrete(len(self.navix_env.action_set))

    def observation_space(self, params):
        space = self.navix_env.observation_space
        return spaces.Box(0, 255, tuple(space.shape), jnp.float32)


def make(name: str, **env_kwargs) -> tuple[NavixEnv, NavixParams]:
    """``(env, params)`` of NAVIX's registered ``name``; ``env_kwargs`` go to ``navix.make`` (e.g. ``max_steps``)."""
    from ppo_jax.envs import EnvError

    known = sorted(navix.registry())
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=2)
        hint = f" Did you mean {' or '.join(repr('navix:' + c) for c in close)}?" if close else ""
        raise EnvError(f"navix has no env {name!r}.{hint} Known: {', '.join(known)}.")
    env = NavixEnv(navix.make(name, **env_kwargs), name=f"navix:{name}")
    return env, env.default_params
