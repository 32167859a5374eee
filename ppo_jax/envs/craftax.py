"""Craftax as gymnax ``Environment``s: ``craftax:Craftax-Classic-Symbolic-v1``, ``craftax:Craftax-Symbolic-v1``.

Craftax's environments are gymnax-like with a 5-value step ``(obs, state,
reward, done, info)`` whose ``done`` folds the time limit
(``timestep >= max_timesteps``) into the endings of the game (death, lava, the
final boss). The adapter wraps the raw environment (``auto_reset=False``),
steps it with the time limit lifted so that its ``done`` is a termination, and
leaves the time limit to gymnax's ``is_truncated`` (``state.time >=
params.max_steps_in_episode``, Craftax's own ``max_timesteps`` by default), so
``VecEnv`` keeps the final observation of a truncated episode.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from craftax.craftax_env import make_craftax_env_from_name  # a missing package names the extra
from flax import struct
from gymnax.environments import environment, spaces

from ppo_jax.envs import EnvError

NAMES = ("Craftax-Classic-Symbolic-v1", "Craftax-Symbolic-v1")
_NO_LIMIT = 2**31 - 1


def _suite_numpy():
    """Trace Craftax's code with JAX's default rank promotion, which it relies on
    (our tests set ``jax_numpy_rank_promotion="raise"``)."""
    return jax.numpy_rank_promotion("allow")


@struct.dataclass
class CraftaxEnvState:
    inner: Any  # Craftax's EnvState
    time: jax.Array  # int32 [], steps since the reset


@struct.dataclass
class CraftaxEnvParams:
    max_steps_in_episode: int
    inner: Any  # Craftax's EnvParams (its max_timesteps is not used: the limit is ours)


class CraftaxEnv(environment.Environment):
    """A Craftax environment without auto-reset as a gymnax 1.0 ``Environment``."""

    def __init__(self, inner: Any, name: str):
        super().__init__()
        self.inner = inner
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_params(self) -> CraftaxEnvParams:
        inner = self.inner.default_params
        return CraftaxEnvParams(max_steps_in_episode=int(inner.max_timesteps), inner=inner)

    def reset_env(self, key: jax.Array, params: CraftaxEnvParams):
        with _suite_numpy():
            obs, inner = self.inner.reset_env(key, params.inner)
        return obs.astype(jnp.float32), CraftaxEnvState(inner=inner, time=jnp.zeros((), jnp.int32))

    def step_env(self, key: jax.Array, state: CraftaxEnvState, action: jax.Array, params: CraftaxEnvParams):
        with _suite_numpy():
            obs, inner, reward, terminated, info = self.inner.step_env(
                key, state.inner, action, self._without_time_limit(params)
            )
        new_state = CraftaxEnvState(inner=inner, time=state.time + 1)
        return obs.astype(jnp.float32), new_state, jnp.asarray(reward, jnp.float32), terminated, info

    def _without_time_limit(self, params: CraftaxEnvParams):
        return params.inner.replace(max_timesteps=_NO_LIMIT)

    def is_terminated(self, state: CraftaxEnvState, params: CraftaxEnvParams) -> jax.Array:
        with _suite_numpy():
            return self.inner.is_terminal(state.inner, self._without_time_limit(params))

    @property
    def num_actions(self) -> int:
        return int(self.inner.num_actions)

    def action_space(self, params: CraftaxEnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions)

    def observation_space(self, params: CraftaxEnvParams) -> spaces.Box:
        inner = self.inner.observation_space(params.inner)
        return spaces.Box(0.0, 1.0, tuple(inner.shape), jnp.float32)


def make(name: str, max_steps_in_episode: int | None = None, **env_kwargs):
    """``(env, params)`` for Craftax's environment ``name``.

    Args:
      name: ``Craftax-Classic-Symbolic-v1`` or ``Craftax-Symbolic-v1``.
      max_steps_in_episode: the time limit; default Craftax's own
        ``max_timesteps`` (10,000 for Classic, 100,000 for Craftax).
      **env_kwargs: fields of Craftax's ``EnvParams`` (``day_length``, ...).
        ``max_timesteps``, Craftax's own name for the time limit, sets it too.
    """
    if name not in NAMES:
        raise EnvError(f"craftax:{name}: not a supported Craftax environment; supported: {', '.join(NAMES)}")
    if "max_timesteps" in env_kwargs:
        # The adapter steps Craftax with its limit lifted and cuts episodes at
        # max_steps_in_episode itself; Craftax's field alone would be ignored.
        limit = env_kwargs["max_timesteps"]
        if max_steps_in_episode is not None and max_steps_in_episode != limit:
            raise EnvError(
                f"craftax:{name}: max_timesteps = {limit} and max_steps_in_episode = {max_steps_in_episode} "
                "name the same time limit; give one of them."
            )
        max_steps_in_episode = limit
    env = CraftaxEnv(make_craftax_env_from_name(name, auto_reset=False), f"craftax:{name}")
    params = env.default_params
    fields = set(params.inner.__dataclass_fields__)
    unknown = sorted(set(env_kwargs) - fields)
    if unknown:
        raise EnvError(
            f"craftax:{name}: unknown settings {unknown}; Craftax's EnvParams has {sorted(fields)}"
        )
    params = params.replace(inner=params.inner.replace(**env_kwargs))  # type: ignore[attr-defined]  # flax.struct
    if max_steps_in_episode is not None:
        if int(max_steps_in_episode) < 1:
            raise EnvError(
                f"craftax:{name}: max_steps_in_episode must be positive, got {max_steps_in_episode}"
            )
        params = params.replace(max_steps_in_episode=int(max_steps_in_episode))
    return env, params
