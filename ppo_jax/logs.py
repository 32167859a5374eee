"""Run-directory outputs: metrics.csv, summary.json, curves.png, the config.

Host-side only: these functions take numpy arrays after a chunk has finished.
Files are written to a temporary name and renamed, so a crash never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import yaml

from ppo_jax.train import METRIC_NAMES

FINAL_FRACTION = 0.05


def write_atomic(path: Path, data: bytes | str) -> None:
    path = Path(path)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_config(path: Path, config_dict: dict[str, Any]) -> None:
    write_atomic(path, yaml.safe_dump(config_dict, sort_keys=False))


class MetricsCSV:
    """``metrics.csv``: one row per update per seed, appended chunk by chunk."""

    columns = ("seed", "update", "env_steps") + METRIC_NAMES

    def __init__(self, path: Path, seeds: list[int]):
        self.path = Path(path)
        self.seeds = seeds
        with open(self.path, "w", newline="") as f:
            csv.writer(f).writerow(self.columns)

    def append(self, first_update: int, metrics: dict[str, np.ndarray]) -> None:
        """Add ``metrics[name][seed, update]`` for updates ``first_update, ...``."""
        num_updates = next(iter(metrics.values())).shape[1]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for i, seed in enumerate(self.seeds):
            for j in range(num_updates):
                row = [seed, first_update + j, int(metrics["env_steps"][i, j])]
                row += [_fmt(metrics[name][i, j]) for name in METRIC_NAMES]
                writer.writerow(row)
        with open(self.path, "a", newline="") as f:
            f.write(buffer.getvalue())
            f.flush()


def _fmt(value) -> str:
    value = float(value)
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def final_returns(metrics: dict[str, np.ndarray], fraction: float = FINAL_FRACTION) -> list[float]:
    """Per seed: mean return of the episodes that finished in the last ``fraction``
    of updates (episode-weighted; NaN for a seed with no finished episode there)."""
    returns = np.asarray(metrics["episode_return"], np.float64)
    counts = np.asarray(metrics["episodes"], np.float64)
    k = max(1, int(round(fraction * returns.shape[1])))
    total = np.nansum(np.where(counts[:, -k:] > 0, returns[:, -k:] * counts[:, -k:], 0.0), axis=1)
    n = counts[:, -k:].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return [float(x) for x in np.where(n > 0, total / n, np.nan)]


def recent_return(metrics: dict[str, np.ndarray], last: int = 10) -> float:
    """Mean over seeds of the episode-weighted return over the last updates given."""
    values = final_returns({k: v[:, -last:] for k, v in metrics.items()}, fraction=1.0)
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(_jsonable(summary), indent=2) + "\n")


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    """NaN-aware moving average over the last ``window`` points."""
    if window <= 1:
        return y
    valid = np.isfinite(y)
    values = np.where(valid, y, 0.0)
    csum = np.cumsum(np.insert(values, 0, 0.0))
    ccount = np.cumsum(np.insert(valid.astype(float), 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(0, idx - window)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (csum[idx] - csum[lo]) / (ccount[idx] - ccount[lo])
    return out


def plot_curves(path: Path, metrics: dict[str, np.ndarray], seeds: Iterable[int], title: str) -> None:
    """``curves.png``: episode return vs env steps (seeds faint, mean bold) and the losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = list(seeds)
    steps = np.asarray(metrics["env_steps"][0], np.float64)
    num_updates = len(steps)
    window = max(1, num_updates // 50)
    panels = [
        ("episode_return", "episode return"),
        ("policy_loss", "policy loss"),
        ("value_loss", "value loss"),
        ("entropy", "entropy"),
        ("approx_kl", "approx KL"),
        ("clip_fraction", "clip fraction"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), constrained_layout=True)
    for ax, (name, label) in zip(axes.flat, panels):
        data = np.asarray(metrics[name], np.float64)
        smoothed = np.stack([_smooth(row, window) for row in data])
        for i, row in enumerate(smoothed):
            ax.plot(steps, row, color="C0", alpha=0.25, linewidth=0.8,
                    label="each seed" if i == 0 else None)
        with np.errstate(invalid="ignore"), _quiet():
            mean = np.nanmean(smoothed, axis=0)
        ax.plot(steps, mean, color="C0", linewidth=2.2, label=f"mean of {len(seeds)} seeds")
        ax.set_title(label)
        ax.set_xlabel("env steps (per seed)")
        ax.grid(alpha=0.3)
        if name == "episode_return":
            ax.legend(loc="lower right")
    fig.suptitle(f"{title}   (moving average over {window} updates)")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


class _quiet:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
