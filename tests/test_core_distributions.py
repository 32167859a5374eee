"""Tests for the hand-written Categorical and DiagGaussian distributions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppo_jax.core import Categorical, DiagGaussian

RTOL = 1e-5
ATOL = 1e-5


def np_softmax(logits):
    logits = np.asarray(logits, np.float64)
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def np_gaussian_log_prob(x, mean, log_std):
    x, mean, log_std = (np.asarray(a, np.float64) for a in (x, mean, log_std))
    std = np.exp(log_std)
    var = std**2
    per_dim = -((x - mean) ** 2) / (2.0 * var) - np.log(np.sqrt(2.0 * np.pi * var))
    return per_dim.sum(axis=-1)


def np_gaussian_entropy(log_std, D):
    std = np.exp(np.asarray(log_std, np.float64))
    per_dim = 0.5 * np.log(2.0 * np.pi * np.e * std**2)
    return np.broadcast_to(per_dim, np.shape(per_dim)[:-1] + (D,)).sum(axis=-1)


# ----------------------------------------------------------------------------
# Categorical
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("batch_shape", [(), (7,), (3, 4)])
@pytest.mark.parametrize("seed", [0, 1])
def test_categorical_log_prob_and_entropy_closed_form(batch_shape, seed):
    K = 5
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=batch_shape + (K,)) * 2.0).astype(np.float32)
    actions = rng.integers(0, K, size=batch_shape).astype(np.int32)
    dist = Categorical(jnp.asarray(logits))
    p = np_softmax(logits)

    lp = dist.log_prob(jnp.asarray(actions))
    assert lp.shape == batch_shape
    expected_lp = np.log(np.take_along_axis(p, actions[..., None], axis=-1)[..., 0])
    np.testing.assert_allclose(np.asarray(lp), expected_lp, rtol=RTOL, atol=ATOL)

    ent = dist.entropy()
    assert ent.shape == batch_shape
    np.testing.assert_allclose(np.asarray(ent), -(p * np.log(p)).sum(-1), rtol=RTOL, atol=ATOL)

    # log_probs is a normalized log-distribution.
    np.testing.assert_allclose(np.exp(np.asarray(dist.log_probs)).sum(-1), 1.0, rtol=RTOL)


def test_categorical_log_prob_accepts_float_actions():
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32))
    actions = np.array([0, 2, 1, 2])
    dist = Categorical(logits)
    np.testing.assert_array_equal(
        np.asarray(dist.log_prob(jnp.asarray(actions, jnp.float32))),
        np.asarray(dist.log_prob(jnp.asarray(actions, jnp.int32))),
    )


def test_categorical_entropy_extremes():
    K = 6
    uniform = Categorical(jnp.zeros((2, K)))
    np.testing.assert_allclose(np.asarray(uniform.entropy()), math.log(K), rtol=RTOL)
    # Invariant to a constant shift of the logits.
    shifted = Categorical(jnp.full((2, K), 123.0))
    np.testing.assert_allclose(np.asarray(shifted.entropy()), math.log(K), rtol=RTOL)
    # Near-deterministic: entropy ~ 0, finite (no NaN from 0·log 0).
    peaked = Categorical(jnp.array([[50.0, -50.0, -50.0, -50.0, -50.0, -50.0]]))
    ent = np.asarray(peaked.entropy())
    assert np.all(np.isfinite(ent)) and np.all(ent >= -1e-6) and np.all(ent < 1e-5)


def test_categorical_log_prob_extreme_logits_finite():
    dist = Categorical(jnp.array([[1000.0, 0.0, -1000.0]]))
    lp = np.asarray(dist.log_prob(jnp.array([0])))
    np.testing.assert_allclose(lp, [0.0], atol=1e-6)
    lp2 = np.asarray(dist.log_prob(jnp.array([2])))
    np.testing.assert_allclose(lp2, [-2000.0], rtol=RTOL)


def test_categorical_sample_frequencies_match_probs(key):
    logits = jnp.log(jnp.array([0.1, 0.2, 0.3, 0.4]))
    N = 20000
    dist = Categorical(jnp.broadcast_to(logits, (N, 4)))
    samples = np.asarray(dist.sample(key))
    assert samples.shape == (N,)
    assert samples.min() >= 0 and samples.max() <= 3
    freq = np.bincount(samples, minlength=4) / N
    # Binomial std is at most sqrt(.25/20000) ≈ 0.0035; allow ~4 std.
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.015)


def test_categorical_sample_respects_batch_rows(key):
    # Each row puts (almost) all mass on a different action.
    K = 4
    logits = jnp.where(jnp.eye(K, dtype=bool), 20.0, -20.0)
    samples = np.asarray(Categorical(logits).sample(key))
    np.testing.assert_array_equal(samples, np.arange(K))


def test_categorical_sample_is_deterministic_for_a_key(key):
    dist = Categorical(jnp.zeros((100, 5)))
    a = np.asarray(dist.sample(key))
    b = np.asarray(dist.sample(key))
    np.testing.assert_array_equal(a, b)
    c = np.asarray(dist.sample(jax.random.split(key)[0]))
    assert not np.array_equal(a, c)


def test_categorical_mode_is_argmax():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(10, 3, 7)).astype(np.float32)
    mode = np.asarray(Categorical(jnp.asarray(logits)).mode())
    assert mode.shape == (10, 3)
    np.testing.assert_array_equal(mode, logits.argmax(-1))


def test_categorical_jit_and_vmap(key):
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(8, 5)).astype(np.float32)
    actions = rng.integers(0, 5, size=8).astype(np.int32)
    p = np_softmax(logits)
    expected_lp = np.log(p[np.arange(8), actions])
    expected_ent = -(p * np.log(p)).sum(-1)

    @jax.jit
    def f(lg, a):
        d = Categorical(lg)
        return d.log_prob(a), d.entropy(), d.mode()

    lp, ent, mode = f(logits, actions)
    np.testing.assert_allclose(np.asarray(lp), expected_lp, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(ent), expected_ent, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(np.asarray(mode), logits.argmax(-1))

    # vmap over single (unbatched) distributions.
    def single(lg, a):
        d = Categorical(lg)
        return d.log_prob(a), d.entropy()

    lp_v, ent_v = jax.vmap(single)(logits, actions)
    np.testing.assert_allclose(np.asarray(lp_v), expected_lp, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(ent_v), expected_ent, rtol=RTOL, atol=ATOL)

    # The distribution itself is a pytree: it can be returned from jit and vmapped over.
    dist = jax.jit(Categorical)(logits)
    assert isinstance(dist, Categorical)
    lp_tree = jax.vmap(lambda d, a: d.log_prob(a))(dist, actions)
    np.testing.assert_allclose(np.asarray(lp_tree), expected_lp, rtol=RTOL, atol=ATOL)

    # Sampling under jit with one key per row.
    keys = jax.random.split(key, 8)
    s = jax.jit(jax.vmap(lambda d, k: d.sample(k)))(dist, keys)
    assert s.shape == (8,) and np.all((np.asarray(s) >= 0) & (np.asarray(s) < 5))


# ----------------------------------------------------------------------------
# DiagGaussian
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("batch_shape", [(), (6,), (2, 3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_gaussian_log_prob_and_entropy_closed_form(batch_shape, seed):
    D = 3
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=batch_shape + (D,)).astype(np.float32)
    log_std = rng.uniform(-1.5, 1.0, size=batch_shape + (D,)).astype(np.float32)
    x = (mean + rng.normal(size=batch_shape + (D,)) * 2.0).astype(np.float32)
    dist = DiagGaussian(jnp.asarray(mean), jnp.asarray(log_std))

    lp = dist.log_prob(jnp.asarray(x))
    assert lp.shape == batch_shape
    np.testing.assert_allclose(np.asarray(lp), np_gaussian_log_prob(x, mean, log_std), rtol=RTOL, atol=1e-4)
    ent = dist.entropy()
    assert ent.shape == batch_shape
    np.testing.assert_allclose(np.asarray(ent), np_gaussian_entropy(log_std, D), rtol=RTOL, atol=ATOL)


def test_gaussian_standard_normal_values():
    dist = DiagGaussian(jnp.zeros(2), jnp.zeros(2))
    # log N(0; 0, I_2) = −log(2π); H = log(2πe).
    np.testing.assert_allclose(float(dist.log_prob(jnp.zeros(2))), -math.log(2 * math.pi), rtol=RTOL)
    np.testing.assert_allclose(float(dist.entropy()), math.log(2 * math.pi * math.e), rtol=RTOL)


def test_gaussian_log_prob_integrates_to_one_1d():
    mean, log_std = 0.7, -0.3
    dist = DiagGaussian(jnp.array([mean]), jnp.array([log_std]))
    grid = np.linspace(mean - 10.0, mean + 10.0, 4001, dtype=np.float32)
    dens = np.exp(np.asarray(jax.vmap(dist.log_prob)(jnp.asarray(grid[:, None]))))
    integral = np.trapezoid(dens.astype(np.float64), grid.astype(np.float64))
    np.testing.assert_allclose(integral, 1.0, rtol=1e-4)


def test_gaussian_log_std_broadcast_d_against_bd():
    B, D = 5, 3
    rng = np.random.default_rng(9)
    mean = rng.normal(size=(B, D)).astype(np.float32)
    log_std = rng.uniform(-1.0, 0.5, size=(D,)).astype(np.float32)
    x = rng.normal(size=(B, D)).astype(np.float32)

    shared = DiagGaussian(jnp.asarray(mean), jnp.asarray(log_std))
    full = DiagGaussian(jnp.asarray(mean), jnp.broadcast_to(jnp.asarray(log_std), (B, D)))

    lp = shared.log_prob(jnp.asarray(x))
    assert lp.shape == (B,)
    np.testing.assert_allclose(
        np.asarray(lp),
        np_gaussian_log_prob(x, mean, np.broadcast_to(log_std, (B, D))),
        rtol=RTOL,
        atol=1e-4,
    )
    np.testing.assert_allclose(np.asarray(lp), np.asarray(full.log_prob(x)), rtol=RTOL, atol=ATOL)

    ent = shared.entropy()
    assert ent.shape == (B,)
    np.testing.assert_allclose(np.asarray(ent), np_gaussian_entropy(log_std, D) * np.ones(B), rtol=RTOL)

    key = jax.random.PRNGKey(1)
    s = shared.sample(key)
    assert s.shape == (B, D)
    np.testing.assert_allclose(np.asarray(s), np.asarray(full.sample(key)), rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(np.asarray(shared.mode()), mean)


def test_gaussian_sample_moments(key):
    D = 3
    N = 20000
    mean = np.array([1.0, -2.0, 0.5], np.float32)
    log_std = np.log(np.array([0.5, 2.0, 1.0], np.float32))
    dist = DiagGaussian(jnp.broadcast_to(mean, (N, D)), jnp.asarray(log_std))
    samples = np.asarray(dist.sample(key), np.float64)
    assert samples.shape == (N, D)
    std = np.exp(log_std)
    # Standard error of the mean: std/sqrt(N) <= 0.015; of the std: ~std/sqrt(2N) <= 0.01.
    assert np.all(np.abs(samples.mean(0) - mean) < 5 * std / np.sqrt(N))
    np.testing.assert_allclose(samples.std(0), std, rtol=0.03)
    # Dimensions are independent.
    corr = np.corrcoef(samples.T)
    np.testing.assert_allclose(corr[np.triu_indices(D, 1)], 0.0, atol=0.04)


def test_gaussian_sample_is_reparameterized(key):
    """Samples are mean + σ·ε: d sample / d mean = 1 and d sample / d log_std = sample − mean."""
    mean = jnp.array([0.3, -0.1])
    log_std = jnp.array([0.2, -0.4])
    s = DiagGaussian(mean, log_std).sample(key)
    g_mean = jax.grad(lambda m: DiagGaussian(m, log_std).sample(key).sum())(mean)
    g_ls = jax.grad(lambda ls: DiagGaussian(mean, ls).sample(key).sum())(log_std)
    np.testing.assert_allclose(np.asarray(g_mean), 1.0, rtol=RTOL)
    np.testing.assert_allclose(np.asarray(g_ls), np.asarray(s - mean), rtol=RTOL, atol=ATOL)


def test_gaussian_mode_is_mean():
    mean = np.random.default_rng(4).normal(size=(4, 2)).astype(np.float32)
    dist = DiagGaussian(jnp.asarray(mean), jnp.zeros(2))
    np.testing.assert_array_equal(np.asarray(dist.mode()), mean)
    # The mode is the argmax of the density.
    lp_mode = np.asarray(dist.log_prob(dist.mode()))
    lp_off = np.asarray(dist.log_prob(dist.mode() + 0.1))
    assert np.all(lp_mode > lp_off)


def test_gaussian_jit_and_vmap(key):
    B, D = 6, 2
    rng = np.random.default_rng(8)
    mean = rng.normal(size=(B, D)).astype(np.float32)
    log_std = rng.uniform(-1.0, 0.5, size=(D,)).astype(np.float32)
    x = rng.normal(size=(B, D)).astype(np.float32)
    expected_lp = np_gaussian_log_prob(x, mean, np.broadcast_to(log_std, (B, D)))
    expected_ent = np_gaussian_entropy(log_std, D) * np.ones(B)

    @jax.jit
    def f(m, ls, a):
        d = DiagGaussian(m, ls)
        return d.log_prob(a), d.entropy(), d.mode()

    lp, ent, mode = f(mean, log_std, x)
    np.testing.assert_allclose(np.asarray(lp), expected_lp, rtol=RTOL, atol=1e-4)
    np.testing.assert_allclose(np.asarray(ent), expected_ent, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(np.asarray(mode), mean)

    # vmap over unbatched distributions, log_std shared (in_axes=None).
    def single(m, ls, a):
        d = DiagGaussian(m, ls)
        return d.log_prob(a), d.entropy()

    lp_v, ent_v = jax.vmap(single, in_axes=(0, None, 0))(mean, log_std, x)
    np.testing.assert_allclose(np.asarray(lp_v), expected_lp, rtol=RTOL, atol=1e-4)
    np.testing.assert_allclose(np.asarray(ent_v), expected_ent, rtol=RTOL, atol=ATOL)

    # Pytree through jit and vmap; per-row sampling.
    dist = jax.jit(DiagGaussian)(mean, np.broadcast_to(log_std, (B, D)))
    assert isinstance(dist, DiagGaussian)
    keys = jax.random.split(key, B)
    samples = jax.jit(jax.vmap(lambda d, k: d.sample(k)))(dist, keys)
    assert samples.shape == (B, D)
    assert np.all(np.isfinite(np.asarray(samples)))
    # Same keys, same samples, with and without jit.
    samples_eager = jax.vmap(lambda d, k: d.sample(k))(dist, keys)
    np.testing.assert_allclose(np.asarray(samples), np.asarray(samples_eager), rtol=RTOL, atol=ATOL)
