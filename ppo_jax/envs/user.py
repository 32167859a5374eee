"""``package.module:Name`` ids: a user's own gymnax ``Environment``.

``Name`` (dots allowed, for attributes of attributes) is a class or a factory;
it is called with the config's ``env_kwargs`` and must return an
``Environment`` or an ``(env, params)`` pair. The current directory is on the
import path (as for ``python -m``), so a module next to the config imports
without installing it.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


def add_cwd_to_path() -> None:
    """Let modules in the current directory import, as they would under ``python -m``."""
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)


def make(module_path: str, attribute: str, **env_kwargs) -> Any:
    """Import ``module_path``, look up ``attribute`` and call it with ``env_kwargs``."""
    from ppo_jax.envs import EnvError

    env_id = f"{module_path}:{attribute}"
    add_cwd_to_path()
    try:
        module = importlib.import_module(module_path)
    except ModuleNotFoundError as err:
        if err.name is not None and (module_path == err.name or module_path.startswith(err.name + ".")):
            raise EnvError(
                f"env_id {env_id!r}: cannot import {err.name!r} (no module of that name from "
                f"{os.getcwd()}). Install the package that holds it, or run from the directory that "
                "contains it (or add that directory to PYTHONPATH)."
            ) from None
        raise EnvError(f"env_id {env_id!r}: importing {module_path} failed: {err}") from None
    except Exception as err:  # the user's module raised while importing
        raise EnvError(
            f"env_id {env_id!r}: importing {module_path} raised {type(err).__name__}: {err}"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            public = sorted(
                n
                for n, v in vars(module).items()
                if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == module.__name__
            )
            raise EnvError(
                f"env_id {env_id!r}: {module_path} has no attribute {attribute!r}. "
                f"Its classes and functions: {', '.join(public) or 'none'}."
            )
        target = getattr(target, part)
    if not callable(target):
        raise EnvError(
            f"env_id {env_id!r}: {attribute} is a {type(target).__name__}, not a class or factory."
        )
    try:
        return target(**env_kwargs)
    except TypeError as err:
        raise EnvError(
            f"env_id {env_id!r}: calling {attribute}(**env_kwargs) with env_kwargs {env_kwargs} failed: {err}"
        ) from None


def check_class(env: Any, env_id: str) -> None:
    """Refuse what a user's env may look like and still not work: not a gymnax
    ``Environment``, or one with its own ``step`` (``VecEnv`` never calls it)."""
    from gymnax.environments.environment import Environment

    from ppo_jax.envs import EnvError

    name = type(env).__name__
    if not isinstance(env, Environment):
        raise EnvError(
            f"{env_id}: {name} does not subclass gymnax's Environment; ppo_jax steps it through "
            "Environment's is_truncated and observation plumbing. Write "
            f"'class {name}(gymnax.environments.environment.Environment)' and define reset_env, "
            "step_env, action_space, observation_space and the default_params property."
        )
    if type(env).step is not Environment.step:
        raise EnvError(
            f"{env_id}: {name} overrides Environment.step, which ppo_jax never calls (it calls step_env "
            "and is_truncated and resets finished episodes itself), so that code would be skipped "
            "silently. Move what it does into step_env (and is_truncated for a time limit of your own)."
        )


def check_params(env: Any, params: Any, env_id: str) -> None:
    """The params of a user env: an instance, not the unbound ``default_params`` method."""
    from ppo_jax.envs import EnvError

    if callable(params) and getattr(params, "__name__", None) == "default_params":
        raise EnvError(
            f"{env_id}: {type(env).__name__}.default_params is a method; gymnax reads it as an attribute. "
            "Put @property on the line above 'def default_params(self):'."
        )


def check_traced(env: Any, params: Any, env_id: str) -> None:
    """Trace ``reset_env``, ``step_env`` and ``is_truncated`` abstractly (``jax.eval_shape``,
    nothing runs), so a slip in a user's env is one message before any run starts."""
    import jax

    from ppo_jax.envs import EnvError

    key = jax.random.PRNGKey(0)
    name = type(env).__name__
    what = f"{env_id}: {name}"

    def traced(call: str, fn, *args):
        try:
            return jax.eval_shape(fn, *args)
        except Exception as err:  # the user's code failed while traced
            raise EnvError(f"{what}.{call} fails when traced: {type(err).__name__}: {err}") from None

    _, state = traced("reset_env(key, params)", env.reset_env, key, params)
    action = traced("action_space(params).sample(key)", lambda k: env.action_space(params).sample(k), key)
    stepped = traced("step_env(key, state, action, params)", env.step_env, key, state, action, params)
    if not (isinstance(stepped, tuple) and len(stepped) == 5):
        raise EnvError(
            f"{what}.step_env returns {type(stepped).__name__} of length "
            f"{len(stepped) if isinstance(stepped, tuple) else '?'}; gymnax's step_env returns "
            "(obs, state, reward, done, info)."
        )
    next_state = stepped[1]
    if jax.tree.structure(next_state) != jax.tree.structure(state):  # type: ignore[operator]  # jaxlib's stub leaves PyTreeDef's == out
        raise EnvError(
            f"{what}.step_env returns a state shaped unlike reset_env's ({jax.tree.structure(next_state)} "
            f"vs {jax.tree.structure(state)}); both must return the same state class with the same fields."
        )
    try:
        jax.eval_shape(env.is_truncated, next_state, params)
    except AttributeError as err:
        if "time" in str(err) and not hasattr(next_state, "time"):
            raise EnvError(
                f"{what}: its state ({type(next_state).__name__}) has no 'time' field, which gymnax's "
                "is_truncated reads (state.time >= params.max_steps_in_episode). Add 'time: int' to the "
                "state, set it to 0 in reset_env and to state.time + 1 in step_env."
            ) from None
        raise EnvError(f"{what}.is_truncated(state, params) fails when traced: {err}") from None
    except Exception as err:
        raise EnvError(
            f"{what}.is_truncated(state, params) fails when traced: {type(err).__name__}: {err}"
        ) from None
