"""Thin gymnax-style wrappers: each is itself an ``Environment`` around another.

- ``FlattenObservation``: a structured observation (dict, tuple, NamedTuple or
  dataclass of arrays: a grid plus features, ...) becomes one float32 vector:
  every leaf raveled (row-major) and concatenated in ``jax.tree`` order (dict
  keys sorted, NamedTuple and dataclass fields in declaration order). An
  ``action_mask`` entry is not a feature: it travels beside the vector in a
  ``MaskedObservation``.
- ``SelectObservation``: keeps the listed features of a flat observation
  (``obs_indices``; ``CartPole-v1`` with ``[0, 2]`` is stateless CartPole).
- ``TimeLimit``: counts steps and truncates at a limit, for envs whose params
  have no ``max_steps_in_episode``.

They wrap ``reset_env``/``step_env``/``is_truncated`` (gymnax's inner
methods), not the auto-resetting ``step``, so ``VecEnv``'s own auto-reset keeps
the final observation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

MASK_KEY = "action_mask"


class MaskedObservation(NamedTuple):
    """A flat observation and the mask of valid actions that came with it."""

    obs: chex.Array  # [*obs_shape] float32
    action_mask: chex.Array  # [num_actions] bool, True where the action is valid


def split_action_mask(obs: Any) -> tuple[Any, Optional[chex.Array]]:
    """``(observation, action_mask or None)``."""
    if isinstance(obs, MaskedObservation):
        return obs.obs, obs.action_mask
    return obs, None


def _take_mask(obs: Any) -> tuple[Any, Optional[chex.Array]]:
    """Remove the ``action_mask`` entry of a structured observation, if any."""
    if isinstance(obs, dict) and MASK_KEY in obs:
        return {k: v for k, v in obs.items() if k != MASK_KEY}, obs[MASK_KEY]
    if hasattr(obs, MASK_KEY):
        mask = getattr(obs, MASK_KEY)
        if hasattr(obs, "_replace"):  # NamedTuple
            return obs._replace(**{MASK_KEY: None}), mask
        if dataclasses.is_dataclass(obs) and not isinstance(obs, type):
            return dataclasses.replace(obs, **{MASK_KEY: None}), mask
    return obs, None


def flatten_observation(obs: Any) -> Any:
    """One float32 vector of every leaf (tree order), plus the action mask if the observation has one."""
    rest, mask = _take_mask(obs)
    leaves = jax.tree.leaves(rest)
    if not leaves:
        raise ValueError("the observation has no arrays besides its action mask")
    flat = jnp.concatenate([jnp.ravel(jnp.asarray(leaf)).astype(jnp.float32) for leaf in leaves])
    if mask is None:
        return flat
    return MaskedObservation(flat, jnp.asarray(mask).astype(bool).reshape(-1))


class Wrapper(environment.Environment):
    """Delegates everything to ``self.env``; subclasses change what they wrap."""

    def __init__(self, env: Any):
        self.env = env

    def __getattr__(self, name: str) -> Any:  # only reached for names the wrapper lacks
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    @property
    def default_params(self) -> Any:
        return self.env.default_params

    def reset_env(self, key, params):
        return self.env.reset_env(key, params)

    def step_env(self, key, state, action, params):
        return self.env.step_env(key, state, action, params)

    def is_truncated(self, state, params):
        return self.env.is_truncated(state, params)

    def action_space(self, params):
        return self.env.action_space(params)

    def observation_space(self, params):
        return self.env.observation_space(params)

    def state_space(self, params):
        return self.env.state_space(params)

    @property
    def name(self) -> str:
        return getattr(self.env, "name", type(self.env).__name__)

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    @property
    def unwrapped(self) -> Any:
        return getattr(self.env, "unwrapped", self.env)


class _ObservationWrapper(Wrapper):
    def observation(self, obs: Any) -> Any:
        raise NotImplementedError

    def reset_env(self, key, params):
        obs, state = self.env.reset_env(key, params)
        return self.observation(obs), state

    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = self.env.step_env(key, state, action, params)
        return self.observation(obs), state, reward, terminated, info


def _obs_shape(env: Any, params: Any) -> Any:
    return jax.eval_shape(lambda key: env.reset_env(key, params)[0], jax.random.PRNGKey(0))


class FlattenObservation(_ObservationWrapper):
    """Structured observations to one float32 vector (see the module docstring for the order)."""

    def __init__(self, env: Any, size: int):
        super().__init__(env)
        self.size = size

    @classmethod
    def if_needed(cls, env: Any, params: Any) -> Any:
        """``env`` itself if it observes one array, else ``env`` wrapped."""
        obs = _obs_shape(env, params)
        if isinstance(obs, (jax.ShapeDtypeStruct, MaskedObservation)):
            return env
        flat, _ = split_action_mask(jax.eval_shape(flatten_observation, obs))
        return cls(env, int(flat.shape[0]))

    def observation(self, obs):
        return flatten_observation(obs)

    def observation_space(self, params):
        return spaces.Box(-jnp.inf, jnp.inf, (self.size,), jnp.float32)


class SelectObservation(_ObservationWrapper):
    """Keeps the features ``indices`` of a flat observation ``[N]``."""

    def __init__(self, env: Any, indices: tuple[int, ...]):
        super().__init__(env)
        self.indices = tuple(int(i) for i in indices)

    @staticmethod
    def check(env: Any, params: Any, indices: tuple[int, ...]) -> Optional[str]:
        """What is wrong with ``indices`` for this env's observation, or None."""
        obs, _ = split_action_mask(_obs_shape(env, params))
        if len(obs.shape) != 1:
            return f"'obs_indices' needs a flat observation [N]; this env observes shape {tuple(obs.shape)}."
        size = int(obs.shape[0])
        if not indices:
            return "'obs_indices' must list at least one feature (or be null: all of them)."
        bad = [i for i in indices if not 0 <= i < size]
        if bad:
            return f"'obs_indices' {list(indices)}: {bad} outside the observation's {size} features (0..{size - 1})."
        if len(set(indices)) != len(indices):
            return f"'obs_indices' {list(indices)} lists a feature twice."
        return None

    def observation(self, obs):
        obs, mask = split_action_mask(obs)
        selected = obs[..., jnp.asarray(self.indices)]
        return selected if mask is None else MaskedObservation(selected, mask)

    def observation_space(self, params):
        space = self.env.observation_space(params)
        index = jnp.asarray(self.indices)
        low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), space.shape)[index]
        high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), space.shape)[index]
        return spaces.Box(low, high, (len(self.indices),), jnp.float32)


@struct.dataclass
class TimeLimitState:
    env_state: Any
    time: chex.Array  # int32, steps taken in this episode


class TimeLimit(Wrapper):
    """Truncates after ``max_episode_steps`` steps; the inner env's ``is_truncated`` is not called."""

    def __init__(self, env: Any, max_episode_steps: int):
        super().__init__(env)
        self.max_episode_steps = int(max_episode_steps)

    def reset_env(self, key, params):
        obs, state = self.env.reset_env(key, params)
        return obs, TimeLimitState(state, jnp.asarray(0, jnp.int32))

    def step_env(self, key, state, action, params):
        obs, inner, reward, terminated, info = self.env.step_env(key, state.env_state, action, params)
        return obs, TimeLimitState(inner, state.time + 1), reward, terminated, info

    def is_truncated(self, state, params):
        return state.time >= self.max_episode_steps
