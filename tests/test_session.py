"""What train, sweep and pbt share around a run (``ppo_jax.cli.session``): the plan's
config, the checkpoint-due rule, the run directory's start and the resume layout check."""

import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from ppo_jax.cli import session
from ppo_jax.cli.common import UserError
from ppo_jax.config import PPOConfig

CONFIG = PPOConfig(num_envs=4, num_steps=8, total_timesteps=4 * 8 * 12)  # 12 updates


class _Checkpointer:
    def __init__(self, last_saved=None):
        self.last_saved, self.saved = last_saved, []

    def save(self, update, tree, meta):
        self.saved.append((update, tree, meta))
        self.last_saved = update


def _session(every, signum=None, last_saved=None):
    plan = session.Plan(CONFIG, [0], Path("unused"), checkpoint_every=every, keep=2)
    stop = SimpleNamespace(signum=signum, name="SIGINT" if signum else None)
    return session.Session(plan, None, _Checkpointer(last_saved), stop, {"kind": "train"})


def test_a_plan_of_a_grid_and_of_a_config_share_its_config():
    grid = SimpleNamespace(base=CONFIG)
    assert session.Plan(grid, [0], Path("x"), 0, 1).config is CONFIG
    assert session.Plan(CONFIG, [0], Path("x"), 0, 1).config is CONFIG
    assert session.Plan(CONFIG, [0], Path("x"), 0, 1).resumed() is None
    assert session.Plan(CONFIG, [0], Path("x"), 0, 1, start_update=4).resumed()["from_update"] == 4


@pytest.mark.parametrize("every, expected", [(0, [12]), (5, [5, 10, 12]), (4, [4, 8, 12])])
def test_checkpoints_are_due_every_n_updates_and_at_the_end(every, expected):
    host = _session(every)
    assert not any(host.save_if_due(u, lambda: "state") for u in range(1, 13))
    assert [u for u, *_ in host.checkpointer.saved] == expected
    _, tree, meta = host.checkpointer.saved[-1]
    assert tree == "state" and meta == {"kind": "train", "checkpoint_every": every, "keep": 2, "command": ""}


def test_a_signal_saves_and_stops_at_once_with_the_extra_meta():
    host = _session(0, signum=signal.SIGINT)
    assert host.save_if_due(3, lambda: "state", log_points_done=3)
    assert [(u, m["log_points_done"]) for u, _, m in host.checkpointer.saved] == [(3, 3)]
    run = SimpleNamespace(updates_done=3, stopped_early=True)
    assert host.stopped(run) == {"reason": "SIGINT", "update": 3}


def test_a_resume_counts_from_the_checkpoint_it_continues():
    host = _session(3, last_saved=8)
    for update in range(9, 13):
        host.save_if_due(update, lambda: None)
    assert [u for u, *_ in host.checkpointer.saved] == [11, 12]  # 3 after 8, and the end


def test_start_dir_removes_a_previous_runs_checkpoints_only_with_overwrite(tmp_path):
    for name in ("checkpoints", "tensorboard"):
        (tmp_path / name).mkdir()
    plan = session.Plan(CONFIG, [0], tmp_path, 0, 1)
    session.start_dir(plan, overwrite=False)
    assert (tmp_path / "checkpoints").is_dir() and (tmp_path / "config.yaml").is_file()
    session.start_dir(plan, overwrite=True, stale=("tensorboard",))
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "tensorboard").exists()


def test_a_resume_on_other_devices_or_log_points_is_refused():
    run = SimpleNamespace(num_devices=2, plan=[1, 1, 2])
    plan = session.Plan(CONFIG, [0], Path("sweep"), 0, 1, start_update=2, devices=4, log_plan=[1, 1, 2])
    with pytest.raises(UserError, match=r"ran on 4 device\(s\), this one has 2.*--cpu-devices 4"):
        session.check_layout(plan, run, "sweep")
    plan.devices = 2
    session.check_layout(plan, run, "sweep")  # the same layout
    plan.log_plan = [2, 2]
    with pytest.raises(UserError, match="its log points"):
        session.check_layout(plan, run, "sweep")
