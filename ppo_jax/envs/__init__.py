"""Environments: one interface (gymnax 1.0's ``Environment``) and the ids that make one.

An ``env_id`` takes one of three forms:

- ``CartPole-v1``: a plain gymnax id (``envs/gymnax.py``);
- ``suite:name`` such as ``jumanji:Snake-v1``: the adapter module of a suite
  (``SUITES``), which exposes ``make(name, **env_kwargs) -> (env, params)``;
- ``package.module:Name``: a user's ``Environment`` subclass or a factory
  returning one (or ``(env, params)``), imported and called with ``env_kwargs``
  (``envs/user.py``).

``make(env_id, **env_kwargs)`` builds the raw env; ``from_config(config, env,
env_params)`` the env the trainer steps: the config's id (or the given
instance) wrapped by the config's observation choices and time limit.
``spec_of`` says what networks and config checks need to know. ``VecEnv``
(``vec.py``) steps ``B`` copies with our own auto-reset.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
from typing import Any, NamedTuple, Optional

import numpy as np

from ppo_jax.envs.suites import SUITES, Suite
from ppo_jax.spec import EnvSpec


def storage_dtype(env_id: str) -> str:
    """The narrowest dtype that holds every observation of ``env_id`` exactly: gymnax's
    MinAtar games are 0/1 images (float32 on the way out), stored as uint8. Anything
    else is kept as float32.
    """
    if ":" not in env_id and env_id.endswith("-MinAtar"):
        return "uint8"
    return "float32"


class EnvError(ValueError):
    """A user error in choosing or building an env: says what was wrong and what would be right."""


_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class EnvId(NamedTuple):
    """A parsed ``env_id``: ``kind`` is 'gymnax', 'suite' or 'user'."""

    kind: str
    prefix: str  # the suite's prefix, or the module path of a user env, or ''
    name: str  # the gymnax id, the suite's env name, or the attribute of a user env


def parse_env_id(env_id: str) -> EnvId:
    """Split ``env_id`` into its form; raise ``EnvError`` for an id no form accepts."""
    if not isinstance(env_id, str) or not env_id.strip():
        raise EnvError(f"'env_id' must be a non-empty string, got {env_id!r}.")
    if ":" not in env_id:
        return EnvId("gymnax", "", env_id)
    prefix, name = env_id.split(":", 1)
    if prefix in SUITES:
        if not name:
            raise EnvError(
                f"'env_id' {env_id!r} names no env after '{prefix}:'; write e.g. '{prefix}:<name>'."
            )
        return EnvId("suite", prefix, name)
    if env_id.count(":") == 1 and _MODULE.match(prefix) and "." not in prefix and not _importable(prefix):
        import difflib
        import os

        close = difflib.get_close_matches(prefix, list(SUITES), n=1)
        if close:
            raise EnvError(
                f"'env_id' {env_id!r}: unknown suite '{prefix}'. Did you mean '{close[0]}:{name}'? "
                f"Suites: {', '.join(SUITES)} (e.g. 'jumanji:Snake-v1'); a user env is "
                "'package.module:ClassOrFactory'."
            )
        raise EnvError(
            f"'env_id' {env_id!r}: cannot import {prefix!r} (looked in {os.getcwd()} and on the import "
            f"path), and it is no suite ({', '.join(SUITES)}). If it is your own module, run from the "
            f"directory that contains {prefix}.py (or add that directory to PYTHONPATH)."
        )
    if _IMPORT_PATH.match(env_id):
        return EnvId("user", prefix, name)
    raise EnvError(
        f"'env_id' {env_id!r} is neither a gymnax id (no colon), a suite id ('suite:name', suites: "
        f"{', '.join(SUITES)}), nor an import path ('package.module:ClassOrFactory')."
    )


def _importable(name: str) -> bool:
    """Whether a top-level module ``name`` can be found (the current directory included)."""
    import importlib.util

    from ppo_jax.envs import user

    user.add_cwd_to_path()
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def registered_env_ids() -> list[str]:
    """The plain (gymnax) ids."""
    import gymnax

    return list(gymnax.registered_envs)


def suite_module(prefix: str):
    """The adapter module of suite ``prefix``; ``EnvError`` naming the extra if its package is missing."""
    module_name, extra, _ = SUITES[prefix]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            raise EnvError(
                f"suite '{prefix}' has no adapter in this version of ppo_jax ({module_name})."
            ) from None
        raise EnvError(
            f"suite '{prefix}' needs its package, which is not installed ({err}). "
            f'Install it with: pip install -e ".[{extra}]" (or pip install "ppo_jax[{extra}]").'
        ) from None


def _freeze(value: Any) -> Any:
    """A hashable stand-in for nested kwargs (the cache key of ``make``)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


_MADE: dict = {}


def make(env_id: str, **env_kwargs) -> tuple[Any, Any]:
    """``(env, params)`` of ``env_id``, built with ``env_kwargs``; the same objects for the same arguments."""
    key: Optional[tuple] = (env_id, _freeze(env_kwargs))
    try:
        hash(key)
    except TypeError:
        key = None
    if key is not None and key in _MADE:
        return _MADE[key]
    parsed = parse_env_id(env_id)
    if parsed.kind == "gymnax":
        from ppo_jax.envs import gymnax as gymnax_ids

        made = gymnax_ids.make(parsed.name, **env_kwargs)
    elif parsed.kind == "suite":
        made = _checked(env_id, suite_module(parsed.prefix).make(parsed.name, **env_kwargs))
    else:
        from ppo_jax.envs import user

        made = _checked(env_id, user.make(parsed.prefix, parsed.name, **env_kwargs), own=True)
    if key is not None:
        _MADE[key] = made
    return made


def _checked(env_id: str, made: Any, own: bool = False) -> tuple[Any, Any]:
    """``(env, params)`` from an adapter's or user factory's result, or an ``EnvError``.
    ``own``: a user's env, held to gymnax's ``Environment`` itself (``user.check_class``)."""
    env, params = made if isinstance(made, tuple) and len(made) == 2 else (made, None)
    if own:
        from ppo_jax.envs import user

        user.check_class(env, env_id)
    missing = [m for m in ("reset_env", "step_env", "action_space") if not callable(getattr(env, m, None))]
    if missing:
        raise EnvError(
            f"{env_id} built a {type(env).__name__}, which is not a gymnax Environment "
            f"(it lacks {', '.join(missing)}). Subclass gymnax.environments.environment.Environment."
        )
    if params is None:
        params = env.default_params
    if own:
        user.check_params(env, params, env_id)
    return env, params


# ---------------------------------------------------------------------------
# The env the trainer steps: id or instance, then wrappers
# ---------------------------------------------------------------------------


def time_limit_of(params: Any) -> Optional[int]:
    """``params.max_steps_in_episode`` where the params have it (gymnax's convention)."""
    limit = getattr(params, "max_steps_in_episode", None)
    return None if limit is None else int(limit)


def from_config(config, env: Any = None, env_params: Any = None) -> tuple[Any, Any]:
    """The ``(env, params)`` a run of ``config`` steps.

    Without ``env``, ``config.env_id`` is built with ``config.env_kwargs``; with
    one, that instance is used (``env_params`` default to its
    ``default_params``) and ``config.env_id`` is only its label. Then, in this
    order: a structured observation is flattened to one vector
    (``FlattenObservation``; an ``action_mask`` entry is kept apart), only the
    features ``config.obs_indices`` are kept (``SelectObservation``), and the
    time limit is set: ``config.max_episode_steps`` replaces the params'
    ``max_steps_in_episode``, or, for params without one, a ``TimeLimit``
    wrapper counts the steps.
    """
    from ppo_jax.envs import wrappers

    if env is None:
        if env_params is not None:
            raise EnvError("env_params were given without an env; pass env= too.")
        env, env_params = make(config.env_id, **dict(config.env_kwargs or {}))
    else:
        env, env_params = _checked(f"the env given for {config.env_id!r}", (env, env_params), own=True)
    env = wrappers.FlattenObservation.if_needed(env, env_params)
    if config.obs_indices is not None:
        problem = wrappers.SelectObservation.check(env, env_params, tuple(config.obs_indices))
        if problem:
            raise EnvError(f"{config.env_id}: {problem}")
        env = wrappers.SelectObservation(env, tuple(config.obs_indices))
    limit = config.max_episode_steps
    if time_limit_of(env_params) is not None:
        if limit is not None:
            env_params = _replace(env_params, max_steps_in_episode=limit)
    elif limit is not None:
        env = wrappers.TimeLimit(env, limit)
    return env, env_params


def _replace(params: Any, **changes) -> Any:
    if hasattr(params, "replace"):  # flax.struct
        return params.replace(**changes)
    if hasattr(params, "_replace"):  # NamedTuple
        return params._replace(**changes)
    return dataclasses.replace(params, **changes)


def spec_of(env: Any, params: Any, env_id: str) -> EnvSpec:
    """The ``EnvSpec`` of a built (and wrapped) env; ``EnvError`` for what the trainer cannot use."""
    import jax
    from gymnax.environments import spaces

    from ppo_jax.envs import wrappers

    limit = time_limit_of(params)
    if limit is None and isinstance(env, wrappers.TimeLimit):
        limit = env.max_episode_steps
    if limit is None or limit <= 0:
        raise EnvError(
            f"{env_id}: no time limit: its params have no 'max_steps_in_episode'. Set 'max_episode_steps' "
            "in the config (e.g. max_episode_steps: 1000), and ppo_jax ends episodes there as truncations."
        )
    obs = jax.eval_shape(lambda key: env.reset_env(key, params)[0], jax.random.PRNGKey(0))
    obs, mask = wrappers.split_action_mask(obs)
    if not hasattr(obs, "shape"):
        raise EnvError(
            f"{env_id}: the observation is a {type(obs).__name__}, not an array; flatten it first."
        )
    obs_shape = tuple(int(d) for d in obs.shape)
    action_space = env.action_space(params)
    if isinstance(action_space, spaces.Discrete) or type(action_space).__name__ == "Discrete":
        n = int(action_space.n)
        if mask is not None and tuple(mask.shape) != (n,):
            raise EnvError(
                f"{env_id}: the action mask has shape {tuple(mask.shape)}; {n} actions need ({n},)."
            )
        vocab = token_vocab(env, params, obs)
        return EnvSpec(
            env_id, obs_shape, True, n, (), (), limit, mask is not None, storage_dtype(env_id), vocab
        )
    if isinstance(action_space, spaces.Box) or type(action_space).__name__ == "Box":
        shape = tuple(action_space.shape) or (1,)
        low = np.broadcast_to(np.asarray(action_space.low, np.float32), shape).reshape(-1)
        high = np.broadcast_to(np.asarray(action_space.high, np.float32), shape).reshape(-1)
        if mask is not None:
            raise EnvError(f"{env_id}: action masks apply to discrete actions only.")
        return EnvSpec(
            env_id,
            obs_shape,
            False,
            int(np.prod(shape)),
            tuple(float(x) for x in low),
            tuple(float(x) for x in high),
            limit,
            obs_dtype=storage_dtype(env_id),
        )
    raise EnvError(
        f"{env_id}: action space {type(action_space).__name__} is not supported; use gymnax's "
        "spaces.Discrete or spaces.Box."
    )


def token_vocab(env: Any, params: Any, obs: Any) -> int:
    """V when ``env`` observes token ids: integer observations in an integer Box space [0, V - 1]
    (``EnvSpec.obs_vocab``); 0 otherwise."""
    if not np.issubdtype(np.dtype(obs.dtype), np.integer):
        return 0
    space = env.observation_space(params)
    if type(space).__name__ != "Box" or not np.issubdtype(np.dtype(space.dtype), np.integer):
        return 0
    if np.any(np.asarray(space.low) != 0):
        return 0
    return int(np.max(np.asarray(space.high))) + 1


@functools.lru_cache(maxsize=None)
def env_spec(env_id: str) -> EnvSpec:
    """The spec of ``env_id`` built with no kwargs and no wrappers."""
    env, params = make(env_id)
    env = _flat(env, params)
    return spec_of(env, params, env_id)


def _flat(env, params):
    from ppo_jax.envs import wrappers

    return wrappers.FlattenObservation.if_needed(env, params)


def check_config(config, env: Any = None, env_params: Any = None) -> EnvSpec:
    """Build the env of ``config`` (or wrap the given one) and return its spec.

    Raises ``EnvError`` with a message fit for the user: unknown id (with close
    matches), missing suite package (naming the extra), a user env that cannot
    be imported, bad ``obs_indices``, no time limit.
    """
    if env is None:
        parsed = parse_env_id(config.env_id)
        if parsed.kind == "gymnax":
            import difflib

            known = registered_env_ids()
            if parsed.name not in known:
                close = difflib.get_close_matches(parsed.name, known, n=3, cutoff=0.5)
                hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise EnvError(
                    f"unknown 'env_id' {config.env_id!r}.{hint} Known gymnax ids: {', '.join(known)}; "
                    f"suites: {', '.join(p + ':<name>' for p in SUITES)}; your own: 'package.module:ClassOrFactory'."
                )
        try:
            env, env_params = from_config(config)
        except EnvError:
            raise
        except TypeError as err:
            raise EnvError(
                f"{config.env_id}: building it with env_kwargs {config.env_kwargs or {}} failed: {err}"
            ) from None
        own = parsed.kind == "user"
    else:
        env, env_params = from_config(config, env, env_params)
        own = True
    spec = spec_of(env, env_params, config.env_id)
    if own:
        from ppo_jax.envs import user

        user.check_traced(env, env_params, config.env_id)
    return spec


from ppo_jax import _imports  # noqa: E402

_imports.defer_render_modules()  # before vec imports gymnax (ppo_jax._imports says why)
from ppo_jax.envs.vec import StepResult, VecEnv, VecEnvState  # noqa: E402

__all__ = [
    "EnvError",
    "EnvSpec",
    "SUITES",
    "Suite",
    "StepResult",
    "VecEnv",
    "VecEnvState",
    "check_config",
    "env_spec",
    "from_config",
    "make",
    "parse_env_id",
    "registered_env_ids",
    "spec_of",
]
