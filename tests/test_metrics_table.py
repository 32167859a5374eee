"""The metrics table: one row per metric, and every reader's list is the table's."""

import subprocess
import sys

from ppo_jax import metrics, update
from ppo_jax.io import logs


def test_each_metric_is_one_row_and_its_tag_is_its_own():
    names = [m.name for m in metrics.TABLE]
    assert len(names) == len(set(names))
    tags = list(metrics.TENSORBOARD_TAGS.values())
    assert len(tags) == len(set(tags))
    assert set(metrics.LOSS_METRICS) <= set(metrics.METRIC_NAMES)
    assert set(metrics.CURVE_NAMES) == set(metrics.MEAN_NAMES) | {
        "episode_return",
        "episode_length",
        "episodes",
    }
    assert "nonfinite" not in metrics.CURVE_NAMES


def test_the_readers_read_the_table():
    assert update.LOSS_METRICS is metrics.LOSS_METRICS
    assert logs.TensorBoardLogger.TAGS is metrics.TENSORBOARD_TAGS
    assert logs.MetricsCSV.columns == ("seed", "update", "env_steps") + metrics.METRIC_NAMES
    assert [name for name, _ in metrics.PLOT_PANELS] == [
        "episode_return",
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clip_fraction",
    ]


def test_nonfinite_bits_are_distinct_and_described_by_name():
    bits = [bit for bit, _ in metrics.NONFINITE_BITS]
    assert all(bit & (bit - 1) == 0 for bit in bits) and len(set(bits)) == len(bits)
    assert metrics.describe_nonfinite(0) == ""
    assert metrics.describe_nonfinite(5) == "loss, parameters"
    assert metrics.describe_nonfinite(7) == "loss, gradient, parameters"


def test_final_window_is_the_last_five_percent_and_at_least_one_update():
    assert metrics.final_window(100) == 5
    assert metrics.final_window(3) == 1
    assert metrics.final_window(1000, 0.1) == 100


def test_the_table_imports_no_jax():
    code = "import sys, ppo_jax.metrics; print(sorted(m for m in sys.modules if m.split('.')[0] == 'jax'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
