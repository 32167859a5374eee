"""``ppo-jax settings`` lists every setting from PPOConfig's own definitions, and
``ppo-jax train --env ENV_ID`` trains an env that has no preset."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from ppo_jax import cli
from ppo_jax.config import PPOConfig, env_defaults

ROOT = Path(__file__).parent.parent


def test_settings_lists_every_field_with_default_kind_and_meaning(capsys):
    assert cli.main(["settings", "--markdown"]) == 0
    rows = {line.split("|")[1].strip(" `"): line for line in capsys.readouterr().out.splitlines()[2:]}
    fields = dataclasses.fields(PPOConfig)
    assert set(rows) == {f.name for f in fields}
    for f in fields:
        cells = [c.strip() for c in rows[f.name].split("|")[1:-1]]
        assert cells[3] == ("traced" if f.metadata["traced"] else "static")
        assert cells[4] == f.metadata["help"] and cells[4]
    assert rows["learning_rate"].split("|")[2].strip(" `") == "0.00025"
    assert "float or null" in rows["target_kl"] and "traced" in rows["target_kl"]
    assert cli.main(["settings"]) == 0
    text = capsys.readouterr().out
    assert all(f.name in text and f.metadata["help"] in text for f in fields)


def test_env_defaults_follow_the_action_type():
    assert env_defaults("Acrobot-v1") == {"env_id": "Acrobot-v1"}
    continuous = env_defaults("MountainCarContinuous-v0")
    assert continuous["normalize_reward"] and continuous["ent_coef"] == 0.0


def test_train_an_env_without_a_preset(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ppo_jax.cli",
            "train",
            "--env",
            "Acrobot-v1",
            "--out",
            str(out),
            "--no-progress",
            "--no-tensorboard",
            "--set",
            "total_timesteps=1024",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PPO_JAX_NO_CACHE": "1"},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_id"] == "Acrobot-v1" and summary["env_steps"] == 1024


def test_rounding_notice_only_when_total_timesteps_is_rounded():
    from ppo_jax.cli.common import rounding_notice
    from ppo_jax.config import load_config

    assert rounding_notice(load_config(None, total_timesteps=4 * 128 * 10)) is None
    note = rounding_notice(load_config(None, total_timesteps=500_000))
    assert "500,000 rounded down to 499,712" in note and "976 whole rollouts" in note


def test_every_default_shown_is_the_real_one(capsys):
    """The default column reads back as PPOConfig()'s value for every field (a field with a
    default_factory, such as env_kwargs, included)."""
    import yaml

    assert cli.main(["settings", "--markdown"]) == 0
    rows = {line.split("|")[1].strip(" `"): line for line in capsys.readouterr().out.splitlines()[2:]}
    defaults = PPOConfig()
    for f in dataclasses.fields(PPOConfig):
        cell = rows[f.name].split("|")[2].strip(" `")
        value = getattr(defaults, f.name)
        assert "object at" not in cell and "MISSING" not in cell, (f.name, cell)
        if isinstance(value, bool) or value is None:
            assert yaml.safe_load(cell) == value, (f.name, cell)
        elif isinstance(value, int):
            assert int(cell.replace(",", "")) == value, (f.name, cell)
        elif isinstance(value, float):
            assert float(cell) == value, (f.name, cell)
        elif isinstance(value, (tuple, list, dict)):
            want = list(value) if isinstance(value, tuple) else value
            assert yaml.safe_load(cell) == want, (f.name, cell)
        else:
            assert cell == str(value), (f.name, cell)
    assert "mapping" in rows["env_kwargs"]
