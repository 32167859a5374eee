import jax
import pytest

# Catch silent (B, 1) vs (B,) broadcasting bugs everywhere in the suite.
jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long learning tests (run with -m slow)")


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


# A CartPole run that balances the pole (return 500) by its end, trained once
# per session through the CLI. 800 updates of 4 envs × 32 steps: long enough
# that a signal sent during training lands well before the end (test_resume).
CARTPOLE_RUN_ARGS = (
    "train", "configs/cartpole.yaml", "--seeds", "1", "--no-progress",
    "--set", "total_timesteps=102400", "--set", "num_envs=4", "--set", "num_steps=32",
)


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory):
    """Environment for ``ppo-jax`` subprocesses: a compilation cache private to
    this session, so the processes of one test share their compiles (as a user's
    runs do) without reading programs cached by anything else."""
    import os

    return {**os.environ, "PPO_JAX_CACHE_DIR": str(tmp_path_factory.mktemp("xla-cache")), "PPO_JAX_NO_CACHE": ""}


@pytest.fixture(scope="session")
def cartpole_run(tmp_path_factory, cli_env):
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path_factory.mktemp("cartpole") / "run"
    result = subprocess.run(
        [sys.executable, "-m", "ppo_jax.cli", *CARTPOLE_RUN_ARGS, "--out", str(out)],
        cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=900, env=cli_env,
    )
    assert result.returncode == 0, result.stderr
    return out
