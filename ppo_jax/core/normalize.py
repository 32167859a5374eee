"""Running mean and variance as a pure ``init`` / ``update`` pair.

Used for observation normalization and for reward scaling. Batches are merged
with the parallel-variance formula of Chan et al., so one update with a batch
equals many updates with its parts (up to float rounding).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp


class RunningMeanStd(NamedTuple):
    """Running mean and population variance of a stream of samples (Chan et al.'s merge)."""

    mean: chex.Array  # [*shape] float32
    var: chex.Array  # [*shape] float32, population variance
    count: chex.Array  # [] float32, number of samples merged (starts at ε)


def rms_init(shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> RunningMeanStd:
    """Statistics before any sample: zero mean, unit variance, a pseudo-count ε.

    The tiny count makes the first merged batch dominate the statistics.

    Args:
      shape: the shape of one sample.
      epsilon: the pseudo-count.

    Returns:
      A ``RunningMeanStd`` of float32 arrays.
    """
    return RunningMeanStd(
        mean=jnp.zeros(shape, jnp.float32),
        var=jnp.ones(shape, jnp.float32),
        count=jnp.asarray(epsilon, jnp.float32),
    )


def pooled_moments(
    x: chex.Array, axes: tuple[int, ...], axis_name: Optional[str] = None
) -> tuple[chex.Array, chex.Array]:
    """Mean and population variance of ``x`` over ``axes`` (the axes removed).

    With ``axis_name`` (inside ``shard_map`` or ``pmap``), over the union of
    every device's ``x``, each device holding an equal share: the mean is
    averaged first, then each device's squared deviations from that common
    mean, so the variance is the two-pass one of the whole data, not a mean
    of per-device variances.
    """
    mean = jnp.mean(x, axis=axes, keepdims=True)
    if axis_name is not None:
        mean = jax.lax.pmean(mean, axis_name)
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
    if axis_name is not None:
        var = jax.lax.pmean(var, axis_name)
    return jnp.squeeze(mean, axes), jnp.squeeze(var, axes)


def rms_update(state: RunningMeanStd, batch: chex.Array, axis_name: Optional[str] = None) -> RunningMeanStd:
    """Merge a batch into the statistics (parallel-variance formula).

    With n = count, m = batch count, δ = mean_batch − mean:

        mean' = mean + δ·m / (n + m)
        var'  = (var·n + var_batch·m + δ²·n·m / (n + m)) / (n + m)

    Args:
      state: the statistics so far.
      batch: ``[..., *shape]`` samples; every leading axis is a sample axis.
      axis_name: the batch is this device's equal share of one batch split
        over the devices of that mapped axis; every device merges the whole.

    Returns:
      The merged ``RunningMeanStd``.
    """
    feature_ndim = state.mean.ndim
    sample_axes = tuple(range(batch.ndim - feature_ndim))
    batch = batch.astype(jnp.float32)
    batch_mean, batch_var = pooled_moments(batch, sample_axes, axis_name)
    shares = 1 if axis_name is None else jax.lax.psum(1, axis_name)
    batch_count = jnp.asarray(shares * (batch.size // max(1, state.mean.size)), jnp.float32)

    delta = batch_mean - state.mean
    total = state.count + batch_count
    mean = state.mean + delta * batch_count / total
    m2 = (
        state.var * state.count
        + batch_var * batch_count
        + jnp.square(delta) * state.count * batch_count / total
    )
    return RunningMeanStd(mean=mean, var=m2 / total, count=total)


def normalize(state: RunningMeanStd, x: chex.Array, clip: float = 10.0, eps: float = 1e-8) -> chex.Array:
    """Standardize ``x`` with the statistics.

        clip((x − μ) / √(σ² + eps), −clip, clip)

    Args:
      state: the statistics (``[*shape]``).
      x: ``[..., *shape]`` samples.
      clip: bound of the result's magnitude.
      eps: added to the variance.

    Returns:
      float32 array shaped like ``x``.
    """
    # Explicit broadcast: x may carry leading sample axes ([..., *shape]).
    mean = jnp.broadcast_to(state.mean, x.shape)
    var = jnp.broadcast_to(state.var, x.shape)
    z = (x - mean) / jnp.sqrt(var + eps)
    return jnp.clip(z, -clip, clip)


def scale(state: RunningMeanStd, x: chex.Array, eps: float = 1e-8) -> chex.Array:
    """x / √(σ² + eps): scaling without centring, as used for rewards."""
    return x / jnp.sqrt(jnp.broadcast_to(state.var, x.shape) + eps)
