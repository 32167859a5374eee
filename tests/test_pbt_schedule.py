"""``train --schedule``: the traced settings follow a schedule, piecewise constant from
each of its updates on (chunks end there), as metrics.csv's learning_rate shows;
bad schedules exit 2 before anything compiles."""

import csv
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import ppo_jax
from ppo_jax.config import ConfigError
from ppo_jax.driver import ChunkedRun, chunk_plan_at
from ppo_jax.population import load_schedule

ROOT = Path(__file__).parent.parent
TINY = dict(total_timesteps=4 * 32 * 9, num_envs=4, num_steps=32, update_epochs=2, num_minibatches=2)
SCHEDULE = """# as ppo-jax pbt writes it
env_id: CartPole-v1
num_updates: 9
schedule:
  - update: 0
    learning_rate: 0.001
    clip_eps: 0.1
  - update: 4
    learning_rate: 0.004
    clip_eps: 0.25
  - update: 7
    learning_rate: 0.0005
    clip_eps: 0.25
"""
LR = np.repeat([1e-3, 4e-3, 5e-4], [4, 3, 2])


def _write(tmp_path, text=SCHEDULE) -> Path:
    path = tmp_path / "best_schedule.yaml"
    path.write_text(text)
    return path


def test_chunks_end_where_the_settings_change():
    assert chunk_plan_at(9, [4, 7], 50) == [1] * 9
    plan = chunk_plan_at(100, [30, 60], 10)
    assert sum(plan) == 100 and {30, 60} <= set(np.cumsum(plan).tolist())


def test_the_schedule_drives_the_traced_settings(tmp_path):
    config = ppo_jax.load_config(None, **TINY, anneal_lr=True)
    schedule = load_schedule(_write(tmp_path), config)
    run = ChunkedRun(config, [0, 1], schedule=schedule, target_chunks=3)
    assert {4, 7} <= set(np.cumsum(run.plan).tolist())
    _, metrics = run.run(run.compile())
    anneal = 1 - np.arange(9) / 9
    np.testing.assert_allclose(metrics["learning_rate"], np.broadcast_to(LR * anneal, (2, 9)), rtol=1e-6)
    # the same as stepping the program by hand with each update's settings
    program = ppo_jax.build(config)
    state = jax.jit(program.init)(jax.random.PRNGKey(1), config.hyperparams())
    step = jax.jit(program.step)
    clips = np.repeat([0.1, 0.25, 0.25], [4, 3, 2])
    for u in range(9):
        hp = config.replace(learning_rate=float(LR[u]), clip_eps=float(clips[u])).hyperparams()
        state, m = step(state, hp)
        np.testing.assert_allclose(metrics["policy_loss"][1, u], m["policy_loss"], rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(metrics["clip_fraction"][1, u], m["clip_fraction"], rtol=2e-4, atol=1e-6)


def test_train_cli_writes_the_schedule_into_metrics_csv(tmp_path, cli_env):
    out = tmp_path / "run"
    sets = [f"--set={k}={v}" for k, v in TINY.items()]
    done = subprocess.run(
        [sys.executable, "-m", "ppo_jax.cli", "train", "configs/cartpole.yaml", *sets, "--seeds", "2",
         "--schedule", str(_write(tmp_path)), "--out", str(out), "--no-progress", "--no-tensorboard"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env=cli_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for seed in ("0", "1"):
        lr = np.array([float(r["learning_rate"]) for r in rows if r["seed"] == seed])
        np.testing.assert_allclose(lr, LR * (1 - np.arange(9) / 9), rtol=1e-6)  # the preset anneals
    assert (out / "schedule.yaml").read_text() == SCHEDULE


@pytest.mark.parametrize(
    "text, message",
    [
        ("schedule: []\n", "expected 'schedule:'"),
        ("schedule:\n  - update: 2\n    learning_rate: 0.001\n", "rising from 0"),
        ("schedule:\n  - update: 0\n  - update: 0\n", "rising from 0"),
        ("schedule:\n  - update: 0\n  - update: 9\n", "past this config's 9 updates"),
        ("schedule:\n  - update: 0\n    num_envs: 8\n", "static setting"),
        ("schedule:\n  - update: 0\n    learnin_rate: 0.1\n", "Did you mean 'learning_rate'"),
        ("schedule:\n  - update: 0\n    gamma: 1.5\n", "gamma"),
        ("num_updates: 781\nschedule:\n  - update: 0\n", "num_updates 781"),
        ("schedule: [", "cannot be read as YAML"),
    ],
)
def test_bad_schedules_are_refused(tmp_path, text, message):
    config = ppo_jax.load_config(None, **TINY)
    with pytest.raises(ConfigError, match=message):
        load_schedule(_write(tmp_path, text), config)


def test_the_cli_refuses_a_bad_schedule_before_compiling(tmp_path, cli_main):
    out = tmp_path / "run"
    bad = _write(tmp_path, "schedule:\n  - update: 3\n")
    code, err = cli_main("train", "configs/cartpole.yaml", "--schedule", bad, "--out", out)
    assert code == 2 and "rising from 0" in err and "Traceback" not in err
    assert not out.exists()
