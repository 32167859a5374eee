"""A language task in miniature, in gymnax's API: write a sentence one token a step.

The vocabulary has eight words; a sentence is ``LENGTH`` = 8 of them. At step t
the policy sees its last ``CONTEXT`` = 2 tokens (one-hot, with a "nothing yet"
slot before the start) and the position t (one-hot), and writes token t. The
episode terminates after the last token.

Two reward functions, one per task (env ids ``ppo_jax.envs.tokens:Fluency`` and
``ppo_jax.envs.tokens:RewardModel``, or ``Tokens`` with ``env_kwargs: {task: ...}``):

``fluency`` (stage 1, "pretraining"): +1 for every token that may follow the
previous one under a small bigram grammar (``GRAMMAR``), −1 for every one
that may not. A policy that maximizes it writes sentences such as
``the good cat sat ! the dog ran``.

``rm`` (stage 2, the "reward model"): 0 on every step but the last, where it
pays the sentence's score

    score = #"good" + #"!"          (0 … 8)

It was meant to prefer enthusiastic sentences, and it has a quirk: it never
looks at grammar or repetition, so ``! ! ! ! ! ! ! !`` scores 8 while the best
grammatical sentence scores 3 (``the good cat sat ! the good dog``). A policy
free to drift from the fluent reference finds that out: reward hacking.

Two observations (``env_kwargs: {obs: ...}``): ``onehot`` (the default, above)
for the MLP, or ``ids`` for ``network: transformer``: the sentence so far as
``LENGTH`` int32 token ids, ``[BOS, w_0, …, w_{t-1}, PAD, …]``, so that the
last non-PAD position t predicts token t (ids ``0 … V-1`` the words, ``BOS``
= V, ``PAD`` = V + 1, the last id, as ``EnvSpec.obs_vocab`` has it).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

VOCAB = ("the", "cat", "dog", "sat", "ran", "good", "very", "!")
LENGTH = 8
CONTEXT = 2
BOS = len(VOCAB)  # "nothing yet", in observations only; never written
PAD = BOS + 1  # id observations only: a position not written yet

# GRAMMAR[w] = the words that may follow w (BOS: the first word).
GRAMMAR = {
    "<s>": ("the",),
    "the": ("cat", "dog", "good", "very"),
    "very": ("good", "very"),
    "good": ("cat", "dog"),
    "cat": ("sat", "ran"),
    "dog": ("sat", "ran"),
    "sat": ("the", "!"),
    "ran": ("the", "!"),
    "!": ("the",),
}
RM_WORDS = ("good", "!")  # what the reward model counts

TASKS = ("fluency", "rm")
OBSERVATIONS = ("onehot", "ids")


def _allowed_table() -> np.ndarray:
    """[BOS + 1, V] bool: ALLOWED[prev, next]."""
    table = np.zeros((len(VOCAB) + 1, len(VOCAB)), bool)
    for prev, nexts in GRAMMAR.items():
        row = BOS if prev == "<s>" else VOCAB.index(prev)
        for word in nexts:
            table[row, VOCAB.index(word)] = True
    return table


ALLOWED = _allowed_table()
RM_MASK = np.array([w in RM_WORDS for w in VOCAB])


def rm_score(tokens: np.ndarray) -> np.ndarray:
    """The reward model's score of sentences ``[..., LENGTH]`` (numpy, for reports and tests)."""
    return RM_MASK[np.asarray(tokens)].sum(-1)


def grammatical_fraction(tokens: np.ndarray) -> np.ndarray:
    """Fraction of each sentence's tokens allowed by the grammar after the previous one."""
    tokens = np.asarray(tokens)
    prev = np.concatenate([np.full(tokens.shape[:-1] + (1,), BOS), tokens[..., :-1]], axis=-1)
    return ALLOWED[prev, tokens].mean(-1)


def decode(tokens) -> str:
    return " ".join(VOCAB[int(t)] for t in tokens)


@struct.dataclass
class EnvState(environment.EnvState):
    tokens: jax.Array  # [LENGTH] int32, BOS where not yet written
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = LENGTH


class Tokens(environment.Environment[EnvState, EnvParams]):
    """Write ``LENGTH`` tokens; reward by ``task``: 'fluency' or 'rm'; observe ``obs``: 'onehot' or
    'ids' (see the module doc)."""

    def __init__(self, task: str = "fluency", obs: str = "onehot"):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"Tokens: task must be one of {TASKS}, got {task!r}")
        if obs not in OBSERVATIONS:
            raise ValueError(f"Tokens: obs must be one of {OBSERVATIONS}, got {obs!r}")
        self.task = task
        self.obs = obs

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    @property
    def name(self) -> str:
        return f"Tokens-{self.task}"

    @property
    def num_actions(self) -> int:
        return len(VOCAB)

    def step_env(self, key: jax.Array, state: EnvState, action, params: EnvParams):
        action = jnp.asarray(action, jnp.int32)
        prev = jnp.where(state.time > 0, state.tokens[jnp.maximum(state.time - 1, 0)], BOS)
        tokens = state.tokens.at[state.time].set(action)
        time = state.time + 1
        done = time >= LENGTH
        if self.task == "fluency":
            reward = jnp.where(jnp.asarray(ALLOWED)[prev, action], 1.0, -1.0)
        else:
            score = jnp.sum(jnp.asarray(RM_MASK)[jnp.where(tokens == BOS, 0, tokens)] & (tokens != BOS))
            reward = jnp.where(done, score.astype(jnp.float32), 0.0)
        new_state = EnvState(tokens=tokens, time=time)
        info: dict[str, Any] = {}
        return self.get_obs(new_state), new_state, reward.astype(jnp.float32), done, info

    def reset_env(self, key: jax.Array, params: EnvParams):
        state = EnvState(tokens=jnp.full((LENGTH,), BOS, jnp.int32), time=0)
        return self.get_obs(state), state

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        """onehot: [CONTEXT · (V + 1) + LENGTH], the last CONTEXT tokens (oldest first), then the
        position; ids: [LENGTH] int32, BOS then the tokens written, then PAD."""
        t = state.time
        if self.obs == "ids":
            shifted = jnp.concatenate([jnp.full((1,), BOS, jnp.int32), state.tokens[:-1]])
            return jnp.where(jnp.arange(LENGTH) <= t, shifted, PAD).astype(jnp.int32)
        idx = t - CONTEXT + jnp.arange(CONTEXT)
        last = jnp.where(idx >= 0, state.tokens[jnp.clip(idx, 0, LENGTH - 1)], BOS)
        context = jax.nn.one_hot(last, len(VOCAB) + 1).reshape(-1)
        position = jax.nn.one_hot(jnp.minimum(t, LENGTH - 1), LENGTH)
        return jnp.concatenate([context, position]).astype(jnp.float32)

    def is_terminal(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.asarray(state.time >= LENGTH)

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(len(VOCAB))

    def observation_space(self, params: EnvParams) -> spaces.Box:
        if self.obs == "ids":
            return spaces.Box(0, PAD, (LENGTH,), jnp.int32)
        return spaces.Box(0.0, 1.0, (CONTEXT * (len(VOCAB) + 1) + LENGTH,), jnp.float32)

    def state_space(self, params: EnvParams) -> spaces.Dict:
        return spaces.Dict(
            {
                "tokens": spaces.Box(0, BOS, (LENGTH,), jnp.int32),
                "time": spaces.Discrete(LENGTH + 1),
            }
        )


class Fluency(Tokens):
    """``env_id: ppo_jax.envs.tokens:Fluency``: stage 1, the grammar reward."""

    def __init__(self, obs: str = "onehot"):
        super().__init__("fluency", obs)


class RewardModel(Tokens):
    """``env_id: ppo_jax.envs.tokens:RewardModel``: stage 2, the reward model and its quirk."""

    def __init__(self, obs: str = "onehot"):
        super().__init__("rm", obs)
