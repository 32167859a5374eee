"""Learning checks. The quick one runs in CI; each preset's check at its stated
budget is marked slow (``pytest -m slow``): the bars of issue 12, checked on a
few seeds trained in one program as ``ppo-jax sweep`` trains them.

Bars per preset: every seed but at most one reaches ``T`` (the issue asks this of
16 seeds, 8 for MinAtar; here fewer seeds are trained, and still at most one may
miss), and the IQM over the seeds (mean of the middle 50%) reaches ``iqm``. The
tuning and the held-out checks on 16 (MinAtar: 8) seeds are in docs/tuning/.
Run time on the project's 2-core CPU VM, quiet: about 5 minutes for the four
classic-control presets, about 55 minutes for the four MinAtar ones.
"""

from pathlib import Path

import jax
import numpy as np
import pytest
import scipy.stats

import ppo_jax
from ppo_jax.driver import seed_keys
from ppo_jax.logs import final_returns

CONFIGS = Path(__file__).parent.parent / "configs"

# preset: (T, IQM bar, seeds trained here). Final return of a seed = mean return of the
# episodes finished in the last 5% of training.
BARS = {
    "cartpole": (475.0, 495.0, 8),
    "acrobot": (-100.0, -85.0, 8),
    "pendulum": (-200.0, -150.0, 8),
    "mountaincar_continuous": (70.0, 90.0, 8),
    "breakout_minatar": (25.0, 40.0, 4),
    "space_invaders_minatar": (131.0, 160.0, 4),
    "asterix_minatar": (15.0, 25.0, 4),
    "freeway_minatar": (58.0, 60.0, 4),
    # 0.9 x the optimum 0.956 (7 steps: 1 - 0.9 * 7/144); needs the xminigrid extra.
    "xminigrid_empty": (0.86, 0.86, 4),
    # twice a random masked policy's 6.33 fruits (6x6 grid, 500 steps); needs the jumanji extra.
    "jumanji_snake": (12.7, 12.7, 4),
}
# Issue 12's largest budget (env steps per seed) for the presets it names.
BUDGETS = {
    "cartpole": 200_000,
    "acrobot": 500_000,
    "pendulum": 1_000_000,
    "mountaincar_continuous": 1_000_000,
    "breakout_minatar": 10_000_000,
    "space_invaders_minatar": 10_000_000,
    "asterix_minatar": 10_000_000,
    "freeway_minatar": 10_000_000,
}
NOT_MET = {  # preset -> why its bars are not met yet (marks its check as an expected failure)
    "pendulum": "no setting tried holds at 1e6 steps yet: IQM -155 < -150 (docs/tuning/pendulum/); "
    "the preset runs 2e6 steps, over the budget",
}
ALLOWED_MISSES = 1


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
    # Half of the preset's budget, one seed: far past a random policy (≈22 steps).
    config = ppo_jax.load_config(CONFIGS / "cartpole.yaml", total_timesteps=100_000)
    (final,) = _train_seeds(config, [0])
    assert final >= 200.0, final


@pytest.mark.slow
@pytest.mark.parametrize(
    "preset",
    [
        pytest.param(p, marks=pytest.mark.xfail(reason=NOT_MET[p], strict=False)) if p in NOT_MET else p
        for p in sorted(BARS)
    ],
)
def test_preset_meets_its_bars(preset):
    bar, iqm_bar, n = BARS[preset]
    suite = {"xminigrid_empty": "xminigrid", "jumanji_snake": "jumanji"}.get(preset)
    if suite:
        pytest.importorskip(suite)
    config = ppo_jax.load_config(CONFIGS / f"{preset}.yaml")
    budget = BUDGETS.get(preset)
    assert budget is None or config.env_steps <= budget, (
        f"{preset}: {config.env_steps:,} env steps per seed, over the budget of {budget:,}"
    )
    result = ppo_jax.sweep(config, seeds=n)
    finals = np.asarray(result.final_return[0], np.float64)
    report = f"{preset}: seeds 0-{n - 1} final returns {np.round(finals, 1).tolist()}"
    assert np.isfinite(finals).all(), report
    misses = int((finals < bar).sum())
    assert misses <= ALLOWED_MISSES, f"{misses} seeds below {bar}; {report}"
    assert iqm(finals) >= iqm_bar, f"IQM {iqm(finals):.1f} < {iqm_bar}; {report}"
