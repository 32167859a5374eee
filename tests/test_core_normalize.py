"""Tests for the running mean / variance and the normalize / scale helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppo_jax.core import RunningMeanStd, normalize, rms_init, rms_update, scale

RTOL = 1e-5
ATOL = 1e-5


def reference_stats(data, feature_ndim, epsilon):
    """Mean / population variance of all samples plus the initial pseudo-sample.

    The initial state (mean 0, var 1, count ε) acts as a weight-ε sample
    population with mean 0 and variance 1.
    """
    data = np.asarray(data, np.float64)
    flat = data.reshape((-1,) + data.shape[data.ndim - feature_ndim :])
    n = flat.shape[0]
    total = epsilon + n
    mean = flat.sum(0) / total
    m2 = epsilon * (1.0 + mean**2) + ((flat - mean) ** 2).sum(0)
    return mean, m2 / total, total


def assert_state_close(state, mean, var, count, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(state.mean), mean, rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.asarray(state.var), var, rtol=rtol, atol=atol)
    np.testing.assert_allclose(float(state.count), count, rtol=RTOL)


def test_rms_init():
    s = rms_init((3, 2), epsilon=1e-3)
    assert isinstance(s, RunningMeanStd)
    assert s.mean.shape == (3, 2) and s.var.shape == (3, 2) and s.count.shape == ()
    assert s.mean.dtype == jnp.float32 and s.var.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(s.mean), 0.0)
    np.testing.assert_array_equal(np.asarray(s.var), 1.0)
    np.testing.assert_allclose(float(s.count), 1e-3, rtol=1e-6)
    assert rms_init().mean.shape == ()


@pytest.mark.parametrize(
    "feature_shape,batch_shape",
    [((), (64,)), ((), (8, 16)), ((3,), (50,)), ((3,), (10, 7)), ((2, 2), (4, 5, 6))],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_single_update_tiny_epsilon_equals_numpy(feature_shape, batch_shape, seed):
    rng = np.random.default_rng(seed)
    data = (rng.normal(size=batch_shape + feature_shape) * 3.0 + 2.0).astype(np.float32)
    state = rms_update(rms_init(feature_shape, epsilon=1e-12), jnp.asarray(data))
    axes = tuple(range(len(batch_shape)))
    d64 = data.astype(np.float64)
    assert state.mean.shape == feature_shape
    assert_state_close(state, d64.mean(axes), d64.var(axes), np.prod(batch_shape))


@pytest.mark.parametrize("epsilon", [1e-4, 1e-2, 1.0])
def test_single_update_accounts_for_pseudo_count(epsilon):
    rng = np.random.default_rng(2)
    data = (rng.normal(size=(40, 3)) * 2.0 + 1.0).astype(np.float32)
    state = rms_update(rms_init((3,), epsilon=epsilon), jnp.asarray(data))
    mean, var, count = reference_stats(data, 1, epsilon)
    assert_state_close(state, mean, var, count)


def test_sequential_updates_equal_stats_of_concatenation():
    rng = np.random.default_rng(3)
    feature_shape = (4,)
    eps = 1e-4
    batches = [
        (rng.normal(size=(n, 4)) * s + m).astype(np.float32)
        for n, s, m in [(30, 1.0, 0.0), (5, 4.0, 3.0), (64, 0.5, -2.0), (1, 1.0, 10.0)]
    ]
    state = rms_init(feature_shape, epsilon=eps)
    for i, b in enumerate(batches):
        state = rms_update(state, jnp.asarray(b))
        mean, var, count = reference_stats(np.concatenate(batches[: i + 1]), 1, eps)
        assert_state_close(state, mean, var, count)

    # With a tiny pseudo-count this is plain numpy mean / var of all the data.
    state = rms_init(feature_shape, epsilon=1e-12)
    for b in batches:
        state = rms_update(state, jnp.asarray(b))
    all_data = np.concatenate(batches).astype(np.float64)
    assert_state_close(state, all_data.mean(0), all_data.var(0), len(all_data))


@pytest.mark.parametrize("chunks", [2, 5, 16])
def test_chunked_merge_equals_merge_at_once(chunks):
    rng = np.random.default_rng(4)
    data = rng.normal(size=(80, 3)) * np.array([1.0, 5.0, 0.1]) + np.array([0.0, -3.0, 8.0])
    data = data.astype(np.float32)
    # Start from a non-trivial state so the merge formula is exercised fully.
    start = rms_update(rms_init((3,)), jnp.asarray(rng.normal(size=(10, 3)).astype(np.float32)))
    at_once = rms_update(start, jnp.asarray(data))
    chunked = start
    for part in np.array_split(data, chunks):
        chunked = rms_update(chunked, jnp.asarray(part))
    np.testing.assert_allclose(np.asarray(chunked.mean), np.asarray(at_once.mean), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(chunked.var), np.asarray(at_once.var), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(float(chunked.count), float(at_once.count), rtol=1e-6)


def test_leading_axes_are_all_sample_axes():
    rng = np.random.default_rng(5)
    data = rng.normal(size=(6, 4, 2)).astype(np.float32)
    s_3d = rms_update(rms_init((2,)), jnp.asarray(data))
    s_2d = rms_update(rms_init((2,)), jnp.asarray(data.reshape(24, 2)))
    np.testing.assert_allclose(np.asarray(s_3d.mean), np.asarray(s_2d.mean), rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(np.asarray(s_3d.var), np.asarray(s_2d.var), rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(float(s_3d.count), 24 + 1e-4, rtol=1e-6)


def test_update_casts_to_float32():
    data = np.arange(12, dtype=np.int32).reshape(6, 2)
    s = rms_update(rms_init((2,), epsilon=1e-12), jnp.asarray(data))
    assert s.mean.dtype == jnp.float32 and s.var.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(s.mean), data.mean(0), rtol=RTOL)
    np.testing.assert_allclose(np.asarray(s.var), data.var(0), rtol=RTOL)


def test_rms_update_under_jit_and_scan():
    rng = np.random.default_rng(6)
    batches = (rng.normal(size=(7, 12, 3)) * 2.0 + 0.5).astype(np.float32)
    eps = 1e-4
    jitted = jax.jit(rms_update)
    state = rms_init((3,), epsilon=eps)
    for b in batches:
        state = jitted(state, jnp.asarray(b))
    mean, var, count = reference_stats(batches, 1, eps)
    assert_state_close(state, mean, var, count)

    def step(s, b):
        return rms_update(s, b), None

    scanned, _ = jax.jit(lambda s, bs: jax.lax.scan(step, s, bs))(rms_init((3,), epsilon=eps), batches)
    assert isinstance(scanned, RunningMeanStd)
    assert_state_close(scanned, mean, var, count)


# ----------------------------------------------------------------------------
# normalize / scale
# ----------------------------------------------------------------------------


def some_state(seed=7, shape=(3,)):
    rng = np.random.default_rng(seed)
    return RunningMeanStd(
        mean=jnp.asarray(rng.normal(size=shape).astype(np.float32)),
        var=jnp.asarray(rng.uniform(0.1, 4.0, size=shape).astype(np.float32)),
        count=jnp.asarray(100.0, jnp.float32),
    )


def test_normalize_formula_single_and_batched():
    state = some_state()
    mean, var = np.asarray(state.mean, np.float64), np.asarray(state.var, np.float64)
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3,)).astype(np.float32)
    expected = (x - mean) / np.sqrt(var + 1e-8)
    np.testing.assert_allclose(np.asarray(normalize(state, jnp.asarray(x))), expected, rtol=RTOL, atol=ATOL)
    # Batch of observations [B, *shape] against state of shape [*shape].
    xb = rng.normal(size=(5, 3)).astype(np.float32)
    out = normalize(state, jnp.asarray(xb))
    assert out.shape == (5, 3)
    np.testing.assert_allclose(np.asarray(out), (xb - mean) / np.sqrt(var + 1e-8), rtol=RTOL, atol=ATOL)
    # Custom eps.
    out_eps = normalize(state, jnp.asarray(xb), eps=0.5)
    np.testing.assert_allclose(np.asarray(out_eps), (xb - mean) / np.sqrt(var + 0.5), rtol=RTOL, atol=ATOL)


def test_normalize_clips():
    state = RunningMeanStd(jnp.zeros(2), jnp.ones(2), jnp.asarray(1.0))
    x = jnp.array([[100.0, -100.0], [3.0, -3.0]])
    np.testing.assert_allclose(
        np.asarray(normalize(state, x)), [[10.0, -10.0], [3.0, -3.0]], rtol=RTOL, atol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(normalize(state, x, clip=2.5)), [[2.5, -2.5], [2.5, -2.5]], rtol=RTOL
    )


def test_normalized_data_has_zero_mean_unit_variance():
    rng = np.random.default_rng(9)
    data = rng.normal(size=(500, 3)) * np.array([0.1, 3.0, 20.0]) + np.array([5.0, -1.0, 0.0])
    data = data.astype(np.float32)
    state = rms_update(rms_init((3,), epsilon=1e-12), jnp.asarray(data))
    z = np.asarray(normalize(state, jnp.asarray(data), clip=1e6), np.float64)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.var(0), 1.0, rtol=1e-4)


def test_scale_formula():
    state = some_state(shape=())
    var = float(state.var)
    rng = np.random.default_rng(10)
    r = rng.normal(size=(16,)).astype(np.float32) * 5.0
    out = scale(state, jnp.asarray(r))
    # No centring: the mean is not subtracted.
    np.testing.assert_allclose(np.asarray(out), r / np.sqrt(var + 1e-8), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        np.asarray(scale(state, jnp.asarray(r), eps=1.0)), r / np.sqrt(var + 1.0), rtol=RTOL, atol=ATOL
    )
    # Vector state against a batch.
    vstate = some_state(shape=(3,))
    xb = rng.normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(scale(vstate, jnp.asarray(xb))),
        xb / np.sqrt(np.asarray(vstate.var, np.float64) + 1e-8),
        rtol=RTOL,
        atol=ATOL,
    )
    # Sign is preserved and zero maps to zero.
    assert float(scale(state, jnp.asarray(0.0))) == 0.0


def test_normalize_and_scale_under_jit():
    state = some_state()
    xb = np.random.default_rng(11).normal(size=(6, 3)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(jax.jit(normalize)(state, xb)), np.asarray(normalize(state, xb)), rtol=RTOL, atol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(jax.jit(scale)(state, xb)), np.asarray(scale(state, xb)), rtol=RTOL, atol=1e-6
    )

    @jax.jit
    def update_then_normalize(s, b):
        s = rms_update(s, b)
        return s, normalize(s, b)

    s2, z = update_then_normalize(rms_init((3,), epsilon=1e-12), xb)
    d64 = xb.astype(np.float64)
    np.testing.assert_allclose(
        np.asarray(z), (d64 - d64.mean(0)) / np.sqrt(d64.var(0) + 1e-8), rtol=1e-4, atol=1e-4
    )
