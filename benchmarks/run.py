"""The benchmark suite: one command, side by side on one machine.

    python -m benchmarks.run [--quick] [--only SECTION[,SECTION]] [--out DIR] [--gpu]

Sections: throughput, torch (PyTorch, skrl, SB3, sbx), peers (rejax), seeds, cores,
compile, memory, cnn; with --gpu, on a CUDA device: seeds (the 2048-agent
headline first), torch on CUDA, throughput, memory, cnn. Every measurement runs in its own subprocess with a time cap; each
section writes ``<out>/results/<section>.json`` (``<out>/results/gpu/`` with
--gpu), and then ``<out>/RESULTS.md`` is regenerated from every result file
there, with plots and CSVs beside it. Measures and reports; never passes or
fails on time.

Defaults: ``--out benchmarks`` (the committed report); with --quick,
``benchmarks/results-quick`` (git-ignored), so a smoke run never overwrites it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common, peers_env
from benchmarks.common import REACH_WINDOW, REPO, THRESHOLDS, run_job

SECTIONS = ("throughput", "torch", "peers", "seeds", "cores", "compile", "memory", "cnn", "agreement")
# --gpu runs the 2048-agent headline first, so that a spent budget never drops it.
GPU_ORDER = ("seeds", "torch", "agreement", "cnn", "memory", "throughput")
PRESETS = tuple(sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").glob("*.yaml")))

# Per-suite throughput rows (the throughput section): each suite's preset at a small size, run
# only where its extra is installed in this interpreter (else a "not installed" row).
# suite -> (top-level package to look for, preset config).
SUITE_ROWS = {
    "jumanji": ("jumanji", "configs/jumanji_snake.yaml"),
    "xminigrid": ("xminigrid", "configs/xminigrid_empty.yaml"),
    "navix": ("navix", "configs/navix_empty.yaml"),
    "brax": ("brax", "configs/gpu/brax_ant.yaml"),
    "playground": ("mujoco_playground", "configs/gpu/playground_cartpole_balance.yaml"),
    "craftax": ("craftax", "configs/gpu/craftax_classic.yaml"),
}

# Sizes. "full" took 64 minutes on the quiet 2-core CPU VM (2026-11-28), before the torch
# section's 10 seeds per implementation (about 3 h more, estimated); "quick" is
# the CI smoke run (< 3 minutes); "gpu" fits one 8-minute call on a GPU.
SIZES = {
    "full": {
        "throughput": [
            {"config": "configs/cartpole.yaml", "num_envs": [4, 64, 256, 1024, 4096], "env_steps": 2**20},
            {
                "config": "configs/breakout_minatar.yaml",
                "num_envs": [4, 64, 256, 1024, 4096],
                "env_steps": 2**18,
            },
        ],
        "repeats": 2,
        "matmul_n": 2048,
        "coldwarm_overrides": [],
        "throughput_cap": 600,
        # one row per installed suite: 64 envs (the physics suites and Craftax compile for minutes on a CPU)
        "suites": {name: {"num_envs": [64], "env_steps": 2**15} for name in SUITE_ROWS},
        "suites_cap": 600,
        # One agent each on one core, seeds interleaved (seed 0: every implementation, then
        # seed 1, ...), each to the preset's env-step budget or its cap (s); then the whole
        # machine. Expected: about 3 h on 2 quiet cores (CartPole ~1.4 h, Pendulum ~1.5 h,
        # whole machine a few minutes), estimated from the 2026-11-28 rates and the loaded
        # 2026-12-04 smoke runs, not yet measured.
        "torch": {
            "seeds": 10,
            "envs": {
                "CartPole-v1": {
                    "config": "configs/cartpole.yaml",
                    "overrides": {},
                    "stop_at_threshold": False,
                    "caps": {
                        "ppo_jax": 120,
                        "torch": 120,
                        "torch_compile": 180,
                        "sb3": 200,
                        "sbx": 200,
                        "skrl": 200,
                    },
                },
                "Pendulum-v1": {
                    "config": "configs/pendulum.yaml",
                    "overrides": {},
                    # the preset's 2M steps take SB3 ~15 min a run: time to −200 needs only the start
                    "stop_at_threshold": True,
                    "caps": {
                        "ppo_jax": 180,
                        "torch": 240,
                        "torch_compile": 240,
                        "sb3": 240,
                        "sbx": 240,
                        "skrl": 180,
                    },
                },
            },
            "whole_machine": {
                "env": "CartPole-v1",
                "ppo_jax_seeds": 8,
                "impls": ["torch", "sb3"],
                "cap": 300,
            },
        },
        "peers_steps": 2**19,
        "peers_pinned_row": True,
        # 8 vmapped seeds: rejax's jit(vmap(train)) against ppo_jax on 1 and 2 forced host devices
        "peers_seeds": {"seeds": 8, "steps": 2**17, "settings": 2},
        "seeds": {
            "config": "configs/cartpole.yaml",
            "counts": [1, 8, 64, 512],
            "overrides": {"total_timesteps": 16384},
            "cap": 300,
        },
        # The cores table: 1 and 2 forced host devices × 1, 8, 64 seeds; then one agent on one
        # device vs data-parallel over 2 (each job about a minute on a quiet 2-core CPU).
        "cores": {
            "config": "configs/cartpole.yaml",
            "devices": [1, 2],
            "seeds": [1, 8, 64],
            "overrides": {"total_timesteps": 2**18},
            "cap": 300,
            "data_parallel": [
                {"config": "configs/cartpole.yaml", "overrides": {"total_timesteps": 2**15}},
                {"config": "configs/breakout_minatar.yaml", "overrides": {"total_timesteps": 2**16}},
            ],
            "data_parallel_devices": 2,
            "data_parallel_repeats": 3,
            "data_parallel_cap": 150,
        },
        "compile": {"configs": PRESETS, "overrides": {}, "cap": 300},
        "memory": [
            {"config": "configs/cartpole.yaml", "sizes": [[16, 1], [256, 4]]},
            {"config": "configs/breakout_minatar.yaml", "sizes": [[16, 1], [128, 4]]},
        ],
        "memory_gib": [24, 80],
        "cnn": {"sizes": [[1, 1024], [8, 1024], [64, 512]], "repeats": 5},
        # the 2026-11-28 full run took 64 min on the quiet 2-core VM; the torch section's 10
        # seeds per implementation (2026-12-04) add about 2.5 h to it (estimated)
        "budget": 6 * 3600,
    },
    "quick": {
        "throughput": [{"config": "configs/cartpole.yaml", "num_envs": [64], "env_steps": 2**14}],
        "repeats": 1,
        "matmul_n": 512,
        "coldwarm_overrides": None,
        "throughput_cap": 300,
        # the two gridworlds that compile fastest, two updates each, where installed
        "suites": {name: {"num_envs": [16], "env_steps": 0} for name in ("jumanji", "xminigrid")},
        "suites_cap": 240,
        "torch": {
            "seeds": 1,
            "envs": {
                "CartPole-v1": {
                    "config": "configs/cartpole.yaml",
                    "overrides": {"total_timesteps": 8192},
                    "stop_at_threshold": False,
                    "caps": {"ppo_jax": 120, "torch": 4, "sb3": 4, "skrl": 4},
                },
                "Pendulum-v1": {
                    "config": "configs/pendulum.yaml",
                    "overrides": {"total_timesteps": 8192},
                    "stop_at_threshold": False,
                    "caps": {"ppo_jax": 120, "torch": 4},
                },
            },
            "whole_machine": {
                "env": "CartPole-v1",
                "ppo_jax_seeds": 2,
                "impls": ["torch"],
                "cap": 120,
                "overrides": {"total_timesteps": 4096},
            },
        },
        "peers_steps": 2**14,
        "peers_settings": 1,
        "peers_seeds": {"seeds": 8, "steps": 2**12, "settings": 1},
        "seeds": {
            "config": "configs/cartpole.yaml",
            "counts": [1, 4],
            "overrides": {"total_timesteps": 4096},
            "cap": 120,
            "one_process": True,
        },
        "cores": {
            "config": "configs/cartpole.yaml",
            "devices": [2],
            "seeds": [2],
            "overrides": {"total_timesteps": 4096},
            "cap": 300,
            "data_parallel": [{"config": "configs/cartpole.yaml", "overrides": {"total_timesteps": 2048}}],
            "data_parallel_devices": 2,
            "data_parallel_repeats": 1,
            "data_parallel_cap": 150,
        },
        "compile": {"configs": ["configs/cartpole.yaml"], "overrides": {"total_timesteps": 8192}, "cap": 300},
        "memory": [{"config": "configs/cartpole.yaml", "sizes": [[4, 1], [8, 2]]}],
        "memory_gib": [24, 80],
        "cnn": {"sizes": [[2, 16]], "repeats": 1},
        # A guard against a hang, not the expected time (about 3 minutes on a quiet 2-core CPU;
        # on a 2-core machine shared by other jobs, ten or more).
        "budget": 1080,
    },
    "gpu": {
        "throughput": [
            {"config": "configs/cartpole.yaml", "num_envs": [64, 1024, 4096, 16384], "env_steps": 2**22},
            {
                "config": "configs/breakout_minatar.yaml",
                "num_envs": [64, 1024, 4096, 16384],
                "env_steps": 2**21,
            },
        ],
        "repeats": 2,
        "matmul_n": 8192,
        "coldwarm_overrides": [],
        "throughput_cap": 150,
        "suites": {name: {"num_envs": [1024], "env_steps": 2**20} for name in SUITE_ROWS},
        "suites_cap": 150,
        # PyTorch on CUDA (when this torch has CUDA), one agent, CartPole preset, time-capped;
        # not pinned to a core (the GPU does the work).
        "torch": {
            "seeds": 1,
            "pin": False,
            "device": "cuda",
            "warm": False,  # the 400 s budget: the compiled row cold only
            "envs": {
                "CartPole-v1": {
                    "config": "configs/cartpole.yaml",
                    "overrides": {},
                    "stop_at_threshold": False,
                    "caps": {"torch": 45, "torch_compile": 45},
                }
            },
            "whole_machine": None,
        },
        "peers_steps": None,
        # The GPU target first: 2048 CartPole agents × 5e5 steps (the preset) in ≤ 30 s.
        "seeds": {
            "config": "configs/cartpole.yaml",
            "counts": [2048, 1, 64, 512],
            "overrides": {},
            "cap": 240,
            # the target again in TF32 (the suite's precision is highest): what the opt-in buys
            "also_precisions": {"tensorfloat32": [2048]},
        },
        "cores": None,
        "compile": None,
        "memory": [
            {"config": "configs/cartpole.yaml", "sizes": [[256, 1], [1024, 16]]},
            {"config": "configs/breakout_minatar.yaml", "sizes": [[128, 1], [512, 16]]},
        ],
        "memory_gib": [24, 80],
        "cnn": {"sizes": [[1, 4096], [64, 1024], [512, 256], [2048, 64]], "repeats": 10},
        "agreement": {"config": "configs/cartpole.yaml", "seeds": 4, "overrides": {"total_timesteps": 65536}},
        # benchmarks/gpu_session.sh must end within ~8 minutes, start-up and packing included
        "budget": 400,
    },
}


# One agent on one core: the process pinned to this core (every thread it starts stays
# there), XLA's intra-op threads off, one torch thread.
ONE_CORE = 0
ONE_CORE_XLA_FLAGS = "--xla_force_host_platform_device_count=1 --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _env_id(e: dict) -> str:
    import yaml

    return yaml.safe_load((REPO / e["config"]).read_text())["env_id"]


def _configs_named(body: dict) -> list[str]:
    import re

    return sorted(set(re.findall(r"configs/[\w/.-]+?\.yaml", json.dumps(body))))


def _preset(config: str) -> dict:
    """A preset's settings as its file says them now (the report compares them later)."""
    import yaml

    return yaml.safe_load((REPO / config).read_text())


def _forced_devices(count: int) -> dict:
    """The environment of a job that sees ``count`` forced host devices (other XLA flags kept)."""
    flags = " ".join(
        f
        for f in os.environ.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    )
    return {"XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={count}".strip()}


class Suite:
    def __init__(self, mode: str, results: Path, command: str, matmul_precision: str | None = None):
        self.mode, self.sizes, self.results, self.command = mode, SIZES[mode], results, command
        self.matmul_precision = matmul_precision
        self.section_load = common.load()  # reset as each section starts
        self.deadline = time.monotonic() + self.sizes["budget"]
        results.mkdir(parents=True, exist_ok=True)

    def cap(self, seconds: float) -> float:
        """A job's time cap, shortened to what is left of the run's budget."""
        return max(1.0, min(seconds, self.deadline - time.monotonic()))

    def job(self, name: str, args: dict, cap: float, **kw) -> dict:
        """A ``benchmarks.jobs`` job (``kw``: ``run_job``'s env, cpus, ...)."""
        if self.deadline - time.monotonic() < 5:
            return {"status": "not run: the suite's time budget was spent", "rows": []}
        if self.matmul_precision:
            args = {"matmul_precision": self.matmul_precision, **args}  # a job's own precision wins
        print(f"  {name} {json.dumps(args)[:100]} (cap {self.cap(cap):.0f} s)", flush=True)
        return run_job(["-m", "benchmarks.jobs", name, json.dumps(args)], self.cap(cap), **kw)

    def save(self, section: str, body: dict) -> None:
        body = {
            "section": section,
            "mode": self.mode,
            "date": common.now(),
            "command": self.command,
            "machine": common.machine(),
            "versions": common.versions(),
            "matmul_precision": self.matmul_precision or "default (float32 on a CPU)",
            # the machine's 1-minute load average when the section was written: timings on a
            # loaded machine are labelled so; the 1-, 5-, 15-minute ones at its start and end
            "load_average": round(os.getloadavg()[0], 2),
            "load_at_start": self.section_load,
            "load_at_end": common.load(),
            **common.commit(),
            **body,
        }
        # every preset the section's jobs name, as its file reads now: the report says later
        # where today's presets differ
        body.setdefault("presets", {c: _preset(c) for c in _configs_named(body) if (REPO / c).exists()})
        path = self.results / f"{section}.json"
        path.write_text(json.dumps(body, indent=1) + "\n")
        print(f"  wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}", flush=True)

    # --- sections ---------------------------------------------------------

    def throughput(self) -> None:
        s = self.sizes
        jobs = []
        for i, spec in enumerate(s["throughput"]):
            jobs.append(
                self.job(
                    "throughput",
                    {
                        **spec,
                        "min_updates": 2,
                        "repeats": s["repeats"],
                        "matmul_n": s["matmul_n"] if i == 0 else None,
                    },
                    s["throughput_cap"],
                )
            )
        # --quick leaves the CLI's cold/warm start to the compile section's own cold/warm pair
        coldwarm = self.cold_warm(s["coldwarm_overrides"]) if s["coldwarm_overrides"] is not None else {}
        self.save("throughput", {"jobs": jobs, "cold_warm": coldwarm, "suites": self.suite_rows()})

    def suite_rows(self) -> dict:
        """Train and floor steps/s of each suite's preset, where its extra is installed."""
        import importlib.util

        out = {}
        for name, spec in self.sizes.get("suites", {}).items():
            package, config = SUITE_ROWS[name]
            if importlib.util.find_spec(package) is None:
                out[name] = {
                    "status": f'not installed (pip install -e ".[{name}]")',
                    "config": config,
                    "rows": [],
                }
                continue
            out[name] = self.job(
                "throughput",
                {
                    "config": config,
                    **spec,
                    "min_updates": 2,
                    "repeats": 1,
                    "flops": False,
                    "kind": "suite_throughput",
                    "suite": name,
                },
                self.sizes["suites_cap"],
            )
            out[name]["config"] = config
        return out

    def cold_warm(self, overrides: list[str]) -> dict:
        """The CLI twice on the CartPole preset: a fresh persistent compilation
        cache (cold), then the same cache in a second process (warm)."""
        out = {}
        with tempfile.TemporaryDirectory() as tmp:
            env = {"PPO_JAX_CACHE_DIR": str(Path(tmp) / "xla")}
            for phase in ("cold", "warm"):
                argv = [
                    "-m",
                    "ppo_jax.cli",
                    "train",
                    "configs/cartpole.yaml",
                    "--seeds",
                    "1",
                    "--out",
                    str(Path(tmp) / phase),
                ]
                if overrides:
                    argv += ["--set", *overrides]
                print(f"  ppo-jax train ({phase} cache)", flush=True)
                if self.deadline - time.monotonic() < 5:
                    out[phase] = {"status": "not run: the suite's time budget was spent"}
                    continue
                job = run_job(argv, self.cap(300), env={**env, "PPO_JAX_NO_CACHE": ""})
                summary_path = Path(tmp) / phase / "summary.json"
                summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
                out[phase] = {
                    "status": job["status"],
                    "command": "ppo-jax " + " ".join(argv[3:]).replace(tmp, "$TMP"),
                    "process_seconds": job["seconds"],
                    "compile_seconds": summary.get("compile_seconds"),
                    "train_seconds": summary.get("train_seconds"),
                    "env_steps": summary.get("env_steps"),
                    "stderr_tail": job["stderr_tail"],
                }
        return out

    def torch(self) -> None:
        """ppo_jax against PyTorch (ours, also compiled; skrl's at its defaults), SB3 and sbx:
        one agent each on one core, seeds interleaved; then the whole machine."""
        spec = self.sizes["torch"]
        python, missing, where = self._torch_python()
        sbx = peers_env.python("sbx", create=self.mode == "full")
        if self.mode == "gpu" and python and not self._has_cuda(python):
            python = None
        available = {"ppo_jax": self.mode != "gpu", "sbx": bool(sbx)}
        for impl in ("torch", "torch_compile", "sb3", "skrl"):
            available[impl] = bool(python) and not (impl == "skrl" and common.missing_modules("skrl"))
        envs = {}
        with tempfile.TemporaryDirectory() as tmp:
            for env_id, e in spec["envs"].items():
                impls = [i for i in e["caps"] if available.get(i)]
                runs = self._one_core_runs(env_id, e, impls, spec, python, sbx, Path(tmp))
                envs[env_id] = {
                    "threshold": THRESHOLDS[env_id],
                    "config": e["config"],
                    "overrides": e["overrides"],
                    "stop_at_threshold": e["stop_at_threshold"],
                    "one_core": runs,
                }
            whole = spec.get("whole_machine")
            if whole and available["ppo_jax"]:
                envs[whole["env"]]["whole_machine"] = self._whole_machine(
                    whole, spec["envs"][whole["env"]], python, available
                )
        body = {
            "format": 2,
            "envs": envs,
            "window": REACH_WINDOW,
            "seeds": spec["seeds"],
            "order": "interleaved: for each seed, every implementation in turn",
            "one_core": self._one_core_note(spec),
            "presets": {e["config"]: _preset(e["config"]) for e in spec["envs"].values()},
            "torch_python": where,
            "sbx_env": peers_env.describe("sbx") if sbx else None,
        }
        if python is None:
            body["skipped"] = (
                f'skipped: not installed ({", ".join(missing)}); pip install -e ".[bench]"'
                if self.mode != "gpu"
                else "skipped: no CUDA torch here"
            )
        if not sbx and self.mode != "gpu":
            body["sbx_skipped"] = peers_env.missing("sbx")
        if common.missing_modules("skrl") and self.mode != "gpu":
            body["skrl_skipped"] = 'skipped: skrl not installed (pip install -e ".[bench]")'
        self.save("torch", body)

    def _has_cuda(self, python: str) -> bool:
        probe = ["-c", "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"]
        return run_job(probe, 120, python=python)["status"] == "ok"

    def _one_core_note(self, spec: dict) -> dict:
        pin = spec.get("pin", True)
        return {
            "cpus": [ONE_CORE] if pin else None,
            "xla_flags": ONE_CORE_XLA_FLAGS if pin else None,
            "torch_threads": 1,
        }

    def _one_core_runs(self, env_id, e, impls, spec, python, sbx, tmp: Path) -> dict:
        """Every implementation's runs for ``spec["seeds"]`` seeds, interleaved (seed 0 of each,
        then seed 1 of each, ...), so that a change in the machine's speed falls on all alike.
        ppo_jax and torch.compile run twice per seed: cold (a fresh cache), then warm."""
        runs = {}
        pin = [ONE_CORE] if spec.get("pin", True) else None
        for seed in range(spec["seeds"]):
            for impl in impls:
                cap = e["caps"][impl]
                cache = tmp / f"{env_id}-{impl}-{seed}"
                compiles = impl in ("ppo_jax", "torch_compile")
                for phase in (
                    (("cold", "warm") if spec.get("warm", True) else ("cold",)) if compiles else (None,)
                ):
                    name = f"{impl}_{phase}" if phase else impl
                    print(f"  {name} {env_id} seed {seed} (cap {cap} s)", flush=True)
                    if impl == "ppo_jax":
                        job = self._ppo_jax_solve(e, seed, 1, cache, cap, pin, ONE_CORE_XLA_FLAGS)
                    else:
                        job = self._agent(impl, e, seed, cap, python, sbx, pin, cache)
                    if phase:
                        job["phase"] = phase
                    runs.setdefault(name, []).append(job)
        return runs

    def _ppo_jax_solve(self, e, first_seed, seeds, cache: Path, cap, cpus, xla_flags) -> dict:
        args = {
            "config": e["config"],
            "seeds": seeds,
            "first_seed": first_seed,
            "threshold": THRESHOLDS[_env_id(e)],
            "window": REACH_WINDOW,
            "overrides": e["overrides"],
            "cache_dir": str(cache),
            "stop_when_all_reached": e["stop_at_threshold"],
        }
        job = self.job("solve", args, cap, env={"XLA_FLAGS": xla_flags}, cpus=cpus)
        job["command"] = job.get("command", "").replace(str(cache.parent), "$TMP")
        job["xla_flags"] = xla_flags
        return job

    def _agent_spec(self, impl, e, seed, cap, python, sbx, cpus, cache: Path) -> tuple:
        module = {"torch_compile": "torch"}.get(impl, impl)
        argv = ["-m", f"benchmarks.{module}_ppo", e["config"], "--seed", str(seed), "--time-limit", str(cap)]
        device = self.sizes["torch"].get("device", "cpu")
        if impl in ("torch", "torch_compile"):
            argv += ["--device", device]
            if self.matmul_precision == "tensorfloat32":
                argv += ["--matmul-precision", "high"]
        if impl == "torch_compile":
            argv.append("--compile")
        if e["stop_at_threshold"]:
            argv.append("--stop-at-threshold")
        if e["overrides"]:
            argv += ["--set", *(f"{k}={v}" for k, v in e["overrides"].items())]
        # torch.compile's caches in the run's own directory: the first run of a seed is cold
        env = {"TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"), "TRITON_CACHE_DIR": str(cache / "triton")}
        if impl == "sbx" and cpus:
            env["XLA_FLAGS"] = ONE_CORE_XLA_FLAGS  # sbx is jax: one core, as ppo_jax
        # the cap stops training after the update that passes it; this limit guards against a hang
        return (
            argv,
            self.cap(cap * 1.5 + 120),
            dict(python=sbx if impl == "sbx" else python, env=env, cpus=cpus),
        )

    def _agent(self, impl, e, seed, cap, python, sbx, cpus, cache: Path) -> dict:
        if self.deadline - time.monotonic() < 5:
            return {"status": "not run: the suite's time budget was spent", "rows": []}
        argv, limit, kw = self._agent_spec(impl, e, seed, cap, python, sbx, cpus, cache)
        job = run_job(argv, limit, **kw)
        job["command"] = job["command"].replace(str(cache.parent), "$TMP")
        return job

    def _whole_machine(self, whole, e, python, available) -> dict:
        """Each side on every core: ppo_jax's seeds over one forced host device per core in
        one process; torch and SB3 one agent per core, all at once, each pinned to its core."""
        cores = sorted(os.sched_getaffinity(0))
        e = {**e, "overrides": {**e["overrides"], **whole.get("overrides", {})}, "stop_at_threshold": False}
        out = {"cores": len(cores)}
        with tempfile.TemporaryDirectory() as tmp:
            print(
                f"  whole machine: ppo_jax, {whole['ppo_jax_seeds']} seeds over {len(cores)} devices",
                flush=True,
            )
            flags = _forced_devices(len(cores))["XLA_FLAGS"]
            out["ppo_jax"] = self._ppo_jax_solve(
                e, 0, whole["ppo_jax_seeds"], Path(tmp) / "jax", whole["cap"], None, flags
            )
            for impl in whole["impls"]:
                if not available.get(impl) or self.deadline - time.monotonic() < 5:
                    continue
                print(f"  whole machine: {impl}, one agent on each of {len(cores)} cores", flush=True)
                specs = [
                    self._agent_spec(impl, e, i, whole["cap"], python, None, [c], Path(tmp) / f"{impl}-{i}")
                    for i, c in enumerate(cores)
                ]
                out[impl] = common.run_jobs(specs)
        return out

    def _torch_python(self):
        """The python that runs torch_ppo.py and sb3_ppo.py: this one when it has
        torch, gymnasium and SB3 (the bench extra); else the sbx peer venv's,
        which pins the same torch, gymnasium and SB3 versions."""
        missing = common.missing_modules("torch", "gymnasium", "stable_baselines3")
        if self.mode == "gpu":
            missing = common.missing_modules("torch", "gymnasium")
        if not missing:
            return sys.executable, [], "this environment (the bench extra)"
        if self.mode != "gpu":
            sbx = peers_env.python("sbx", create=self.mode == "full")
            if sbx:
                return (
                    sbx,
                    missing,
                    "the sbx peer venv (benchmarks/.peers-venvs/sbx: same torch, gymnasium, SB3 pins)",
                )
        return None, missing, None

    def peers(self) -> None:
        steps = self.sizes["peers_steps"]
        if steps is None:
            self.save("peers", {"skipped": "not run in this mode"})
            return
        create = self.mode != "quick"
        same = peers_env.python("rejax", create=create)
        pinned = (
            peers_env.python("rejax-jax0435", create=create) if self.sizes.get("peers_pinned_row") else None
        )
        if same is None:
            self.save("peers", {"skipped": peers_env.missing("rejax")})
            return
        import yaml

        preset = yaml.safe_load((REPO / "configs/cartpole.yaml").read_text())
        shape = (
            f"{preset['num_envs']} × {preset['num_steps']}, "
            f"{preset['update_epochs']} × {preset['num_minibatches']}"
        )
        settings = {
            "4 envs × 128 steps, 4 epochs × 4 minibatches": {
                "num_envs": 4,
                "num_steps": 128,
                "update_epochs": 4,
                "num_minibatches": 4,
            },
            f"CartPole preset ({shape})": {},  # the label read from the preset, as the run is
        }
        rows = []
        for label, over in list(settings.items())[: self.sizes.get("peers_settings")]:
            over = {**over, "total_timesteps": steps}
            s = {**preset, **over, "seed": 0, "repeats": self.sizes["repeats"]}
            row = {"settings": label, "overrides": over}
            # Alternating: rejax, ppo_jax, then the old pinned rejax (a labelled extra row).
            print(f"  rejax (same jax): {label}", flush=True)
            row["rejax"] = self._peer_job(s, same)
            row["ppo_jax"] = self.job(
                "speed",
                {"config": "configs/cartpole.yaml", "overrides": over, "repeats": self.sizes["repeats"]},
                300,
            )
            if pinned:
                print(f"  rejax (jax 0.4.35): {label}", flush=True)
                row["rejax_jax0435"] = self._peer_job(s, pinned)
            rows.append(row)
        seed_rows = self._peer_seed_rows(same, preset, settings)
        self.save(
            "peers",
            {
                "rows": rows,
                "seed_rows": seed_rows,
                "peers_env": peers_env.describe("rejax"),
                "pinned_env": peers_env.describe("rejax-jax0435") if pinned else None,
            },
        )

    def _peer_job(self, settings: dict, python: str, env: dict | None = None) -> dict:
        """benchmarks/peers/rejax_ppo.py in a peer venv, unless the budget is spent."""
        if self.deadline - time.monotonic() < 5:
            return {"status": "not run: the suite's time budget was spent", "rows": []}
        return run_job(
            ["benchmarks/peers/rejax_ppo.py", json.dumps(settings)], self.cap(300), python=python, env=env
        )

    def _peer_seed_rows(self, same: str, preset: dict, settings: dict) -> list:
        """8 seeds, vmapped: rejax's ``jax.jit(jax.vmap(train))`` on one device (its
        own way; initial states built per seed outside the vmap, see
        benchmarks/peers/rejax_ppo.py), then ppo_jax in one program on 1 and on 2
        forced host devices (the whole 2-core machine, as ppo_jax's CLI runs by
        default). Each in its own process; compile apart."""
        spec = self.sizes.get("peers_seeds")
        if not spec:
            return []
        flags = " ".join(
            f
            for f in os.environ.get("XLA_FLAGS", "").split()
            if not f.startswith("--xla_force_host_platform_device_count")
        )
        out = []
        for label, over in list(settings.items())[: spec["settings"]]:
            over = {**over, "total_timesteps": spec["steps"]}
            s = {**preset, **over, "seed": 0, "seeds": spec["seeds"], "repeats": self.sizes["repeats"]}
            row = {"settings": label, "overrides": over, "seeds": spec["seeds"]}
            print(f"  rejax (same jax), {spec['seeds']} seeds vmapped: {label}", flush=True)
            row["rejax"] = self._peer_job(s, same, env={"XLA_FLAGS": flags})
            for devices in (1, 2):
                env = {"XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={devices}".strip()}
                job = self.job(
                    "peer_seeds",
                    {
                        "config": "configs/cartpole.yaml",
                        "seeds": spec["seeds"],
                        "overrides": over,
                        "repeats": self.sizes["repeats"],
                    },
                    300,
                    env=env,
                )
                job["xla_flags"] = env["XLA_FLAGS"]
                row[f"ppo_jax_{devices}dev"] = job
            out.append(row)
        return out

    def seeds(self) -> None:
        s = self.sizes["seeds"]
        args = {"config": s["config"], "overrides": s["overrides"]}
        if s.get("one_process"):
            jobs = [self.job("seeds", {**args, "counts": s["counts"]}, s["cap"])]
        else:
            jobs = []
            counts = [(n, None) for n in s["counts"]]
            counts[1:1] = [(n, p) for p, ns in s.get("also_precisions", {}).items() for n in ns]
            for n, precision in counts:
                extra = {} if precision is None else {"matmul_precision": precision}
                jobs.append(self.job("seeds", {**args, "counts": [n], **extra}, s["cap"]))
                # saved after each count, so a run cut short keeps what it measured (--gpu: 2048 first)
                self.save("seeds", {"jobs": jobs})
        self.save("seeds", {"jobs": jobs})

    def cores(self) -> None:
        """Seeds over 1 and 2 forced host devices, each in its own process; then
        one agent on one device vs data-parallel over the devices, in one process."""
        c = self.sizes["cores"]
        if c is None:
            self.save("cores", {"skipped": "not run in this mode (forced host devices are a CPU matter)"})
            return
        jobs = []
        for seeds in c["seeds"]:
            for devices in c["devices"]:
                env = _forced_devices(devices)
                args = {"config": c["config"], "seeds": seeds, "overrides": c["overrides"]}
                job = self.job("cores", args, c["cap"], env=env)
                job["xla_flags"] = env["XLA_FLAGS"]
                jobs.append(job)
        for preset in c.get("data_parallel", []):
            env = _forced_devices(c["data_parallel_devices"])
            job = self.job(
                "data_parallel",
                {**preset, "repeats": c["data_parallel_repeats"]},
                c["data_parallel_cap"],
                env=env,
            )
            job["xla_flags"] = env["XLA_FLAGS"]
            jobs.append(job)
        self.save("cores", {"jobs": jobs})

    def compile(self) -> None:
        """Every preset's training program compiled with a fresh persistent
        cache (cold), then again in a new process with that cache (warm)."""
        c = self.sizes["compile"]
        if c is None:
            self.save("compile", {"skipped": "not run in this mode"})
            return
        jobs = []
        for config in c["configs"]:
            with tempfile.TemporaryDirectory() as tmp:
                for phase in ("cold", "warm"):
                    args = {
                        "config": config,
                        "phase": phase,
                        "cache_dir": str(Path(tmp) / "xla"),
                        "overrides": c["overrides"],
                    }
                    job = self.job("compile", args, c["cap"])
                    job["command"] = job.get("command", "").replace(tmp, "$TMP")
                    jobs.append(job)
        self.save("compile", {"jobs": jobs})

    def memory(self) -> None:
        specs = self.sizes.get("memory")
        if not specs:
            self.save("memory", {"skipped": "not run in this mode"})
            return
        jobs = [self.job("memory", {**m, "memory_gib": self.sizes["memory_gib"]}, 300) for m in specs]
        self.save("memory", {"jobs": jobs})

    def agreement(self) -> None:
        spec = self.sizes.get("agreement")
        if not spec:
            self.save("agreement", {"skipped": "not run in this mode (GPU against CPU: --gpu only)"})
            return
        self.save("agreement", {"jobs": [self.job("agreement", spec, 240)]})

    def cnn(self) -> None:
        spec = self.sizes.get("cnn")
        if not spec:
            self.save("cnn", {"skipped": "not run in this mode"})
            return
        self.save("cnn", {"jobs": [self.job("cnn", spec, 300)]})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: the CI smoke run (< 3 min)")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated among {', '.join(SECTIONS)}"
    )
    parser.add_argument(
        "--out", default=None, help="where RESULTS.md goes; raw numbers and plots in OUT/results/"
    )
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="the suite on a CUDA device, sized for one call of about 7 minutes (budget 400 s)",
    )
    parser.add_argument(
        "--matmul-precision",
        default=None,
        help="matmul precision of every job: ppo_jax's matmul_precision setting and jax's global "
        "default (--gpu default: highest, ppo_jax's own default; the GPU's 2048-agent target is "
        "measured in tensorfloat32 too)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds the suite may spend before it skips what is left (default: the mode's own)",
    )
    args = parser.parse_args(argv)

    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        print(
            f"--only: unknown section(s) {', '.join(unknown)}; choose among {', '.join(SECTIONS)}",
            file=sys.stderr,
        )
        return 2
    if args.gpu:
        # Asked in a child process: jax in this one would take (preallocate) the GPU's
        # memory for the whole run, and every job runs in a process of its own.
        probe = run_job(
            ["-c", "import jax, json; print(json.dumps({'backend': jax.default_backend()}))"], 300
        )
        backend = next((r.get("backend") for r in probe["rows"]), None)
        if backend != "gpu":
            print(
                f"--gpu: jax sees no CUDA device (backend: {backend}; {probe['stderr_tail'][-300:]})",
                file=sys.stderr,
            )
            return 2
    out = Path(args.out) if args.out else REPO / "benchmarks" / ("results-quick" if args.quick else "")
    out = out.resolve()
    mode = "gpu" if args.gpu else "quick" if args.quick else "full"
    results = out / "results" / ("gpu" if args.gpu else "")
    command = "python -m benchmarks.run " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    os.chdir(REPO)
    precision = args.matmul_precision or ("highest" if args.gpu else None)
    suite = Suite(mode, results, command.strip(), precision)
    if args.budget is not None:
        suite.deadline = time.monotonic() + args.budget
    start = time.monotonic()
    for section in GPU_ORDER if args.gpu else SECTIONS:
        if section in only:
            print(f"[{section}] {time.monotonic() - start:.0f} s", flush=True)
            suite.section_load = common.load()
            getattr(suite, section)()
    from benchmarks import report

    path = report.write(out)
    print(f"wrote {path} after {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
