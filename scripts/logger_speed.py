"""Host time of the per-update loggers for one chunk: metrics.csv and TensorBoard.

    PYTHONPATH=. python scripts/logger_speed.py [--seeds 512] [--updates 5] [--repeats 5]

Logs ``--repeats`` chunks of ``--updates`` updates of ``--seeds`` seeds (random
metrics, a third of the returns NaN as when no episode finished) into a fresh
directory with ``ppo_jax.io.logs``' loggers as the CLI makes them, and prints the
median milliseconds per chunk of each, then the time to open the loggers.
Host-only: no JAX program runs. Measures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ppo_jax.io import logs
from ppo_jax.metrics import METRIC_NAMES


def chunk(seeds: int, updates: int, first: int, rng: np.random.Generator) -> dict:
    metrics = {name: rng.normal(size=(seeds, updates)).astype(np.float32) for name in METRIC_NAMES}
    metrics["episode_return"][rng.random((seeds, updates)) < 1 / 3] = np.nan
    metrics["env_steps"] = np.broadcast_to(512 * np.arange(first + 1, first + updates + 1), (seeds, updates))
    metrics["steps_per_second"] = np.full((seeds, updates), 1e6)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=512)
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    rng = np.random.default_rng(0)
    chunks = [chunk(args.seeds, args.updates, i * args.updates, rng) for i in range(args.repeats)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        loggers = {
            "metrics.csv": logs.MetricsCSV(Path(tmp) / "metrics.csv", seeds),
            "tensorboard": logs.TensorBoardLogger(Path(tmp) / "tensorboard", seeds),
        }
        opened = time.perf_counter() - start
        start = time.perf_counter()
        for logger in loggers.values():
            logger.log_hparams({"learning_rate": 3e-4, "hidden_sizes": [64, 64], "num_seeds": len(seeds)})
        hparams = time.perf_counter() - start
        for name, logger in loggers.items():
            times = []
            for i, metrics in enumerate(chunks):
                start = time.perf_counter()
                logger.log(i * args.updates, metrics)
                times.append(time.perf_counter() - start)
            start = time.perf_counter()
            logger.close()
            closed = time.perf_counter() - start
            print(
                f"{name}: {1e3 * np.median(times):.1f} ms per chunk of {args.updates} updates × {args.seeds} seeds "
                f"(min {1e3 * min(times):.1f}, max {1e3 * max(times):.1f}; close {1e3 * closed:.1f} ms)"
            )
        print(f"open both: {1e3 * opened:.1f} ms; hparams both: {1e3 * hparams:.1f} ms")


if __name__ == "__main__":
    main()
