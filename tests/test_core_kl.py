"""ppo_jax.core.kl: the KL penalty and the adaptive-β controller against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppo_jax.core import adaptive_kl_coef, kl_penalty


def reference_penalty(r, log_p, ref_log_p, beta):
    """Element by element, float64."""
    r, log_p, ref_log_p = (np.asarray(x, np.float64) for x in (r, log_p, ref_log_p))
    out, kl = np.empty_like(r), np.empty_like(r)
    for i in np.ndindex(r.shape):
        kl[i] = log_p[i] - ref_log_p[i]
        out[i] = r[i] - beta * kl[i]
    return out, kl


def reference_controller(beta, kl, target, n_steps, horizon):
    error = min(max(kl / target - 1.0, -0.2), 0.2)
    return beta * np.exp(error * n_steps / horizon)


def random_inputs(seed, shape):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=shape).astype(np.float32)
    log_p = -rng.exponential(size=shape).astype(np.float32)
    ref_log_p = -rng.exponential(size=shape).astype(np.float32)
    return r, log_p, ref_log_p, float(rng.uniform(0.0, 2.0))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("variant", ["plain", "jit", "vmap"])
def test_penalty_matches_numpy(seed, variant):
    r, log_p, ref_log_p, beta = random_inputs(seed, (16, 8))
    want, want_kl = reference_penalty(r, log_p, ref_log_p, beta)
    fn = kl_penalty
    if variant == "jit":
        fn = jax.jit(kl_penalty)
    if variant == "vmap":  # one stream per env, batched by the caller
        fn = jax.jit(jax.vmap(kl_penalty, in_axes=(1, 1, 1, None), out_axes=1))
    got, got_kl = fn(r, log_p, ref_log_p, jnp.float32(beta))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_kl, want_kl, rtol=1e-5, atol=1e-6)


def test_penalty_vmapped_over_coefficients():
    r, log_p, ref_log_p, _ = random_inputs(7, (5, 3))
    betas = np.array([0.0, 0.1, 1.0, 3.0], np.float32)
    got, _ = jax.vmap(kl_penalty, in_axes=(None, None, None, 0))(r, log_p, ref_log_p, betas)
    for i, beta in enumerate(betas):
        np.testing.assert_allclose(
            got[i], reference_penalty(r, log_p, ref_log_p, beta)[0], rtol=1e-5, atol=1e-5
        )
    np.testing.assert_array_equal(got[0], r)  # β = 0: the reward itself, bit for bit


def test_penalty_refuses_mismatched_shapes():
    with pytest.raises(AssertionError):
        kl_penalty(jnp.zeros((4,)), jnp.zeros((4, 1)), jnp.zeros((4,)), 0.1)


@pytest.mark.parametrize("seed", range(5))
def test_controller_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    beta, kl, target = rng.uniform(0.01, 1.0), rng.uniform(0.0, 1.0), rng.uniform(0.05, 0.5)
    n_steps, horizon = 512.0, rng.uniform(1e3, 2e4)
    got = jax.jit(adaptive_kl_coef)(beta, kl, target, n_steps, horizon)
    np.testing.assert_allclose(got, reference_controller(beta, kl, target, n_steps, horizon), rtol=1e-5)


def test_controller_moves_beta_toward_target_and_clips_the_error():
    # KL above target: β grows, by at most a factor exp(0.2·n/horizon); below: it shrinks.
    up = adaptive_kl_coef(0.5, 10.0, 0.1, 1000.0, 10_000.0)
    np.testing.assert_allclose(up, 0.5 * np.exp(0.02), rtol=1e-6)
    down = adaptive_kl_coef(0.5, 0.0, 0.1, 1000.0, 10_000.0)
    np.testing.assert_allclose(down, 0.5 * np.exp(-0.02), rtol=1e-6)
    assert adaptive_kl_coef(0.5, 0.1, 0.1, 1000.0, 10_000.0) == pytest.approx(0.5)


def test_controller_at_the_papers_gain_is_the_papers_linear_step():
    # lm-human-preferences: 512 steps a batch, horizon 10,000 (K_β ≈ 0.05).
    for kl in (0.0, 0.05, 0.1, 0.15, 1.0):
        linear = 0.1 * (1.0 + np.clip(kl / 0.1 - 1.0, -0.2, 0.2) * 512 / 10_000)
        np.testing.assert_allclose(adaptive_kl_coef(0.1, kl, 0.1, 512.0, 10_000.0), linear, rtol=1e-4)


@pytest.mark.parametrize("kl", [0.0, 1.0])
def test_controller_keeps_beta_positive_at_a_gpu_sized_batch(kl):
    # 512 envs × 128 steps with the default horizon: K_β = 6.55, where the linear
    # factor 1 − 0.2·K_β is −0.31 and flips β's sign in one update.
    n_steps, horizon = 512.0 * 128.0, 10_000.0
    step = jax.jit(adaptive_kl_coef)
    beta = jnp.float32(0.1)
    want = 0.1
    for _ in range(5):
        beta = step(beta, kl, 0.1, n_steps, horizon)
        want = reference_controller(want, kl, 0.1, n_steps, horizon)
        assert beta > 0
        np.testing.assert_allclose(beta, want, rtol=1e-5)
    betas = jax.vmap(adaptive_kl_coef, in_axes=(0, None, None, None, None))(
        jnp.array([0.01, 0.1, 1.0]), kl, 0.1, n_steps, horizon
    )
    assert np.all(np.asarray(betas) > 0)
