"""ppo_jax: Proximal Policy Optimization in pure, jitted JAX on gymnax."""

from ppo_jax.config import ConfigError, Hyperparams, PPOConfig, load_config
from ppo_jax.core import (
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
from ppo_jax.networks import make_networks
from ppo_jax.sweeps import SweepResult, make_grid, sweep
from ppo_jax.train import METRIC_NAMES, TrainState, build, make_train

__version__ = "0.1.0"

__all__ = [
    "Categorical",
    "ConfigError",
    "DiagGaussian",
    "Hyperparams",
    "METRIC_NAMES",
    "PPOConfig",
    "RunningMeanStd",
    "SweepResult",
    "TrainState",
    "approx_kl",
    "build",
    "clip_fraction",
    "clipped_surrogate_loss",
    "explained_variance",
    "gae",
    "load_config",
    "make_grid",
    "make_networks",
    "make_train",
    "normalize",
    "normalize_advantages",
    "rms_init",
    "rms_update",
    "sweep",
    "value_loss",
]
