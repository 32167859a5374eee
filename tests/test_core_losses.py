"""Tests for the PPO losses and diagnostics in ppo_jax.core.losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppo_jax.core import (
    approx_kl,
    clip_fraction,
    clipped_surrogate_loss,
    explained_variance,
    value_loss,
)

RTOL = 1e-5
ATOL = 1e-6


# ----------------------------------------------------------------------------
# Loop references (float64).
# ----------------------------------------------------------------------------


def ref_surrogate(log_prob, old_log_prob, adv, eps):
    total = 0.0
    n = len(log_prob)
    for i in range(n):
        ratio = np.exp(np.float64(log_prob[i]) - np.float64(old_log_prob[i]))
        a = np.float64(adv[i])
        clipped_ratio = min(max(ratio, 1.0 - eps), 1.0 + eps)
        total += min(ratio * a, clipped_ratio * a)
    return -total / n


def ref_surrogate_grad(log_prob, old_log_prob, adv, eps):
    """d loss / d log_prob_i, per element (zero where the clipped branch is active)."""
    n = len(log_prob)
    g = np.zeros(n, np.float64)
    for i in range(n):
        ratio = np.exp(np.float64(log_prob[i]) - np.float64(old_log_prob[i]))
        a = np.float64(adv[i])
        if (a > 0 and ratio > 1.0 + eps) or (a < 0 and ratio < 1.0 - eps):
            g[i] = 0.0
        else:
            g[i] = -ratio * a / n
    return g


def ref_value_loss(values, targets, old_values=None, clip=None):
    total = 0.0
    n = len(values)
    for i in range(n):
        v, r = np.float64(values[i]), np.float64(targets[i])
        sq = (v - r) ** 2
        if clip is not None:
            vo = np.float64(old_values[i])
            vc = vo + min(max(v - vo, -clip), clip)
            sq = max(sq, (vc - r) ** 2)
        total += sq
    return 0.5 * total / n


def ref_approx_kl(log_prob, old_log_prob):
    total = 0.0
    for lp, olp in zip(log_prob, old_log_prob):
        log_ratio = np.float64(lp) - np.float64(olp)
        total += (np.exp(log_ratio) - 1.0) - log_ratio
    return total / len(log_prob)


def ref_clip_fraction(log_prob, old_log_prob, eps):
    count = 0
    for lp, olp in zip(log_prob, old_log_prob):
        ratio = np.exp(np.float64(lp) - np.float64(olp))
        count += int(ratio > 1.0 + eps or ratio < 1.0 - eps)
    return count / len(log_prob)


def random_policy_batch(seed, n=256, spread=0.6):
    """log-ratios in roughly [-3·spread, 3·spread]: many ratios far outside the clip range."""
    rng = np.random.default_rng(seed)
    old = rng.normal(-1.5, 0.5, size=n).astype(np.float32)
    log_ratio = rng.normal(0.0, spread, size=n).astype(np.float32)
    new = (old + log_ratio).astype(np.float32)
    adv = rng.normal(size=n).astype(np.float32)
    return new, old, adv


# ----------------------------------------------------------------------------
# clipped_surrogate_loss
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("eps", [0.1, 0.2, 0.3])
def test_surrogate_matches_reference(seed, eps):
    new, old, adv = random_policy_batch(seed)
    ratio = np.exp(new.astype(np.float64) - old)
    # The batch must exercise every branch.
    assert (ratio > 1 + eps).any() and (ratio < 1 - eps).any()
    assert ((ratio > 2.0) | (ratio < 0.4)).any()  # far outside the clip range
    assert (adv > 0).any() and (adv < 0).any()
    loss = clipped_surrogate_loss(new, old, adv, eps)
    assert loss.shape == ()
    np.testing.assert_allclose(float(loss), ref_surrogate(new, old, adv, eps), rtol=RTOL, atol=ATOL)


def test_surrogate_hand_computed():
    eps = 0.2
    ratio = np.array([1.5, 1.5, 0.5, 0.5, 1.1], np.float32)
    adv = np.array([2.0, -2.0, 2.0, -2.0, 1.0], np.float32)
    old = np.zeros(5, np.float32)
    new = np.log(ratio)
    # min(ρA, clip(ρ)A): [1.2*2, 1.5*-2, 0.5*2, 0.8*-2, 1.1*1] = [2.4, -3, 1, -1.6, 1.1]
    expected = -np.mean([2.4, -3.0, 1.0, -1.6, 1.1])
    loss = clipped_surrogate_loss(new, old, adv, eps)
    np.testing.assert_allclose(float(loss), expected, rtol=RTOL, atol=ATOL)


def test_surrogate_at_identical_policies_is_minus_mean_advantage():
    _, old, adv = random_policy_batch(4)
    loss = clipped_surrogate_loss(old, old, adv, 0.2)
    np.testing.assert_allclose(float(loss), -np.mean(adv.astype(np.float64)), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_surrogate_gradient_exactly_zero_where_clipped(seed):
    eps = 0.2
    new, old, adv = random_policy_batch(seed, n=512, spread=0.5)
    ratio = np.exp(new.astype(np.float64) - old)
    # Stay clear of exact ties at the clip boundaries.
    keep = (np.abs(ratio - (1 + eps)) > 1e-3) & (np.abs(ratio - (1 - eps)) > 1e-3)
    keep &= np.abs(adv) > 1e-3
    new, old, adv, ratio = new[keep], old[keep], adv[keep], ratio[keep]

    grad = np.asarray(jax.grad(clipped_surrogate_loss)(jnp.asarray(new), old, adv, eps))
    active = ((ratio > 1 + eps) & (adv > 0)) | ((ratio < 1 - eps) & (adv < 0))
    assert active.sum() > 20 and (~active).sum() > 20

    # Exactly zero, not approximately.
    assert np.all(grad[active] == 0.0), grad[active][grad[active] != 0.0]
    assert np.all(grad[~active] != 0.0)
    # Outside the clip range on the "optimistic" side the gradient still flows.
    optimistic = ((ratio > 1 + eps) & (adv < 0)) | ((ratio < 1 - eps) & (adv > 0))
    assert optimistic.any()
    assert np.all(grad[optimistic] != 0.0)
    # Values of the gradient match d/dlogπ of −mean(ρA) on the unclipped elements.
    np.testing.assert_allclose(grad, ref_surrogate_grad(new, old, adv, eps), rtol=1e-4, atol=1e-7)


def test_surrogate_no_gradient_wrt_old_log_prob_when_clipped():
    eps = 0.2
    new = np.log(np.array([1.6, 0.5], np.float32))
    old = np.zeros(2, np.float32)
    adv = np.array([1.0, -1.0], np.float32)
    g_old = jax.grad(clipped_surrogate_loss, argnums=1)(new, jnp.asarray(old), adv, eps)
    assert np.all(np.asarray(g_old) == 0.0)


def test_surrogate_jit_and_vmap():
    eps = 0.2
    batches = [random_policy_batch(s, n=64) for s in range(4)]
    new = np.stack([b[0] for b in batches])
    old = np.stack([b[1] for b in batches])
    adv = np.stack([b[2] for b in batches])
    jitted = jax.jit(clipped_surrogate_loss)
    for i in range(4):
        np.testing.assert_allclose(
            float(jitted(new[i], old[i], adv[i], eps)),
            ref_surrogate(new[i], old[i], adv[i], eps),
            rtol=RTOL,
            atol=ATOL,
        )
    vm = jax.jit(jax.vmap(clipped_surrogate_loss, in_axes=(0, 0, 0, None)))(new, old, adv, eps)
    assert vm.shape == (4,)
    expected = [ref_surrogate(new[i], old[i], adv[i], eps) for i in range(4)]
    np.testing.assert_allclose(np.asarray(vm), expected, rtol=RTOL, atol=ATOL)
    # Per-sample gradients under vmap keep the exact zeros.
    grads = jax.vmap(jax.grad(clipped_surrogate_loss), in_axes=(0, 0, 0, None))(new, old, adv, eps)
    for i in range(4):
        np.testing.assert_allclose(
            np.asarray(grads[i]),
            ref_surrogate_grad(new[i], old[i], adv[i], eps),
            rtol=1e-4,
            atol=1e-7,
        )


# ----------------------------------------------------------------------------
# value_loss
# ----------------------------------------------------------------------------


def random_values(seed, n=200):
    rng = np.random.default_rng(seed)
    old_values = rng.normal(size=n).astype(np.float32)
    values = (old_values + rng.normal(0.0, 0.5, size=n)).astype(np.float32)
    targets = (old_values + rng.normal(0.0, 1.0, size=n)).astype(np.float32)
    return values, targets, old_values


@pytest.mark.parametrize("seed", [0, 1])
def test_value_loss_plain_matches_reference(seed):
    values, targets, old_values = random_values(seed)
    loss = value_loss(values, targets)
    assert loss.shape == ()
    np.testing.assert_allclose(float(loss), ref_value_loss(values, targets), rtol=RTOL, atol=ATOL)
    # old_values are ignored without a clip coefficient.
    np.testing.assert_allclose(float(value_loss(values, targets, old_values)), float(loss), rtol=0, atol=0)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("clip", [0.1, 0.5])
def test_value_loss_clipped_matches_reference(seed, clip):
    values, targets, old_values = random_values(seed)
    assert (np.abs(values - old_values) > clip).any()
    loss = value_loss(values, targets, old_values, clip)
    np.testing.assert_allclose(
        float(loss), ref_value_loss(values, targets, old_values, clip), rtol=RTOL, atol=ATOL
    )
    # Clipping takes the max, so it can only increase the loss.
    assert float(loss) >= float(value_loss(values, targets)) - 1e-6


def test_value_loss_clipped_hand_computed():
    # V_old = 0, c = 0.2.
    old = np.zeros(3, np.float32)
    values = np.array([1.0, 1.0, 0.1], np.float32)
    targets = np.array([2.0, 0.0, 0.0], np.float32)
    # i=0: (1-2)^2=1, clipped (0.2-2)^2=3.24 -> 3.24
    # i=1: (1-0)^2=1, clipped (0.2-0)^2=0.04 -> 1
    # i=2: 0.01, clipped 0.01 -> 0.01
    expected = 0.5 * (3.24 + 1.0 + 0.01) / 3
    np.testing.assert_allclose(float(value_loss(values, targets, old, 0.2)), expected, rtol=RTOL)
    np.testing.assert_allclose(float(value_loss(values, targets)), 0.5 * 2.01 / 3, rtol=RTOL)


def test_value_loss_clipping_needs_old_values():
    x = jnp.zeros(3)
    with pytest.raises(ValueError):
        value_loss(x, x, None, 0.2)


def test_value_loss_jit_and_vmap():
    data = [random_values(s, n=32) for s in range(3)]
    values = np.stack([d[0] for d in data])
    targets = np.stack([d[1] for d in data])
    old = np.stack([d[2] for d in data])
    jitted = jax.jit(value_loss)
    np.testing.assert_allclose(
        float(jitted(values[0], targets[0], old[0], 0.2)),
        ref_value_loss(values[0], targets[0], old[0], 0.2),
        rtol=RTOL,
        atol=ATOL,
    )
    vm = jax.vmap(value_loss, in_axes=(0, 0, 0, None))(values, targets, old, 0.2)
    expected = [ref_value_loss(values[i], targets[i], old[i], 0.2) for i in range(3)]
    np.testing.assert_allclose(np.asarray(vm), expected, rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------------------
# approx_kl and clip_fraction
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_approx_kl_matches_reference_and_nonnegative(seed):
    new, old, _ = random_policy_batch(seed)
    kl = approx_kl(new, old)
    assert kl.shape == ()
    np.testing.assert_allclose(float(kl), ref_approx_kl(new, old), rtol=RTOL, atol=ATOL)
    assert float(kl) > 0.0
    # Non-negative for every elementwise term too (a single sample, many scales).
    for s in [1e-4, 1e-2, 1.0, 5.0]:
        rng = np.random.default_rng(seed)
        lr = (rng.normal(size=64) * s).astype(np.float32)
        for i in range(0, 64, 16):
            assert float(approx_kl(lr[i : i + 1], np.zeros(1, np.float32))) >= 0.0
        assert float(approx_kl(lr, np.zeros(64, np.float32))) >= 0.0


def test_approx_kl_zero_for_identical_policies():
    _, old, _ = random_policy_batch(5)
    assert float(approx_kl(old, old)) == 0.0


def test_approx_kl_small_log_ratio_is_half_squared():
    # (e^x − 1) − x ≈ x²/2 for small x; expm1 keeps this accurate in float32.
    x = np.array([1e-3, -2e-3, 5e-4], np.float32)
    kl = approx_kl(x, np.zeros(3, np.float32))
    np.testing.assert_allclose(float(kl), np.mean(x.astype(np.float64) ** 2 / 2), rtol=1e-2)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("eps", [0.1, 0.2])
def test_clip_fraction_matches_reference(seed, eps):
    new, old, _ = random_policy_batch(seed, n=300)
    ratio = np.exp(new.astype(np.float64) - old)
    # Avoid float32-vs-float64 disagreement exactly at the boundary.
    keep = (np.abs(ratio - (1 + eps)) > 1e-4) & (np.abs(ratio - (1 - eps)) > 1e-4)
    new, old = new[keep], old[keep]
    frac = float(clip_fraction(new, old, eps))
    expected = ref_clip_fraction(new, old, eps)
    assert 0.0 < expected < 1.0
    np.testing.assert_allclose(frac, expected, rtol=RTOL, atol=ATOL)


def test_clip_fraction_hand_computed():
    ratio = np.array([1.0, 1.1, 1.3, 0.7, 0.85, 3.0, 0.01, 1.19], np.float32)
    frac = clip_fraction(np.log(ratio), np.zeros(8, np.float32), 0.2)
    np.testing.assert_allclose(float(frac), 4 / 8, rtol=RTOL)
    assert float(clip_fraction(np.zeros(8, np.float32), np.zeros(8, np.float32), 0.2)) == 0.0


def test_kl_and_clip_fraction_jit_and_vmap():
    batches = [random_policy_batch(s, n=64) for s in range(3)]
    new = np.stack([b[0] for b in batches])
    old = np.stack([b[1] for b in batches])
    kl = jax.jit(jax.vmap(approx_kl))(new, old)
    np.testing.assert_allclose(
        np.asarray(kl), [ref_approx_kl(new[i], old[i]) for i in range(3)], rtol=RTOL, atol=ATOL
    )
    cf = jax.jit(jax.vmap(clip_fraction, in_axes=(0, 0, None)))(new, old, 0.2)
    np.testing.assert_allclose(
        np.asarray(cf),
        [ref_clip_fraction(new[i], old[i], 0.2) for i in range(3)],
        rtol=RTOL,
        atol=ATOL,
    )


# ----------------------------------------------------------------------------
# explained_variance
# ----------------------------------------------------------------------------


def test_explained_variance_perfect_prediction_is_one():
    targets = np.random.default_rng(0).normal(size=100).astype(np.float32)
    np.testing.assert_allclose(float(explained_variance(targets, targets)), 1.0, rtol=0, atol=1e-6)


def test_explained_variance_mean_prediction_is_zero():
    targets = np.random.default_rng(1).normal(2.0, 3.0, size=100).astype(np.float32)
    preds = np.full_like(targets, targets.mean())
    np.testing.assert_allclose(float(explained_variance(preds, targets)), 0.0, rtol=0, atol=1e-5)
    # Any constant prediction explains nothing either (variance is shift-invariant).
    preds = np.full_like(targets, -7.0)
    np.testing.assert_allclose(float(explained_variance(preds, targets)), 0.0, rtol=0, atol=1e-5)


def test_explained_variance_nan_on_constant_targets():
    targets = np.full(50, 3.0, np.float32)
    preds = np.random.default_rng(2).normal(size=50).astype(np.float32)
    assert np.isnan(float(explained_variance(preds, targets)))
    assert np.isnan(float(jax.jit(explained_variance)(preds, targets)))


@pytest.mark.parametrize("seed", [0, 1])
def test_explained_variance_matches_reference(seed):
    rng = np.random.default_rng(seed)
    targets = rng.normal(size=128).astype(np.float32)
    preds = (0.7 * targets + rng.normal(0.0, 0.5, size=128)).astype(np.float32)
    t64, p64 = targets.astype(np.float64), preds.astype(np.float64)
    expected = 1.0 - np.var(t64 - p64) / np.var(t64)
    ev = explained_variance(preds, targets)
    np.testing.assert_allclose(float(ev), expected, rtol=RTOL, atol=ATOL)
    assert float(ev) < 1.0
    # Bad predictions give a negative value.
    assert float(explained_variance(-targets, targets)) < 0.0


def test_explained_variance_jit_and_vmap():
    rng = np.random.default_rng(3)
    targets = rng.normal(size=(3, 40)).astype(np.float32)
    targets[2] = 1.5  # constant row -> NaN
    preds = (targets + rng.normal(0.0, 0.3, size=(3, 40))).astype(np.float32)
    ev = np.asarray(jax.jit(jax.vmap(explained_variance))(preds, targets))
    for i in range(2):
        t64, p64 = targets[i].astype(np.float64), preds[i].astype(np.float64)
        np.testing.assert_allclose(ev[i], 1.0 - np.var(t64 - p64) / np.var(t64), rtol=RTOL, atol=ATOL)
    assert np.isnan(ev[2])


# ---------------------------------------------------------------------------
# ppo_loss: the parts put together, every coefficient non-zero
# ---------------------------------------------------------------------------


def test_ppo_loss_total_matches_numpy_with_every_coefficient_on():
    """policy + vf_coef·V − ent_coef·H on a fixed CartPole batch, against the numpy references
    of each part from the network's own logits and values (advantages normalized, values clipped)."""
    import ppo_jax
    from ppo_jax.update import Batch, UpdateOptions, ppo_loss

    config = ppo_jax.load_config(None, vf_coef=0.7, ent_coef=0.05, clip_eps=0.15, vf_clip=0.3)
    assert config.normalize_advantages
    networks = ppo_jax.build(config).networks
    params = networks.init(jax.random.PRNGKey(3))
    rng = np.random.default_rng(4)
    n = 64
    obs = rng.normal(size=(n, 4)).astype(np.float32)
    action = rng.integers(0, 2, size=n).astype(np.int32)
    batch = Batch(
        obs=jnp.asarray(obs),
        action=jnp.asarray(action),
        log_prob=jnp.asarray(np.log(rng.uniform(0.2, 0.8, size=n)), jnp.float32),
        value=jnp.asarray(rng.normal(size=n), jnp.float32),
        advantage=jnp.asarray(rng.normal(1.0, 2.0, size=n), jnp.float32),
        target=jnp.asarray(rng.normal(size=n), jnp.float32),
    )
    hp = config.hyperparams()
    total, aux = jax.jit(ppo_loss, static_argnums=(3, 4))(
        params, batch, hp, networks, UpdateOptions.from_config(config)
    )

    dist, value = networks.apply(params, batch.obs)
    logits = np.asarray(dist.logits, np.float64)
    log_p = logits - logits.max(-1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
    log_prob = log_p[np.arange(n), action]
    entropy = -(np.exp(log_p) * log_p).sum(-1).mean()
    adv = np.asarray(batch.advantage, np.float64)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy = ref_surrogate(log_prob, np.asarray(batch.log_prob), adv, 0.15)
    v_loss = ref_value_loss(np.asarray(value), np.asarray(batch.target), np.asarray(batch.value), 0.3)
    np.testing.assert_allclose(aux["policy_loss"], policy, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(aux["value_loss"], v_loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(aux["entropy"], entropy, rtol=1e-4, atol=1e-6)
    assert entropy > 0.5 and v_loss > 0.1  # both terms weigh in the total
    np.testing.assert_allclose(total, policy + 0.7 * v_loss - 0.05 * entropy, rtol=1e-4, atol=1e-6)
