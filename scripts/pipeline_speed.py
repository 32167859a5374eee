"""Training time of the chunked driver with and without pipelined IO, with the CLI's loggers.

    PYTHONPATH=. python scripts/pipeline_speed.py [--seeds 256] [--updates 40] [--chunks 20] [--rounds 2]
                                                  [--extra-io-ms 0]

Trains CartPole-v1 (4 envs × 32 steps, 2 epochs × 2 minibatches: small, so the
host's IO is a large share of each chunk) for ``--seeds`` vmapped seeds in
``--chunks`` chunks, logging every chunk to metrics.csv and TensorBoard as
``ppo-jax train`` does and saving a checkpoint at the end. One compiled
``ChunkedRun`` is run by the pipelined loop and by the unpipelined one,
alternating for ``--rounds`` rounds; prints per round the training seconds and
the host's time per chunk (fetch + logs + checkpoint, and waiting for the
device). ``--extra-io-ms`` adds that much host time to each chunk's IO without
using a core (a sleep: slow storage, a network file system), so that on a
CPU, where the host's IO and the "device" share the cores, the overlap itself
shows. Measures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

import ppo_jax
from ppo_jax.driver import ChunkedRun
from ppo_jax.io import checkpoint, logs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=256)
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--extra-io-ms", type=float, default=0.0)
    args = parser.parse_args()
    config = ppo_jax.load_config(
        "configs/cartpole.yaml",
        num_envs=4,
        num_steps=32,
        update_epochs=2,
        num_minibatches=2,
        total_timesteps=4 * 32 * args.updates,
    )
    seeds = list(range(args.seeds))
    run = ChunkedRun(config, seeds, target_chunks=args.chunks)
    state = run.compile()
    shardings = jax.tree.map(lambda x: x.sharding, state)
    initial = jax.device_get(state)
    print(
        f"{jax.devices()[0].platform}, {run.mesh.size} device(s), {args.seeds} seeds, plan {run.plan}, "
        f"compiled in {run.compile_seconds:.1f} s"
    )
    results = {}
    for _ in range(args.rounds):
        for pipeline in (False, True):
            run.pipeline = pipeline
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp)
                loggers = [
                    logs.MetricsCSV(out / "metrics.csv", seeds),
                    logs.TensorBoardLogger(out / "tb", seeds),
                ]
                saver = checkpoint.Checkpointer(out, keep=1)

                def on_chunk(first, metrics, seconds, loggers=loggers):
                    logged = {**metrics, "steps_per_second": np.ones(metrics["env_steps"].shape)}
                    for logger in loggers:
                        logger.log(first, logged)
                    time.sleep(args.extra_io_ms / 1e3)

                def on_state(done, state, saver=saver):
                    if done == config.num_updates:
                        saver.save(done, state, {"seeds": seeds})
                    return False

                start = time.perf_counter()
                final, _ = run.run(jax.device_put(initial, shardings), on_chunk, on_state=on_state)
                saver.close()
                seconds = time.perf_counter() - start
                for logger in loggers:
                    logger.close()
            name = "pipelined" if pipeline else "unpipelined"
            results.setdefault(name, []).append(seconds)
            print(
                f"{name:>11}: {seconds:.2f} s ({config.num_updates * config.batch_size * len(seeds) / seconds:,.0f} "
                f"env steps/s); {run.host_times.describe()}"
            )
    for name, times in results.items():
        print(f"{name:>11}: median {np.median(times):.2f} s over {len(times)} rounds")


if __name__ == "__main__":
    main()
