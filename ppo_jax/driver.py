"""Run a program in jitted chunks of updates, handing each chunk to callbacks.

The chunks compose to exactly the scan of ``train(key)``: the same ``init``,
the same ``step``, the same keys. Between chunks the host may do IO (progress,
files); nothing inside a chunk waits for the host.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import chex
import jax
import numpy as np

from ppo_jax import sharding
from ppo_jax.config import Hyperparams, PPOConfig
from ppo_jax.finetune import Reference, Start, require_reference
from ppo_jax.train import Program, TrainState, build, run_updates
from ppo_jax.update import describe_nonfinite

ChunkCallback = Callable[[int, dict[str, np.ndarray], float], None]
StateCallback = Callable[[int, TrainState], bool]


def seed_keys(seeds: list[int]) -> chex.Array:
    """One PRNG key per seed; key i of a vmapped run is ``PRNGKey(seeds[i])``."""
    return jax.vmap(jax.random.PRNGKey)(np.asarray(seeds, dtype=np.uint32))


def chunk_plan(num_updates: int, target_chunks: int = 50) -> list[int]:
    """Chunk lengths summing to ``num_updates``: equal lengths when a divisor fits,
    else equal lengths plus one shorter chunk (which compiles a second program)."""
    if num_updates <= target_chunks:
        return [1] * num_updates
    ideal = num_updates / target_chunks
    for length in sorted(range(1, num_updates + 1), key=lambda d: abs(d - ideal)):
        if abs(length - ideal) > ideal / 2:
            break
        if num_updates % length == 0:
            return [length] * (num_updates // length)
    length = math.ceil(ideal)
    full, rest = divmod(num_updates, length)
    return [length] * full + ([rest] if rest else [])


def compiler_options() -> dict:
    """XLA options for the training programs on this backend.

    On the CPU, LLVM's optimization level 1 instead of the default halves the
    compile time of the CartPole preset's chunk (measured here: 19-20 s -> 9-10 s
    on a loaded 2-core machine, three alternating runs each) with no loss of run
    speed: the heavy kernels are library matmuls, which LLVM's level does not
    touch. Other backends keep their defaults.
    """
    if jax.default_backend() == "cpu":
        return {"xla_backend_optimization_level": 1}
    return {}


@dataclass(frozen=True)
class NonFinite:
    """Where a run first went non-finite: the seed, the update (0-based) and what."""

    seed: int
    update: int
    code: int

    @property
    def quantity(self) -> str:
        return describe_nonfinite(self.code)


@dataclass
class ChunkedRun:
    """A vmapped-over-seeds run, compiled ahead of time, stepped chunk by chunk.

    The seeds are split over the most local devices whose count divides them
    (``ppo_jax.sharding``); on one device this is the plain vmapped program.
    """

    config: PPOConfig
    seeds: list[int]
    hp: Optional[Hyperparams] = None
    target_chunks: int = 50
    init_from: Optional[Start] = None  # start from these parameters and statistics (--init-from)
    reference: Optional[Reference] = None  # the frozen policy of the KL penalty
    program: Program = field(init=False)
    compile_seconds: float = field(init=False, default=0.0)

    def __post_init__(self):
        require_reference([self.config], self.reference)
        self.program = build(self.config, init_from=self.init_from, reference=self.reference)
        if self.hp is None:
            self.hp = self.config.hyperparams()
        self.plan = chunk_plan(self.config.num_updates, self.target_chunks)
        self._compiled: dict[int, Callable] = {}
        self.mesh = sharding.run_mesh(sharding.devices_dividing(len(self.seeds)))
        self._in_specs = (sharding.SPLIT, sharding.REPLICATED)  # seeds split, settings shared

    def _chunk_fn(self, length: int):
        program = self.program

        def chunk(state: TrainState, hp: Hyperparams):
            return run_updates(program, state, hp, length)

        per_device = sharding.over_runs(jax.vmap(chunk, in_axes=(0, None)), self.mesh, self._in_specs)
        return jax.jit(per_device, donate_argnums=0)

    def compile(self) -> TrainState:
        """Compile ``init`` and every chunk length; return the initial state."""
        start = time.perf_counter()
        keys = sharding.to_devices(seed_keys(self.seeds), self.mesh)
        init = jax.jit(sharding.over_runs(jax.vmap(self.program.init, in_axes=(0, None)), self.mesh, self._in_specs))
        state = init(keys, self.hp)
        for length in sorted(set(self.plan)):
            lowered = self._chunk_fn(length).lower(state, self.hp)
            self._compiled[length] = lowered.compile(compiler_options())
        jax.block_until_ready(state)
        self.compile_seconds = time.perf_counter() - start
        return state

    def remaining_plan(self, start_update: int) -> list[int]:
        """The chunks after ``start_update`` updates; it must be a chunk boundary."""
        bounds = np.cumsum([0] + self.plan)
        if start_update not in bounds:
            raise ValueError(f"update {start_update} is not a chunk boundary of {self.plan}")
        return self.plan[int(np.searchsorted(bounds, start_update)):]

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
        every seed stayed finite (never with a non-finite state), before the
        next chunk reuses the state's buffers; it may save the state. If it
        returns True the run stops there and ``self.stopped_early`` is set.
        """
        pieces = []
        done = start_update
        self.nonfinite = None
        self.stopped_early = False
        start = time.perf_counter()
        for length in self.remaining_plan(start_update):
            state, metrics = self._compiled[length](state, self.hp)
            host = jax.device_get(metrics)
            updates = np.arange(done + 1, done + length + 1, dtype=np.int64)
            host["env_steps"] = np.broadcast_to(updates * self.config.batch_size, (len(self.seeds), length))
            pieces.append(host)
            if on_chunk is not None:
                on_chunk(done, host, time.perf_counter() - start)
            bad = np.argwhere(host["nonfinite"] != 0)
            if len(bad):
                seed_index, update = bad[np.argmin(bad[:, 1])]
                self.nonfinite = NonFinite(
                    seed=self.seeds[seed_index],
                    update=done + int(update),
                    code=int(host["nonfinite"][seed_index, update]),
                )
                break
            done += length
            if on_state is not None and on_state(done, state):
                self.stopped_early = done < self.config.num_updates
                break
        self.updates_done = done
        jax.block_until_ready(state)
        self.train_seconds = time.perf_counter() - start
        metrics = {k: np.concatenate([p[k] for p in pieces], axis=1) for k in pieces[0]}
        return state, metrics
