"""CPU smoke tests of training on the Brax, MuJoCo Playground and Craftax adapters.

These suites learn only on an accelerator (``configs/brax_ant.yaml``,
``configs/playground_cartpole_balance.yaml``, ``configs/craftax_classic.yaml``);
on a CPU we check that a few updates run through ``make_train(config, env=...)``
with finite metrics and that the CLI's checkpoint → ``--resume`` → ``eval``
works on each (both slow: minutes of compiling each), and that the GPU presets
load and build. Skipped where the suite's extra is not installed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml
from conftest import run_cli

import ppo_jax
from ppo_jax import envs

ROOT = Path(__file__).parent.parent

# Small, cheap members of each suite, with a short time limit so that episodes end.
SUITES = {
    "brax": (
        "brax",
        dict(env_id="brax:inverted_pendulum", env_kwargs={"backend": "spring", "episode_length": 50}),
    ),
    "playground": (
        "mujoco_playground",
        dict(env_id="playground:CartpoleBalance", env_kwargs={"episode_length": 50}),
    ),
    "craftax": ("craftax", dict(env_id="craftax:Craftax-Classic-Symbolic-v1", max_episode_steps=50)),
}
TINY = dict(total_timesteps=256, num_envs=4, num_steps=32, num_minibatches=2, update_epochs=1)
LOSSES = ("policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm")


@pytest.mark.slow  # 4-7 min each on the loaded 2-core CPU (compiling the suite's physics under PPO)
@pytest.mark.parametrize("suite", list(SUITES))
def test_a_few_updates_through_make_train_have_finite_metrics(suite):
    package, settings = SUITES[suite]
    pytest.importorskip(package)
    config = ppo_jax.load_config(None, **settings, **TINY)
    env, params = envs.make(config.env_id, **dict(config.env_kwargs or {}))
    train = ppo_jax.make_train(config, env=env, env_params=params)
    state, metrics = jax.jit(train)(jax.random.PRNGKey(0))
    metrics = jax.device_get(metrics)
    assert metrics["value_loss"].shape == (2,)
    for name in LOSSES:
        assert np.isfinite(metrics[name]).all(), (name, metrics[name])
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))


def _cli(args, env=None):
    return run_cli(*args, env=env, timeout=1200)


@pytest.mark.slow
@pytest.mark.parametrize("suite", list(SUITES))
def test_cli_checkpoint_resume_and_eval(suite, tmp_path, cli_env):
    """Train from the CLI, stop with SIGTERM (a checkpoint is saved), ``--resume`` to the
    end, then ``eval`` the saved policy: every return finite."""
    package, settings = SUITES[suite]
    pytest.importorskip(package)
    config = tmp_path / f"{suite}.yaml"
    config.write_text(yaml.safe_dump({**settings, **TINY, "total_timesteps": 20 * 128}))
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ppo_jax.cli",
            "train",
            str(config),
            "--out",
            str(out),
            "--checkpoint-every",
            "0",
        ],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env,
    )
    lines = []
    for line in proc.stderr:  # plain progress lines, one per 10% of training
        lines.append(line)
        if "env steps/seed" in line:
            proc.send_signal(signal.SIGTERM)
            break
    _, rest = proc.communicate(timeout=1200)
    err = "".join(lines) + rest
    assert proc.returncode == 128 + signal.SIGTERM, err
    stopped = json.loads((out / "summary.json").read_text())["stopped"]
    assert 0 < stopped["update"] < 20 and ppo_jax.load_run(out).update == stopped["update"]

    resumed = _cli(["train", "--resume", str(out), "--no-progress"], env=cli_env)
    assert resumed.returncode == 0, resumed.stderr
    assert ppo_jax.load_run(out).update == 20
    evaluated = _cli(["eval", str(out), "--episodes", "2"], env=cli_env)
    assert evaluated.returncode == 0, evaluated.stderr
    (seed,) = json.loads((out / "eval.json").read_text())["per_seed"]
    assert len(seed["returns"]) == 2 and np.isfinite(seed["returns"]).all()


GPU_PRESETS = {
    "brax_ant": "brax",
    "playground_cartpole_balance": "mujoco_playground",
    "craftax_classic": "craftax",
}


@pytest.mark.parametrize("name", list(GPU_PRESETS))
def test_gpu_preset_loads_builds_and_states_budget_and_source(name):
    path = ROOT / "configs" / "gpu" / f"{name}.yaml"
    text = path.read_text()
    assert "# budget:" in text and "# reaches:" in text
    pytest.importorskip(GPU_PRESETS[name])
    config = ppo_jax.load_config(path)
    program = ppo_jax.build(config)
    assert program.vec_env.spec.env_id == config.env_id
    assert config.num_updates >= 100
