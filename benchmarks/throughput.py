"""Training throughput of a preset: compile time apart from run time.

    python -m benchmarks.throughput configs/cartpole.yaml --seeds 1 4 --repeats 3

Measures ``jax.jit(jax.vmap(train))`` ahead of time (lower + compile, no
persistent cache), then runs it ``--repeats`` times and reports the median run.
Writes ``benchmarks/results/throughput-<preset>.json`` and prints a markdown table.
Measures and reports only; it never passes or fails on time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import numpy as np

import ppo_jax
from ppo_jax.driver import compiler_options, seed_keys
from ppo_jax.logs import final_returns


def measure(config, num_seeds: int, repeats: int) -> dict:
    train = ppo_jax.make_train(config)
    keys = seed_keys(list(range(num_seeds)))
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(keys).compile(compiler_options())
    compile_seconds = time.perf_counter() - start
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        _, metrics = compiled(keys)
        jax.block_until_ready(metrics)
        runs.append(time.perf_counter() - start)
    run_seconds = statistics.median(runs)
    finals = final_returns(jax.device_get(metrics))
    return {
        "seeds": num_seeds,
        "env_steps_per_seed": config.env_steps,
        "compile_seconds": round(compile_seconds, 2),
        "run_seconds_median": round(run_seconds, 3),
        "run_seconds_all": [round(r, 3) for r in runs],
        "steps_per_second": round(num_seeds * config.env_steps / run_seconds),
        "final_return": [round(x, 1) for x in finals],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    config = ppo_jax.load_config(args.config)
    device = jax.devices()[0]
    rows = [measure(config, n, args.repeats) for n in args.seeds]
    report = {
        "config": args.config,
        "env_id": config.env_id,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {device.platform}: {device.device_kind}",
        "jax": jax.__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": f"python -m benchmarks.throughput {args.config} --seeds {' '.join(map(str, args.seeds))} --repeats {args.repeats}",
        "rows": rows,
    }
    out = Path(args.out or Path(__file__).parent / "results" / f"throughput-{Path(args.config).stem}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{config.env_id} — {report['machine']} — jax {report['jax']} — {report['date']}")
    print("| seeds | env steps/seed | compile (s) | run (s, median) | steps/s | final return |")
    print("|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['seeds']} | {r['env_steps_per_seed']:,} | {r['compile_seconds']} | "
            f"{r['run_seconds_median']} | {r['steps_per_second']:,} | {r['final_return']} |"
        )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
