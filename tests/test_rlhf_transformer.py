"""The causal transformer: its mask, its two ways of generating, EOS and PAD, the zero value head."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppo_jax.networks import transformer as tf
from ppo_jax.rlhf import text

CONFIG = tf.TransformerConfig(vocab_size=text.VOCAB_SIZE, max_len=12, d_model=32, num_layers=2, num_heads=4)
P, R = 5, 7


@pytest.fixture(scope="module")
def params():
    p = tf.init(CONFIG, jax.random.key(0))
    # A non-zero head, so that the head's causality is tested too.
    p["params"]["head"]["kernel"] = jax.random.normal(jax.random.key(1), p["params"]["head"]["kernel"].shape)
    return p


def test_a_later_token_never_changes_an_earlier_output(params):
    rng = np.random.default_rng(0)
    seqs = rng.integers(2, text.VOCAB_SIZE, (3, CONFIG.max_len)).astype(np.int32)
    logits, head = tf.apply(CONFIG, params, seqs)
    for t in (0, 4, CONFIG.max_len - 2):
        changed = seqs.copy()
        changed[:, t + 1 :] = rng.integers(2, text.VOCAB_SIZE, changed[:, t + 1 :].shape)
        logits2, head2 = tf.apply(CONFIG, params, changed)
        np.testing.assert_array_equal(np.asarray(logits[:, : t + 1]), np.asarray(logits2[:, : t + 1]))
        np.testing.assert_array_equal(np.asarray(head[:, : t + 1]), np.asarray(head2[:, : t + 1]))
        assert not np.allclose(logits[:, t + 1 :], logits2[:, t + 1 :])


def test_cached_steps_give_the_full_forward_pass(params):
    seqs = jax.random.randint(jax.random.key(2), (4, CONFIG.max_len), 2, text.VOCAB_SIZE)
    logits, head = tf.apply(CONFIG, params, seqs)
    first, first_head, cache = tf.prefill(CONFIG, params, seqs[:, :P])
    np.testing.assert_allclose(first, logits[:, P - 1], atol=1e-5)
    np.testing.assert_allclose(first_head, head[:, P - 1], atol=1e-5)
    step = jax.jit(lambda tok, pos, c: tf.step(CONFIG, params, tok, pos, c))
    for pos in range(P, CONFIG.max_len):
        out, out_head, cache = step(seqs[:, pos], pos, cache)
        np.testing.assert_allclose(out, logits[:, pos], atol=1e-5)
        np.testing.assert_allclose(out_head, head[:, pos], atol=1e-5)


@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_generation_with_and_without_cache_agree(params, temperature):
    prompt = jax.random.randint(jax.random.key(3), (16, P), 2, text.VOCAB_SIZE)

    def gen(cache):
        fn = lambda k: tf.generate(CONFIG, params, prompt, k, R, temperature, text.EOS, text.PAD, cache=cache)
        return np.asarray(jax.jit(fn)(jax.random.key(4)))

    cached, recomputed = gen(True), gen(False)
    np.testing.assert_array_equal(cached, recomputed)
    np.testing.assert_array_equal(cached[:, :P], np.asarray(prompt))


def _eos_likely(params):
    """Parameters under which EOS has a large logit, so responses end early and PAD follows."""
    p = jax.tree.map(lambda x: x, params)
    emb = p["params"]["embed"]["embedding"]
    p["params"]["embed"]["embedding"] = emb.at[text.EOS].set(emb[text.EOS] * 0 + 0.3)
    return p


def test_after_eos_only_pad_and_before_it_none(params):
    p = _eos_likely(params)
    prompt = jax.random.randint(jax.random.key(5), (64, P), 2, text.VOCAB_SIZE)
    seqs = np.asarray(tf.generate(CONFIG, p, prompt, jax.random.key(6), R, 1.0, text.EOS, text.PAD))
    responses = seqs[:, P:]
    ended = 0
    for r in responses:
        eos = np.flatnonzero(r == text.EOS)
        if len(eos):
            ended += 1
            assert (r[eos[0] + 1 :] == text.PAD).all()
            assert (r[: eos[0]] != text.PAD).all()
        else:
            assert (r != text.PAD).all()
    assert 0 < ended < len(responses)  # both cases were exercised


def test_fresh_value_head_predicts_zero():
    p = tf.init(CONFIG, jax.random.key(7))
    _, head = tf.apply(CONFIG, p, jnp.ones((2, CONFIG.max_len), jnp.int32) * 5)
    np.testing.assert_array_equal(np.asarray(head), 0.0)
