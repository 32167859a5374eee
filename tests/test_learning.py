"""Learning checks. The quick one runs in the default suite; each preset's row of
issue 22 is checked at the preset's own budget by a slow test (``pytest -m slow``).

A slow check trains one block of seeds that no tuning saw (the held-out blocks of
docs/tuning/<preset>/), the way a user trains it: one ``ppo-jax train CONFIG
--seeds N --seed S`` program on the CLI's default devices (CartPole: its first
held-out block of 16, as its header reports it on the 2-core VM; rows that allow
one miss: 8 seeds no tuning saw). Bars per block: at most ``misses`` seeds below
``T`` and the IQM over the seeds (mean of the middle 50%) at least ``iqm``. A preset
over its budget fails a separate, strict expected failure, so the two cannot hide
each other. The stateless-CartPole (test_recurrent.py) and NAVIX (test_envs_suites.py)
presets keep their own slow checks.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import pytest
import scipy.stats

import ppo_jax
from ppo_jax.driver import seed_keys
from ppo_jax.io.logs import final_returns

ROOT = Path(__file__).parent.parent
CONFIGS = ROOT / "configs"


class Row(NamedTuple):
    bar: float  # T: a seed's final return (mean over the episodes of the last 5% of training)
    iqm: float
    misses: int  # seeds of the block allowed below T
    seeds: int
    first_seed: int  # the block: first_seed .. first_seed + seeds - 1, held out from tuning
    budget: int | None = None  # issue 22's largest budget, env steps per seed


ROWS = {
    # held-out block 1 of 3 of docs/tuning/cartpole/ (tuned on 1000-1079)
    "cartpole": Row(475.0, 495.0, 0, 16, 5000, 200_000),
    # the first 8 seeds of held-out block 1 of docs/tuning/acrobot/ (chosen on seeds 0-3)
    "acrobot": Row(-100.0, -85.0, 1, 8, 5000, 500_000),
    # the first 8 seeds of held-out block 1 of docs/tuning/pendulum/ (tuned on 1000-1007)
    "pendulum": Row(-200.0, -150.0, 1, 8, 11000, 1_000_000),
    "mountaincar_continuous": Row(70.0, 90.0, 1, 8, 5000, 1_000_000),  # 8 of held-out block 1
    # held-out block 1 of docs/tuning/space_invaders_minatar/ (chosen on seeds 0-3)
    "space_invaders_minatar": Row(131.0, 160.0, 1, 8, 11000, 10_000_000),
    "asterix_minatar": Row(15.0, 25.0, 1, 8, 100, 10_000_000),
    # held-out block 1 of docs/tuning/freeway_minatar/ (chosen on seeds 0-3)
    "freeway_minatar": Row(58.0, 60.0, 1, 8, 11000, 10_000_000),
    # held-out block 1 of docs/tuning/breakout_minatar/ (tuned on 1000-1007)
    "breakout_minatar": Row(25.0, 40.0, 1, 8, 5000, 10_000_000),
    # 0.9 x the optimum 0.956 (7 steps: 1 - 0.9 * 7/144); needs the xminigrid extra.
    "xminigrid_empty": Row(0.86, 0.86, 1, 8, 100),
    # twice a random masked policy's 6.33 fruits (6x6 grid, 500 steps); needs the jumanji extra.
    "jumanji_snake": Row(12.7, 12.7, 1, 8, 100),
}
NOT_MET = {  # preset -> why its row is not met yet (its learning check is an expected failure)
    "pendulum": "at 1e6 steps held-out blocks 11000, 12000, 13000 (16 seeds each) reached IQM -157.8, "
    "-157.3, -154.4 < -150, none below -200; docs/tuning/pendulum/",
    "breakout_minatar": "at 5e6 steps held-out block 6000-6007 reached IQM 38.4 < 40 (block 5000-5007: 49.4); "
    "at 1e7 block 9000-9007 had 2 of 8 seeds below 25; docs/tuning/breakout_minatar/",
}
OVER_BUDGET: dict[str, str] = {}  # preset -> why it runs more env steps than its row allows (a strict xfail)
SUITES = {"xminigrid_empty": "xminigrid", "jumanji_snake": "jumanji"}


def _train_seeds(config, seeds):
    _, metrics = jax.jit(jax.vmap(ppo_jax.make_train(config)))(seed_keys(seeds))
    return final_returns(jax.device_get(metrics))


def iqm(values) -> float:
    """Mean of the middle 50% (rliable's ``aggregate_iqm`` for one task)."""
    return float(scipy.stats.trim_mean(np.asarray(values, np.float64), proportiontocut=0.25))


def test_iqm_matches_a_plain_definition():
    rng = np.random.default_rng(0)
    for n in (4, 8, 16):
        x = rng.normal(size=n)
        middle = np.sort(x)[n // 4 : n - n // 4]
        assert iqm(x) == pytest.approx(middle.mean())


def test_cartpole_learns_quickly():
    # Half of the preset's budget on a seed no tuning or held-out block used: the preset's
    # IQM passes 495 by about 30k steps (docs/tuning/cartpole/), so half the budget is ample.
    config = ppo_jax.load_config(CONFIGS / "cartpole.yaml", total_timesteps=100_000)
    (final,) = _train_seeds(config, [9000])
    assert final >= 475.0, final


@pytest.mark.parametrize(
    "preset",
    [
        pytest.param(p, marks=pytest.mark.xfail(reason=OVER_BUDGET[p], strict=True))
        if p in OVER_BUDGET
        else p
        for p in sorted(p for p, row in ROWS.items() if row.budget is not None)
    ],
)
def test_preset_is_within_its_budget(preset):
    config = ppo_jax.load_config(CONFIGS / f"{preset}.yaml")
    budget = ROWS[preset].budget
    assert config.env_steps <= budget, f"{preset}: {config.env_steps:,} env steps per seed, over {budget:,}"


def _train_block(preset: str, row: Row, out: Path) -> np.ndarray:
    """Final returns of one ``ppo-jax train`` program of the block, as a user runs it."""
    env = dict(os.environ)
    # the suite's compile level (conftest.py) is not the user's; the block should be theirs
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "").replace("--xla_backend_optimization_level=0", "").strip()
    command = ["train", f"configs/{preset}.yaml", "--seeds", str(row.seeds), "--seed", str(row.first_seed)]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ppo_jax.cli",
            *command,
            "--out",
            str(out),
            "--no-progress",
            "--no-tensorboard",
        ],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"ppo-jax {' '.join(command)}:\n{result.stderr[-3000:]}"
    return np.asarray(json.loads((out / "summary.json").read_text())["final_return"], np.float64)


@pytest.mark.slow
@pytest.mark.parametrize(
    "preset",
    [
        pytest.param(p, marks=pytest.mark.xfail(reason=NOT_MET[p], strict=False)) if p in NOT_MET else p
        for p in sorted(ROWS)
    ],
)
def test_preset_meets_its_row_on_a_held_out_block(preset, tmp_path):
    row = ROWS[preset]
    if preset in SUITES:
        pytest.importorskip(SUITES[preset])
    finals = _train_block(preset, row, tmp_path / "run")
    seeds = f"seeds {row.first_seed}-{row.first_seed + row.seeds - 1}"
    report = f"{preset}: {seeds} final returns {np.round(finals, 1).tolist()}"
    assert np.isfinite(finals).all(), report
    misses = int((finals < row.bar).sum())
    assert misses <= row.misses, f"{misses} seeds below {row.bar} (at most {row.misses}); {report}"
    assert iqm(finals) >= row.iqm, f"IQM {iqm(finals):.1f} < {row.iqm}; {report}"
