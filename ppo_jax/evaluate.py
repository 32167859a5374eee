"""Evaluate a trained policy: whole episodes, in parallel, inside one jit.

Each of ``num_episodes`` environments plays exactly its first episode; the
loop ends when every one has ended (terminated or cut by the time limit).
"""

from __future__ import annotations

import functools
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax.envs import VecEnv
from ppo_jax.runs import Act, LoadedRun, PolicyParams


def play_episodes(
    act: Act,
    params: PolicyParams,
    vec_env: VecEnv,
    key: chex.PRNGKey,
    num_episodes: int,
    stochastic: bool = False,
    initial_carry=None,
) -> tuple[chex.Array, chex.Array]:
    """Returns and lengths ``[num_episodes]`` of one episode per env.

    ``stochastic`` (static) samples actions; otherwise the distribution's mode.
    Returns are undiscounted sums of the env's raw rewards. A recurrent policy
    gets ``initial_carry`` (its ``initial_carry`` function): each env plays one
    episode, so the carry starts there and is never reset.
    """
    key_reset, key_loop = jax.random.split(key)
    env_state = vec_env.reset(key_reset, num_episodes)
    max_steps = vec_env.spec.max_episode_steps

    def cond(carry):
        t, _, _, finished, _, _, _ = carry
        return jnp.logical_and(t <= max_steps, ~jnp.all(finished))

    def body(carry):
        t, key, env_state, finished, returns, lengths, memory = carry
        key, key_action, key_env = jax.random.split(key, 3)
        key_action = key_action if stochastic else None
        if initial_carry is None:
            action = act(params, env_state.obs, key_action, env_state.action_mask)
        else:
            action, memory = act(params, env_state.obs, memory, key_action, action_mask=env_state.action_mask)
        env_state, result = vec_env.step(key_env, env_state, action)
        ended = (result.terminated | result.truncated) & ~finished
        returns = jnp.where(ended, result.episode_return, returns)
        lengths = jnp.where(ended, result.episode_length, lengths)
        return t + 1, key, env_state, finished | ended, returns, lengths, memory

    init = (
        jnp.asarray(0, jnp.int32),
        key_loop,
        env_state,
        jnp.zeros((num_episodes,), bool),
        jnp.zeros((num_episodes,), jnp.float32),
        jnp.zeros((num_episodes,), jnp.int32),
        None if initial_carry is None else initial_carry((num_episodes,)),
    )
    _, _, _, _, returns, lengths, _ = jax.lax.while_loop(cond, body, init)
    return returns, lengths


@functools.lru_cache(maxsize=16)
def _evaluator(act: Act, vec_env: VecEnv, num_episodes: int, stochastic: bool, initial_carry=None):
    """``evaluate(params[seeds], key) -> (returns, lengths)[seeds, episodes]``, jitted once per policy."""

    def one_seed(params, key):
        return play_episodes(act, params, vec_env, key, num_episodes, stochastic, initial_carry)

    return jax.jit(jax.vmap(one_seed, in_axes=(0, None)))


def evaluate_run(
    run: LoadedRun, num_episodes: int = 100, stochastic: bool = False, seed: int = 0
) -> dict[str, Any]:
    """Evaluate every training seed of ``run`` on the same ``num_episodes`` env
    resets (``PRNGKey(seed)``); return a JSON-ready dict of the returns."""
    initial_carry = run.networks.initial_carry if run.recurrent else None
    evaluate = _evaluator(run.act, run.vec_env, num_episodes, stochastic, initial_carry)
    returns, lengths = jax.device_get(evaluate(run.params, jax.random.PRNGKey(seed)))
    returns = np.asarray(returns, np.float64)
    per_seed = [
        {
            "seed": s,
            "mean": float(returns[i].mean()),
            "std": float(returns[i].std()),
            "mean_length": float(np.mean(lengths[i])),
            "returns": [float(x) for x in returns[i]],
        }
        for i, s in enumerate(run.seeds)
    ]
    seed_means = returns.mean(axis=1)
    return {
        "env_id": run.config.env_id,
        "update": run.update,
        "env_steps": run.update * run.config.batch_size,
        "episodes": num_episodes,
        "actions": "stochastic" if stochastic else "deterministic",
        "eval_seed": seed,
        "obs_normalization": "saved statistics (frozen)" if run.config.normalize_obs else "off",
        "mean": float(seed_means.mean()),
        "std_between_seeds": float(seed_means.std()),
        "std_all_episodes": float(returns.std()),
        "per_seed": per_seed,
    }


def first_episode_actions(
    run: LoadedRun, seed: int, num_episodes: int, stochastic: bool = False, key_seed: int = 0
) -> list[np.ndarray]:
    """The actions of one episode per env (``num_episodes`` envs), played by the policy of
    training seed ``seed``; each trimmed to its episode's length. For a token env these
    are the sentences the policy writes. Feed-forward policies only."""
    vec_env, params = run.vec_env, run.params_of(seed)
    max_steps = vec_env.spec.max_episode_steps
    act, step = jax.jit(run.act), jax.jit(vec_env.step)
    key_reset, key = jax.random.split(jax.random.PRNGKey(key_seed))
    env_state = vec_env.reset(key_reset, num_episodes)
    actions, ended = [], np.zeros(num_episodes, bool)
    lengths = np.full(num_episodes, max_steps)
    for t in range(max_steps):
        key, key_action, key_env = jax.random.split(key, 3)
        action = act(params, env_state.obs, key_action if stochastic else None, env_state.action_mask)
        env_state, result = step(key_env, env_state, action)
        actions.append(np.asarray(action))
        done = np.asarray(result.terminated | result.truncated) & ~ended
        lengths[done] = t + 1
        ended |= done
        if ended.all():
            break
    stacked = np.stack(actions, axis=1)
    return [stacked[i, : lengths[i]] for i in range(num_episodes)]
