"""An env whose ``is_truncated`` fires before its declared limit: the rollout has
``ceil(T / limit)`` slots per env for final observations, so the cuts beyond them are
counted (``cuts_dropped``, feed-forward and recurrent) and the run warns on the host."""

import functools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from gymnax.environments import environment, spaces

import ppo_jax
from ppo_jax.driver import ChunkedRun, DroppedCutsWarning, warn_dropped_cuts
from ppo_jax.rollout import Memory, RolloutOptions, collect, collect_recurrent

CUT_AT = 3  # the env's own cut, far below the declared limit


@struct.dataclass
class WalkParams:
    max_steps_in_episode: int = 100


@struct.dataclass
class WalkState:
    position: jax.Array
    time: int


class EarlyCut(environment.Environment):
    """A walk on a line that never terminates; its own ``is_truncated`` cuts every 3 steps."""

    def __init__(self, cut_at: int = CUT_AT):
        self.cut_at = cut_at

    @property
    def default_params(self):
        return WalkParams()

    def reset_env(self, key, params):
        state = WalkState(position=jnp.asarray(0.0), time=0)
        return jnp.stack([state.position, 1.0]), state

    def step_env(self, key, state, action, params):
        state = WalkState(position=state.position + 2.0 * action - 1.0, time=state.time + 1)
        return jnp.stack([state.position, 1.0]), state, jnp.float32(0.0), jnp.asarray(False), {}

    def is_truncated(self, state, params):
        return state.time >= self.cut_at

    def action_space(self, params):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(-100.0, 100.0, (2,), jnp.float32)


NUM_STEPS, NUM_ENVS = 16, 2


def _config(make=ppo_jax.PPOConfig, env_id="early_cut", **changes):
    return make(
        env_id=env_id,
        num_envs=NUM_ENVS,
        num_steps=NUM_STEPS,
        total_timesteps=NUM_ENVS * NUM_STEPS * 2,
        num_minibatches=1,
        update_epochs=1,
        **changes,
    )


def _dropped_by_hand(traj) -> int:
    """One slot per env (ceil(16 / 100)): every cut of an env after its first has none."""
    cuts = (np.asarray(traj.done) & ~np.asarray(traj.terminated)).sum(axis=0)
    return int(np.maximum(cuts - 1, 0).sum())


@functools.lru_cache(maxsize=None)
def _rollout(recurrent: bool, cut_at: int):
    config = _config(**({"recurrent": "gru", "recurrent_size": 4, "hidden_sizes": [8]} if recurrent else {}))
    program = ppo_jax.build(config, env=EarlyCut(cut_at))
    state = program.init(jax.random.PRNGKey(0), config.hyperparams())
    options = RolloutOptions(num_steps=NUM_STEPS, normalize_obs=False, normalize_reward=False)
    kw = dict(networks=program.networks, vec_env=program.vec_env, options=options)
    key = jax.random.PRNGKey(1)
    if recurrent:
        memory = Memory(carry=program.networks.initial_carry((NUM_ENVS,)), start=jnp.ones((NUM_ENVS,), bool))
        _, _, _, traj, stats = jax.jit(functools.partial(collect_recurrent, **kw))(
            key, state.params, state.env, memory, state.norm, 0.99
        )
    else:
        _, _, traj, stats = jax.jit(functools.partial(collect, **kw))(
            key, state.params, state.env, state.norm, 0.99
        )
    return jax.device_get((traj, stats))


@pytest.mark.parametrize("recurrent", [False, True], ids=["feed_forward", "recurrent"])
def test_cuts_beyond_the_slots_are_counted(recurrent):
    traj, stats = _rollout(recurrent, CUT_AT)
    assert traj.cut_step.shape == (NUM_ENVS, 1)
    # Cuts at t = 2, 5, 8, 11, 14 in each env: 4 per env found no slot.
    assert _dropped_by_hand(traj) == 2 * 4
    assert stats.cuts_dropped == 2 * 4


@pytest.mark.parametrize("recurrent", [False, True], ids=["feed_forward", "recurrent"])
def test_cuts_within_the_declared_limit_drop_nothing(recurrent):
    traj, stats = _rollout(recurrent, 100)  # is_truncated agrees with the declared limit
    assert stats.cuts_dropped == 0 and not (np.asarray(traj.done)).any()


def test_metric_counts_them_per_update_and_the_run_warns(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    module = Path(__file__).stem
    sys.modules.setdefault(module, sys.modules[__name__])
    config = _config(lambda **kw: ppo_jax.load_config(None, **kw), env_id=f"{module}:EarlyCut")
    run = ChunkedRun(config, seeds=[0], target_chunks=1)
    state = run.compile()
    with pytest.warns(DroppedCutsWarning, match="max_steps_in_episode"):
        _, metrics = run.run(state)
    assert metrics["cuts_dropped"].shape == (1, config.num_updates)
    # Each update's rollout continues the walk: 16 steps of cuts every 3, one slot per env.
    assert np.all(metrics["cuts_dropped"] >= 2 * 4)


def test_warning_names_the_first_seed_and_update_and_only_once():
    quiet = np.zeros((2, 3))
    assert warn_dropped_cuts(quiet, [7, 9], 10) is False
    loud = quiet.copy()
    loud[1, 2], loud[0, 2] = 5, 1
    with pytest.warns(DroppedCutsWarning, match="seed 7, update 12: 1 episodes"):
        assert warn_dropped_cuts(loud, [7, 9], 10) is True


def test_resuming_a_metrics_csv_without_the_new_column(tmp_path):
    """A run started before cuts_dropped existed resumes into one well-formed metrics.csv."""
    import csv

    from ppo_jax.io import logs
    from ppo_jax.metrics import METRIC_NAMES

    path = tmp_path / "metrics.csv"
    old = ("seed", "update", "env_steps") + tuple(n for n in METRIC_NAMES if n != "cuts_dropped")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(old)
        for update in range(3):
            writer.writerow([0, update, 32 * (update + 1)] + ["1.5"] * (len(old) - 3))
    writer = logs.MetricsCSV(path, [0], keep_before=2)
    metrics = {name: np.full((1, 2), 7.0) for name in METRIC_NAMES}
    metrics["env_steps"] = np.array([[96, 128]])
    writer.append(2, metrics)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(logs.MetricsCSV.columns) and all(len(r) == len(rows[0]) for r in rows)
    read = logs.read_metrics(path, [0], 4)
    np.testing.assert_array_equal(read["cuts_dropped"], [[np.nan, np.nan, 7.0, 7.0]])
    np.testing.assert_array_equal(read["policy_loss"], [[1.5, 1.5, 7.0, 7.0]])
    np.testing.assert_array_equal(read["env_steps"], [[32, 64, 96, 128]])


def test_sweep_warns_of_dropped_cuts(tmp_path, capsys):
    from ppo_jax import cli

    sets = [
        "env_id=tests.test_early_cuts:EarlyCut",
        "num_envs=2",
        "num_steps=16",
        "total_timesteps=64",
        "num_minibatches=1",
        "update_epochs=1",
    ]
    args = ["sweep", "configs/cartpole.yaml", "--grid", "learning_rate=1e-3,2e-3", "--seeds", "1"]
    args += ["--out", str(tmp_path / "sweep"), "--no-progress"] + [x for s in sets for x in ("--set", s)]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "2 run(s) had episodes cut by the time limit sooner" in err, err
