"""``network: transformer`` in the general trainer: the token-id env, the causal mask through
``networks_from_config``, a tiny run (vmapped seeds equal single runs, params finite), and the
configs it refuses before compiling."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppo_jax
from ppo_jax import envs, networks
from ppo_jax.config import ConfigError, PPOConfig, validate
from ppo_jax.driver import seed_keys
from ppo_jax.envs import tokens
from ppo_jax.networks.transformer import TokenActorCritic, TransformerConfig

TOKENS = dict(env_id="ppo_jax.envs.tokens:Fluency", env_kwargs={"obs": "ids"}, network="transformer")
TINY = dict(
    **TOKENS,
    d_model=16,
    num_layers=1,
    num_heads=2,
    total_timesteps=2 * 8 * 8,
    num_envs=8,
    num_steps=8,
    update_epochs=1,
    num_minibatches=2,
)


def test_id_observations_are_bos_the_tokens_written_then_pad():
    env = tokens.Tokens("fluency", obs="ids")
    obs, state = env.reset_env(jax.random.PRNGKey(0), env.default_params)
    written = [3, 0, 7, 7, 1]
    np.testing.assert_array_equal(obs, [tokens.BOS] + [tokens.PAD] * (tokens.LENGTH - 1))
    for t, action in enumerate(written):
        obs, state, *_ = env.step_env(jax.random.PRNGKey(0), state, action, env.default_params)
        expected = [tokens.BOS] + written[: t + 1] + [tokens.PAD] * (tokens.LENGTH - t - 2)
        np.testing.assert_array_equal(obs, expected[: tokens.LENGTH])
        assert obs.dtype == jnp.int32


def test_only_id_observations_make_a_token_spec():
    ids = envs.check_config(PPOConfig(**TINY))
    assert ids.obs_vocab == tokens.PAD + 1 and ids.obs_shape == (tokens.LENGTH,)
    assert envs.check_config(PPOConfig(env_id="ppo_jax.envs.tokens:Fluency")).obs_vocab == 0
    assert envs.check_config(PPOConfig()).obs_vocab == 0


def _networks_and_params(seed=0):
    config = PPOConfig(**TINY)
    spec = envs.check_config(config)
    nets = networks.networks_from_config(config, spec)
    params = nets.init(jax.random.PRNGKey(seed))
    # non-zero heads, so that the value is a real function of the input too
    params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(1), p.shape), params)
    sizes = TransformerConfig(
        spec.obs_vocab, tokens.LENGTH, config.d_model, config.num_layers, config.num_heads
    )
    return nets, params, TokenActorCritic(sizes, spec.action_dim)


def test_a_later_token_never_changes_an_earlier_position():
    nets, params, module = _networks_and_params()
    rng = np.random.default_rng(0)
    base = rng.integers(0, tokens.BOS, (4, tokens.LENGTH))
    hidden = jax.jit(lambda x: module.apply(params, x.astype(jnp.int32), method=TokenActorCritic.hidden))
    for k in range(tokens.LENGTH - 1):
        changed = base.copy()
        changed[:, k + 1 :] = rng.integers(0, tokens.BOS, (4, tokens.LENGTH - k - 1))
        a, b = hidden(base), hidden(changed)
        np.testing.assert_allclose(a[:, : k + 1], b[:, : k + 1], rtol=1e-5, atol=1e-6)
        assert np.abs(np.asarray(a[:, k + 1 :] - b[:, k + 1 :])).max() > 1e-3  # later ones do change


def test_the_policy_reads_the_last_written_position():
    """apply on ``[BOS, w_0 … w_{k-1}, PAD …]`` (floats, as the vectorized env gives them) equals the
    heads at position k of the whole sentence: the PADs after it do not matter."""
    nets, params, module = _networks_and_params()
    rng = np.random.default_rng(1)
    full = np.concatenate(
        [np.full((5, 1), tokens.BOS), rng.integers(0, tokens.BOS, (5, tokens.LENGTH - 1))], 1
    )
    hidden = module.apply(params, jnp.asarray(full, jnp.int32), method=TokenActorCritic.hidden)
    p = jax.tree.map(np.asarray, params["params"])
    apply = jax.jit(nets.apply)
    for k in range(tokens.LENGTH):
        obs = np.where(np.arange(tokens.LENGTH) <= k, full, tokens.PAD).astype(np.float32)
        dist, value = apply(params, obs)
        h = np.asarray(hidden[:, k], np.float64)
        logits = h @ p["policy_head"]["kernel"] + p["policy_head"]["bias"]
        v = h @ p["value_head"]["kernel"][:, 0] + p["value_head"]["bias"][0]
        np.testing.assert_allclose(dist.logits, logits, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(value, v, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(nets.value(params, obs[None]), v[None], rtol=1e-4, atol=1e-5)


def test_a_fresh_value_head_is_zero():
    config = PPOConfig(**TINY)
    nets = networks.networks_from_config(config, envs.check_config(config))
    params = nets.init(jax.random.PRNGKey(0))
    obs = jnp.full((3, tokens.LENGTH), tokens.PAD, jnp.float32).at[:, 0].set(tokens.BOS)
    np.testing.assert_array_equal(nets.value(params, obs), np.zeros(3))


def test_vmapped_seeds_equal_single_runs_and_params_stay_finite():
    config = ppo_jax.load_config(None, **TINY)
    assert config.num_updates == 2
    train = ppo_jax.make_train(config)
    keys = seed_keys([0, 1])
    batched_state, batched = jax.jit(jax.vmap(train))(keys)
    for leaf in jax.tree_util.tree_leaves(batched_state.params):
        assert np.all(np.isfinite(leaf))
    state, single = jax.jit(train)(keys[1])
    for x, y in zip(jax.tree_util.tree_leaves(batched), jax.tree_util.tree_leaves(single)):
        np.testing.assert_allclose(
            np.asarray(x[1], np.float64), np.asarray(y, np.float64), rtol=1e-4, atol=1e-5
        )
    for x, y in zip(jax.tree_util.tree_leaves(batched_state.params), jax.tree_util.tree_leaves(state.params)):
        np.testing.assert_allclose(x[1], y, rtol=1e-4, atol=1e-5)
    assert not np.allclose(batched_state.params["params"]["value_head"]["kernel"], 0.0)  # it learned


@pytest.mark.parametrize(
    "changes, says",
    [
        (dict(env_id="CartPole-v1", env_kwargs={}), "needs token-id observations"),
        (dict(env_kwargs={}), "env_kwargs: {obs: ids}"),
        (dict(recurrent="gru"), "takes no recurrent core"),
        (dict(normalize_obs=True), "normalize_obs: false"),
        (dict(num_heads=3), "'num_heads' = 3 must divide 'd_model' = 16"),
        (dict(d_model=0), "'d_model' must be a positive integer"),
        (dict(network="attention"), "'mlp', 'cnn' or 'transformer'"),
    ],
)
def test_bad_configs_are_refused_with_what_would_fit(changes, says):
    with pytest.raises(ConfigError, match="config: ") as err:
        validate(PPOConfig(**{**TINY, **changes}))
    assert says in str(err.value)


def test_the_cli_refuses_a_transformer_on_cartpole_before_compiling(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "ppo_jax.cli", "train", "--env", "CartPole-v1", "--set", "network=transformer"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "needs token-id observations" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_the_compile_cache_keys_the_transformer_sizes():
    """They are static settings, so they enter the key (shown on CartPole: a user env's code,
    the token env's included, is never keyed, so its programs are never cached)."""
    from ppo_jax.compile_cache import config_key

    assert config_key(PPOConfig(**TINY)) is None
    a = config_key(PPOConfig())
    assert a is not None
    for name, value in (("d_model", 32), ("num_layers", 3), ("num_heads", 8)):
        assert config_key(PPOConfig(**{name: value})) != a
