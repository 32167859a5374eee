"""Collect ``T`` steps from ``B`` environments with a ``lax.scan``.

Output is time-major: every leaf of ``Transition`` is ``[T, B, ...]``.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp

from ppo_jax import core
from ppo_jax.core.distributions import Categorical, DiagGaussian, with_action_mask
from ppo_jax.envs import NormState, VecEnv, VecEnvState
from ppo_jax.finetune import Reference
from ppo_jax.networks import Networks


class Transition(NamedTuple):
    obs: chex.Array  # [T, B, *obs] as the networks saw it (normalized if on)
    action: chex.Array  # [T, B] int32 or [T, B, D] float32 (unclipped sample)
    log_prob: chex.Array  # [T, B] of the unclipped sample under the collecting policy
    value: chex.Array  # [T, B] V(s_t)
    reward: chex.Array  # [T, B] (scaled by the merged return statistics if on)
    terminated: chex.Array  # [T, B] bool: s'_t is terminal
    done: chex.Array  # [T, B] bool: the episode ended at t (terminated or truncated)
    final_obs: chex.Array  # [T, B, *obs] the true successor s'_t (normalized if on)
    next_value: chex.Array  # [T, B] V(s'_t); where s'_t is terminal, whatever (GAE ignores it)
    reward_raw: chex.Array  # [T, B] the env's reward, before the KL penalty and scaling
    kl_ref: chex.Array  # [T, B] log π(a_t|s_t) − log π_ref(a_t|s_t); 0 without a reference
    action_mask: Optional[chex.Array] = None  # [T, B, K] bool, valid actions at obs; None: env has no mask


class EpisodeStats(NamedTuple):
    """Sums over the episodes that finished during one rollout (scalars)."""

    count: chex.Array  # float32
    return_sum: chex.Array  # float32, raw undiscounted returns
    length_sum: chex.Array  # float32


class RolloutOptions(NamedTuple):
    """Static choices of the rollout."""

    num_steps: int
    normalize_obs: bool
    normalize_reward: bool
    reward_clip: Optional[float] = None  # bound on |scaled reward| (with normalize_reward); None: no bound


def _observe(norm: NormState, obs: chex.Array, enabled: bool) -> chex.Array:
    return core.normalize(norm.obs, obs) if enabled else obs


def _reference_log_prob(
    reference: Reference, networks: Networks, raw_obs: chex.Array, action: chex.Array, action_mask=None
):
    """log π_ref(a|s), the reference seeing s through its own frozen statistics
    and restricted to the same valid actions as the learner."""
    obs = raw_obs if reference.obs_norm is None else core.normalize(reference.obs_norm, raw_obs)
    dist, _ = networks.apply(reference.params, obs)
    return with_action_mask(dist, action_mask).log_prob(action)


def _next_values(
    traj: Transition, last_value: chex.Array, params, networks: Networks, vec_env: VecEnv
) -> chex.Array:
    """V(s'_t) for every step, ``[T, B]``, without a critic pass over every final observation.

    Where the episode goes on, s'_t is the next step's observation, whose value
    the rollout already has. Where it terminated, GAE does not bootstrap. Only
    steps cut by the time limit need the critic on their final observation, and
    an env is cut at most once per ``max_episode_steps`` steps (gymnax's
    ``is_truncated`` is ``time >= max_steps_in_episode``), so at most
    ``K = B · ceil(T / max_episode_steps)`` of them: those are gathered, valued
    and scattered back (CartPole, T = 128, B = 16: 16 rows instead of 2,048).
    """
    num_steps, num_envs = traj.value.shape
    following = jnp.concatenate([traj.value[1:], last_value[None]], axis=0)
    truncated = (traj.done & ~traj.terminated).reshape(-1)
    final_obs = traj.final_obs.reshape((num_steps * num_envs,) + traj.final_obs.shape[2:])
    capacity = num_envs * -(-num_steps // vec_env.spec.max_episode_steps)
    if capacity >= num_steps * num_envs:
        cut_values = networks.value(params, final_obs)
        return jnp.where(truncated, cut_values, following.reshape(-1)).reshape(num_steps, num_envs)
    rows = jnp.nonzero(truncated, size=capacity, fill_value=num_steps * num_envs)[0]
    cut_values = networks.value(params, jnp.take(final_obs, rows, axis=0, mode="clip"))
    return following.reshape(-1).at[rows].set(cut_values, mode="drop").reshape(num_steps, num_envs)


def draw_steps(key: chex.PRNGKey, vec_env: VecEnv, num_steps: int, num_envs: int):
    """The randomness of ``num_steps`` steps of ``num_envs`` envs, drawn at once.

    Returns the action noise ``[T, B, A]`` (for ``sample_from_noise``), the
    env step keys ``[T, B]`` and the reset states ``[T, B, ...]`` of every
    episode that may start, for ``VecEnv.step_with``. Drawn in batched calls so
    that no PRNG work (a loop of its own on XLA's CPU backend) runs inside a
    step loop; gymnax computes a reset in every step too, here they are
    computed together.
    """
    spec = vec_env.spec
    key_action, key_step, key_reset = jax.random.split(key, 3)
    noise_fn = Categorical.noise if spec.discrete else DiagGaussian.noise
    action_noise = noise_fn(key_action, (num_steps, num_envs, spec.action_dim))
    step_keys = jax.random.split(key_step, (num_steps, num_envs))
    resets = vec_env.reset_states(jax.random.split(key_reset, (num_steps, num_envs)))
    return action_noise, step_keys, resets


def collect(
    key: chex.PRNGKey,
    params: chex.ArrayTree,
    env_state: VecEnvState,
    norm: NormState,
    gamma: chex.Numeric,
    *,
    networks: Networks,
    vec_env: VecEnv,
    options: RolloutOptions,
    reference: Optional[Reference] = None,
    kl_coef: chex.Numeric = 0.0,
) -> tuple[VecEnvState, NormState, Transition, EpisodeStats]:
    """Run the policy for ``options.num_steps`` steps in every env.

    Returns the new env state, the normalization statistics merged with this
    rollout's data, the transitions, and the finished-episode statistics.

    With a ``reference``, every reward the learner sees is penalized by
    ``kl_coef`` times the KL estimate to it (``core.kl_penalty``), computed here
    with the reference's frozen parameters and observation statistics.
    """

    action_noise, step_keys, resets = draw_steps(key, vec_env, options.num_steps, env_state.obs.shape[0])

    def step(carry, per_step):
        env_state, discounted_return = carry
        noise, keys_step, step_resets = per_step
        obs = _observe(norm, env_state.obs, options.normalize_obs)
        dist, value = networks.apply(params, obs)
        dist = with_action_mask(dist, env_state.action_mask)
        action = dist.sample_from_noise(noise)
        log_prob = dist.log_prob(action)
        next_env_state, result = vec_env.step_with(keys_step, step_resets, env_state, action)
        done = result.terminated | result.truncated
        reward, kl_t = result.reward, jnp.zeros_like(log_prob)
        if reference is not None:
            ref_log_prob = _reference_log_prob(reference, networks, env_state.obs, action, env_state.action_mask)
            reward, kl_t = core.kl_penalty(result.reward, log_prob, ref_log_prob, kl_coef)
        if options.normalize_reward:
            discounted_return = discounted_return * gamma + reward
        transition = Transition(
            obs=obs,
            action=action,
            log_prob=log_prob,
            value=value,
            reward=reward,
            terminated=result.terminated,
            done=done,
            final_obs=_observe(norm, result.final_obs, options.normalize_obs),
            next_value=jnp.zeros_like(value),  # filled in after the loop
            reward_raw=result.reward,
            kl_ref=kl_t,
            action_mask=env_state.action_mask,
        )
        extras = (env_state.obs, discounted_return, result.episode_return, result.episode_length, done)
        # The accumulator restarts with each episode, after its last reward is counted.
        discounted_return = jnp.where(done, 0.0, discounted_return)
        return (next_env_state, discounted_return), (transition, extras)

    (env_state, discounted_return), (traj, extras) = jax.lax.scan(
        step, (env_state, norm.discounted_return), (action_noise, step_keys, resets)
    )
    raw_obs, returns_seen, ep_return, ep_length, done = extras
    last_value = networks.value(params, _observe(norm, env_state.obs, options.normalize_obs))
    traj = traj._replace(next_value=_next_values(traj, last_value, params, networks, vec_env))

    new_obs_rms = core.rms_update(norm.obs, raw_obs) if options.normalize_obs else norm.obs
    new_ret_rms = norm.ret
    if options.normalize_reward:
        # Rewards never reach the policy during collection, so the whole rollout
        # can be scaled with statistics that already include it: no jump in
        # scale between the first rollout and the next.
        new_ret_rms = core.rms_update(norm.ret, returns_seen)
        scaled = core.scale(new_ret_rms, traj.reward)
        if options.reward_clip is not None:
            scaled = jnp.clip(scaled, -options.reward_clip, options.reward_clip)
        traj = traj._replace(reward=scaled)
    new_norm = NormState(obs=new_obs_rms, ret=new_ret_rms, discounted_return=discounted_return)

    done_f = done.astype(jnp.float32)
    stats = EpisodeStats(
        count=jnp.sum(done_f),
        return_sum=jnp.sum(ep_return),
        length_sum=jnp.sum(ep_length.astype(jnp.float32)),
    )
    return env_state, new_norm, traj, stats
