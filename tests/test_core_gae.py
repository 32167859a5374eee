"""Tests for ppo_jax.core.gae against a plain-Python backward loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppo_jax.core import gae

RTOL = 1e-5
ATOL = 1e-5


def reference_gae(rewards, values, next_values, terminations, dones, gamma, lam):
    """Explicit backward loop over t, float64, any trailing shape."""
    rewards = np.asarray(rewards, np.float64)
    values = np.asarray(values, np.float64)
    next_values = np.asarray(next_values, np.float64)
    terminations = np.asarray(terminations, np.float64)
    dones = np.asarray(dones, np.float64)
    T = rewards.shape[0]
    advantages = np.zeros_like(rewards)
    next_adv = np.zeros_like(rewards[0])  # A = 0 past the last step
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * (1.0 - terminations[t]) * next_values[t] - values[t]
        next_adv = delta + gamma * lam * (1.0 - dones[t]) * next_adv
        advantages[t] = next_adv
    return advantages, advantages + values


def random_rollout(seed, shape, p_term=0.1, p_trunc=0.1):
    """Random rollout with next_values that differ from values[t+1] at dones.

    Where an episode continues, next_values[t] == values[t + 1] (consistent
    stream). Where it is truncated, next_values[t] is the value of the final
    observation, unrelated to values[t + 1] (the reset state).
    """
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=shape).astype(np.float32)
    values = rng.normal(size=shape).astype(np.float32)
    terminations = rng.random(shape) < p_term
    truncations = (rng.random(shape) < p_trunc) & ~terminations
    dones = terminations | truncations
    next_values = np.empty(shape, np.float32)
    next_values[:-1] = values[1:]
    next_values[-1] = rng.normal(size=shape[1:])
    final_obs_values = rng.normal(size=shape).astype(np.float32) * 3.0 + 5.0
    next_values = np.where(dones, final_obs_values, next_values).astype(np.float32)
    return rewards, values, next_values, terminations, dones


SHAPES = [(17,), (13, 4), (9, 3, 2)]
SEEDS = [0, 1, 2]
HYPERS = [(0.99, 0.95), (0.9, 0.5), (1.0, 1.0)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("gamma,lam", HYPERS)
def test_gae_matches_loop_reference(shape, seed, gamma, lam):
    r, v, nv, term, done = random_rollout(seed, shape)
    assert term.any() and (done & ~term).any(), "rollout should contain both kinds of ends"
    adv, ret = gae(
        jnp.asarray(r),
        jnp.asarray(v),
        jnp.asarray(nv),
        jnp.asarray(term),
        jnp.asarray(done),
        gamma=gamma,
        gae_lambda=lam,
    )
    ref_adv, ref_ret = reference_gae(r, v, nv, term, done, gamma, lam)
    assert adv.shape == shape and ret.shape == shape
    assert adv.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(adv), ref_adv, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(ret), ref_ret, rtol=RTOL, atol=ATOL)


def test_gae_float_dones_and_terms_match_bool():
    r, v, nv, term, done = random_rollout(7, (11, 3))
    args = (jnp.asarray(r), jnp.asarray(v), jnp.asarray(nv))
    a_bool, _ = gae(*args, jnp.asarray(term), jnp.asarray(done), gamma=0.99, gae_lambda=0.9)
    a_float, _ = gae(
        *args,
        jnp.asarray(term, jnp.float32),
        jnp.asarray(done, jnp.float32),
        gamma=0.99,
        gae_lambda=0.9,
    )
    np.testing.assert_array_equal(np.asarray(a_bool), np.asarray(a_float))


def test_gae_hand_computed_tiny_case():
    # T = 3; step 1 is truncated (bootstrap from final obs value 10), step 2 continues.
    gamma, lam = 0.5, 0.5
    rewards = jnp.array([1.0, 2.0, 3.0])
    values = jnp.array([0.5, 1.0, 2.0])
    next_values = jnp.array([1.0, 10.0, 4.0])
    terms = jnp.array([0.0, 0.0, 0.0])
    dones = jnp.array([0.0, 1.0, 0.0])
    # δ0 = 1 + .5*1 - .5 = 1.0 ; δ1 = 2 + .5*10 - 1 = 6.0 ; δ2 = 3 + .5*4 - 2 = 3.0
    # A2 = 3.0 ; A1 = 6.0 (trace cut by done) ; A0 = 1 + .25*6 = 2.5
    adv, ret = gae(rewards, values, next_values, terms, dones, gamma=gamma, gae_lambda=lam)
    np.testing.assert_allclose(np.asarray(adv), [2.5, 6.0, 3.0], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(ret), [3.0, 7.0, 5.0], rtol=RTOL, atol=ATOL)

    # Same, but step 1 is a termination: no bootstrap, δ1 = 2 - 1 = 1.
    adv_t, _ = gae(
        rewards,
        values,
        next_values,
        jnp.array([0.0, 1.0, 0.0]),
        dones,
        gamma=gamma,
        gae_lambda=lam,
    )
    np.testing.assert_allclose(np.asarray(adv_t), [1.25, 1.0, 3.0], rtol=RTOL, atol=ATOL)


def test_truncation_bootstraps_from_final_observation_value():
    """Truncated: uses next_values[t] (final obs), not values[t+1]; terminated: no bootstrap."""
    gamma, lam = 0.9, 0.8
    T = 6
    rng = np.random.default_rng(3)
    rewards = rng.normal(size=T).astype(np.float32)
    values = rng.normal(size=T).astype(np.float32)
    next_values = np.append(values[1:], np.float32(0.3)).astype(np.float32)
    k = 2
    final_obs_value = np.float32(7.5)
    assert abs(final_obs_value - values[k + 1]) > 1.0
    next_values[k] = final_obs_value
    zeros = np.zeros(T, np.float32)
    dones = zeros.copy()
    dones[k] = 1.0

    # Truncation at k.
    adv, _ = gae(rewards, values, next_values, zeros, dones, gamma=gamma, gae_lambda=lam)
    adv = np.asarray(adv)
    ref, _ = reference_gae(rewards, values, next_values, zeros, dones, gamma, lam)
    np.testing.assert_allclose(adv, ref, rtol=RTOL, atol=ATOL)
    # A_k is exactly the one-step TD error bootstrapped from the final observation.
    expected_k = rewards[k] + gamma * final_obs_value - values[k]
    np.testing.assert_allclose(adv[k], expected_k, rtol=RTOL, atol=ATOL)
    wrong_k = rewards[k] + gamma * values[k + 1] - values[k]
    assert abs(adv[k] - wrong_k) > 0.5

    # Termination at k: no bootstrap at all, whatever next_values[k] says.
    adv_term, _ = gae(rewards, values, next_values, dones, dones, gamma=gamma, gae_lambda=lam)
    adv_term = np.asarray(adv_term)
    np.testing.assert_allclose(adv_term[k], rewards[k] - values[k], rtol=RTOL, atol=ATOL)
    # Steps after k are unaffected by the kind of episode end.
    np.testing.assert_allclose(adv_term[k + 1 :], adv[k + 1 :], rtol=RTOL, atol=ATOL)
    # The trace is cut at k in both cases, so the difference before k is just the
    # propagated difference of A_k.
    diff_k = adv[k] - adv_term[k]
    np.testing.assert_allclose(diff_k, gamma * final_obs_value, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(adv[k - 1] - adv_term[k - 1], gamma * lam * diff_k, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("shape", [(20,), (15, 3)])
def test_lambda_one_is_discounted_monte_carlo_return_minus_value(shape):
    gamma = 0.95
    rng = np.random.default_rng(11)
    rewards = rng.normal(size=shape).astype(np.float32)
    values = rng.normal(size=shape).astype(np.float32)
    last_next = rng.normal(size=shape[1:]).astype(np.float32)
    next_values = np.concatenate([values[1:], last_next[None]], axis=0)
    zeros = np.zeros(shape, np.float32)
    adv, ret = gae(rewards, values, next_values, zeros, zeros, gamma=gamma, gae_lambda=1.0)

    T = shape[0]
    mc = np.zeros(shape, np.float64)
    for t in range(T):
        g = np.zeros(shape[1:], np.float64)
        for k in range(t, T):
            g = g + gamma ** (k - t) * rewards[k]
        g = g + gamma ** (T - t) * last_next
        mc[t] = g
    np.testing.assert_allclose(np.asarray(ret), mc, rtol=RTOL, atol=1e-4)
    np.testing.assert_allclose(np.asarray(adv), mc - values, rtol=RTOL, atol=1e-4)


@pytest.mark.parametrize("seed", SEEDS)
def test_lambda_zero_is_one_step_td_error(seed):
    gamma = 0.9
    r, v, nv, term, done = random_rollout(seed, (12, 5))
    adv, ret = gae(r, v, nv, term, done, gamma=gamma, gae_lambda=0.0)
    td = r.astype(np.float64) + gamma * (1.0 - term) * nv - v
    np.testing.assert_allclose(np.asarray(adv), td, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(ret), td + v, rtol=RTOL, atol=ATOL)


def test_single_step_rollout():
    r, v, nv, term, done = random_rollout(5, (1, 4), p_term=0.5, p_trunc=0.3)
    adv, _ = gae(r, v, nv, term, done, gamma=0.99, gae_lambda=0.95)
    ref, _ = reference_gae(r, v, nv, term, done, 0.99, 0.95)
    np.testing.assert_allclose(np.asarray(adv), ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("shape", [(16,), (10, 4)])
def test_gae_jit_matches_reference(shape):
    r, v, nv, term, done = random_rollout(21, shape)
    jitted = jax.jit(gae)
    # gamma / lambda as traced arguments too.
    adv, ret = jitted(r, v, nv, term, done, gamma=jnp.float32(0.98), gae_lambda=jnp.float32(0.9))
    ref_adv, ref_ret = reference_gae(r, v, nv, term, done, 0.98, 0.9)
    np.testing.assert_allclose(np.asarray(adv), ref_adv, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(ret), ref_ret, rtol=RTOL, atol=ATOL)


def test_gae_vmap_over_batch_axis_matches_reference():
    T, B = 14, 5
    r, v, nv, term, done = random_rollout(33, (T, B))
    gamma, lam = 0.99, 0.95

    def single(r_, v_, nv_, t_, d_):
        assert r_.shape == (T,)
        return gae(r_, v_, nv_, t_, d_, gamma=gamma, gae_lambda=lam)

    vmapped = jax.vmap(single, in_axes=1, out_axes=1)
    adv, ret = vmapped(r, v, nv, term, done)
    ref_adv, ref_ret = reference_gae(r, v, nv, term, done, gamma, lam)
    assert adv.shape == (T, B)
    np.testing.assert_allclose(np.asarray(adv), ref_adv, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(ret), ref_ret, rtol=RTOL, atol=ATOL)

    # Batch-major streams: vmap over axis 0 of [B, T] arrays.
    batch_major = [np.ascontiguousarray(x.T) for x in (r, v, nv, term, done)]
    adv_bm, _ = jax.jit(jax.vmap(single))(*batch_major)
    np.testing.assert_allclose(np.asarray(adv_bm), ref_adv.T, rtol=RTOL, atol=ATOL)

    # Each column is an independent stream: equal to the unbatched call per column.
    for b in range(B):
        a_b, _ = gae(r[:, b], v[:, b], nv[:, b], term[:, b], done[:, b], gamma=gamma, gae_lambda=lam)
        np.testing.assert_allclose(np.asarray(adv[:, b]), np.asarray(a_b), rtol=RTOL, atol=ATOL)


def test_gae_rejects_mismatched_shapes():
    x = jnp.zeros((5, 2))
    with pytest.raises(AssertionError):
        gae(x, x, x, x, jnp.zeros((5, 3)), gamma=0.9, gae_lambda=0.9)
