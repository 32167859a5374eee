"""The labeler: a stand-in for the people who compare two responses.

Its taste, the *gold* score of a response, is a fixed property of the text
that the policy never sees:

    gold(response) = Σ over its words w (split at spaces) that are real words
                     — at least 2 letters and present in the training corpus —
                     of  #"e" in w  +  0.1 · len(w).

So it likes real words with many e's ("between", "reference", "these"), a
little more when there are more real words, and gives nothing for made-up
ones ("eeee"); the 0.1 makes ties between two responses rarer. Comparing two responses a and b to the same
prompt, it is a Bradley–Terry labeler with temperature τ: it prefers a with
probability σ((gold_a − gold_b) / τ). So it is nearly sure about responses far
apart and close to a coin flip about near ties, as people are. The *noise
ceiling* is the accuracy that the gold score itself reaches on those labels
(exact ties counted half right): no reward model can expect more. Host-side (Python and numpy).
"""

from __future__ import annotations

import functools

import numpy as np

from ppo_jax.rlhf import text


@functools.cache
def dictionary() -> frozenset:
    """The real words: every space-separated word of the training text, punctuation stripped."""
    train, _ = text.corpus()
    return frozenset(w for w in (_strip(x) for x in train.split(" ")) if len(w) >= 2)


def _strip(word: str) -> str:
    return word.strip(".,:;()'\"-_=*")


def gold_score(response: str) -> float:
    """The labeler's hidden score of one decoded response."""
    words = dictionary()
    real = [w for w in (_strip(x) for x in response.split(" ")) if w in words]
    return float(sum(w.count("e") + 0.1 * len(w) for w in real))


def gold_scores(responses) -> np.ndarray:
    """``[n]`` gold scores of ``[n, response_len]`` response tokens (decoded up to EOS)."""
    return np.array([gold_score(text.decode(r)) for r in np.asarray(responses)], np.float32)


def label(gold_a: np.ndarray, gold_b: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """``[n]`` 1.0 where the labeler prefers a over b, drawn with probability σ((gold_a − gold_b) / τ)."""
    p_a = 1.0 / (1.0 + np.exp(-(np.asarray(gold_a, np.float64) - gold_b) / temperature))
    return (rng.random(p_a.shape) < p_a).astype(np.float32)


def pair_accuracy(score_a: np.ndarray, score_b: np.ndarray, labels: np.ndarray) -> float:
    """How often ``score_a > score_b`` agrees with ``labels``; a tie counts half (a fair coin's expectation).

    The one rule for the reward model's accuracy and for the noise ceiling, on the same pairs.
    """
    score_a, score_b = np.asarray(score_a), np.asarray(score_b)
    right = np.where(score_a == score_b, 0.5, (score_a > score_b) == (np.asarray(labels) > 0.5))
    return float(np.mean(right))


def noise_ceiling(gold_a: np.ndarray, gold_b: np.ndarray, labels: np.ndarray) -> float:
    """The gold score's own ``pair_accuracy`` on ``labels``: what no reward model can expect to beat."""
    return pair_accuracy(gold_a, gold_b, labels)


def expected_ceiling(gold_a: np.ndarray, gold_b: np.ndarray, temperature: float) -> float:
    """The noise ceiling's expectation over the labeler's draws: mean of σ(|gold_a − gold_b| / τ)."""
    gap = np.abs(np.asarray(gold_a, np.float64) - gold_b)
    return float(np.mean(np.where(gap == 0, 0.5, 1.0 / (1.0 + np.exp(-gap / temperature)))))
