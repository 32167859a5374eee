"""Imports that a training run does not need before it trains, deferred.

gymnax imports every one of its environments when any is imported, and two of
them import seaborn (and so scipy.stats and pandas) and matplotlib.pyplot at
module level for their ``render`` methods; tensorboardX's package imports torch
where it is installed, although the event protocol buffers ppo_jax writes need
neither. Together they are about a third of what ``ppo-jax train`` imports
before it compiles. Deferred, each loads in full on its first attribute access,
so nothing that does use them changes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types

_RENDER_ONLY = ("seaborn", "matplotlib.pyplot")


class _Deferred(types.ModuleType):
    """A module whose code runs when an attribute it does not have yet is first read.

    Not ``importlib.util.LazyLoader``: its modules load on any attribute read, and an
    ``import`` statement reads ``__spec__`` (Python 3.11), so ``import seaborn`` would
    load seaborn at once. This one serves what ``module_from_spec`` set (``__spec__``,
    ``__name__``, ...) and runs the code on the first other name.
    """

    def __getattr__(self, name: str):
        self.__class__ = types.ModuleType  # type: ignore[assignment]  # from here on an ordinary module
        spec = self.__spec__
        assert spec is not None and spec.loader is not None, f"{self.__name__} has no loader"
        spec.loader.exec_module(self)
        return getattr(self, name)


def defer(name: str) -> None:
    """Put a module in ``sys.modules`` that runs ``name``'s code on first use (if it is
    installed and not imported yet)."""
    if name in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _Deferred
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


def defer_render_modules() -> None:
    """Defer the plotting modules that gymnax's render methods use; call before gymnax
    is first imported."""
    for name in _RENDER_ONLY:
        defer(name)


@contextlib.contextmanager
def without_torch():
    """Imports inside see torch as absent (unless it is imported already): for
    tensorboardX, whose package imports torch only to accept its tensors."""
    if "torch" in sys.modules:
        yield
        return
    sys.modules["torch"] = None  # the import system's "not installed"
    try:
        yield
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
