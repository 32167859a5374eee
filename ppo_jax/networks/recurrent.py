"""Recurrent actor-critic: torso → GRU or LSTM core → actor and critic heads.

The core's state (the *carry*) is reset where an episode starts:

    c_in  = where(start_t, c_0, c_{t-1})
    c_t, h_t = cell(c_in, torso(o_t))
    π(·|h_t), V(h_t)

with ``c_0`` zeros. ``start_t`` is true when ``o_t`` is the first observation
of an episode. Torso and heads are applied to a whole sequence ``[T, B, ...]``
at once (large matmuls); only the cell runs in the ``lax.scan`` over time.
Torso and core are shared by actor and critic; each head is one hidden layer
(the last torso width) and its output layer.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from ppo_jax.core.distributions import Categorical, DiagGaussian
from ppo_jax.networks.mlp import _ACTIVATIONS, Distribution, Torso, _as_input, _dense, orthogonal
from ppo_jax.spec import EnvSpec

Carry = Any  # GRU: [..., H]; LSTM: (c [..., H], h [..., H])

CELLS = ("gru", "lstm")


def _cell(kind: str, size: int) -> nn.Module:
    # Our LAPACK-free orthogonal initializer for the recurrent kernels too (see orthogonal()).
    if kind == "gru":
        return nn.GRUCell(features=size, recurrent_kernel_init=orthogonal(1.0), name="core")
    return nn.OptimizedLSTMCell(features=size, recurrent_kernel_init=orthogonal(1.0), name="core")


def initial_carry(kind: str, size: int, batch_shape: Sequence[int] = ()) -> Carry:
    """The carry an episode starts from: zeros, ``[*batch_shape, size]`` (a pair for LSTM)."""
    zeros = jnp.zeros(tuple(batch_shape) + (size,), jnp.float32)
    return zeros if kind == "gru" else (zeros, zeros)


def reset_carry(carry: Carry, start: chex.Array, initial: Carry) -> Carry:
    """``where(start, initial, carry)`` leaf by leaf; ``start`` is ``[...]`` bool."""
    return jax.tree.map(lambda init, c: jnp.where(start[..., None], init, c), initial, carry)


class RecurrentActorCritic(nn.Module):
    """Methods: ``embed`` (torso), ``core_step`` (one reset + cell step), ``heads``."""

    action_dim: int
    discrete: bool
    cell: str
    recurrent_size: int
    obs_ndim: int = 1
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    conv: bool = False
    log_std_init: float = 0.0

    def setup(self):
        self.torso = Torso(self.hidden_sizes, self.activation, self.obs_ndim, self.conv)
        self.core = _cell(self.cell, self.recurrent_size)
        width = self.hidden_sizes[-1]
        self.actor_hidden = _dense(width, math.sqrt(2.0))
        self.critic_hidden = _dense(width, math.sqrt(2.0))
        self.policy_head = _dense(self.action_dim, 0.01)
        self.value_head = _dense(1, 1.0)
        if not self.discrete:
            self.log_std = self.param(
                "log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,)
            )

    def embed(self, obs: chex.Array) -> chex.Array:
        return self.torso(obs)

    def core_step(self, carry: Carry, x: chex.Array, start: chex.Array) -> tuple[Carry, chex.Array]:
        carry = reset_carry(carry, start, initial_carry(self.cell, self.recurrent_size, start.shape))
        return self.core(carry, x)

    def heads(self, h: chex.Array) -> tuple[chex.Array, chex.Array]:
        act = _ACTIVATIONS[self.activation]
        out = self.policy_head(act(self.actor_hidden(h)))
        value = self.value_head(act(self.critic_hidden(h)))[..., 0]
        return out, value

    def value_only(self, h: chex.Array) -> chex.Array:
        act = _ACTIVATIONS[self.activation]
        return self.value_head(act(self.critic_hidden(h)))[..., 0]

    def distribution(self, out: chex.Array) -> Distribution:
        if self.discrete:
            return Categorical(logits=out)
        return DiagGaussian(mean=out, log_std=jnp.broadcast_to(self.log_std, out.shape))

    def __call__(self, carry: Carry, obs: chex.Array, start: chex.Array):
        carry, h = self.core_step(carry, self.embed(obs), start)
        out, value = self.heads(h)
        return carry, self.distribution(out), value


class RecurrentNetworks(NamedTuple):
    """Pure functions over a params pytree, for a policy with memory.

    init(key) -> params
    initial_carry(batch_shape) -> carry                        zeros, [*batch_shape, H]
    step(params, carry, obs[B, *obs], start[B]) -> (carry, distribution[B], value[B])
    unroll(params, carry, obs[T, B, *obs], start[T, B]) -> (carry, distribution[T, B], value[T, B])
    value(params, carry, obs[B, *obs]) -> value[B]   the critic on ``obs`` continuing ``carry`` (no reset)
    """

    init: Callable
    initial_carry: Callable
    step: Callable
    unroll: Callable
    value: Callable


def make_recurrent_networks(
    spec: EnvSpec,
    *,
    cell: str,
    recurrent_size: int = 128,
    network: str = "mlp",
    hidden_sizes: Sequence[int] = (64, 64),
    activation: str = "tanh",
    log_std_init: float = 0.0,
) -> RecurrentNetworks:
    if cell not in CELLS:
        raise ValueError(f"recurrent cell must be one of {CELLS}, got {cell!r}")
    module = RecurrentActorCritic(
        action_dim=spec.action_dim,
        discrete=spec.discrete,
        cell=cell,
        recurrent_size=recurrent_size,
        obs_ndim=len(spec.obs_shape),
        hidden_sizes=tuple(hidden_sizes),
        activation=activation,
        conv=network == "cnn",
        log_std_init=log_std_init,
    )
    M = RecurrentActorCritic

    def make_carry(batch_shape: Sequence[int] = ()) -> Carry:
        return initial_carry(cell, recurrent_size, batch_shape)

    def init(key: chex.PRNGKey):
        obs = jnp.zeros((1,) + tuple(spec.obs_shape), jnp.float32)
        return module.init(key, make_carry((1,)), obs, jnp.ones((1,), bool))

    def step(params, carry, obs, start):
        return module.apply(params, carry, _as_input(obs), start)

    def unroll(params, carry, obs, start):
        x = module.apply(params, _as_input(obs), method=M.embed)

        def body(c, inputs):
            x_t, start_t = inputs
            return module.apply(params, c, x_t, start_t, method=M.core_step)

        carry, h = jax.lax.scan(body, carry, (x, start))
        out, value = module.apply(params, h, method=M.heads)
        return carry, module.apply(params, out, method=M.distribution), value

    def value(params, carry, obs):
        x = module.apply(params, _as_input(obs), method=M.embed)
        no_reset = jnp.zeros(x.shape[:-1], bool)
        _, h = module.apply(params, carry, x, no_reset, method=M.core_step)
        return module.apply(params, h, method=M.value_only)

    return RecurrentNetworks(init=init, initial_carry=make_carry, step=step, unroll=unroll, value=value)
