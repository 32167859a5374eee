"""--cpu-devices: the CPU split into one device per core by default (runs in
parallel) trains the same runs and sweeps, to float32 rounding, as one device;
a run split over two devices, stopped by Ctrl-C and resumed, is bitwise the
uninterrupted one."""

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_XLA_FLAGS, assert_bitwise_equal, interrupt_cli, run_cli

import ppo_jax

ROOT = Path(__file__).parent.parent
TINY = ["--set", "total_timesteps=2048", "--set", "num_envs=4", "--set", "num_steps=64", "--no-progress"]


def _cli(*args):
    env = {**os.environ, "XLA_FLAGS": TEST_XLA_FLAGS}  # no device count: the CLI's default split
    result = run_cli(*args, env={**env, "PPO_JAX_NO_CACHE": "1"})
    assert result.returncode == 0, result.stderr
    return result


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _close(a, b, columns):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for c in columns:
            u, v = (float(r[c]) if r[c] not in ("", "nan") else np.nan for r in (x, y))
            np.testing.assert_allclose(u, v, rtol=1e-3, atol=1e-3, equal_nan=True, err_msg=f"{c}: {x}")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores for the default to split")
def test_train_default_devices_match_one_device(tmp_path):
    _cli(
        "train",
        "configs/cartpole.yaml",
        "--seeds",
        "2",
        "--out",
        str(tmp_path / "many"),
        "--no-tensorboard",
        *TINY,
    )
    _cli(
        "train",
        "configs/cartpole.yaml",
        "--seeds",
        "2",
        "--out",
        str(tmp_path / "one"),
        "--no-tensorboard",
        "--cpu-devices",
        "1",
        *TINY,
    )
    many, one = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("many", "one"))
    assert many["devices"] == 2 and one["devices"] == 1
    _close(
        _rows(tmp_path / "many" / "metrics.csv"),
        _rows(tmp_path / "one" / "metrics.csv"),
        ["env_steps", "episode_return", "episodes", "value_loss", "approx_kl"],
    )


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores for the default to split")
def test_sweep_default_devices_match_one_device(tmp_path):
    grid = ["--grid", "learning_rate=2.5e-4,1e-3", "--seeds", "1"]
    _cli("sweep", "configs/cartpole.yaml", *grid, "--out", str(tmp_path / "many"), *TINY)
    _cli("sweep", "configs/cartpole.yaml", *grid, "--out", str(tmp_path / "one"), "--cpu-devices", "1", *TINY)
    many, one = (json.loads((tmp_path / d / "sweep.json").read_text()) for d in ("many", "one"))
    assert many["devices"] == 2 and one["devices"] == 1
    rows_many, rows_one = _rows(tmp_path / "many" / "results.csv"), _rows(tmp_path / "one" / "results.csv")
    assert [{k: v for k, v in r.items() if k != "value"} for r in rows_many] == [
        {k: v for k, v in r.items() if k != "value"} for r in rows_one
    ]
    _close(rows_many, rows_one, ["value"])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores for the default to split")
def test_run_on_two_devices_stopped_by_ctrl_c_and_resumed_is_bitwise_the_uninterrupted_one(tmp_path, cli_env):
    # 2 seeds, one per device; 400 updates, so that Ctrl-C at the first progress line lands mid-run
    args = [
        "train",
        "configs/cartpole.yaml",
        "--seeds",
        "2",
        "--no-tensorboard",
        "--set",
        "total_timesteps=51200",
        "--set",
        "num_envs=4",
        "--set",
        "num_steps=32",
    ]
    full, part = tmp_path / "full", tmp_path / "part"
    env = {**cli_env, "XLA_FLAGS": TEST_XLA_FLAGS}  # no device count: the CLI's default split
    done = subprocess.run(
        [sys.executable, "-m", "ppo_jax.cli", *args, "--out", str(full), "--no-progress"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr

    code, err = interrupt_cli([*args, "--out", str(part)], signal.SIGINT, env, timeout=600)
    assert code == 128 + signal.SIGINT, err
    summary = json.loads((part / "summary.json").read_text())
    assert summary["devices"] == 2 and 0 < summary["stopped"]["update"] < 400

    resumed = subprocess.run(
        [sys.executable, "-m", "ppo_jax.cli", "train", "--resume", str(part), "--no-progress"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((part / "summary.json").read_text())["devices"] == 2
    a, b = ppo_jax.load_run(part), ppo_jax.load_run(full)
    assert a.update == b.update == 400
    assert_bitwise_equal(a.state, b.state)
    assert (part / "metrics.csv").read_bytes() == (full / "metrics.csv").read_bytes()
