"""The peers' own virtual environments: ``benchmarks/.peers-venvs/<name>``.

rejax 0.1.3 steps gymnax envs with the old 5-value ``step`` (gymnax < 1.0), and
sbx needs Stable-Baselines3, torch and tfp-nightly: none of it belongs in
ppo_jax's environment. So each peer gets a venv of its own, from the pins of
``benchmarks/peers/<name>.txt``, created once (a minute or two from PyPI) and
reused while the pins are unchanged. They run as subprocesses that print JSON.

``rejax`` and ``sbx`` pin the SAME jax/jaxlib as ppo_jax's environment (the
headline ratios come only from those); ``rejax-jax0435`` is rejax's older pinned
environment (jax 0.4.35), kept as a second, labelled row.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from typing import Optional

from benchmarks.common import REPO

ROOT = REPO / "benchmarks" / ".peers-venvs"
PINS = REPO / "benchmarks" / "peers"
PEERS = ("rejax", "sbx", "rejax-jax0435")
LABELS = {
    "rejax": "rejax, same jax as ppo_jax",
    "sbx": "sbx, same jax as ppo_jax",
    "rejax-jax0435": "rejax, its older pinned jax 0.4.35 (not a headline row)",
}


def _venv(name: str):
    return ROOT / name


def _requirements(name: str):
    return PINS / f"{name}.txt"


def _stamp(name: str):
    return _venv(name) / "ppo_jax-peers.json"


def missing(name: str) -> str:
    return (
        f"skipped: no peers venv `benchmarks/.peers-venvs/{name}`: --quick never creates it, and a "
        f"full run creates it from PyPI (a minute or two; `python -m benchmarks.run --only peers`)"
    )


def _pins_hash(name: str) -> str:
    return hashlib.sha256(_requirements(name).read_bytes()).hexdigest()[:16]


def python(name: str, create: bool) -> Optional[str]:
    """The named peer venv's python, creating the venv first if ``create``; None if absent."""
    exe = _venv(name) / "bin" / "python"
    stamp = _stamp(name)
    if exe.exists() and stamp.exists() and json.loads(stamp.read_text()).get("pins") == _pins_hash(name):
        return str(exe)
    if not create:
        return None
    req = _requirements(name)
    print(f"  creating {_venv(name).relative_to(REPO)} (pinned: {req.relative_to(REPO)})", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(_venv(name))], check=True)
    result = subprocess.run(
        [str(exe), "-m", "pip", "install", "-q", "-r", str(req)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if result.returncode != 0:
        print(result.stderr[-2000:], file=sys.stderr)
        return None
    write_stamp(name, time.perf_counter() - start)
    return str(exe)


def write_stamp(name: str, setup_seconds: Optional[float]) -> None:
    """Mark the venv as made from the current pins, with what it holds (``pip freeze``)."""
    exe = _venv(name) / "bin" / "python"
    freeze = subprocess.run([str(exe), "-m", "pip", "freeze"], capture_output=True, text=True).stdout.split()
    _stamp(name).write_text(
        json.dumps(
            {
                "pins": _pins_hash(name),
                "setup_seconds": None if setup_seconds is None else round(setup_seconds, 1),
                "freeze": freeze,
            }
        )
    )


def describe(name: str) -> dict:
    """The venv's pins and, once created, the versions it actually holds."""
    pins = [
        line for line in _requirements(name).read_text().splitlines() if line and not line.startswith("#")
    ]
    stamp = json.loads(_stamp(name).read_text()) if _stamp(name).exists() else {}
    keep = (
        "jax",
        "jaxlib",
        "flax",
        "optax",
        "gymnax",
        "rejax",
        "sbx-rl",
        "stable_baselines3",
        "stable-baselines3",
        "torch",
        "gymnasium",
        "distrax",
        "tfp-nightly",
        "tensorflow-probability",
        "numpy",
    )
    held = [f for f in stamp.get("freeze", []) if f.split("==")[0].lower() in keep]
    return {
        "name": name,
        "label": LABELS[name],
        "venv": str(_venv(name).relative_to(REPO)),
        "pins": pins,
        "installed": held,
        "setup_seconds": stamp.get("setup_seconds"),
    }
