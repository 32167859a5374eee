"""A causal transformer over tokens (flax.linen), with a value head, and generation inside ``jit``.

Pre-LayerNorm blocks (x + attn(LN x), x + MLP(LN x)), learned absolute
positions, the output projection tied to the token embedding, and a scalar
head read at every position. The scalar head is zero-initialised, as RLHF
value heads are (Ziegler et al. 2019), so a fresh critic predicts 0 and a
policy's first gradients come from the advantages alone; a reward model
re-initialises it (``ppo_jax.rlhf.reward``).

Attention is causal only: prompts have one fixed length, so there is no left
padding, and the PAD tokens after a response's EOS come later than every
token that matters, which a causal mask already hides from them.

Two ways to generate, which agree (tests/test_rlhf_transformer.py):
``generate(..., cache=True)`` keeps every layer's keys and values
``[B, max_len, heads, head_dim]`` and runs one position per step;
``cache=False`` recomputes the whole sequence at every step. Which one is
faster at this package's sizes is measured in docs/rlhf.md.

``TokenActorCritic`` (``make_token_networks``) puts the same blocks behind the
general trainer's ``Networks`` pair, for ``network: transformer``.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from ppo_jax.core import Categorical
from ppo_jax.core.distributions import MASKED_LOGIT
from ppo_jax.networks.mlp import Networks, orthogonal
from ppo_jax.spec import EnvSpec


class TransformerConfig(NamedTuple):
    vocab_size: int
    max_len: int
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: int = 4


def _attend(q, k, v, mask):
    """Scaled dot-product attention; q ``[B, Tq, H, D]``, k, v ``[B, Tk, H, D]``, mask ``[Tq, Tk]``."""
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(q.shape[-1]).astype(q.dtype)
    scores = jnp.where(mask[None, None], scores, jnp.finfo(scores.dtype).min)
    return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)


class Block(nn.Module):
    config: TransformerConfig

    def setup(self):
        c = self.config
        init = nn.initializers.normal(0.02)
        self.ln1, self.ln2 = nn.LayerNorm(), nn.LayerNorm()
        self.qkv = nn.Dense(3 * c.d_model, kernel_init=init)
        self.proj = nn.Dense(c.d_model, kernel_init=init)
        self.fc1 = nn.Dense(c.mlp_ratio * c.d_model, kernel_init=init)
        self.fc2 = nn.Dense(c.d_model, kernel_init=init)

    def _qkv(self, x):
        c = self.config
        q, k, v = jnp.split(self.qkv(self.ln1(x)), 3, axis=-1)
        shape = x.shape[:2] + (c.num_heads, c.d_model // c.num_heads)
        return q.reshape(shape), k.reshape(shape), v.reshape(shape)

    def _rest(self, x, attended):
        x = x + self.proj(attended.reshape(x.shape))
        return x + self.fc2(nn.gelu(self.fc1(self.ln2(x))))

    def __call__(self, x):
        """``[B, T, d]`` -> (``[B, T, d]``, (k, v) each ``[B, T, H, D]``)."""
        q, k, v = self._qkv(x)
        causal = jnp.tril(jnp.ones((x.shape[1], x.shape[1]), bool))
        return self._rest(x, _attend(q, k, v, causal)), (k, v)

    def step(self, x, pos, cache):
        """One position ``[B, 1, d]`` at index ``pos``, attending to the cache up to it."""
        q, k, v = self._qkv(x)
        keys = jax.lax.dynamic_update_slice_in_dim(cache[0], k, pos, axis=1)
        values = jax.lax.dynamic_update_slice_in_dim(cache[1], v, pos, axis=1)
        visible = (jnp.arange(keys.shape[1]) <= pos)[None, :]
        return self._rest(x, _attend(q, keys, values, visible)), (keys, values)


class Transformer(nn.Module):
    """Token ids -> (next-token logits, scalar head) at every position."""

    config: TransformerConfig

    def setup(self):
        c = self.config
        self.embed = nn.Embed(c.vocab_size, c.d_model, embedding_init=nn.initializers.normal(0.02))
        self.positions = self.param("positions", nn.initializers.normal(0.01), (c.max_len, c.d_model))
        self.blocks = [Block(c) for _ in range(c.num_layers)]
        self.ln_f = nn.LayerNorm()
        self.head = nn.Dense(1, kernel_init=nn.initializers.zeros)

    def _out(self, x):
        x = self.ln_f(x)
        return self.embed.attend(x), self.head(x)[..., 0]

    def __call__(self, tokens):
        """``[B, T]`` -> logits ``[B, T, V]``, head ``[B, T]``."""
        logits, head, _ = self.with_cache(tokens)
        return logits, head

    def with_cache(self, tokens):
        """As ``__call__``, plus every layer's keys and values of these positions (a prefill)."""
        x = self.embed(tokens) + self.positions[None, : tokens.shape[1]]
        cache = []
        for block in self.blocks:
            x, kv = block(x)
            cache.append(kv)
        logits, head = self._out(x)
        return logits, head, tuple(cache)

    def step(self, token, pos, cache):
        """The token ``[B]`` at index ``pos`` -> logits ``[B, V]``, head ``[B]``, the updated cache."""
        x = self.embed(token[:, None]) + jax.lax.dynamic_slice_in_dim(self.positions, pos, 1)[None]
        new = []
        for block, kv in zip(self.blocks, cache):
            x, kv = block.step(x, pos, kv)
            new.append(kv)
        logits, head = self._out(x)
        return logits[:, 0], head[:, 0], tuple(new)


def sampling_logits(logits: chex.Array, temperature: chex.Numeric, pad: int) -> chex.Array:
    """logits / temperature, with PAD made impossible: a policy ends a response with EOS, and PAD only
    fills the positions after it."""
    return jnp.where(jnp.arange(logits.shape[-1]) == pad, MASKED_LOGIT, logits / temperature)


def init(config: TransformerConfig, key: chex.PRNGKey):
    """Fresh parameters."""
    return Transformer(config).init(key, jnp.zeros((1, config.max_len), jnp.int32))


def apply(config: TransformerConfig, params, tokens):
    """Logits ``[B, T, V]`` and head ``[B, T]`` of ``tokens`` ``[B, T]``."""
    return Transformer(config).apply(params, tokens)


def empty_cache(config: TransformerConfig, batch: int, dtype=jnp.float32):
    """Zero keys and values for ``batch`` sequences of ``config.max_len``."""
    shape = (batch, config.max_len, config.num_heads, config.d_model // config.num_heads)
    return tuple((jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in range(config.num_layers))


def prefill(config: TransformerConfig, params, prompt):
    """Run the prompt ``[B, P]`` once: logits and head at its last position, and a full-length cache."""
    logits, head, kv = Transformer(config).apply(params, prompt, method=Transformer.with_cache)  # type: ignore[misc]  # apply is typed for mutable runs too
    pad = config.max_len - prompt.shape[1]
    cache = jax.tree.map(lambda a: jnp.pad(a, ((0, 0), (0, pad), (0, 0), (0, 0))), kv)
    return logits[:, -1], head[:, -1], cache


def step(config: TransformerConfig, params, token, pos, cache):
    """One cached position: see ``Transformer.step``."""
    return Transformer(config).apply(params, token, pos, cache, method=Transformer.step)


def generate(
    config: TransformerConfig,
    params,
    prompt: chex.Array,
    key: chex.PRNGKey,
    response_len: int,
    temperature: chex.Numeric,
    eos: int,
    pad: int,
    cache: bool = True,
):
    """Sample responses to ``prompt`` ``[B, P]``: sequences ``[B, P + response_len]``.

    Each token is drawn from ``sampling_logits`` (softmax of logits / temperature,
    never PAD); after a sequence's EOS every later token is PAD. Step t uses ``jax.random.fold_in(key, t)``,
    so both ways of generating draw the same tokens from the same logits.
    """
    batch, p = prompt.shape
    chex.assert_equal(p + response_len <= config.max_len, True)

    def draw(logits, t, done):
        token = Categorical(sampling_logits(logits, temperature, pad)).sample(jax.random.fold_in(key, t))
        return jnp.where(done, pad, token), done | (token == eos)

    seqs = jnp.concatenate([prompt, jnp.full((batch, response_len), pad, prompt.dtype)], axis=1)
    if cache:
        logits, _, kv = prefill(config, params, prompt)
        first, done = draw(logits, 0, jnp.zeros(batch, bool))

        def body(carry, t):
            token, done, kv = carry
            logits, _, kv = step(config, params, token, p + t - 1, kv)
            nxt, done = draw(logits, t, done)
            return (nxt, done, kv), token

        _, tokens = jax.lax.scan(body, (first, done, kv), jnp.arange(1, response_len + 1))
        return seqs.at[:, p:].set(tokens.T.astype(seqs.dtype))

    def body_full(carry, t):
        seqs, done = carry
        logits, _ = apply(config, params, seqs)
        token, done = draw(jnp.take(logits, p + t - 1, axis=1), t, done)
        return (
            jax.lax.dynamic_update_slice_in_dim(seqs, token[:, None].astype(seqs.dtype), p + t, 1),
            done,
        ), None

    (seqs, _), _ = jax.lax.scan(body_full, (seqs, jnp.zeros(batch, bool)), jnp.arange(response_len))
    return seqs


class TokenActorCritic(nn.Module):
    """Token-id observations ``[..., T]`` -> (Categorical over actions, value ``[...]``), read at each
    sequence's last non-PAD position (PAD is the last id, ``vocab_size - 1``; see ``EnvSpec.obs_vocab``).

    One torso for actor and critic, as in RLHF. The policy head is separate from the token
    embedding (actions need not be tokens), orthogonal with gain 0.01 like the MLP's; the value
    head is zero-initialised.
    """

    config: TransformerConfig
    action_dim: int

    def setup(self):
        c = self.config
        self.embed = nn.Embed(c.vocab_size, c.d_model, embedding_init=nn.initializers.normal(0.02))
        self.positions = self.param("positions", nn.initializers.normal(0.01), (c.max_len, c.d_model))
        self.blocks = [Block(c) for _ in range(c.num_layers)]
        self.ln_f = nn.LayerNorm()
        self.policy_head = nn.Dense(self.action_dim, kernel_init=orthogonal(0.01))
        self.value_head = nn.Dense(1, kernel_init=nn.initializers.zeros)

    def hidden(self, tokens):
        """``[B, T]`` ids -> ``[B, T, d]``: the final (normalized) layer at every position."""
        x = self.embed(tokens) + self.positions[None, : tokens.shape[1]]
        for block in self.blocks:
            x, _ = block(x)
        return self.ln_f(x)

    def features(self, tokens):
        """``[..., T]`` ids -> ``[..., d]``: ``hidden`` at each sequence's last non-PAD position."""
        lead, length = tokens.shape[:-1], tokens.shape[-1]
        flat = tokens.reshape((-1, length))
        last = jnp.maximum(jnp.sum(flat != self.config.vocab_size - 1, axis=-1) - 1, 0)
        x = jnp.take_along_axis(self.hidden(flat), last[:, None, None], axis=1)[:, 0]
        return x.reshape(lead + (x.shape[-1],))

    def value(self, tokens):
        return self.value_head(self.features(tokens))[..., 0]

    def __call__(self, tokens):
        h = self.features(tokens)
        return Categorical(logits=self.policy_head(h)), self.value_head(h)[..., 0]


def make_token_networks(spec: EnvSpec, *, d_model: int = 64, num_layers: int = 2, num_heads: int = 4):
    """The causal-transformer actor-critic of a token-observation env (``spec.obs_vocab > 0``), as
    ``Networks``: observations arrive as float32 (the vectorized env's dtype) holding exact ids and
    enter the embedding as int32.

    Args:
      spec: the env's spec: ``obs_shape`` ``(T,)`` (the sequence length), ``obs_vocab``, discrete actions.
      d_model: the width of the residual stream.
      num_layers: transformer blocks.
      num_heads: attention heads (dividing ``d_model``).

    Returns:
      ``Networks``: ``init(key) -> params``, ``apply(params, obs[..., T]) -> (Categorical, value[...])``
      and ``value(params, obs) -> value``.
    """
    config = TransformerConfig(spec.obs_vocab, spec.obs_shape[-1], d_model, num_layers, num_heads)
    module = TokenActorCritic(config, spec.action_dim)

    def init(key):
        return module.init(key, jnp.zeros((1, config.max_len), jnp.int32))

    def apply(params, obs):
        return module.apply(params, obs.astype(jnp.int32))

    def value(params, obs):
        return module.apply(params, obs.astype(jnp.int32), method=TokenActorCritic.value)

    return Networks(init=init, apply=apply, value=value)
