"""The RLHF stage's math against plain numpy: per-token KL rewards and their masks, masked
whitening, GAE over response tokens, Bradley–Terry loss, the reward normalization."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppo_jax.rlhf import ppo, reward, text

B, R = 5, 7


def random_case(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, R + 1, B)
    alive = (np.arange(R)[None] < lengths[:, None]).astype(np.float32)
    scores = np.zeros((B, R), np.float32)
    scores[np.arange(B), lengths - 1] = rng.normal(size=B)
    logp = rng.normal(size=(B, R)).astype(np.float32) - 2
    ref = rng.normal(size=(B, R)).astype(np.float32) - 2
    values = rng.normal(size=(B, R)).astype(np.float32)
    return lengths, alive, scores, logp, ref, values


def np_rewards(lengths, scores, logp, ref, beta):
    rewards, kl = np.zeros((B, R)), np.zeros((B, R))
    for b, n in enumerate(lengths):
        for t in range(n):
            kl[b, t] = logp[b, t] - ref[b, t]
            rewards[b, t] = -beta * kl[b, t] + (scores[b, t] if t == n - 1 else 0.0)
    return rewards, kl


def np_gae(rewards, values, lengths, gamma, lam):
    adv = np.zeros((B, R))
    for b, n in enumerate(lengths):
        running = 0.0
        for t in reversed(range(n)):
            next_v = values[b, t + 1] if t + 1 < n else 0.0
            delta = rewards[b, t] + gamma * next_v - values[b, t]
            running = delta + gamma * lam * running
            adv[b, t] = running
    return adv, adv + np.where(np.arange(R)[None] < lengths[:, None], values, 0.0)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("beta", [0.0, 0.1])
def test_per_token_rewards_and_kl_against_numpy(seed, beta):
    lengths, alive, scores, logp, ref, _ = random_case(seed)
    want_r, want_kl = np_rewards(lengths, scores, logp, ref, beta)
    for fn in (ppo.per_token_rewards, jax.jit(ppo.per_token_rewards)):
        got_r, got_kl = fn(scores, logp, ref, alive, beta)
        np.testing.assert_allclose(got_r, want_r, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_kl, want_kl, rtol=1e-5, atol=1e-6)


def test_per_token_rewards_under_vmap_over_beta():
    lengths, alive, scores, logp, ref, _ = random_case(9)
    betas = jnp.array([0.0, 0.05, 1.0])
    got, _ = jax.vmap(ppo.per_token_rewards, (None, None, None, None, 0))(scores, logp, ref, alive, betas)
    for i, beta in enumerate(np.asarray(betas)):
        np.testing.assert_allclose(
            got[i], np_rewards(lengths, scores, logp, ref, beta)[0], rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize("seed", range(3))
def test_gae_over_response_tokens_against_numpy(seed):
    lengths, alive, scores, logp, ref, values = random_case(seed)
    rewards, _ = np_rewards(lengths, scores, logp, ref, 0.1)
    want_adv, want_ret = np_gae(rewards, values, lengths, 1.0, 0.95)
    got_adv, got_ret = jax.jit(ppo.advantages, static_argnums=(3, 4))(
        jnp.asarray(rewards, jnp.float32), values, alive, 1.0, 0.95
    )
    np.testing.assert_allclose(got_adv, want_adv, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_ret, want_ret * alive, rtol=1e-4, atol=1e-5)


def test_padding_values_never_reach_the_advantages():
    _lengths, alive, scores, logp, ref, values = random_case(4)
    rewards, _ = ppo.per_token_rewards(scores, logp, ref, alive, 0.1)
    garbage = np.where(alive > 0, values, 1e6).astype(np.float32)
    a, _ = ppo.advantages(rewards, values, alive, 1.0, 0.95)
    b, _ = ppo.advantages(rewards, garbage, alive, 1.0, 0.95)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("seed", range(3))
def test_masked_whiten_against_numpy(seed):
    _, alive, _, logp, _, _ = random_case(seed)
    x = logp * 3 + 1
    on = alive > 0
    want = np.where(on, (x - x[on].mean()) / np.sqrt(x[on].var() + 1e-8), 0.0)
    got = jax.jit(ppo.masked_whiten)(x, alive)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert abs(float(np.asarray(got)[on].mean())) < 1e-5 and abs(float(np.asarray(got)[on].std()) - 1) < 1e-4


@pytest.mark.parametrize("seed", range(3))
def test_bradley_terry_loss_against_numpy(seed):
    rng = np.random.default_rng(seed)
    a, b = (rng.normal(size=32) * 3).astype(np.float32), (rng.normal(size=32) * 3).astype(np.float32)
    y = (rng.random(32) < 0.5).astype(np.float32)
    sigmoid = 1 / (1 + np.exp(-(a.astype(np.float64) - b)))
    want = -np.mean(y * np.log(sigmoid) + (1 - y) * np.log(1 - sigmoid))
    for fn in (reward.bradley_terry_loss, jax.jit(reward.bradley_terry_loss)):
        np.testing.assert_allclose(fn(a, b, y), want, rtol=1e-5)
    # Swapping the pair and its label is the same data.
    np.testing.assert_allclose(reward.bradley_terry_loss(b, a, 1 - y), want, rtol=1e-5)


def test_bradley_terry_loss_is_finite_for_huge_margins():
    big = jnp.array([1e4, -1e4], jnp.float32)
    loss = reward.bradley_terry_loss(big, -big, jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(loss, 2e4, rtol=1e-6)


def test_normalization_gives_the_reference_mean_0_std_1():
    raw = np.random.default_rng(0).normal(3.0, 2.5, 1000).astype(np.float32)
    z = np.asarray(reward.normalize(raw, raw.mean(), raw.std()))
    np.testing.assert_allclose([z.mean(), z.std()], [0.0, 1.0], atol=1e-5)


def test_the_score_is_read_at_the_last_response_token():
    p = 3
    seqs = np.array(
        [
            [5, 5, 5, 7, 8, text.EOS, text.PAD, text.PAD],  # ended at its EOS
            [5, 5, 5, 7, 8, 9, 10, 11],  # cut by the length limit
            [5, 5, 5, text.EOS, text.PAD, text.PAD, text.PAD, text.PAD],  # an empty response: EOS at once
        ],
        np.int32,
    )
    np.testing.assert_array_equal(reward.last_response_index(seqs, p), [5, 7, 3])
