"""``VecEnv``: ``B`` copies of one environment stepped in lockstep, with our auto-reset.

Uses gymnax ≥ 1.0's step semantics: ``(obs, state, reward, terminated,
truncated, info)``, the pre-reset observation kept as the final observation, so
that steps cut by a time limit can be bootstrapped from the value of their true
successor.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ppo_jax.envs.wrappers import split_action_mask


@struct.dataclass
class VecEnvState:
    """The state of ``B`` environments and their running episodes."""

    env_state: Any  # gymnax state pytree, leaves [B, ...]
    obs: chex.Array  # [B, *obs_shape] float32, the current (post-reset) observation
    episode_return: chex.Array  # [B] float32, undiscounted, raw rewards so far
    episode_length: chex.Array  # [B] int32
    action_mask: Optional[chex.Array] = None  # [B, num_actions] bool, valid actions at obs; None: all valid


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

    Built from ``(env, params, spec)``: any gymnax ``Environment`` that
    observes one array (or a ``MaskedObservation``: an array and a mask of
    valid actions); ``envs.from_config`` makes one from a config. An env id
    string is accepted too (``VecEnv("CartPole-v1")``: the id's env, no kwargs,
    no wrappers). Holds only static things; every method is a pure function of
    its arguments.
    """

    def __init__(self, env: Any, params: Any = None, spec: Optional[Any] = None):
        from ppo_jax import envs

        if isinstance(env, str):
            env_id = env
            env, params = envs.make(env_id)
            from ppo_jax.envs import wrappers

            env = wrappers.FlattenObservation.if_needed(env, params)
            spec = spec or envs.spec_of(env, params, env_id)
        if params is None:
            params = env.default_params
        self.env, self.params = env, params
        self.spec = (
            spec if spec is not None else envs.spec_of(env, params, getattr(env, "name", type(env).__name__))
        )

    @classmethod
    def from_config(cls, config, env: Any = None, env_params: Any = None) -> "VecEnv":
        """The env of ``config`` (or the given instance), wrapped as the config says."""
        from ppo_jax import envs

        env, env_params = envs.from_config(config, env, env_params)
        return cls(env, env_params, envs.spec_of(env, env_params, config.env_id))

    def reset(self, key: chex.PRNGKey, num_envs: int) -> VecEnvState:
        keys = jax.random.split(key, num_envs)
        obs, env_state = jax.vmap(self.env.reset, in_axes=(0, None))(keys, self.params)
        obs, mask = split_action_mask(obs)
        return VecEnvState(
            env_state=env_state,
            obs=obs.astype(jnp.float32),
            episode_return=jnp.zeros((num_envs,), jnp.float32),
            episode_length=jnp.zeros((num_envs,), jnp.int32),
            action_mask=mask,
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
        """One step of every env; ``key`` is split into per-env step and reset keys."""
        key_step, key_reset = jax.random.split(key)
        num_envs = state.obs.shape[0]
        resets = self.reset_states(jax.random.split(key_reset, num_envs))
        return self.step_with(jax.random.split(key_step, num_envs), resets, state, action)

    def reset_states(self, keys: chex.PRNGKey) -> tuple[chex.Array, Any]:
        """``(obs, env_state)`` of fresh episodes, one per key, any batch shape: typed keys
        (``jax.random.key``) ``[...]`` or raw ``uint32`` keys ``[..., 2]``."""
        reset = lambda k: self.env.reset_env(k, self.params)
        typed = jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key)
        for _ in range(keys.ndim if typed else keys.ndim - 1):
            reset = jax.vmap(reset)
        return reset(keys)

    def reset_bytes(self) -> int:
        """Bytes of one env's reset state (observation and env state), from shapes alone."""
        keys = lambda: jax.random.split(jax.random.PRNGKey(0), 1)  # the default PRNG impl's key shape
        shapes = jax.eval_shape(lambda: self.reset_states(keys()))  # no eager op
        return sum(int(np.prod(x.shape[1:])) * x.dtype.itemsize for x in jax.tree.leaves(shapes))

    def step_with(
        self,
        step_keys: chex.PRNGKey,
        resets: tuple[chex.Array, Any],
        state: VecEnvState,
        action: chex.Array,
    ) -> tuple[VecEnvState, StepResult]:
        """One step of every env with keys and reset states drawn by the caller.

        ``step_keys`` is ``[B]`` keys; ``resets`` is ``reset_states`` of ``[B]``
        keys, the episodes that start where one ends. gymnax's own
        ``Environment.step`` splits its key and computes a reset inside every
        step; on XLA's CPU backend each of those random draws is a small loop of
        its own. A rollout that draws the keys and resets of all its ``T`` steps
        in one batched call before its loop keeps them out of the loop body.
        The semantics are gymnax's ``step``: ``step_env``, ``is_truncated``, the
        reset where the episode ended, the pre-reset observation kept as the
        final observation.
        """
        obs_re, state_re = resets
        obs_re, mask_re = split_action_mask(obs_re)
        env, params = self.env, self.params
        env_action = self.to_env_action(action)
        obs_st, state_st, reward, terminated, _ = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(
            step_keys, state.env_state, env_action, params
        )
        obs_st, mask_st = split_action_mask(obs_st)
        truncated = jax.vmap(env.is_truncated, in_axes=(0, None))(state_st, params)
        reward = reward.astype(jnp.float32)
        terminated = terminated.astype(bool)
        # A step that both terminates and hits the limit is a termination.
        truncated = jnp.logical_and(truncated.astype(bool), ~terminated)
        done = terminated | truncated

        def pick(reset_leaf, step_leaf):
            mask = done.reshape(done.shape + (1,) * (step_leaf.ndim - 1))
            return jnp.where(mask, reset_leaf, step_leaf)

        env_state = jax.tree.map(pick, state_re, state_st)
        obs = pick(obs_re, obs_st).astype(jnp.float32)
        mask = None if mask_st is None else pick(mask_re, mask_st)
        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1
        result = StepResult(
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            final_obs=obs_st.astype(jnp.float32),
            episode_return=jnp.where(done, episode_return, 0.0),
            episode_length=jnp.where(done, episode_length, 0),
        )
        new_state = VecEnvState(
            env_state=env_state,
            obs=obs,
            episode_return=jnp.where(done, 0.0, episode_return),
            episode_length=jnp.where(done, 0, episode_length),
            action_mask=mask,
        )
        return new_state, result
