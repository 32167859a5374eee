"""Population-based training (Jaderberg et al. 2017) as one compiled, sharded program.

    result = pbt(config, explore={"learning_rate": (1e-5, 1e-2, "log")}, population=16, ready=40)
    result.final_return          # [members]
    result.schedule()            # [(first update, {setting: value})] along the best member's line

A population is another run axis of ``ppo_jax.sweeps.SweepRun``: member ``i``
trains with seed ``seed + i`` and its own ``Hyperparams``. Every ``ready``
updates, one jitted step on the devices ranks the members by their mean episode
return since the last ready point (truncation selection): each of the bottom
``fraction`` copies the train state of a member drawn from the top ``fraction``
(parameters, optimizer moments, normalization statistics, the adaptive KL
coefficient; its own env states, episode returns, recurrent carry and key stay
its own) and then explores: each explored setting of the parent is multiplied by
0.8 or 1.25, or with probability ``resample`` drawn anew from its range, and
clipped to the range. Nothing of it passes through the host; on several devices
XLA gathers the parents' states across them.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax import sharding
from ppo_jax.config import STATIC_FIELDS, TRACED_FIELDS, ConfigError, PPOConfig
from ppo_jax.runner import Runner, chunk_plan_at
from ppo_jax.sweeps import CURVE_NAMES, SweepRun, _point_config, make_grid
from ppo_jax.train import TrainState

PERTURB = (0.8, 1.25)  # Jaderberg et al.'s explore factors
_NEEDS_REFERENCE = ("kl_ref_coef", "kl_ref_target", "kl_ref_horizon")
_POINT_SUMS = ("final_return_sum", "final_episodes", "nonfinite", "first_nonfinite")


# ---------------------------------------------------------------------------
# What is explored, checked before anything compiles
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Explore:
    """One explored setting and its range, ``[low, high]``; ``log``: drawn log-uniformly."""

    name: str
    low: float
    high: float
    log: bool = False

    def describe(self) -> str:
        return f"{self.name}={self.low:g}:{self.high:g}" + (":log" if self.log else "")


def parse_explore(text: str) -> Explore:
    """``KEY=LOW:HIGH[:log]`` (the CLI's ``--explore``) as an ``Explore``; ranges are checked later."""
    example = "for example --explore learning_rate=1e-5:1e-2:log"
    name, sep, raw = (part.strip() for part in text.partition("="))
    parts = [p.strip() for p in raw.split(":")]
    if not sep or not name or len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
        raise ConfigError(f"--explore {text!r}: expected KEY=LOW:HIGH or KEY=LOW:HIGH:log, {example}.")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise ConfigError(f"--explore {text!r}: LOW and HIGH must be numbers, {example}.") from None
    return Explore(name, low, high, len(parts) == 3)


def check_explores(config: PPOConfig, explores: Sequence[Explore]) -> tuple[Explore, ...]:
    """Refuse what cannot be explored: a static, unknown, off or repeated setting, a
    range that is empty, not positive on a log scale, invalid at an end, or that
    excludes the config's own value.

    Raises:
      ConfigError: naming the setting, what was wrong and what would be right.
    """
    if not explores:
        raise ConfigError("pbt: give at least one setting to explore, e.g. learning_rate=1e-5:1e-2:log.")
    names = [e.name for e in explores]
    for e in explores:
        where = f"explore {e.describe()}"
        if names.count(e.name) > 1:
            raise ConfigError(f"{where}: '{e.name}' is explored twice; give it once.")
        _check_name(config, e.name, where)
        if not (math.isfinite(e.low) and math.isfinite(e.high) and e.low < e.high):
            raise ConfigError(f"{where}: the range must be finite with LOW < HIGH, got {e.low:g}:{e.high:g}.")
        if e.log and e.low <= 0:
            raise ConfigError(f"{where}: a log range needs LOW > 0, got {e.low:g}; drop ':log' or raise LOW.")
        for end in (e.low, e.high):
            _point_config(config, {e.name: end})  # the ends must be valid values (e.g. gamma ≤ 1)
        value = getattr(config, e.name)
        if not e.low <= value <= e.high:
            raise ConfigError(
                f"{where}: the config's {e.name} = {value:g} lies outside the range; members start from it "
                f"(and --init uniform needs a range that holds it too), so widen the range or --set {e.name}."
            )
    return tuple(explores)


def _check_name(config: PPOConfig, name: str, where: str) -> None:
    if name in STATIC_FIELDS:
        raise ConfigError(
            f"{where}: '{name}' is a static setting (it fixes shapes or the structure of the compiled "
            f"program) and cannot change during a run. Settings PBT can explore: {', '.join(_explorable())}."
        )
    if name not in TRACED_FIELDS:
        close = difflib.get_close_matches(name, TRACED_FIELDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{where}: unknown setting '{name}'.{hint} Explorable: {', '.join(_explorable())}.")
    if name in _NEEDS_REFERENCE:
        raise ConfigError(
            f"{where}: '{name}' acts only with a reference policy (fine-tuning), which pbt does not take yet."
        )
    if getattr(config, name) is None:
        raise ConfigError(
            f"{where}: '{name}' is off (null) in the config, and on/off changes the compiled program; "
            f"--set {name}=VALUE inside the range to explore it."
        )


def _explorable() -> list[str]:
    return [n for n in TRACED_FIELDS if n not in _NEEDS_REFERENCE]


@dataclasses.dataclass(frozen=True)
class Population:
    """How the population is run: its size, seeds, ready interval and selection."""

    size: int
    ready: Optional[int]  # updates between ready points; None: never (plain training)
    fraction: float = 0.25
    resample: float = 0.25
    seed: int = 0
    init: str = "config"  # "config": every member starts from the config's value; "uniform": a draw

    @property
    def cut(self) -> int:
        """Members replaced (and parents to draw from) at each ready point."""
        return int(math.floor(self.size * self.fraction + 1e-9))

    def ready_updates(self, num_updates: int) -> list[int]:
        if self.ready is None:
            return []
        return list(range(self.ready, num_updates, self.ready))

    def check(self, num_updates: int) -> "Population":
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ConfigError(f"population must be an integer ≥ 1, got {self.size!r}.")
        if self.ready is not None and (not isinstance(self.ready, int) or isinstance(self.ready, bool)):
            raise ConfigError(f"ready must be a whole number of updates, got {self.ready!r}.")
        if self.ready is not None and not 1 <= self.ready < num_updates:
            raise ConfigError(
                f"ready = {self.ready}: ready points come every READY updates, 1 ≤ READY < {num_updates} "
                f"(this config's updates per member); e.g. ready {max(1, num_updates // 10)} gives 9."
            )
        if not 0 < self.fraction <= 0.5:
            raise ConfigError(
                f"fraction must lie in (0, 0.5] (the bottom copies the top), got {self.fraction}."
            )
        if self.ready is not None and self.cut < 1:
            raise ConfigError(
                f"fraction {self.fraction:g} of {self.size} member(s) selects none to replace; "
                f"use a population of at least {math.ceil(1 / self.fraction)} or a larger fraction."
            )
        if not 0 <= self.resample <= 1:
            raise ConfigError(f"resample is a probability in [0, 1], got {self.resample}.")
        if self.seed < 0:
            raise ConfigError(f"seed must be ≥ 0, got {self.seed}.")
        if self.init not in ("config", "uniform"):
            raise ConfigError(f"init must be 'config' or 'uniform', got {self.init!r}.")
        return self


# ---------------------------------------------------------------------------
# Exploit and explore: pure functions of device arrays
# ---------------------------------------------------------------------------


def select_parents(key: jax.Array, fitness: jax.Array, cut: int) -> jax.Array:
    """Truncation selection: member ``i``'s parent, ``[members]`` int32.

    The ``cut`` lowest-fitness members (NaN counts lowest; ties by index) each
    get a parent drawn uniformly from the ``cut`` highest; the rest are their own.
    """
    members = fitness.shape[0]
    order = jnp.argsort(jnp.where(jnp.isnan(fitness), -jnp.inf, fitness), stable=True)
    parents = jnp.arange(members, dtype=jnp.int32)
    if cut == 0:
        return parents
    top = order[members - cut :]
    return parents.at[order[:cut]].set(top[jax.random.randint(key, (cut,), 0, cut)].astype(jnp.int32))


def draw(key: jax.Array, explore: Explore, shape=()) -> jax.Array:
    """Values drawn from ``explore``'s range (log-uniformly for a log range), float32."""
    u = jax.random.uniform(key, shape, jnp.float32)
    if explore.log:
        low, high = math.log(explore.low), math.log(explore.high)
        value = jnp.exp(low + u * (high - low))
    else:
        value = explore.low + u * (explore.high - explore.low)
    return jnp.clip(value, explore.low, explore.high)


def perturb(key: jax.Array, value: jax.Array, explore: Explore, resample: float) -> jax.Array:
    """One explored setting of one member: ×0.8 or ×1.25, or with probability
    ``resample`` a fresh draw from the range; clipped to the range."""
    key_choice, key_factor, key_draw = jax.random.split(key, 3)
    factor = jnp.where(jax.random.bernoulli(key_factor), PERTURB[1], PERTURB[0])
    new = jnp.where(jax.random.uniform(key_choice) < resample, draw(key_draw, explore), value * factor)
    return jnp.clip(new.astype(jnp.float32), explore.low, explore.high)


def copy_state(state: TrainState, parents: jax.Array) -> TrainState:
    """Member ``i`` takes its parent's learned state; what belongs to its envs
    (env states, running discounted returns, recurrent carry) and its key stay."""
    take = lambda tree: jax.tree.map(lambda x: x[parents], tree)
    norm = state.norm.replace(obs=take(state.norm.obs), ret=take(state.norm.ret))  # type: ignore[attr-defined]  # flax.struct
    return state.replace(  # type: ignore[attr-defined]  # flax.struct's replace is untyped
        params=take(state.params),
        opt_state=take(state.opt_state),
        norm=norm,
        update_step=take(state.update_step),
        kl_ref_coef=take(state.kl_ref_coef),
    )


def exploit_explore(key, state: TrainState, hp, fitness, *, explores, population: Population):
    """One ready point over the first ``population.size`` runs (the rest is padding,
    left alone): returns (state, hp, parents). Members that copied explore; the
    others keep their settings."""
    size, runs = population.size, fitness.shape[0]
    key_select, key_explore = jax.random.split(key)
    own = select_parents(key_select, fitness[:size], population.cut)
    parents = jnp.concatenate([own, jnp.arange(size, runs, dtype=jnp.int32)])
    copied = parents != jnp.arange(runs)
    member_keys = jax.random.split(key_explore, runs)
    changes = {}
    for index, e in enumerate(explores):
        inherited = getattr(hp, e.name)[parents]
        keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(member_keys, index)
        one = functools.partial(perturb, explore=e, resample=population.resample)
        changes[e.name] = jnp.where(copied, jax.vmap(one)(keys, inherited), inherited)
    hp = jax.tree.map(lambda x: x[parents], hp).replace(**changes)
    return copy_state(state, parents), hp, parents


def initial_values(population: Population, explores: Sequence[Explore], config: PPOConfig) -> dict:
    """Each member's starting value of each explored setting, ``{name: [members]}``."""
    key = pbt_keys(population.seed)[0]
    out = {}
    for index, e in enumerate(explores):
        if population.init == "uniform":
            out[e.name] = np.asarray(draw(jax.random.fold_in(key, index), e, (population.size,)))
        else:
            out[e.name] = np.full((population.size,), getattr(config, e.name), np.float32)
    return out


def pbt_keys(seed: int) -> jax.Array:
    """The keys of the initial draws and of the ready points (``fold_in`` their
    index), apart from every member's own keys."""
    return jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), 0x5B7))


# ---------------------------------------------------------------------------
# The population, run log point by log point
# ---------------------------------------------------------------------------


def ready_plan(
    num_updates: int, population: Population, log_points: int = 50
) -> list[tuple[int, Optional[int]]]:
    """Log points as (updates, index of the ready point it ends at, or None): every
    ready point ends a log point (``ppo_jax.runner.chunk_plan_at``)."""
    ready = population.ready_updates(num_updates)
    plan = chunk_plan_at(num_updates, ready, log_points)
    ends = np.cumsum(plan).tolist()
    return [(n, ready.index(end) if end in ready else None) for n, end in zip(plan, ends)]


@dataclasses.dataclass(frozen=True)
class PBTResult:
    """Per-member results, indexed ``[member, ...]``; member ``i`` trained with seed ``seeds[i]``.

    ``curves[name]``: ``[members, log points]`` (``ppo_jax.sweeps.CURVE_NAMES``)
    at ``env_steps[log point]``. ``values[name]``: each explored setting in use
    during each log point, ``[members, log points]``. ``ready_updates[k]``: the
    update ending ready point ``k``; ``parents[k, i]`` the member whose state
    member ``i`` took there (``i`` itself if it kept its own) and
    ``ready_values[name][k, i]`` the setting it trained with after it.
    ``final_return``: mean return of the episodes finished in the last 5% of updates.
    """

    config: PPOConfig
    explores: tuple[Explore, ...]
    population: Population
    seeds: list[int]
    env_steps: np.ndarray
    curves: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    ready_updates: np.ndarray
    parents: np.ndarray
    ready_values: dict[str, np.ndarray]
    initial_values: dict[str, np.ndarray]
    final_return: np.ndarray
    nonfinite: np.ndarray
    compile_seconds: float
    train_seconds: float
    num_devices: int

    @property
    def best(self) -> int:
        """The member with the highest final return (NaN counts lowest)."""
        return int(np.argmax(np.where(np.isfinite(self.final_return), self.final_return, -np.inf)))

    def lineage(self, member: Optional[int] = None) -> list[tuple[int, int]]:
        """(first update, member) of each interval between ready points of
        ``member``'s line (default: the best), followed back through its parents."""
        member = self.best if member is None else member
        line = []
        for k in range(len(self.ready_updates) - 1, -1, -1):
            line.append((int(self.ready_updates[k]), member))
            member = int(self.parents[k, member])
        return [(0, member)] + line[::-1]

    def schedule(self, member: Optional[int] = None) -> list[tuple[int, dict[str, float]]]:
        """(first update, {explored setting: value}) of ``member``'s line (default: the best)."""
        out = []
        for k, (update, ancestor) in enumerate(self.lineage(member)):
            source = self.initial_values if k == 0 else {n: v[k - 1] for n, v in self.ready_values.items()}
            out.append((update, {n: float(v[ancestor]) for n, v in source.items()}))
        return out

    @property
    def steps_per_second(self) -> float:
        done = int(self.env_steps[-1]) if len(self.env_steps) else 0
        return done * len(self.seeds) / max(self.train_seconds, 1e-9)


class PBTRun(Runner):
    """A population compiled ahead of time and run log point by log point, with
    exploit/explore on the devices at every ready point (the population axis of
    ``ppo_jax.runner.Runner``; its log points are ``SweepRun``'s program)."""

    def __init__(
        self,
        config: PPOConfig,
        explores: Sequence[Explore],
        population: Population,
        log_points: int = 50,
        devices: Optional[Sequence[jax.Device]] = None,
        pipeline: bool = True,
    ):
        self.explores = check_explores(config, explores)
        self.population = population.check(config.num_updates)
        self.config = config
        self.items = ready_plan(config.num_updates, population, log_points)
        seeds = range(population.seed, population.seed + population.size)
        self.sweep = SweepRun(
            make_grid(config), seeds, devices=devices, pipeline=pipeline, plan=[n for n, _ in self.items]
        )
        self.seeds, self.mesh, self.plan = self.sweep.seeds, self.sweep.mesh, self.sweep.plan
        self.num_devices = self.sweep.num_devices
        self.initial_values = initial_values(population, self.explores, config)
        self.init_from = self.reference = None
        self.pipeline = pipeline
        self.cache_hits: list[str] = []

    @property
    def num_runs(self) -> int:
        return self.population.size

    @property
    def padded_runs(self) -> int:
        return self.sweep.padded_runs

    @property
    def memory(self):
        return self.sweep.memory

    def _split(self, tree):
        return sharding.to_devices(sharding.pad_runs(tree, self.padded_runs), self.mesh)

    def _initial_hp(self):
        size = self.population.size
        hp = jax.tree.map(lambda x: np.full((size,), np.asarray(x), np.float32), self.config.hyperparams())
        return self._split(hp.replace(**self.initial_values))

    def compile(self):
        """Compile the sweep's ``init`` and log point and the ready step; return the
        initial carry (train states, settings, fitness sums)."""
        return self._compile(self._build_programs)

    def _build_programs(self):
        state = self.sweep.compile()
        self.cache_hits = list(self.sweep.cache_hits)
        zeros = np.zeros((self.population.size,), np.float32)
        carry = (state, self._initial_hp(), self._split({"returns": zeros, "episodes": zeros}))
        shardings = jax.tree.map(lambda x: x.sharding, carry)
        self._fold = jax.jit(_fold, out_shardings=shardings[2])
        replicated = jax.sharding.NamedSharding(self.mesh, sharding.REPLICATED)
        self._ready_index = [jax.device_put(np.int32(k), replicated) for k in range(len(self.ready_updates))]
        self._ready = None
        if self._ready_index:
            ready = jax.jit(
                self._ready_fn,
                out_shardings=(*shardings, jax.sharding.NamedSharding(self.mesh, sharding.SPLIT)),
            )
            self._ready = ready.lower(*carry, self._ready_index[0]).compile()
        return carry

    @property
    def ready_updates(self) -> list[int]:
        return self.population.ready_updates(self.config.num_updates)

    def _ready_fn(self, state, hp, acc, index):
        safe = jnp.maximum(acc["episodes"], 1.0)
        fitness = jnp.where(acc["episodes"] > 0, acc["returns"] / safe, jnp.nan)
        key = jax.random.fold_in(pbt_keys(self.population.seed)[1], index)
        state, hp, parents = exploit_explore(
            key, state, hp, fitness, explores=self.explores, population=self.population
        )
        return state, hp, jax.tree.map(jnp.zeros_like, acc), parents

    # -- the runner's hooks: a log point over the members, then maybe a ready point

    def _dispatch(self, carry, item):
        state, hp, acc = carry
        length, ready = item
        state, point = self.sweep.log_point(state, hp, length)
        acc = self._fold(acc, point)
        used, parents = hp, None
        if ready is not None:
            state, hp, acc, parents = self._ready(state, hp, acc, self._ready_index[ready])
        return (state, hp, acc), (point, used, hp, parents)

    def _fetch(self, out) -> dict[str, np.ndarray]:
        point, used, after, parents = sharding.to_host(out)
        size = self.population.size
        host = {k: np.asarray(v)[:size] for k, v in point.items()}
        for e in self.explores:
            host[f"value/{e.name}"] = np.asarray(getattr(used, e.name))[:size]
            host[f"after/{e.name}"] = np.asarray(getattr(after, e.name))[:size]
        host["parent"] = np.arange(size, dtype=np.int32) if parents is None else np.asarray(parents)[:size]
        return host

    def run(self, carry, on_chunk=None, *, pieces: Sequence[dict] = (), on_state=None) -> PBTResult:
        """Run every log point, as ``SweepRun.run``: ``on_chunk(updates_done, host
        point, seconds)`` after each (``host[name]`` of shape ``[members]``);
        ``on_state(updates_done, carry, pieces)`` may save ``checkpoint_tree`` and
        stop the run by returning True. To continue, pass the carry saved after
        ``len(pieces)`` log points and those pieces: bitwise the uninterrupted run.
        ``self.carry`` is the final carry."""
        pieces = list(pieces)
        start_update = sum(self.plan[: len(pieces)])
        self.carry = self._run(
            carry,
            self.items[len(pieces) :],
            start_update=start_update,
            pieces=pieces,
            on_chunk=on_chunk,
            on_state=on_state,
        )
        return self._result(pieces)

    def checkpoint_tree(self, carry, pieces: Sequence[dict]) -> dict:
        """Every member's train state and settings (padding included), the fitness
        sums since the last ready point, and the log points so far ``[members, log points]``."""
        state, hp, acc = carry
        stacked = {k: np.stack([p[k] for p in pieces], -1) for k in pieces[0]}
        return {"runs": state, "hp": hp, "fitness": acc, "log_points": stacked}

    def checkpoint_target(self, carry, log_points: int) -> dict:
        """The structure ``checkpoint_tree`` saves after ``log_points`` log points."""
        state, hp, acc = carry
        shape = (self.population.size, log_points)
        names = list(CURVE_NAMES) + list(_POINT_SUMS) + ["parent"]
        names += [f"{w}/{e.name}" for e in self.explores for w in ("value", "after")]
        ints = ("nonfinite", "first_nonfinite", "parent")
        dtype = lambda n: jnp.int32 if n in ints else jnp.float32
        stacked = {n: jax.ShapeDtypeStruct(shape, dtype(n)) for n in names}
        return {"runs": state, "hp": hp, "fitness": acc, "log_points": stacked}

    def _result(self, pieces: list[dict]) -> PBTResult:
        stack = lambda name: np.stack([p[name] for p in pieces], axis=-1)
        final_sum = stack("final_return_sum").astype(np.float64).sum(-1)
        final_count = stack("final_episodes").astype(np.float64).sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            final_return = np.where(final_count > 0, final_sum / final_count, np.nan)
        ready = [i for i, (_, k) in enumerate(self.items[: len(pieces)]) if k is not None]
        names = [e.name for e in self.explores]
        size = self.population.size
        return PBTResult(
            config=self.config,
            explores=self.explores,
            population=self.population,
            seeds=self.seeds,
            env_steps=np.cumsum(np.asarray(self.plan[: len(pieces)], np.int64)) * self.config.batch_size,
            curves={name: stack(name) for name in CURVE_NAMES},
            values={n: stack(f"value/{n}") for n in names},
            ready_updates=np.asarray(self.ready_updates[: len(ready)], np.int64),
            parents=np.asarray([pieces[i]["parent"] for i in ready], np.int32).reshape(len(ready), size),
            ready_values={
                n: np.asarray([pieces[i][f"after/{n}"] for i in ready], np.float32).reshape(len(ready), size)
                for n in names
            },
            initial_values=self.initial_values,
            final_return=final_return,
            nonfinite=np.bitwise_or.reduce(stack("nonfinite"), axis=-1),
            compile_seconds=self.compile_seconds,
            train_seconds=self.train_seconds,
            num_devices=self.num_devices,
        )


def _fold(acc, point):
    """Add a log point's episodes to the fitness sums since the last ready point."""
    count = point["episodes"]
    returns = jnp.where(count > 0, point["episode_return"] * count, 0.0)
    return {"returns": acc["returns"] + returns, "episodes": acc["episodes"] + count}


def pbt(
    config: PPOConfig,
    explore: Mapping[str, Sequence[Any]],
    population: int = 16,
    ready: Optional[int] = None,
    *,
    fraction: float = 0.25,
    resample: float = 0.25,
    seed: int = 0,
    init: str = "config",
    log_points: int = 50,
    devices: Optional[Sequence[jax.Device]] = None,
    on_chunk=None,
) -> PBTResult:
    """Train a population with exploit/explore every ``ready`` updates, in one
    compiled program split over ``devices`` (default: all); see ``PBTResult``.

    Args:
      config: the settings every member starts from (its static ones are shared).
      explore: {traced setting: (low, high) or (low, high, "log")}.
      population: members; member ``i`` uses seed ``seed + i``.
      ready: updates between ready points (None: none, plain training).
      fraction: the bottom fraction copies a member of the top fraction.
      resample: probability that an explored value is drawn anew instead of perturbed.
      init: "config" (every member starts from the config's value) or "uniform".

    Raises:
      ConfigError: a bad setting, range or population option; before anything compiles.
    """
    explores = []
    for name, spec in dict(explore).items():
        spec = tuple(spec)
        if len(spec) not in (2, 3) or (len(spec) == 3 and spec[2] != "log"):
            raise ConfigError(f"explore {name}: expected (low, high) or (low, high, 'log'), got {spec!r}.")
        explores.append(Explore(str(name), float(spec[0]), float(spec[1]), len(spec) == 3))
    settings = Population(population, ready, fraction, resample, seed, init)
    run = PBTRun(config, explores, settings, log_points=log_points, devices=devices)
    return run.run(run.compile(), on_chunk)


# ---------------------------------------------------------------------------
# Replaying a schedule (train --schedule)
# ---------------------------------------------------------------------------


def load_schedule(path, config: PPOConfig) -> list[tuple[int, Any]]:
    """A ``best_schedule.yaml`` as ``[(first update, Hyperparams)]`` for ``ChunkedRun(schedule=...)``:
    from each update on, the config with that entry's settings.

    Raises:
      ConfigError: an unreadable file, an entry that is not ``update: N`` plus traced
        settings, updates that do not rise from 0 below ``num_updates``, another env or
        budget than ``config``'s, or a value that fails validation.
    """
    import yaml

    where = f"--schedule {path}"
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{where}: cannot be read as YAML: {err}") from None
    entries = data.get("schedule") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(
            f"{where}: expected 'schedule:' with a list of '- update: N' entries (as pbt writes)."
        )
    for key, mine in (("env_id", config.env_id), ("num_updates", config.num_updates)):
        if key in data and data[key] != mine:
            raise ConfigError(
                f"{where}: the schedule was found for {key} {data[key]!r}, this config has {mine!r}; "
                "ready points are counted in updates, so replay it with the config PBT ran."
            )
    updates = [e.get("update") for e in entries]
    if updates[0] != 0 or not all(isinstance(u, int) for u in updates) or updates != sorted(set(updates)):
        raise ConfigError(f"{where}: updates must be whole numbers rising from 0, got {updates}.")
    if updates[-1] >= config.num_updates:
        raise ConfigError(
            f"{where}: update {updates[-1]} is past this config's {config.num_updates} updates."
        )
    out = []
    for entry in entries:
        settings = {k: v for k, v in entry.items() if k != "update"}
        for name in settings:
            _check_name(config, name, f"{where}, update {entry['update']}")
        out.append((entry["update"], _point_config(config, settings).hyperparams()))
    return out
