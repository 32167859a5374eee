"""Tokens, corpus, prompts and the labeler."""

import numpy as np
import pytest

from ppo_jax.rlhf import labeler, text


def test_tokens_round_trip_and_special_ids():
    assert text.PAD != text.EOS and 2 + len(text.CHARS) == text.VOCAB_SIZE
    s = "def f(x): return x * 2, 'ok'"
    assert text.decode(text.encode(s)) == text.clean(s) == s
    assert text.clean("Tab\tand\n\nnew  Line é") == "tab and new line "
    assert text.decode([5, 6, text.EOS, 7]) == text.decode([5, 6])
    assert text.decode([5, text.PAD, 6]) == text.decode([5, 6])


def test_the_held_out_topics_are_apart_from_the_training_ones():
    train, held = text.corpus()
    assert len(held) > 20_000 and len(train) > 8 * len(held)
    spans = [held[i : i + 60] for i in range(0, len(held) - 60, 997)]
    assert sum(s in train for s in spans) < 0.2 * len(
        spans
    )  # boilerplate repeats across topics; text does not


def test_supervised_examples_end_at_eos_then_pad():
    seqs = text.sft_examples("train", 256, 8, 12, 3, seed=0)
    assert seqs.shape == (256, 20)
    assert (seqs[:, :8] != text.PAD).all()
    ended = 0
    for r in seqs[:, 8:]:
        eos = np.flatnonzero(r == text.EOS)
        if len(eos):
            ended += 1
            assert (r[eos[0] + 1 :] == text.PAD).all() and (r[: eos[0]] != text.PAD).all()
            assert 1 <= text.decode(r).count(" ") + 1 <= 3
        else:
            assert (r != text.PAD).all()
    assert 0 < ended < 256


def test_prompts_end_just_before_a_word():
    prompts = text.prompts("held_out", 64, 10, 5, seed=1)
    assert prompts.shape == (64, 10)
    assert all(text.decode(p).endswith(" ") for p in prompts)


def test_unigram_perplexity_of_a_uniform_sample_is_the_vocabulary():
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, text.VOCAB_SIZE, 200_000)
    ppl = text.unigram_perplexity(tokens, tokens[:10_000])
    assert abs(ppl - (text.VOCAB_SIZE - 1)) < 0.5


def test_gold_score_counts_e_in_real_words_only():
    assert labeler.gold_score("eeee zzqx") == 0.0
    assert labeler.gold_score("between the") == 3 + 0.7 + 1 + 0.3
    assert labeler.gold_score("(the),") == labeler.gold_score("the")


def test_labels_follow_bradley_terry_and_the_ceiling_measures_them():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 40_000).astype(float)
    b = rng.integers(0, 4, 40_000).astype(float)
    y = labeler.label(a, b, 0.5, rng)
    for gap in (0, 1, 2):
        pick = a - b == gap
        np.testing.assert_allclose(y[pick].mean(), 1 / (1 + np.exp(-gap / 0.5)), atol=0.015)
    p = 1 / (1 + np.exp(-(a - b) / 0.5))
    expected = np.where(a == b, 0.5, np.maximum(p, 1 - p)).mean()
    assert abs(labeler.noise_ceiling(a, b, y) - expected) < 0.01
    assert abs(labeler.expected_ceiling(a, b, 0.5) - expected) < 1e-6


def test_pair_accuracy_counts_ties_half_against_a_loop():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 3, 500), rng.integers(0, 3, 500)
    y = rng.integers(0, 2, 500)
    want = np.mean([0.5 if x == z else float((x > z) == bool(t)) for x, z, t in zip(a, b, y)])
    assert labeler.pair_accuracy(a, b, y) == pytest.approx(want)
    assert labeler.noise_ceiling(a, b, y) == labeler.pair_accuracy(a, b, y)
