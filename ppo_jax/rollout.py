"""Collect ``T`` steps from ``B`` environments with a ``lax.scan``, and turn them into the update's batch.

Output is time-major: every leaf of ``Transition`` is ``[T, B, ...]``, except the
final observations of the steps cut by the time limit, kept per env
(``cut_obs [B, S, ...]``, ``cut_step [B, S]``): the only final observations the
update reads.

The rollout's own state lives here too (``NormState``: the normalization statistics,
frozen during a rollout and merged after it), and so does the conversion of a rollout
into the update's input (``sample_batch``, ``sequence_batch``).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ppo_jax import core
from ppo_jax.core.distributions import Categorical, DiagGaussian, with_action_mask
from ppo_jax.envs import VecEnv, VecEnvState
from ppo_jax.finetune.data import Reference
from ppo_jax.networks import Networks, RecurrentNetworks
from ppo_jax.update import Batch, SequenceBatch


class Transition(NamedTuple):
    obs: chex.Array  # [T, B, *obs] as the networks saw it (normalized if on); stored in the env's storage dtype (uint8 for binary images)
    action: chex.Array  # [T, B] int32 or [T, B, D] float32 (unclipped sample)
    log_prob: chex.Array  # [T, B] of the unclipped sample under the collecting policy
    value: chex.Array  # [T, B] V(s_t)
    reward: chex.Array  # [T, B] (scaled by the merged return statistics if on)
    terminated: chex.Array  # [T, B] bool: s'_t is terminal
    done: chex.Array  # [T, B] bool: the episode ended at t (terminated or truncated)
    next_value: chex.Array  # [T, B] V(s'_t); where s'_t is terminal, whatever (GAE ignores it)
    reward_raw: chex.Array  # [T, B] the env's reward, before the KL penalty and scaling
    kl_ref: chex.Array  # [T, B] log π(a_t|s_t) − log π_ref(a_t|s_t); 0 without a reference
    action_mask: Optional[chex.Array] = None  # [T, B, K] bool, valid actions at obs; None: env has no mask
    # Recurrent runs only (None otherwise):
    start: Optional[chex.Array] = None  # [T, B] bool: obs_t begins an episode (the carry is reset there)
    carry: Any = None  # [T, B, H] (LSTM: a pair) the carry handed to step t, before its reset
    # The final observations of the steps cut by the time limit, per env (S = ceil(T / limit) slots):
    cut_obs: Optional[chex.Array] = None  # [B, S, *obs] raw s'_t of env b's s-th cut (zeros in unused slots)
    cut_step: Optional[chex.Array] = None  # [B, S] int32: the step t of that cut; T in unused slots


@struct.dataclass
class Memory:
    """A recurrent policy's state between rollouts; part of the train state."""

    carry: Any  # [B, H] (LSTM: a pair), the carry after the last step, not yet reset
    start: chex.Array  # [B] bool: the current observation begins an episode


@struct.dataclass
class NormState:
    """Observation and reward normalization statistics; part of the train state.

    Statistics are frozen while a rollout is collected and merged after it, so
    every sample of one rollout is normalized the same way and the stored
    log-probabilities stay exact for the update.
    """

    obs: Any  # RunningMeanStd over [*obs_shape]
    ret: Any  # RunningMeanStd over [] (discounted returns, for reward scaling)
    discounted_return: chex.Array  # [B] float32, running discounted return per env

    @classmethod
    def fresh(cls, obs_shape: tuple[int, ...], num_envs: int) -> "NormState":
        """Statistics at mean 0, variance 1: reset observations alone have near-zero
        variance in some features (velocities) and would blow them up."""
        return cls(
            obs=core.rms_init(obs_shape),
            ret=core.rms_init(()),
            discounted_return=jnp.zeros((num_envs,), jnp.float32),
        )


class EpisodeStats(NamedTuple):
    """Sums over the episodes that finished during one rollout (scalars)."""

    count: chex.Array  # float32
    return_sum: chex.Array  # float32, raw undiscounted returns
    length_sum: chex.Array  # float32
    # Time-limit cuts that found no free slot (an env that truncates before its declared
    # limit): their final observation was lost and V(s'_t) came from the next episode's reset.
    cuts_dropped: chex.Array  # float32


class RolloutOptions(NamedTuple):
    """Static choices of the rollout."""

    num_steps: int
    normalize_obs: bool
    normalize_reward: bool
    reward_clip: Optional[float] = None  # bound on |scaled reward| (with normalize_reward); None: no bound
    # Memory (results are the same either way):
    obs_dtype: Optional[str] = (
        None  # store Transition.obs in this dtype (exact for the env's values); None: as seen
    )
    resets_in_loop: bool = False  # compute each step's reset states inside the loop instead of all before it
    # Data-parallel: this device steps an equal share of the envs; the statistics and
    # episode sums pool over this mapped axis.
    axis_name: Optional[str] = None


RESETS_IN_LOOP_BYTES = (
    256  # per env: reset states larger than this are computed in the loop, not stored [T, B]
)


def rollout_options(config, vec_env: VecEnv, axis_name: Optional[str] = None) -> RolloutOptions:
    """The rollout's static choices for ``config`` and its env.

    Observations are stored in ``spec.obs_dtype`` (uint8 for binary images:
    4× less memory than float32, cast back exactly by the networks) unless they
    are normalized. Reset states are drawn before the loop for all ``T × B``
    steps when they are small (classic control: tens of bytes; this keeps the
    random draws out of the loop body, which is faster on CPU), and computed in
    the loop from pre-drawn keys when they are larger than
    ``RESETS_IN_LOOP_BYTES`` per env (images, physics states), where storing
    one for every step would dominate the rollout's memory.
    """
    spec = vec_env.spec
    store = None if config.normalize_obs or spec.obs_dtype == "float32" else spec.obs_dtype
    return RolloutOptions(
        num_steps=config.num_steps,
        normalize_obs=config.normalize_obs,
        normalize_reward=config.normalize_reward,
        reward_clip=config.reward_clip,
        obs_dtype=store,
        resets_in_loop=vec_env.reset_bytes() > RESETS_IN_LOOP_BYTES,
        axis_name=axis_name,
    )


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


def _next_values(traj: Transition, last_value: chex.Array, value_of) -> chex.Array:
    """V(s'_t) for every step, ``[T, B]``, without a critic pass over every final observation.

    Where the episode goes on, s'_t is the next step's observation, whose value
    the rollout already has. Where it terminated, GAE does not bootstrap. Only
    steps cut by the time limit need the critic on their final observation;
    the rollout kept those in ``traj.cut_obs`` (``S`` slots per env: an env is
    cut at most once per ``max_episode_steps`` steps). They are valued in one
    batch (``value_of(obs[B·S, ...], rows[B·S])``, rows into the flattened
    ``[T·B]`` steps, ``T·B`` for an unused slot) and scattered back.
    """
    assert traj.cut_obs is not None and traj.cut_step is not None, "a feed-forward rollout's Transition"
    num_steps, num_envs = traj.value.shape
    following = jnp.concatenate([traj.value[1:], last_value[None]], axis=0).reshape(-1)
    slots = traj.cut_step.shape[1]
    env_index = jnp.arange(num_envs, dtype=jnp.int32)[:, None]
    rows = jnp.where(traj.cut_step < num_steps, traj.cut_step * num_envs + env_index, num_steps * num_envs)
    rows = rows.reshape(-1)
    cut_obs = traj.cut_obs.reshape((num_envs * slots,) + traj.cut_obs.shape[2:])
    cut_values = value_of(cut_obs, rows)
    return following.at[rows].set(cut_values, mode="drop").reshape(num_steps, num_envs)


class _Cuts(NamedTuple):
    """The scan's record of time-limit cuts: ``S`` slots per env."""

    obs: chex.Array  # [B, S, *obs] raw final observations
    step: chex.Array  # [B, S] int32, T where unused
    count: chex.Array  # [B] int32, cuts seen so far (recorded or not)

    def dropped(self) -> chex.Array:
        """How many cuts found no free slot, over all envs (float32)."""
        return jnp.sum(jnp.maximum(self.count - self.step.shape[1], 0)).astype(jnp.float32)


def cut_slots(num_steps: int, max_episode_steps: int) -> int:
    """Slots per env for the cuts of ``num_steps`` steps: ``ceil(T / limit)``.

    gymnax's ``is_truncated`` is ``time >= max_steps_in_episode`` (and our
    ``EnvSpec.max_episode_steps`` is that limit), so two cuts of one env are
    at least that many steps apart. A cut beyond the slots (an env that
    truncates earlier than its declared limit) falls back to the next
    observation's value; the rollout counts those (``EpisodeStats.cuts_dropped``,
    the metric ``cuts_dropped``) and the run warns of them: declare the true limit.
    """
    return -(-num_steps // max_episode_steps)


def _empty_cuts(obs: chex.Array, slots: int, num_steps: int) -> _Cuts:
    num_envs = obs.shape[0]
    return _Cuts(
        obs=jnp.zeros((num_envs, slots) + obs.shape[1:], obs.dtype),
        step=jnp.full((num_envs, slots), num_steps, jnp.int32),
        count=jnp.zeros((num_envs,), jnp.int32),
    )


def _record_cut(cuts: _Cuts, t: chex.Array, cut: chex.Array, final_obs: chex.Array) -> _Cuts:
    """Write the final observation of every env cut at step ``t`` into its next free slot."""
    envs = jnp.arange(cut.shape[0])
    slot = jnp.minimum(cuts.count, cuts.step.shape[1] - 1)
    keep = cut & (cuts.count < cuts.step.shape[1])
    where = lambda new, old: jnp.where(keep.reshape(keep.shape + (1,) * (new.ndim - 1)), new, old)
    return _Cuts(
        obs=cuts.obs.at[envs, slot].set(where(final_obs.astype(cuts.obs.dtype), cuts.obs[envs, slot])),
        step=cuts.step.at[envs, slot].set(jnp.where(keep, t, cuts.step[envs, slot])),
        count=cuts.count + cut.astype(jnp.int32),
    )


def cut_final_obs(traj: Transition) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(t, b, final_obs)`` of every recorded time-limit cut, host-side (for checks and debugging)."""
    step = np.asarray(traj.cut_step)
    num_steps = np.asarray(traj.value).shape[0]
    b, s = np.nonzero(step < num_steps)
    return step[b, s], b, np.asarray(traj.cut_obs)[b, s]


def draw_steps(
    key: chex.PRNGKey, vec_env: VecEnv, num_steps: int, num_envs: int, resets_in_loop: bool = False
):
    """The randomness of ``num_steps`` steps of ``num_envs`` envs, drawn at once.

    Returns the action noise ``[T, B, A]`` (for ``sample_from_noise``), the
    env step keys ``[T, B]`` and the reset states ``[T, B, ...]`` of every
    episode that may start, for ``VecEnv.step_with``. Drawn in batched calls so
    that no PRNG work (a loop of its own on XLA's CPU backend) runs inside a
    step loop; gymnax computes a reset in every step too, here they are
    computed together. With ``resets_in_loop`` the third item is the reset
    keys ``[T, B]`` instead, for ``_resets_of`` in the loop (the same states,
    without storing ``T × B`` of them).
    """
    spec = vec_env.spec
    key_action, key_step, key_reset = jax.random.split(key, 3)
    noise_fn = Categorical.noise if spec.discrete else DiagGaussian.noise
    action_noise = noise_fn(key_action, (num_steps, num_envs, spec.action_dim))
    step_keys = jax.random.split(key_step, (num_steps, num_envs))
    reset_keys = jax.random.split(key_reset, (num_steps, num_envs))
    resets = reset_keys if resets_in_loop else vec_env.reset_states(reset_keys)
    return action_noise, step_keys, resets


def _per_step(per_step, vec_env: VecEnv, options: RolloutOptions):
    """One step's ``(noise, step keys, reset states)``: reset states computed here if they were not stored."""
    t, noise, keys_step, resets = per_step
    if options.resets_in_loop:
        resets = vec_env.reset_states(resets)
    return t, (noise, keys_step, resets)


def _act_and_step(
    env_state,
    discounted_return,
    cuts,
    t,
    obs,
    dist,
    value,
    per_step,
    norm,
    gamma,
    vec_env,
    options,
    reference_log_prob=None,
    kl_coef: chex.Numeric = 0.0,
):
    """Mask the policy to the valid actions, sample the action, step every env, and
    record the transition: one rollout step once the policy has read ``obs``.
    ``reference_log_prob(action, action_mask)``, if given, is log π_ref(a_t|s_t):
    the reward is then penalized by ``kl_coef`` times the KL estimate to the reference.
    Returns ``((env_state, discounted_return, cuts), (transition, extras))``."""
    noise, keys_step, step_resets = per_step
    dist = with_action_mask(dist, env_state.action_mask)
    action = dist.sample_from_noise(noise)
    log_prob = dist.log_prob(action)
    next_env_state, result = vec_env.step_with(keys_step, step_resets, env_state, action)
    done = result.terminated | result.truncated
    reward, kl_t = result.reward, jnp.zeros_like(log_prob)
    if reference_log_prob is not None:
        ref_log_prob = reference_log_prob(action, env_state.action_mask)
        reward, kl_t = core.kl_penalty(result.reward, log_prob, ref_log_prob, kl_coef)
    if options.normalize_reward:
        discounted_return = discounted_return * gamma + reward
    cuts = _record_cut(cuts, t, result.truncated & ~result.terminated, result.final_obs)
    transition = Transition(
        obs=obs if options.obs_dtype is None else obs.astype(options.obs_dtype),
        action=action,
        log_prob=log_prob,
        value=value,
        reward=reward,
        terminated=result.terminated,
        done=done,
        next_value=jnp.zeros_like(value),  # filled in after the loop
        reward_raw=result.reward,
        kl_ref=kl_t,
        action_mask=env_state.action_mask,
    )
    extras = (env_state.obs, discounted_return, result.episode_return, result.episode_length, done)
    # The accumulator restarts with each episode, after its last reward is counted.
    discounted_return = jnp.where(done, 0.0, discounted_return)
    return (next_env_state, discounted_return, cuts), (transition, extras)


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

    xs = _scan_inputs(key, vec_env, options, env_state.obs.shape[0])
    slots = cut_slots(options.num_steps, vec_env.spec.max_episode_steps)

    def step(carry, xs_t):
        env_state, discounted_return, cuts = carry
        t, per_step = _per_step(xs_t, vec_env, options)
        obs = _observe(norm, env_state.obs, options.normalize_obs)
        dist, value = networks.apply(params, obs)
        reference_log_prob = _reference_of(reference, networks, env_state.obs)
        return _act_and_step(
            env_state,
            discounted_return,
            cuts,
            t,
            obs,
            dist,
            value,
            per_step,
            norm,
            gamma,
            vec_env,
            options,
            reference_log_prob,
            kl_coef,
        )

    init = (env_state, norm.discounted_return, _empty_cuts(env_state.obs, slots, options.num_steps))
    (env_state, discounted_return, cuts), (traj, extras) = jax.lax.scan(step, init, xs)
    traj = traj._replace(cut_obs=cuts.obs, cut_step=cuts.step)
    last_value = networks.value(params, _observe(norm, env_state.obs, options.normalize_obs))
    value_of = lambda obs, rows: networks.value(params, _observe(norm, obs, options.normalize_obs))
    traj = traj._replace(next_value=_next_values(traj, last_value, value_of))
    new_norm, traj, stats = _finish(norm, traj, extras, discounted_return, cuts.dropped(), options)
    return env_state, new_norm, traj, stats


def _reference_of(reference: Optional[Reference], networks: Networks, raw_obs: chex.Array):
    """``log π_ref(action | raw_obs)`` as a function of the action and its mask; None without a reference."""
    if reference is None:
        return None
    return lambda action, mask: _reference_log_prob(reference, networks, raw_obs, action, mask)


def _carries_after(carries: Any, final: Any) -> Any:
    """``[T · B, H]``: the carry after each step t, which is the one handed to step t + 1
    (before its reset); after the last step, the final one."""
    after = jax.tree.map(lambda seq, last: jnp.concatenate([seq[1:], last[None]]), carries, final)
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), after)


def _scan_inputs(key: chex.PRNGKey, vec_env: VecEnv, options: RolloutOptions, num_envs: int):
    """The rollout loop's inputs: the step index and the randomness of every step."""
    drawn = draw_steps(key, vec_env, options.num_steps, num_envs, options.resets_in_loop)
    return (jnp.arange(options.num_steps, dtype=jnp.int32),) + drawn


def _finish(
    norm: NormState, traj: Transition, extras, discounted_return, cuts_dropped, options: RolloutOptions
):
    """Merge this rollout's normalization statistics, scale its rewards, sum its episodes."""
    raw_obs, returns_seen, ep_return, ep_length, done = extras
    new_obs_rms = core.rms_update(norm.obs, raw_obs, options.axis_name) if options.normalize_obs else norm.obs
    new_ret_rms = norm.ret
    if options.normalize_reward:
        # Rewards never reach the policy during collection, so the whole rollout
        # can be scaled with statistics that already include it: no jump in
        # scale between the first rollout and the next.
        new_ret_rms = core.rms_update(norm.ret, returns_seen, options.axis_name)
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
        cuts_dropped=cuts_dropped,
    )
    if options.axis_name is not None:
        stats = jax.lax.psum(stats, options.axis_name)
    return new_norm, traj, stats


def collect_recurrent(
    key: chex.PRNGKey,
    params: chex.ArrayTree,
    env_state: VecEnvState,
    memory: Memory,
    norm: NormState,
    gamma: chex.Numeric,
    *,
    networks: RecurrentNetworks,
    vec_env: VecEnv,
    options: RolloutOptions,
) -> tuple[VecEnvState, Memory, NormState, Transition, EpisodeStats]:
    """``collect`` for a policy with memory: the carry runs through the steps.

    At step t the carry is reset where ``start_t`` (``o_t`` begins an episode),
    and ``start_{t+1} = done_t``. The transitions keep ``start`` and the carry
    handed to each step (before its reset), so the update can replay any
    sequence from its stored starting carry with the same resets. A step cut by
    the time limit is bootstrapped with the critic's value of its final
    observation fed through the carry of the episode that ended there (the
    carry after step t, not a reset one).
    """
    xs = _scan_inputs(key, vec_env, options, env_state.obs.shape[0])
    slots = cut_slots(options.num_steps, vec_env.spec.max_episode_steps)

    def step(carry, xs_t):
        env_state, rnn_carry, start, discounted_return, cuts = carry
        t, per_step = _per_step(xs_t, vec_env, options)
        obs = _observe(norm, env_state.obs, options.normalize_obs)
        new_rnn_carry, dist, value = networks.step(params, rnn_carry, obs, start)
        (env_state, discounted_return, cuts), (transition, extras) = _act_and_step(
            env_state, discounted_return, cuts, t, obs, dist, value, per_step, norm, gamma, vec_env, options
        )
        transition = transition._replace(start=start, carry=rnn_carry)
        return (env_state, new_rnn_carry, transition.done, discounted_return, cuts), (transition, extras)

    init = (
        env_state,
        memory.carry,
        memory.start,
        norm.discounted_return,
        _empty_cuts(env_state.obs, slots, options.num_steps),
    )
    (env_state, rnn_carry, start, discounted_return, cuts), (traj, extras) = jax.lax.scan(step, init, xs)
    traj = traj._replace(cut_obs=cuts.obs, cut_step=cuts.step)
    _, _, last_value = networks.step(
        params, rnn_carry, _observe(norm, env_state.obs, options.normalize_obs), start
    )
    flat_after = _carries_after(traj.carry, rnn_carry)

    def value_of(obs, rows):
        carry = jax.tree.map(lambda x: jnp.take(x, rows, axis=0, mode="clip"), flat_after)
        return networks.value(params, carry, _observe(norm, obs, options.normalize_obs))

    traj = traj._replace(next_value=_next_values(traj, last_value, value_of))
    new_norm, traj, stats = _finish(norm, traj, extras, discounted_return, cuts.dropped(), options)
    return env_state, Memory(carry=rnn_carry, start=start), new_norm, traj, stats


# ---------------------------------------------------------------------------
# The rollout -> the update's batch
# ---------------------------------------------------------------------------


def sample_batch(traj: Transition, advantages: chex.Array, targets: chex.Array) -> Batch:
    """A feed-forward rollout ``[T, B]`` flattened to ``T · B`` samples, time-major
    (sample ``t · B + b`` is env ``b``'s step ``t``), with its GAE advantages and targets."""
    flat = lambda x: x.reshape((-1,) + x.shape[2:])
    return Batch(
        obs=flat(traj.obs),
        action=flat(traj.action),
        log_prob=flat(traj.log_prob),
        value=flat(traj.value),
        advantage=flat(advantages),
        target=flat(targets),
        action_mask=None if traj.action_mask is None else flat(traj.action_mask),
    )


def sequence_batch(
    traj: Transition, advantages: chex.Array, targets: chex.Array, chunk: int
) -> SequenceBatch:
    """A recurrent rollout ``[T, B]`` cut into ``S = B · T / chunk`` sequences ``[chunk, S]``.

    Sequence ``k · B + b`` is env ``b``'s steps ``k · chunk … (k + 1) · chunk − 1``;
    it starts from the carry the rollout handed to its first step, so that
    replaying it with the same resets gives the rollout's outputs. With
    ``chunk < T`` gradients stop at chunk boundaries (truncated backpropagation).
    """
    num_steps, num_envs = traj.value.shape
    num_chunks = num_steps // chunk

    def steps(x):
        x = x.reshape((num_chunks, chunk, num_envs) + x.shape[2:])
        return jnp.swapaxes(x, 0, 1).reshape((chunk, num_chunks * num_envs) + x.shape[3:])

    def first(x):
        x = x.reshape((num_chunks, chunk, num_envs) + x.shape[2:])[:, 0]
        return x.reshape((num_chunks * num_envs,) + x.shape[2:])

    return SequenceBatch(
        obs=steps(traj.obs),
        action=steps(traj.action),
        log_prob=steps(traj.log_prob),
        value=steps(traj.value),
        advantage=steps(advantages),
        target=steps(targets),
        start=steps(traj.start),
        carry=jax.tree.map(first, traj.carry),
        action_mask=None if traj.action_mask is None else steps(traj.action_mask),
    )
