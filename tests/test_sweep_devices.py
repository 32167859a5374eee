"""The same sweep on 1 device, on 4 forced CPU devices, and from the CLI across
2 localhost processes of 2 devices each gives the same numbers (to float32
rounding); train's seeds split over 4 devices match 1 device too. Subprocesses,
because the device count is fixed when jax loads."""

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
from conftest import TEST_XLA_FLAGS  # noqa: E402

TIMEOUT = 420  # a hang (XLA's CPU pool, collectives) fails the test instead of the suite


def _env(devices: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = f"{TEST_XLA_FLAGS} --xla_force_host_platform_device_count={devices}"
    env["PPO_JAX_NO_CACHE"] = "1"
    return env


def _start(args: list, devices: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        env=_env(devices),
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
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
            np.asarray(b[name], np.float64),
            np.asarray(a[name], np.float64),
            rtol=1e-4,
            atol=1e-6,
            equal_nan=True,
            err_msg=name,
        )


def test_four_devices_give_the_same_numbers(tmp_path, one_device):
    out = tmp_path / "four.npz"
    _finish(_start([str(HERE / "sweep_worker.py"), str(out)], 4))
    four = dict(np.load(out))
    assert int(four["num_devices"]) == 4 and int(four["train_devices"]) == 4
    _assert_same(one_device, four, "curve_")
    _assert_same(one_device, four, "final_return")
    _assert_same(one_device, four, "train_")


def test_two_cli_processes_give_the_same_numbers(tmp_path, one_device):
    import pandas as pd
    import yaml

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(sweep_worker.CONFIG))
    out = tmp_path / "sweep"
    args = [
        "-m",
        "ppo_jax.cli",
        "sweep",
        str(config),
        "--out",
        str(out),
        "--no-progress",
        "--seeds",
        str(len(sweep_worker.SEEDS)),
        "--coordinator",
        f"127.0.0.1:{_free_port()}",
        "--num-processes",
        "2",
    ]
    for name, values in sweep_worker.GRID.items():
        args += ["--grid", f"{name}={','.join(str(v) for v in values)}"]
    procs = [_start(args + ["--process-id", str(i)], 2) for i in range(2)]
    outputs = [_finish(proc) for proc in procs]
    assert "on 4 cpu device(s) in 2 processes" in outputs[0] and "in 1 compiled program" in outputs[0]
    assert "sweep written" in outputs[0] and "sweep written" not in outputs[1]  # process 0 writes

    table = pd.read_csv(out / "results.csv")
    table = table.sort_values(["grid_point", "seed", "env_steps"])
    shape = one_device["final_return"].shape
    two = {"final_return": table[table.metric == "final_return"].value.to_numpy().reshape(shape)}
    for name in ("episode_return", "policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm"):
        two[f"curve_{name}"] = table[table.metric == name].value.to_numpy().reshape(shape + (-1,))
    _assert_same({k: one_device[k] for k in two}, two, "curve_")
    _assert_same({k: one_device[k] for k in two}, two, "final_return")
