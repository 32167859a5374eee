"""make_train: vmapped seeds equal single runs, the chunked driver equals one
train(key), metrics are well-formed, and the env wrapper keeps truncation apart."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppo_jax
from ppo_jax.driver import ChunkedRun, chunk_plan, seed_keys
from ppo_jax.envs import VecEnv

TINY = dict(total_timesteps=4 * 32 * 6, num_envs=4, num_steps=32, update_epochs=2, num_minibatches=2)


def _close(a, b):
    """Equal to float32 rounding, compounded over a few updates. A batched and an
    unbatched program round their matmuls differently (one ulp); Adam carries that
    forward, and metrics that are differences of nearly equal numbers (explained
    variance, the policy loss of normalized advantages) show it magnified.
    A real difference in what is computed shows up at O(1)."""
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_vmapped_seed_matches_single_run(env_id):
    extra = dict(normalize_obs=True, normalize_reward=True) if env_id == "Pendulum-v1" else {}
    config = ppo_jax.load_config(None, env_id=env_id, **TINY, **extra)
    train = ppo_jax.make_train(config)
    keys = seed_keys([0, 1, 2])
    batched_state, batched = jax.jit(jax.vmap(train))(keys)
    for i in (0, 2):
        state, single = jax.jit(train)(keys[i])
        _close(jax.tree.map(lambda x, i=i: x[i], batched), single)
        _close(jax.tree.map(lambda x, i=i: x[i], batched_state.params), state.params)


def test_chunked_driver_matches_one_train_call():
    config = ppo_jax.load_config(None, **TINY)
    run = ChunkedRun(config, seeds=[3, 4], target_chunks=3)
    assert run.plan == [2, 2, 2]
    state, metrics = run.run(run.compile())
    ref_state, ref = jax.jit(jax.vmap(ppo_jax.make_train(config)))(seed_keys([3, 4]))
    _close(ref, {name: metrics[name] for name in ref})
    np.testing.assert_array_equal(
        metrics["env_steps"][1], config.batch_size * np.arange(1, config.num_updates + 1)
    )
    _close(ref_state.params, state.params)


def test_metrics_shapes_and_values():
    config = ppo_jax.load_config(None, **TINY)
    _, metrics = jax.jit(ppo_jax.make_train(config))(jax.random.PRNGKey(0))
    assert set(metrics) == set(ppo_jax.METRIC_NAMES)
    for name, value in metrics.items():
        assert value.shape == (config.num_updates,), name
    lr = np.asarray(metrics["learning_rate"])
    np.testing.assert_allclose(
        lr, config.learning_rate * (1 - np.arange(config.num_updates) / config.num_updates), rtol=1e-6
    )
    assert np.all(np.asarray(metrics["minibatch_updates"]) == config.update_epochs * config.num_minibatches)
    assert np.all(np.asarray(metrics["approx_kl"]) >= 0)
    assert np.all(np.asarray(metrics["nonfinite"]) == 0)
    # CartPole with a random-ish policy ends episodes in every rollout of 128 steps.
    assert np.all(np.asarray(metrics["episodes"]) > 0)
    np.testing.assert_allclose(metrics["episode_return"], metrics["episode_length"])


def test_target_kl_masks_remaining_minibatches():
    config = ppo_jax.load_config(None, **TINY, target_kl=1e-9, learning_rate=1e-2)
    _, metrics = jax.jit(ppo_jax.make_train(config))(jax.random.PRNGKey(0))
    applied = np.asarray(metrics["minibatch_updates"])
    assert np.all(applied >= 1)
    assert np.all(applied < config.update_epochs * config.num_minibatches)


def test_hyperparams_are_traced_arguments():
    config = ppo_jax.load_config(None, **TINY)
    train = jax.jit(ppo_jax.make_train(config))
    hp = config.hyperparams()
    _, a = train(jax.random.PRNGKey(0), hp)
    _, b = train(jax.random.PRNGKey(0), hp.replace(learning_rate=jnp.float32(1e-3)))
    assert train._cache_size() == 1  # no recompilation for a new value
    assert not np.allclose(a["policy_loss"][1:], b["policy_loss"][1:])


@pytest.mark.parametrize("num_updates,expected_total", [(1, 1), (7, 7), (61, 61), (100, 100), (977, 977)])
def test_chunk_plan_covers_all_updates(num_updates, expected_total):
    plan = chunk_plan(num_updates)
    assert sum(plan) == expected_total
    assert len(set(plan)) <= 2


def test_truncation_is_kept_apart_from_termination():
    env = VecEnv("Pendulum-v1")  # never terminates; truncates at 200 steps
    state = env.reset(jax.random.PRNGKey(0), 2)
    step = jax.jit(env.step)
    action = jnp.zeros((2, 1))
    for t in range(200):
        pre_obs = state.obs
        state, result = step(jax.random.PRNGKey(t), state, action)
    assert not bool(result.terminated.any())
    assert bool(result.truncated.all())
    np.testing.assert_array_equal(result.episode_length, [200, 200])
    # final_obs is the successor before the reset, not the new episode's first obs
    assert not np.allclose(result.final_obs, state.obs)
    assert np.all(np.asarray(state.episode_length) == 0)
    del pre_obs


def test_continuous_actions_clipped_for_env_only():
    env = VecEnv("Pendulum-v1")
    np.testing.assert_array_equal(
        env.to_env_action(jnp.array([[5.0], [-7.0], [0.5]])), [[2.0], [-2.0], [0.5]]
    )


def test_rollout_bootstraps_truncated_steps_from_the_final_observation():
    """Pendulum only truncates (200 steps): every cut step is valued at its pre-reset
    observation (kept in the rollout's cut slots, and checked against a step-by-step
    replay of the same keys and actions), every other step at the next step's observation."""
    from ppo_jax.rollout import RolloutOptions, _scan_inputs, collect, cut_final_obs

    config = ppo_jax.load_config(
        None, env_id="Pendulum-v1", num_envs=2, num_steps=450, total_timesteps=900, num_minibatches=2
    )
    program = ppo_jax.build(config)
    state = program.init(jax.random.PRNGKey(0), config.hyperparams())
    options = RolloutOptions(num_steps=450, normalize_obs=False, normalize_reward=False)
    _, _, traj, episodes = jax.jit(
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
    )(state)
    done = np.asarray(traj.done)
    assert not np.asarray(traj.terminated).any()
    assert done.sum() == 4 and episodes.count == 4  # two episodes of 200 steps in each env
    assert traj.cut_obs.shape[:2] == (2, 3)  # ceil(450 / 200) slots per env, not 450
    # The replay: the same per-step randomness and the rollout's own actions, stepped one at a time.
    _, _, step_keys, resets = _scan_inputs(jax.random.PRNGKey(1), program.vec_env, options, 2)
    step = jax.jit(program.vec_env.step_with)
    env_state, finals = state.env, {}
    for t in range(450):
        per_step = jax.tree.map(lambda x, t=t: x[t], resets)
        env_state, result = step(step_keys[t], per_step, env_state, traj.action[t])
        for b in np.flatnonzero(np.asarray(result.truncated)):
            finals[(t, int(b))] = np.asarray(result.final_obs[b])
    ts, bs, final_obs = cut_final_obs(traj)
    assert sorted(zip(ts.tolist(), bs.tolist())) == sorted(finals) == sorted(zip(*np.nonzero(done)))
    for t, b, obs in zip(ts, bs, final_obs):
        np.testing.assert_array_equal(obs, finals[(int(t), int(b))])
        if t + 1 < 450:
            assert not np.allclose(obs, np.asarray(traj.obs)[t + 1, b])  # not the next episode's first obs
    next_value = np.asarray(traj.next_value)
    np.testing.assert_allclose(
        next_value[ts, bs], program.networks.value(state.params, jnp.asarray(final_obs)), rtol=1e-5, atol=1e-6
    )
    not_done = ~done[:-1]
    np.testing.assert_allclose(
        next_value[:-1][not_done], np.asarray(traj.value)[1:][not_done], rtol=1e-5, atol=1e-6
    )
