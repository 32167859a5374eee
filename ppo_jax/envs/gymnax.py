"""Plain ids: gymnax's own catalogue (``CartPole-v1``, ``Breakout-MinAtar``, ...)."""

from __future__ import annotations

from typing import Any

import gymnax


def make(name: str, **env_kwargs) -> tuple[Any, Any]:
    """``(env, params)`` of gymnax id ``name``; ``env_kwargs`` go to the env's constructor."""
    return gymnax.make(name, **env_kwargs)
