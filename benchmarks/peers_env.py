"""The JAX peers' own virtual environment: ``benchmarks/.peers-venv``.

rejax steps gymnax envs with the old 5-value ``step`` (gymnax < 1.0), which
ppo_jax's install cannot hold. So the peers get a venv of their own, with the
exact versions of ``benchmarks/peers/requirements.txt``, created once (about a
minute from PyPI) and reused while the pins are unchanged. Nothing of theirs
enters ppo_jax's environment; they run as subprocesses that print JSON.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from typing import Optional

from benchmarks.common import REPO

VENV = REPO / "benchmarks" / ".peers-venv"
REQUIREMENTS = REPO / "benchmarks" / "peers" / "requirements.txt"
STAMP = VENV / "ppo_jax-peers.json"
MISSING = (
    "skipped: no peers venv (benchmarks/.peers-venv): --quick never creates it, and a full run "
    "creates it from PyPI (about a minute; `python -m benchmarks.run --only peers`)"
)


def _pins_hash() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]


def python(create: bool) -> Optional[str]:
    """The peers venv's python, creating the venv first if ``create``; None if absent."""
    exe = VENV / "bin" / "python"
    if exe.exists() and STAMP.exists() and json.loads(STAMP.read_text()).get("pins") == _pins_hash():
        return str(exe)
    if not create:
        return None
    print(f"  creating {VENV.relative_to(REPO)} (pinned: {REQUIREMENTS.relative_to(REPO)})", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    result = subprocess.run(
        [str(exe), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
        capture_output=True, text=True, timeout=900,
    )
    if result.returncode != 0:
        print(result.stderr[-2000:], file=sys.stderr)
        return None
    STAMP.write_text(json.dumps({"pins": _pins_hash(), "setup_seconds": round(time.perf_counter() - start, 1)}))
    return str(exe)


def describe() -> dict:
    pins = [line for line in REQUIREMENTS.read_text().splitlines() if line and not line.startswith("#")]
    stamp = json.loads(STAMP.read_text()) if STAMP.exists() else {}
    return {"venv": str(VENV.relative_to(REPO)), "pins": pins, "setup_seconds": stamp.get("setup_seconds")}
