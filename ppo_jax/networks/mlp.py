"""Actor-critic networks (flax.linen) behind an ``(init, apply)`` pair.

Defaults follow the PPO literature: separate actor and critic torsos of 64-64
tanh units, orthogonal initialization with gain √2 in hidden layers, 0.01 for
the policy head and 1 for the value head, zero biases. Discrete actions get a
Categorical head; continuous ones a Gaussian head whose log std is a learned,
state-independent parameter vector. Image observations (MinAtar) can use a
small CNN torso.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence, Union

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from ppo_jax.core.distributions import Categorical, DiagGaussian
from ppo_jax.spec import EnvSpec

Distribution = Union[Categorical, DiagGaussian]

_ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu}


def orthogonal(gain: float = 1.0):
    """Orthogonal initializer (as ``nn.initializers.orthogonal``) without LAPACK.

    The Q of a Gaussian matrix by modified Gram-Schmidt, done twice for
    stability: the same distribution as sign-corrected QR. Why not QR: under
    ``vmap`` over seeds XLA's CPU runtime runs the batched LAPACK QR kernels of
    several layers at once, each waiting on the intra-op thread pool that the
    others hold, and on a 2-core machine the program never finishes (seen with
    jaxlib 0.10.2). Matmuls in a ``fori_loop`` have no such wait.
    """

    def init(key, shape, dtype=jnp.float32):
        rows, cols = math.prod(shape[:-1]), shape[-1]
        big, small = max(rows, cols), min(rows, cols)
        gaussian = jax.random.normal(key, (big, small), jnp.float32)

        def next_column(j, q):
            v = jax.lax.dynamic_slice_in_dim(gaussian, j, 1, axis=1)[:, 0]
            for _ in range(2):  # columns not yet filled are zero and drop out
                v = v - q @ (q.T @ v)
            return jax.lax.dynamic_update_slice_in_dim(q, (v / jnp.linalg.norm(v))[:, None], j, axis=1)

        q = jax.lax.fori_loop(0, small, next_column, jnp.zeros((big, small), jnp.float32))
        if rows < cols:
            q = q.T
        return (gain * q).reshape(shape).astype(dtype)

    return init


def _dense(features: int, gain: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=orthogonal(gain), bias_init=nn.initializers.zeros)


class Torso(nn.Module):
    """MLP, or a small CNN (one 3×3 conv, 16 channels) followed by the MLP."""

    hidden_sizes: Sequence[int]
    activation: str
    obs_ndim: int = 1
    conv: bool = False

    @nn.compact
    def __call__(self, x: chex.Array) -> chex.Array:
        act = _ACTIVATIONS[self.activation]
        if self.conv:
            x = nn.Conv(
                16,
                kernel_size=(3, 3),
                padding="SAME",
                kernel_init=orthogonal(math.sqrt(2.0)),
                bias_init=nn.initializers.zeros,
            )(x)
            x = nn.relu(x)
            x = x.reshape(x.shape[:-3] + (-1,))
        elif self.obs_ndim != 1:
            x = x.reshape(x.shape[: x.ndim - self.obs_ndim] + (-1,))
        for width in self.hidden_sizes:
            x = act(_dense(width, math.sqrt(2.0))(x))
        return x


class ActorCritic(nn.Module):
    """Maps observations ``[..., *obs_shape]`` to a distribution and a value ``[...]``."""

    action_dim: int
    discrete: bool
    obs_ndim: int = 1
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    conv: bool = False
    shared_torso: bool = False
    log_std_init: float = 0.0

    def setup(self):
        self.actor_torso = Torso(self.hidden_sizes, self.activation, self.obs_ndim, self.conv)
        if not self.shared_torso:
            self.critic_torso = Torso(self.hidden_sizes, self.activation, self.obs_ndim, self.conv)
        self.policy_head = _dense(self.action_dim, 0.01)
        self.value_head = _dense(1, 1.0)
        if not self.discrete:
            self.log_std = self.param(
                "log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,)
            )

    def _distribution(self, features: chex.Array) -> Distribution:
        out = self.policy_head(features)
        if self.discrete:
            return Categorical(logits=out)
        return DiagGaussian(mean=out, log_std=jnp.broadcast_to(self.log_std, out.shape))

    def value(self, obs: chex.Array) -> chex.Array:
        torso = self.actor_torso if self.shared_torso else self.critic_torso
        return self.value_head(torso(obs))[..., 0]

    def __call__(self, obs: chex.Array) -> tuple[Distribution, chex.Array]:
        actor_features = self.actor_torso(obs)
        value = self.value_head(actor_features)[..., 0] if self.shared_torso else self.value(obs)
        return self._distribution(actor_features), value


class Networks(NamedTuple):
    """Pure functions over a params pytree.

    init(key) -> params
    apply(params, obs[..., *obs_shape]) -> (distribution, value[...])
    value(params, obs[..., *obs_shape]) -> value[...]   (critic only)
    """

    init: Callable[[chex.PRNGKey], chex.ArrayTree]
    apply: Callable[[chex.ArrayTree, chex.Array], tuple[Distribution, chex.Array]]
    value: Callable[[chex.ArrayTree, chex.Array], chex.Array]


def _affine(x: chex.Array, kernel: chex.Array, bias: chex.Array) -> chex.Array:
    y = x @ kernel
    return y + bias.reshape((1,) * (y.ndim - 1) + bias.shape)


def _fused_apply(module: ActorCritic, params, obs: chex.Array) -> tuple[Distribution, chex.Array]:
    """``module.apply(params, obs)`` for separate MLP torsos, with the first layers fused.

    Actor and critic read the same observation: their first-layer kernels are
    concatenated into one ``[obs, 2·width]`` matmul (and in the backward pass one
    weight gradient), the heavy one for image observations. Deeper layers stay
    apart: a block-diagonal matmul would double their work. Same parameters,
    same results to float rounding (tested against the flax module).
    """
    p = params["params"]
    act = _ACTIVATIONS[module.activation]
    x = obs.reshape(obs.shape[: obs.ndim - module.obs_ndim] + (-1,))
    actor, critic = p["actor_torso"], p["critic_torso"]
    kernel = jnp.concatenate([actor["Dense_0"]["kernel"], critic["Dense_0"]["kernel"]], axis=-1)
    bias = jnp.concatenate([actor["Dense_0"]["bias"], critic["Dense_0"]["bias"]], axis=-1)
    h = act(_affine(x, kernel, bias))
    width = actor["Dense_0"]["bias"].shape[-1]
    h_actor, h_critic = h[..., :width], h[..., width:]
    for i in range(1, len(module.hidden_sizes)):
        layer = f"Dense_{i}"
        h_actor = act(_affine(h_actor, actor[layer]["kernel"], actor[layer]["bias"]))
        h_critic = act(_affine(h_critic, critic[layer]["kernel"], critic[layer]["bias"]))
    out = _affine(h_actor, p["policy_head"]["kernel"], p["policy_head"]["bias"])
    value = _affine(h_critic, p["value_head"]["kernel"], p["value_head"]["bias"])[..., 0]
    if module.discrete:
        return Categorical(logits=out), value
    return DiagGaussian(mean=out, log_std=jnp.broadcast_to(p["log_std"], out.shape)), value


def make_networks(
    spec: EnvSpec,
    *,
    network: str = "mlp",
    hidden_sizes: Sequence[int] = (64, 64),
    activation: str = "tanh",
    shared_torso: bool = False,
    log_std_init: float = 0.0,
) -> Networks:
    """The feed-forward actor-critic of an env, as pure ``(init, apply, value)`` functions.

    Args:
      spec: what the networks need to know of the env (observation shape, actions).
      network: ``mlp``, or ``cnn`` (one 3×3 convolution before the MLP) for image observations.
      hidden_sizes: widths of the torso's dense layers.
      activation: the torso's nonlinearity (``tanh`` or ``relu``).
      shared_torso: one torso for actor and critic instead of two.
      log_std_init: initial log standard deviation of a continuous policy.

    Returns:
      ``Networks``: ``init(key) -> params``, ``apply(params, obs) -> (distribution, value)``
      and ``value(params, obs) -> value``.
    """
    module = ActorCritic(
        action_dim=spec.action_dim,
        discrete=spec.discrete,
        obs_ndim=len(spec.obs_shape),
        hidden_sizes=tuple(hidden_sizes),
        activation=activation,
        conv=network == "cnn",
        shared_torso=shared_torso,
        log_std_init=log_std_init,
    )
    dummy_obs = jnp.zeros((1,) + tuple(spec.obs_shape), jnp.float32)

    def init(key: chex.PRNGKey) -> chex.ArrayTree:
        return module.init(key, dummy_obs)

    fused = network == "mlp" and not shared_torso

    def apply(params, obs):
        obs = _as_input(obs)
        if fused:
            return _fused_apply(module, params, obs)
        return module.apply(params, obs)

    def value(params, obs):
        return module.apply(params, _as_input(obs), method=ActorCritic.value)

    return Networks(init=init, apply=apply, value=value)


def _as_input(obs: chex.Array) -> chex.Array:
    """Observations stored narrow (uint8 images) enter the networks as float32, exactly."""
    return obs if obs.dtype == jnp.float32 else obs.astype(jnp.float32)


def networks_from_config(config, spec: EnvSpec) -> Networks:
    return make_networks(
        spec,
        network=config.network,
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        shared_torso=config.shared_torso,
        log_std_init=config.log_std_init,
    )
