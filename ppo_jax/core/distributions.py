"""Action distributions written by hand: Categorical and diagonal Gaussian.

Both are pytrees (``flax.struct`` dataclasses), so they pass through ``jit``,
``vmap`` and ``lax.scan``. Batch shape is the shape of the parameters less the
event axis (the last axis of ``logits``; the last axis of ``mean``).

``sample(key)`` draws its noise itself; ``noise(key, shape)`` and
``sample_from_noise`` split the two, so that a rollout can draw the noise of
all its steps in one batched call before its loop.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
from flax import struct

_LOG_2PI = math.log(2.0 * math.pi)
# The logit of a masked-out action: finite, so that log-softmax, p·log p (= 0·(−1e9) = 0)
# and their gradients stay finite, yet exp(−1e9 − logsumexp) is exactly 0 in float32.
MASKED_LOGIT = -1e9


@struct.dataclass
class Categorical:
    """A categorical distribution over ``K`` actions.

    Attributes:
      logits: ``[..., K]`` unnormalized log-probabilities.
    """

    logits: chex.Array

    @property
    def log_probs(self) -> chex.Array:
        return jax.nn.log_softmax(self.logits, axis=-1)

    def log_prob(self, action: chex.Array) -> chex.Array:
        """log p(a) for integer actions shaped like the batch."""
        action = action.astype(jnp.int32)
        picked = jnp.take_along_axis(self.log_probs, action[..., None], axis=-1)
        return picked[..., 0]

    def entropy(self) -> chex.Array:
        """H = −Σ_k p_k log p_k."""
        log_p = self.log_probs
        return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)

    @staticmethod
    def noise(key: chex.PRNGKey, shape: tuple[int, ...]) -> chex.Array:
        """Standard Gumbel noise ``[..., K]`` for ``sample_from_noise``."""
        return jax.random.gumbel(key, shape, jnp.float32)

    def sample_from_noise(self, gumbel: chex.Array) -> chex.Array:
        """argmax_k (logits_k + g_k): a sample when ``g`` is standard Gumbel noise."""
        return jnp.argmax(self.logits + gumbel, axis=-1)

    def sample(self, key: chex.PRNGKey) -> chex.Array:
        return self.sample_from_noise(self.noise(key, self.logits.shape))

    def mode(self) -> chex.Array:
        return jnp.argmax(self.logits, axis=-1)

    def masked(self, mask: chex.Array) -> "Categorical":
        """The distribution restricted to the valid actions: p(a) ∝ exp(logit_a) · [mask_a].

        ``mask`` ``[..., K]`` bool, True where valid. Invalid actions get
        probability 0: never sampled nor the mode, no part of the entropy, and
        no gradient reaches their logits. A row with no valid action stays
        uniform (every logit equal), rather than NaN.
        """
        return Categorical(jnp.where(mask, self.logits, MASKED_LOGIT))


def with_action_mask(dist, mask):
    """``dist`` restricted to ``mask`` (a Categorical); ``dist`` itself when ``mask`` is None."""
    return dist if mask is None else dist.masked(mask)


@struct.dataclass
class DiagGaussian:
    """A Gaussian with diagonal covariance over ``D``-dimensional actions.

    Attributes:
      mean: ``[..., D]`` means.
      log_std: ``[..., D]`` (or broadcastable ``[D]``) log standard deviations.
    """

    mean: chex.Array
    log_std: chex.Array

    def log_prob(self, action: chex.Array) -> chex.Array:
        """log N(a; μ, σ²) summed over the action dimensions."""
        log_std = jnp.broadcast_to(self.log_std, self.mean.shape)
        z = (action - self.mean) * jnp.exp(-log_std)
        per_dim = -0.5 * jnp.square(z) - log_std - 0.5 * _LOG_2PI
        return jnp.sum(per_dim, axis=-1)

    def entropy(self) -> chex.Array:
        """H = Σ_d (½ log(2πe) + log σ_d)."""
        log_std = jnp.broadcast_to(self.log_std, self.mean.shape)
        return jnp.sum(0.5 * (_LOG_2PI + 1.0) + log_std, axis=-1)

    @staticmethod
    def noise(key: chex.PRNGKey, shape: tuple[int, ...]) -> chex.Array:
        """Standard normal noise ``[..., D]`` for ``sample_from_noise``."""
        return jax.random.normal(key, shape, jnp.float32)

    def sample_from_noise(self, eps: chex.Array) -> chex.Array:
        """μ + σ·ε: a sample when ``ε`` is standard normal noise."""
        log_std = jnp.broadcast_to(self.log_std, self.mean.shape)
        return self.mean + jnp.exp(log_std) * eps

    def sample(self, key: chex.PRNGKey) -> chex.Array:
        return self.sample_from_noise(self.noise(key, self.mean.shape))

    def mode(self) -> chex.Array:
        return self.mean
