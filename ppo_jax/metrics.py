"""The metrics: one table of every metric a run reports, and what each reader does with it.

Each row of ``TABLE`` says of one metric: its TensorBoard (and W&B) tag, its panel in
``curves.png``, whether the update computes it as a mean of the loss's terms, and how a
sweep's log point gathers it. Everything else reads its list from here: ``train``'s
``METRIC_NAMES`` (the columns of ``metrics.csv``), ``update``'s ``LOSS_METRICS``, the
sweeps' curves, ``TensorBoardLogger.TAGS`` and the plot's panels. Adding a metric is one
row here (and computing it where its row says). Plain Python: importing it starts no JAX.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Optional


class Metric(NamedTuple):
    """One metric of a run."""

    name: str
    tag: Optional[str] = None  # TensorBoard and W&B tag; None: metrics.csv only
    panel: Optional[str] = None  # title of its panel in curves.png; None: not plotted
    # How a sweep's log point gathers it over its updates: "episodes" weighted by the episodes
    # that finished, "count" summed, "mean" averaged, None kept otherwise (the non-finite bits).
    log_point: Optional[Literal["episodes", "count", "mean"]] = "mean"
    loss: bool = False  # the update's minibatch-weighted mean of the loss term of this name
    per_update: bool = True  # returned by train for every update (False: added by the CLI when logging)


TABLE: tuple[Metric, ...] = (
    Metric("episode_return", "charts/episode_return", "episode return", log_point="episodes"),
    Metric("episode_length", "charts/episode_length", log_point="episodes"),
    Metric("episodes", log_point="count"),
    Metric("policy_loss", "losses/policy_loss", "policy loss", loss=True),
    Metric("value_loss", "losses/value_loss", "value loss", loss=True),
    Metric("entropy", "losses/entropy", "entropy", loss=True),
    Metric("approx_kl", "losses/approx_kl", "approx KL", loss=True),
    Metric("clip_fraction", "losses/clip_fraction", "clip fraction", loss=True),
    Metric("explained_variance", "losses/explained_variance"),
    Metric("grad_norm", "losses/grad_norm", loss=True),
    Metric("learning_rate", "charts/learning_rate"),
    Metric("minibatch_updates"),
    Metric("nonfinite", log_point=None),
    Metric("reward_raw"),
    Metric("reward_penalized"),
    Metric("kl_ref"),
    Metric("kl_ref_coef"),
    Metric("cuts_dropped"),
    Metric("steps_per_second", "charts/SPS", log_point=None, per_update=False),
)

METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in TABLE if m.per_update)
"""The per-update metrics ``train`` returns and every run logs, in their column order
(see the metrics glossary)."""

LOSS_METRICS: tuple[str, ...] = tuple(m.name for m in TABLE if m.loss)
"""The metrics the update averages from the loss's terms over the minibatches applied."""

TENSORBOARD_TAGS: dict[str, str] = {m.name: m.tag for m in TABLE if m.tag is not None}
"""Metric name -> TensorBoard (and W&B) tag, for the metrics logged there."""

PLOT_PANELS: tuple[tuple[str, str], ...] = tuple((m.name, m.panel) for m in TABLE if m.panel is not None)
"""``(name, title)`` of each panel of ``curves.png``, in order."""

MEAN_NAMES: tuple[str, ...] = tuple(m.name for m in TABLE if m.per_update and m.log_point == "mean")
"""The metrics a sweep's log point averages over its updates."""

CURVE_NAMES: tuple[str, ...] = tuple(m.name for m in TABLE if m.per_update and m.log_point is not None)
"""The metrics a sweep reports at each log point (the episode statistics, then ``MEAN_NAMES``)."""

# The bits of the ``nonfinite`` metric: which of the update's values held NaN or Inf.
NONFINITE_BITS: tuple[tuple[int, str], ...] = ((1, "loss"), (2, "gradient"), (4, "parameters"))
NONFINITE_LOSS, NONFINITE_GRAD, NONFINITE_PARAMS = (bit for bit, _ in NONFINITE_BITS)


def describe_nonfinite(code: int) -> str:
    """The names of the bits set in a ``nonfinite`` code, e.g. ``"loss, gradient"``."""
    return ", ".join(name for bit, name in NONFINITE_BITS if code & bit)


FINAL_FRACTION = 0.05
"""The final window: the last 5% of a run's updates give its final return."""


def final_window(num_updates: int, fraction: float = FINAL_FRACTION) -> int:
    """How many of the last updates count for the final return (at least one)."""
    return max(1, int(round(fraction * num_updates)))
