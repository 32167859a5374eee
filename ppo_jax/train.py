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
from ppo_jax.config import ConfigError, Hyperparams, PPOConfig, validate
from ppo_jax.envs import NormState, VecEnv, VecEnvState
from ppo_jax.finetune import Reference, Start, check_obs_norm, check_params, require_reference
from ppo_jax.networks import Networks, networks_from_config
from ppo_jax.rollout import Memory, Transition, collect, collect_recurrent, rollout_options
from ppo_jax.update import Batch, SequenceBatch, UpdateOptions, make_optimizer, update

Metrics = dict[str, chex.Array]

METRIC_NAMES = (
    "episode_return",
    "episode_length",
    "episodes",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "explained_variance",
    "grad_norm",
    "learning_rate",
    "minibatch_updates",
    "nonfinite",
    "reward_raw",
    "reward_penalized",
    "kl_ref",
    "kl_ref_coef",
    "cuts_dropped",
)
"""The per-update metrics ``train`` returns and every run logs, in their column order (see the metrics glossary)."""


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

    ``env`` (a gymnax ``Environment``) and ``env_params`` (default: its
    ``default_params``), when given, are trained instead of ``config.env_id``,
    which is then only their label; the config's wrappers still apply.

    ``init_from``: start from these network parameters and normalization
    statistics (with a fresh optimizer) instead of fresh ones. ``reference``:
    the frozen policy of the KL penalty (``kl_ref_coef``); without one no
    penalty is computed. Both must fit the config's network (``ConfigError``
    otherwise, before anything compiles); they enter the program as constants
    shared by every seed.

    ``shards``: data-parallel; ``init`` and ``step`` are then called inside a
    ``shard_map`` over ``shards.axis_name`` and each device steps
    ``num_envs / shards.count`` of the envs (``TrainState.env``, the
    discounted returns and the memory hold its share), with its own random
    keys for resets, actions and shuffles. The rest of the state is the same
    on every device: the parameters and optimizer state (gradients are
    averaged), the normalization statistics and the key the next update's
    keys come from. The metrics are those of the whole batch.

    Args:
      config: the run's settings.
      env: a gymnax ``Environment`` to train instead of ``config.env_id``.
      env_params: its params (default: ``env.default_params``).
      init_from: a ``Start`` to begin from.
      reference: a ``Reference`` for the KL penalty.
      shards: an ``EnvShards`` for data-parallel training, or None.

    Returns:
      ``Program(init, step)``: ``init(key, hp) -> TrainState`` and
      ``step(state, hp) -> (TrainState, metrics of one update)``, both pure.
    """
    validate(config, env=env, env_params=env_params)
    num_envs = check_shards(config, shards)
    axis_name = None if shards is None else shards.axis_name
    recurrent = config.recurrent is not None
    if recurrent and reference is not None:
        raise ConfigError(_RECURRENT_KL_REF)
    vec_env = VecEnv.from_config(config, env, env_params)
    networks = networks_from_config(config, vec_env.spec)
    _check_fit(networks, vec_env, init_from, reference)
    adaptive_kl = config.kl_ref_target is not None
    options_of_rollout = rollout_options(config, vec_env, axis_name)
    update_options = UpdateOptions.from_config(config, axis_name)
    num_updates = config.num_updates
    anneal_lr = config.anneal_lr
    chunk = config.bptt_chunk or config.num_steps

    def init(key: chex.PRNGKey, hp: Hyperparams) -> TrainState:
        key_params, key_env, key_loop = jax.random.split(key, 3)
        params = networks.init(key_params) if init_from is None else init_from.params
        opt_state = make_optimizer(hp.max_grad_norm).init(params)
        env_state = vec_env.reset(sharding.own_key(key_env, shards), num_envs)
        # Statistics start at mean 0, variance 1: reset observations alone have
        # near-zero variance in some features (velocities) and would blow them up.
        norm = NormState(
            obs=core.rms_init(vec_env.spec.obs_shape),
            ret=core.rms_init(()),
            discounted_return=jnp.zeros((num_envs,), jnp.float32),
        )
        if init_from is not None:
            norm = norm.replace(  # type: ignore[attr-defined]  # flax.struct's replace is untyped
                obs=init_from.obs_norm if config.normalize_obs else norm.obs,
                ret=init_from.ret_norm if config.normalize_reward else norm.ret,
            )
        memory = None
        if recurrent:
            memory = Memory(
                carry=networks.initial_carry((num_envs,)),
                start=jnp.ones((num_envs,), bool),
            )
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

    def step(state: TrainState, hp: Hyperparams) -> tuple[TrainState, Metrics]:
        key, key_rollout, key_update = jax.random.split(state.key, 3)
        key_rollout, key_update = sharding.own_key(key_rollout, shards), sharding.own_key(key_update, shards)
        memory = state.memory
        if recurrent:
            assert state.memory is not None, "a recurrent TrainState carries its memory"
            env_state, memory, norm, traj, episodes = collect_recurrent(
                key_rollout,
                state.params,
                state.env,
                state.memory,
                state.norm,
                hp.gamma,
                networks=networks,
                vec_env=vec_env,
                options=options_of_rollout,
            )
        else:
            env_state, norm, traj, episodes = collect(
                key_rollout,
                state.params,
                state.env,
                state.norm,
                hp.gamma,
                networks=networks,
                vec_env=vec_env,
                options=options_of_rollout,
                reference=reference,
                kl_coef=state.kl_ref_coef,
            )
        advantages, targets = core.gae(
            traj.reward,
            traj.value,
            traj.next_value,
            traj.terminated,
            traj.done,
            gamma=hp.gamma,
            gae_lambda=hp.gae_lambda,
        )
        batch: Batch | SequenceBatch
        if recurrent:
            batch = sequence_batch(traj, advantages, targets, chunk)
        else:
            flat = lambda x: x.reshape((-1,) + x.shape[2:])
            batch = Batch(
                obs=flat(traj.obs),
                action=flat(traj.action),
                log_prob=flat(traj.log_prob),
                value=flat(traj.value),
                advantage=flat(advantages),
                target=flat(targets),
                action_mask=None if traj.action_mask is None else flat(traj.action_mask),
            )
        if anneal_lr:
            learning_rate = hp.learning_rate * (1.0 - state.update_step / num_updates)
        else:
            learning_rate = hp.learning_rate
        params, opt_state, loss_metrics = update(
            key_update,
            state.params,
            state.opt_state,
            batch,
            hp,
            learning_rate,
            tx=make_optimizer(hp.max_grad_norm),
            networks=networks,
            options=update_options,
        )
        count = episodes.count
        safe = jnp.maximum(count, 1.0)
        metrics = {
            "episode_return": jnp.where(count > 0, episodes.return_sum / safe, jnp.nan),
            "episode_length": jnp.where(count > 0, episodes.length_sum / safe, jnp.nan),
            "episodes": count,
            "cuts_dropped": episodes.cuts_dropped,
            "explained_variance": core.explained_variance(
                batch.value.reshape(-1), batch.target.reshape(-1), axis_name
            ),
            "learning_rate": jnp.asarray(learning_rate, jnp.float32),
            **loss_metrics,
            **_kl_metrics(traj, state.kl_ref_coef, reference is not None, axis_name),
        }
        kl_ref_coef = state.kl_ref_coef
        if adaptive_kl:
            kl_ref_coef = core.adaptive_kl_coef(
                kl_ref_coef, metrics["kl_ref"], hp.kl_ref_target, config.batch_size, hp.kl_ref_horizon
            )
        new_state = TrainState(
            params=params,
            opt_state=opt_state,
            env=env_state,
            norm=norm,
            key=key,
            update_step=state.update_step + 1,
            kl_ref_coef=kl_ref_coef,
            memory=memory,
        )
        return new_state, metrics

    precision = config.matmul_precision
    return Program(
        init=_under_precision(init, precision),
        step=_under_precision(step, precision),
        networks=networks,
        vec_env=vec_env,
        config=config,
    )


def _under_precision(fn: Callable, precision: str) -> Callable:
    """``fn`` with every float32 matmul and convolution it traces (networks and env
    alike) at ``precision``: JAX reads its default precision when an op is traced,
    so whichever driver jits ``fn``, the lowered program carries it."""

    @functools.wraps(fn)
    def under(*args):
        with jax.default_matmul_precision(precision):
            return fn(*args)

    return under


_RECURRENT_KL_REF = (
    "a KL penalty to a reference policy is not supported yet for recurrent policies (recurrent is set): the "
    "reference's log-probabilities would need a carry of their own. Set kl_ref_coef: 0 (and no kl_ref_target, "
    "no --kl-ref), or recurrent: null; --init-from alone works for recurrent runs."
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

    ``metrics`` maps each name in ``METRIC_NAMES`` to an array ``[num_updates]``.
    ``hp`` defaults to the config's traced settings; pass a ``Hyperparams`` of
    arrays to vmap over settings. ``train`` is pure: jit it, vmap it.

    ``init_from`` and ``reference`` (see ``build``) fine-tune a trained policy
    under a KL leash; ``ppo_jax.reference.load_start`` / ``load_reference``
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
