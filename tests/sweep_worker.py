"""A small sweep (and a train run) in a subprocess with forced CPU devices
(``tests/test_sweep_devices.py``). XLA_FLAGS must be set before jax loads.

    python tests/sweep_worker.py OUT.npz
"""

import sys

import numpy as np

CONFIG = dict(total_timesteps=4 * 32 * 4, num_envs=4, num_steps=32, update_epochs=2, num_minibatches=2)
GRID = {"learning_rate": [1e-3, 5e-3], "clip_eps": [0.1, 0.3]}
SEEDS = [0, 1, 2]  # 12 runs: padded to 16 on 4 devices
TRAIN_SEEDS = [0, 1, 2, 3]


def run_sweep():
    import ppo_jax

    config = ppo_jax.load_config(None, **CONFIG)
    result = ppo_jax.sweep(config, GRID, seeds=SEEDS)
    return result, {
        "final_return": result.final_return,
        **{f"curve_{k}": v for k, v in result.curves.items()},
    }


def run_train():
    """The CLI's ChunkedRun: seeds split over the local devices."""
    import ppo_jax
    from ppo_jax.driver import ChunkedRun

    run = ChunkedRun(ppo_jax.load_config(None, **CONFIG), TRAIN_SEEDS, target_chunks=2)
    _, metrics = run.run(run.compile())
    return run, {f"train_{k}": v for k, v in metrics.items()}


def main(argv):
    result, arrays = run_sweep()
    run, train_arrays = run_train()
    arrays.update(
        train_arrays, num_devices=np.asarray(result.num_devices), train_devices=np.asarray(run.mesh.size)
    )
    np.savez(argv[1], **arrays)


if __name__ == "__main__":
    main(sys.argv)
