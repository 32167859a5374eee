"""The files of a ``ppo-jax pbt`` directory, from a ``PBTResult`` (IO only).

results.csv        member, update, env_steps, metric, value (the explored settings as setting.NAME)
lineage.csv        at every ready point: member, parent, whether it copied, the settings it got
pbt.json           final return per member, the best member, timings, devices, the command
report.md          final returns with IQM and intervals; the best member's lineage and schedule
curves.png         returns and explored settings of every member, the best line bold
best_schedule.yaml the best member's settings at each ready point (``train --schedule``)
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from ppo_jax.io import logs, stats
from ppo_jax.sweeps import CURVE_NAMES

SETTING_PREFIX = (
    "setting."  # results.csv's metric name of an explored setting (learning_rate is a metric too)
)


def write_dir(out: Path, result, command: str, extra: dict[str, Any], finished: bool = True):
    """Write every file; return the final returns' statistics (None while unfinished)."""
    out = Path(out)
    logs.write_atomic(out / "results.csv", results_csv(result))
    logs.write_atomic(out / "lineage.csv", lineage_csv(result))
    point = stats.point_stats(result.final_return[None])[0] if finished else None
    logs.write_summary(out / "pbt.json", summary(result, point, command, extra))
    logs.write_atomic(out / "report.md", markdown(result, point, command, extra.get("stopped")))
    plot(out / "curves.png", result)
    if finished:
        logs.write_atomic(out / "best_schedule.yaml", schedule_yaml(result, command))
    return point


def _num(x) -> str:
    x = float(x)
    return "" if not np.isfinite(x) else f"{x:.9g}"


def results_csv(result) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["member", "seed", "update", "env_steps", "metric", "value"])
    updates = result.env_steps // result.config.batch_size
    series = {name: result.curves[name] for name in CURVE_NAMES}
    series.update({SETTING_PREFIX + n: v for n, v in result.values.items()})
    for m, seed in enumerate(result.seeds):
        for t, (update, steps) in enumerate(zip(updates, result.env_steps)):
            for name, values in series.items():
                writer.writerow([m, seed, int(update), int(steps), name, _num(values[m, t])])
    return buf.getvalue()


def lineage_csv(result) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = list(result.ready_values)
    writer.writerow(["ready_point", "update", "member", "parent", "copied", *names])
    for k, update in enumerate(result.ready_updates):
        for m in range(len(result.seeds)):
            parent = int(result.parents[k, m])
            values = [_num(result.ready_values[n][k, m]) for n in names]
            writer.writerow([k, int(update), m, parent, int(parent != m), *values])
    return buf.getvalue()


def _interval(i) -> dict:
    return {"value": i.value, "low": i.low, "high": i.high}


def summary(result, point, command: str, extra: dict) -> dict:
    best = result.best
    out = {
        "kind": "pbt",
        "command": command,
        "env_id": result.config.env_id,
        "explore": [e.describe() for e in result.explores],
        "population": {**result.population.__dict__},
        "seeds": result.seeds,
        "env_steps_per_member": int(result.env_steps[-1]) if len(result.env_steps) else 0,
        "final_return": [None if not np.isfinite(x) else float(x) for x in result.final_return],
        "best_member": best,
        "best_final_return": float(result.final_return[best]),
        "best_schedule": [{"update": u, **s} for u, s in result.schedule()],
        "nonfinite_members": int((result.nonfinite != 0).sum()),
        "compile_seconds": result.compile_seconds,
        "train_seconds": result.train_seconds,
        "env_steps_per_second": result.steps_per_second,
        "num_devices": result.num_devices,
        **extra,
    }
    if point is not None:
        out["final_return_stats"] = {
            "iqm": _interval(point.iqm),
            "mean": _interval(point.mean),
            "median": _interval(point.median),
            "worst": float(np.nanmin(result.final_return)) if point.runs else None,
            "missing": point.missing,
        }
    return out


def _fmt(i) -> str:
    return f"{i.value:.1f} [{i.low:.1f}, {i.high:.1f}]"


def markdown(result, point, command: str, stopped) -> str:
    lines = [f"# PBT: {result.config.env_id}, a population of {len(result.seeds)}", "", f"`{command}`", ""]
    if stopped:
        lines += [
            f"**Partial: stopped ({stopped['reason']}) after update {stopped['update']}; final returns "
            f"are empty until the run ends.**",
            "",
        ]
    explored = ", ".join(f"`{e.describe()}`" for e in result.explores)
    p = result.population
    lines += [
        f"Explored {explored}; every {p.ready} updates the bottom {p.fraction:g} copied a member of the top "
        f"{p.fraction:g} and perturbed (×0.8/×1.25, resampled with probability {p.resample:g}); members "
        f"started from {'the config' if p.init == 'config' else 'uniform draws'}. Seeds "
        f"{result.seeds[0]}–{result.seeds[-1]}, {int(result.env_steps[-1]):,} env steps per member.",
        "",
    ]
    if point is not None:
        finals = np.sort(result.final_return[np.isfinite(result.final_return)])
        lines += [
            "## Final returns (mean of the episodes in the last 5% of updates; 95% bootstrap intervals)",
            "",
            "| IQM | mean | median | worst | best | members ≥ median |",
            "|---|---|---|---|---|---|",
            f"| {_fmt(point.iqm)} | {_fmt(point.mean)} | {_fmt(point.median)} | {finals[0]:.1f} | "
            f"{finals[-1]:.1f} | {(finals >= np.median(finals)).sum()} of {len(result.seeds)} |",
            "",
            "Members that share an ancestor are not independent runs: the intervals describe this population's "
            "final members, not repeated PBT runs.",
            "",
        ]
        lines += _lineage_table(result)
    return "\n".join(lines) + "\n"


def _lineage_table(result) -> list[str]:
    best = result.best
    names = list(result.values)
    lines = [
        f"## The best final member: {best} (seed {result.seeds[best]}), final return "
        f"{result.final_return[best]:.1f}",
        "",
        "Its line, followed back through its parents (`best_schedule.yaml` replays it with "
        "`ppo-jax train CONFIG --schedule`):",
        "",
        "| from update | trained as member | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for (update, member), (_, settings) in zip(result.lineage(), result.schedule()):
        lines.append(f"| {update} | {member} | " + " | ".join(f"{settings[n]:.4g}" for n in names) + " |")
    return lines + [""]


def schedule_yaml(result, command: str) -> str:
    best = result.best
    lines = [
        f"# PBT schedule: the settings of member {best} (seed {result.seeds[best]}, final return "
        f"{result.final_return[best]:.1f}) at every ready point, followed back through its ancestors.",
        f"# from: {command}",
        "# replay: ppo-jax train CONFIG --schedule THIS_FILE (piecewise constant from each update on)",
        f"env_id: {result.config.env_id}",
        f"num_updates: {result.config.num_updates}",
        "schedule:",
    ]
    for update, settings in result.schedule():
        lines.append(f"  - update: {update}")
        lines += [f"    {name}: {value:.9g}" for name, value in settings.items()]
    return "\n".join(lines) + "\n"


def _line_curve(result, values: np.ndarray) -> np.ndarray:
    """``values[member, log point]`` along the best member's line (its ancestor at each log point)."""
    updates = result.env_steps // result.config.batch_size
    out = np.empty(values.shape[1])
    line = result.lineage()
    for t, update in enumerate(updates):
        member = [m for start, m in line if start < update][-1]
        out[t] = values[member, t]
    return out


def plot(path: Path, result) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 1 + len(result.values)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    steps = result.env_steps
    series = [("episode_return", result.curves["episode_return"], False)]
    series += [(n, result.values[n], e.log) for n, e in zip(result.values, result.explores)]
    for ax, (name, values, log) in zip(axes[0], series):
        for m in range(values.shape[0]):
            ax.plot(steps, values[m], color="tab:blue", alpha=0.25, lw=0.8)
        if len(steps):
            ax.plot(
                steps, _line_curve(result, values), color="black", lw=2.2, label="best final member's line"
            )
        for update in result.ready_updates:
            ax.axvline(update * result.config.batch_size, color="grey", lw=0.3, alpha=0.4)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("env steps per member")
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1e3:g}k" if x >= 1e4 else f"{x:g}")
        ax.set_title(name if name == "episode_return" else f"{name} (explored)")
    axes[0][0].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"PBT {result.config.env_id}: {len(result.seeds)} members (thin), the best line bold")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    logs.write_atomic(path, buf.getvalue())


def summary_lines(result, point) -> list[str]:
    finals = result.final_return
    best = result.best
    return [
        f"final return IQM {_fmt(point.iqm)} · worst {np.nanmin(finals):.1f} · best {finals[best]:.1f} "
        f"(member {best})",
        f"train {result.train_seconds:.1f} s · {result.steps_per_second:,.0f} env steps/s · "
        f"compile {result.compile_seconds:.1f} s",
    ]
