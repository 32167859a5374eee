"""VecEnv against gymnax itself: the same transitions as gymnax's own step."""

import jax
import numpy as np
import pytest

from ppo_jax.envs import VecEnv

ENVS = ["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "Asterix-MinAtar"]


def same(ours, theirs):
    """Exact for integers and booleans; floats to one or two ulps (the two
    paths are compiled in different fusions)."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if np.issubdtype(theirs.dtype, np.floating):
        np.testing.assert_allclose(ours, theirs.astype(ours.dtype), rtol=2e-6, atol=1e-7)
    else:
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("env_id", ENVS)
def test_step_with_matches_gymnax_step(env_id):
    """``step_with`` with keys and resets drawn outside is gymnax's ``step``:
    gymnax splits each env's key into (step key, reset key); we hand over the
    same two, and every output must agree over many steps, through resets."""
    vec = VecEnv(env_id)
    env, params = vec.env, vec.params
    num_envs, num_steps = 3, 60
    state = vec.reset(jax.random.PRNGKey(0), num_envs)

    @jax.jit
    def both(key, state, gym_state):
        keys = jax.random.split(key, num_envs)
        if vec.spec.discrete:
            action = jax.random.randint(jax.random.fold_in(key, 1), (num_envs,), 0, vec.spec.action_dim)
        else:
            action = jax.random.uniform(
                jax.random.fold_in(key, 1), (num_envs, vec.spec.action_dim), minval=-3, maxval=3
            )
        gym = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, gym_state, vec.to_env_action(action), params)
        split = jax.vmap(jax.random.split)(keys)  # what gymnax does with each key
        ours = vec.step_with(split[:, 0], vec.reset_states(split[:, 1]), state, action)
        return gym, ours

    ended = 0
    for t in range(num_steps):
        (obs, gym_state, reward, terminated, truncated, info), (state, result) = both(
            jax.random.PRNGKey(100 + t), state, state.env_state
        )  # both paths step from the same state, so chaotic envs (Acrobot) cannot drift apart
        same(state.obs, np.asarray(obs, np.float32))
        for ours, theirs in zip(jax.tree.leaves(state.env_state), jax.tree.leaves(gym_state)):
            same(ours, theirs)
        same(result.reward, np.asarray(reward, np.float32))
        np.testing.assert_array_equal(result.terminated, np.asarray(terminated, bool))
        np.testing.assert_array_equal(
            result.truncated, np.asarray(truncated, bool) & ~np.asarray(terminated, bool)
        )
        same(result.final_obs, np.asarray(info["final_observation"], np.float32))
        ended += int(np.sum(np.asarray(terminated) | np.asarray(truncated)))
    if env_id == "CartPole-v1":
        assert ended > 0  # random actions end CartPole episodes within 60 steps: resets were exercised


def test_reset_states_any_batch_shape():
    vec = VecEnv("CartPole-v1")
    obs, state = vec.reset_states(jax.random.split(jax.random.PRNGKey(0), (5, 3)))
    assert obs.shape == (5, 3, 4)
    assert all(leaf.shape[:2] == (5, 3) for leaf in jax.tree.leaves(state))
    # distinct keys, distinct episodes
    assert len(np.unique(np.asarray(obs).reshape(15, 4), axis=0)) == 15


def test_env_with_own_step_is_refused():
    """``VecEnv.step_with`` reimplements gymnax's ``Environment.step``, so a user env whose own
    ``step`` does more would have that skipped silently: it is refused before anything compiles."""
    import gymnax
    from gymnax.environments.environment import Environment

    import ppo_jax
    from ppo_jax.config import ConfigError

    cartpole, _ = gymnax.make("CartPole-v1")

    class LoggingCartPole(type(cartpole)):
        def step(self, key, state, action, params=None):
            return super().step(key, state, action, params)

    config = ppo_jax.PPOConfig(env_id="mine", num_envs=2, num_steps=8, total_timesteps=16, num_minibatches=1)
    with pytest.raises(ConfigError, match="LoggingCartPole overrides Environment.step"):
        ppo_jax.build(config, env=LoggingCartPole())
    ppo_jax.build(config, env=type(cartpole)())  # the same class without its own step trains
    # The built-in envs checked above use Environment.step itself, so step_with is theirs.
    assert all(type(VecEnv(env_id).env).step is Environment.step for env_id in ENVS)
