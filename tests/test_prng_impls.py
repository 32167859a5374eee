"""Keys of any PRNG implementation JAX offers: ``JAX_DEFAULT_PRNG_IMPL=rbg`` (keys of
4 words) trains, sweeps and resumes bitwise through the CLI (``tests/prng_worker.py``,
in a subprocess: the implementation is fixed when JAX starts). A run is loaded and
resumed only under the implementation that made it."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import pytest

import ppo_jax
from ppo_jax.config import PPOConfig
from ppo_jax.io.checkpoint import RunDirError

ROOT = Path(__file__).parent.parent


def _worker(out: Path, command: str, env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "tests/prng_worker.py", str(out), command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**env, "JAX_DEFAULT_PRNG_IMPL": "rbg"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def rbg_run(tmp_path_factory, cli_env):
    out = tmp_path_factory.mktemp("rbg") / "run"
    return out, _worker(out, "train", cli_env)


def test_make_train_takes_keys_of_any_impl():
    config = PPOConfig(total_timesteps=64, num_envs=2, num_steps=32, num_minibatches=1, update_epochs=1)
    train = ppo_jax.make_train(config)
    shapes = {impl: jax.eval_shape(train, jax.random.key(0, impl=impl)) for impl in ("rbg", "unsafe_rbg")}
    for state, metrics in shapes.values():
        assert metrics["episode_return"].shape == (1,)
        assert jax.dtypes.issubdtype(state.key.dtype, jax.dtypes.prng_key)


def test_rbg_trains_and_resumes_bitwise(rbg_run):
    _, report = rbg_run
    assert report["prng_impl"] == "rbg" and report["code"] == 0
    assert report["key_shape"] == [2, 4]  # two seeds' raw rbg keys
    assert report["resumed"] == {"code": 0, "metrics.csv": True} and report["state_equal"]


def test_the_summary_records_the_prng_and_the_precision(rbg_run):
    summary = rbg_run[1]["summary"]
    assert summary["prng_impl"] == "rbg" and summary["matmul_precision"] == "highest"


def test_a_run_is_loaded_and_resumed_only_under_its_own_prng(rbg_run, cli_main):
    out, _ = rbg_run
    assert jax.config.jax_default_prng_impl == "threefry2x32"
    with pytest.raises(RunDirError, match="JAX_DEFAULT_PRNG_IMPL=rbg"):
        ppo_jax.load_run(out)
    code, err = cli_main("train", "--resume", out)
    assert code == 2 and "'rbg' PRNG" in err and "JAX_DEFAULT_PRNG_IMPL=rbg" in err and "Traceback" not in err


@pytest.mark.slow
def test_rbg_sweeps_and_resumes_bitwise(tmp_path, cli_env):
    report = _worker(tmp_path / "sweep", "sweep", cli_env)
    assert report["code"] == 0 and report["resumed"] == {"code": 0, "results.csv": True}
    assert report["summary"]["prng_impl"] == "rbg" and report["summary"]["matmul_precision"] == "highest"
