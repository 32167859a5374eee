"""The plots' env-step axes read at a glance: few ticks, short labels (50k, 1.25M)."""

import numpy as np
import pytest

from ppo_jax.io import logs


@pytest.mark.parametrize(
    "steps, text",
    [(0, "0"), (512, "512"), (50_000, "50k"), (75_000, "75k"), (1_250_000, "1.25M"), (2e9, "2B")],
)
def test_format_steps(steps, text):
    assert logs.format_steps(steps) == text


@pytest.mark.parametrize("last", [131_072, 5_000_000, 1e8])
def test_step_axis_labels_are_short_and_few(last):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # One panel of curves.png's 15 × 8 inch grid of 2 × 3.
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), constrained_layout=True)
    ax = axes[0, 0]
    ax.plot(np.linspace(last / 100, last, 100), np.arange(100))
    logs.step_axis(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    lo, hi = ax.get_xlim()
    visible = [x for x in ax.get_xticks() if lo <= x <= hi]
    plt.close(fig)
    assert 2 <= len(visible) <= 6
    assert all(len(label) <= 5 for label in labels), labels
