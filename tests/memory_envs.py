"""Partially observed test envs for recurrent policies, until ``obs_indices`` lands.

``SelectObs`` keeps only some features of a flat gymnax observation;
``register()`` adds ``CartPole-v1-stateless`` (cart position and pole angle, no
velocities) to ``ppo_jax.envs``' ids for tests and measurements in this process.
Once the config key ``obs_indices`` is merged, ``CartPole-v1`` with
``obs_indices: [0, 2]`` is the same task.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces
from gymnax.wrappers.purerl import GymnaxWrapper

STATELESS_CARTPOLE = "CartPole-v1-stateless"


class SelectObs(GymnaxWrapper):
    """Observations reduced to ``indices`` of the wrapped env's flat observation."""

    def __init__(self, env, indices):
        super().__init__(env)
        self.indices = jnp.asarray(indices, jnp.int32)
        self._numpy_indices = list(indices)

    def reset_env(self, key, params):
        obs, state = self._env.reset_env(key, params)
        return obs[self.indices], state

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return obs[self.indices], state

    def step_env(self, key, state, action, params):
        obs, state, reward, done, info = self._env.step_env(key, state, action, params)
        return obs[self.indices], state, reward, done, info

    def observation_space(self, params):
        space = self._env.observation_space(params)
        idx = np.asarray(self._numpy_indices)
        return spaces.Box(np.asarray(space.low)[idx], np.asarray(space.high)[idx], (len(idx),), space.dtype)


def register() -> None:
    """Make ``CartPole-v1-stateless`` known to ``ppo_jax.envs`` (and so to configs and VecEnv)."""
    from ppo_jax import envs

    if getattr(envs, "_memory_envs_registered", False):
        return
    original_make, original_ids = envs.make, envs.registered_env_ids

    @functools.lru_cache(maxsize=None)
    def make(env_id):
        if env_id == STATELESS_CARTPOLE:
            env, params = original_make("CartPole-v1")
            return SelectObs(env, [0, 2]), params
        return original_make(env_id)

    envs.make = make
    envs._make = make
    envs.registered_env_ids = lambda: original_ids() + [STATELESS_CARTPOLE]
    envs.env_spec.cache_clear()
    envs._memory_envs_registered = True
