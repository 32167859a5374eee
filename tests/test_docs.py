"""What the documentation promises and the code must keep: the README's test command is the one
CI runs, and the API reference lists every public name. (The environment file the guide gives to
copy is trained, and learns, in tests/test_own_env.py.)"""

import re
from pathlib import Path

import ppo_jax

ROOT = Path(__file__).parent.parent


def test_the_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert ci in commands, f"README.md should show .ci/run's command as a bash block: {ci}"


def test_every_public_name_is_in_the_api_reference():
    page = (ROOT / "docs" / "api.md").read_text()
    missing = [name for name in ppo_jax.__all__ if f"::: ppo_jax.{name}\n" not in page]
    assert not missing, f"add these to docs/api.md as '::: ppo_jax.NAME': {missing}"


def test_the_presets_table_is_the_same_in_the_readme_and_the_docs():
    rows = lambda text: [line for line in text.splitlines() if line.startswith("| `configs/")]
    readme = rows((ROOT / "README.md").read_text())
    assert readme and readme == rows((ROOT / "docs" / "presets.md").read_text())
