"""Every preset in configs/ loads strictly and builds; load_config refuses unknown keys.

Presets of an optional suite (``env_id: xminigrid:...``, ``jumanji:...``) are skipped
where that suite's extra is not installed."""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

import ppo_jax
from ppo_jax.config import ConfigError

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
EXPECTED = {
    "CartPole-v1",
    "Acrobot-v1",
    "Pendulum-v1",
    "MountainCarContinuous-v0",
    "Breakout-MinAtar",
    "SpaceInvaders-MinAtar",
    "Asterix-MinAtar",
    "Freeway-MinAtar",
}


def test_every_expected_env_has_a_preset():
    env_ids = {yaml.safe_load(p.read_text())["env_id"] for p in CONFIGS}
    assert env_ids >= EXPECTED


SUITE_MODULES = {"xminigrid": "xminigrid", "jumanji": "jumanji", "navix": "navix"}


def skip_without_suite(path):
    """Skip a preset whose suite (its env_id's prefix) is not installed here."""
    env_id = yaml.safe_load(Path(path).read_text())["env_id"]
    module = SUITE_MODULES.get(env_id.split(":", 1)[0]) if ":" in env_id else None
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f'{env_id}: needs pip install -e ".[{module}]"')


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_preset_loads_and_builds(path):
    skip_without_suite(path)
    config = ppo_jax.load_config(path)
    program = ppo_jax.build(config)
    assert config.num_updates >= 1
    assert program.vec_env.spec.env_id == config.env_id


HEADER = ("# reaches:", "# budget:", "# seeds:", "# command:")
REACHES = re.compile(
    r"^# reaches: IQM (?P<iqm>-?[\d.]+), mean (?P<mean>-?[\d.]+), min (?P<min>-?[\d.]+); "
    r"(?P<count>\d+) of (?P<n>\d+) seeds ≥ (?P<bar>-?[\d.]+)"
)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_preset_header_has_one_form(path):
    """Title line, then `# reaches:` (IQM, mean, min, count ≥ T), `# budget:` (the env
    steps a run really takes), `# seeds:` and `# command:`, in this order."""
    skip_without_suite(path)
    lines = path.read_text().splitlines()
    starts = [next((i for i, line in enumerate(lines) if line.startswith(key)), None) for key in HEADER]
    assert None not in starts, f"{path.name}: header needs lines starting with {HEADER}"
    assert starts == sorted(starts) and starts[0] == 1, f"{path.name}: header lines out of order: {starts}"
    match = REACHES.match(lines[1])
    assert match, f"{path.name}: first header line is not in the form of {REACHES.pattern!r}: {lines[1]!r}"
    iqm, mean, low = (float(match[k]) for k in ("iqm", "mean", "min"))
    assert low <= iqm and low <= mean and int(match["count"]) <= int(match["n"])
    config = ppo_jax.load_config(path)
    assert f"# budget: {config.env_steps:,} env steps per seed" in lines[starts[1]], (
        f"{path.name}: budget line should state {config.env_steps:,} env steps per seed"
    )


def test_unknown_key_is_refused_with_suggestion(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("env_id: CartPole-v1\nlearning_rat: 0.001\n")
    with pytest.raises(ConfigError, match="learning_rat.*Did you mean 'learning_rate'"):
        ppo_jax.load_config(bad)


def test_overrides_apply_and_are_checked():
    config = ppo_jax.load_config(None, learning_rate="3e-4", hidden_sizes=[32, 32])
    assert config.learning_rate == 3e-4 and config.hidden_sizes == (32, 32)
    with pytest.raises(ConfigError, match="not divisible by num_minibatches"):
        ppo_jax.load_config(None, num_envs=3, num_steps=5, num_minibatches=4)
    with pytest.raises(ConfigError, match="unknown 'env_id'.*CartPole-v1"):
        ppo_jax.load_config(None, env_id="CartPole-v2")
    with pytest.raises(ConfigError, match="'gamma' must lie in"):
        ppo_jax.load_config(None, gamma=1.5)
