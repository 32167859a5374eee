"""Stage 1, the supervised reference: next-token prediction on the corpus, one ``lax.scan``.

Every non-PAD token after the first of an example (``text.sft_examples``) is a
target, the prompt's characters included: the reference is a language model of
the corpus that has also learned where a response ends (EOS).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax

from ppo_jax.networks import transformer
from ppo_jax.rlhf import text
from ppo_jax.rlhf.config import RLHFConfig


def token_nll(logits: chex.Array, seqs: chex.Array) -> tuple[chex.Array, chex.Array]:
    """Per-position negative log-likelihood of the next token ``[B, T-1]`` and its mask (target not PAD)."""
    log_p = jax.nn.log_softmax(logits[:, :-1])
    targets = seqs[:, 1:]
    nll = -jnp.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0]
    return nll, (targets != text.PAD).astype(nll.dtype)


def mean_nll(tf_config, params, seqs) -> chex.Array:
    logits, _ = transformer.apply(tf_config, params, seqs)
    nll, mask = token_nll(logits, seqs)
    return jnp.sum(nll * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def optimizer(config: RLHFConfig) -> optax.GradientTransformation:
    s = config.sft
    schedule = optax.warmup_cosine_decay_schedule(0.0, s.learning_rate, s.warmup_steps, s.steps)
    # eps 1e-5, not optax's 1e-8: what the RLHF implementations use (Huang et al.'s detail on Adam).
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, eps=1e-5, weight_decay=0.01))


def make_train(config: RLHFConfig):
    """``train(key, examples [steps, batch, T]) -> (params, losses [steps])``, pure."""
    tf_config = config.transformer
    tx = optimizer(config)

    def train(key, examples):
        params = transformer.init(tf_config, key)

        def update(carry, batch):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(lambda p: mean_nll(tf_config, p, batch))(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, _), losses = jax.lax.scan(update, (params, tx.init(params)), examples)
        return params, losses

    return train


def held_out_nll(config: RLHFConfig, params, seqs, chunk: int = 512) -> float:
    """Mean per-token NLL over ``seqs`` (host loop over chunks of one compiled shape)."""
    tf_config = config.transformer

    @jax.jit
    def nll_sum(params, seqs):
        nll, mask = token_nll(transformer.apply(tf_config, params, seqs)[0], seqs)
        return jnp.sum(nll * mask), jnp.sum(mask)

    total, count = 0.0, 0.0
    for i in range(0, len(seqs) - chunk + 1, chunk):
        a, b = nll_sum(params, seqs[i : i + chunk])
        total, count = total + float(a), count + float(b)
    return total / count
