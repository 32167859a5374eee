"""Run outputs: metrics.csv, TensorBoard, W&B, summary.json, curves.png, the config.

Host-side only: these functions take numpy arrays after a chunk has finished.
Files are written to a temporary name and renamed, so a crash never leaves a
half-written file under the final name.

Per-update metrics go through one small interface, ``Logger``: the CSV always,
TensorBoard event files unless turned off, Weights & Biases when asked for.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Protocol

import numpy as np
import yaml

from ppo_jax.train import METRIC_NAMES

FINAL_FRACTION = 0.05


def write_atomic(path: Path, data: bytes | str) -> None:
    path = Path(path)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        with os.fdopen(fd, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_config(path: Path, config_dict: dict[str, Any]) -> None:
    write_atomic(path, yaml.safe_dump(config_dict, sort_keys=False))


class Logger(Protocol):
    """Where per-update metrics go. ``metrics[name]`` is ``[seeds, updates]``
    for the updates ``first_update, first_update + 1, ...`` of one chunk."""

    def log_hparams(self, hparams: Mapping[str, Any]) -> None: ...

    def log(self, first_update: int, metrics: Mapping[str, np.ndarray]) -> None: ...

    def close(self) -> None: ...


class MetricsCSV:
    """``metrics.csv``: one row per update per seed, appended chunk by chunk."""

    columns = ("seed", "update", "env_steps") + METRIC_NAMES

    def __init__(self, path: Path, seeds: list[int], keep_before: Optional[int] = None):
        """Start a new file, or with ``keep_before`` keep the rows of updates
        ``< keep_before`` of an existing one (a resumed run) and append after them."""
        self.path = Path(path)
        self.seeds = seeds
        rows = [self.columns]
        if keep_before is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                header, *earlier = csv.reader(f)
            rows = [header] + [r for r in earlier if r and int(r[1]) < keep_before]
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        write_atomic(self.path, buffer.getvalue())

    def log_hparams(self, hparams: Mapping[str, Any]) -> None:
        """Nothing: the settings are in ``config.yaml``."""

    def log(self, first_update: int, metrics: Mapping[str, np.ndarray]) -> None:
        self.append(first_update, metrics)

    def close(self) -> None:
        pass

    def append(self, first_update: int, metrics: Mapping[str, np.ndarray]) -> None:
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


def read_metrics(path: Path, seeds: list[int], num_updates: int) -> dict[str, np.ndarray]:
    """The first ``num_updates`` updates of ``metrics.csv`` as ``[seeds, updates]`` arrays."""
    out = {name: np.full((len(seeds), num_updates), np.nan) for name in ("env_steps",) + METRIC_NAMES}
    index = {seed: i for i, seed in enumerate(seeds)}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        for row in reader:
            update = int(row["update"])
            if update < num_updates and int(row["seed"]) in index:
                i = index[int(row["seed"])]
                for name in out:
                    out[name][i, update] = float(row[name])
    out["env_steps"] = out["env_steps"].astype(np.int64)
    return out


class TensorBoardLogger:
    """TensorBoard event files, one run per seed: ``<logdir>/seed_<s>/``.

    ``tensorboard --logdir RUN_DIR`` overlays the seeds. The x axis is env
    steps per seed. ``purge_step`` (a resumed run) hides events at or after it
    that the interrupted run wrote past its checkpoint.
    """

    TAGS = {
        "episode_return": "charts/episode_return",
        "episode_length": "charts/episode_length",
        "policy_loss": "losses/policy_loss",
        "value_loss": "losses/value_loss",
        "entropy": "losses/entropy",
        "approx_kl": "losses/approx_kl",
        "clip_fraction": "losses/clip_fraction",
        "explained_variance": "losses/explained_variance",
        "grad_norm": "losses/grad_norm",
        "learning_rate": "charts/learning_rate",
        "steps_per_second": "charts/SPS",
    }

    def __init__(self, logdir: Path, seeds: list[int], purge_step: Optional[int] = None):
        from tensorboardX import SummaryWriter

        self.seeds = seeds
        self.writers = [
            SummaryWriter(str(Path(logdir) / f"seed_{seed}"), purge_step=purge_step, flush_secs=30)
            for seed in seeds
        ]

    def log_hparams(self, hparams: Mapping[str, Any]) -> None:
        from tensorboardX.summary import hparams as hparams_summary

        for seed, writer in zip(self.seeds, self.writers):
            values = {k: _hparam_value(v) for k, v in {**hparams, "seed": seed}.items()}
            metrics = {self.TAGS["episode_return"]: float("nan")}
            for summary in hparams_summary(values, metrics):
                writer.file_writer.add_summary(summary)
            text = "\n".join(f"    {k}: {v}" for k, v in values.items())
            writer.add_text("config", text, 0)

    def log(self, first_update: int, metrics: Mapping[str, np.ndarray]) -> None:
        from tensorboardX.proto.summary_pb2 import Summary

        # One event per update holding every tag: ~6x less host time than add_scalar per value.
        names = [(name, tag) for name, tag in self.TAGS.items() if name in metrics]
        values = np.stack([np.asarray(metrics[name], np.float64) for name, _ in names])  # [tags, seeds, updates]
        for i, writer in enumerate(self.writers):
            for j in range(values.shape[2]):
                summary = Summary(value=[
                    Summary.Value(tag=tag, simple_value=values[k, i, j])
                    for k, (_, tag) in enumerate(names)
                    if np.isfinite(values[k, i, j])  # no finished episode: no point rather than NaN
                ])
                writer.file_writer.add_summary(summary, int(metrics["env_steps"][i, j]))

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def _hparam_value(value):
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return str(list(value))
    if isinstance(value, dict):
        return str(value)
    return value


class WandbLogger:
    """Weights & Biases: the mean over seeds of every metric, and each seed's
    return. ``mode="offline"`` writes under ``<run_dir>/wandb`` without a network."""

    def __init__(self, run_dir: Path, seeds: list[int], name: str, mode: str, project: str = "ppo_jax"):
        import wandb

        self.seeds = seeds
        self.run = wandb.init(project=project, name=name, dir=str(run_dir), mode=mode, reinit=True)

    def log_hparams(self, hparams: Mapping[str, Any]) -> None:
        self.run.config.update({k: _hparam_value(v) for k, v in hparams.items()}, allow_val_change=True)

    def log(self, first_update: int, metrics: Mapping[str, np.ndarray]) -> None:
        for j in range(metrics["env_steps"].shape[1]):
            row: dict[str, float] = {"env_steps": int(metrics["env_steps"][0, j])}
            for name, tag in TensorBoardLogger.TAGS.items():
                if name in metrics:
                    column = np.asarray(metrics[name][:, j], np.float64)
                    if np.isfinite(column).any():
                        row[tag] = float(np.nanmean(column))
            for i, seed in enumerate(self.seeds):
                value = float(metrics["episode_return"][i, j])
                if np.isfinite(value):
                    row[f"episode_return/seed_{seed}"] = value
            self.run.log(row, step=first_update + j)

    def close(self) -> None:
        self.run.finish()


def _fmt(value) -> str:
    value = float(value)
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def final_window(num_updates: int, fraction: float = FINAL_FRACTION) -> int:
    """How many of the last updates count for the final return (at least one)."""
    return max(1, int(round(fraction * num_updates)))


def final_returns(metrics: dict[str, np.ndarray], fraction: float = FINAL_FRACTION) -> list[float]:
    """Per seed: mean return of the episodes that finished in the last ``fraction``
    of updates (episode-weighted; NaN for a seed with no finished episode there)."""
    returns = np.asarray(metrics["episode_return"], np.float64)
    counts = np.asarray(metrics["episodes"], np.float64)
    k = final_window(returns.shape[1], fraction)
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
