"""Markdown table of preset results from run directories written by ``ppo-jax train``.

    python -m benchmarks.presets_table runs/presets

Reads each ``<dir>/summary.json`` and prints env, budget, final return per seed and
their mean, train and compile seconds, steps per second, and when it finished.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/presets")
    print(
        "| preset | env | env steps/seed | final return (mean of 4) | per seed | train s | compile s | steps/s (all seeds) | finished (UTC) |"
    )
    print("|---|---|---:|---:|---|---:|---:|---:|---|")
    for summary_path in sorted(root.glob("*/summary.json")):
        s = json.loads(summary_path.read_text())
        finals = [np.nan if x is None else x for x in s["final_return"]]
        print(
            f"| `configs/{summary_path.parent.name}.yaml` | {s['env_id']} | {s['env_steps']:,} | "
            f"**{np.nanmean(finals):.1f}** | {', '.join(f'{x:.1f}' for x in finals)} | "
            f"{s['train_seconds']:.0f} | {s['compile_seconds']:.0f} | {s['steps_per_second']:,.0f} | "
            f"{s['finished_at'][:16].replace('T', ' ')} |"
        )


if __name__ == "__main__":
    main()
