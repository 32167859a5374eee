"""Aggregate statistics over seeds with stratified-bootstrap confidence intervals.

Host-side numpy; the bootstrap is rliable's (``get_interval_estimates``). Scores
are arranged as rliable expects, ``[runs, tasks]``, with one task (the env):

- mean and IQM are rliable's ``aggregate_mean`` / ``aggregate_iqm``;
- the median is the median over runs (rliable's ``aggregate_median`` is the
  median over tasks of per-task means, which for one task is the mean);
- the probability of improvement P(X > Y) is rliable's Mann-Whitney estimate.

Intervals are 95% percentile intervals of the bootstrap, with a fixed random
state so that a report is reproducible.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

BOOTSTRAP_REPS = 2000
CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


NAN_INTERVAL = Interval(float("nan"), float("nan"), float("nan"))


@dataclasses.dataclass(frozen=True)
class PointStats:
    """Statistics of one grid point's final scores."""

    runs: int  # runs with a score
    missing: int  # runs without one (no episode finished in the final window)
    mean: Interval
    median: Interval
    iqm: Interval


@dataclasses.dataclass(frozen=True)
class Comparison:
    """P(a run of grid point ``best`` scores higher than one of ``second``)."""

    best: int
    second: int
    probability: Interval


def _rng(seed: int) -> np.random.RandomState:
    return np.random.RandomState(seed)


def _estimates(score_dict, func, reps: int, seed: int):
    """rliable's stratified bootstrap, quiet about arch's ``random_state`` deprecation
    (rliable 1.2 still passes one; the resamples are the same)."""
    import warnings

    from rliable import library

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
        return library.get_interval_estimates(
            score_dict, func, reps=reps, confidence_interval_size=CONFIDENCE, random_state=_rng(seed)
        )


def _aggregates(scores: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.aggregate_mean(scores), np.median(scores), metrics.aggregate_iqm(scores)])


def point_stats(scores: np.ndarray, reps: int = BOOTSTRAP_REPS, seed: int = 0) -> list[PointStats]:
    """Mean, median and IQM with bootstrap CIs for each row of ``scores`` [points, seeds].

    NaN scores (runs that finished no episode in the final window) are left out
    and counted in ``missing``.
    """
    out = []
    for row in np.asarray(scores, np.float64):
        valid = row[np.isfinite(row)]
        if len(valid) == 0:
            out.append(PointStats(0, len(row), NAN_INTERVAL, NAN_INTERVAL, NAN_INTERVAL))
            continue
        values, intervals = _estimates({"p": valid[:, None]}, _aggregates, reps, seed)
        v, ci = values["p"], intervals["p"]
        cis = [Interval(float(v[i]), float(ci[0, i]), float(ci[1, i])) for i in range(3)]
        out.append(PointStats(len(valid), len(row) - len(valid), *cis))
    return out


def ranking(stats: Sequence[PointStats]) -> list[int]:
    """Grid points from best to worst IQM; points without a score last."""
    key = lambda i: (-stats[i].iqm.value if np.isfinite(stats[i].iqm.value) else np.inf, i)
    return sorted(range(len(stats)), key=key)


def probability_of_improvement(
    scores: np.ndarray, stats: Sequence[PointStats], reps: int = BOOTSTRAP_REPS, seed: int = 0
) -> Optional[Comparison]:
    """P(best > second best) by IQM, with a bootstrap CI; None with fewer than two scored points."""
    from rliable import metrics

    order = [i for i in ranking(stats) if stats[i].runs > 0]
    if len(order) < 2:
        return None
    best, second = order[:2]
    x, y = (np.asarray(scores[i], np.float64) for i in (best, second))
    x, y = x[np.isfinite(x)][:, None], y[np.isfinite(y)][:, None]
    values, intervals = _estimates({"pair": [x, y]}, metrics.probability_of_improvement, reps, seed)
    ci = np.asarray(intervals["pair"]).reshape(2)
    return Comparison(best, second, Interval(float(values["pair"]), float(ci[0]), float(ci[1])))


def _iqm_over_runs(scores: np.ndarray) -> np.ndarray:
    """IQM over runs (axis 0) of ``[runs, 1, points]``, one value per point."""
    import scipy.stats

    return scipy.stats.trim_mean(scores[:, 0, :], proportiontocut=0.25, axis=0)


def curve_bands(curves: np.ndarray, reps: int = BOOTSTRAP_REPS, seed: int = 0):
    """IQM over seeds of ``curves`` [points, seeds, T] with a 95% CI band.

    The bootstrap resamples whole runs (a run's curve stays together). A log
    point where a run has no value (no episode finished in it) takes that run's
    previous value; points before a run's first value are NaN in the result.

    Returns:
      (iqm, low, high), each ``[points, T]``.
    """
    curves = _carry_forward(np.asarray(curves, np.float64))
    num_points, _, length = curves.shape
    iqm, low, high = (np.full((num_points, length), np.nan) for _ in range(3))
    for p in range(num_points):
        known = np.isfinite(curves[p]).all(axis=0)
        if not known.any():
            continue
        data = curves[p][:, None, known]
        values, intervals = _estimates({"p": data}, _iqm_over_runs, reps, seed)
        iqm[p, known] = values["p"]
        low[p, known], high[p, known] = intervals["p"][0], intervals["p"][1]
    return iqm, low, high


def _carry_forward(curves: np.ndarray) -> np.ndarray:
    out = curves.copy()
    for t in range(1, out.shape[-1]):
        gap = ~np.isfinite(out[..., t])
        out[..., t] = np.where(gap, out[..., t - 1], out[..., t])
    return out
