"""A sweep stopped by SIGINT writes its results so far and a checkpoint of every
run; ``sweep --resume`` ends with results.csv byte for byte the uninterrupted
sweep's. Bad resumes exit 2 before anything compiles."""

import json
import signal
from pathlib import Path

import pytest
from conftest import interrupt_cli, run_cli

ROOT = Path(__file__).parent.parent
# 2 grid points × 2 seeds, 100 updates of 4 envs × 32 steps in 50 log points.
SWEEP_ARGS = (
    "sweep",
    "configs/cartpole.yaml",
    "--seeds",
    "2",
    "--grid",
    "learning_rate=1e-3,3e-3",
    "--set",
    "total_timesteps=12800",
    "--set",
    "num_envs=4",
    "--set",
    "num_steps=32",
    "--checkpoint-every",
    "10",
)


def _cli(*args, env):
    return run_cli(*args, env=env, timeout=900)


def _interrupted_and_resumed_equals_uninterrupted(tmp_path, env, devices):
    full, part = tmp_path / "full", tmp_path / "part"
    done = _cli(*SWEEP_ARGS, *devices, "--out", str(full), "--no-progress", env=env)
    assert done.returncode == 0, done.stderr

    code, err = interrupt_cli([*SWEEP_ARGS, *devices, "--out", str(part)], signal.SIGINT, env)
    assert code == 128 + signal.SIGINT, err
    assert f"Resume with: ppo-jax sweep --resume {part}" in err and "Traceback" not in err
    stopped = json.loads((part / "sweep.json").read_text())["stopped"]
    assert stopped["reason"] == "SIGINT" and 0 < stopped["update"] < 100
    so_far = (part / "results.csv").read_text().splitlines()
    assert 1 < len(so_far) < len((full / "results.csv").read_text().splitlines())  # what is done so far
    assert (part / "report.md").read_text().startswith("**Partial: stopped (SIGINT)")

    resumed = _cli("sweep", "--resume", str(part), *devices, "--no-progress", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert (part / "results.csv").read_bytes() == (full / "results.csv").read_bytes()
    summary = json.loads((part / "sweep.json").read_text())
    assert summary["resumed"]["from_update"] == stopped["update"] and "stopped" not in summary
    assert (
        summary["command"].startswith("ppo-jax sweep configs/cartpole.yaml")
        and "--resume" not in summary["command"]
    )
    return part


@pytest.fixture(scope="module")
def resumed_sweep(tmp_path_factory, cli_env):
    return _interrupted_and_resumed_equals_uninterrupted(
        tmp_path_factory.mktemp("one"), cli_env, ["--cpu-devices", "1"]
    )


def test_interrupted_and_resumed_sweep_has_the_uninterrupted_results_csv(resumed_sweep):
    assert (resumed_sweep / "checkpoints" / "100").is_dir()


@pytest.mark.slow
def test_the_same_with_the_default_devices(tmp_path, cli_env):
    _interrupted_and_resumed_equals_uninterrupted(tmp_path, cli_env, [])


def _refused(cli_main, *args, expected):
    """``ppo-jax ARGS`` in this process (a refusal compiles nothing): exit 2, the message, no compile."""
    code, err = cli_main(*args)
    assert code == 2, err
    assert "Traceback" not in err and "compiling" not in err
    assert expected in err, err


@pytest.mark.parametrize(
    "extra,expected",
    [
        (["configs/cartpole.yaml"], "CONFIG cannot be combined with --resume"),
        (["--grid", "clip_eps=0.1,0.2"], "--grid cannot be combined"),
        (["--seeds", "4"], "--seeds cannot be combined"),
        (["--out", "elsewhere"], "--out cannot be combined"),
    ],
)
def test_resume_with_options_that_change_the_sweep_is_refused(tmp_path, cli_main, extra, expected):
    _refused(cli_main, "sweep", *extra, "--resume", tmp_path, expected=expected)


def test_resume_of_a_finished_sweep_is_refused(resumed_sweep, cli_main):
    _refused(cli_main, "sweep", "--resume", resumed_sweep, expected="the sweep is finished (100 of 100")


def test_resume_of_what_is_not_a_sweep_is_refused(tmp_path, resumed_sweep, cartpole_run, cli_main):
    _refused(cli_main, "sweep", "--resume", tmp_path, expected="not a ppo-jax run directory")
    # a sweep is not a training run, and the other way round (the kind is checked before
    # whether the run is finished, so the session's finished CartPole run serves)
    _refused(
        cli_main,
        "train",
        "--resume",
        resumed_sweep,
        expected="this is a sweep directory, not a train one; continue it with: ppo-jax sweep --resume",
    )
    _refused(
        cli_main,
        "sweep",
        "--resume",
        cartpole_run,
        expected="this is a train directory, not a sweep one; continue it with: ppo-jax train --resume",
    )


def test_eval_and_render_of_a_sweep_directory_are_refused(resumed_sweep, cli_main):
    for command in ("eval", "render"):
        _refused(
            cli_main, command, resumed_sweep, expected="is a sweep directory, not a run of 'ppo-jax train'"
        )
