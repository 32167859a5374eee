"""``ppo-jax train``'s run axis: seeds, each chunk's per-update metrics kept whole.

``ChunkedRun`` is the seeds' use of ``ppo_jax.runner.Runner``: a vmapped-over-seeds
program of one chunk length per distinct length in the plan, its metrics fetched
per update, a run stopped at the first non-finite chunk.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import chex
import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from ppo_jax import compile_cache, sharding
from ppo_jax.config import Hyperparams, PPOConfig
from ppo_jax.finetune.data import Reference, Start, require_reference
from ppo_jax.metrics import describe_nonfinite
from ppo_jax.rollout import NormState
from ppo_jax.runner import (
    ChunkCallback,
    Runner,
    StateCallback,
    chunk_plan,
    chunk_plan_at,
    compiler_options,
    seed_keys,
)
from ppo_jax.train import Program, TrainState, build, run_updates


def _env_split_specs(recurrent: bool, axis_name: str) -> Any:
    """Where a data-parallel ``TrainState`` (leading seed axis) lives, as a
    ``TrainState`` of ``PartitionSpec``: the per-env leaves split on their env
    axis, the rest replicated."""
    envs: Any = PartitionSpec(None, axis_name)
    same = sharding.REPLICATED
    return TrainState(
        params=same,
        opt_state=same,
        env=envs,
        norm=NormState(obs=same, ret=same, discounted_return=envs),
        key=same,
        update_step=same,
        kl_ref_coef=same,
        memory=envs if recurrent else None,
    )


@dataclass(frozen=True)
class NonFinite:
    """Where a run first went non-finite: the seed, the update (0-based) and what."""

    seed: int
    update: int
    code: int

    @property
    def quantity(self) -> str:
        return describe_nonfinite(self.code)


class DroppedCutsWarning(UserWarning):
    """An env truncated episodes sooner than its declared time limit allows the rollout to record."""


def warn_dropped_cuts(cuts_dropped: np.ndarray, seeds, first_update: int) -> bool:
    """Warn (once) where a chunk's ``cuts_dropped`` ``[seeds, updates]`` is non-zero; whether it warned."""
    bad = np.argwhere(np.asarray(cuts_dropped) > 0)
    if not len(bad):
        return False
    seed_index, update = bad[np.argmin(bad[:, 1])]
    warnings.warn(
        f"seed {seeds[seed_index]}, update {first_update + int(update)}: "
        f"{int(np.asarray(cuts_dropped)[seed_index, update])} episodes were cut by the time limit sooner "
        "than the env's declared limit allows (its is_truncated fired before max_steps_in_episode steps), "
        "so their final observations found no slot and were bootstrapped from the next episode's reset "
        "observation. Declare the true limit: the params' max_steps_in_episode, or max_episode_steps in "
        "the config. The metric cuts_dropped counts them per update.",
        DroppedCutsWarning,
        stacklevel=2,
    )
    return True


@dataclass
class ChunkedRun(Runner):
    """A vmapped-over-seeds run, compiled ahead of time, stepped chunk by chunk
    (the seeds axis of ``ppo_jax.runner.Runner``).

    The seeds are split over the most local devices whose count divides them
    (``ppo_jax.sharding``); on one device this is the plain vmapped program.

    ``data_parallel=D`` instead splits every seed's envs over the first ``D``
    local devices (``EnvShards``): each device steps ``num_envs / D`` envs of
    every seed and computes its share of each minibatch's gradient, averaged
    over the devices. The state and metrics keep the layout of the seed-split
    run (``[seeds, num_envs, ...]`` env leaves, the envs concatenated).
    """

    config: PPOConfig
    seeds: list[int]
    hp: Optional[Hyperparams] = None
    target_chunks: int = 50
    init_from: Optional[Start] = None  # start from these parameters and statistics (--init-from)
    reference: Optional[Reference] = None  # the frozen policy of the KL penalty
    pipeline: bool = (
        True  # dispatch chunk k+1 before chunk k's IO (see run_chunks); False: donate, one state less
    )
    data_parallel: Optional[int] = (
        None  # split each seed's envs over this many devices; None: split the seeds
    )
    # piecewise-constant settings (train --schedule): (first update, hp), the first at update 0
    schedule: Optional[list[tuple[int, Hyperparams]]] = None
    program: Program = field(init=False)
    compile_seconds: float = field(init=False, default=0.0)
    cache_hits: list[str] = field(
        init=False, default_factory=list
    )  # programs loaded from the executable cache

    def __post_init__(self):
        require_reference([self.config], self.reference)
        shards = None if self.data_parallel is None else sharding.EnvShards(self.data_parallel)
        self.program = build(self.config, init_from=self.init_from, reference=self.reference, shards=shards)
        if self.hp is None:
            self.hp = self.config.hyperparams()
        if self.schedule is None:
            self.plan = chunk_plan(self.config.num_updates, self.target_chunks)
        else:  # a chunk ends where the settings change
            starts = [update for update, _ in self.schedule[1:]]
            self.plan = chunk_plan_at(self.config.num_updates, starts, self.target_chunks)
        self._compiled: dict[int, Callable] = {}
        if shards is None:  # the seeds split, everything of a seed on its device
            self.mesh = sharding.run_mesh(sharding.devices_dividing(len(self.seeds)))
            self._keys_spec = self._state_spec = self._metrics_spec = sharding.SPLIT
        else:  # every device holds every seed, with its share of the envs
            self.mesh = sharding.env_mesh(shards.count)
            self._keys_spec = self._metrics_spec = sharding.REPLICATED
            self._state_spec = _env_split_specs(self.config.recurrent is not None, shards.axis_name)

    def _per_device(self, fn: Callable, first_spec, out_specs) -> Callable:
        """``fn(x, hp)`` (vmapped over seeds) run by each device on its part of ``x``; settings shared."""
        return sharding.over_runs(fn, self.mesh, (first_spec, sharding.REPLICATED), out_specs)

    def _chunk_fn(self, length: int):
        program = self.program

        def chunk(state: TrainState, hp: Hyperparams):
            return run_updates(program, state, hp, length)

        per_device = self._per_device(
            jax.vmap(chunk, in_axes=(0, None)), self._state_spec, (self._state_spec, self._metrics_spec)
        )
        return jax.jit(per_device, donate_argnums=() if self.pipeline else 0)

    @functools.cached_property
    def _init_fn(self) -> Any:
        """The jitted init, one per run: ``abstract_state`` and ``compile`` then trace it once
        (a second jitted function of the same code would be traced again, about a second)."""
        init = jax.vmap(self.program.init, in_axes=(0, None))
        return jax.jit(self._per_device(init, self._keys_spec, self._state_spec))

    def abstract_state(self) -> TrainState:
        """Shapes and dtypes of the whole train state (every device's part), without computing it."""
        return jax.eval_shape(self._init_fn, self._keys(), self.hp)

    def _keys(self) -> chex.Array:
        """The seeds' keys where ``init`` takes them: split over the devices, or on each."""
        keys = seed_keys(self.seeds)
        if self.data_parallel is None:
            return sharding.to_devices(keys, self.mesh)
        return jax.device_put(keys, NamedSharding(self.mesh, sharding.REPLICATED))

    def compile(self) -> TrainState:
        """Compile ``init`` and every chunk length; return the initial state.

        With the compile caches on (``ppo_jax.compile_cache``), executables
        kept by an earlier run of the same program are loaded instead of
        traced and compiled; ``self.cache_hits`` names the programs loaded.
        """
        return self._compile(self._build_programs)

    def _build_programs(self) -> TrainState:
        args = (self._keys(), self.hp)
        programs = compile_cache.RunPrograms(*self._executable_cache(args))
        init = programs.get("init", args, lambda: self._init_fn.lower(*args).compile())
        state = init(*args)
        for length in sorted(set(self.plan)):
            self._compiled[length] = programs.get(
                length,
                (state, self.hp),
                lambda length=length: (
                    self._chunk_fn(length).lower(state, self.hp).compile(compiler_options())
                ),
            )
        self.cache_hits = ["init" if name == "init" else f"chunk {name}" for name in programs.hits]
        return state

    def _executable_cache(self, args) -> tuple[Optional[compile_cache.ExecutableCache], dict]:
        """The executable cache and each program's key (``Runner._open_programs``)."""
        driver = {
            "specs": [repr(spec) for spec in (self._keys_spec, self._state_spec, self._metrics_spec)],
            "data_parallel": self.data_parallel,
        }
        programs: dict[Any, dict[str, Any]] = {"init": {"program": "init"}}
        for length in set(self.plan):
            programs[length] = {
                "program": "chunk",
                "length": length,
                "donate": not self.pipeline,
                "options": compiler_options(),
            }
        return self._open_programs(self.mesh.devices.flat, args, driver, programs)

    def hp_at(self, update: int) -> Hyperparams:
        """The settings of the chunk that starts at ``update``."""
        if self.schedule is None:
            assert self.hp is not None, "a run without a schedule has one set of settings"
            return self.hp
        return [hp for start, hp in self.schedule if start <= update][-1]

    def remaining_plan(self, start_update: int) -> list[int]:
        """The chunks after ``start_update`` updates; it must be a chunk boundary."""
        bounds = np.cumsum([0] + self.plan)
        if start_update not in bounds:
            raise ValueError(f"update {start_update} is not a chunk boundary of {self.plan}")
        return self.plan[int(np.searchsorted(bounds, start_update)) :]

    def run(
        self,
        state: TrainState,
        on_chunk: Optional[ChunkCallback] = None,
        *,
        start_update: int = 0,
        on_state: Optional[StateCallback] = None,
    ):
        """Run every chunk; return the final state and the metrics ``[seeds, updates]``.

        Stops at the end of the first chunk in which any seed's loss, gradient or
        parameters turned NaN or Inf, and sets ``self.nonfinite``.

        Beside ``METRIC_NAMES`` the metrics hold ``env_steps`` (per seed, int64),
        counted on the host so that long runs cannot overflow int32.

        ``on_chunk(first_update, metrics_of_chunk, seconds_so_far)`` is called on
        the host after each chunk.

        To continue a run, pass the state saved after ``start_update`` updates
        (a chunk boundary): the remaining chunks are the same programs as in the
        uninterrupted run, so the result is bitwise the same.

        ``on_state(updates_done, state)`` is called after each chunk in which
        every seed stayed finite (never with a non-finite state), before any
        later chunk can reuse the state's buffers; it may save the state. If it
        returns True the run stops there and ``self.stopped_early`` is set.

        Chunk k+1 runs on the device while the host fetches, logs and saves
        chunk k (``run_chunks``); the results are bitwise those of the
        unpipelined loop (``pipeline=False``). ``self.host_times`` says where
        the host's time went.
        """
        plan = self.remaining_plan(start_update)
        firsts = start_update + np.cumsum([0] + plan[:-1])
        self.nonfinite: Optional[NonFinite] = None
        self.warned_cuts = False
        items = [(length, self.hp_at(int(first))) for length, first in zip(plan, firsts)]
        pieces: list[dict[str, np.ndarray]] = []
        state = self._run(
            state, items, start_update=start_update, pieces=pieces, on_chunk=on_chunk, on_state=on_state
        )
        metrics = {k: np.concatenate([p[k] for p in pieces], axis=1) for k in pieces[0]}
        return state, metrics

    # -- the runner's hooks: a chunk of updates over the seeds ---------------

    def _dispatch(self, state, item):
        length, hp = item
        return self._compiled[length](state, hp)

    def _fetch(self, out) -> dict[str, np.ndarray]:
        return jax.device_get(out)

    def _reduce(self, first_update: int, length: int, host: dict) -> tuple[int, dict]:
        updates = np.arange(first_update + 1, first_update + length + 1, dtype=np.int64)
        host["env_steps"] = np.broadcast_to(updates * self.config.batch_size, (len(self.seeds), length))
        return first_update, host

    def _halt(self, first_update: int, host: dict) -> bool:
        """Warn once of dropped cuts; stop at a chunk in which any seed went non-finite."""
        if not self.warned_cuts:
            self.warned_cuts = warn_dropped_cuts(host["cuts_dropped"], self.seeds, first_update)
        bad = np.argwhere(host["nonfinite"] != 0)
        if not len(bad):
            return False
        seed_index, update = bad[np.argmin(bad[:, 1])]
        self.nonfinite = NonFinite(
            seed=self.seeds[seed_index],
            update=first_update + int(update),
            code=int(host["nonfinite"][seed_index, update]),
        )
        return True

    def _saved(self, state, pieces: list) -> tuple:
        return (state,)
