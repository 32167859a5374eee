"""Both kinds of JAX key work everywhere a key goes in: typed keys
(``jax.random.key``, JAX's recommended API) and raw ``uint32[2]`` keys
(``jax.random.PRNGKey``). A typed key holds the same bits as the raw key of the
same seed, so both give the same run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppo_jax
from ppo_jax.envs import VecEnv
from ppo_jax.evaluate import play_episodes
from ppo_jax.runs import PolicyParams, make_act
from ppo_jax.train import build

TINY = dict(total_timesteps=4 * 16 * 2, num_envs=4, num_steps=16, update_epochs=1, num_minibatches=2)
KINDS = {"typed": jax.random.key, "raw": jax.random.PRNGKey}


def _keys(kind, seeds):
    return jax.vmap(KINDS[kind])(jnp.asarray(seeds, jnp.uint32))


def _same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
@pytest.mark.parametrize("kind", list(KINDS))
def test_reset_states_counts_batch_axes_of_both_key_kinds(kind, batch):
    vec = VecEnv("CartPole-v1")
    keys = _keys(kind, np.arange(int(np.prod(batch, dtype=int)))).reshape(
        batch + (() if kind == "typed" else (2,))
    )
    obs, _ = vec.reset_states(keys)
    assert obs.shape == batch + (4,)


@pytest.fixture(scope="module")
def config():
    return ppo_jax.load_config(None, **TINY)


def _grid(config):
    """Two settings for two seeds: a hand-made sweep, seeds × traced settings vmapped together."""
    return jax.tree.map(lambda x: jnp.stack([x, x * 0.5]), config.hyperparams())


@pytest.fixture(scope="module")
def raw_runs(config):
    train = ppo_jax.make_train(config)
    return jax.jit(train)(jax.random.PRNGKey(7)), jax.jit(jax.vmap(train))(
        _keys("raw", [0, 1]), _grid(config)
    )


def test_train_with_a_typed_key_is_the_raw_key_run(config, raw_runs):
    state, metrics = jax.jit(ppo_jax.make_train(config))(jax.random.key(7))
    assert jax.dtypes.issubdtype(state.key.dtype, jax.dtypes.prng_key)
    _same((state, metrics), raw_runs[0])


def test_vmapped_seeds_and_settings_with_typed_keys(config, raw_runs):
    out = jax.jit(jax.vmap(ppo_jax.make_train(config)))(_keys("typed", [0, 1]), _grid(config))
    assert np.all(np.asarray(out[1]["nonfinite"]) == 0)
    _same(out, raw_runs[1])


def test_act_and_evaluation_with_either_key_kind(config):
    """A typed key acts and plays as the raw key of the same seed does (the raw
    key's calls are the reference, so both kinds run)."""
    program = build(config)
    params = PolicyParams(network=program.networks.init(jax.random.PRNGKey(0)), obs_norm=None)
    act = make_act(program.networks, program.vec_env, normalize_obs=False)
    obs = jnp.zeros((5, 4))
    key = jax.random.key(3)
    sampled = jax.jit(act)(params, obs, key)
    assert sampled.shape == (5,)
    np.testing.assert_array_equal(sampled, jax.jit(act)(params, obs, jax.random.PRNGKey(3)))
    play = jax.jit(lambda p, k: play_episodes(act, p, program.vec_env, k, 4, stochastic=True))
    returns, lengths = play(params, key)
    reference = play(params, jax.random.PRNGKey(3))
    np.testing.assert_array_equal(returns, reference[0])
    assert lengths.shape == (4,)
