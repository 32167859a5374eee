"""Grids of traced settings × seeds, trained as one compiled, sharded program.

    result = sweep(config, grid={"learning_rate": [1e-4, 3e-4], "clip_eps": [0.1, 0.2]}, seeds=8)
    result.final_return            # [grid points, seeds]
    result.curves["episode_return"]  # [grid points, seeds, log points]

Every (grid point, seed) pair is one run. Runs differ only in their PRNG key
and their ``Hyperparams`` (traced settings), so all of them are one vmapped
program, split over every device by ``ppo_jax.sharding``. Run ``r`` is grid
point ``r // seeds`` with seed ``seeds[r % seeds]``: every grid point sees the
same seeds.

Metrics are reduced inside the compiled program: each log point (a chunk of
updates) returns per run the episode-weighted return and length and the mean of
each loss over its updates, and the sums needed for the final return. Memory
therefore grows with runs × log points, never with the number of updates.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import math
from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax import compile_cache, sharding
from ppo_jax import config as config_lib
from ppo_jax.config import STATIC_FIELDS, TRACED_FIELDS, ConfigError, PPOConfig
from ppo_jax.finetune.data import Reference, Start, require_reference
from ppo_jax.io.checkpoint import state_nbytes
from ppo_jax.metrics import CURVE_NAMES, FINAL_FRACTION, MEAN_NAMES, final_window
from ppo_jax.runner import ChunkCallback, Runner, StateCallback, chunk_plan, compiler_options, seed_keys
from ppo_jax.train import Program, build

_OPTIONAL = ("vf_clip", "target_kl", "kl_ref_target")  # null = off, which changes the program


# ---------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Grid:
    """The Cartesian product of a few traced settings; the first varies slowest.

    ``base`` is the config of the first point: every point shares its static
    settings, so it fixes the one compiled program.
    """

    axes: dict[str, tuple]
    points: tuple[dict[str, Any], ...]
    configs: tuple[PPOConfig, ...]

    @property
    def base(self) -> PPOConfig:
        return self.configs[0]


def _fmt(value: Any) -> str:
    return "null" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def make_grid(config: PPOConfig, grid: Optional[Mapping[str, Any]] = None) -> Grid:
    """Check ``grid`` ({traced setting: list of values}) against ``config``.

    Raises:
      ConfigError: a static or unknown setting, an empty list, a repeated value,
        null mixed with numbers in ``vf_clip``/``target_kl``, or a value that
        fails validation (each point's config is validated in full).

    Returns:
      The ``Grid``: its ``axes``, its ``points`` (one ``{setting: value}`` each,
      the first setting varying slowest) and each point's validated ``configs``.
    """
    grid = dict(grid or {})
    axes: dict[str, tuple] = {}
    for name, values in grid.items():
        if name in STATIC_FIELDS:
            raise ConfigError(
                f"grid: '{name}' is a static setting (it fixes shapes or the structure of the compiled "
                f"program) and cannot be a grid axis; run one sweep per value with --set {name}=... "
                f"Settings that can be grid axes: {', '.join(TRACED_FIELDS)}."
            )
        if name not in TRACED_FIELDS:
            close = difflib.get_close_matches(str(name), TRACED_FIELDS + STATIC_FIELDS, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"grid: unknown setting '{name}'.{hint} Settings that can be grid axes: {', '.join(TRACED_FIELDS)}."
            )
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            values = [values]
        if len(values) == 0:
            raise ConfigError(f"grid: '{name}' has no values; give at least one, e.g. {name}=0.1,0.2.")
        checked = tuple(_check_value(config, name, v) for v in values)
        if len(set(checked)) != len(checked):
            repeated = sorted({_fmt(v) for v in checked if checked.count(v) > 1})
            raise ConfigError(f"grid: '{name}' repeats {', '.join(repeated)}; give each value once.")
        if name in _OPTIONAL and None in checked and len(checked) > 1:
            raise ConfigError(
                f"grid: '{name}' mixes null (off) with numbers {[_fmt(v) for v in checked]}; on/off changes "
                f"the compiled program, so a grid over '{name}' takes numbers only."
            )
        axes[name] = checked
    points = tuple(dict(zip(axes, combo)) for combo in itertools.product(*axes.values()))
    configs = tuple(_point_config(config, point) for point in points)
    return Grid(axes=axes, points=points, configs=configs)


def _check_value(config: PPOConfig, name: str, value: Any) -> Any:
    checked = _point_config(config, {name: value})
    return getattr(checked, name)


def _point_config(config: PPOConfig, point: Mapping[str, Any]) -> PPOConfig:
    where = "grid " + ", ".join(f"{k}={v!r}" for k, v in point.items()) if point else "config"
    return config_lib.from_dict({**config.to_dict(), **point}, where=where)


# ---------------------------------------------------------------------------
# Reductions inside the compiled program
# ---------------------------------------------------------------------------


def _zero_sums() -> dict[str, jax.Array]:
    zero = jnp.zeros((), jnp.float32)
    sums = {
        name: zero for name in ("return_sum", "length_sum", "episodes", "final_return_sum", "final_episodes")
    }
    sums.update({name: zero for name in MEAN_NAMES})
    sums["nonfinite"] = jnp.zeros((), jnp.int32)
    sums["first_nonfinite"] = jnp.full((), -1, jnp.int32)
    return sums


def _add_update(sums, metrics, update, final_start: int):
    """Fold one update's metrics (one run) into the log point's sums."""
    count = metrics["episodes"].astype(jnp.float32)
    returns = jnp.where(count > 0, metrics["episode_return"] * count, 0.0)
    lengths = jnp.where(count > 0, metrics["episode_length"] * count, 0.0)
    final = update >= final_start
    bad = metrics["nonfinite"].astype(jnp.int32)
    out = {
        "return_sum": sums["return_sum"] + returns,
        "length_sum": sums["length_sum"] + lengths,
        "episodes": sums["episodes"] + count,
        "final_return_sum": sums["final_return_sum"] + jnp.where(final, returns, 0.0),
        "final_episodes": sums["final_episodes"] + jnp.where(final, count, 0.0),
        "nonfinite": sums["nonfinite"] | bad,
        "first_nonfinite": jnp.where(
            (sums["first_nonfinite"] < 0) & (bad != 0), update, sums["first_nonfinite"]
        ),
    }
    out.update({name: sums[name] + metrics[name].astype(jnp.float32) for name in MEAN_NAMES})
    return out


def _log_point(program: Program, final_start: int, state, hp, length):
    """``length`` updates of one run, reduced to one log point.

    ``length`` is traced, so log points of different lengths share one program.
    """

    def body(_, carry):
        state, sums = carry
        update = state.update_step
        state, metrics = program.step(state, hp)
        return state, _add_update(sums, metrics, update, final_start)

    state, sums = jax.lax.fori_loop(0, length, body, (state, _zero_sums()))
    safe = jnp.maximum(sums["episodes"], 1.0)
    point = {
        "episode_return": jnp.where(sums["episodes"] > 0, sums["return_sum"] / safe, jnp.nan),
        "episode_length": jnp.where(sums["episodes"] > 0, sums["length_sum"] / safe, jnp.nan),
        "episodes": sums["episodes"],
        **{name: sums[name] / length.astype(jnp.float32) for name in MEAN_NAMES},
        **{
            name: sums[name]
            for name in ("final_return_sum", "final_episodes", "nonfinite", "first_nonfinite")
        },
    }
    return state, point


def final_start(num_updates: int, fraction: float = FINAL_FRACTION) -> int:
    """First update of the final window (as ``logs.final_returns`` counts it)."""
    return num_updates - final_window(num_updates, fraction)


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a sweep needs, from the shapes alone (nothing compiled).

    A lower bound: XLA's temporaries (the batch flattened and shuffled, the
    activations and gradients of a minibatch) come on top; ``SweepRun.compiled_memory``
    gives XLA's own count once compiled. Both grow with runs, not with updates.
    """

    runs: int
    devices: int
    state_bytes: int  # train states of all runs (params, Adam, envs, statistics)
    rollout_bytes: int  # one rollout's buffers for all runs, alive during an update
    metrics_bytes: int  # the per-run sums of one log point on device
    host_bytes: int  # the reduced curves kept on the host
    pipelined: bool = True  # the next log point runs while the host saves this one: two train states alive

    @property
    def device_bytes(self) -> int:
        states = 2 if self.pipelined else 1
        return states * self.state_bytes + self.rollout_bytes + self.metrics_bytes

    @property
    def per_device_bytes(self) -> int:
        return math.ceil(self.device_bytes / self.devices)

    def describe(self) -> str:
        return (
            f"at least {_mib(self.per_device_bytes)} per device for {math.ceil(self.runs / self.devices)} runs "
            f"(train state {_mib(self.state_bytes / self.devices)}{' ×2, pipelined' if self.pipelined else ''}, "
            f"rollout buffers "
            f"{_mib(self.rollout_bytes / self.devices)}, metrics {_mib(self.metrics_bytes / self.devices)}); "
            f"host {_mib(self.host_bytes)} of curves"
        )


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 / 10 else f"{n / 2**10:,.1f} KiB"


def estimate_memory(
    program: Program, runs: int, devices: int, log_points: int, pipelined: bool = True
) -> MemoryEstimate:
    config = program.config
    hp = config.hyperparams()
    state_bytes = state_nbytes(jax.eval_shape(program.init, jax.random.PRNGKey(0), hp))
    spec = program.vec_env.spec
    obs = math.prod(spec.obs_shape)
    action = 1 if spec.discrete else spec.action_dim
    # obs and final obs, action, log-prob, value, next value, reward, 2 flags, advantage, target
    per_step = 4 * (2 * obs + action + 8)
    rollout_bytes = config.num_steps * config.num_envs * per_step
    sums = jax.eval_shape(_zero_sums)
    metrics_bytes = state_nbytes(sums)
    host_bytes = runs * log_points * (len(CURVE_NAMES) + 4) * 4
    padded = sharding.padded_size(runs, devices)
    return MemoryEstimate(
        runs=runs,
        devices=devices,
        state_bytes=padded * state_bytes,
        rollout_bytes=padded * rollout_bytes,
        metrics_bytes=padded * metrics_bytes,
        host_bytes=host_bytes,
        pipelined=pipelined,
    )


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Per-run results, indexed ``[grid point, seed, ...]``.

    ``curves[name]``: ``[points, seeds, log points]`` (see ``CURVE_NAMES``), at
    ``env_steps[log point]`` env steps per run. ``final_return``: the mean return
    of the episodes that finished in the last 5% of updates (NaN if none did).
    ``nonfinite``: 0, or the OR of the codes of ``ppo_jax.update`` (1 loss,
    2 gradient, 4 parameters) seen in that run; ``first_nonfinite_update`` is
    the update where it first happened (-1 if never). Such runs keep going.
    """

    config: PPOConfig
    axes: dict[str, tuple]
    points: tuple[dict[str, Any], ...]
    seeds: list[int]
    env_steps: np.ndarray
    curves: dict[str, np.ndarray]
    final_return: np.ndarray
    nonfinite: np.ndarray
    first_nonfinite_update: np.ndarray
    compile_seconds: float
    train_seconds: float
    num_devices: int
    num_processes: int
    memory: MemoryEstimate
    start_env_steps: int = 0  # env steps per run done before this session (a resumed sweep)

    @property
    def num_runs(self) -> int:
        return len(self.points) * len(self.seeds)

    @property
    def steps_per_second(self) -> float:
        done = int(self.env_steps[-1]) if len(self.env_steps) else 0
        return (done - self.start_env_steps) * self.num_runs / max(self.train_seconds, 1e-9)


class SweepRun(Runner):
    """A grid × seeds sweep, compiled ahead of time, run log point by log point
    (the grid × seeds axis of ``ppo_jax.runner.Runner``)."""

    def __init__(
        self,
        grid: Grid,
        seeds: Sequence[int],
        log_points: int = 50,
        devices: Optional[Sequence[jax.Device]] = None,
        init_from: Optional[Start] = None,
        reference: Optional[Reference] = None,
        pipeline: bool = True,
        plan: Optional[Sequence[int]] = None,
    ):
        """``pipeline``: dispatch log point k+1 before the host's IO for k
        (``ppo_jax.runner.run_chunks``); False donates the state instead, one
        train state less on the device. ``plan``: the updates of each log point
        (default ``chunk_plan(num_updates, log_points)``); any lengths share the
        one program (``ppo_jax.population`` ends log points at its ready points)."""
        self.grid = grid
        self.pipeline = pipeline
        self.seeds = [int(s) for s in seeds]
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed.")
        if min(self.seeds) < 0:
            raise ConfigError(f"seeds must be ≥ 0, got {min(self.seeds)}.")
        if log_points < 1:
            raise ConfigError(f"log_points must be ≥ 1, got {log_points}.")
        self.config = grid.base
        require_reference(list(grid.configs), reference)
        self.program = build(self.config, init_from=init_from, reference=reference)
        self.init_from, self.reference = init_from, reference
        self.mesh = sharding.run_mesh(devices)
        self.num_devices = self.mesh.size
        self.num_points = len(grid.points)
        self.num_runs = self.num_points * len(self.seeds)
        self.padded_runs = sharding.padded_size(self.num_runs, self.num_devices)
        self.plan = chunk_plan(self.config.num_updates, log_points) if plan is None else list(plan)
        if sum(self.plan) != self.config.num_updates or min(self.plan) < 1:
            raise ConfigError(
                f"plan {self.plan}: log points of ≥ 1 update summing to {self.config.num_updates}."
            )
        self.memory = estimate_memory(self.program, self.num_runs, self.num_devices, len(self.plan), pipeline)
        self._start_update = 0
        self._compiled: Any = None  # the compiled log-point program
        self.cache_hits: list[str] = []

    def _inputs(self):
        keys = np.asarray(seed_keys(self.seeds))
        keys = np.tile(keys, (self.num_points, 1))
        hps = [c.hyperparams() for c in self.grid.configs]
        hp = jax.tree.map(lambda *xs: np.repeat(np.stack([np.asarray(x) for x in xs]), len(self.seeds)), *hps)
        padded = sharding.pad_runs((keys, hp), self.padded_runs)
        return sharding.to_devices(padded, self.mesh)

    def _length(self, length: int) -> jax.Array:
        replicated = jax.sharding.NamedSharding(self.mesh, sharding.REPLICATED)
        return jax.make_array_from_callback((), replicated, lambda _: np.asarray(length, np.int32))

    def compile(self):
        """Compile ``init`` and the one log-point program; return the initial states.

        As ``ChunkedRun.compile``: with the compile caches on, programs an
        earlier sweep of the same shapes kept are loaded instead of traced and
        compiled (``self.cache_hits`` names them); the grid's values and the
        seeds are arguments, so another grid of the same size loads them too.
        """
        return self._compile(self._build_programs)

    def _build_programs(self):
        keys, self._hp = self._inputs()
        args = (keys, self._hp)
        split = sharding.SPLIT
        self._lengths = {n: self._length(n) for n in sorted(set(self.plan))}
        donate = () if self.pipeline else 0
        programs = compile_cache.RunPrograms(*self._executable_cache(args, donate))

        def compile_init():
            return (
                jax.jit(sharding.over_runs(jax.vmap(self.program.init), self.mesh, (split, split)))
                .lower(*args)
                .compile()
            )

        state = programs.get("init", args, compile_init)(*args)
        step_args = (state, self._hp, self._lengths[self.plan[0]])

        def compile_step():
            body = functools.partial(_log_point, self.program, final_start(self.config.num_updates))
            step = sharding.over_runs(
                jax.vmap(body, in_axes=(0, 0, None)), self.mesh, (split, split, sharding.REPLICATED)
            )
            return jax.jit(step, donate_argnums=donate).lower(*step_args).compile(compiler_options())

        self._compiled = programs.get("log point", step_args, compile_step)
        self.cache_hits = programs.hits
        return state

    def log_point(self, state, hp, length: int):
        """Dispatch one log point of ``length`` updates (a length of the plan) with
        per-run settings ``hp`` (sharded as ``compile`` left them); returns at once."""
        return self._compiled(state, hp, self._lengths[length])

    def _executable_cache(self, args, donate) -> tuple[Optional[compile_cache.ExecutableCache], dict]:
        """The executable cache and the two programs' keys (``Runner._open_programs``)."""
        driver = {"driver": "sweep", "final_start": final_start(self.config.num_updates)}
        programs = {
            "init": {"program": "init"},
            "log point": {"program": "log point", "donate": bool(donate), "options": compiler_options()},
        }
        return self._open_programs(self.mesh.devices.flat, args, driver, programs)

    def compiled_memory(self) -> Optional[int]:
        """XLA's own count of one device's bytes for the log-point program, if it gives one."""
        try:
            stats = self._compiled.memory_analysis()
            return int(
                stats.argument_size_in_bytes
                + stats.output_size_in_bytes
                + stats.temp_size_in_bytes
                - stats.alias_size_in_bytes
            )
        except Exception:  # not every backend reports it
            return None

    def run(
        self,
        state,
        on_chunk: Optional[ChunkCallback] = None,
        *,
        pieces: Sequence[dict[str, np.ndarray]] = (),
        on_state: Optional[StateCallback] = None,
    ) -> SweepResult:
        """Run every log point; ``on_chunk(updates_done, point, seconds)`` after each,
        with ``point[name]`` of shape ``[grid points, seeds]``.

        To continue a sweep, pass the state saved after ``len(pieces)`` log
        points and those log points (``log_points_of``): the remaining log
        points are the same program as in the uninterrupted sweep, so the
        result is bitwise the same.

        ``on_state(updates_done, state, pieces)`` is called after each log
        point, before any later one can reuse the state's buffers; it may save
        them (``checkpoint_tree``). If it returns True the sweep stops there, sets
        ``self.stopped_early``, and the result holds the log points so far.

        Log point k+1 runs on the devices while the host fetches and saves k
        (``run_chunks``); the results are bitwise those of ``pipeline=False``.
        """
        if self._compiled is None:
            raise RuntimeError("call compile() first")
        pieces = list(pieces)
        self._start_update = sum(self.plan[: len(pieces)])
        items = [(length, None) for length in self.plan[len(pieces) :]]
        self._run(
            state, items, start_update=self._start_update, pieces=pieces, on_chunk=on_chunk, on_state=on_state
        )
        return self._result(pieces)

    # -- the runner's hooks: a log point over every run ----------------------

    def _dispatch(self, state, item):
        length, _ = item
        return self._compiled(state, self._hp, self._lengths[length])

    def _fetch(self, point) -> dict[str, np.ndarray]:
        shape = (self.num_points, len(self.seeds))
        return {k: np.asarray(v)[: self.num_runs].reshape(shape) for k, v in sharding.to_host(point).items()}

    def checkpoint_tree(self, state, pieces: Sequence[dict[str, np.ndarray]]) -> dict:
        """What a checkpoint holds: every run's train state (padding included) and
        the reduced log points so far, ``[grid points, seeds, log points]``."""
        return {"runs": state, "log_points": {k: np.stack([p[k] for p in pieces], -1) for k in pieces[0]}}

    def checkpoint_target(self, state, log_points: int) -> dict:
        """The structure ``checkpoint_tree`` saves after ``log_points`` log points
        (``state``: the compiled initial state, for shapes and shardings)."""
        shape = (self.num_points, len(self.seeds), log_points)
        sums = jax.eval_shape(_zero_sums)
        names = list(CURVE_NAMES) + ["final_return_sum", "final_episodes", "nonfinite", "first_nonfinite"]
        dtypes = {name: sums.get(name, jax.ShapeDtypeStruct((), jnp.float32)).dtype for name in names}
        # Host arrays, the same on every process: each reads them onto a device of its own.
        local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        points = {n: jax.ShapeDtypeStruct(shape, dtypes[n], sharding=local) for n in names}
        return {"runs": state, "log_points": points}

    def _result(self, pieces: list[dict[str, np.ndarray]]) -> SweepResult:
        stack = lambda name: np.stack([p[name] for p in pieces], axis=-1)
        final_sum = stack("final_return_sum").astype(np.float64).sum(-1)
        final_count = stack("final_episodes").astype(np.float64).sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            final_return = np.where(final_count > 0, final_sum / final_count, np.nan)
        first = stack("first_nonfinite")
        seen = first >= 0
        first_update = np.where(
            seen.any(-1), np.take_along_axis(first, seen.argmax(-1)[..., None], -1)[..., 0], -1
        )
        return SweepResult(
            config=self.config,
            axes=self.grid.axes,
            points=self.grid.points,
            seeds=self.seeds,
            env_steps=np.cumsum(np.asarray(self.plan[: len(pieces)], np.int64)) * self.config.batch_size,
            curves={name: stack(name) for name in CURVE_NAMES},
            final_return=final_return,
            nonfinite=np.bitwise_or.reduce(stack("nonfinite"), axis=-1),
            first_nonfinite_update=first_update,
            compile_seconds=self.compile_seconds,
            train_seconds=self.train_seconds,
            num_devices=self.num_devices,
            num_processes=jax.process_count(),
            memory=self.memory,
            start_env_steps=self._start_update * self.config.batch_size,
        )


def log_points_of(restored: dict) -> list[dict[str, np.ndarray]]:
    """The per-log-point pieces of a restored ``checkpoint_tree``."""
    stacked = {k: np.asarray(v) for k, v in restored["log_points"].items()}
    count = next(iter(stacked.values())).shape[-1]
    return [{k: v[..., i] for k, v in stacked.items()} for i in range(count)]


def sweep(
    config: PPOConfig,
    grid: Optional[Mapping[str, Any]] = None,
    seeds: int | Sequence[int] = 8,
    *,
    first_seed: int = 0,
    log_points: int = 50,
    devices: Optional[Sequence[jax.Device]] = None,
    on_chunk: Optional[ChunkCallback] = None,
    init_from: Optional[Start] = None,
    reference: Optional[Reference] = None,
) -> SweepResult:
    """Train every grid point × seed in one compiled program; see ``SweepResult``.

    Args:
      config: the settings shared by every run.
      grid: {traced setting: list of values}; the product of the lists is the grid.
      seeds: a number of seeds (``first_seed, first_seed+1, ...``) or the seeds themselves.
      first_seed: the first seed when ``seeds`` is a number.
      log_points: chunks of updates; each is reduced to one point of the curves.
      devices: the devices to split the runs over (default: all, on every process;
        call ``jax.distributed.initialize`` first for several hosts).
      on_chunk: called on the host after each log point.
      init_from: fine-tune every run from these parameters and statistics (see
        ``ppo_jax.train.build``).
      reference: the frozen policy of every run's KL leash (see ``ppo_jax.train.build``).

    Returns:
      A ``SweepResult``: per-run curves ``[points, seeds, log points]``, final returns
      ``[points, seeds]`` and non-finite flags, with the grid's points and the seeds.

    Raises:
      ConfigError: a bad grid, a bad value, or no seeds; before anything compiles.
    """
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"seeds must be at least 1, got {seeds}.")
        seeds = range(first_seed, first_seed + seeds)
    run = SweepRun(
        make_grid(config, grid),
        seeds,
        log_points=log_points,
        devices=devices,
        init_from=init_from,
        reference=reference,
    )
    return run.run(run.compile(), on_chunk)
