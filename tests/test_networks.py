"""Networks: heads, shapes, the orthogonal initializer, and vmapped init over seeds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppo_jax.core import Categorical, DiagGaussian
from ppo_jax.envs import env_spec
from ppo_jax.networks import make_networks, orthogonal


@pytest.mark.parametrize("shape", [(4, 64), (64, 64), (400, 64), (64, 1), (3, 3, 4, 16)])
@pytest.mark.parametrize("gain", [0.01, 1.0, np.sqrt(2.0)])
def test_orthogonal_init_is_orthogonal_with_gain(shape, gain):
    w = np.asarray(orthogonal(gain)(jax.random.PRNGKey(3), shape), np.float64)
    assert w.shape == shape
    w = w.reshape(-1, shape[-1])
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(gram.shape[0]), atol=1e-5 * max(1.0, gain**2))


def test_orthogonal_init_is_random_per_key():
    a = orthogonal()(jax.random.PRNGKey(0), (8, 8))
    b = orthogonal()(jax.random.PRNGKey(1), (8, 8))
    assert not np.allclose(a, b)


@pytest.mark.parametrize(
    "env_id,network,dist_type",
    [
        ("CartPole-v1", "mlp", Categorical),
        ("Pendulum-v1", "mlp", DiagGaussian),
        ("Breakout-MinAtar", "mlp", Categorical),
        ("Breakout-MinAtar", "cnn", Categorical),
    ],
)
def test_apply_shapes(env_id, network, dist_type):
    spec = env_spec(env_id)
    nets = make_networks(spec, network=network)
    params = nets.init(jax.random.PRNGKey(0))
    obs = jnp.ones((5,) + spec.obs_shape)
    dist, value = nets.apply(params, obs)
    assert isinstance(dist, dist_type) and value.shape == (5,)
    np.testing.assert_allclose(nets.value(params, obs), value, rtol=1e-6)
    action = dist.sample(jax.random.PRNGKey(1))
    assert action.shape == ((5,) if spec.discrete else (5, spec.action_dim))
    assert dist.log_prob(action).shape == (5,)


def test_vmapped_init_over_seeds_finishes():
    # Regression: batched LAPACK QR under vmap deadlocked XLA's CPU thread pool.
    nets = make_networks(env_spec("Breakout-MinAtar"))
    params = jax.jit(jax.vmap(nets.init))(jax.random.split(jax.random.PRNGKey(0), 4))
    kernel = params["params"]["actor_torso"]["Dense_0"]["kernel"]
    assert kernel.shape == (4, 400, 64)
    assert not np.allclose(kernel[0], kernel[1])


def test_heads_start_near_uniform_and_gaussian_log_std_is_learnable():
    spec = env_spec("Pendulum-v1")
    nets = make_networks(spec, log_std_init=-0.5)
    params = nets.init(jax.random.PRNGKey(0))
    np.testing.assert_allclose(params["params"]["log_std"], [-0.5])
    dist, _ = nets.apply(params, jnp.ones((2, 3)))
    np.testing.assert_allclose(dist.log_std, -0.5)
    grads = jax.grad(lambda p: nets.apply(p, jnp.ones((2, 3)))[0].log_prob(jnp.ones((2, 1))).sum())(params)
    assert float(jnp.abs(grads["params"]["log_std"]).sum()) > 0
    cat = make_networks(env_spec("CartPole-v1"))
    logits = cat.apply(cat.init(jax.random.PRNGKey(0)), jnp.ones((1, 4)))[0].logits
    assert float(jnp.abs(logits).max()) < 0.1  # 0.01-gain policy head


@pytest.mark.parametrize(
    "env_id, activation, hidden",
    [
        ("CartPole-v1", "tanh", (64, 64)),
        ("Pendulum-v1", "tanh", (32, 48, 16)),
        ("Breakout-MinAtar", "relu", (64,)),
    ],
)
def test_fused_apply_matches_the_flax_module(env_id, activation, hidden):
    """Separate MLP torsos run with their first layers fused into one matmul; the
    flax module (unfused) is the reference: same outputs and same gradients."""
    from ppo_jax.networks import ActorCritic

    spec = env_spec(env_id)
    nets = make_networks(spec, activation=activation, hidden_sizes=hidden)
    module = ActorCritic(spec.action_dim, spec.discrete, len(spec.obs_shape), hidden, activation)
    params = nets.init(jax.random.PRNGKey(0))
    # perturb every parameter so that zero biases cannot hide a mix-up
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params = jax.tree.unflatten(
        treedef, [x + 0.1 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    )
    obs = jax.random.normal(jax.random.PRNGKey(2), (5, 3) + spec.obs_shape)

    def outputs(apply):
        dist, value = apply(params, obs)
        return jax.tree.leaves(dist) + [value]

    for ours, ref in zip(outputs(nets.apply), outputs(module.apply)):
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)

    def loss(p, apply):
        dist, value = apply(p, obs)
        return jnp.sum(jax.tree.leaves(dist)[0] ** 2) + jnp.sum(value**2)

    grads = jax.grad(loss)(params, nets.apply)
    ref_grads = jax.grad(loss)(params, module.apply)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)
