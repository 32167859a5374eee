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


BAD_SETTINGS = [
    (["--set", "learning_rat=0.1"], "learning_rate"),  # unknown key, closest suggested
    (["--set", "num_minibatches=3"], "num_minibatches"),  # batch not divisible
    (["--set", "clip_eps=-1"], "clip_eps"),
    (["--set", "learning_rate=0"], "learning_rate"),
    (["--set", "learning_rate=fast"], "learning_rate"),  # wrong type
    (["--set", "gamma=1.5"], "gamma"),
    (["--set", "gae_lambda=-0.1"], "gae_lambda"),
    (["--set", "num_envs=0"], "num_envs"),
    (["--set", "update_epochs=2.5"], "update_epochs"),
    (["--set", "total_timesteps=100"], "total_timesteps"),  # smaller than one rollout
    (["--set", "env_id=CartPol-v1"], "CartPole-v1"),  # unknown env, close match suggested
    (["--set", "log_std_init=-1"], "log_std_init"),  # continuous-only on a discrete env
    (["--set", "network=cnn"], "network"),  # CNN on vector observations
    (["--set", "activation=gelu"], "activation"),
    (["--set", "hidden_sizes=[64,-1]"], "hidden_sizes"),
    (["--set", "normalize_obs=maybe"], "normalize_obs"),
    (["--set", "vf_clip=-0.2"], "vf_clip"),
    (["--set", "gamma"], "key=value"),  # malformed --set
    (["--seeds", "0"], "--seeds"),
]


@pytest.mark.parametrize("args,expected", BAD_SETTINGS, ids=[" ".join(a) for a, _ in BAD_SETTINGS])
def test_bad_settings_exit_2_before_compiling(tmp_path, args, expected):
    out = tmp_path / "run"
    result = _cli("train", "configs/cartpole.yaml", "--out", str(out), *args)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert "compiling" not in result.stderr  # refused before anything was compiled
    assert not out.exists()


@pytest.mark.parametrize(
    "text,expected",
    [("env_id: CartPole-v1\nlearning_rate: [0.1\n", "malformed YAML"), ("- just\n- a list\n", "mapping")],
)
def test_bad_config_files_exit_2(tmp_path, text, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    result = _cli("train", str(config), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_missing_config_file_exits_2(tmp_path):
    result = _cli("train", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "no such config file" in result.stderr


def test_nonfinite_training_stops_with_a_message(tmp_path):
    out = tmp_path / "run"
    result = _cli(
        "train", "configs/pendulum.yaml", "--out", str(out), "--no-progress",
        "--set", "learning_rate=1e6", "--set", "max_grad_norm=1e9", "--set", "total_timesteps=65536",
    )
    assert result.returncode == 3, result.stderr
    assert "non-finite" in result.stderr and "at update" in result.stderr and "Traceback" not in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"]["reason"].startswith("non-finite")
    assert summary["env_steps"] < 65536  # stopped at the end of the chunk, not the run
    assert (out / "metrics.csv").is_file()


def test_same_seed_twice_in_fresh_processes_is_bitwise_identical(tmp_path):
    args = ["--set", "total_timesteps=16384", "--no-progress"]
    first = _cli("train", "configs/pendulum.yaml", "--out", str(tmp_path / "a"), *args)
    second = _cli("train", "configs/pendulum.yaml", "--out", str(tmp_path / "b"), *args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert (tmp_path / "a" / "metrics.csv").read_bytes() == (tmp_path / "b" / "metrics.csv").read_bytes()
