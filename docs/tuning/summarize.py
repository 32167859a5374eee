"""Per-seed view of a sweep directory, against a preset's bars.

``ppo-jax sweep`` writes IQM/mean/median with confidence intervals; a preset is
also judged by its worst seeds, so this prints, per grid point, every seed's
final return, the IQM (mean of the middle 50%, as rliable's ``aggregate_iqm``),
the mean, the min and how many seeds reach the per-seed bar T.

    python docs/tuning/summarize.py runs/SWEEP_DIR --bar 475 --iqm-bar 495

Reads only ``results.csv`` and ``sweep.json``; prints markdown.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import scipy.stats


def load(sweep_dir: Path):
    """{grid point: (settings, {seed: final return})} from a sweep's results.csv."""
    points: dict[int, tuple[dict, dict]] = {}
    with open(sweep_dir / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        fixed = {"grid_point", "seed", "env_steps", "metric", "value"}
        for row in reader:
            if row["metric"] != "final_return":
                continue
            p = int(row["grid_point"])
            settings = {k: v for k, v in row.items() if k not in fixed}
            points.setdefault(p, (settings, {}))[1][int(row["seed"])] = float(row["value"])
    return points


def iqm(values: np.ndarray) -> float:
    return float(scipy.stats.trim_mean(values, proportiontocut=0.25))


def summarize(sweep_dir: Path, bar: float, iqm_bar: float, allowed_misses: int) -> str:
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    points = load(sweep_dir)
    lines = [f"### {sweep_dir.name}", "", f"`{meta.get('command', '?')}`", ""]
    lines.append(
        f"T = {bar:g} (each seed), IQM bar = {iqm_bar:g}; a point passes with at most "
        f"{allowed_misses} seed(s) below T and IQM ≥ the bar. Rows: most seeds ≥ T first, then by IQM."
    )
    lines.append("")
    lines.append("| point | settings | seeds | IQM | mean | min | count ≥ T | passes | per seed (sorted) |")
    lines.append("|---|---|---|---:|---:|---:|---:|---|---|")

    def rank(p):  # the selection rule: most seeds >= T first, then the IQM
        v = np.array(list(points[p][1].values()))
        v = v[np.isfinite(v)]
        return (-int((v >= bar).sum()), -iqm(v) if len(v) else np.inf)

    order = sorted(points, key=rank)
    for p in order:
        settings, finals = points[p]
        seeds = sorted(finals)
        v = np.array([finals[s] for s in seeds])
        ok = np.isfinite(v)
        count = int((v[ok] >= bar).sum())
        value_iqm = iqm(v[ok]) if ok.any() else float("nan")
        passes = (len(v) - count) <= allowed_misses and value_iqm >= iqm_bar
        label = ", ".join(f"{k}={val}" for k, val in settings.items()) or "(preset)"
        span = (
            f"{seeds[0]}–{seeds[-1]}"
            if seeds == list(range(seeds[0], seeds[-1] + 1))
            else ",".join(map(str, seeds))
        )
        per_seed = ", ".join(f"{x:.1f}" for x in np.sort(v))
        lines.append(
            f"| {p} | {label} | {span} | {value_iqm:.1f} | {np.nanmean(v):.1f} | {np.nanmin(v):.1f} | "
            f"{count}/{len(v)} | {'yes' if passes else 'no'} | {per_seed} |"
        )
    lines.append("")
    lines.append(
        f"{meta.get('runs', '?')} runs of {meta.get('env_steps', 0):,} env steps on {meta.get('device', '?')}"
        f" ({meta.get('platform', '?')}), jax {meta.get('jax_version', '?')}: compile "
        f"{meta.get('compile_seconds', float('nan')):.1f} s, train {meta.get('train_seconds', float('nan')):.1f} s, "
        f"{meta.get('steps_per_second', float('nan')):,.0f} env steps/s in all; finished {meta.get('finished_at', '?')}."
    )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dirs", nargs="+", type=Path)
    parser.add_argument("--bar", type=float, required=True, help="per-seed bar T")
    parser.add_argument("--iqm-bar", type=float, required=True)
    parser.add_argument("--allowed-misses", type=int, default=1, help="seeds allowed below T (default 1)")
    args = parser.parse_args(argv)
    for d in args.sweep_dirs:
        sys.stdout.write(summarize(d, args.bar, args.iqm_bar, args.allowed_misses) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
