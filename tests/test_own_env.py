"""Bring your own environment: the env file the guide gives to copy (docs/examples/corridor.py)
trains through ``make_train(config, env=...)`` and through the CLI by import path, and learns."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import ppo_jax

ROOT = Path(__file__).parent.parent


def _load_guide_env():
    """The env file the guide gives users to copy, imported as it is."""
    spec = importlib.util.spec_from_file_location("corridor", ROOT / "docs" / "examples" / "corridor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Corridor


Corridor = _load_guide_env()  # also what the CLI test's import path `tests.test_own_env:Corridor` names


SETTINGS = dict(
    total_timesteps=8192,
    num_envs=8,
    num_steps=32,
    num_minibatches=4,
    update_epochs=4,
    learning_rate=3e-3,
    ent_coef=0.0,
)


def test_own_env_learns_through_make_train():
    """Random: a reflected walk from 0 to 5 within 20 steps, often cut short (return ≈ 0.5).
    Learned: straight right, 5 steps, return 1, every seed."""
    config = ppo_jax.PPOConfig(env_id="corridor", **SETTINGS)
    train = ppo_jax.make_train(config, env=Corridor())
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(2))
    _, metrics = jax.jit(jax.vmap(train))(keys)
    first = np.asarray(metrics["episode_return"][:, :2]).mean()
    ret = np.asarray(metrics["episode_return"][:, -4:]).mean(axis=1)
    length = np.asarray(metrics["episode_length"][:, -4:]).mean(axis=1)
    assert first < 0.8, first  # not solved by chance from the start
    assert (ret > 0.99).all() and (length < 5.5).all(), (ret, length)


def test_own_env_by_import_path_from_the_cli(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PPO_JAX_NO_CACHE": "1"}
    sets = [f"{k}={v}" for k, v in SETTINGS.items()] + [
        "env_id=tests.test_own_env:Corridor",
        "env_kwargs={length: 6}",
    ]
    args = [
        sys.executable,
        "-m",
        "ppo_jax.cli",
        "train",
        "configs/cartpole.yaml",
        "--seeds",
        "2",
        "--out",
        str(out),
        "--no-progress",
        "--no-tensorboard",
    ]
    for s in sets:
        args += ["--set", s]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_id"] == "tests.test_own_env:Corridor"
    assert all(r is not None and r > 0.99 for r in summary["final_return"]), summary["final_return"]
    result = subprocess.run(
        [sys.executable, "-m", "ppo_jax.cli", "eval", str(out), "--episodes", "16"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["mean"] == 1.0 and all(s["mean_length"] == 5.0 for s in evaluation["per_seed"])
    result = subprocess.run(
        [sys.executable, "-m", "ppo_jax.cli", "render", str(out), "--out", str(tmp_path / "x.gif")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 2 and "cannot draw" in result.stderr and "Traceback" not in result.stderr
