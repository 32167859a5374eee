import os

# Most of this suite's time is XLA compiling whole training programs, and most of
# a compile is LLVM's. Level 0 compiles them about twice as fast (a tiny CartPole
# make_train: 66 s at the default level, 45 s at 1, 28-31 s at 0, each cold, on the
# loaded 2-core VM, 2026-11-28); the tests check what the programs compute, which
# the level does not change beyond float rounding. Set before JAX starts its backend;
# subprocesses inherit it. The CLI's training chunks keep the level they compile
# with (ppo_jax.driver.compiler_options). Give your own XLA_FLAGS level to override.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

# Catch silent (B, 1) vs (B,) broadcasting bugs everywhere in the suite.
jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long learning tests (run with -m slow)")


ROOT = __import__("pathlib").Path(__file__).parent.parent


def run_cli(*args, env=None, timeout=600, cwd=ROOT):
    """``ppo-jax ARGS`` in a subprocess (``env``: its environment, default this one's), captured."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "ppo_jax.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def interrupt_cli(args, sig, env, timeout=900):
    """Start ``ppo-jax ARGS`` and send ``sig`` once it reports training progress
    (a plain line per 10% when stderr is not a terminal); (exit code, stderr)."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "ppo_jax.cli", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "env steps/seed" in line:
            proc.send_signal(sig)
            break
    _, rest = proc.communicate(timeout=timeout)
    return proc.returncode, "".join(lines) + rest


def assert_bitwise_equal(a, b):
    """Every leaf of two pytrees has the same dtype, shape and bits (NaN-safe)."""
    import numpy as np

    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x.view(np.uint8), y.view(np.uint8))


@pytest.fixture(scope="session", autouse=True)
def _private_compile_cache(tmp_path_factory):
    """The suite never reads or writes the user's compile caches (~/.cache/ppo_jax):
    what the CLI run in this process keeps goes to a directory of this session's own
    (a cache left by an earlier run of the suite, of another version, once decided
    what these tests saw)."""
    before = os.environ.get("PPO_JAX_CACHE_DIR")
    os.environ["PPO_JAX_CACHE_DIR"] = str(tmp_path_factory.mktemp("compile-cache"))
    yield
    if before is None:
        os.environ.pop("PPO_JAX_CACHE_DIR", None)
    else:
        os.environ["PPO_JAX_CACHE_DIR"] = before


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


# A CartPole run that balances the pole (return 500) by its end, trained once
# per session through the CLI. 800 updates of 4 envs × 32 steps: long enough
# that a signal sent during training lands well before the end (test_resume).
CARTPOLE_RUN_ARGS = (
    "train",
    "configs/cartpole.yaml",
    "--seeds",
    "1",
    "--no-progress",
    "--set",
    "total_timesteps=102400",
    "--set",
    "num_envs=4",
    "--set",
    "num_steps=32",
)


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory):
    """Environment for ``ppo-jax`` subprocesses: a compilation cache private to
    this session, so the processes of one test share their compiles (as a user's
    runs do) without reading programs cached by anything else."""
    return {
        **os.environ,
        "PPO_JAX_CACHE_DIR": str(tmp_path_factory.mktemp("xla-cache")),
        "PPO_JAX_NO_CACHE": "",
    }


@pytest.fixture(scope="session")
def cartpole_run(tmp_path_factory, cli_env):
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path_factory.mktemp("cartpole") / "run"
    result = subprocess.run(
        [sys.executable, "-m", "ppo_jax.cli", *CARTPOLE_RUN_ARGS, "--out", str(out)],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=900,
        env=cli_env,
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def cli_main(monkeypatch, capsys):
    """``run(*args) -> (exit code, stderr)``: ``ppo-jax ARGS`` in this process, for the
    refusals that end before anything compiles (a subprocess spends seconds importing
    JAX for each; the subprocess tests of test_cli check the exit code end to end).
    XLA_FLAGS is restored afterwards: train and sweep add a device count to it."""
    from ppo_jax import cli

    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))

    def run(*args):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exit:  # argparse's own usage errors
            code = exit.code
        return code, capsys.readouterr().err

    return run


@pytest.fixture(scope="session")
def nonfinite_run(tmp_path_factory):
    """A Pendulum run that goes non-finite, through the CLI, once per session
    (test_cli checks the message and summary, test_checkpoint the checkpoints).
    One gradient step per update at a huge learning rate: update 0 leaves huge
    but finite parameters, update 1 goes non-finite."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path_factory.mktemp("nonfinite") / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ppo_jax.cli",
            "train",
            "configs/pendulum.yaml",
            "--out",
            str(out),
            "--no-progress",
            "--checkpoint-every",
            "1",
            "--set",
            "learning_rate=1e6",
            "--set",
            "update_epochs=1",
            "--set",
            "num_minibatches=1",
            "--set",
            "total_timesteps=65536",
        ],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PPO_JAX_NO_CACHE": "1"},
    )
    return out, result
