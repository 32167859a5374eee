"""With too few seeds per setting, report.md and the console say so and print no
interval as if it were confident."""

import numpy as np
import pytest

from ppo_jax import report
from ppo_jax.config import PPOConfig
from ppo_jax.sweeps import CURVE_NAMES, MemoryEstimate, SweepResult


def _result(num_seeds: int) -> SweepResult:
    rng = np.random.default_rng(num_seeds)
    points, log_points = 2, 3
    shape = (points, num_seeds, log_points)
    curves = {name: rng.uniform(100, 300, shape).astype(np.float32) for name in CURVE_NAMES}
    return SweepResult(
        config=PPOConfig(),
        axes={"learning_rate": (1e-3, 3e-4)},
        points=({"learning_rate": 1e-3}, {"learning_rate": 3e-4}),
        seeds=list(range(num_seeds)),
        env_steps=np.array([512, 1024, 1536]),
        curves=curves,
        final_return=curves["episode_return"][..., -1],
        nonfinite=np.zeros((points, num_seeds), np.int32),
        first_nonfinite_update=np.full((points, num_seeds), -1),
        compile_seconds=1.0,
        train_seconds=1.0,
        num_devices=1,
        num_processes=1,
        memory=MemoryEstimate(
            runs=points * num_seeds, devices=1, state_bytes=0, rollout_bytes=0, metrics_bytes=0, host_bytes=0
        ),
    )


@pytest.mark.parametrize("num_seeds", [1, 2, 4])
def test_too_few_seeds_warns_and_shows_no_intervals(num_seeds):
    result = _result(num_seeds)
    text = report.markdown(result, report.compute_stats(result, reps=200), "ppo-jax sweep ...")
    assert f"**Warning: {num_seeds} seed(s) per setting are too few" in text
    rows = [line for line in text.splitlines() if line.startswith("| 0 |") or line.startswith("| 1 |")]
    assert len(rows) == 2 and all("(no CI)" in row and "[" not in row for row in rows)
    assert "P(a run of" in text and "(no CI)" in text.split("P(a run of")[1]


def test_enough_seeds_show_intervals_and_no_warning():
    result = _result(report.MIN_SEEDS_FOR_INTERVALS)
    text = report.markdown(result, report.compute_stats(result, reps=200), "ppo-jax sweep ...")
    assert "Warning" not in text and "(no CI)" not in text
    assert report.too_few_seeds(report.MIN_SEEDS_FOR_INTERVALS) is None
