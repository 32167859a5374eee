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
                f"env_id {env_id!r}: no module named {err.name!r}. Install the package that holds it, or run "
                "from the directory that contains it (or add that directory to PYTHONPATH)."
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
