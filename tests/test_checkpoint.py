"""Checkpoints: bit-exact round trip, keeping the last N, a failed write that
leaves the previous checkpoint whole, the NaN stop keeping the last good one,
and every refused --resume (exit 2, before compiling, nothing changed)."""

import errno
import functools
import json
import shutil
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import ppo_jax
from ppo_jax import cli
from ppo_jax.io import checkpoint


@functools.lru_cache(maxsize=None)
def _initial_state():
    from ppo_jax.driver import seed_keys

    config = ppo_jax.load_config(None, total_timesteps=256, num_envs=4, num_steps=64)
    init = jax.vmap(ppo_jax.build(config).init, in_axes=(0, None))
    return jax.jit(init)(seed_keys([0, 1]), config.hyperparams())


def _state(offset=0.0):
    """A two-seed train state; ``offset`` makes checkpoints tell apart."""
    state = _initial_state()
    return state.replace(params=jax.tree.map(lambda x: x + offset, state.params))


def _target():
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _initial_state())


def _bits_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and np.array_equal(x.view(np.uint8), y.view(np.uint8))


def test_round_trip_is_bit_exact_and_keeps_the_last_n(tmp_path):
    writer = checkpoint.Checkpointer(tmp_path, keep=2)
    for update in (1, 2, 3):
        writer.save(update, _state(update), {"seeds": [0, 1]})
    writer.close()
    assert checkpoint.saved_updates(tmp_path) == [2, 3]
    target = _target()
    _bits_equal(checkpoint.restore_state(tmp_path, 3, target), _state(3))
    assert checkpoint.read_meta(tmp_path, 3)["seeds"] == [0, 1]


def test_a_checkpoint_of_another_format_is_refused_by_name(tmp_path, monkeypatch, capsys):
    """The meta's "format" is checked on reading: a checkpoint of another layout is refused with
    its format and ours named (a RunDirError for --resume: exit 2), not read into the wrong tree."""
    shutil.copy("configs/cartpole.yaml", tmp_path / "config.yaml")
    monkeypatch.setattr(checkpoint, "FORMAT_VERSION", checkpoint.FORMAT_VERSION + 1)
    writer = checkpoint.Checkpointer(tmp_path, keep=1)
    writer.save(1, _state(1), {"seeds": [0, 1]})
    writer.close()
    monkeypatch.undo()
    with pytest.raises(checkpoint.CheckpointError, match=r"checkpoint format 2, but .* reads format 1"):
        checkpoint.read_meta(tmp_path, 1)
    with pytest.raises(checkpoint.RunDirError, match="checkpoint format 2"):
        checkpoint.latest_checkpoint(tmp_path)
    assert cli.main(["train", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint format 2" in err and "Traceback" not in err


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    import orbax.checkpoint as ocp

    writer = checkpoint.Checkpointer(tmp_path, keep=1)
    writer.save(1, _state(1), {})

    async def disk_full(self, directory, *args, **kwargs):  # dies with some bytes written
        (Path(directory) / "partial").write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(ocp.handlers.StandardCheckpointHandler, "async_save", disk_full)
        with pytest.raises(checkpoint.CheckpointError, match="No space left.*checkpoint 1 is intact"):
            writer.save(2, _state(2), {})
    writer.close()
    assert checkpoint.saved_updates(tmp_path) == [1]  # the half-written one does not look whole
    _bits_equal(checkpoint.restore_state(tmp_path, 1, _target()), _state(1))
    again = checkpoint.Checkpointer(tmp_path, keep=1)
    again.save(2, _state(2), {})  # the next writer clears the leftovers and carries on
    again.close()
    assert checkpoint.saved_updates(tmp_path) == [2]
    assert sorted(p.name for p in checkpoint.checkpoint_dir(tmp_path).iterdir()) == ["2"]


def test_nonfinite_stop_keeps_the_last_good_checkpoint(nonfinite_run):
    out, result = nonfinite_run
    assert result.returncode == cli.EXIT_NONFINITE, result.stderr
    assert "non-finite" in result.stderr and "last good checkpoint" in result.stderr
    stopped = json.loads((out / "summary.json").read_text())["stopped"]
    assert checkpoint.saved_updates(out) == [stopped["update"]]  # the bad chunk's state was never saved
    run = ppo_jax.load_run(out)
    assert run.update == stopped["update"] >= 1
    assert all(
        np.isfinite(np.asarray(x)).all()
        for x in jax.tree.leaves(run.state)
        if np.issubdtype(x.dtype, np.floating)
    )
    assert np.isfinite(np.asarray(run.policy()(np.zeros(3, np.float32)))).all()


# --- refused --resume: exit 2, a message, before compiling, nothing changed ----


def _snapshot(root: Path):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def finished_run(tmp_path, cartpole_run):
    copy = tmp_path / "finished"
    shutil.copytree(cartpole_run, copy)
    return copy


def _edit(path: Path, key: str, value: str):
    lines = [
        f"{key}: {value}" if line.startswith(f"{key}:") else line for line in path.read_text().splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")


RESUME_CASES = {
    "no such directory": (lambda d: ["train", "--resume", str(d / "missing")], "no such directory"),
    "not a run": (lambda d: ["train", "--resume", str(d / "notarun")], "not a ppo-jax run directory"),
    "no checkpoint": (lambda d: ["train", "--resume", str(d / "nockpt")], "has no checkpoint"),
    "another env": (lambda d: ["train", "--resume", str(d / "otherenv")], "another env"),
    "edited config": (
        lambda d: ["train", "--resume", str(d / "edited")],
        "'learning_rate' was 0.001, now 0.5",
    ),
    "finished": (lambda d: ["train", "--resume", str(d / "finished")], "finished"),
    "with --set": (
        lambda d: ["train", "--resume", str(d / "finished"), "--set", "gamma=0.9"],
        "--set cannot be combined",
    ),
    "with a config": (
        lambda d: ["train", "configs/cartpole.yaml", "--resume", str(d / "finished")],
        "CONFIG cannot be combined",
    ),
    "with --seeds": (
        lambda d: ["train", "--resume", str(d / "finished"), "--seeds", "4"],
        "--seeds cannot be combined",
    ),
    "with --out": (
        lambda d: ["train", "--resume", str(d / "finished"), "--out", str(d / "x")],
        "--out cannot be combined",
    ),
    "neither": (lambda d: ["train"], "give a CONFIG.yaml"),
    "keep 0": (
        lambda d: ["train", "configs/cartpole.yaml", "--out", str(d / "new"), "--keep", "0"],
        "--keep",
    ),
    "checkpoint-every < 0": (
        lambda d: ["train", "configs/cartpole.yaml", "--out", str(d / "new"), "--checkpoint-every", "-1"],
        "--checkpoint-every",
    ),
    "eval not a run": (lambda d: ["eval", str(d / "notarun")], "not a ppo-jax run directory"),
    "render not a gif": (lambda d: ["render", str(d / "finished"), "--out", str(d / "x.mp4")], ".gif"),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_bad_resume_and_run_inputs_exit_2_before_compiling(case, tmp_path, finished_run, capsys):
    (tmp_path / "notarun").mkdir()
    (tmp_path / "notarun" / "notes.txt").write_text("mine")
    (tmp_path / "nockpt").mkdir()
    shutil.copy(finished_run / "config.yaml", tmp_path / "nockpt" / "config.yaml")
    for name, key, value in (("otherenv", "env_id", "Acrobot-v1"), ("edited", "learning_rate", "0.5")):
        shutil.copytree(finished_run, tmp_path / name)
        _edit(tmp_path / name / "config.yaml", key, value)
    before = _snapshot(tmp_path)
    argv, expected = RESUME_CASES[case]
    code = cli.main(argv(tmp_path))
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err and "Traceback" not in err and "compiling" not in err
    assert _snapshot(tmp_path) == before


def test_too_little_disk_space_is_refused_before_training(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real = shutil.disk_usage
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: real(p)._replace(free=10_000))
    code = cli.main(["train", "configs/cartpole.yaml", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "free on its disk" in err and "compiling" not in err
    assert not out.exists()


def test_overwrite_clears_the_old_runs_checkpoints(tmp_path, capsys):
    out = tmp_path / "run"
    stale = checkpoint.checkpoint_dir(out) / "999"
    stale.mkdir(parents=True)
    (out / "notes.txt").write_text("kept")
    code = cli.main(
        [
            "train",
            "configs/cartpole.yaml",
            "--out",
            str(out),
            "--overwrite",
            "--no-progress",
            "--set",
            "total_timesteps=512",
            "--set",
            "num_envs=4",
            "--set",
            "num_steps=64",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert checkpoint.saved_updates(out) == [1, 2]  # 999 would have been taken for this run's latest
    assert not stale.exists() and (out / "notes.txt").read_text() == "kept"


def test_wandb_asked_for_but_not_installed_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    out = tmp_path / "run"
    code = cli.main(["train", "configs/cartpole.yaml", "--out", str(out), "--wandb", "offline"])
    err = capsys.readouterr().err
    assert code == 2 and "ppo_jax[wandb]" in err and "compiling" not in err
    assert not out.exists()
