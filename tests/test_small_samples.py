"""With too few seeds per setting, report.md and the console say so and print no
interval as if it were confident."""

import numpy as np
import pytest

from ppo_jax.config import PPOConfig
from ppo_jax.io import report
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
    rows = [line for line in text.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2 and all("(no CI)" in row and "[" not in row for row in rows)
    assert "P(a run of" in text and "(no CI)" in text.split("P(a run of")[1]


def test_enough_seeds_show_intervals_and_no_warning():
    result = _result(report.MIN_SEEDS_FOR_INTERVALS)
    text = report.markdown(result, report.compute_stats(result, reps=200), "ppo-jax sweep ...")
    assert "Warning" not in text and "(no CI)" not in text
    assert report.too_few_seeds(report.MIN_SEEDS_FOR_INTERVALS) is None


def test_ranks_grid_points_worst_seed_and_bar():
    """Rank and grid point are two columns; each row has its worst seed and, with --bar,
    how many seeds reached it; the best-by-IQM line names grid points, not ranks."""
    result = _result(report.MIN_SEEDS_FOR_INTERVALS)
    final = result.final_return.astype(np.float64)
    summary = report.compute_stats(result, reps=200)
    text = report.markdown(result, summary, "ppo-jax sweep ...", bar=200.0)
    assert "| rank | grid point | learning_rate |" in text and "| ≥ 200 |" in text
    for rank, p in enumerate(summary.ranking, start=1):
        seed = int(np.argmin(final[p]))
        row = next(line for line in text.splitlines() if line.startswith(f"| {rank} | {p} |"))
        assert f"{final[p, seed]:.1f} (seed {seed})" in row
        assert f"| {int((final[p] >= 200).sum())}/{len(result.seeds)} |" in row
    best, second = summary.comparison.best, summary.comparison.second
    assert f"grid point {best} (" in text and f"over grid point {second} (" in text
    assert "#" not in text.split("\n", 1)[1]  # below the title, no "#N" that reads as a rank
    point = report.summary_dict(result, summary, {}, bar=200.0)["points"][best]
    assert point["rank"] == 1 and point["worst_seed"]["final_return"] == pytest.approx(final[best].min())
    assert point["seeds_at_or_above_bar"] == int((final[best] >= 200).sum())


def test_a_tie_is_reported_as_a_tie():
    result = _result(report.MIN_SEEDS_FOR_INTERVALS)
    result.final_return[:] = 500.0  # every run of both points at the ceiling
    summary = report.compute_stats(result, reps=200)
    assert report.is_tie(summary)
    text = report.markdown(result, summary, "ppo-jax sweep ...")
    assert "a tie** between grid point" in text and "both at IQM 500.0" in text
    assert "P(a run of" not in text
    assert report.summary_dict(result, summary, {})["probability_of_improvement"]["tie"] is True
