"""Assembly: ``make_train(config) -> train(key)``, a pure function.

One update = collect a rollout → GAE → PPO update. ``train`` runs all updates
in one ``lax.scan``, so ``jax.jit(jax.vmap(train))(keys)`` trains many seeds in
one compiled program. The CLI driver runs the same ``init`` and ``step`` in
jitted chunks with IO between them; the results are the same.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
from flax import struct

from ppo_jax import core, sharding
from ppo_jax.config import ConfigError, Hyperparams, PPOConfig, recurrent_reference_refusal, validate
from ppo_jax.envs import VecEnv, VecEnvState
from ppo_jax.finetune.data import Reference, Start, check_obs_norm, check_params, require_reference
from ppo_jax.networks import Networks, networks_from_config
from ppo_jax.rollout import (
    EpisodeStats,
    Memory,
    NormState,
    RolloutOptions,
    Transition,
    collect,
    collect_recurrent,
    rollout_options,
    sample_batch,
    sequence_batch,
)
from ppo_jax.update import Batch, SequenceBatch, UpdateOptions, make_optimizer, update

Metrics = dict[str, chex.Array]


@struct.dataclass
class TrainState:
    """Everything a run needs to continue: a pytree, savable as it is."""

    params: Any
    opt_state: Any
    env: VecEnvState
    norm: NormState
    key: chex.PRNGKey
    update_step: chex.Array  # int32, updates done so far
    kl_ref_coef: chex.Array  # float32, β of the KL penalty for the next rollout (adapted if kl_ref_target)
    memory: Optional[Memory] = None  # recurrent runs: the carry and episode-start flags of every env


class Program(NamedTuple):
    """The pure pieces of a run, for drivers that interleave IO.

    init(key, hp) -> TrainState
    step(state, hp) -> (TrainState, metrics of one update)
    """

    init: Callable[[chex.PRNGKey, Hyperparams], TrainState]
    step: Callable[[TrainState, Hyperparams], tuple[TrainState, Metrics]]
    networks: Networks
    vec_env: VecEnv
    config: PPOConfig


def build(
    config: PPOConfig,
    env: Any = None,
    env_params: Any = None,
    *,
    init_from: Optional[Start] = None,
    reference: Optional[Reference] = None,
    shards: Optional[sharding.EnvShards] = None,
) -> Program:
    """Build the pure init and update-step functions of ``config``.

    The start and the reference must fit the config's network (``ConfigError`` otherwise,
    before anything compiles); they enter the program as constants shared by every seed.

    Data-parallel (``shards``): ``init`` and ``step`` are then called inside a ``shard_map``
    over ``shards.axis_name`` and each device steps ``num_envs / shards.count`` of the envs
    (``TrainState.env``, the discounted returns and the memory hold its share), with its own
    random keys for resets, actions and shuffles. The rest of the state is the same on every
    device: the parameters and optimizer state (gradients are averaged), the normalization
    statistics and the key the next update's keys come from. The metrics are those of the
    whole batch.

    Args:
      config: the run's settings.
      env: a gymnax ``Environment`` to train instead of ``config.env_id``, which is then
        only its label; the config's wrappers still apply.
      env_params: its params (default: ``env.default_params``).
      init_from: a ``Start``: begin from its network parameters and normalization
        statistics (with a fresh optimizer) instead of fresh ones.
      reference: a ``Reference``: the frozen policy of the KL penalty (``kl_ref_coef``);
        without one no penalty is computed.
      shards: an ``EnvShards`` for data-parallel training, or None.

    Returns:
      ``Program(init, step)``: ``init(key, hp) -> TrainState`` and
      ``step(state, hp) -> (TrainState, metrics of one update)``, both pure.
    """
    parts = _parts(config, env, env_params, init_from, reference, shards)

    def init(key: chex.PRNGKey, hp: Hyperparams) -> TrainState:
        return _init(parts, key, hp)

    def step(state: TrainState, hp: Hyperparams) -> tuple[TrainState, Metrics]:
        return _step(parts, state, hp)

    precision = config.matmul_precision
    return Program(
        init=_under_precision(init, precision),
        step=_under_precision(step, precision),
        networks=parts.networks,
        vec_env=parts.vec_env,
        config=config,
    )


class _Parts(NamedTuple):
    """What a run's ``init`` and ``step`` are built from (static: closed over, not traced)."""

    config: PPOConfig
    vec_env: VecEnv
    networks: Any  # Networks, or RecurrentNetworks when config.recurrent is set
    num_envs: int  # the envs this device steps
    shards: Optional[sharding.EnvShards]
    axis_name: Optional[str]
    rollout: RolloutOptions
    update: UpdateOptions
    init_from: Optional[Start]
    reference: Optional[Reference]


def _parts(
    config: PPOConfig,
    env: Any,
    env_params: Any,
    init_from: Optional[Start],
    reference: Optional[Reference],
    shards: Optional[sharding.EnvShards],
) -> _Parts:
    """The env, networks and options of a run, each checked before anything compiles."""
    validate(config, env=env, env_params=env_params)
    num_envs = check_shards(config, shards)
    if config.recurrent is not None and reference is not None:
        raise ConfigError(recurrent_reference_refusal("a reference policy", config.recurrent))
    vec_env = VecEnv.from_config(config, env, env_params)
    networks = networks_from_config(config, vec_env.spec)
    _check_fit(networks, vec_env, init_from, reference)
    axis_name = None if shards is None else shards.axis_name
    return _Parts(
        config=config,
        vec_env=vec_env,
        networks=networks,
        num_envs=num_envs,
        shards=shards,
        axis_name=axis_name,
        rollout=rollout_options(config, vec_env, axis_name),
        update=UpdateOptions.from_config(config, axis_name),
        init_from=init_from,
        reference=reference,
    )


def _init(parts: _Parts, key: chex.PRNGKey, hp: Hyperparams) -> TrainState:
    """A fresh train state (or one that starts from ``parts.init_from``)."""
    config, networks, vec_env, init_from, num_envs = (
        parts.config,
        parts.networks,
        parts.vec_env,
        parts.init_from,
        parts.num_envs,
    )
    key_params, key_env, key_loop = jax.random.split(key, 3)
    params = networks.init(key_params) if init_from is None else init_from.params
    opt_state = make_optimizer(hp.max_grad_norm).init(params)
    env_state = vec_env.reset(sharding.own_key(key_env, parts.shards), num_envs)
    norm = NormState.fresh(vec_env.spec.obs_shape, num_envs)
    if init_from is not None:
        norm = norm.replace(  # type: ignore[attr-defined]  # flax.struct's replace is untyped
            obs=init_from.obs_norm if config.normalize_obs else norm.obs,
            ret=init_from.ret_norm if config.normalize_reward else norm.ret,
        )
    memory = None
    if config.recurrent is not None:
        memory = Memory(carry=networks.initial_carry((num_envs,)), start=jnp.ones((num_envs,), bool))
    return TrainState(
        params=params,
        opt_state=opt_state,
        env=env_state,
        norm=norm,
        key=key_loop,
        update_step=jnp.asarray(0, jnp.int32),
        kl_ref_coef=jnp.asarray(hp.kl_ref_coef, jnp.float32),
        memory=memory,
    )


def _step(parts: _Parts, state: TrainState, hp: Hyperparams) -> tuple[TrainState, Metrics]:
    """One update: collect a rollout, GAE, the PPO update, and the update's metrics."""
    key, key_rollout, key_update = jax.random.split(state.key, 3)
    key_rollout, key_update = (
        sharding.own_key(key_rollout, parts.shards),
        sharding.own_key(key_update, parts.shards),
    )
    env_state, memory, norm, traj, episodes = _collect(parts, key_rollout, state, hp)
    batch = _batch_of(parts.config, traj, hp)
    learning_rate = _learning_rate(parts.config, state.update_step, hp)
    params, opt_state, loss_metrics = update(
        key_update,
        state.params,
        state.opt_state,
        batch,
        hp,
        learning_rate,
        tx=make_optimizer(hp.max_grad_norm),
        networks=parts.networks,
        options=parts.update,
    )
    metrics = {
        **_episode_metrics(episodes),
        "explained_variance": core.explained_variance(
            batch.value.reshape(-1), batch.target.reshape(-1), parts.axis_name
        ),
        "learning_rate": jnp.asarray(learning_rate, jnp.float32),
        **loss_metrics,
        **_kl_metrics(traj, state.kl_ref_coef, parts.reference is not None, parts.axis_name),
    }
    new_state = TrainState(
        params=params,
        opt_state=opt_state,
        env=env_state,
        norm=norm,
        key=key,
        update_step=state.update_step + 1,
        kl_ref_coef=_next_kl_ref_coef(parts.config, state.kl_ref_coef, metrics["kl_ref"], hp),
        memory=memory,
    )
    return new_state, metrics


def _collect(parts: _Parts, key: chex.PRNGKey, state: TrainState, hp: Hyperparams):
    """The rollout of one update: ``(env state, memory, norm, Transition [T, B], EpisodeStats)``."""
    if parts.config.recurrent is not None:
        assert state.memory is not None, "a recurrent TrainState carries its memory"
        return collect_recurrent(
            key,
            state.params,
            state.env,
            state.memory,
            state.norm,
            hp.gamma,
            networks=parts.networks,
            vec_env=parts.vec_env,
            options=parts.rollout,
        )
    env_state, norm, traj, episodes = collect(
        key,
        state.params,
        state.env,
        state.norm,
        hp.gamma,
        networks=parts.networks,
        vec_env=parts.vec_env,
        options=parts.rollout,
        reference=parts.reference,
        kl_coef=state.kl_ref_coef,
    )
    return env_state, state.memory, norm, traj, episodes


def _batch_of(config: PPOConfig, traj: Transition, hp: Hyperparams) -> Batch | SequenceBatch:
    """The rollout's GAE advantages and targets, and the update's batch of it."""
    advantages, targets = core.gae(
        traj.reward,
        traj.value,
        traj.next_value,
        traj.terminated,
        traj.done,
        gamma=hp.gamma,
        gae_lambda=hp.gae_lambda,
    )
    if config.recurrent is not None:
        return sequence_batch(traj, advantages, targets, config.bptt_chunk or config.num_steps)
    return sample_batch(traj, advantages, targets)


def _learning_rate(config: PPOConfig, update_step: chex.Array, hp: Hyperparams):
    """The step size of update ``update_step``: annealed linearly to 0 with ``anneal_lr``."""
    if config.anneal_lr:
        return hp.learning_rate * (1.0 - update_step / config.num_updates)
    return hp.learning_rate


def _episode_metrics(episodes: EpisodeStats) -> Metrics:
    """Mean return and length of the episodes that finished in the rollout (NaN if none)."""
    count = episodes.count
    safe = jnp.maximum(count, 1.0)
    return {
        "episode_return": jnp.where(count > 0, episodes.return_sum / safe, jnp.nan),
        "episode_length": jnp.where(count > 0, episodes.length_sum / safe, jnp.nan),
        "episodes": count,
        "cuts_dropped": episodes.cuts_dropped,
    }


def _next_kl_ref_coef(config: PPOConfig, kl_ref_coef: chex.Array, kl_ref: chex.Array, hp: Hyperparams):
    """β for the next rollout: adapted toward ``kl_ref_target`` when it is set, else kept."""
    if config.kl_ref_target is None:
        return kl_ref_coef
    return core.adaptive_kl_coef(kl_ref_coef, kl_ref, hp.kl_ref_target, config.batch_size, hp.kl_ref_horizon)


def _under_precision(fn: Callable, precision: str) -> Callable:
    """``fn`` with every float32 matmul and convolution it traces (networks and env
    alike) at ``precision``: JAX reads its default precision when an op is traced,
    so whichever driver jits ``fn``, the lowered program carries it."""

    @functools.wraps(fn)
    def under(*args):
        with jax.default_matmul_precision(precision):
            return fn(*args)

    return under


def _check_fit(
    networks: Networks, vec_env: VecEnv, init_from: Optional[Start], reference: Optional[Reference]
):
    if init_from is None and reference is None:
        return
    expected = jax.eval_shape(lambda: networks.init(jax.random.PRNGKey(0)))  # any PRNG impl's key shape
    obs_shape = vec_env.spec.obs_shape
    if init_from is not None:
        check_params(expected, init_from.params, "init_from")
        check_obs_norm(init_from.obs_norm, obs_shape, "init_from")
    if reference is not None:
        check_params(expected, reference.params, "reference")
        check_obs_norm(reference.obs_norm, obs_shape, "reference")


def _kl_metrics(
    traj, kl_ref_coef: chex.Array, has_reference: bool, axis_name: Optional[str] = None
) -> Metrics:
    """Mean per step: the env's reward, the reward the learner saw (before any
    scaling), and the KL estimate to the reference (NaN without one)."""
    penalized = traj.reward_raw - kl_ref_coef * traj.kl_ref if has_reference else traj.reward_raw
    means = {
        "reward_raw": jnp.mean(traj.reward_raw),
        "reward_penalized": jnp.mean(penalized),
        "kl_ref": jnp.mean(traj.kl_ref) if has_reference else jnp.asarray(jnp.nan, jnp.float32),
    }
    if axis_name is not None:
        means = jax.lax.pmean(means, axis_name)
    return {**means, "kl_ref_coef": kl_ref_coef}


def check_shards(config: PPOConfig, shards: Optional[sharding.EnvShards]) -> int:
    """The envs each device steps; ``ConfigError`` unless the envs and every
    minibatch split evenly over ``shards.count`` devices."""
    if shards is None:
        return config.num_envs
    count = shards.count
    if count < 1 or config.num_envs % count:
        raise ConfigError(
            f"data-parallel over {count} devices needs num_envs divisible by {count}, got {config.num_envs}."
        )
    num_envs = config.num_envs // count
    if config.recurrent is not None:
        share, what = num_envs * (config.num_steps // (config.bptt_chunk or config.num_steps)), "sequences"
    else:
        share, what = num_envs * config.num_steps, "samples"
    if share % config.num_minibatches:
        raise ConfigError(
            f"data-parallel over {count} devices: each device's {share} {what} must split into "
            f"num_minibatches = {config.num_minibatches} equal shares; pick num_envs or num_minibatches to fit."
        )
    return num_envs


def run_updates(program: Program, state: TrainState, hp: Hyperparams, num_updates: int):
    """``num_updates`` steps in one ``lax.scan``; metrics stacked ``[num_updates]``."""
    return jax.lax.scan(lambda s, _: program.step(s, hp), state, None, length=num_updates)


def make_train(
    config: PPOConfig,
    env: Any = None,
    env_params: Any = None,
    *,
    init_from: Optional[Start] = None,
    reference: Optional[Reference] = None,
) -> Callable[..., tuple[TrainState, Metrics]]:
    """Return ``train(key, hp=None) -> (final TrainState, metrics)``.

    ``env``/``env_params``: train this gymnax ``Environment`` instance instead
    of ``config.env_id`` (see ``build``).

    ``metrics`` maps each name in ``ppo_jax.metrics.METRIC_NAMES`` to an array ``[num_updates]``.
    ``hp`` defaults to the config's traced settings; pass a ``Hyperparams`` of
    arrays to vmap over settings. ``train`` is pure: jit it, vmap it.

    ``init_from`` and ``reference`` (see ``build``) fine-tune a trained policy
    under a KL leash; ``ppo_jax.finetune.loaders.load_start`` / ``load_reference``
    read them from a run directory.

    Args:
      config: the run's settings (``load_config`` or ``PPOConfig``).
      env: a gymnax ``Environment`` to train instead of ``config.env_id``.
      env_params: its params (default: ``env.default_params``).
      init_from: a ``Start``: network parameters and statistics to begin from.
      reference: a ``Reference``: the frozen policy of the KL penalty.

    Returns:
      ``train(key, hp=None)``, pure, returning ``(TrainState, metrics)`` with
      ``metrics[name]`` of shape ``[num_updates]``.

    Raises:
      ConfigError: the config, env, start or reference do not fit; before anything compiles.
    """
    program = build(config, env, env_params, init_from=init_from, reference=reference)
    require_reference([config], reference)
    default_hp = config.hyperparams()

    def train(key: chex.PRNGKey, hp: Optional[Hyperparams] = None):
        hp = default_hp if hp is None else hp
        state = program.init(key, hp)
        return run_updates(program, state, hp, config.num_updates)

    return train
