"""A bad value is blamed on where it came from: the YAML file, ``--set``, or a
``load_config`` keyword."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ppo_jax.config import ConfigError, load_config, load_config_from

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("env_id", "CartPol-v1", "--set env_id=CartPol-v1 (on configs/cartpole.yaml): unknown 'env_id'"),
        ("learning_rat", 0.1, "--set learning_rat=0.1: unknown setting 'learning_rat'"),
        ("learning_rate", "fast", "--set learning_rate=fast: 'learning_rate' must be a number"),
        ("num_minibatches", 3, "--set num_minibatches=3 (on configs/cartpole.yaml): num_envs × num_steps"),
    ],
)
def test_set_values_are_blamed_on_set(key, value, expected):
    with pytest.raises(ConfigError) as err:
        load_config_from(ROOT / "configs/cartpole.yaml", {key: value})
    assert str(err.value).replace(str(ROOT) + "/", "").startswith(expected), str(err.value)


def test_keyword_overrides_are_blamed_on_the_keyword():
    with pytest.raises(ConfigError, match=r"^load_config\(\.\.\., env_id='CartPol-v1'\): unknown 'env_id'"):
        load_config(None, env_id="CartPol-v1")
    with pytest.raises(ConfigError, match=r"^load_config\(\.\.\., gamma=1.5\): 'gamma' must lie in"):
        load_config(None, gamma=1.5)


def test_a_bad_file_value_is_blamed_on_the_file_even_with_good_overrides(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("env_id: CartPole-v1\nclip_eps: -1\n")
    with pytest.raises(ConfigError, match=rf"^{path}: 'clip_eps' must be a positive number"):
        load_config_from(path, {"learning_rate": 1e-3})


def test_cli_message_names_set():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ppo_jax.cli",
            "train",
            "configs/cartpole.yaml",
            "--set",
            "env_id=CartPol-v1",
            "--out",
            "/nonexistent-dir-never-made/run",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PPO_JAX_NO_CACHE": "1"},
    )
    assert result.returncode == 2
    assert "--set env_id=CartPol-v1 (on configs/cartpole.yaml): unknown 'env_id'" in result.stderr
