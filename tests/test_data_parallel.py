"""Data-parallel training of one agent: its envs and minibatches split over
devices (``ChunkedRun(data_parallel=D)``, ``sharding.EnvShards``).

The pooled statistics and the averaged update are checked against the whole
batch with ``vmap(axis_name=...)``, whose collectives mean the same as
``shard_map``'s; the run itself on one device against the seed-split program,
and on two forced host devices in a subprocess.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppo_jax import core
from ppo_jax.config import ConfigError, PPOConfig
from ppo_jax.sharding import EnvShards
from ppo_jax.train import build, check_shards
from ppo_jax.update import Batch, UpdateOptions, make_optimizer, update

ROOT = Path(__file__).parent.parent
AXIS = "envs"


def _shares(x, count=2):
    """``x`` [N, ...] as ``count`` equal shares [count, N / count, ...]."""
    return x.reshape((count, -1) + x.shape[1:])


def test_pooled_moments_over_shares_equal_the_whole():
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 3)) * 3.0 + 1.0
    mean, var = jax.vmap(lambda s: core.pooled_moments(s, (0,), AXIS), axis_name=AXIS)(_shares(x))
    np.testing.assert_allclose(mean[0], np.mean(np.asarray(x), 0), rtol=1e-5)
    np.testing.assert_allclose(var[1], np.var(np.asarray(x), 0), rtol=1e-5)
    # the pooled variance is not the mean of the shares' variances (they differ in mean)
    shifted = x.at[:32].add(5.0)
    _, var = jax.vmap(lambda s: core.pooled_moments(s, (0,), AXIS), axis_name=AXIS)(_shares(shifted))
    np.testing.assert_allclose(var[0], np.var(np.asarray(shifted), 0), rtol=1e-5)


def test_normalize_advantages_and_rms_and_ev_over_shares():
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    adv = jax.random.normal(keys[0], (32,)) + jnp.arange(32.0) / 8
    whole = core.normalize_advantages(adv)
    split = jax.vmap(lambda a: core.normalize_advantages(a, axis_name=AXIS), axis_name=AXIS)(_shares(adv))
    np.testing.assert_allclose(split.reshape(-1), whole, rtol=1e-5, atol=1e-6)

    obs = (
        jax.random.normal(keys[1], (8, 6, 4)) * 2 + jnp.arange(6.0)[None, :, None]
    )  # [T, B, F], envs on axis 1
    state = core.rms_update(core.rms_init((4,)), jnp.ones((3, 4)))
    whole = core.rms_update(state, obs)
    split = jax.vmap(lambda o: core.rms_update(state, o, AXIS), in_axes=1, axis_name=AXIS)(
        obs.reshape(8, 2, 3, 4)
    )
    for a, b in zip(whole, split):
        np.testing.assert_allclose(b[0], a, rtol=1e-5)
        np.testing.assert_allclose(b[1], a, rtol=1e-5)

    value, target = jax.random.normal(keys[2], (2, 40))
    whole = core.explained_variance(value, target + value)
    split = jax.vmap(lambda v, t: core.explained_variance(v, t, AXIS), axis_name=AXIS)(
        _shares(value), _shares(target + value)
    )
    np.testing.assert_allclose(split, [whole, whole], rtol=1e-5)


def _batch(key, networks, n):
    keys = jax.random.split(key, 5)
    return Batch(
        obs=jax.random.normal(keys[0], (n, 4)),
        action=jax.random.randint(keys[1], (n,), 0, 2),
        log_prob=jnp.log(jax.random.uniform(keys[2], (n,), minval=0.3, maxval=0.7)),
        value=jax.random.normal(keys[3], (n,)),
        advantage=jax.random.normal(keys[4], (n,)) * 2 + 0.5,
        target=jax.random.normal(keys[3], (n,)) * 3,
    )


def test_update_over_shares_equals_the_whole_minibatch():
    """One minibatch (its order then does not matter): the averaged update on two
    shares is the update on the whole, the clipping (max_grad_norm well below the
    gradient's norm) applied to the average."""
    config = PPOConfig(
        env_id="CartPole-v1", num_envs=4, num_steps=16, num_minibatches=1, update_epochs=2, max_grad_norm=0.05
    )
    program = build(config)
    hp = config.hyperparams()
    params = program.networks.init(jax.random.PRNGKey(2))
    tx = make_optimizer(hp.max_grad_norm)
    batch = _batch(jax.random.PRNGKey(3), program.networks, 64)

    def run(b, axis_name):
        options = UpdateOptions.from_config(config, axis_name)
        return update(
            jax.random.PRNGKey(4),
            params,
            tx.init(params),
            b,
            hp,
            1e-3,
            tx=tx,
            networks=program.networks,
            options=options,
        )

    whole_params, _, whole_metrics = jax.jit(lambda b: run(b, None))(batch)
    split_params, _, split_metrics = jax.jit(jax.vmap(lambda b: run(b, AXIS), axis_name=AXIS))(
        jax.tree.map(_shares, batch)
    )
    for a, b in zip(jax.tree.leaves(whole_params), jax.tree.leaves(split_params)):
        np.testing.assert_array_equal(b[0], b[1])  # the same on every device
        np.testing.assert_allclose(b[0], a, rtol=2e-5, atol=2e-6)
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm"):
        np.testing.assert_allclose(split_metrics[name], [whole_metrics[name]] * 2, rtol=1e-4, err_msg=name)


def test_check_shards():
    config = PPOConfig(env_id="CartPole-v1", num_envs=8, num_steps=32, num_minibatches=4)
    assert check_shards(config, None) == 8
    assert check_shards(config, EnvShards(2)) == 4
    with pytest.raises(ConfigError, match="num_envs divisible by 3"):
        check_shards(config, EnvShards(3))
    with pytest.raises(ConfigError, match="equal shares"):
        check_shards(config.replace(num_envs=4, num_steps=2, num_minibatches=8), EnvShards(2))


TINY = dict(
    env_id="CartPole-v1", total_timesteps=4096, num_envs=8, num_steps=32, num_minibatches=4, update_epochs=2
)


def test_one_device_equals_the_seed_split_program():
    from ppo_jax.driver import ChunkedRun

    config = PPOConfig(**TINY)
    results = []
    for data_parallel in (None, 1):
        run = ChunkedRun(config, [7], data_parallel=data_parallel, target_chunks=2)
        results.append(run.run(run.compile()))
    (state_a, metrics_a), (state_b, metrics_b) = results
    for a, b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
    for name in ("episode_return", "episodes", "policy_loss", "grad_norm", "explained_variance"):
        np.testing.assert_allclose(metrics_b[name], metrics_a[name], rtol=1e-4, atol=1e-6, err_msg=name)


TWO_DEVICES = """
import jax, numpy as np
from ppo_jax.config import PPOConfig
from ppo_jax.driver import ChunkedRun
assert len(jax.devices()) == 2
config = PPOConfig(**{tiny}).replace(total_timesteps=40960, normalize_obs=True)
run = ChunkedRun(config, [0, 1], data_parallel=2, target_chunks=4)
state, metrics = run.run(run.compile())
assert run.mesh.size == 2 and state.env.obs.shape == (2, 8, 4)
for name, tree in (("params", state.params), ("opt_state", state.opt_state), ("norm", state.norm.obs)):
    for leaf in jax.tree.leaves(tree):
        shards = [np.asarray(s.data) for s in leaf.addressable_shards]
        assert len(shards) == 2 and np.array_equal(shards[0], shards[1]), name
obs = [np.asarray(s.data) for s in state.env.obs.addressable_shards]
assert obs[0].shape == (2, 4, 4) and not np.array_equal(obs[0], obs[1])  # each device its own envs
assert np.all(metrics["nonfinite"] == 0)
returns = metrics["episode_return"]
early, late = np.nanmean(returns[:, :10]), np.nanmean(returns[:, -10:])
print("early", early, "late", late)
assert late > 2 * early and late > 100, (early, late)
"""


def test_two_devices_keep_one_agent_and_learn():
    code = textwrap.dedent(TWO_DEVICES).format(tiny=TINY)
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "XLA_FLAGS": flags, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _cli(tmp_path, *args):
    env = {**os.environ, "PPO_JAX_NO_CACHE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ppo_jax.cli",
            "train",
            "configs/cartpole.yaml",
            "--cpu-devices",
            "2",
            "--out",
            str(tmp_path / "run"),
            "--no-tensorboard",
            "--no-progress",
            "--set",
            "total_timesteps=1024",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_cli_data_parallel(tmp_path):
    import json

    result = _cli(tmp_path, "--data-parallel", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data-parallel: 4 envs on each of 2 devices" in result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data_parallel"] == 2 and summary["devices"] == 2


def test_cli_data_parallel_refuses_uneven_split(tmp_path):
    result = _cli(tmp_path, "--data-parallel", "2", "--set", "num_envs=3", "--set", "num_minibatches=1")
    assert result.returncode != 0 and "num_envs divisible by 2" in result.stderr
    result = _cli(tmp_path, "--data-parallel", "4")
    assert result.returncode != 0 and "this process has 2 device(s)" in result.stderr
