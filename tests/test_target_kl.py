"""target_kl follows Stable-Baselines3: the first minibatch step whose approx_kl
(on the params it would update) exceeds 1.5 × target_kl is not applied, nor any
later one of the rollout. Checked against a plain Python loop over the steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppo_jax
from ppo_jax.train import build
from ppo_jax.update import (
    KL_STOP_FACTOR,
    Batch,
    UpdateOptions,
    make_optimizer,
    minibatch_step,
    permutation,
    update,
)

EPOCHS, MINIBATCHES, N = 3, 4, 64


@pytest.fixture(scope="module")
def setup():
    config = ppo_jax.load_config(
        None,
        num_envs=4,
        num_steps=16,
        update_epochs=EPOCHS,
        num_minibatches=MINIBATCHES,
        hidden_sizes=[8],
        learning_rate=0.05,
        target_kl=1.0,
    )
    program = build(config)
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    params = program.networks.init(k[0])
    obs = jax.random.normal(k[1], (N, 4))
    dist, value = program.networks.apply(params, obs)
    action = dist.sample(k[2])
    advantage = jax.random.normal(k[3], (N,))
    batch = Batch(obs, action, dist.log_prob(action), value, advantage, value + advantage)
    return config, program, params, batch


def _reference(config, program, params, batch, target_kl):
    """Steps taken and final params, one minibatch at a time on the host."""
    hp = config.hyperparams().replace(target_kl=jnp.float32(target_kl))
    options = UpdateOptions.from_config(config)._replace(target_kl=False)
    tx = make_optimizer(hp.max_grad_norm)
    opt_state = tx.init(params)
    step = jax.jit(
        lambda p, s, mb: minibatch_step(
            (p, s, jnp.asarray(False)),
            mb,
            hp=hp,
            learning_rate=hp.learning_rate,
            tx=tx,
            networks=program.networks,
            options=options,
        )
    )
    keys = jax.random.split(jax.random.PRNGKey(5), EPOCHS)
    taken = 0
    for e in range(EPOCHS):
        rows = np.asarray(permutation(keys[e], N)).reshape(MINIBATCHES, -1)
        for r in rows:
            minibatch = jax.tree.map(lambda x, r=r: x[r], batch)
            (new_params, new_state, _), (aux, _) = step(params, opt_state, minibatch)
            if float(aux["approx_kl"]) > KL_STOP_FACTOR * target_kl:
                return taken, params
            params, opt_state, taken = new_params, new_state, taken + 1
    return taken, params


def _ours(config, program, params, batch, target_kl):
    hp = config.hyperparams().replace(target_kl=jnp.float32(target_kl))
    tx = make_optimizer(hp.max_grad_norm)
    run = jax.jit(
        lambda p, hp: update(
            jax.random.PRNGKey(5),
            p,
            tx.init(p),
            batch,
            hp,
            hp.learning_rate,
            tx=tx,
            networks=program.networks,
            options=UpdateOptions.from_config(config),
        )
    )
    new_params, _, metrics = run(params, hp)
    return int(metrics["minibatch_updates"]), new_params


def test_steps_taken_match_the_reference_loop(setup):
    config, program, params, batch = setup
    all_steps = EPOCHS * MINIBATCHES
    counts = {}
    for target in (1e-8, 3e-3, 1e-2, 1e3):
        expected, ref_params = _reference(config, program, params, batch, target)
        taken, new_params = _ours(config, program, params, batch, target)
        assert taken == expected, target
        counts[target] = taken
        for a, b in zip(jax.tree.leaves(new_params), jax.tree.leaves(ref_params)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The first step sees the rollout's own policy (KL 0): a tiny target takes that one step only.
    assert counts[1e-8] == 1 and counts[1e3] == all_steps
    assert 1 < counts[3e-3] < all_steps or 1 < counts[1e-2] < all_steps  # some target stops mid-way
