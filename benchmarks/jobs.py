"""ppo_jax measurements, each run in its own process by ``benchmarks.run``:

    python -m benchmarks.jobs NAME '{"json": "arguments"}'

Each prints one JSON line per result (so rows finished before a time cap are
kept). Only ppo_jax's public API is used: ``load_config``, ``make_train``,
``build`` (its ``Program``: ``init``, ``networks``, ``vec_env``), the core math
and ``ppo_jax.driver.ChunkedRun``.
"""

from __future__ import annotations

import functools
import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import ppo_jax
from benchmarks.common import emit, final_return, peak_rss_mib, reach
from ppo_jax.driver import ChunkedRun, compiler_options, seed_keys
from ppo_jax.rollout import draw_steps, rollout_options
from ppo_jax.update import Batch, UpdateOptions, make_optimizer, minibatch_step


def _flops(compiled) -> float:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", float("nan")))


def _median_run(fn, args, repeats: int) -> tuple[float, list[float], object]:
    runs, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        jax.block_until_ready(out)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), runs, out


def _device_peak_bytes():
    stats = jax.devices()[0].memory_stats()
    return None if not stats else stats.get("peak_bytes_in_use")


# ---------------------------------------------------------------------------
# Training speed, the env + policy floor, FLOPs
# ---------------------------------------------------------------------------


def train_speed(config, repeats: int) -> dict:
    """One seed: ``jax.jit(train)`` compiled ahead of time, then run."""
    train = ppo_jax.make_train(config)
    key = jax.random.PRNGKey(0)
    start = time.perf_counter()
    compiled = jax.jit(train).lower(key).compile(compiler_options())
    compile_seconds = time.perf_counter() - start
    run_seconds, runs, (_, metrics) = _median_run(compiled, (key,), repeats)
    returns = np.asarray(metrics["episode_return"])
    return {
        "env_steps": config.env_steps,
        "compile_seconds": round(compile_seconds, 3),
        "run_seconds": round(run_seconds, 4),
        "run_seconds_all": [round(r, 4) for r in runs],
        "steps_per_second": round(config.env_steps / run_seconds),
        "last_return": float(returns[np.isfinite(returns)][-1]) if np.isfinite(returns).any() else None,
        "xla_flops_whole_program": _flops(compiled),
    }


def floor_speed(config, repeats: int) -> dict:
    """The same envs stepped by the same policy's forward pass (actor and critic,
    as in the rollout) and sampling, in a jitted scan: no learning, no GAE."""
    program = ppo_jax.build(config)
    state = jax.jit(program.init)(jax.random.PRNGKey(0), config.hyperparams())
    length = config.env_steps // config.num_envs

    in_loop = rollout_options(config, program.vec_env).resets_in_loop
    block = min(config.num_steps, length)
    length = length // block * block

    def run_block(params, env_state, key):
        # Randomness (and small reset states) drawn before the loop, as ppo_jax's
        # rollout does, so the loop holds only the policy and the envs.
        noise, step_keys, resets = draw_steps(key, program.vec_env, block, config.num_envs, in_loop)

        def step(carry, per_step):
            env_state, sums = carry
            step_noise, keys, step_resets = per_step
            if in_loop:
                step_resets = program.vec_env.reset_states(step_resets)
            dist, value = program.networks.apply(params, env_state.obs)
            action = dist.sample_from_noise(step_noise)
            env_state, result = program.vec_env.step_with(keys, step_resets, env_state, action)
            # Summed and returned so that XLA cannot drop any of them as unused.
            sums = sums + jnp.stack([jnp.sum(result.reward), jnp.sum(dist.log_prob(action)), jnp.sum(value)])
            return (env_state, sums), None

        (env_state, sums), _ = jax.lax.scan(step, (env_state, jnp.zeros(3)), (noise, step_keys, resets))
        return env_state, sums

    def run(params, env_state, key):
        def one_block(carry, block_key):
            env_state, total = carry
            env_state, sums = run_block(params, env_state, block_key)
            return (env_state, total + sums), None

        (_, total), _ = jax.lax.scan(
            one_block, (env_state, jnp.zeros(3)), jax.random.split(key, length // block)
        )
        return total

    start = time.perf_counter()
    compiled = jax.jit(run).lower(state.params, state.env, jax.random.PRNGKey(1)).compile(compiler_options())
    compile_seconds = time.perf_counter() - start
    run_seconds, _, _ = _median_run(compiled, (state.params, state.env, jax.random.PRNGKey(1)), repeats)
    steps = length * config.num_envs
    return {
        "floor_compile_seconds": round(compile_seconds, 3),
        "floor_run_seconds": round(run_seconds, 4),
        "floor_steps_per_second": round(steps / run_seconds),
    }


def flops_per_update(config) -> dict:
    """FLOPs of one update, from XLA's cost analysis of its loop bodies.

    XLA's cost analysis counts a while loop's body once, whatever its trip
    count, so the whole program's number (``xla_flops_whole_program``) is far
    too small. Here each body is compiled alone and multiplied by its trip
    count: ``num_steps`` × (policy + value forward, sampling, env step) + the
    critic on the last and the time-limit-cut observations + epochs × minibatches × (forward,
    backward, clipping, Adam). GAE's scan (a few ops per step) is left out.
    """
    program = ppo_jax.build(config)
    hp = config.hyperparams()
    state = jax.jit(program.init)(jax.random.PRNGKey(0), hp)
    networks, vec_env = program.networks, program.vec_env
    key = jax.random.PRNGKey(1)

    def env_step(params, env_state, key):
        key_action, key_env = jax.random.split(key)
        dist, value = networks.apply(params, env_state.obs)
        action = dist.sample(key_action)
        env_state, result = vec_env.step(key_env, env_state, action)
        return env_state, dist.log_prob(action), value, result

    step_flops = _flops(jax.jit(env_step).lower(state.params, state.env, key).compile())
    # the critic after the rollout: the last observations (bootstrap) and at most
    # B * ceil(T / max_episode_steps) final observations of time-limit cuts
    cuts = -(-config.num_steps // vec_env.spec.max_episode_steps)
    rows = config.num_envs * (1 + min(cuts, config.num_steps))
    obs_all = jnp.zeros((rows,) + vec_env.spec.obs_shape, jnp.float32)
    value_flops = _flops(jax.jit(networks.value).lower(state.params, obs_all).compile())

    # One step of the update's own minibatch loop (forward, backward, clipping, Adam).
    m = config.minibatch_size
    obs = jnp.zeros((m,) + vec_env.spec.obs_shape, jnp.float32)
    action = jax.vmap(lambda k: networks.apply(state.params, obs[:1])[0].sample(k)[0])(
        jax.random.split(key, m)
    )
    vec = jnp.zeros((m,), jnp.float32)
    minibatch = Batch(obs=obs, action=action, log_prob=vec, value=vec, advantage=vec, target=vec)
    tx = make_optimizer(hp.max_grad_norm)
    step = functools.partial(
        minibatch_step,
        hp=hp,
        learning_rate=hp.learning_rate,
        tx=tx,
        networks=networks,
        options=UpdateOptions.from_config(config),
    )
    carry = (state.params, state.opt_state, jnp.asarray(False))
    mb_flops = _flops(jax.jit(step).lower(carry, minibatch).compile())
    per_update = (
        config.num_steps * step_flops + value_flops + config.update_epochs * config.num_minibatches * mb_flops
    )
    return {
        "flops_env_step": step_flops,
        "flops_minibatch_step": mb_flops,
        "flops_per_update": per_update,
        "flops_per_run": per_update * config.num_updates,
    }


def matmul_rate(n: int, repeats: int = 10) -> dict:
    """fp32 ``[n, n] @ [n, n]`` under jit: the best of ``repeats``, FLOP/s."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    f = jax.jit(lambda a, b: a @ b).lower(a, b).compile()
    jax.block_until_ready(f(a, b))
    best = min(_median_run(f, (a, b), 1)[0] for _ in range(repeats))
    return {"matmul_n": n, "matmul_seconds": round(best, 5), "matmul_flops_per_second": 2 * n**3 / best}


# The job's matmul precision (``--matmul-precision``), given to ppo_jax as its setting: a
# program applies its config's ``matmul_precision`` over jax's global default.
_PRECISION: dict = {}


def _config(path, **overrides):
    return ppo_jax.load_config(path, **{**_PRECISION, **overrides})


def job_throughput(a: dict) -> None:
    """Rows of train vs floor steps/s over ``num_envs``, and the machine's matmul rate."""
    if a.get("matmul_n"):
        emit({"kind": "matmul", "device": str(jax.devices()[0].device_kind), **matmul_rate(a["matmul_n"])})
    for n in a["num_envs"]:
        base = _config(a["config"])
        batch = n * base.num_steps
        steps = max(a["min_updates"] * batch, (a["env_steps"] // batch) * batch)
        config = _config(a["config"], num_envs=n, total_timesteps=steps)
        row = {
            "kind": a.get("kind", "throughput"),
            **({"suite": a["suite"]} if a.get("suite") else {}),
            "config": a["config"],
            "env_id": config.env_id,
            "num_envs": n,
            "num_steps": config.num_steps,
            "num_updates": config.num_updates,
            **train_speed(config, a["repeats"]),
            **floor_speed(config, a["repeats"]),
            **(flops_per_update(config) if a.get("flops", True) else {}),
        }
        if "flops_per_run" in row:
            row["achieved_flops_per_second"] = row["flops_per_run"] / row["run_seconds"]
        row["train_vs_floor"] = round(row["steps_per_second"] / row["floor_steps_per_second"], 4)
        row["peak_rss_mib"] = peak_rss_mib()
        emit(row)


def job_speed(a: dict) -> None:
    """One training-speed measurement at given settings (the peers' comparison)."""
    config = _config(a["config"], **a.get("overrides", {}))
    emit(
        {
            "kind": "speed",
            "implementation": "ppo_jax",
            "env_id": config.env_id,
            **train_speed(config, a["repeats"]),
            "peak_rss_mib": peak_rss_mib(),
        }
    )


# ---------------------------------------------------------------------------
# Time to the return threshold (ChunkedRun: the CLI's own driver)
# ---------------------------------------------------------------------------


class _AllReached(Exception):
    pass


def job_solve(a: dict) -> None:
    """Seeds vmapped in one ChunkedRun; per seed, when it reached the threshold.

    Times count from before ``build`` (so compile is included) to the end of
    the chunk in which a seed's data showed it reached: the host only learns
    of it then. With ``stop_when_all_reached`` training stops after the chunk in
    which the last seed reached. ``first_seed``: the seeds are
    ``first_seed .. first_seed + seeds − 1``. ``cache_dir``: the persistent and
    executable caches there, as the CLI keeps them (a warm start when an earlier
    process filled it; a fresh directory is a cold start); without it nothing is cached.
    """
    if a.get("cache_dir"):
        import os

        from ppo_jax import compile_cache

        os.environ[compile_cache.CACHE_DIR_ENV] = a["cache_dir"]
        compile_cache.enable()
    config = _config(a["config"], **a.get("overrides", {}))
    seeds = list(range(a.get("first_seed", 0), a.get("first_seed", 0) + a["seeds"]))
    threshold, window = a["threshold"], a["window"]
    start, cpu0 = time.perf_counter(), _cpu_seconds()
    run = ChunkedRun(config, seeds, target_chunks=a.get("target_chunks", 50))
    state = run.compile()
    compile_seconds = time.perf_counter() - start
    records = [[] for _ in seeds]
    reached = [None for _ in seeds]

    def on_chunk(first_update, host, _seconds):
        now = time.perf_counter() - start
        for i in range(len(seeds)):
            for j in range(host["episodes"].shape[1]):
                count = float(host["episodes"][i, j])
                total = float(host["episode_return"][i, j]) * count if count > 0 else 0.0
                records[i].append([round(now, 3), int(host["env_steps"][i, j]), count, total])
            if reached[i] is None:
                reached[i] = reach(records[i], threshold, window)
        if a.get("stop_when_all_reached") and all(r is not None for r in reached):
            raise _AllReached

    stopped_early = False
    try:
        run.run(state, on_chunk)
    except _AllReached:
        stopped_early = True
    seconds = time.perf_counter() - start
    env_steps = records[0][-1][1] if records[0] else 0
    row = {
        "kind": "solve",
        "implementation": "ppo_jax",
        "env_id": config.env_id,
        "config": a["config"],
        "settings": config.to_dict(),
        "seeds": len(seeds),
        "seed_list": seeds,
        "devices_used": int(run.mesh.devices.size),
        "cache_hits": list(getattr(run, "cache_hits", [])),
        "budget_env_steps": config.env_steps,
        "env_steps": env_steps,
        "compile_seconds": round(compile_seconds, 3),
        "seconds": round(seconds, 3),
        "steps_per_second": round(len(seeds) * env_steps / (seconds - compile_seconds)),
        "cpu_over_wall": round((_cpu_seconds() - cpu0) / seconds, 3),
        "stopped_when_all_reached": stopped_early,
        "reached": reached,
        "final_return": [final_return(r) for r in records],
        "peak_rss_mib": peak_rss_mib(),
    }
    if len(seeds) <= a.get("keep_curves_up_to", 8):
        row["rollouts"] = records
    emit(row)


# ---------------------------------------------------------------------------
# Seeds scaling
# ---------------------------------------------------------------------------


def job_seeds(a: dict) -> None:
    """``jax.jit(jax.vmap(train))`` over n seeds: compile, run, memory."""
    config = _config(a["config"], **a.get("overrides", {}))
    train = ppo_jax.make_train(config)
    for n in a["counts"]:
        keys = seed_keys(list(range(n)))
        start = time.perf_counter()
        compiled = jax.jit(jax.vmap(train)).lower(keys).compile(compiler_options())
        compile_seconds = time.perf_counter() - start
        run_seconds, _, (_, metrics) = _median_run(compiled, (keys,), 1)
        returns = np.asarray(metrics["episode_return"])[:, -1]
        emit(
            {
                "kind": "seeds",
                "env_id": config.env_id,
                "seeds": n,
                "env_steps_per_seed": config.env_steps,
                "compile_seconds": round(compile_seconds, 3),
                "run_seconds": round(run_seconds, 3),
                "total_seconds": round(compile_seconds + run_seconds, 3),
                "seconds_per_agent": round(run_seconds / n, 4),
                "steps_per_second": round(n * config.env_steps / run_seconds),
                "mean_last_return": float(np.nanmean(returns)) if np.isfinite(returns).any() else None,
                "peak_rss_mib": peak_rss_mib(),
                "device_peak_bytes": _device_peak_bytes(),
                "device": str(jax.devices()[0].device_kind),
                "matmul_precision": config.matmul_precision,
            }
        )


# ---------------------------------------------------------------------------
# Cores: seeds split over forced host devices (the suite sets XLA_FLAGS)
# ---------------------------------------------------------------------------


def job_cores(a: dict) -> None:
    """Seeds in one ``ChunkedRun`` (the CLI's driver), which splits them over the
    local devices whose count divides them. Run in a process whose ``XLA_FLAGS``
    set ``--xla_force_host_platform_device_count``: the suite sets it, so this
    does not depend on the CLI's own device option. CPU time ÷ wall time says
    how many cores were busy."""
    config = _config(a["config"], **a.get("overrides", {}))
    seeds = list(range(a["seeds"]))
    start = time.perf_counter()
    run = ChunkedRun(config, seeds, target_chunks=a.get("target_chunks", 5))
    state = run.compile()
    compile_seconds = time.perf_counter() - start
    cpu0 = _cpu_seconds()
    start = time.perf_counter()
    run.run(state)
    run_seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu0
    emit(
        {
            "kind": "cores",
            "env_id": config.env_id,
            "config": a["config"],
            "devices_visible": jax.local_device_count(),
            "devices_used": int(run.mesh.devices.size) if hasattr(run, "mesh") else None,
            "seeds": len(seeds),
            "env_steps_per_seed": config.env_steps,
            "compile_seconds": round(compile_seconds, 3),
            "run_seconds": round(run_seconds, 3),
            "steps_per_second": round(len(seeds) * config.env_steps / run_seconds),
            "cpu_over_wall": round(cpu / run_seconds, 3),
            "peak_rss_mib": peak_rss_mib(),
        }
    )


def job_peer_seeds(a: dict) -> None:
    """n seeds vmapped in one program, as the peers' 8-seed row runs rejax's
    ``jax.jit(jax.vmap(train))``: a ``ChunkedRun`` (the CLI's driver) with one
    chunk, so one compiled program of every update, split over the local
    devices whose count divides the seeds (the suite sets
    ``--xla_force_host_platform_device_count`` in this process: 1 or 2).
    Compile (with init) apart; the run timed as the median of ``repeats``."""
    config = _config(a["config"], **a.get("overrides", {}))
    seeds = list(range(a["seeds"]))
    start = time.perf_counter()
    run = ChunkedRun(config, seeds, target_chunks=1)
    state = run.compile()
    compile_seconds = time.perf_counter() - start
    runs, out = [], None
    for _ in range(a.get("repeats", 1)):
        start = time.perf_counter()
        out = run.run(state)
        jax.block_until_ready(out)
        runs.append(time.perf_counter() - start)
    run_seconds = statistics.median(runs)
    returns = np.asarray(out[1]["episode_return"])[:, -1]
    emit(
        {
            "kind": "peer_seeds",
            "implementation": "ppo_jax",
            "env_id": config.env_id,
            "devices_visible": jax.local_device_count(),
            "devices_used": int(run.mesh.devices.size),
            "chunks": len(run.plan),
            "seeds": len(seeds),
            "env_steps": config.env_steps,
            "env_steps_all_seeds": len(seeds) * config.env_steps,
            "compile_seconds": round(compile_seconds, 3),
            "run_seconds": round(run_seconds, 4),
            "run_seconds_all": [round(r, 4) for r in runs],
            "steps_per_second": round(len(seeds) * config.env_steps / run_seconds),
            "mean_last_return": float(np.nanmean(returns)) if np.isfinite(returns).any() else None,
            "peak_rss_mib": peak_rss_mib(),
        }
    )


def job_data_parallel(a: dict) -> None:
    """One agent on one device vs the same agent data-parallel over every
    visible device (``ChunkedRun(data_parallel=D)``: its envs and minibatches
    split, gradients averaged). Both compiled in this process first, then run
    alternately ``repeats`` times, so that load from elsewhere falls on both
    alike; one row per way with the median and every run's steps/s."""
    config = _config(a["config"], **a.get("overrides", {}))
    devices = jax.local_device_count()
    ways = {"one device": None, f"data-parallel over {devices} devices": devices}
    runs = {}
    for label, data_parallel in ways.items():
        start = time.perf_counter()
        run = ChunkedRun(config, [0], data_parallel=data_parallel, target_chunks=a.get("target_chunks", 5))
        runs[label] = (run, run.compile(), time.perf_counter() - start)
    speeds = {label: [] for label in ways}
    cpu = {label: 0.0 for label in ways}
    wall = {label: 0.0 for label in ways}
    for _ in range(a.get("repeats", 3)):
        for label, (run, state, _) in runs.items():
            cpu0, start = _cpu_seconds(), time.perf_counter()
            run.run(state)
            seconds = time.perf_counter() - start
            cpu[label] += _cpu_seconds() - cpu0
            wall[label] += seconds
            speeds[label].append(round(config.env_steps / seconds))
    for label, (run, _, compile_seconds) in runs.items():
        emit(
            {
                "kind": "data_parallel",
                "env_id": config.env_id,
                "config": a["config"],
                "way": label,
                "devices_visible": devices,
                "devices_used": int(run.mesh.devices.size),
                "num_envs": config.num_envs,
                "env_steps": config.env_steps,
                "compile_seconds": round(compile_seconds, 3),
                "steps_per_second": statistics.median(speeds[label]),
                "steps_per_second_runs": speeds[label],
                "cpu_over_wall": round(cpu[label] / wall[label], 3),
            }
        )


def _cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ---------------------------------------------------------------------------
# Compile time of a preset: a fresh persistent cache (cold), then warm
# ---------------------------------------------------------------------------


def job_compile(a: dict) -> None:
    """Compile a preset's training program (``ChunkedRun.compile``: every chunk
    length and ``init``, as ``ppo-jax train`` does) with the persistent
    compilation cache at ``a["cache_dir"]``, set as the CLI sets it. Nothing is
    run. The suite calls this twice in fresh processes: a new cache (cold), then
    the same cache (warm). ``lower_seconds`` is tracing + lowering alone (a
    second, separate lowering of the longest chunk, after the compile)."""
    jax.config.update("jax_compilation_cache_dir", a["cache_dir"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    config = _config(a["config"], **a.get("overrides", {}))
    start = time.perf_counter()
    run = ChunkedRun(config, list(range(a.get("seeds", 1))))
    run.compile()
    compile_seconds = time.perf_counter() - start
    lower_seconds = None
    chunk_fn = getattr(run, "_chunk_fn", None)  # the driver's own chunk program, when it still has one
    if chunk_fn is not None:
        state = jax.eval_shape(lambda: run.program.init(jax.random.PRNGKey(0), run.hp))
        state = jax.tree.map(lambda x: jax.ShapeDtypeStruct((len(run.seeds),) + x.shape, x.dtype), state)
        start = time.perf_counter()
        chunk_fn(max(run.plan)).lower(state, run.hp)
        lower_seconds = round(time.perf_counter() - start, 3)
    emit(
        {
            "kind": "compile",
            "config": a["config"],
            "env_id": config.env_id,
            "phase": a["phase"],
            "compile_seconds": round(compile_seconds, 3),
            "lower_seconds": lower_seconds,
            "chunk_lengths": sorted(set(run.plan)),
            "peak_rss_mib": peak_rss_mib(),
        }
    )


# ---------------------------------------------------------------------------
# Memory per env step (XLA's memory analysis of the compiled program)
# ---------------------------------------------------------------------------


def _program_bytes(config, seeds: int) -> dict:
    train = ppo_jax.make_train(config)
    keys = seed_keys(list(range(seeds)))
    compiled = jax.jit(jax.vmap(train)).lower(keys).compile(compiler_options())
    m = compiled.memory_analysis()
    if m is None:
        return {}
    return {
        "temp_bytes": int(m.temp_size_in_bytes),
        "argument_bytes": int(m.argument_size_in_bytes),
        "output_bytes": int(m.output_size_in_bytes),
        "total_bytes": int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes),
    }


def job_memory(a: dict) -> None:
    """Bytes per env step: XLA's memory analysis of ``jax.jit(jax.vmap(train))``
    (2 updates, so the per-update metrics are negligible) at two sizes of
    num_envs × seeds; the slope over the rollout's env steps (num_envs × seeds
    × num_steps) is the bytes each env step of a rollout costs (rollout buffer,
    minibatch copies, GAE, pre-drawn randomness), the intercept what does not
    grow with it. From them: the largest num_envs × seeds whose program fits in
    each memory size of ``a["memory_gib"]``, at the preset's num_steps."""
    base = _config(a["config"], **a.get("overrides", {}))
    points = []
    for num_envs, seeds in a["sizes"]:
        config = _config(
            a["config"],
            **{
                **a.get("overrides", {}),
                "num_envs": num_envs,
                "total_timesteps": 2 * num_envs * base.num_steps,
            },
        )
        points.append(
            {
                "num_envs": num_envs,
                "seeds": seeds,
                "env_steps_per_rollout": num_envs * seeds * base.num_steps,
                **_program_bytes(config, seeds),
            }
        )
    if not all("total_bytes" in p for p in points):
        emit(
            {
                "kind": "memory",
                "config": a["config"],
                "env_id": base.env_id,
                "points": points,
                "note": "no memory analysis on this backend",
            }
        )
        return
    (p0, p1) = points[0], points[-1]
    per_step = (p1["total_bytes"] - p0["total_bytes"]) / (
        p1["env_steps_per_rollout"] - p0["env_steps_per_rollout"]
    )
    fixed = p0["total_bytes"] - per_step * p0["env_steps_per_rollout"]
    # The CLI's pipelined driver holds one more train state than the program above (chunk k+1 in
    # flight while the host reads chunk k): its bytes per env (params and Adam amortized over the
    # preset's num_envs) on top of each env's rollout.
    program = ppo_jax.build(base)
    state = jax.eval_shape(program.init, jax.random.PRNGKey(0), base.hyperparams())
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
    state_per_env = state_bytes / base.num_envs
    fits, fits_cli = {}, {}
    for gib in a["memory_gib"]:
        budget = gib * 2**30
        fits[str(gib)] = int((budget - max(fixed, 0.0)) / (per_step * base.num_steps))
        fits_cli[str(gib)] = int((budget - max(fixed, 0.0)) / (per_step * base.num_steps + state_per_env))
    emit(
        {
            "kind": "memory",
            "config": a["config"],
            "env_id": base.env_id,
            "num_steps": base.num_steps,
            "obs_shape": list(program.vec_env.spec.obs_shape),
            "points": points,
            "bytes_per_env_step": round(per_step, 1),
            "fixed_bytes": round(fixed),
            "largest_envs_times_seeds": fits,
            "train_state_bytes": int(state_bytes),
            "train_state_num_envs": base.num_envs,
            "largest_envs_times_seeds_cli": fits_cli,
            "backend": jax.default_backend(),
            "device": str(jax.devices()[0].device_kind),
        }
    )


# ---------------------------------------------------------------------------
# The CNN under vmap: a grouped convolution, or patches and a batched matmul
# ---------------------------------------------------------------------------


def _conv_grouped(w, x):
    """``vmap`` of a plain NHWC convolution over seeds: XLA makes it one
    convolution with a feature group per seed."""
    conv = lambda w1, x1: jax.lax.conv_general_dilated(
        x1, w1, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return jax.vmap(conv)(w, x)


def _conv_patches(w, x):
    """The same convolution as 3×3 patches (one patch extraction shared by all
    seeds) and one batched matmul over seeds: ``[S, N·H·W, 9·C] @ [S, 9·C, F]``."""
    s, n, h, wd, c = x.shape
    patches = jax.lax.conv_general_dilated_patches(
        x.reshape(s * n, h, wd, c), (3, 3), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    # conv_general_dilated_patches orders a patch's features channel-major: (c, kh, kw)
    kernel = jnp.transpose(w, (0, 3, 1, 2, 4)).reshape(s, c * 9, w.shape[-1])
    out = jnp.einsum("snp,spf->snf", patches.reshape(s, n * h * wd, c * 9), kernel)
    return out.reshape(s, n, h, wd, w.shape[-1])


def job_cnn(a: dict) -> None:
    """The CNN torso's convolution (3×3, 16 channels, SAME, on ``obs_shape``)
    for ``seeds`` seeds × ``rows`` observations, forward and backward, jitted:
    as vmap makes it (a grouped convolution) against patches + batched matmul.
    Also the largest difference between the two (they compute the same thing)."""
    h, w_, c = a.get("obs_shape", [10, 10, 4])
    for seeds, rows in a["sizes"]:
        kx, kw = jax.random.split(jax.random.PRNGKey(0))
        x = (jax.random.uniform(kx, (seeds, rows, h, w_, c)) < 0.2).astype(jnp.float32)
        w = jax.random.normal(kw, (seeds, 3, 3, c, 16), jnp.float32) * 0.3
        row = {
            "kind": "cnn",
            "seeds": seeds,
            "rows": rows,
            "obs_shape": [h, w_, c],
            "device": str(jax.devices()[0].device_kind),
        }
        outs = {}
        for name, conv in (("grouped", _conv_grouped), ("patches", _conv_patches)):
            loss = lambda w, x, conv=conv: jnp.sum(jax.nn.relu(conv(w, x)) ** 2)
            fn = jax.jit(jax.value_and_grad(loss))
            compiled = fn.lower(w, x).compile()
            outs[name] = compiled(w, x)
            jax.block_until_ready(outs[name])
            best = min(_median_run(compiled, (w, x), 1)[0] for _ in range(a.get("repeats", 5)))
            row[f"{name}_ms"] = round(best * 1e3, 3)
        row["patches_speedup"] = round(row["grouped_ms"] / row["patches_ms"], 3)
        (_, gg), (_, gp) = outs["grouped"], outs["patches"]
        row["max_rel_diff_grad"] = float(jnp.max(jnp.abs(gg - gp)) / (jnp.max(jnp.abs(gg)) + 1e-30))
        row["matmul_precision"] = str(jax.config.jax_default_matmul_precision)
        emit(row)


# ---------------------------------------------------------------------------
# Agreement: the same program twice on the default device, at two matmul
# precisions, and on the CPU
# ---------------------------------------------------------------------------


def job_agreement(a: dict) -> None:
    """Final parameters of ``jax.vmap(train)`` (a few seeds, a short budget):
    twice on the default device (bitwise equal?), with matmul precision
    ``tensorfloat32`` and ``float32``, and on the CPU; the largest relative
    difference of each from the CPU run."""
    config = _config(a["config"], **a.get("overrides", {}))
    keys = seed_keys(list(range(a.get("seeds", 4))))

    def params(device, precision):
        run = jax.jit(jax.vmap(ppo_jax.make_train(config.replace(matmul_precision=precision))))
        with jax.default_device(device):
            out = run(jax.device_put(keys, device))
        state = out[0]
        return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(state.params)])

    cpu = jax.devices("cpu")[0]
    dev = jax.devices()[0]
    ref = params(cpu, "float32")
    row = {
        "kind": "agreement",
        "device": str(dev.device_kind),
        "config": a["config"],
        "seeds": len(keys),
        "env_steps_per_seed": config.env_steps,
    }
    for precision in ("tensorfloat32", "float32"):
        first, second = params(dev, precision), params(dev, precision)
        row[f"{precision}_bitwise_repeatable"] = bool(np.array_equal(first, second))
        row[f"{precision}_max_rel_diff_vs_cpu"] = float(
            np.max(np.abs(first - ref)) / (np.max(np.abs(ref)) + 1e-30)
        )
    emit(row)


JOBS = {
    "throughput": job_throughput,
    "speed": job_speed,
    "solve": job_solve,
    "seeds": job_seeds,
    "cores": job_cores,
    "peer_seeds": job_peer_seeds,
    "data_parallel": job_data_parallel,
    "compile": job_compile,
    "memory": job_memory,
    "cnn": job_cnn,
    "agreement": job_agreement,
}

if __name__ == "__main__":
    _args = json.loads(sys.argv[2])
    if _args.get("matmul_precision"):
        # "highest": true float32 matmuls; jax's default on recent NVIDIA GPUs is TF32. The
        # global flag covers the jobs' own matmuls (matmul, cnn), the setting ppo_jax's programs.
        jax.config.update("jax_default_matmul_precision", _args["matmul_precision"])
        _PRECISION["matmul_precision"] = _args["matmul_precision"]
    JOBS[sys.argv[1]](_args)
