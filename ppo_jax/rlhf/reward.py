"""Stage 2, the reward model: Bradley–Terry on the labeler's preferences, then normalized.

The reward model is the reference transformer with its scalar head read at a
response's last token (its EOS, or the last one when the length limit cut it),
started from the reference's parameters and a fresh head of std 1/√(d+1)
(Huang et al.'s reward-head detail). With s_a, s_b the scores of two responses
to one prompt and y = 1 where the labeler preferred a,

    P(a ≻ b) = σ(s_a − s_b),    L = −mean(y log σ(s_a − s_b) + (1 − y) log σ(s_b − s_a)).

Afterwards a gain and bias make the reference's own responses score mean 0,
std 1 (Ziegler et al.), so β and the KL target mean the same for any reward model.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ppo_jax.networks import transformer
from ppo_jax.rlhf import text
from ppo_jax.rlhf.config import RLHFConfig


def last_response_index(seqs: chex.Array, prompt_len: int) -> chex.Array:
    """``[B]`` index of each sequence's last response token (EOS, or the last before PAD)."""
    written = jnp.sum(seqs[:, prompt_len:] != text.PAD, axis=1)
    return prompt_len - 1 + jnp.maximum(written, 1)


def score(tf_config, params, seqs: chex.Array, prompt_len: int) -> chex.Array:
    """``[B]`` raw reward-model scores of whole sequences ``[B, T]``."""
    _, head = transformer.apply(tf_config, params, seqs)
    return jnp.take_along_axis(head, last_response_index(seqs, prompt_len)[:, None], axis=1)[:, 0]


def bradley_terry_loss(score_a: chex.Array, score_b: chex.Array, prefer_a: chex.Array) -> chex.Array:
    """Negative log-likelihood of the labels under P(a ≻ b) = σ(s_a − s_b), mean over pairs."""
    chex.assert_equal_shape([score_a, score_b, prefer_a])
    margin = score_a - score_b
    return jnp.mean(prefer_a * jax.nn.softplus(-margin) + (1.0 - prefer_a) * jax.nn.softplus(margin))


def normalize(raw: chex.Array, mean: chex.Numeric, std: chex.Numeric) -> chex.Array:
    """(raw − mean) / std: with the reference's mean and std, its responses score mean 0, std 1."""
    return (raw - mean) / std


def with_fresh_head(params, key: chex.PRNGKey, d_model: int):
    """The reference's parameters with the scalar head drawn from N(0, 1/(d+1)), bias 0."""
    head = params["params"]["head"]
    kernel = jax.random.normal(key, head["kernel"].shape) / np.sqrt(d_model + 1)
    inner = {**params["params"], "head": {"kernel": kernel, "bias": jnp.zeros_like(head["bias"])}}
    return {**params, "params": inner}


def sampler(config: RLHFConfig, temperature: float, chunk: int = 512):
    """``sample(params, prompts [N, P], seed) -> [N, T]`` from ``chunk``-sized compiled calls."""
    d = config.data
    gen = jax.jit(
        lambda p, pr, k: transformer.generate(
            config.transformer, p, pr, k, d.response_len, temperature, text.EOS, text.PAD
        )
    )

    def sample(params, prompts, seed):
        key, padded = jax.random.key(seed), _pad_rows(prompts, chunk)
        parts = [
            gen(params, padded[i : i + chunk], jax.random.fold_in(key, i))
            for i in range(0, len(padded), chunk)
        ]
        return np.concatenate([np.asarray(x) for x in parts])[: len(prompts)]

    return sample


def make_train(config: RLHFConfig):
    """``train(params, a [S, B, T], b [S, B, T], prefer_a [S, B]) -> (params, losses [S])``, one scan."""
    r, tf_config, p = config.reward, config.transformer, config.data.prompt_len
    steps = r.epochs * (r.num_pairs // r.batch_size)
    # A learning rate decaying linearly to zero over one pass (Huang et al.'s reward-model details).
    tx = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adam(optax.linear_schedule(r.learning_rate, 0.0, steps), eps=1e-5),
    )

    def loss_fn(params, a, b, y):
        both = score(tf_config, params, jnp.concatenate([a, b]), p)
        return bradley_terry_loss(both[: len(a)], both[len(a) :], y)

    def train(params, a, b, y):
        def update(carry, batch):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, _), losses = jax.lax.scan(update, (params, tx.init(params)), (a, b, y))
        return params, losses

    return train


def scores(config: RLHFConfig, params, seqs: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Raw scores of ``seqs`` ``[N, T]``, host loop over one compiled shape."""
    fn = jax.jit(lambda prm, s: score(config.transformer, prm, s, config.data.prompt_len))
    padded = _pad_rows(seqs, chunk)
    return np.concatenate(
        [np.asarray(fn(params, padded[i : i + chunk])) for i in range(0, len(padded), chunk)]
    )[: len(seqs)]


def _pad_rows(x: np.ndarray, chunk: int) -> np.ndarray:
    """``x`` with its first row repeated up to a multiple of ``chunk`` rows (cut off again by the caller)."""
    extra = -len(x) % chunk
    return np.concatenate([x, np.repeat(x[:1], extra, 0)]) if extra else x
