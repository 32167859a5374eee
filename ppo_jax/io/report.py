"""A sweep directory: results.csv (tidy), curves.png, report.md, sweep.json, config.yaml.

Host-side only: these functions take a finished ``SweepResult``. Every file is
written to a temporary name and renamed.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from ppo_jax.cli import console
from ppo_jax.io import logs, stats
from ppo_jax.metrics import CURVE_NAMES, describe_nonfinite

if TYPE_CHECKING:  # IO never imports the trainer: the result is only read here
    from ppo_jax.sweeps import SweepResult


@dataclasses.dataclass(frozen=True)
class SweepStats:
    points: list[stats.PointStats]
    ranking: list[int]
    comparison: Optional[stats.Comparison]
    curve_iqm: np.ndarray  # [points, log points]
    curve_low: np.ndarray
    curve_high: np.ndarray
    reps: int


def compute_stats(result: SweepResult, reps: int = stats.BOOTSTRAP_REPS) -> SweepStats:
    points = stats.point_stats(result.final_return, reps=reps)
    iqm, low, high = stats.curve_bands(result.curves["episode_return"], reps=reps)
    return SweepStats(
        points=points,
        ranking=stats.ranking(points),
        comparison=stats.probability_of_improvement(result.final_return, points, reps=reps),
        curve_iqm=iqm,
        curve_low=low,
        curve_high=high,
        reps=reps,
    )


def label(result: SweepResult, index: int) -> str:
    point = result.points[index]
    return ", ".join(f"{k}={_num(v)}" for k, v in point.items()) or "config"


def _num(value: Any) -> str:
    if value is None:
        return "null"
    return f"{value:g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------
# results.csv
# ---------------------------------------------------------------------------


def tidy_columns(result: SweepResult) -> tuple[str, ...]:
    return ("grid_point", *result.axes, "seed", "env_steps", "metric", "value")


def write_results(path: Path, result: SweepResult) -> None:
    """One row per (grid point, seed, env steps, metric): ``pandas.read_csv`` reads it as is.

    Curve metrics (``CURVE_NAMES``) are given at the end of each log point;
    ``final_return`` once per run, at the last env step (empty when the run
    finished no episode in its final 5%).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(tidy_columns(result))
    last = int(result.env_steps[-1])
    for p, point in enumerate(result.points):
        settings = [_num(v) for v in point.values()]
        for s, seed in enumerate(result.seeds):
            head = [p, *settings, seed]
            for t, steps in enumerate(result.env_steps):
                for name in CURVE_NAMES:
                    writer.writerow([*head, int(steps), name, _value(result.curves[name][p, s, t])])
            writer.writerow([*head, last, "final_return", _value(result.final_return[p, s])])
    logs.write_atomic(path, buffer.getvalue())


def _value(x) -> str:
    """Shortest text that reads back as the same float32; empty for NaN."""
    x = np.float32(x)
    if np.isnan(x):
        return ""
    return str(int(x)) if np.isfinite(x) and float(x).is_integer() and abs(x) < 2**24 else str(x)


# ---------------------------------------------------------------------------
# curves.png
# ---------------------------------------------------------------------------


def plot(path: Path, result: SweepResult, summary: SweepStats, title: str) -> None:
    """Learning curves (IQM over seeds, 95% CI band) and final returns per grid point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num_points = len(result.points)
    fig, (curves_ax, final_ax) = plt.subplots(
        1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [3, 2]}, constrained_layout=True
    )
    colors = plt.get_cmap("tab10" if num_points <= 10 else "viridis")
    color = lambda p: colors(p % 10) if num_points <= 10 else colors(p / max(num_points - 1, 1))
    steps = np.asarray(result.env_steps, np.float64)
    for p in range(num_points):
        curves_ax.fill_between(
            steps, summary.curve_low[p], summary.curve_high[p], color=color(p), alpha=0.2, lw=0
        )
        curves_ax.plot(steps, summary.curve_iqm[p], color=color(p), lw=1.8, label=label(result, p))
    curves_ax.set_xlabel("env steps (per run)")
    logs.step_axis(curves_ax)
    curves_ax.set_ylabel("episode return")
    curves_ax.set_title(f"IQM over {len(result.seeds)} seeds, 95% bootstrap CI")
    curves_ax.grid(alpha=0.3)
    if num_points <= 12:
        curves_ax.legend(fontsize=8, loc="best")

    rng = np.random.default_rng(0)
    for p in range(num_points):
        scores = result.final_return[p]
        jitter = rng.uniform(-0.15, 0.15, size=scores.shape)
        final_ax.scatter(scores, p + jitter, s=10, color=color(p), alpha=0.45, lw=0)
        iqm = summary.points[p].iqm
        if np.isfinite(iqm.value):
            final_ax.errorbar(
                iqm.value,
                p,
                xerr=[[iqm.value - iqm.low], [iqm.high - iqm.value]],
                fmt="o",
                color=color(p),
                ms=6,
                capsize=4,
                lw=2,
            )
    final_ax.set_yticks(range(num_points))
    final_ax.set_yticklabels([label(result, p) for p in range(num_points)], fontsize=8)
    final_ax.invert_yaxis()
    final_ax.set_xlabel("final return (last 5% of training)")
    final_ax.set_title("IQM with 95% CI; dots: seeds")
    final_ax.grid(alpha=0.3, axis="x")
    fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    logs.write_atomic(path, buffer.getvalue())


# ---------------------------------------------------------------------------
# report.md and sweep.json
# ---------------------------------------------------------------------------


def worst_seed(result: SweepResult, point: int) -> Optional[tuple[int, float]]:
    """``(seed, final return)`` of the grid point's lowest-scoring run; None if none scored."""
    row = np.asarray(result.final_return[point], np.float64)
    if not np.isfinite(row).any():
        return None
    s = int(np.nanargmin(row))
    return result.seeds[s], float(row[s])


def seeds_at_or_above(result: SweepResult, point: int, bar: float) -> int:
    """How many of the grid point's runs ended with a final return ≥ ``bar`` (unscored runs do not)."""
    row = np.asarray(result.final_return[point], np.float64)
    return int((np.isfinite(row) & (row >= bar)).sum())


def is_tie(summary: SweepStats) -> bool:
    """Whether the best two grid points have the same IQM: no order between them to report."""
    c = summary.comparison
    return c is not None and summary.points[c.best].iqm.value == summary.points[c.second].iqm.value


def summary_dict(
    result: SweepResult, summary: SweepStats, extra: dict[str, Any], bar: Optional[float] = None
) -> dict[str, Any]:
    points = []
    for p, point in enumerate(result.points):
        st = summary.points[p]
        worst = worst_seed(result, p)
        points.append(
            {
                "grid_point": p,
                "rank": summary.ranking.index(p) + 1,
                "settings": point,
                "final_return": result.final_return[p].tolist(),
                "runs_scored": st.runs,
                **{name: dataclasses.asdict(getattr(st, name)) for name in ("mean", "median", "iqm")},
                "worst_seed": None if worst is None else {"seed": worst[0], "final_return": worst[1]},
                **({} if bar is None else {"seeds_at_or_above_bar": seeds_at_or_above(result, p, bar)}),
                "nonfinite_runs": int((result.nonfinite[p] != 0).sum()),
            }
        )
    comparison = None
    if summary.comparison is not None:
        c = summary.comparison
        comparison = {
            "best": c.best,
            "second": c.second,
            "tie": is_tie(summary),
            **dataclasses.asdict(c.probability),
        }
    return {
        "env_id": result.config.env_id,
        "grid": {k: list(v) for k, v in result.axes.items()},
        "seeds": result.seeds,
        "runs": result.num_runs,
        "env_steps": int(result.env_steps[-1]),
        "compiled_programs": 1,
        "devices": result.num_devices,
        "processes": result.num_processes,
        "compile_seconds": result.compile_seconds,
        "train_seconds": result.train_seconds,
        "steps_per_second": result.steps_per_second,
        "bootstrap_reps": summary.reps,
        "points": points,
        "ranking": summary.ranking,
        "bar": bar,
        "probability_of_improvement": comparison,
        **extra,
    }


def markdown(result: SweepResult, summary: SweepStats, command: str, bar: Optional[float] = None) -> str:
    """``report.md``: how the sweep ran, its table of grid points, the best one, and the runs
    that went non-finite."""
    warning = too_few_seeds(len(result.seeds))
    enough = warning is None
    lines = _header(result, summary, command, bar)
    if warning:
        lines += [f"**Warning: {warning}**", ""]
    lines += _table(result, summary, list(result.axes), enough, bar)
    lines += _best(result, summary, enough)
    lines += _nonfinite_runs(result)
    lines += [
        "![learning curves](curves.png)",
        "",
        "Files: `results.csv` (tidy: " + ", ".join(tidy_columns(result)) + "; "
        "`pandas.read_csv` reads it), `sweep.json` (these numbers), `config.yaml` (the settings shared by every run).",
        "",
    ]
    return "\n".join(lines)


def _header(result: SweepResult, summary: SweepStats, command: str, bar: Optional[float]) -> list[str]:
    return [
        f"# Sweep: {result.config.env_id}, {len(result.points)} grid point(s) × {len(result.seeds)} seeds",
        "",
        f"`{command}`",
        "",
        f"{result.num_runs} runs of {int(result.env_steps[-1]):,} env steps in one compiled program on "
        f"{result.num_devices} device(s) in {result.num_processes} process(es): train "
        f"{result.train_seconds:.1f} s, compile {result.compile_seconds:.1f} s, "
        f"{result.steps_per_second:,.0f} env steps/s in all. Seeds {result.seeds[0]}–{result.seeds[-1]} "
        "at every grid point.",
        "",
        "Final return = mean return of the episodes that finished in the last 5% of a run's updates. "
        f"Intervals: 95% stratified-bootstrap CIs over seeds (rliable, {summary.reps} resamples). "
        "IQM = mean of the middle 50% of runs. Rows from best to worst IQM: rank 1 is the best; "
        "'grid point' is the setting's index in the grid (sweep.json, results.csv)."
        + ("" if bar is None else f" '≥ {_num(bar)}': runs whose final return reached the bar (--bar)."),
        "",
    ]


def _best(result: SweepResult, summary: SweepStats, enough: bool) -> list[str]:
    """The best grid point by IQM, and its probability of improvement over the second (or a tie)."""
    c = summary.comparison
    if c is None:
        return []
    if is_tie(summary):
        iqm = summary.points[c.best].iqm.value
        return [
            f"**Best by IQM: a tie** between grid point {c.best} ({label(result, c.best)}) and grid point "
            f"{c.second} ({label(result, c.second)}), both at IQM {iqm:.{return_digits(iqm)}f}: these seeds "
            "do not order them.",
            "",
        ]
    return [
        f"**Best by IQM:** grid point {c.best} ({label(result, c.best)}). "
        f"**Probability of improvement** over grid point {c.second} ({label(result, c.second)}), the "
        f"second best: P(a run of {c.best} ends higher than a run of {c.second}) = "
        f"{format_interval(c.probability, 3, enough)} "
        "(0.5 = no difference; an interval that includes 0.5 does not separate them).",
        "",
    ]


def _nonfinite_runs(result: SweepResult, shown: int = 20) -> list[str]:
    """The runs that went non-finite: the first ``shown``, and how many more."""
    bad_runs = np.argwhere(result.nonfinite != 0)
    if not len(bad_runs):
        return []
    lines = ["Runs that went non-finite (they kept running; their scores are in the table):", ""]
    for p, s in bad_runs[:shown]:
        lines.append(
            f"- grid point {p} ({label(result, p)}), seed {result.seeds[s]}: non-finite "
            f"{describe_nonfinite(int(result.nonfinite[p, s]))} from update {int(result.first_nonfinite_update[p, s])}"
        )
    if len(bad_runs) > shown:
        lines.append(f"- … and {len(bad_runs) - shown} more (see sweep.json)")
    lines.append("")
    return lines


def _table(result: SweepResult, summary: SweepStats, axes, enough: bool, bar: Optional[float]) -> list[str]:
    """The rows of report.md's table, best IQM first."""
    head = ["rank", "grid point", *axes, "IQM [95% CI]", "mean [95% CI]", "median [95% CI]", "worst seed"]
    head += ([] if bar is None else [f"≥ {_num(bar)}"]) + ["runs", "non-finite"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|---:|---:|" + "---|" * len(axes) + "---:|" * (len(head) - 2 - len(axes)),
    ]
    for rank, p in enumerate(summary.ranking, start=1):
        st = summary.points[p]
        digits = return_digits(st.iqm.value)
        worst = worst_seed(result, p)
        cells = [str(rank), str(p), *(_num(v) for v in result.points[p].values())]
        cells += [format_interval(getattr(st, name), digits, enough) for name in ("iqm", "mean", "median")]
        cells.append("–" if worst is None else f"{worst[1]:.{return_digits(worst[1])}f} (seed {worst[0]})")
        if bar is not None:
            cells.append(f"{seeds_at_or_above(result, p, bar)}/{len(result.seeds)}")
        cells.append(f"{st.runs}" + (f" (+{st.missing} unscored)" if st.missing else ""))
        cells.append(str(int((result.nonfinite[p] != 0).sum())))
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


# Below this many seeds per setting a bootstrap interval is no more than the
# range of the few runs (1 seed: a point; 2 seeds: [min, max]), so it is not shown.
MIN_SEEDS_FOR_INTERVALS = 5


def too_few_seeds(num_seeds: int) -> Optional[str]:
    """A warning when ``num_seeds`` per setting are too few for intervals to mean anything; else None."""
    if num_seeds >= MIN_SEEDS_FOR_INTERVALS:
        return None
    return (
        f"{num_seeds} seed(s) per setting are too few for 95% intervals to mean anything (a bootstrap over "
        f"{num_seeds} run(s) gives at most their range), so none are shown and rankings are tentative. "
        f"Use --seeds {MIN_SEEDS_FOR_INTERVALS} or more (10 or more to separate close settings)."
    )


return_digits = console.return_digits  # one rule for the console, eval and the reports


def format_interval(interval: stats.Interval, digits: int = 1, with_interval: bool = True) -> str:
    """``value [low, high]``; ``value (no CI)`` when ``with_interval`` is False (too few seeds)."""
    if not np.isfinite(interval.value):
        return "–"
    if not with_interval:
        return f"{interval.value:.{digits}f} (no CI)"
    return f"{interval.value:.{digits}f} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]"


def write_sweep_dir(
    out: Path,
    result: SweepResult,
    command: str,
    extra: Optional[dict[str, Any]] = None,
    reps: int = stats.BOOTSTRAP_REPS,
    bar: Optional[float] = None,
) -> SweepStats:
    """Write every file of a sweep directory; return the statistics."""
    out = Path(out)
    summary = compute_stats(result, reps=reps)
    write_results(out / "results.csv", result)
    title = f"{result.config.env_id} — {len(result.points)} grid point(s) × {len(result.seeds)} seeds"
    plot(out / "curves.png", result, summary, title)
    logs.write_summary(
        out / "sweep.json", summary_dict(result, summary, {"command": command, **(extra or {})}, bar)
    )
    logs.write_atomic(out / "report.md", markdown(result, summary, command, bar))
    return summary
