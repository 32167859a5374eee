"""Markdown rows for 'ppo-jax train' run dirs: seeds, IQM, mean, min, seeds below T (which).

python docs/tuning/cartpole/issue22/blocksum.py T RUN_DIR...
"""

import json
import sys
from pathlib import Path

import numpy as np
import scipy.stats

T = float(sys.argv[1])
for run in sys.argv[2:]:
    summary = json.loads(Path(run, "summary.json").read_text())
    finals, seeds = np.asarray(summary["final_return"], float), summary["seeds"]
    below = [f"{s} ({v:.1f})" for s, v in zip(seeds, finals) if not v >= T]
    iqm = scipy.stats.trim_mean(finals, 0.25)
    print(
        f"| {seeds[0]}–{seeds[-1]} | {iqm:.1f} | {finals.mean():.1f} | {finals.min():.1f} "
        f"| {len(below)} of {len(finals)} | {', '.join(below) or '–'} |"
    )
