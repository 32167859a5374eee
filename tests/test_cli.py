"""The CLI as a user runs it: files written, summary fields, errors with exit 2."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

ROOT = Path(__file__).parent.parent


def _cli(*args, cwd=ROOT):
    return run_cli(*args, cwd=cwd, env={**os.environ, "PPO_JAX_NO_CACHE": "1"})


def test_train_writes_a_run_directory(tmp_path):
    out = tmp_path / "run"
    result = _cli(
        "train",
        "configs/cartpole.yaml",
        "--seeds",
        "2",
        "--out",
        str(out),
        "--set",
        "total_timesteps=8192",
        "--set",
        "num_envs=4",
        "--set",
        "num_steps=64",
    )
    assert result.returncode == 0, result.stderr
    assert f"run written to {out}" in result.stdout
    for name in ("config.yaml", "metrics.csv", "summary.json", "curves.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    for key in (
        "env_id",
        "seeds",
        "env_steps",
        "final_return",
        "compile_seconds",
        "train_seconds",
        "steps_per_second",
    ):
        assert key in summary, key
    assert summary["env_id"] == "CartPole-v1" and summary["seeds"] == [0, 1]
    assert summary["env_steps"] == 8192 and len(summary["final_return"]) == 2
    assert summary["devices"] >= 1 and summary["processes"] == 1
    assert f"on {summary['devices']} cpu device(s)" in result.stderr
    assert all(
        len(line) <= 80 for line in result.stderr.splitlines() if "env steps" in line or "updates of" in line
    )
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


def _assert_refused_before_compiling(cli_main, command, out, args, expected):
    # In this process (an unexpected exception would fail the test as a traceback would):
    # the subprocess tests above and below check exit code 2 through ``python -m ppo_jax.cli``.
    code, err = cli_main(command, "configs/cartpole.yaml", "--out", out, *args)
    assert code == 2, err
    assert expected in err and "Traceback" not in err
    assert "compiling" not in err  # refused before anything was compiled
    assert not out.exists()


@pytest.mark.parametrize("args,expected", BAD_SETTINGS, ids=[" ".join(a) for a, _ in BAD_SETTINGS])
def test_bad_settings_exit_2_before_compiling(tmp_path, cli_main, args, expected):
    _assert_refused_before_compiling(cli_main, "train", tmp_path / "run", args, expected)


@pytest.mark.parametrize(
    "text,expected",
    [("env_id: CartPole-v1\nlearning_rate: [0.1\n", "malformed YAML"), ("- just\n- a list\n", "mapping")],
)
def test_bad_config_files_exit_2(tmp_path, cli_main, text, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    code, err = cli_main("train", config, "--out", tmp_path / "run")
    assert code == 2 and expected in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_missing_config_file_exits_2(tmp_path):
    result = _cli("train", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "no such config file" in result.stderr


def test_nonfinite_training_stops_with_a_message(nonfinite_run):
    out, result = nonfinite_run  # shared with test_checkpoint, which checks its checkpoints
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


def test_sweep_of_3_learning_rates_x_2_clips_x_8_seeds(tmp_path):
    pd = pytest.importorskip("pandas")
    out = tmp_path / "sweep"
    result = _cli(
        "sweep",
        "configs/cartpole.yaml",
        "--grid",
        "learning_rate=1e-4,3e-4,1e-3",
        "--grid",
        "clip_eps=0.1,0.2",
        "--seeds",
        "8",
        "--out",
        str(out),
        "--no-progress",
        "--set",
        "total_timesteps=4096",
        "--set",
        "num_envs=4",
        "--set",
        "num_steps=64",
    )
    assert result.returncode == 0, result.stderr
    assert "48 runs" in result.stderr and "in 1 compiled program" in result.stderr
    assert "memory (from shapes, before compiling): at least" in result.stderr  # said up front
    assert "memory by XLA's count" in result.stderr
    assert result.stderr.count("compiled in") == 1
    assert f"sweep written to {out}" in result.stdout
    for name in ("config.yaml", "results.csv", "curves.png", "report.md", "sweep.json"):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    table = pd.read_csv(out / "results.csv")
    assert list(table.columns) == [
        "grid_point",
        "learning_rate",
        "clip_eps",
        "seed",
        "env_steps",
        "metric",
        "value",
    ]
    assert sorted(table.grid_point.unique()) == list(range(6)) and sorted(table.seed.unique()) == list(
        range(8)
    )
    final = table[table.metric == "final_return"]
    assert len(final) == 48 and (final.env_steps == 4096).all()
    point = table[(table.learning_rate == 1e-3) & (table.clip_eps == 0.2)]
    assert sorted(point.seed.unique()) == list(range(8))
    curve = table[(table.metric == "episode_return") & (table.grid_point == 0) & (table.seed == 0)]
    assert list(curve.env_steps) == [256 * (i + 1) for i in range(16)]

    summary = json.loads((out / "sweep.json").read_text())
    assert summary["runs"] == 48 and summary["compiled_programs"] == 1
    assert summary["grid"] == {"learning_rate": [1e-4, 3e-4, 1e-3], "clip_eps": [0.1, 0.2]}
    for point in summary["points"]:
        for stat in ("mean", "median", "iqm"):
            assert point[stat]["low"] <= point[stat]["value"] <= point[stat]["high"]
        np.testing.assert_allclose(  # null/empty: no episode finished in the last 5% of that run
            np.array([np.nan if x is None else x for x in point["final_return"]], np.float64),
            final[final.grid_point == point["grid_point"]].sort_values("seed").value,
            rtol=1e-6,
            equal_nan=True,
        )
    assert summary["probability_of_improvement"]["best"] == summary["ranking"][0]
    report = (out / "report.md").read_text()
    assert "IQM [95% CI]" in report and "Probability of improvement" in report and "curves.png" in report


BAD_SWEEPS = [
    (["--grid", "num_envs=4,8"], "num_envs"),  # a grid over a static setting
    (["--grid", "hidden_sizes=64"], "hidden_sizes"),
    (["--grid", "learning_rate"], "setting=value"),  # malformed --grid
    (["--grid", "learning_rate="], "learning_rate"),  # empty list
    (["--grid", "clip_eps=0.1,,0.2"], "clip_eps"),
    (["--grid", "learning_rate=1e-3,-1"], "learning_rate"),  # a value out of range
    (["--grid", "gamma=0.9,2"], "gamma"),
    (["--grid", "learning_rat=1e-3"], "learning_rate"),  # unknown, closest suggested
    (["--grid", "clip_eps=0.1", "--grid", "clip_eps=0.2"], "clip_eps"),
    (["--grid", "clip_eps=0.1,0.2", "--set", "clip_eps=0.3"], "clip_eps"),
    (["--seeds", "0"], "--seeds"),
    (["--coordinator", "127.0.0.1:1234"], "--num-processes"),
]


@pytest.mark.parametrize("args,expected", BAD_SWEEPS, ids=[" ".join(a) for a, _ in BAD_SWEEPS])
def test_bad_sweeps_exit_2_before_compiling(tmp_path, cli_main, args, expected):
    _assert_refused_before_compiling(cli_main, "sweep", tmp_path / "sweep", args, expected)
