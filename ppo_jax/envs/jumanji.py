"""``jumanji:<Name>`` (``jumanji:Snake-v1``): InstaDeep's Jumanji as a gymnax ``Environment``.

The raw environment is wrapped (``reset(key)``, ``step(state, action)``), not
Jumanji's auto-reset wrappers, so no final observation is lost. Endings: a
``TimeStep`` with ``step_type == LAST`` and ``discount == 0`` is a termination;
``LAST`` with a non-zero discount is a truncation. The time limit is ours:
``max_steps_in_episode`` is the env's own ``time_limit`` (``env_kwargs:
{time_limit: N}`` or the config's ``max_episode_steps`` change it; 1000 for
envs without one), and the suite's own limit is switched off, because some
Jumanji envs (Snake) end at their time limit with discount 0, as if the
episode had terminated.

The observation (a NamedTuple or dataclass) becomes a dict of its fields
(flattened by ``FlattenObservation`` in sorted-key order); its
``action_mask``, where it has one, masks the policy's invalid actions.
"""

from __future__ import annotations

import inspect
from typing import Any

import chex
import jax.numpy as jnp
import jumanji
from flax import struct
from gymnax.environments import environment, spaces
from jumanji import specs
from jumanji.types import StepType

DEFAULT_TIME_LIMIT = 1000  # for envs without a time_limit of their own; max_episode_steps overrides it
_NEVER = 2**31 - 1


@struct.dataclass
class JumanjiState:
    inner: Any  # the Jumanji env's state
    time: chex.Array  # int32, steps taken in this episode
    suite_truncated: chex.Array  # bool, the last step was LAST with a non-zero discount


@struct.dataclass
class JumanjiParams:
    max_steps_in_episode: int = 1000


def _as_dict(observation: Any) -> Any:
    if hasattr(observation, "_asdict"):
        return dict(observation._asdict())
    if hasattr(observation, "__dataclass_fields__"):
        return {name: getattr(observation, name) for name in observation.__dataclass_fields__}
    return observation


class JumanjiEnv(environment.Environment):
    """A Jumanji ``Environment`` seen through gymnax's interface (one discrete or bounded action)."""

    def __init__(self, env: Any, max_steps_in_episode: int, name: str = "jumanji"):
        self.jumanji_env = env
        self._max_steps = int(max_steps_in_episode)
        self._name = name

    @property
    def default_params(self) -> JumanjiParams:
        return JumanjiParams(max_steps_in_episode=self._max_steps)

    @property
    def name(self) -> str:
        return self._name

    def reset_env(self, key, params):
        inner, timestep = self.jumanji_env.reset(key)
        state = JumanjiState(inner, jnp.asarray(0, jnp.int32), jnp.asarray(False))
        return _as_dict(timestep.observation), state

    def step_env(self, key, state, action, params):
        inner, timestep = self.jumanji_env.step(state.inner, action)
        last = timestep.step_type == StepType.LAST
        ended_by_suite = last & (timestep.discount != 0)
        terminated = last & (timestep.discount == 0)
        new_state = JumanjiState(inner, state.time + 1, ended_by_suite)
        reward = jnp.asarray(timestep.reward, jnp.float32)
        return _as_dict(timestep.observation), new_state, reward, terminated, {}

    def is_truncated(self, state, params):
        return (state.time >= params.max_steps_in_episode) | state.suite_truncated

    def action_space(self, params):
        spec = self.jumanji_env.action_spec
        if isinstance(spec, specs.DiscreteArray):
            return spaces.Discrete(int(spec.num_values))
        if isinstance(spec, specs.BoundedArray) and jnp.issubdtype(spec.dtype, jnp.floating):
            return spaces.Box(jnp.asarray(spec.minimum), jnp.asarray(spec.maximum), tuple(spec.shape))
        raise NotImplementedError(
            f"{self._name}: action spec {type(spec).__name__} {getattr(spec, 'shape', '')} is not supported "
            "(one discrete action or a box of continuous ones)."
        )

    def observation_space(self, params):
        return spaces.Dict({})  # structured; FlattenObservation reads the shapes from a reset


def make(name: str, **env_kwargs) -> tuple[JumanjiEnv, JumanjiParams]:
    """``(env, params)`` of Jumanji's registered ``name`` built with ``env_kwargs``."""
    from ppo_jax.envs import EnvError

    if name not in jumanji.registered_environments():
        import difflib

        known = sorted(jumanji.registered_environments())
        close = difflib.get_close_matches(name, known, n=2)
        hint = f" Did you mean {' or '.join(repr('jumanji:' + c) for c in close)}?" if close else ""
        raise EnvError(f"jumanji has no env {name!r}.{hint} Known: {', '.join(known)}.")
    env = jumanji.make(name, **env_kwargs)
    limit = getattr(env, "time_limit", None)
    if limit is not None and "time_limit" in inspect.signature(type(env).__init__).parameters:
        # Ours truncates at `limit` (or the config's max_episode_steps); the suite's own limit is
        # switched off, since some envs (Snake) end there with discount 0, as if terminated.
        env = jumanji.make(name, **{**env_kwargs, "time_limit": _NEVER})
    elif limit is None:
        limit = DEFAULT_TIME_LIMIT
    wrapped = JumanjiEnv(env, int(limit), name=f"jumanji:{name}")
    return wrapped, wrapped.default_params
