"""The KL leash of RLHF: a per-step penalty toward a frozen reference policy,
and Ziegler et al. (2019)'s proportional controller for its coefficient.

Written for arrays of any (matching) shape; the caller batches by broadcasting
or ``vmap``.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp

# Ziegler et al. (2019), "Fine-Tuning Language Models from Human Preferences", §2.2.
CONTROLLER_ERROR_CLIP = 0.2


def kl_penalty(
    r_t: chex.Array, log_prob_t: chex.Array, ref_log_prob_t: chex.Array, coef: chex.Numeric
) -> tuple[chex.Array, chex.Array]:
    """Reward with a KL penalty toward a reference policy, for one sampled action.

        kl_t = log π(a_t|s_t) − log π_ref(a_t|s_t)
        r'_t = r_t − β · kl_t

    With a_t drawn from π, ``kl_t`` is an unbiased one-sample estimate of
    KL(π(·|s_t) ‖ π_ref(·|s_t)); summed over an episode it estimates the KL of
    the whole sequence, as RLHF implementations penalize it.

    Args:
      r_t: rewards ``[...]``.
      log_prob_t: log π(a_t|s_t) of the taken actions, ``[...]``.
      ref_log_prob_t: log π_ref(a_t|s_t) of the same actions, ``[...]``.
      coef: β ≥ 0, a scalar (or broadcastable).

    Returns:
      ``(r'_t, kl_t)``, both shaped like ``r_t``.
    """
    chex.assert_equal_shape((r_t, log_prob_t, ref_log_prob_t))
    kl_t = log_prob_t - ref_log_prob_t
    return r_t - coef * kl_t, kl_t


def adaptive_kl_coef(
    coef: chex.Numeric,
    kl: chex.Numeric,
    target: chex.Numeric,
    n_steps: chex.Numeric,
    horizon: chex.Numeric,
) -> chex.Array:
    """One step of the proportional controller of Ziegler et al. (2019), in log space:

        e = clip(KL / KL_target − 1, −0.2, 0.2)
        β ← β · exp(K_β · e),   K_β = n_steps / horizon

    β grows when the measured KL is above the target and shrinks below it, by a
    factor of at most exp(±0.2·K_β) per update, and it stays positive at any
    batch size.

    Args:
      coef: the current β (scalar).
      kl: the measured KL of the latest batch, in the units of ``target``.
      target: KL_target > 0.
      n_steps: environment steps in the batch that measured ``kl``.
      horizon: steps over which the controller closes the gap (Ziegler: 10,000).

    Returns:
      The next β, float32.
    """
    # Why exp and not the paper's 1 + K_β·e: the linear factor turns negative once
    # K_β > 5 (0.2·K_β > 1), and a negative β rewards moving away from the reference
    # and then grows geometrically. A batch of 65,536 steps with horizon 10,000 has
    # K_β = 6.55. lm-human-preferences runs with K_β = 512 / 10,000 ≈ 0.05 (the paper's
    # K_β is 0.1), where the factors 1 ± 0.01 and exp(±0.01) differ by 5e-5: the same
    # controller there. exp(K_β·e) is the product of (1 + e·δ) over the K_β/δ small
    # steps that make up one update (δ → 0), so the horizon keeps its meaning too.
    error = jnp.clip(kl / target - 1.0, -CONTROLLER_ERROR_CLIP, CONTROLLER_ERROR_CLIP)
    return jnp.asarray(coef * jnp.exp(error * n_steps / horizon), jnp.float32)
