"""Brax's environments as gymnax ``Environment``s: ``brax:ant``, ``brax:humanoid``, ...

Wraps the raw environment from ``brax.envs.get_environment`` — not Brax's
``EpisodeWrapper``/``AutoResetWrapper``, whose auto-reset overwrites the
observation an episode ended in. Brax's ``done`` is a termination (the body
fell, ...); the time limit is ours, through gymnax's ``is_truncated``
(``state.time >= params.max_steps_in_episode``), so ``VecEnv`` can keep the
final observation of a truncated episode and bootstrap from it.

``PipelineEnv`` is the adapter for any suite whose environments have Brax's
shape (``reset(rng) -> State``, ``step(State, action) -> State`` with ``obs``,
``reward``, ``done``): MuJoCo Playground's use it too (``playground.py``).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from brax import envs as brax_envs  # a missing package names the extra (ppo_jax.envs.suite_module)
from flax import struct
from gymnax.environments import environment, spaces

from ppo_jax.envs import EnvError

BACKENDS = ("mjx", "generalized", "positional", "spring")


def _suite_numpy():
    """Trace a suite's own code with JAX's default rank promotion: the suites rely on it,
    while our tests (and careful users) set ``jax_numpy_rank_promotion="raise"``."""
    return jax.numpy_rank_promotion("allow")


@struct.dataclass
class PipelineEnvState:
    """The suite's own state and the steps taken since the reset (gymnax's time limit reads ``time``).

    ``inner`` holds the leaves of the suite's State without its zero-size arrays
    (MJX keeps empty contact buffers; orbax refuses to checkpoint them), in
    tree order; ``PipelineEnv`` rebuilds the State from them.
    """

    inner: Any  # tuple of the suite's State leaves that are not empty
    time: jax.Array  # int32 []


@struct.dataclass
class PipelineEnvParams:
    max_steps_in_episode: int = 1000


class PipelineEnv(environment.Environment):
    """A Brax-shaped environment as a gymnax 1.0 ``Environment``.

    ``step_env`` steps the raw environment ``action_repeat`` times (the
    rewards summed, as Brax's ``EpisodeWrapper`` does) and reports its
    ``done`` as the termination; it never resets. A step key is not used:
    these suites draw their randomness from the state.
    """

    def __init__(
        self,
        inner: Any,
        name: str,
        max_steps_in_episode: int,
        action_low: float = -1.0,
        action_high: float = 1.0,
        action_repeat: int = 1,
        obs_fn: Callable[[Any], jax.Array] = lambda obs: obs,
    ):
        super().__init__()
        self.inner = inner
        self._name = name
        self._max_steps = int(max_steps_in_episode)
        self._action_repeat = int(action_repeat)
        self._obs_fn = obs_fn
        self._action_low = float(action_low)
        self._action_high = float(action_high)
        with _suite_numpy():
            abstract = jax.eval_shape(inner.reset, jax.random.PRNGKey(0))
            obs = jax.eval_shape(obs_fn, abstract.obs)
        self._obs_shape = tuple(int(d) for d in obs.shape)
        leaves, self._treedef = jax.tree.flatten(abstract)
        # The suite's zero-size leaves, by position: rebuilt as empty arrays, never stored.
        self._empty = {i: (leaf.shape, leaf.dtype) for i, leaf in enumerate(leaves) if leaf.size == 0}
        self._action_size = int(inner.action_size)

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_params(self) -> PipelineEnvParams:
        return PipelineEnvParams(max_steps_in_episode=self._max_steps)

    def reset_env(self, key: jax.Array, params: PipelineEnvParams) -> tuple[jax.Array, PipelineEnvState]:
        with _suite_numpy():
            inner = self.inner.reset(key)
        return self._obs(inner), PipelineEnvState(inner=self._pack(inner), time=jnp.zeros((), jnp.int32))

    def step_env(self, key: jax.Array, state: PipelineEnvState, action: jax.Array, params: PipelineEnvParams):
        del key
        with _suite_numpy():
            if self._action_repeat == 1:
                inner = self.inner.step(self.suite_state(state), action)
                reward = inner.reward
            else:

                def repeat(s, _):
                    s = self.inner.step(s, action)
                    return s, s.reward

                inner, rewards = jax.lax.scan(
                    repeat, self.suite_state(state), None, length=self._action_repeat
                )
                reward = jnp.sum(rewards, axis=0)
        terminated = jnp.asarray(inner.done) > 0.5  # Brax's done is a float 0/1
        new_state = PipelineEnvState(inner=self._pack(inner), time=state.time + 1)
        return self._obs(inner), new_state, jnp.asarray(reward, jnp.float32), terminated, {}

    def _pack(self, inner) -> tuple:
        leaves, treedef = jax.tree.flatten(inner)
        if treedef != self._treedef:  # type: ignore[operator]  # jaxlib's stub leaves PyTreeDef's == out
            raise ValueError(
                f"{self._name}: the suite's state changed structure in a step ({treedef} != {self._treedef})"
            )
        return tuple(leaf for i, leaf in enumerate(leaves) if i not in self._empty)

    def suite_state(self, state: PipelineEnvState):
        """The suite's own State (``brax.envs.State``, Playground's ``State``) of ``state``."""
        stored = iter(state.inner)
        leaves = [
            jnp.zeros(*self._empty[i]) if i in self._empty else next(stored)
            for i in range(self._treedef.num_leaves)  # type: ignore[attr-defined]  # as above
        ]
        return jax.tree.unflatten(self._treedef, leaves)

    def _obs(self, inner) -> jax.Array:
        return jnp.asarray(self._obs_fn(inner.obs), jnp.float32)

    def is_terminated(self, state: PipelineEnvState, params: PipelineEnvParams) -> jax.Array:
        return jnp.asarray(self.suite_state(state).done) > 0.5

    @property
    def num_actions(self) -> int:
        return self._action_size

    def action_space(self, params: PipelineEnvParams | None = None) -> spaces.Box:
        return spaces.Box(self._action_low, self._action_high, (self._action_size,), jnp.float32)

    def observation_space(self, params: PipelineEnvParams) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, self._obs_shape, jnp.float32)


def make(name: str, backend: str | None = None, episode_length: int = 1000, **env_kwargs):
    """``(env, params)`` for Brax's environment ``name`` (``ant``, ``humanoid``, ...).

    Args:
      name: a name in Brax's registry (``brax.envs.get_environment``).
      backend: the physics pipeline, one of ``mjx``, ``generalized``,
        ``positional``, ``spring``; ``None`` keeps the environment's own default.
      episode_length: the time limit in steps (a truncation, ours).
      **env_kwargs: passed to the environment's constructor.

    Actions are in [-1, 1] (Brax's convention: each actuator's control range).
    """
    known = sorted(brax_envs._envs)
    if name not in known:
        raise EnvError(f"brax:{name}: not one of Brax's environments; known: {', '.join(known)}")
    if backend is not None:
        if backend not in BACKENDS:
            raise EnvError(f"brax:{name}: backend {backend!r} is not one of {', '.join(BACKENDS)}")
        env_kwargs = {**env_kwargs, "backend": backend}
    if int(episode_length) < 1:
        raise EnvError(
            f"brax:{name}: episode_length must be a positive number of steps, got {episode_length}"
        )
    inner = brax_envs.get_environment(name, **env_kwargs)
    env = PipelineEnv(inner, f"brax:{name}", int(episode_length))
    return env, env.default_params
