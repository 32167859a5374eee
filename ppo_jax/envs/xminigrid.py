"""``xminigrid:<Name>`` (``xminigrid:MiniGrid-Empty-6x6``): xLand-MiniGrid as a gymnax ``Environment``.

The raw environment's ``reset(params, key)`` and ``step(params, timestep,
action)`` are wrapped (not its auto-reset wrappers), so no final observation
is lost. Endings: ``LAST`` with ``discount == 0`` is a termination (the goal
reached), ``LAST`` with discount 1 the suite's time limit, a truncation. That
limit is ``params.max_steps_in_episode`` (the suite's ``max_steps``; the
config's ``max_episode_steps`` replaces it, and the suite's reward,
``1 − 0.9·t/max_steps``, uses the replaced value).

The observation is the agent's view, ``[view, view, 2]`` integers (tile and
colour ids), flattened to a float vector by ``FlattenObservation``. There is no
action mask.
"""

from __future__ import annotations

from typing import Any

import chex
import jax.numpy as jnp
import xminigrid
from flax import struct
from gymnax.environments import environment, spaces
from xminigrid.types import StepType


@struct.dataclass
class XMiniGridState:
    timestep: Any  # the suite's TimeStep: its state and last observation
    time: chex.Array  # int32, steps taken in this episode


@struct.dataclass
class XMiniGridParams:
    inner: Any  # the suite's EnvParams (static fields)
    max_steps_in_episode: int = struct.field(pytree_node=False, default=100)

    def suite_params(self) -> Any:
        return self.inner.replace(max_steps=self.max_steps_in_episode)


class XMiniGridEnv(environment.Environment):
    def __init__(self, env: Any, params: Any, name: str):
        self.xminigrid_env = env
        self._params = XMiniGridParams(params, int(params.max_steps))
        self._name = name

    @property
    def default_params(self) -> XMiniGridParams:
        return self._params

    @property
    def name(self) -> str:
        return self._name

    def reset_env(self, key, params):
        timestep = self.xminigrid_env.reset(params.suite_params(), key)
        return timestep.observation, XMiniGridState(timestep, jnp.asarray(0, jnp.int32))

    def step_env(self, key, state, action, params):
        timestep = self.xminigrid_env.step(params.suite_params(), state.timestep, action)
        terminated = (timestep.step_type == StepType.LAST) & (timestep.discount == 0)
        reward = jnp.asarray(timestep.reward, jnp.float32)
        return timestep.observation, XMiniGridState(timestep, state.time + 1), reward, terminated, {}

    def is_truncated(self, state, params):
        return state.time >= params.max_steps_in_episode

    def action_space(self, params):
        return spaces.Discrete(int(self.xminigrid_env.num_actions(params.inner)))

    def observation_space(self, params):
        shape = self.xminigrid_env.observation_shape(params.inner)
        return spaces.Box(0, 255, tuple(shape), jnp.uint8)

    def render_rgb(self, state: XMiniGridState, params: XMiniGridParams):
        """An RGB image ``[H, W, 3]`` uint8 of the whole grid, by the suite's own renderer (host side)."""
        import numpy as np

        suite = params.suite_params().replace(render_mode="rgb_array")
        return np.asarray(self.xminigrid_env.render(suite, state.timestep))


def _with_kwargs(env: Any, params: Any, env_kwargs: dict) -> Any:
    """``params`` with ``env_kwargs`` applied, the limits that follow from them re-derived.

    Each env's ``default_params`` derives ``max_steps`` from the grid's size (its own
    formula: 4·h·w for Empty, 3·h·w for XLand, 10·h·w for DoorKey), and ``xminigrid.make``
    applies its kwargs after that; so a new ``height`` or ``width`` without ``max_steps``
    goes back through ``default_params`` with every other field kept.
    """
    if "max_steps" in env_kwargs or not {"height", "width"} & set(env_kwargs):
        return params.replace(**env_kwargs)
    kept = {f: getattr(params, f) for f in params.__dataclass_fields__ if f != "max_steps"}
    return env.default_params(**{**kept, **env_kwargs, "max_steps": None})


def make(name: str, **env_kwargs) -> tuple[XMiniGridEnv, XMiniGridParams]:
    """``(env, params)`` of xLand-MiniGrid's registered ``name``; ``env_kwargs`` replace its params' fields
    (a new ``height``/``width`` without ``max_steps`` re-derives ``max_steps`` as the suite does)."""
    from ppo_jax.envs import EnvError

    known = xminigrid.registered_environments()
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=2)
        hint = f" Did you mean {' or '.join(repr('xminigrid:' + c) for c in close)}?" if close else ""
        raise EnvError(f"xminigrid has no env {name!r}.{hint} Known: {', '.join(known)}.")
    env, params = xminigrid.make(name)
    if env_kwargs:
        fields = set(params.__dataclass_fields__)
        unknown = sorted(set(env_kwargs) - fields)
        if unknown:
            raise EnvError(
                f"xminigrid:{name}: env_kwargs {unknown} are not fields of its params ({', '.join(sorted(fields))})."
            )
        params = _with_kwargs(env, params, env_kwargs)
    wrapped = XMiniGridEnv(env, params, name=f"xminigrid:{name}")
    return wrapped, wrapped.default_params
