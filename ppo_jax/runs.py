"""The run loader: a trained run, read back from its directory, for evaluation and deployment.

``load_run(run_dir)`` reads the latest checkpoint and returns the config, the
network parameters and the observation-normalization statistics of every seed,
and a jittable ``act(params, obs) -> action``. The statistics are the ones the
policy was trained with, frozen: an evaluator that rebuilt them from fresh
observations would feed the network inputs on another scale.

It rebuilds the run's program (``train.build``) to know the state's shape, so it sits
above the trainer; what reads a fine-tune's start and reference from a run
(``finetune.loaders``) sits above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import chex
import jax
import jax.numpy as jnp
from flax import struct

from ppo_jax import core
from ppo_jax.config import PPOConfig, from_dict
from ppo_jax.core.distributions import with_action_mask
from ppo_jax.envs import VecEnv
from ppo_jax.envs.wrappers import split_action_mask
from ppo_jax.networks import Networks, RecurrentNetworks
from ppo_jax.spec import EnvSpec
from ppo_jax.train import Program, TrainState, build

Act = Callable[..., chex.Array]


@struct.dataclass
class PolicyParams:
    """What ``act`` needs: network parameters and frozen observation statistics."""

    network: Any
    obs_norm: Optional[core.RunningMeanStd]  # None when normalize_obs is off


def make_act(networks: Networks, vec_env: VecEnv, normalize_obs: bool) -> Act:
    """Return ``act(params, obs, key=None, action_mask=None) -> action``, pure and jittable.

    ``obs`` is raw, as the env returns it, ``[..., *obs_shape]`` (for an env
    with action masks, its ``MaskedObservation``, or the array and
    ``action_mask`` ``[..., K]`` apart: invalid actions are never chosen). Without a key
    the action is the distribution's mode (argmax, or the Gaussian mean); with
    one it is a sample. Continuous actions come clipped to the env's bounds,
    ready to step the env. A recurrent policy's ``act`` takes and returns its
    carry (see ``_make_recurrent_act``).

    Args:
      networks: the policy's ``Networks``.
      vec_env: the vectorized env, for its spec and action bounds.
      normalize_obs: whether observations are standardized with the saved statistics.

    Returns:
      ``act(params: PolicyParams, obs, key=None, action_mask=None) -> action``.
    """

    if isinstance(networks, RecurrentNetworks):
        return _make_recurrent_act(networks, vec_env, normalize_obs)

    def act(
        params: PolicyParams,
        obs: Any,
        key: Optional[chex.PRNGKey] = None,
        action_mask: Optional[chex.Array] = None,
    ) -> chex.Array:
        obs, env_mask = split_action_mask(obs)
        action_mask = env_mask if action_mask is None else action_mask
        obs = jnp.asarray(obs, jnp.float32)
        if normalize_obs:
            assert params.obs_norm is not None, "normalize_obs needs the run's saved statistics"
            obs = core.normalize(params.obs_norm, obs)
        dist, _ = networks.apply(params.network, obs)
        dist = with_action_mask(dist, action_mask)
        action = dist.mode() if key is None else dist.sample(key)
        return vec_env.to_env_action(action)

    return act


def _make_recurrent_act(networks: RecurrentNetworks, vec_env: VecEnv, normalize_obs: bool) -> Act:
    """``act(params, obs, carry, key=None, start=None, action_mask=None) -> (action, carry)`` for a policy with memory.

    ``obs`` is ``[B, *obs_shape]`` (for an env with action masks, its
    ``MaskedObservation``, or the array and ``action_mask`` ``[B, K]`` apart) and
    ``carry`` the one returned by the previous call (``initial_carry((B,))`` at
    first). ``start`` (``[B]`` bool) marks the envs whose episode begins with
    ``obs``: their carry is reset first, as in training. Pass the returned carry
    to the next call.
    """

    def act(
        params: PolicyParams,
        obs: Any,
        carry,
        key: Optional[chex.PRNGKey] = None,
        start=None,
        action_mask: Optional[chex.Array] = None,
    ):
        obs, env_mask = split_action_mask(obs)
        action_mask = env_mask if action_mask is None else action_mask
        obs = jnp.asarray(obs, jnp.float32)
        if normalize_obs:
            assert params.obs_norm is not None, "normalize_obs needs the run's saved statistics"
            obs = core.normalize(params.obs_norm, obs)
        if start is None:
            start = jnp.zeros(obs.shape[:1], bool)
        carry, dist, _ = networks.step(params.network, carry, obs, jnp.asarray(start, bool))
        dist = with_action_mask(dist, action_mask)
        action = dist.mode() if key is None else dist.sample(key)
        return vec_env.to_env_action(action), carry

    return act


@dataclass(frozen=True)
class LoadedRun:
    """A run read back from its checkpoint. Array leaves carry a leading seed axis."""

    run_dir: Path
    config: PPOConfig
    seeds: list[int]
    update: int  # updates done when the checkpoint was written
    state: TrainState  # the whole train state, [seeds, ...]
    params: PolicyParams  # [seeds, ...]
    act: Act  # act(params_of_one_seed, obs, key=None, action_mask=None) -> action; recurrent: (params, obs, carry, key=None, start=None, action_mask=None) -> (action, carry)
    networks: Any  # Networks, or RecurrentNetworks when the config is recurrent
    spec: EnvSpec
    vec_env: VecEnv  # the env the run was trained on, wrapped as its config says

    @property
    def recurrent(self) -> bool:
        return self.config.recurrent is not None

    def initial_carry(self, batch_shape=()) -> Any:
        """A recurrent policy's carry at the start of episodes, ``[*batch_shape, recurrent_size]``."""
        if not self.recurrent:
            raise ValueError(f"{self.run_dir}: this run's policy has no recurrent core, so no carry.")
        return self.networks.initial_carry(tuple(batch_shape))

    @property
    def obs_norm(self) -> Optional[core.RunningMeanStd]:
        return self.params.obs_norm

    def params_of(self, seed: Optional[int] = None) -> PolicyParams:
        """The policy parameters of one training seed (default: the first)."""
        seed = self.seeds[0] if seed is None else seed
        if seed not in self.seeds:
            raise ValueError(f"seed {seed} is not in this run; its seeds are {self.seeds}")
        index = self.seeds.index(seed)
        return jax.tree.map(lambda x: x[index], self.params)

    def policy(self, seed: Optional[int] = None, *, stochastic: bool = False) -> Act:
        """A jitted ``policy(obs)`` (``policy(obs, key)`` if stochastic) closing
        over one seed's saved parameters and statistics. Recurrent runs:
        ``policy(obs, carry, start=None) -> (action, carry)`` (``policy(obs, carry, key, start=None)``)."""
        params = self.params_of(seed)
        act = self.act
        if self.recurrent:
            if stochastic:
                return jax.jit(lambda obs, carry, key, start=None: act(params, obs, carry, key, start))
            return jax.jit(lambda obs, carry, start=None: act(params, obs, carry, None, start))
        if stochastic:
            return jax.jit(lambda obs, key: act(params, obs, key))
        return jax.jit(lambda obs: act(params, obs))


def abstract_state(program: Program, seeds: list[int]) -> TrainState:
    """Shapes and dtypes of the train state of ``program`` vmapped over ``seeds``, without computing it."""
    from ppo_jax.driver import seed_keys

    init = jax.vmap(program.init, in_axes=(0, None))
    return jax.eval_shape(init, seed_keys(seeds), program.config.hyperparams())


def load_run(
    run_dir: str | Path, update: Optional[int] = None, env: Any = None, env_params: Any = None
) -> LoadedRun:
    """Load the latest checkpoint of ``run_dir`` (or the one after ``update`` updates).

    Args:
      run_dir: a directory written by ``ppo-jax train``.
      update: load the checkpoint after this many updates (default: the latest).
      env: the instance a run was trained on with ``make_train(config, env=...)``
        (runs of an id, import paths included, rebuild theirs).
      env_params: that env's params.

    Returns:
      A ``LoadedRun``: ``config``, ``seeds``, ``update``, ``state``, ``params``, and
      ``act`` / ``params_of(seed)`` / ``policy(seed)`` for acting with a seed's policy.

    Raises:
      ppo_jax.io.checkpoint.RunDirError: not a run directory, or no usable checkpoint.
      ppo_jax.config.ConfigError: the saved config is not valid here.
    """
    from ppo_jax.io import checkpoint

    run_dir = Path(run_dir)
    update, meta = checkpoint.latest_checkpoint(run_dir, update)
    if meta.get("kind", "train") != "train":
        raise checkpoint.RunDirError(
            f"{run_dir} is a {meta['kind']} directory, not a run of 'ppo-jax train': its checkpoints hold every "
            "grid point's state together. Its results are in report.md and results.csv; to evaluate or render "
            "one setting, train it: ppo-jax train CONFIG --set KEY=VALUE ... --seeds N"
        )
    config = from_dict(
        meta["config"], where=f"{run_dir} (checkpoint {update})", env=env, env_params=env_params
    )
    checkpoint.check_prng_impl(run_dir, meta)
    seeds = [int(s) for s in meta["seeds"]]
    try:
        program = build(config, env, env_params)
        state = checkpoint.restore_state(run_dir, update, abstract_state(program, seeds))
    except checkpoint.CheckpointError as err:
        raise checkpoint.RunDirError(str(err)) from None
    vec_env = program.vec_env
    networks = program.networks
    params = PolicyParams(network=state.params, obs_norm=state.norm.obs if config.normalize_obs else None)
    return LoadedRun(
        run_dir=run_dir,
        config=config,
        seeds=seeds,
        update=update,
        state=state,
        params=params,
        act=make_act(networks, vec_env, config.normalize_obs),
        networks=networks,
        spec=vec_env.spec,
        vec_env=vec_env,
    )
