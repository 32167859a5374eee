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
from typing import Any, Iterable, Literal, Mapping, Optional, Protocol, Sequence

import numpy as np
import yaml

from ppo_jax.io import events as tfevents
from ppo_jax.metrics import FINAL_FRACTION, METRIC_NAMES, PLOT_PANELS, TENSORBOARD_TAGS, final_window


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
        rows: list[Sequence[str]] = [self.columns]
        if keep_before is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                header, *earlier = csv.reader(f)
            # A file of an earlier version may lack newer columns: its rows get them empty.
            where = [header.index(c) if c in header else None for c in self.columns]
            rows += [
                ["" if k is None else r[k] for k in where] for r in earlier if r and int(r[1]) < keep_before
            ]
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
                row: list[Any] = [seed, first_update + j, int(metrics["env_steps"][i, j])]
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
                    out[name][i, update] = float(row.get(name) or "nan")  # empty: a newer column
    out["env_steps"] = out["env_steps"].astype(np.int64)
    return out


class TensorBoardLogger:
    """TensorBoard event files, one run per seed: ``<logdir>/seed_<s>/``.

    ``tensorboard --logdir RUN_DIR`` overlays the seeds. The x axis is env
    steps per seed. ``purge_step`` (a resumed run) hides events at or after it
    that the interrupted run wrote past its checkpoint.

    One object writes every seed's file, with no writer (thread, open file)
    per seed: a chunk's events are encoded at once (``tfevents.scalar_events``), their
    checksums computed for all records together (``tfevents.crc32c``), and each seed's
    bytes appended to its file, which is closed again (thousands of seeds
    would exhaust the open-file limit). tensorboardX's SummaryWriter per seed
    took 597 ms per chunk at 512 seeds (its checksum is a Python loop over
    every byte when no ``crc32c`` wheel is installed).
    """

    TAGS = TENSORBOARD_TAGS

    def __init__(self, logdir: Path, seeds: list[int], purge_step: Optional[int] = None):
        import socket
        import time

        from ppo_jax._imports import without_torch

        with without_torch():  # tensorboardX's package imports torch, which its protos never use
            from tensorboardX.proto.event_pb2 import Event, SessionLog

        self.seeds = seeds
        # A new file per session, like SummaryWriter's: a resumed run's events follow the old file's.
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}"
        self.paths = []
        for seed in seeds:
            (Path(logdir) / f"seed_{seed}").mkdir(parents=True, exist_ok=True)
            self.paths.append(Path(logdir) / f"seed_{seed}" / name)
        first = [Event(wall_time=time.time(), step=purge_step or 0, file_version="brain.Event:2")]
        if (
            purge_step is not None
        ):  # TensorBoard drops the events at or after a START's step that came before it
            first.append(
                Event(wall_time=time.time(), step=purge_step, session_log=SessionLog(status=SessionLog.START))
            )
        self._write([[e.SerializeToString() for e in first] for _ in seeds], mode="wb")

    def log_hparams(self, hparams: Mapping[str, Any]) -> None:
        import time

        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.summary import hparams as hparams_summary
        from tensorboardX.summary import text as text_summary

        events = []
        for seed in self.seeds:
            values = {k: _hparam_value(v) for k, v in {**hparams, "seed": seed}.items()}
            summaries = list(hparams_summary(values, {self.TAGS["episode_return"]: float("nan")}))
            summaries.append(text_summary("config", "\n".join(f"    {k}: {v}" for k, v in values.items())))
            events.append(
                [Event(wall_time=time.time(), step=0, summary=s).SerializeToString() for s in summaries]
            )
        self._write(events)

    def log(self, first_update: int, metrics: Mapping[str, np.ndarray]) -> None:
        import time

        names = [(name, tag) for name, tag in self.TAGS.items() if name in metrics]
        values = np.stack(
            [np.asarray(metrics[name], np.float32) for name, _ in names]
        )  # [tags, seeds, updates]
        steps = np.asarray(metrics["env_steps"], np.int64)
        data, mask = tfevents.scalar_events([tag for _, tag in names], values, steps, time.time())
        self._append(np.full(len(self.seeds), steps.shape[1]), data, mask)

    def _write(self, events: list[list[bytes]], mode: str = "ab") -> None:
        """Append ``events[i]`` (serialized Event protos) to seed i's file."""
        flat = [e for per_seed in events for e in per_seed]
        self._append(np.array([len(e) for e in events]), *tfevents.rows(flat), mode)

    def _append(self, counts: np.ndarray, data: np.ndarray, mask: np.ndarray, mode: str = "ab") -> None:
        """Append events (rows of ``data[mask]``, seed by seed, ``counts[i]`` of
        seed i) to the seeds' files as TFRecords."""
        records, sizes = tfevents.tfrecords(data, mask)
        ends = np.cumsum(sizes)[np.cumsum(counts) - 1]  # every seed has at least one event
        for path, begin, end in zip(self.paths, np.concatenate([[0], ends[:-1]]), ends):
            with open(path, mode) as f:
                f.write(records[begin:end])

    def close(self) -> None:
        """Nothing: every ``log`` wrote and closed its files."""


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

    def __init__(
        self,
        run_dir: Path,
        seeds: list[int],
        name: str,
        mode: Literal["online", "offline"],
        project: str = "ppo_jax",
    ):
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


def format_steps(steps: float, _position=None) -> str:
    """A step count as it reads at a glance on an axis: 0, 500, 50k, 1.25M, 2B."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(steps) >= scale:
            return f"{steps / scale:.3g}{suffix}"
    return f"{steps:.3g}"


def step_axis(ax) -> None:
    """Env steps on ``ax``'s x axis: at most 5 ticks, each label short (``format_steps``)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(format_steps))


def plot_curves(path: Path, metrics: dict[str, np.ndarray], seeds: Iterable[int], title: str) -> None:
    """``curves.png``: episode return vs env steps (seeds faint, mean bold) and the losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = list(seeds)
    steps = np.asarray(metrics["env_steps"][0], np.float64)
    num_updates = len(steps)
    window = max(1, num_updates // 50)
    columns = 3
    rows = -(-len(PLOT_PANELS) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 4 * rows), constrained_layout=True)
    for ax in axes.flat[len(PLOT_PANELS) :]:
        ax.set_visible(False)
    for ax, (name, label) in zip(axes.flat, PLOT_PANELS):
        data = np.asarray(metrics[name], np.float64)
        smoothed = np.stack([_smooth(row, window) for row in data])
        for i, row in enumerate(smoothed):
            ax.plot(steps, row, color="C0", alpha=0.25, linewidth=0.8, label="each seed" if i == 0 else None)
        with np.errstate(invalid="ignore"), _quiet():
            mean = np.nanmean(smoothed, axis=0)
        ax.plot(steps, mean, color="C0", linewidth=2.2, label=f"mean of {len(seeds)} seeds")
        ax.set_title(label)
        ax.set_xlabel("env steps (per seed)")
        step_axis(ax)
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
