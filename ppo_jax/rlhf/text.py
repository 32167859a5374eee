"""Characters as tokens, Python's own documentation as the corpus, prompts as spans of it.

The corpus is ``pydoc_data.topics`` (about 0.46 MB of English that ships with
CPython, so nothing is downloaded). Text is lower-cased, every run of
whitespace becomes one space, and characters outside ``CHARS`` are dropped.
Topics are split by name: every ``HELD_OUT_EVERY``-th topic, in sorted order,
is held out from every training stage.

Token ids: ``PAD`` = 0 (after a response ends; never attended to by what came
before), ``EOS`` = 1 (a response's last token, written by the policy), then
``CHARS`` in order. Host-side only (numpy and Python); nothing here is traced.
"""

from __future__ import annotations

import functools
import re

import numpy as np

PAD = 0
EOS = 1
CHARS = " abcdefghijklmnopqrstuvwxyz0123456789.,:;()'\"-_=*"
VOCAB_SIZE = 2 + len(CHARS)
HELD_OUT_EVERY = 8

_ID = {c: i + 2 for i, c in enumerate(CHARS)}
_DROP = re.compile("[^" + re.escape(CHARS) + "]")


def clean(text: str) -> str:
    """Lower case, one space for any whitespace, only characters of ``CHARS``."""
    return _DROP.sub("", re.sub(r"\s+", " ", text.lower()))


def encode(text: str) -> np.ndarray:
    """Token ids ``[len(clean(text))]`` int32."""
    return np.fromiter((_ID[c] for c in clean(text)), np.int32)


def decode(tokens) -> str:
    """Text of ``tokens`` up to the first EOS; PAD is skipped."""
    out = []
    for t in np.asarray(tokens).tolist():
        if t == EOS:
            break
        if t != PAD:
            out.append(CHARS[t - 2])
    return "".join(out)


@functools.cache
def corpus() -> tuple[str, str]:
    """``(train, held_out)`` cleaned text, topics joined by a space."""
    from pydoc_data.topics import topics

    names = sorted(topics)
    train = [clean(topics[n]) for i, n in enumerate(names) if i % HELD_OUT_EVERY]
    held = [clean(topics[n]) for i, n in enumerate(names) if not i % HELD_OUT_EVERY]
    return " ".join(train), " ".join(held)


def split_tokens(split: str) -> np.ndarray:
    """The ``"train"`` or ``"held_out"`` corpus as token ids."""
    train, held = corpus()
    return encode({"train": train, "held_out": held}[split])


def word_starts(tokens: np.ndarray, prompt_len: int, response_len: int) -> np.ndarray:
    """Positions that start a word, with a full prompt before and a response's room after."""
    space = _ID[" "]
    idx = np.flatnonzero(tokens[:-1] == space) + 1
    return idx[(idx >= prompt_len) & (idx + response_len <= len(tokens)) & (tokens[idx] != space)]


def prompts(split: str, n: int, prompt_len: int, response_len: int, seed: int) -> np.ndarray:
    """``[n, prompt_len]`` prompts: the text just before a word start, drawn uniformly."""
    tokens = split_tokens(split)
    starts = np.random.default_rng(seed).choice(word_starts(tokens, prompt_len, response_len), n)
    return np.stack([tokens[s - prompt_len : s] for s in starts])


def sft_examples(
    split: str, n: int, prompt_len: int, response_len: int, max_words: int, seed: int
) -> np.ndarray:
    """Supervised (prompt, response) sequences ``[n, prompt_len + response_len]``.

    The response is the next 1 … ``max_words`` words of the text (drawn
    uniformly), then EOS, cut at ``response_len`` tokens; PAD after it. So the
    reference learns where a response may end, which the policy later controls.
    """
    rng = np.random.default_rng(seed)
    tokens = split_tokens(split)
    starts = rng.choice(word_starts(tokens, prompt_len, response_len), n)
    words = rng.integers(1, max_words + 1, n)
    seqs = np.full((n, prompt_len + response_len), PAD, np.int32)
    space = _ID[" "]
    for i, (s, k) in enumerate(zip(starts, words)):
        window = tokens[s : s + response_len]
        ends = np.flatnonzero(window == space)
        response = window if len(ends) < k else np.append(window[: ends[k - 1]], EOS)
        seqs[i, :prompt_len] = tokens[s - prompt_len : s]
        seqs[i, prompt_len : prompt_len + min(len(response), response_len)] = response[:response_len]
    return seqs


def unigram_perplexity(train_targets: np.ndarray, test_targets: np.ndarray) -> float:
    """Perplexity on ``test_targets`` of the add-one unigram model of ``train_targets`` (PAD never counted)."""
    counts = np.bincount(train_targets[train_targets != PAD], minlength=VOCAB_SIZE) + 1.0
    counts[PAD] = 0.0
    with np.errstate(divide="ignore"):  # log 0 for PAD, which is never a target
        log_p = np.log(counts / counts.sum())
    return float(np.exp(-log_p[test_targets[test_targets != PAD]].mean()))
