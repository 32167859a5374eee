"""ppo_jax: Proximal Policy Optimization in pure, jitted JAX on gymnax.

The public names are loaded on first use (PEP 562): ``import ppo_jax`` starts
no JAX backend, so ``jax.distributed.initialize`` may still follow it (gymnax,
once imported, starts the backend), and ``ppo-jax --help`` is instant.
"""

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "ppo_jax.config": ("ConfigError", "Hyperparams", "PPOConfig", "load_config"),
    "ppo_jax.core": (
        "Categorical",
        "DiagGaussian",
        "RunningMeanStd",
        "approx_kl",
        "clip_fraction",
        "clipped_surrogate_loss",
        "explained_variance",
        "gae",
        "normalize",
        "normalize_advantages",
        "rms_init",
        "rms_update",
        "value_loss",
    ),
    "ppo_jax.networks": ("make_networks",),
    "ppo_jax.population": ("PBTResult", "pbt"),
    "ppo_jax.runs": ("LoadedRun", "PolicyParams", "load_run", "make_act"),
    "ppo_jax.sweeps": ("SweepResult", "make_grid", "sweep"),
    "ppo_jax.metrics": ("METRIC_NAMES",),
    "ppo_jax.train": ("TrainState", "build", "make_train"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'ppo_jax' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # the names as static tools should see them
    from ppo_jax.config import ConfigError, Hyperparams, PPOConfig, load_config  # noqa: F401
    from ppo_jax.core import (  # noqa: F401
        Categorical,
        DiagGaussian,
        RunningMeanStd,
        approx_kl,
        clip_fraction,
        clipped_surrogate_loss,
        explained_variance,
        gae,
        normalize,
        normalize_advantages,
        rms_init,
        rms_update,
        value_loss,
    )
    from ppo_jax.metrics import METRIC_NAMES  # noqa: F401
    from ppo_jax.networks import make_networks  # noqa: F401
    from ppo_jax.population import PBTResult, pbt  # noqa: F401
    from ppo_jax.runs import LoadedRun, PolicyParams, load_run, make_act  # noqa: F401
    from ppo_jax.sweeps import SweepResult, make_grid, sweep  # noqa: F401
    from ppo_jax.train import TrainState, build, make_train  # noqa: F401
