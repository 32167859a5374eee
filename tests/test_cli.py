"""The CLI as a user runs it: files written, summary fields, errors with exit 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parent.parent


def _cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "ppo_jax.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PPO_JAX_NO_CACHE": "1"},
    )


def test_train_writes_a_run_directory(tmp_path):
    out = tmp_path / "run"
    result = _cli(
        "train", "configs/cartpole.yaml", "--seeds", "2", "--out", str(out),
        "--set", "total_timesteps=8192", "--set", "num_envs=4", "--set", "num_steps=64",
    )
    assert result.returncode == 0, result.stderr
    assert f"run written to {out}" in result.stdout
    for name in ("config.yaml", "metrics.csv", "summary.json", "curves.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    for key in ("env_id", "seeds", "env_steps", "final_return", "compile_seconds", "train_seconds", "steps_per_second"):
        assert key in summary, key
    assert summary["env_id"] == "CartPole-v1" and summary["seeds"] == [0, 1]
    assert summary["env_steps"] == 8192 and len(summary["final_return"]) == 2
    # null only when a seed finished no episode in the last 5% of training
    assert all(x is None or np.isfinite(x) for x in summary["final_return"])
    assert summary["steps_per_second"] > 0 and summary["compile_seconds"] > 0
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2 * (8192 // 256)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_existing_run_directory_is_not_clobbered(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    result = _cli("train", "configs/cartpole.yaml", "--out", str(out))
    assert result.returncode == 2
    assert "not empty" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--set", "learning_rat=0.1"], "learning_rate"),
        (["--set", "num_minibatches=3"], "num_minibatches"),
        (["--set", "clip_eps=-1"], "clip_eps"),
        (["--set", "env_id=CartPol-v1"], "CartPole-v1"),
    ],
)
def test_bad_settings_exit_2_without_traceback(tmp_path, args, expected):
    out = tmp_path / "run"
    result = _cli("train", "configs/cartpole.yaml", "--out", str(out), *args)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
