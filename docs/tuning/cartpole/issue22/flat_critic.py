"""Per seed of 'ppo-jax train' run dirs: final return, the share of updates whose explained
variance is ~0 (the critic a constant on the rollout), and the entropy at the end.

    python docs/tuning/cartpole/issue22/flat_critic.py RUN_DIR...
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

for run in sys.argv[1:]:
    metrics = pd.read_csv(f"{run}/metrics.csv")
    summary = json.loads(Path(run, "summary.json").read_text())
    finals = dict(zip(summary["seeds"], summary["final_return"]))
    for seed, rows in metrics.groupby("seed"):
        flat = (np.abs(rows.explained_variance.values) < 0.005).mean()
        entropy = rows.entropy.values[-40:].mean()
        print(
            f"{run} seed {seed}: final {finals[seed]:6.1f}  flat-critic updates {flat:.2f}  entropy at end {entropy:.3f}"
        )
