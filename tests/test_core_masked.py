"""The masked Categorical against a plain numpy reference: p(a) ∝ exp(logit_a)·[valid_a]."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppo_jax.core import Categorical
from ppo_jax.core.distributions import with_action_mask

RTOL = ATOL = 1e-5


def np_masked(logits, mask):
    """Probabilities, log-probabilities (−inf where invalid) and entropy, by the definition."""
    logits = np.asarray(logits, np.float64)
    e = np.where(mask, np.exp(logits - logits.max(-1, keepdims=True)), 0.0)
    p = e / e.sum(-1, keepdims=True)
    with np.errstate(divide="ignore"):
        log_p = np.log(p)
    entropy = -np.sum(np.where(mask, p * np.where(mask, log_p, 0.0), 0.0), axis=-1)
    return p, log_p, entropy


def random_case(seed, batch_shape, k=6):
    rng = np.random.default_rng(seed)
    logits = (3 * rng.normal(size=batch_shape + (k,))).astype(np.float32)
    mask = rng.random(batch_shape + (k,)) < 0.5
    mask[..., rng.integers(0, k)] = True  # at least one valid action per row
    valid_actions = np.apply_along_axis(lambda m: rng.choice(np.flatnonzero(m)), -1, mask)
    return logits, mask, valid_actions


@pytest.mark.parametrize("batch_shape", [(), (7,), (3, 4)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_prob_entropy_mode_match_the_reference(batch_shape, seed):
    logits, mask, actions = random_case(seed, batch_shape)
    p, log_p, entropy = np_masked(logits, mask)
    dist = Categorical(jnp.asarray(logits)).masked(jnp.asarray(mask))
    expected_lp = np.take_along_axis(log_p, np.asarray(actions)[..., None], -1)[..., 0]
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(actions)), expected_lp, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dist.entropy(), entropy, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(jnp.exp(dist.log_probs), p, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(dist.mode(), np.argmax(np.where(mask, logits, -np.inf), -1))


def test_samples_follow_the_masked_probabilities(key):
    logits = jnp.log(jnp.array([0.4, 0.1, 0.2, 0.3]))
    mask = jnp.array([False, True, True, True])
    n = 20000
    dist = Categorical(jnp.broadcast_to(logits, (n, 4))).masked(jnp.broadcast_to(mask, (n, 4)))
    samples = np.asarray(dist.sample(key))
    freq = np.bincount(samples, minlength=4) / n
    np.testing.assert_allclose(freq, [0.0, 1 / 6, 2 / 6, 3 / 6], atol=0.015)  # ~4 binomial std
    assert freq[0] == 0.0  # never an invalid action, however large its logit
    # the rollout's path: Gumbel noise drawn first, then argmax
    noise = Categorical.noise(key, (n, 4))
    assert not np.any(np.asarray(dist.sample_from_noise(noise)) == 0)


def test_gradients_are_finite_and_skip_the_masked_logits():
    logits, mask, actions = random_case(3, (5,))

    def loss(lg):
        d = Categorical(lg).masked(jnp.asarray(mask))
        return jnp.sum(d.log_prob(jnp.asarray(actions))) + jnp.sum(d.entropy())

    grad = np.asarray(jax.grad(loss)(jnp.asarray(logits)))
    assert np.isfinite(grad).all()
    np.testing.assert_array_equal(grad[~mask], 0.0)
    # on the valid logits: the reference gradient by central differences in float64
    p_eps = 1e-3
    for row, col in zip(*np.nonzero(mask)):

        def f(delta, row=row, col=col):
            lg = logits.astype(np.float64).copy()
            lg[row, col] += delta
            _, log_p, ent = np_masked(lg, mask)
            return np.take_along_axis(log_p, actions[:, None], -1).sum() + ent.sum()

        expected = (f(p_eps) - f(-p_eps)) / (2 * p_eps)
        np.testing.assert_allclose(grad[row, col], expected, rtol=2e-3, atol=2e-3)


def test_jit_and_vmap_agree_with_the_reference():
    logits, mask, actions = random_case(4, (8,))
    _, log_p, entropy = np_masked(logits, mask)
    expected_lp = log_p[np.arange(8), actions]

    def f(lg, m, a):
        d = Categorical(lg).masked(m)
        return d.log_prob(a), d.entropy()

    for fn in (jax.jit(f), jax.vmap(f), jax.jit(jax.vmap(f))):
        lp, ent = fn(jnp.asarray(logits), jnp.asarray(mask), jnp.asarray(actions))
        np.testing.assert_allclose(lp, expected_lp, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(ent, entropy, rtol=RTOL, atol=ATOL)


def test_all_valid_mask_changes_nothing_and_none_is_no_mask():
    logits, _, actions = random_case(5, (6,))
    plain = Categorical(jnp.asarray(logits))
    masked = plain.masked(jnp.ones(logits.shape, bool))
    np.testing.assert_allclose(masked.log_prob(actions), plain.log_prob(actions), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(masked.entropy(), plain.entropy(), rtol=RTOL, atol=ATOL)
    assert with_action_mask(plain, None) is plain


def test_a_row_without_valid_actions_is_uniform_not_nan():
    dist = Categorical(jnp.array([[1.0, 2.0, 3.0]])).masked(jnp.zeros((1, 3), bool))
    np.testing.assert_allclose(dist.entropy(), [np.log(3.0)], rtol=RTOL)
