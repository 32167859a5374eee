"""Pure PPO math: imports jax, jax.numpy, chex and flax.struct only; no IO."""

from ppo_jax.core.distributions import Categorical, DiagGaussian
from ppo_jax.core.gae import gae
from ppo_jax.core.kl import adaptive_kl_coef, kl_penalty
from ppo_jax.core.losses import (
    approx_kl,
    clip_fraction,
    clipped_surrogate_loss,
    explained_variance,
    global_norm,
    normalize_advantages,
    value_loss,
)
from ppo_jax.core.normalize import (
    RunningMeanStd,
    normalize,
    pooled_moments,
    rms_init,
    rms_update,
    scale,
)

__all__ = [
    "Categorical",
    "DiagGaussian",
    "RunningMeanStd",
    "adaptive_kl_coef",
    "approx_kl",
    "clip_fraction",
    "clipped_surrogate_loss",
    "explained_variance",
    "gae",
    "global_norm",
    "kl_penalty",
    "normalize",
    "normalize_advantages",
    "pooled_moments",
    "rms_init",
    "rms_update",
    "scale",
    "value_loss",
]
