"""The same sweep on 1 device, on 4 forced CPU devices, and across 2 localhost
processes of 2 devices each gives the same numbers (to float32 rounding); the
CLI's seeds split over 4 devices match 1 device too. Subprocesses, because the
device count is fixed when jax loads."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import sweep_worker  # noqa: E402

TIMEOUT = 420  # a hang (XLA's CPU pool, collectives) fails the test instead of the suite


def _env(devices: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["PPO_JAX_NO_CACHE"] = "1"
    return env


def _worker(out: Path, devices: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "sweep_worker.py"), str(out), *extra], env=_env(devices),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _finish(proc: subprocess.Popen) -> str:
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"worker hung for {TIMEOUT} s:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]
    return output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def one_device():
    import jax

    assert jax.device_count() == 1
    _, arrays = sweep_worker.run_sweep()
    _, train = sweep_worker.run_train()
    return {**arrays, **train}


def _assert_same(a: dict, b: dict, prefix: str) -> None:
    names = [k for k in a if k.startswith(prefix)]
    assert names
    for name in names:
        np.testing.assert_allclose(
            np.asarray(b[name], np.float64), np.asarray(a[name], np.float64), rtol=1e-4, atol=1e-6,
            equal_nan=True, err_msg=name,
        )


def test_four_devices_give_the_same_numbers(tmp_path, one_device):
    out = tmp_path / "four.npz"
    _finish(_worker(out, 4))
    four = dict(np.load(out))
    assert int(four["num_devices"]) == 4 and int(four["train_devices"]) == 4
    _assert_same(one_device, four, "curve_")
    _assert_same(one_device, four, "final_return")
    _assert_same(one_device, four, "train_")


def test_two_processes_give_the_same_numbers(tmp_path, one_device):
    out = tmp_path / "two.npz"
    address = f"127.0.0.1:{_free_port()}"
    procs = [_worker(out, 2, address, str(i), "2") for i in range(2)]
    for proc in procs:
        _finish(proc)
    two = dict(np.load(out))
    assert int(two["num_devices"]) == 4 and int(two["num_processes"]) == 2
    _assert_same(one_device, two, "curve_")
    _assert_same(one_device, two, "final_return")
