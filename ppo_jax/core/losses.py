"""PPO losses and diagnostics: pure functions of arrays, reduced to scalars."""

from __future__ import annotations

from typing import Optional

import chex
import jax
import jax.numpy as jnp

from ppo_jax.core.normalize import pooled_moments


def clipped_surrogate_loss(
    log_prob: chex.Array,
    old_log_prob: chex.Array,
    advantages: chex.Array,
    clip_eps: chex.Numeric,
) -> chex.Array:
    """The clipped surrogate objective, negated so that it is a loss.

        ρ = exp(log π(a|s) − log π_old(a|s))
        L = −mean(min(ρ A, clip(ρ, 1 − ε, 1 + ε) A))

    The ratio is formed in log space. Where the clipped term is the smaller one
    (the pessimistic bound) its gradient is exactly zero.

    Args:
      log_prob: ``[N]`` log-probabilities under the current policy.
      old_log_prob: ``[N]`` log-probabilities under the collecting policy.
      advantages: ``[N]`` advantage estimates (normalized or not).
      clip_eps: ε > 0.

    Returns:
      Scalar loss.
    """
    chex.assert_equal_shape([log_prob, old_log_prob, advantages])
    ratio = jnp.exp(log_prob - old_log_prob)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    return -jnp.mean(jnp.minimum(unclipped, clipped))


def value_loss(
    values: chex.Array,
    targets: chex.Array,
    old_values: Optional[chex.Array] = None,
    clip_eps: Optional[chex.Numeric] = None,
) -> chex.Array:
    """Squared-error value loss, optionally clipped around the old values.

        Plain:   0.5 · mean((V − R)²)
        Clipped: 0.5 · mean(max((V − R)², (V_old + clip(V − V_old, −c, c) − R)²))

    Args:
      values: ``[N]`` predictions of the current critic.
      targets: ``[N]`` value targets R = A + V_old.
      old_values: ``[N]`` predictions at collection time; needed with clipping.
      clip_eps: c, or ``None`` for the plain loss.

    Returns:
      Scalar loss.
    """
    chex.assert_equal_shape([values, targets])
    squared = jnp.square(values - targets)
    if clip_eps is None:
        return 0.5 * jnp.mean(squared)
    if old_values is None:
        raise ValueError("value_loss: clipping needs old_values")
    chex.assert_equal_shape([values, old_values])
    clipped_values = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
    return 0.5 * jnp.mean(jnp.maximum(squared, jnp.square(clipped_values - targets)))


def approx_kl(log_prob: chex.Array, old_log_prob: chex.Array) -> chex.Array:
    """KL(π_old ‖ π) estimated from samples of π_old: unbiased and ≥ 0.

        ρ = exp(log π(a|s) − log π_old(a|s))
        KL ≈ mean((ρ − 1) − log ρ)

    Each term is ≥ 0 (log ρ ≤ ρ − 1), and its expectation under π_old is the KL,
    since E[ρ] = 1 (Schulman's "k3" estimator).

    Args:
      log_prob: ``[N]`` log-probabilities under the current policy.
      old_log_prob: ``[N]`` log-probabilities under the collecting policy.

    Returns:
      Scalar estimate.
    """
    chex.assert_equal_shape([log_prob, old_log_prob])
    log_ratio = log_prob - old_log_prob
    return jnp.mean(jnp.expm1(log_ratio) - log_ratio)


def clip_fraction(log_prob: chex.Array, old_log_prob: chex.Array, clip_eps: chex.Numeric) -> chex.Array:
    """Fraction of samples whose ratio lies outside [1 − ε, 1 + ε].

        mean(|ρ − 1| > ε),   ρ = exp(log π(a|s) − log π_old(a|s))

    Args:
      log_prob: ``[N]`` log-probabilities under the current policy.
      old_log_prob: ``[N]`` log-probabilities under the collecting policy.
      clip_eps: ε > 0.

    Returns:
      Scalar fraction in [0, 1].
    """
    chex.assert_equal_shape([log_prob, old_log_prob])
    ratio = jnp.exp(log_prob - old_log_prob)
    return jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(ratio.dtype))


def explained_variance(
    predictions: chex.Array, targets: chex.Array, axis_name: Optional[str] = None
) -> chex.Array:
    """How much of the targets' variance the predictions explain.

        EV = 1 − Var(R − V) / Var(R)

    1 for perfect predictions, 0 for a constant, negative for worse than a constant.

    Args:
      predictions: ``[...]`` value predictions V.
      targets: ``[...]`` value targets R, shaped like ``predictions``.
      axis_name: the arrays are this device's equal share of data split over
        that mapped axis; the variances are those of the whole.

    Returns:
      Scalar EV; NaN where the targets have no variance.
    """
    chex.assert_equal_shape([predictions, targets])
    axes = tuple(range(targets.ndim))
    _, var_targets = pooled_moments(targets, axes, axis_name)
    _, var_errors = pooled_moments(targets - predictions, axes, axis_name)
    ev = 1.0 - var_errors / var_targets
    return jnp.where(var_targets > 0, ev, jnp.nan)


def normalize_advantages(
    advantages: chex.Array, eps: float = 1e-8, axis_name: Optional[str] = None
) -> chex.Array:
    """Zero mean, unit standard deviation over all elements.

        Â = (A − mean(A)) / (std(A) + eps)

    Args:
      advantages: ``[...]`` advantages.
      eps: added to the standard deviation.
      axis_name: the array is this device's equal share of data split over that
        mapped axis; the moments are those of the whole.

    Returns:
      The normalized advantages, shaped like ``advantages``.
    """
    mean, var = pooled_moments(advantages, tuple(range(advantages.ndim)), axis_name)
    return (advantages - mean) / (jnp.sqrt(var) + eps)


def global_norm(tree) -> chex.Array:
    """The L2 norm of all leaves of a pytree taken as one vector."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in leaves))
