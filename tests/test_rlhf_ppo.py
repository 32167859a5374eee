"""The PPO stage at a tiny size: the environment, the ratio at epoch 0, padding, seeds under vmap."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppo_jax.networks import transformer as tf
from ppo_jax.rlhf import config as rlhf_config
from ppo_jax.rlhf import ppo, reward, text

TINY = rlhf_config.from_dict(
    {
        "data": {"prompt_len": 4, "response_len": 5},
        "model": {"d_model": 16, "num_layers": 1, "num_heads": 2},
        "ppo": {
            "num_updates": 2,
            "batch_size": 8,
            "num_minibatches": 2,
            "update_epochs": 2,
            "kl_target": 1.0,
        },
    },
    "tiny",
)


@pytest.fixture(scope="module")
def setup():
    tc = TINY.transformer
    ref = tf.init(tc, jax.random.key(0))
    rm = reward.with_fresh_head(tf.init(tc, jax.random.key(1)), jax.random.key(2), tc.d_model)
    # EOS likely, so that responses of every length occur.
    emb = ref["params"]["embed"]["embedding"]
    ref["params"]["embed"]["embedding"] = emb.at[text.EOS].set(emb[0] * 0 + 0.2)
    train, env = ppo.make_train(TINY)
    prompts = jnp.asarray(text.prompts("train", 32, 4, 5, 0))
    env_params = env.params(prompts, rm, jnp.float32(0.5), jnp.float32(2.0))
    return ref, rm, train, env, env_params


def test_the_environment_pays_the_normalized_score_once_at_the_end(setup):
    ref, rm, _, env, env_params = setup
    ro = jax.jit(lambda k: ppo.collect(env, env_params, TINY.transformer, ref, k, 32, 1.0))(jax.random.key(3))
    seqs, scores, alive = (np.asarray(x) for x in ro)
    lengths = alive.sum(1).astype(int)
    assert lengths.min() >= 1 and lengths.max() == 5 and lengths.min() < 5
    want = np.asarray(reward.normalize(reward.score(TINY.transformer, rm, seqs, 4), 0.5, 2.0))
    for b, n in enumerate(lengths):
        response = seqs[b, 4:]
        assert (response[n:] == text.PAD).all() and (response[:n] != text.PAD).all()
        assert n == 5 or response[n - 1] == text.EOS
        np.testing.assert_allclose(scores[b, n - 1], want[b], rtol=1e-4, atol=1e-5)
        assert (np.delete(scores[b], n - 1) == 0).all()


def test_a_finished_response_is_absorbing(setup):
    _, _, _, env, env_params = setup
    _, state = env.reset_env(jax.random.key(4), env_params)
    _, state, r1, done, _ = env.step_env(jax.random.key(5), state, text.EOS, env_params)
    _, after, r2, still, _ = env.step_env(jax.random.key(6), state, 7, env_params)
    assert bool(done) and bool(still) and float(r2) == 0.0 and float(r1) != 0.0
    np.testing.assert_array_equal(after.tokens, state.tokens)


def _batch(ref, env, env_params, key):
    ro = ppo.collect(env, env_params, TINY.transformer, ref, key, 64, 1.0)
    order = jnp.argsort(ro.alive.sum(1))
    ro = jax.tree.map(lambda x: x[jnp.concatenate([order[:4], order[-4:]])], ro)  # short and long ones
    logp, values, _ = ppo.token_log_probs(TINY.transformer, ref, ro.seqs, 4, TINY.ppo.temperature)
    adv = ppo.masked_whiten(jax.random.normal(key, logp.shape), ro.alive)
    return ppo.Batch(ro.seqs, logp, values, adv, values + adv, ro.alive)


def test_ratio_is_exactly_one_at_the_collecting_parameters(setup):
    ref, _, _, env, env_params = setup
    batch = _batch(ref, env, env_params, jax.random.key(7))
    _, stats = ppo._loss(TINY.transformer, TINY, ppo.hypers(TINY), ref, batch)
    assert float(stats["ratio_max_dev"]) == 0.0
    assert float(stats["clip_frac"]) == 0.0 and float(stats["approx_kl"]) == 0.0


def test_padding_entries_change_neither_loss_nor_gradient(setup):
    ref, _, _, env, env_params = setup
    batch = _batch(ref, env, env_params, jax.random.key(8))
    off = batch.alive == 0
    assert bool(off.any())
    junk = batch._replace(
        old_log_prob=jnp.where(off, 3.0, batch.old_log_prob),
        old_values=jnp.where(off, -50.0, batch.old_values),
        returns=jnp.where(off, 99.0, batch.returns),
    )
    grad = jax.grad(lambda p, b: ppo._loss(TINY.transformer, TINY, ppo.hypers(TINY), p, b)[0])
    np.testing.assert_allclose(
        ppo._loss(TINY.transformer, TINY, ppo.hypers(TINY), ref, batch)[0],
        ppo._loss(TINY.transformer, TINY, ppo.hypers(TINY), ref, junk)[0],
        rtol=1e-6,
    )
    for a, b in zip(jax.tree.leaves(grad(ref, batch)), jax.tree.leaves(grad(ref, junk))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def trained(setup):
    ref, _, train, _, env_params = setup
    keys = jnp.stack([jax.random.key(10), jax.random.key(11)])
    # Two runs that differ in every traced setting: β, the KL target, the learning rate, ε, c_v.
    first = ppo.hypers(TINY, kl_coef=0.05)
    second = ppo.hypers(TINY, kl_coef=0.0, kl_target=2.0, learning_rate=3e-4, clip_eps=0.1, vf_coef=0.5)
    both = jax.tree.map(lambda a, b: jnp.stack([a, b]), first, second)
    many = jax.jit(jax.vmap(train, in_axes=(0, 0, None, None)))(keys, both, ref, env_params)
    single = jax.jit(train)
    return many, [single(k, hp, ref, env_params) for k, hp in zip(keys, (first, second))]


def test_vmap_over_seeds_and_settings_equals_single_runs(trained):
    (params, metrics), singles = trained
    for i, (params1, metrics1) in enumerate(singles):
        for name in ("score", "kl", "kl_k3", "kl_coef", "length", "pg_loss", "value_loss", "clip_frac"):
            np.testing.assert_allclose(metrics[name][i], metrics1[name], rtol=1e-4, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(metrics["responses"][i], metrics1["responses"])
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params1)):
            np.testing.assert_allclose(a[i], b, rtol=1e-4, atol=1e-6)


def test_epoch_zero_ratio_in_training_is_one_up_to_rounding(trained):
    (_, metrics), _ = trained
    # Bit-exact where the loss's own function meets its own inputs (test above); inside training the
    # differentiated forward pass is compiled apart from the plain one, which can move the last bit.
    assert np.all(np.asarray(metrics["ratio_first_minibatch"]) <= 1e-6)


def test_beta_zero_stays_zero_and_a_positive_beta_stays_positive(trained):
    (_, metrics), _ = trained
    assert np.all(np.asarray(metrics["kl_coef"][1]) == 0.0)
    assert np.all(np.asarray(metrics["kl_coef"][0]) > 0.0)


def test_the_controller_gain_is_bounded_at_any_batch_size():
    config = TINY.with_sets({"ppo.kl_horizon": 1})  # batch 8 ≫ horizon 1: the gain is capped at 1
    for kl in (0.0, 100.0):
        beta = float(ppo.next_beta(config, jnp.float32(0.1), jnp.float32(kl), config.ppo.kl_target))
        # one update moves β by exp(±0.2) at most (core.kl's log-space controller at gain 1)
        assert 0.1 * math.exp(-0.2) * (1 - 1e-6) <= beta <= 0.1 * math.exp(0.2) * (1 + 1e-6)
        assert abs(math.log(beta / 0.1)) == pytest.approx(0.2, rel=1e-5)
