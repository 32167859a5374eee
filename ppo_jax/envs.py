"""gymnax environments, vectorized, with episode bookkeeping.

Uses gymnax ≥ 1.0's step, which returns ``(obs, state, reward, terminated,
truncated, info)`` and keeps the pre-reset observation in
``info["final_observation"]``. That observation is passed on so that steps cut
by a time limit can be bootstrapped from the value of their true successor.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import chex
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
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


def registered_env_ids() -> list[str]:
    return list(gymnax.registered_envs)


@functools.lru_cache(maxsize=None)
def _make(env_id: str):
    return gymnax.make(env_id)


@functools.lru_cache(maxsize=None)
def env_spec(env_id: str) -> EnvSpec:
    env, params = _make(env_id)
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


@struct.dataclass
class VecEnvState:
    """The state of ``B`` environments and their running episodes."""

    env_state: Any  # gymnax state pytree, leaves [B, ...]
    obs: chex.Array  # [B, *obs_shape] float32, the current (post-reset) observation
    episode_return: chex.Array  # [B] float32, undiscounted, raw rewards so far
    episode_length: chex.Array  # [B] int32


class StepResult(NamedTuple):
    """What one vectorized step returns beside the new state; leaves are [B, ...]."""

    reward: chex.Array  # float32, raw
    terminated: chex.Array  # bool: the successor is terminal
    truncated: chex.Array  # bool: a time limit cut the episode (and it did not terminate)
    final_obs: chex.Array  # float32, the true successor observation (pre-reset)
    episode_return: chex.Array  # float32, return of the episode that ended here (0 elsewhere)
    episode_length: chex.Array  # int32, its length (0 elsewhere)


class VecEnv:
    """``B`` copies of one gymnax env stepped in lockstep with ``vmap``.

    Holds only static things (the env object, its params and spec); every
    method is a pure function of its arguments.
    """

    def __init__(self, env_id: str):
        self.env, self.params = _make(env_id)
        self.spec = env_spec(env_id)

    def reset(self, key: chex.PRNGKey, num_envs: int) -> VecEnvState:
        keys = jax.random.split(key, num_envs)
        obs, env_state = jax.vmap(self.env.reset, in_axes=(0, None))(keys, self.params)
        return VecEnvState(
            env_state=env_state,
            obs=obs.astype(jnp.float32),
            episode_return=jnp.zeros((num_envs,), jnp.float32),
            episode_length=jnp.zeros((num_envs,), jnp.int32),
        )

    def to_env_action(self, action: chex.Array) -> chex.Array:
        """Continuous actions are clipped to the bounds; the raw sample stays with the learner."""
        if self.spec.discrete:
            return action
        low = jnp.broadcast_to(jnp.asarray(self.spec.action_low, jnp.float32), action.shape)
        high = jnp.broadcast_to(jnp.asarray(self.spec.action_high, jnp.float32), action.shape)
        return jnp.clip(action, low, high)

    def step(
        self, key: chex.PRNGKey, state: VecEnvState, action: chex.Array
    ) -> tuple[VecEnvState, StepResult]:
        num_envs = state.obs.shape[0]
        keys = jax.random.split(key, num_envs)
        env_action = self.to_env_action(action)
        obs, env_state, reward, terminated, truncated, info = jax.vmap(
            self.env.step, in_axes=(0, 0, 0, None)
        )(keys, state.env_state, env_action, self.params)
        reward = reward.astype(jnp.float32)
        terminated = terminated.astype(bool)
        # A step that both terminates and hits the limit is a termination.
        truncated = jnp.logical_and(truncated.astype(bool), ~terminated)
        done = terminated | truncated
        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1
        result = StepResult(
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            final_obs=info["final_observation"].astype(jnp.float32),
            episode_return=jnp.where(done, episode_return, 0.0),
            episode_length=jnp.where(done, episode_length, 0),
        )
        new_state = VecEnvState(
            env_state=env_state,
            obs=obs.astype(jnp.float32),
            episode_return=jnp.where(done, 0.0, episode_return),
            episode_length=jnp.where(done, 0, episode_length),
        )
        return new_state, result


@struct.dataclass
class NormState:
    """Observation and reward normalization statistics; part of the train state.

    Statistics are frozen while a rollout is collected and merged after it, so
    every sample of one rollout is normalized the same way and the stored
    log-probabilities stay exact for the update.
    """

    obs: Any  # RunningMeanStd over [*obs_shape]
    ret: Any  # RunningMeanStd over [] (discounted returns, for reward scaling)
    discounted_return: chex.Array  # [B] float32, running discounted return per env
