"""reward_clip bounds the scaled rewards (normalize_reward) and nothing else."""

import jax
import numpy as np
import pytest

import ppo_jax
from ppo_jax.config import ConfigError, PPOConfig
from ppo_jax.rollout import RolloutOptions, collect


def test_default_is_cleanrls_ten_and_bad_values_are_refused():
    assert PPOConfig().reward_clip == 10.0
    assert ppo_jax.load_config(None, reward_clip=None).reward_clip is None
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(ConfigError, match="reward_clip"):
            ppo_jax.load_config(None, reward_clip=bad)


def test_scaled_rewards_are_clipped_to_the_bound():
    config = ppo_jax.load_config(
        None,
        env_id="Pendulum-v1",
        num_envs=2,
        num_steps=64,
        total_timesteps=128,
        num_minibatches=2,
        normalize_reward=True,
    )
    program = ppo_jax.build(config)
    state = program.init(jax.random.PRNGKey(0), config.hyperparams())

    def rewards(clip):
        options = RolloutOptions(num_steps=64, normalize_obs=False, normalize_reward=True, reward_clip=clip)
        _, _, traj, _ = collect(
            jax.random.PRNGKey(1),
            state.params,
            state.env,
            state.norm,
            0.99,
            networks=program.networks,
            vec_env=program.vec_env,
            options=options,
        )
        return np.asarray(traj.reward)

    scaled = rewards(None)
    bound = float(np.median(np.abs(scaled)))  # about half of the rewards lie beyond it
    clipped = rewards(bound)
    np.testing.assert_allclose(clipped, np.clip(scaled, -bound, bound), rtol=1e-6)
    assert (np.abs(scaled) > bound).sum() > 10
