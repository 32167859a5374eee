"""One chunked runner for every run axis: seeds (``driver.ChunkedRun``), grid points ×
seeds (``sweeps.SweepRun``) and a population (``population.PBTRun``).

A run is compiled ahead of time and stepped chunk by chunk. The runner owns what
every axis shares: compiling through the executable cache (and not where the
programs close over arrays), the pipelined loop (``run_chunks``), the bookkeeping
of updates done and early stops, the timing, and the hand-over to the callbacks.
An axis says how to dispatch one chunk, how to fetch its output to the host, and
how to reduce it there (per-update metrics for ``train``, log points for
``sweep``, log points and ready points for ``pbt``).

The chunks compose to exactly the scan of ``train(key)``: the same ``init``, the
same ``step``, the same keys. Between chunks the host may do IO (progress,
files); nothing inside a chunk waits for the host. The host's IO for chunk k
overlaps chunk k+1 on the device: k+1 is dispatched, asynchronously, before
chunk k's output is fetched.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import chex
import jax
import numpy as np

from ppo_jax import compile_cache

# on_chunk(update, host output of the chunk, seconds since the run began); the update is
# train's first update of the chunk, a sweep's or pbt's updates done after it.
ChunkCallback = Callable[[int, dict[str, np.ndarray], float], None]
# on_state(updates done, *what a checkpoint of the run holds) -> stop the run here?
# train hands (state,), sweep and pbt (state, log points so far).
StateCallback = Callable[..., bool]


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


def chunk_plan_at(num_updates: int, bounds: list[int], target_chunks: int = 50) -> list[int]:
    """``chunk_plan`` with a chunk boundary at each of ``bounds`` (0 < b < num_updates):
    each interval between them gets about its share of ``target_chunks``."""
    edges = [0] + sorted(bounds) + [num_updates]
    plan = []
    for start, end in zip(edges[:-1], edges[1:]):
        plan += chunk_plan(end - start, max(1, round(target_chunks * (end - start) / num_updates)))
    return plan


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


@dataclass
class HostTimes:
    """Where the host's time went between chunks (seconds, summed over chunks).

    ``wait``: blocked until a chunk's metrics were ready (the device busy, the
    host idle). ``io``: the host busy with a finished chunk: fetching its
    metrics to numpy, logging, checkpointing. Pipelined, chunk k's ``io``
    overlaps chunk k+1 on the device, so the device idles only where a chunk's
    ``io`` is longer than the next chunk's run time; a ``wait`` near zero with a
    large ``io`` says the host, not the device, set the pace.
    """

    wait: float = 0.0
    io: float = 0.0
    chunks: int = 0

    def describe(self) -> str:
        per = max(self.chunks, 1)
        return (
            f"host per chunk: {1e3 * self.io / per:,.1f} ms fetch + logs + checkpoints, "
            f"{1e3 * self.wait / per:,.1f} ms waiting for the device ({self.chunks} chunks)"
        )


def run_chunks(
    step: Callable[[Any, Any], tuple[Any, Any]],
    state: Any,
    lengths: Sequence[Any],
    fetch: Callable[[Any], Any],
    on_done: Callable[[int, Any, Any], bool],
    *,
    pipeline: bool = True,
) -> tuple[Any, HostTimes]:
    """Run ``step`` once per chunk length, chaining the state; return the state
    after the last chunk kept and the host's times.

    ``step(state, length) -> (state, metrics)`` dispatches a chunk (a jitted
    call: it returns at once, the device works on). ``fetch(metrics)`` brings a
    chunk's metrics to the host. ``on_done(i, host_metrics, state_after)`` is
    called for every chunk in order and may save ``state_after``; if it returns
    True the run stops there: that chunk is the last one kept.

    Pipelined, chunk i+1 is dispatched on chunk i's output state before chunk
    i's metrics are fetched, so the device runs i+1 while the host fetches,
    logs and checkpoints i. ``step`` must then not donate its input: chunk i's
    state stays alive until ``on_done`` has seen it, so a stop after chunk i
    (a signal, non-finite values, a failed checkpoint) keeps and returns
    exactly the state the unpipelined loop would, and the chunk already in
    flight is dropped (its work wasted, nothing of it logged or saved). The
    cost is one more train state in device memory. Unpipelined (``pipeline=
    False``), each chunk is dispatched after ``on_done`` of the one before, so
    ``step`` may donate its input.
    """
    times = HostTimes()
    inflight = step(state, lengths[0]) if lengths else None
    for i in range(len(lengths)):
        assert inflight is not None, "a chunk is dispatched before each one is awaited"
        state_after, metrics = inflight
        more = i + 1 < len(lengths)
        inflight = step(state_after, lengths[i + 1]) if pipeline and more else None
        start = time.perf_counter()
        jax.block_until_ready(metrics)
        ready = time.perf_counter()
        stop = on_done(i, fetch(metrics), state_after)
        times.wait += ready - start
        times.io += time.perf_counter() - ready
        times.chunks += 1
        state = state_after
        if stop:
            break
        if not pipeline and more:
            inflight = step(state, lengths[i + 1])
    return state, times


class Runner:
    """What every run axis shares; ``ChunkedRun``, ``SweepRun`` and ``PBTRun`` are its axes.

    An axis sets ``config``, ``pipeline``, ``init_from`` and ``reference`` and
    gives these hooks, all called on the host:

    - ``_dispatch(state, item) -> (state, out)``: dispatch one chunk (a jitted
      call that returns at once); ``item`` is ``(length, what the axis adds)``.
    - ``_fetch(out) -> dict``: the chunk's output as numpy arrays.
    - ``_reduce(first_update, length, host) -> (update, host)``: what is kept of
      the chunk and handed to ``on_chunk`` with ``update``. Default: a log point
      (sweep, pbt), kept whole, at the updates done after it.
    - ``_halt(first_update, host) -> bool``: True stops the run at this chunk
      without handing its state on (train: a non-finite value). Default: never.
    - ``_saved(state, pieces) -> tuple``: what ``on_state`` gets after the update
      count. Default: ``(state, pieces)``; train's: ``(state,)``.

    After ``_compile``: ``compile_seconds`` and ``cache_hits``. After ``_run``:
    ``updates_done``, ``stopped_early``, ``host_times`` and ``train_seconds``.
    """

    config: Any
    pipeline: bool
    init_from: Any
    reference: Any
    compile_seconds: float = 0.0
    train_seconds: float = 0.0
    updates_done: int = 0
    stopped_early: bool = False
    host_times: HostTimes

    # -- compiling -----------------------------------------------------------

    def _open_programs(
        self, devices, args, driver: dict, programs: dict
    ) -> tuple[Optional[compile_cache.ExecutableCache], dict]:
        """The executable cache and each program's key, or (None, {}) where no
        sound key exists: the cache off, a user's env, or programs that close over
        arrays (a fine-tune's start or its KL reference), which no key sees."""
        if self.init_from is not None or self.reference is not None:
            return None, {}
        return compile_cache.open_cache(self.config, devices, args, driver, programs)

    def _compile(self, build: Callable[[], Any]) -> Any:
        """``build()`` (compile every program, return the initial state), timed to the
        state's arrival in ``compile_seconds``."""
        start = time.perf_counter()
        state = build()
        jax.block_until_ready(state)
        self.compile_seconds = time.perf_counter() - start
        return state

    # -- the hooks an axis gives ---------------------------------------------

    def _dispatch(self, state, item) -> tuple[Any, Any]:
        raise NotImplementedError

    def _fetch(self, out) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _reduce(self, first_update: int, length: int, host: dict) -> tuple[int, dict]:
        """Default, a log point: kept as fetched, reported at the updates done after it."""
        return first_update + length, host

    def _halt(self, first_update: int, host: dict) -> bool:
        return False

    def _saved(self, state, pieces: list) -> tuple:
        """Default, log points: a checkpoint holds the state and every log point so far."""
        return state, pieces

    # -- running ---------------------------------------------------------------

    def _run(
        self,
        state,
        items: Sequence[tuple[int, Any]],
        *,
        start_update: int,
        pieces: list,
        on_chunk: Optional[ChunkCallback],
        on_state: Optional[StateCallback],
    ) -> Any:
        """Run the chunks ``items`` (``(length, what the axis adds)``) from ``state``,
        saved after ``start_update`` updates; append each chunk's kept output to
        ``pieces``; return the state after the last chunk kept.

        ``on_state(updates_done, *self._saved(state, pieces))`` is called after each
        chunk that did not halt, before any later chunk can reuse the state's
        buffers; if it returns True the run stops there (``stopped_early`` when
        updates remain).
        """
        self.updates_done = start_update
        self.stopped_early = False
        start = time.perf_counter()

        def on_done(i, host, state_after) -> bool:
            first, length = self.updates_done, items[i][0]
            update, kept = self._reduce(first, length, host)
            pieces.append(kept)
            if on_chunk is not None:
                on_chunk(update, kept, time.perf_counter() - start)
            if self._halt(first, kept):
                return True
            self.updates_done = first + length
            if on_state is not None and on_state(self.updates_done, *self._saved(state_after, pieces)):
                self.stopped_early = self.updates_done < self.config.num_updates
                return True
            return False

        state, self.host_times = run_chunks(
            self._dispatch, state, list(items), self._fetch, on_done, pipeline=self.pipeline
        )
        jax.block_until_ready(state)
        self.train_seconds = time.perf_counter() - start
        return state
