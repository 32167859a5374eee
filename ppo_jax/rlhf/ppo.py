"""Stage 3, PPO on token sequences: per-token KL in the reward, masks for padding, one ``lax.scan``.

For response tokens t = 0 … R−1 of a batch of responses (alive_t = 1 up to and
including EOS, 0 on the PAD after it):

    r_t  = score · [t is the last token] − β · (log π(a_t|s_t) − log π_ref(a_t|s_t))    (k1, core.kl)
    A_t  = GAE(γ = 1, λ) over response tokens, cut at the response's end       (core.gae)
    Â_t  = (A_t − mean) / std over alive tokens only                           (masked_whiten)
    loss = clipped surrogate + c_v · clipped value loss, over alive tokens only (core.losses)

log π uses logits / temperature, the temperature that samples the rollouts
(Huang et al.), with PAD impossible (``transformer.sampling_logits``). β follows Ziegler et al.'s controller (core.kl) toward
``kl_target`` nats per response when it is set. ``make_train(config)`` returns
``train(key, hypers, ref_params, env_params)``, pure, with the settings of
``Hypers`` traced, so ``jit(vmap(train))`` runs a grid of them × seeds in one program.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from ppo_jax.core import (
    Categorical,
    adaptive_kl_coef,
    approx_kl,
    clip_fraction,
    clipped_surrogate_loss,
    gae,
    kl_penalty,
    value_loss,
)
from ppo_jax.networks import transformer
from ppo_jax.rlhf import reward, text
from ppo_jax.rlhf.config import RLHFConfig
from ppo_jax.rlhf.env import ResponseEnv


class Hypers(NamedTuple):
    """The stage-3 settings that may differ between the runs of one compiled program (float32 scalars)."""

    kl_coef: chex.Numeric  # β, the controller's start when kl_target is set
    kl_target: chex.Numeric  # read only when the config's kl_target is set (a static choice)
    learning_rate: chex.Numeric
    clip_eps: chex.Numeric
    vf_coef: chex.Numeric


def hypers(config: RLHFConfig, **values) -> Hypers:
    """The config's ``ppo`` values of ``Hypers``' fields, with ``values`` in place of some."""
    c = config.ppo
    base = {f: getattr(c, f) for f in Hypers._fields}
    base["kl_target"] = 0.0 if c.kl_target is None else c.kl_target
    return Hypers(**{k: jnp.float32(v) for k, v in {**base, **values}.items()})


class Rollout(NamedTuple):
    seqs: chex.Array  # [B, P + R] int32
    scores: chex.Array  # [B, R] the environment's reward: the normalized score at the last token
    alive: chex.Array  # [B, R] float32, 1 on response tokens (EOS included)


class Batch(NamedTuple):
    seqs: chex.Array  # [B, P + R]
    old_log_prob: chex.Array  # [B, R]
    old_values: chex.Array  # [B, R]
    advantages: chex.Array  # [B, R], whitened, 0 on padding
    returns: chex.Array  # [B, R]
    alive: chex.Array  # [B, R]


def masked_mean(x: chex.Array, mask: chex.Array) -> chex.Array:
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def masked_whiten(x: chex.Array, mask: chex.Array, eps: float = 1e-8) -> chex.Array:
    """Zero mean, unit std over the entries where ``mask`` is 1; 0 elsewhere."""
    mean = masked_mean(x, mask)
    var = masked_mean(jnp.square(x - mean), mask)
    return (x - mean) * jax.lax.rsqrt(var + eps) * mask


def token_log_probs(tf_config, params, seqs, prompt_len: int, temperature):
    """log π(a_t|s_t) ``[B, R]`` (0 on PAD), V(s_t) ``[B, R]`` and the full log-softmax ``[B, R, V]``."""
    logits, head = transformer.apply(tf_config, params, seqs)
    log_p = jax.nn.log_softmax(
        transformer.sampling_logits(logits[:, prompt_len - 1 : -1], temperature, text.PAD)
    )
    actions = seqs[:, prompt_len:]
    chosen = jnp.take_along_axis(log_p, actions[..., None], axis=-1)[..., 0]
    # PAD after EOS is no action: log-probability 0 for every policy, so no KL, no ratio, nothing huge.
    chosen = jnp.where(actions == text.PAD, 0.0, chosen)
    return chosen, head[:, prompt_len - 1 : -1], log_p


def per_token_rewards(scores, log_prob, ref_log_prob, alive, beta):
    """``(r_t, kl_t)`` ``[B, R]``: the score minus β · k1 on every response token, 0 on padding."""
    rewards, kl = kl_penalty(scores, log_prob, ref_log_prob, beta)
    return rewards * alive, kl * alive


def advantages(rewards, values, alive, gamma, gae_lambda):
    """GAE over response tokens ``[B, R]``: the response's end is terminal, padding contributes nothing."""
    next_alive = jnp.concatenate([alive[:, 1:], jnp.zeros_like(alive[:, :1])], axis=1)
    values = values * alive
    next_values = jnp.concatenate([values[:, 1:], jnp.zeros_like(values[:, :1])], axis=1) * next_alive
    ended = 1.0 - next_alive
    adv, ret = gae(rewards.T, values.T, next_values.T, ended.T, ended.T, gamma=gamma, gae_lambda=gae_lambda)
    return adv.T * alive, ret.T * alive


def collect(env: ResponseEnv, env_params, tf_config, params, key, batch: int, temperature) -> Rollout:
    """Write ``batch`` responses: the policy's cache advances with the environment's tokens."""
    key_reset, key_act = jax.random.split(key)
    p = env.prompt_len
    obs, state = jax.vmap(env.reset_env, (0, None))(jax.random.split(key_reset, batch), env_params)
    logits, _, cache = transformer.prefill(tf_config, params, obs[:, :p])

    def body(carry, t):
        state, logits, cache = carry
        alive = ~state.done
        action = Categorical(transformer.sampling_logits(logits, temperature, text.PAD)).sample(
            jax.random.fold_in(key_act, t)
        )
        obs, state, score, _, _ = jax.vmap(env.step_env, (None, 0, 0, None))(
            key_act, state, action, env_params
        )
        logits, _, cache = transformer.step(tf_config, params, obs[:, p + t], p + t, cache)
        return (state, logits, cache), (score, alive.astype(jnp.float32))

    (state, _, _), (scores, alive) = jax.lax.scan(body, (state, logits, cache), jnp.arange(env.response_len))
    return Rollout(state.tokens, scores.T, alive.T)


def _loss(tf_config, config: RLHFConfig, hp: Hypers, params, mb: Batch):
    c, p = config.ppo, config.data.prompt_len
    log_prob, values, log_p = token_log_probs(tf_config, params, mb.seqs, p, c.temperature)
    on = mb.alive > 0
    # Padding enters the core losses as neutral entries (ratio 1, zero advantage, zero value error),
    # so each mean over all entries, rescaled by all / alive, is the mean over response tokens.
    scale = mb.alive.size / jnp.maximum(jnp.sum(mb.alive), 1.0)
    log_prob = jnp.where(on, log_prob, mb.old_log_prob)
    pg = clipped_surrogate_loss(log_prob, mb.old_log_prob, mb.advantages, hp.clip_eps) * scale
    values = jnp.where(on, values, mb.returns)
    old_values = jnp.where(on, mb.old_values, mb.returns)
    vl = value_loss(values, mb.returns, old_values, c.vf_clip) * scale
    entropy = masked_mean(-jnp.sum(jnp.exp(log_p) * log_p, -1), mb.alive)
    stats = {
        "pg_loss": pg,
        "value_loss": vl,
        "entropy": entropy,
        "approx_kl": approx_kl(log_prob, mb.old_log_prob) * scale,
        "clip_frac": clip_fraction(log_prob, mb.old_log_prob, hp.clip_eps) * scale,
        "ratio_max_dev": jnp.max(jnp.abs(jnp.exp(log_prob - mb.old_log_prob) - 1.0)),
    }
    return pg + hp.vf_coef * vl, stats


def optimizer(config: RLHFConfig, learning_rate: chex.Numeric):
    return optax.chain(
        optax.clip_by_global_norm(config.ppo.max_grad_norm), optax.adam(learning_rate, eps=1e-5)
    )


def epochs(tf_config, config: RLHFConfig, hp: Hypers, params, opt_state, batch: Batch, key):
    """``update_epochs`` passes over shuffled minibatches of whole responses."""
    c = config.ppo
    tx = optimizer(config, hp.learning_rate)
    mb_size = c.batch_size // c.num_minibatches
    grad_fn = jax.value_and_grad(lambda prm, mb: _loss(tf_config, config, hp, prm, mb), has_aux=True)

    def minibatch(carry, mb):
        params, opt_state = carry
        (_, stats), grads = grad_fn(params, mb)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), stats

    def epoch(carry, key):
        order = jax.random.permutation(key, c.batch_size)
        mbs = jax.tree.map(lambda x: x[order].reshape((c.num_minibatches, mb_size) + x.shape[1:]), batch)
        return jax.lax.scan(minibatch, carry, mbs)

    (params, opt_state), stats = jax.lax.scan(
        epoch, (params, opt_state), jax.random.split(key, c.update_epochs)
    )
    return params, opt_state, stats  # stats leaves [epochs, minibatches]


def next_beta(config: RLHFConfig, beta, kl_per_response, kl_target):
    c = config.ppo
    if c.kl_target is None:
        return beta
    # The gain K_β = n / horizon is kept ≤ 1: one update changes β by at most exp(±0.2). core.kl's
    # log-space form already keeps β positive at any gain; the cap keeps the controller as slow as
    # the horizon says even when one batch holds more tokens than the horizon.
    n = jnp.minimum(c.batch_size, c.kl_horizon)
    return adaptive_kl_coef(beta, kl_per_response, kl_target, n, c.kl_horizon)


def make_train(config: RLHFConfig):
    """``train(key, hypers, ref_params, env_params) -> (params, metrics)``; metrics leaves ``[num_updates, ...]``."""
    c, d = config.ppo, config.data
    tf_config = config.transformer
    env = ResponseEnv(tf_config, d.prompt_len, d.response_len)

    def update(carry, key, hp: Hypers, ref_params, env_params):
        params, opt_state, beta = carry
        key_collect, key_epochs = jax.random.split(key)
        ro = collect(env, env_params, tf_config, params, key_collect, c.batch_size, c.temperature)
        old_log_prob, old_values, _ = token_log_probs(tf_config, params, ro.seqs, d.prompt_len, c.temperature)
        ref_log_prob, _, _ = token_log_probs(tf_config, ref_params, ro.seqs, d.prompt_len, c.temperature)
        rewards, kl = per_token_rewards(ro.scores, old_log_prob, ref_log_prob, ro.alive, beta)
        adv, ret = advantages(rewards, old_values, ro.alive, c.gamma, c.gae_lambda)
        batch = Batch(ro.seqs, old_log_prob, old_values, masked_whiten(adv, ro.alive), ret, ro.alive)
        params, opt_state, stats = epochs(tf_config, config, hp, params, opt_state, batch, key_epochs)
        k1 = jnp.mean(jnp.sum(kl, 1))
        log_ratio = ref_log_prob - old_log_prob
        metrics = {
            **{k: jnp.mean(v) for k, v in stats.items() if k != "ratio_max_dev"},
            "ratio_first_minibatch": stats["ratio_max_dev"][0, 0],
            "score": jnp.sum(ro.scores, 1).mean(),
            "kl": k1,
            "kl_k3": jnp.mean(jnp.sum((jnp.expm1(log_ratio) - log_ratio) * ro.alive, 1)),
            "kl_coef": beta,
            "length": jnp.sum(ro.alive, 1).mean(),
            "responses": ro.seqs[:, d.prompt_len :].astype(jnp.int8),
        }
        return (params, opt_state, next_beta(config, beta, k1, hp.kl_target)), metrics

    def train(key, hp: Hypers, ref_params, env_params):
        params = zero_value_head(ref_params)
        carry = (
            params,
            optimizer(config, hp.learning_rate).init(params),
            jnp.asarray(hp.kl_coef, jnp.float32),
        )
        step = lambda carry, k: update(carry, k, hp, ref_params, env_params)
        (params, _, _), metrics = jax.lax.scan(step, carry, jax.random.split(key, c.num_updates))
        return params, metrics

    return train, env


def zero_value_head(params):
    head = params["params"]["head"]
    return {**params, "params": {**params["params"], "head": jax.tree.map(jnp.zeros_like, head)}}


def evaluate(config: RLHFConfig, params, ref_params, env_params, prompts, key):
    """Responses of ``params`` to ``prompts`` at the training temperature, with their normalized
    reward-model score, exact KL to the reference Σ_t KL(π(·|s_t) ‖ π_ref(·|s_t)) and length, each ``[N]``."""
    c, d, tf_config = config.ppo, config.data, config.transformer
    seqs = transformer.generate(
        tf_config, params, prompts, key, d.response_len, c.temperature, text.EOS, text.PAD
    )
    alive = (seqs[:, d.prompt_len :] != text.PAD).astype(jnp.float32)  # PAD only follows EOS
    _, _, log_p = token_log_probs(tf_config, params, seqs, d.prompt_len, c.temperature)
    _, _, ref_log_p = token_log_probs(tf_config, ref_params, seqs, d.prompt_len, c.temperature)
    kl = jnp.sum(jnp.sum(jnp.exp(log_p) * (log_p - ref_log_p), -1) * alive, 1)
    raw = reward.score(tf_config, env_params.rm_params, seqs, d.prompt_len)
    rm = reward.normalize(raw, env_params.rm_mean, env_params.rm_std)
    return seqs, rm, kl, jnp.sum(alive, 1)
