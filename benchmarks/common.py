"""What every benchmark section shares: the machine, versions, jobs run as
subprocesses, and one definition of "reached the return threshold".

Nothing here imports jax or torch: the orchestrator stays light, and each job
runs in its own process (its own time cap, its own peak memory).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parent.parent

# The return an agent must reach, and how many of its most recent finished
# episodes are averaged to say so. The same rule for every implementation.
THRESHOLDS = {"CartPole-v1": 475.0, "Pendulum-v1": -200.0}
REACH_WINDOW = 20
FINAL_FRACTION = 0.05  # final return: episodes finished in the last 5% of the steps taken


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> Optional[str]:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.splitlines()[0] if out else None


def machine() -> dict:
    mem_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem_gib = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "gpu": gpu_name(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def machine_line(m: dict) -> str:
    gpu = m.get("gpu") or "no GPU"
    return f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB RAM, {gpu}; Python {m['python']}"


def versions(
    packages: Sequence[str] = (
        "ppo_jax",
        "jax",
        "jaxlib",
        "flax",
        "optax",
        "gymnax",
        "numpy",
        "torch",
        "stable_baselines3",
        "gymnasium",
        "skrl",
    ),
) -> dict:
    out = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def missing_modules(*modules: str) -> list[str]:
    """The modules of ``modules`` that cannot be found (without importing them)."""
    import importlib.util

    return [m for m in modules if importlib.util.find_spec(m) is None]


def run_job(
    argv: Sequence[str],
    timeout: float,
    *,
    python: Optional[str] = None,
    env: Optional[dict] = None,
    cwd: Optional[Path] = None,
    cpus: Optional[Sequence[int]] = None,
) -> dict:
    """Run ``python argv...`` with a time cap; collect the JSON lines it prints.

    Returns ``{"status": "ok" | "timeout" | "error", "command", "rows": [...],
    "seconds", "stderr_tail", "load_start", "load_end"}`` (the load averages when it
    started and ended; ``cpus``, when given: the cores it was pinned to). Rows printed
    before a timeout are kept. Jobs report their own peak memory (``peak_rss_mib``).
    """
    return run_jobs([(argv, timeout, dict(python=python, env=env, cwd=cwd, cpus=cpus))])[0]


def run_jobs(specs: Sequence[tuple]) -> list[dict]:
    """Several jobs at once, each ``(argv, timeout, {python, env, cwd, cpus})``; each
    pinned to its ``cpus`` (``os.sched_setaffinity``) from before its first
    instruction, so every thread it starts stays there. Their results, in order."""
    started = []
    for argv, timeout, kw in specs:
        cmd = [kw.get("python") or sys.executable, *argv]
        cpus = kw.get("cpus")
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(kw.get("env") or {})},
            cwd=str(kw.get("cwd") or REPO),
            start_new_session=True,
            preexec_fn=(lambda c=tuple(cpus): os.sched_setaffinity(0, c)) if cpus else None,
        )
        started.append((proc, cmd, time.monotonic() + timeout, time.perf_counter(), load(), cpus))
    return [_finish(*item) for item in started]


def _finish(proc, cmd, deadline: float, start: float, load_start: list, cpus) -> dict:
    status = "ok"
    try:
        stdout, stderr = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        stdout, stderr = proc.communicate()
        status = "timeout"
    seconds = time.perf_counter() - start
    if status == "ok" and proc.returncode != 0:
        status = "error"
    rows = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                rows.append(json.loads(line))
    out = {
        "status": status,
        "command": " ".join(str(c) for c in cmd),
        "rows": rows,
        "seconds": round(seconds, 2),
        "stderr_tail": "" if status == "ok" else stderr[-2000:],
        "load_start": load_start,
        "load_end": load(),
    }
    if cpus:
        out["cpus"] = list(cpus)
    return out


def emit(row: dict) -> None:
    """A job's result line: one JSON object per line on stdout, flushed."""
    print(json.dumps(row, default=_jsonable), flush=True)


def _jsonable(x):
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
    except ImportError:
        pass
    return str(x)


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def commit() -> dict:
    """The git commit of the checkout that ran, and whether its tracked files differed from it."""

    def git(*args):
        try:
            out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def load() -> list[float]:
    """The 1-, 5- and 15-minute load averages now."""
    return [round(x, 2) for x in os.getloadavg()]


def peak_rss_mib() -> float:
    """Peak resident memory of this process, MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ---------------------------------------------------------------------------
# One definition of "reached", for every implementation
# ---------------------------------------------------------------------------


def reach(
    rollouts: Sequence[Sequence[float]],
    threshold: float,
    window: int = REACH_WINDOW,
) -> Optional[dict]:
    """When an agent first reached ``threshold``.

    ``rollouts``: per rollout, in order, ``(seconds, env_steps, episodes,
    return_sum)``: the time and steps when the rollout's data was on the host,
    and the count and return sum of the episodes that finished in it.
    Reached = at the end of a rollout, the mean return of the finished episodes
    in the fewest most recent rollouts that hold at least ``window`` episodes is
    ≥ ``threshold``. Returns ``{"seconds", "env_steps"}`` or None.
    """
    counts, sums = [], []
    for seconds, env_steps, count, total in rollouts:
        counts.append(count)
        sums.append(total)
        n = s = 0.0
        for c, t in zip(reversed(counts), reversed(sums)):
            n += c
            s += t
            if n >= window:
                break
        if n >= window and s / n >= threshold:
            return {"seconds": round(float(seconds), 3), "env_steps": int(env_steps)}
    return None


def median_ci(values: Sequence[Optional[float]], level: float = 0.95) -> dict:
    """The median of ``values`` and a distribution-free ``level`` interval for it (order
    statistics: the k-th smallest and k-th largest, k the largest with
    P(Binomial(n, ½) < k) ≤ (1 − level)/2; with n = 10: the 2nd and 9th). ``None`` (a run that
    never reached) counts as +∞: the median exists while fewer than half are None, an interval
    end is None where it falls on one. Returns ``{"median", "low", "high", "n", "level"}``;
    low/high are None when n is too small for the level (n < 6 at 95%)."""
    import math

    n = len(values)
    xs = sorted(math.inf if v is None else float(v) for v in values)
    fin = lambda x: None if x is None or math.isinf(x) else round(x, 3)
    if n == 0:
        return {"median": None, "low": None, "high": None, "n": 0, "level": level}
    mid = (xs[(n - 1) // 2] + xs[n // 2]) / 2
    tail, k = (1 - level) / 2, 0
    while sum(math.comb(n, i) for i in range(k + 1)) / 2**n <= tail:
        k += 1  # now P(B <= k-1) <= tail < P(B <= k): the k-th order statistic (1-indexed)
    low, high = (xs[k - 1], xs[n - k]) if k >= 1 else (None, None)
    return {"median": fin(mid), "low": fin(low), "high": fin(high), "n": n, "level": level}


def final_return(rollouts: Sequence[Sequence[float]], fraction: float = FINAL_FRACTION) -> Optional[float]:
    """Mean return of the episodes that finished in the last ``fraction`` of the
    steps taken (whole rollouts; at least the last one)."""
    if not rollouts:
        return None
    last_steps = rollouts[-1][1]
    cutoff = last_steps * (1.0 - fraction)
    n = s = 0.0
    for i, (_, env_steps, count, total) in enumerate(rollouts):
        if env_steps > cutoff or i == len(rollouts) - 1:
            n += count
            s += total
    return round(s / n, 2) if n > 0 else None


def agent_main(description: str, train, load_settings) -> None:
    """The command line shared by ``torch_ppo.py`` and ``sb3_ppo.py``: one agent, its
    result as one JSON line on stdout."""
    import argparse
    import math

    import torch
    import yaml

    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (its default, all cores, was far slower for nets this small)",
    )
    parser.add_argument(
        "--time-limit", type=float, default=math.inf, help="stop after the update that passes it"
    )
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="override settings (YAML values)"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch_ppo only: torch.compile the action step and the minibatch loss + backward",
    )
    parser.add_argument(
        "--stop-at-threshold",
        action="store_true",
        help="stop after the rollout at which the agent reached its env's threshold (benchmarks.common.reach)",
    )
    parser.add_argument(
        "--matmul-precision",
        choices=("highest", "high", "medium"),
        default=None,
        help="torch.set_float32_matmul_precision (high: TF32 on GPUs that have it)",
    )
    args = parser.parse_args()
    if args.matmul_precision:
        torch.set_float32_matmul_precision(args.matmul_precision)
    overrides = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    torch.set_num_threads(args.threads)
    extra = {"compile_update": True} if args.compile else {}
    settings = load_settings(args.config, overrides)
    if args.stop_at_threshold:
        extra["stop_at"] = THRESHOLDS[settings["env_id"]]
    result = train(settings, args.seed, args.device, args.time_limit, **extra)
    result["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    print(json.dumps(result), flush=True)
