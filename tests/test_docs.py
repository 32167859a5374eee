"""What the documentation promises and the code must keep: the environment file the guide
tells users to copy trains as it is, the README's test command is the one CI runs, and the API
reference lists every public name."""

import importlib.util
import re
from pathlib import Path

import jax
import numpy as np

import ppo_jax

ROOT = Path(__file__).parent.parent


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_guides_environment_file_trains_as_copied():
    corridor = _load(ROOT / "docs" / "examples" / "corridor.py")
    config = ppo_jax.PPOConfig(
        env_id="corridor", total_timesteps=4 * 8 * 16, num_envs=8, num_steps=16, num_minibatches=2
    )
    _, metrics = jax.jit(ppo_jax.make_train(config, env=corridor.Corridor(length=4)))(jax.random.PRNGKey(0))
    assert metrics["policy_loss"].shape == (4,)
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl"):
        assert np.isfinite(np.asarray(metrics[name])).all(), name
    assert int(np.asarray(metrics["episodes"]).sum()) > 0  # episodes end (goal or time limit) and are counted


def test_the_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert ci in commands, f"README.md should show .ci/run's command as a bash block: {ci}"


def test_every_public_name_is_in_the_api_reference():
    page = (ROOT / "docs" / "api.md").read_text()
    missing = [name for name in ppo_jax.__all__ if f"::: ppo_jax.{name}\n" not in page]
    assert not missing, f"add these to docs/api.md as '::: ppo_jax.NAME': {missing}"
