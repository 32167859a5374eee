"""Generalized Advantage Estimation as a reverse ``lax.scan``.

Terminations and dones are kept apart: a termination means the successor state
is terminal (its value is zero, no bootstrap); a done means the episode ended
for any reason (termination or time-limit truncation), so the advantage trace
is cut there. A truncated step is therefore bootstrapped from the value of the
true successor -- the final observation before the auto-reset.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def gae(
    rewards: chex.Array,
    values: chex.Array,
    next_values: chex.Array,
    terminations: chex.Array,
    dones: chex.Array,
    *,
    gamma: chex.Numeric,
    gae_lambda: chex.Numeric,
) -> tuple[chex.Array, chex.Array]:
    """Advantages and value targets for one time-major stream of transitions.

        δ_t = r_t + γ (1 − term_t) V(s'_t) − V(s_t)
        A_t = δ_t + γ λ (1 − done_t) A_{t+1},   A_T = 0
        returns_t = A_t + V(s_t)

    Args:
      rewards: ``[T, ...]`` rewards r_t.
      values: ``[T, ...]`` V(s_t) under the policy that collected the data.
      next_values: ``[T, ...]`` V(s'_t) of the true successor of step t (the
        final observation when a time limit cut the episode at t).
      terminations: ``[T, ...]`` 1 where s'_t is terminal (no bootstrap).
      dones: ``[T, ...]`` 1 where the episode ended at step t for any reason.
      gamma: discount γ in [0, 1].
      gae_lambda: GAE λ in [0, 1].

    Returns:
      ``(advantages, returns)``, both shaped like ``rewards``.
    """
    chex.assert_equal_shape([rewards, values, next_values, terminations, dones])
    chex.assert_rank(rewards, {1, 2, 3, 4})
    dtype = jnp.result_type(rewards, values, next_values)
    not_terminal = 1.0 - terminations.astype(dtype)
    not_done = 1.0 - dones.astype(dtype)
    deltas = rewards + gamma * not_terminal * next_values - values
    trace_decay = gamma * gae_lambda * not_done

    def backward(advantage_next, inputs):
        delta_t, decay_t = inputs
        advantage_t = delta_t + decay_t * advantage_next
        return advantage_t, advantage_t

    _, advantages = jax.lax.scan(
        backward,
        jnp.zeros_like(deltas[0]),
        (deltas, trace_decay),
        reverse=True,
    )
    return advantages, advantages + values
