"""``ppo-jax train`` and ``ppo-jax sweep``, each resumed from its next-to-last
checkpoint, under the PRNG implementation JAX_DEFAULT_PRNG_IMPL names
(``tests/test_prng_impls.py`` runs it with rbg, whose keys are 4 words, not 2).
One process: JAX imports once, and the resumes load the programs the runs kept.

    python tests/prng_worker.py OUT_DIR train|sweep

Prints one JSON line of what the test checks.
"""

import json
import shutil
import sys
from pathlib import Path

SMALL = ["--cpu-devices", "1", "--no-progress", "--checkpoint-every", "4"]
SMALL += ["--set", "total_timesteps=2048", "--set", "num_envs=4", "--set", "num_steps=32"]  # 16 updates
SMALL += ["--set", "update_epochs=1", "--set", "num_minibatches=1", "--set", "hidden_sizes=[16]"]
TRAIN = ["train", "configs/cartpole.yaml", "--seeds", "2", "--no-tensorboard", *SMALL]
SWEEP = ["sweep", "configs/cartpole.yaml", "--seeds", "2", "--grid", "learning_rate=1e-3,3e-3", *SMALL]


def _resumed_from_an_earlier_checkpoint(command: str, out: Path, outputs: list[str]) -> dict:
    """Drop the last checkpoint and resume from the one before; whether each output
    file is byte for byte the uninterrupted run's."""
    from ppo_jax import cli
    from ppo_jax.io.checkpoint import checkpoint_dir, saved_updates

    before = {name: (out / name).read_bytes() for name in outputs}
    shutil.rmtree(checkpoint_dir(out) / str(saved_updates(out)[-1]))
    code = cli.main([command, "--resume", str(out), "--no-progress"])
    return {"code": code, **{name: (out / name).read_bytes() == data for name, data in before.items()}}


def train(out: Path) -> dict:
    import jax
    import numpy as np

    import ppo_jax
    from ppo_jax import cli

    report = {"prng_impl": jax.config.jax_default_prng_impl, "code": cli.main([*TRAIN, "--out", str(out)])}
    full = ppo_jax.load_run(out).state
    report["key_shape"] = list(full.key.shape)
    report["summary"] = json.loads((out / "summary.json").read_text())
    report["resumed"] = _resumed_from_an_earlier_checkpoint("train", out, ["metrics.csv"])
    resumed = ppo_jax.load_run(out).state
    report["state_equal"] = all(
        np.array_equal(np.asarray(a).view(np.uint8), np.asarray(b).view(np.uint8))
        for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(resumed))
    )
    return report


def sweep(out: Path) -> dict:
    from ppo_jax import cli

    report = {"code": cli.main([*SWEEP, "--out", str(out)])}
    report["summary"] = json.loads((out / "sweep.json").read_text())
    report["resumed"] = _resumed_from_an_earlier_checkpoint("sweep", out, ["results.csv"])
    return report


if __name__ == "__main__":
    command = {"train": train, "sweep": sweep}[sys.argv[2]]
    print(json.dumps(command(Path(sys.argv[1])), default=str))
