"""What training imports: gymnax's render-only plotting modules and torch (through
tensorboardX) stay unloaded until used, and a deferred module works once used."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent

_CHECK = """
import json, sys, tempfile
from pathlib import Path
import ppo_jax.train
from ppo_jax.io.logs import TensorBoardLogger
TensorBoardLogger(Path(tempfile.mkdtemp()), [0])
loaded = {name: name in sys.modules for name in ("scipy.stats", "pandas", "torch", "matplotlib.figure")}
import seaborn
before = "scipy.stats" in sys.modules
palette = seaborn.color_palette("deep", 2)
print(json.dumps({"loaded": loaded, "seaborn_code_ran_on_import": before,
                  "seaborn_works": len(palette) == 2 and "scipy.stats" in sys.modules}))
"""


def test_training_imports_defer_plotting_and_torch():
    result = subprocess.run(
        [sys.executable, "-c", _CHECK], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["loaded"] == {
        "scipy.stats": False,
        "pandas": False,
        "torch": False,
        "matplotlib.figure": False,
    }
    assert not report["seaborn_code_ran_on_import"] and report["seaborn_works"]
