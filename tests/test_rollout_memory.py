"""The rollout's memory choices change what is stored, never what is computed.

Binary images stored as uint8, reset states computed in the loop from pre-drawn
keys, and final observations kept only for the steps cut by the time limit give
the same trajectory, bit for bit, as storing everything as float32 for every step.
"""

import jax
import numpy as np
import pytest

import ppo_jax
from ppo_jax.envs import VecEnv
from ppo_jax.rollout import RolloutOptions, collect, cut_slots, rollout_options


def _collect(config, options):
    program = ppo_jax.build(config)
    state = program.init(jax.random.PRNGKey(0), config.hyperparams())
    run = jax.jit(
        lambda s: collect(
            jax.random.PRNGKey(1),
            s.params,
            s.env,
            s.norm,
            0.99,
            networks=program.networks,
            vec_env=program.vec_env,
            options=options,
        )
    )
    return jax.device_get(run(state))


def test_minatar_rollout_stores_uint8_images_and_computes_resets_in_the_loop():
    config = ppo_jax.load_config(
        None,
        env_id="Breakout-MinAtar",
        network="cnn",
        num_envs=4,
        num_steps=64,
        total_timesteps=256,
        num_minibatches=2,
    )
    options = rollout_options(config, VecEnv.from_config(config))
    assert options.obs_dtype == "uint8" and options.resets_in_loop
    wide = RolloutOptions(
        num_steps=64, normalize_obs=False, normalize_reward=False, reward_clip=config.reward_clip
    )
    env_a, norm_a, traj_a, stats_a = _collect(config, options)
    env_b, norm_b, traj_b, stats_b = _collect(config, wide)
    assert traj_a.obs.dtype == np.uint8 and traj_b.obs.dtype == np.float32
    np.testing.assert_array_equal(traj_a.obs.astype(np.float32), traj_b.obs)
    for name in ("action", "log_prob", "value", "reward", "terminated", "done", "next_value"):
        np.testing.assert_array_equal(getattr(traj_a, name), getattr(traj_b, name), err_msg=name)
    for x, y in zip(jax.tree.leaves((env_a, stats_a)), jax.tree.leaves((env_b, stats_b))):
        np.testing.assert_array_equal(x, y)
    assert traj_a.done.any()  # episodes ended, so resets were used


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_classic_control_keeps_float32_and_pre_drawn_resets(env_id):
    config = ppo_jax.load_config(None, env_id=env_id)
    options = rollout_options(config, VecEnv.from_config(config))
    assert options.obs_dtype is None and not options.resets_in_loop


def test_normalized_observations_are_never_stored_narrow():
    config = ppo_jax.load_config(None, env_id="Breakout-MinAtar", network="cnn", normalize_obs=True)
    assert rollout_options(config, VecEnv.from_config(config)).obs_dtype is None


@pytest.mark.parametrize("num_steps,limit,slots", [(128, 500, 1), (450, 200, 3), (400, 200, 2), (7, 1, 7)])
def test_cut_slots_hold_every_cut_an_env_can_have(num_steps, limit, slots):
    assert cut_slots(num_steps, limit) == slots
    # the most cuts one env can have in num_steps steps: one every `limit` steps, the first at any offset
    most = max(len(range(offset, num_steps, limit)) for offset in range(min(limit, num_steps)))
    assert most == slots
