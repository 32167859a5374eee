"""``ppo-jax pbt``: a run stopped by SIGINT and resumed ends with the files of the
uninterrupted run, byte for byte; bad options exit 2 before anything compiles,
with nothing written."""

import json
import signal
from pathlib import Path

import pytest
from conftest import interrupt_cli, run_cli

ROOT = Path(__file__).parent.parent
# 6 members, 40 updates of 4 envs × 32 steps, a ready point every 8 updates.
PBT_ARGS = (
    "pbt",
    "configs/cartpole.yaml",
    "--population",
    "6",
    "--explore",
    "learning_rate=1e-4:1e-2:log",
    "--explore",
    "clip_eps=0.05:0.3",
    "--init",
    "uniform",
    "--ready",
    "8",
    "--fraction",
    "0.34",
    "--set",
    "total_timesteps=5120",
    "--set",
    "num_envs=4",
    "--checkpoint-every",
    "4",
    "--cpu-devices",
    "1",
)
FILES = ("results.csv", "lineage.csv", "best_schedule.yaml")


def _cli(*args, env):
    return run_cli(*args, env=env, timeout=900)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cli_env):
    tmp = tmp_path_factory.mktemp("pbt")
    full, part = tmp / "full", tmp / "part"
    done = _cli(*PBT_ARGS, "--out", str(full), "--no-progress", env=cli_env)
    assert done.returncode == 0, done.stderr
    code, err = interrupt_cli([*PBT_ARGS, "--out", str(part)], signal.SIGINT, cli_env)
    assert code == 128 + signal.SIGINT, err
    assert f"Resume with: ppo-jax pbt --resume {part}" in err and "Traceback" not in err
    stopped = json.loads((part / "pbt.json").read_text())["stopped"]
    assert stopped["reason"] == "SIGINT" and 0 < stopped["update"] < 40
    assert (part / "report.md").read_text().count("Partial: stopped (SIGINT)") == 1
    assert not (part / "best_schedule.yaml").exists()
    resumed = _cli("pbt", "--resume", str(part), "--cpu-devices", "1", "--no-progress", env=cli_env)
    assert resumed.returncode == 0, resumed.stderr
    return full, part, stopped


def test_interrupted_and_resumed_run_writes_the_uninterrupted_files(runs):
    full, part, stopped = runs
    for name in FILES:  # best_schedule.yaml names the command, whose --out differs
        ours, theirs = ((d / name).read_bytes().splitlines() for d in (part, full))
        assert [line for line in ours if not line.startswith(b"# from:")] == [
            line for line in theirs if not line.startswith(b"# from:")
        ], name
    summary = json.loads((part / "pbt.json").read_text())
    assert summary["resumed"]["from_update"] == stopped["update"] and "stopped" not in summary
    assert summary["command"].startswith("ppo-jax pbt configs/cartpole.yaml")


def test_the_files_describe_the_population(runs):
    full, _, _ = runs
    summary = json.loads((full / "pbt.json").read_text())
    assert len(summary["final_return"]) == 6 and summary["best_member"] in range(6)
    assert summary["best_final_return"] == max(x for x in summary["final_return"] if x is not None)
    lineage = (full / "lineage.csv").read_text().splitlines()
    assert lineage[0] == "ready_point,update,member,parent,copied,learning_rate,clip_eps"
    assert len(lineage) == 1 + 4 * 6  # ready points at updates 8, 16, 24, 32
    copied = [int(line.split(",")[4]) for line in lineage[1:]]
    assert sum(copied) == 4 * 2  # the bottom 2 of 6 at each
    rows = (full / "results.csv").read_text().splitlines()
    assert rows[0] == "member,seed,update,env_steps,metric,value"
    assert any(",setting.learning_rate," in r for r in rows) and any(",episode_return," in r for r in rows)
    report = (full / "report.md").read_text()
    assert "| IQM |" in report and "The best final member" in report
    assert (full / "curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--explore", "num_envs=2:8"], "static setting"),
        (["--explore", "learning_rate=1e-2:1e-1:log"], "outside the range"),
        (["--explore", "learning_rate"], "expected KEY=LOW:HIGH"),
        (["--explore", "learning_rate=1e-5:1e-2:log", "--ready", "0"], "1 ≤ READY < 781"),
        (["--explore", "learning_rate=1e-5:1e-2:log", "--ready", "781"], "1 ≤ READY < 781"),
        (["--explore", "learning_rate=1e-5:1e-2:log"], "give --ready"),
        (["--explore", "learning_rate=1e-5:1e-2:log", "--ready", "10", "--population", "2"], "selects none"),
        (["--ready", "10"], "at least one setting"),
    ],
)
def test_bad_options_exit_2_before_compiling(tmp_path, cli_main, extra, message):
    out = tmp_path / "out"
    code, err = cli_main("pbt", "configs/cartpole.yaml", *extra, "--out", out)
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not out.exists()


def test_resume_refuses_options_that_change_the_run(runs, cli_main):
    _, part, _ = runs
    code, err = cli_main("pbt", "--resume", part, "--population", "8")
    assert code == 2 and "--population cannot be combined with --resume" in err
