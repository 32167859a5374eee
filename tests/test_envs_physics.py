"""The Brax, MuJoCo Playground and Craftax adapters against their suites' own step.

Each test plays random actions on a few envs through gymnax's ``Environment.step``
on our adapter (the step ``VecEnv.step_with`` reproduces: ``step_env``, the time
limit, the reset, the final observation) and, with the same keys and actions,
the suite's own step without its auto-reset, resetting by hand where an episode
ends. Compared: observations (after the reset and the final one before it),
rewards, terminated vs truncated, episode returns and lengths — over episodes
that end both ways (a short time limit forces truncations).

Skipped where the suite's extra is not installed. These suites compile slowly
on a CPU (Brax and Craftax: tens of seconds each), so the envs and steps are few.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest


def _reset_key(step_key):
    """The key gymnax's ``Environment.step`` resets with."""
    return jax.random.split(step_key)[1]


def _where(done, new, old):
    return jax.tree.map(
        lambda a, b: jnp.where(done.reshape(done.shape + (1,) * (a.ndim - done.ndim)), a, b), new, old
    )


def _play_ours(env, params, reset_keys, step_keys, actions, start=None):
    """Our adapter through gymnax's ``step``; ``start`` may edit the first states."""

    def run(reset_keys, step_keys, actions):
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)
        if start is not None:
            state = start(state)

        def body(state, xs):
            keys, action = xs
            obs, state, reward, terminated, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                keys, state, action, params
            )
            return state, (obs, reward, terminated, truncated, info["final_observation"])

        return obs, jax.lax.scan(body, state, (step_keys, actions))[1]

    return jax.device_get(jax.jit(run)(reset_keys, step_keys, actions))


def _episodes(reward, done):
    """``[(env, last step, return, length)]`` of the episodes that ended, by plain loops."""
    steps, envs = reward.shape
    out, ret, length = [], np.zeros(envs), np.zeros(envs, int)
    for t in range(steps):
        for b in range(envs):
            ret[b] += reward[t, b]
            length[b] += 1
            if done[t, b]:
                out.append((b, t, ret[b], length[b]))
                ret[b], length[b] = 0.0, 0
    return sorted(out)


def _compare(ours, ref, tol=1e-4):
    obs0, (obs, reward, terminated, truncated, final_obs) = ours
    ref_obs0, (ref_obs, ref_reward, ref_terminated, ref_truncated, ref_final_obs) = ref
    np.testing.assert_allclose(obs0, ref_obs0, rtol=tol, atol=tol)
    np.testing.assert_array_equal(terminated, ref_terminated)
    np.testing.assert_array_equal(truncated, ref_truncated)
    np.testing.assert_allclose(reward, ref_reward, rtol=tol, atol=tol)
    np.testing.assert_allclose(final_obs, ref_final_obs, rtol=tol, atol=tol)
    np.testing.assert_allclose(obs, ref_obs, rtol=tol, atol=tol)
    assert terminated.any() and truncated.any(), "the episodes should end both ways"
    assert not (terminated & truncated).any()
    # Where an episode goes on, the final observation is the next one.
    going_on = ~(terminated | truncated)
    np.testing.assert_array_equal(final_obs[going_on], obs[going_on])
    ours_episodes = _episodes(reward, terminated | truncated)
    ref_episodes = _episodes(ref_reward, ref_terminated | ref_truncated)
    assert [e[:2] + (e[3],) for e in ours_episodes] == [e[:2] + (e[3],) for e in ref_episodes]
    np.testing.assert_allclose(
        [e[2] for e in ours_episodes], [e[2] for e in ref_episodes], rtol=tol, atol=tol
    )
    return ours_episodes


def _keys_and_actions(seed, num_envs, num_steps, draw_action):
    key_reset, key_steps, key_actions = jax.random.split(jax.random.PRNGKey(seed), 3)
    reset_keys = jax.random.split(key_reset, num_envs)
    step_keys = jax.random.split(key_steps, num_steps * num_envs).reshape(num_steps, num_envs, -1)
    return reset_keys, step_keys, draw_action(key_actions, (num_steps, num_envs))


def _play_brax_shaped(raw, episode_length, reset_keys, step_keys, actions, start=None):
    """The suite's own step: Brax's ``EpisodeWrapper`` (time limit, ``truncation``, episode
    metrics) on the raw env, reset by hand where ``done`` (no auto-reset, so the final
    observation is kept). Returns the streams and Brax's own episode sums and lengths."""
    from brax.envs.wrappers.training import EpisodeWrapper

    ref = EpisodeWrapper(raw, episode_length, 1)

    def run(reset_keys, step_keys, actions):
        state = jax.vmap(ref.reset)(reset_keys)
        obs0 = state.obs
        if start is not None:
            state = start(state)

        def body(state, xs):
            keys, action = xs
            stepped = jax.vmap(ref.step)(state, action)
            done = stepped.done > 0.5
            truncated = stepped.info["truncation"] > 0.5
            fresh = jax.vmap(ref.reset)(jax.vmap(_reset_key)(keys))
            state = _where(done, fresh, stepped)
            metrics = stepped.info["episode_metrics"]
            return state, (
                (state.obs, stepped.reward, done & ~truncated, truncated, stepped.obs),
                (metrics["sum_reward"], metrics["length"], done),
            )

        _, (streams, sums) = jax.lax.scan(body, state, (step_keys, actions))
        return (obs0, streams), sums

    with jax.numpy_rank_promotion("allow"):  # the suite's code relies on it
        return jax.device_get(jax.jit(run)(reset_keys, step_keys, actions))


def _check_brax_episode_sums(episodes, sums):
    """Brax's own per-episode return and length equal ours."""
    sum_reward, length, done = sums
    brax_episodes = sorted((b, t, sum_reward[t, b], length[t, b]) for t, b in zip(*np.nonzero(done)))
    assert [(b, t, int(n)) for b, t, _, n in brax_episodes] == [(b, t, n) for b, t, _, n in episodes]
    np.testing.assert_allclose([e[2] for e in brax_episodes], [e[2] for e in episodes], rtol=1e-4, atol=1e-4)


def _uniform_actions(size):
    return lambda key, shape: jax.random.uniform(key, shape + (size,), minval=-1.0, maxval=1.0)


def test_brax_adapter_matches_brax_step():
    pytest.importorskip("brax")
    from ppo_jax.envs import brax as brax_adapter

    # inverted_pendulum ends (the pole falls) within tens of random steps; a limit of
    # 12 cuts the others. The spring backend compiles fastest on a CPU.
    env, params = brax_adapter.make("inverted_pendulum", backend="spring", episode_length=12)
    assert params.max_steps_in_episode == 12
    space = env.action_space(params)
    assert space.shape == (1,) and float(space.low) == -1.0 and float(space.high) == 1.0
    assert env.observation_space(params).shape == (4,)
    keys = _keys_and_actions(0, 4, 40, _uniform_actions(1))
    ours = _play_ours(env, params, *keys)
    ref, sums = _play_brax_shaped(env.inner, 12, *keys)
    episodes = _compare(ours, ref)
    _check_brax_episode_sums(episodes, sums)


def test_brax_make_refuses_bad_names_and_backends():
    pytest.importorskip("brax")
    from ppo_jax.envs import brax as brax_adapter

    with pytest.raises(ValueError, match="not one of Brax's environments.*ant"):
        brax_adapter.make("antt")
    with pytest.raises(
        ValueError, match="backend 'mujoco' is not one of mjx, generalized, positional, spring"
    ):
        brax_adapter.make("ant", backend="mujoco")


def test_playground_adapter_matches_playground_step():
    pytest.importorskip("mujoco_playground")
    from ppo_jax.envs import playground

    env, params = playground.make("CartpoleBalance", episode_length=10)
    assert params.max_steps_in_episode == 10
    assert env.inner._config.impl == "jax"
    assert env.action_space(params).shape == (1,)
    assert env.observation_space(params).shape == (5,)

    # CartpoleBalance ends only on a non-finite state; env 0 starts from one, so its
    # first episode terminates at its first step. The others are cut at 10 steps.
    def poison(suite_state):  # NaN velocities: env 0's of a batch, or every one of a single state
        return suite_state.replace(
            data=suite_state.data.replace(qvel=suite_state.data.qvel.at[0].set(jnp.nan))
        )

    def poison_one(suite_state):
        return suite_state.replace(
            data=suite_state.data.replace(qvel=jnp.full_like(suite_state.data.qvel, jnp.nan))
        )

    def start(state):
        if hasattr(state, "data"):  # the suite's own State
            return poison(state)
        poisoned = jax.vmap(lambda s: env._pack(poison_one(env.suite_state(s))))(state)  # every env
        # only env 0, as the reference's batched .at[0] does
        return state.replace(inner=jax.tree.map(lambda p, o: o.at[0].set(p[0]), poisoned, state.inner))

    keys = _keys_and_actions(1, 3, 25, _uniform_actions(1))
    ours = _play_ours(env, params, *keys, start=start)
    ref, sums = _play_brax_shaped(env.inner, 10, *keys, start=start)
    episodes = _compare(ours, ref)
    _check_brax_episode_sums(episodes, sums)
    assert ours[1][2][0, 0] and not ours[1][2][1:].any(), "only the poisoned start should terminate"


def test_playground_state_has_no_empty_arrays_for_checkpoints():
    """MJX keeps zero-size contact buffers, which orbax refuses to save: the adapter's state drops them."""
    pytest.importorskip("mujoco_playground")
    from ppo_jax.envs import playground

    env, params = playground.make("CartpoleBalance")
    with jax.numpy_rank_promotion("allow"):  # the suite's code relies on it
        suite = jax.eval_shape(env.inner.reset, jax.random.PRNGKey(0))
    assert any(leaf.size == 0 for leaf in jax.tree.leaves(suite))
    _, state = jax.eval_shape(env.reset_env, jax.random.PRNGKey(0), params)
    assert all(leaf.size > 0 for leaf in jax.tree.leaves(state))
    _, stepped, *_ = jax.eval_shape(env.step_env, jax.random.PRNGKey(1), state, jnp.zeros(1), params)
    assert jax.tree.structure(stepped) == jax.tree.structure(state)


def test_playground_make_refuses_warp_and_unknown_entries():
    pytest.importorskip("mujoco_playground")
    from ppo_jax.envs import playground

    with pytest.raises(ValueError, match="impl 'warp' is not supported"):
        playground.make("CartpoleBalance", impl="warp")
    with pytest.raises(ValueError, match="unknown config entries \\['episode_len'\\]"):
        playground.make("CartpoleBalance", episode_len=10)
    with pytest.raises(ValueError, match="not one of MuJoCo Playground's environments"):
        playground.make("CartPoleBalance")


def test_craftax_adapter_matches_craftax_step():
    pytest.importorskip("craftax")
    from craftax.craftax_classic.constants import BlockType
    from craftax.craftax_env import make_craftax_env_from_name

    from ppo_jax.envs import craftax

    limit = 60
    env, params = craftax.make("Craftax-Classic-Symbolic-v1", max_steps_in_episode=limit)
    assert craftax.make("Craftax-Classic-Symbolic-v1")[1].max_steps_in_episode == 10000  # Craftax's own
    assert env.action_space(params).n == 17
    raw = make_craftax_env_from_name("Craftax-Classic-Symbolic-v1", auto_reset=False)
    raw_params = raw.default_params.replace(max_timesteps=limit)

    def run_ref(reset_keys, step_keys, actions):
        obs0, state = jax.vmap(raw.reset_env, in_axes=(0, None))(reset_keys, raw_params)

        def body(state, xs):
            keys, action = xs
            step_keys = jax.vmap(lambda k: jax.random.split(k)[0])(keys)
            obs, stepped, reward, done, _ = jax.vmap(raw.step_env, in_axes=(0, 0, 0, None))(
                step_keys, state, action, raw_params
            )
            # Craftax's done folds its time limit in; the game's own endings are these.
            position = stepped.player_position
            in_lava = jax.vmap(lambda m, p: m[p[0], p[1]])(stepped.map, position) == BlockType.LAVA.value
            terminated = (stepped.player_health <= 0) | in_lava
            fresh_obs, fresh = jax.vmap(raw.reset_env, in_axes=(0, None))(
                jax.vmap(_reset_key)(keys), raw_params
            )
            state = _where(done, fresh, stepped)
            return state, (_where(done, fresh_obs, obs), reward, terminated, done & ~terminated, obs)

        return obs0, jax.lax.scan(body, state, (step_keys, actions))[1]

    keys = _keys_and_actions(0, 6, 130, lambda key, shape: jax.random.randint(key, shape, 0, 17))
    ours = _play_ours(env, params, *keys)
    with jax.numpy_rank_promotion("allow"):  # the suite's code relies on it
        ref = jax.device_get(jax.jit(run_ref)(*keys))
    _compare(ours, ref, tol=1e-6)


def test_craftax_make_refuses_unknown_names_and_settings():
    pytest.importorskip("craftax")
    from ppo_jax.envs import craftax

    with pytest.raises(ValueError, match="supported: Craftax-Classic-Symbolic-v1, Craftax-Symbolic-v1"):
        craftax.make("Craftax-Classic-Pixels-v2")
    with pytest.raises(ValueError, match="unknown settings \\['day_len'\\]"):
        craftax.make("Craftax-Classic-Symbolic-v1", day_len=3)


def test_craftax_max_timesteps_sets_the_time_limit():
    """Craftax's own name for the limit, through env_kwargs: the adapter cuts episodes at
    max_steps_in_episode (it steps Craftax with its limit lifted), so that is what it sets."""
    pytest.importorskip("craftax")
    import ppo_jax
    from ppo_jax.envs import VecEnv, craftax

    config = ppo_jax.load_config(
        None, env_id="craftax:Craftax-Classic-Symbolic-v1", env_kwargs={"max_timesteps": 40}
    )
    vec = VecEnv.from_config(config)
    assert vec.spec.max_episode_steps == 40 and vec.params.max_steps_in_episode == 40
    assert (
        craftax.make("Craftax-Classic-Symbolic-v1", max_timesteps=40, max_steps_in_episode=40)[
            1
        ].max_steps_in_episode
        == 40
    )
    with pytest.raises(ValueError, match="name the same time limit"):
        craftax.make("Craftax-Classic-Symbolic-v1", max_timesteps=40, max_steps_in_episode=50)
