"""A population split over 4 forced CPU devices (6 members padded to 8, parents
copied across devices) gives the numbers of 1 device, to float32 rounding.
Subprocesses, because the device count is fixed when jax loads:

    python tests/test_pbt_devices.py OUT.npz
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
TIMEOUT = 420
CONFIG = dict(total_timesteps=4 * 32 * 8, num_envs=4, num_steps=32, update_epochs=2, num_minibatches=2)


def _worker(out: str) -> None:
    import jax

    import ppo_jax

    config = ppo_jax.load_config(None, **CONFIG)
    explore = {"learning_rate": (1e-4, 1e-2, "log"), "clip_eps": (0.05, 0.3)}
    result = ppo_jax.pbt(
        config, explore, population=6, ready=2, fraction=0.34, resample=0.3, seed=2, init="uniform"
    )
    np.savez(
        out,
        devices=np.asarray(len(jax.devices())),
        result_devices=np.asarray(result.num_devices),
        final_return=result.final_return,
        parents=result.parents,
        **{f"curve_{k}": v for k, v in result.curves.items()},
        **{f"value_{k}": v for k, v in result.values.items()},
    )


def _run(tmp_path: Path, devices: int) -> dict:
    sys.path.insert(0, str(HERE))
    from conftest import TEST_XLA_FLAGS

    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = f"{TEST_XLA_FLAGS} --xla_force_host_platform_device_count={devices}"
    env["PPO_JAX_NO_CACHE"] = "1"
    out = tmp_path / f"{devices}.npz"
    proc = subprocess.run(
        [sys.executable, __file__, str(out)],
        env=env,
        cwd=HERE.parent,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return dict(np.load(out))


def test_four_devices_give_the_numbers_of_one(tmp_path):
    one, four = _run(tmp_path, 1), _run(tmp_path, 4)
    assert int(one["result_devices"]) == 1 and int(four["result_devices"]) == 4
    np.testing.assert_array_equal(four["parents"], one["parents"])
    assert (one["parents"] != np.arange(6)).any()  # something was copied
    for name in one:
        if name.startswith(("curve_", "value_")) or name == "final_return":
            np.testing.assert_allclose(four[name], one[name], rtol=2e-4, atol=1e-5, err_msg=name)


if __name__ == "__main__":
    _worker(sys.argv[1])
