"""Smoke check of the benchmark suite: `python -m benchmarks.run --quick` into a
temporary directory produces its results, and every number in them is finite.
Never asserts on a time. (About 2 minutes on 2 quiet CPU cores.)"""

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_quick_suite_writes_finite_results(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = tmp_path / "results"
    report = (tmp_path / "RESULTS.md").read_text()
    for heading in ("## Targets", "## 1. Throughput", "## 2. Against PyTorch", "## 3. Against a JAX peer",
                    "## 4. Seeds scaling", "## 5. GPU", "## Where the time goes"):
        assert heading in report
    assert (res / "throughput.png").exists() and (res / "throughput.csv").exists()

    throughput = json.loads((res / "throughput.json").read_text())
    assert all(j["status"] == "ok" for j in throughput["jobs"]), throughput["jobs"]
    rows = [r for j in throughput["jobs"] for r in j["rows"] if r["kind"] == "throughput"]
    assert rows
    for r in rows:
        for name in ("compile_seconds", "run_seconds", "steps_per_second", "floor_steps_per_second",
                     "flops_per_update", "achieved_flops_per_second"):
            assert _finite(r[name]) and r[name] > 0, (name, r[name])
    matmul = [r for j in throughput["jobs"] for r in j["rows"] if r["kind"] == "matmul"]
    assert matmul and _finite(matmul[0]["matmul_flops_per_second"])
    for phase in ("cold", "warm"):
        assert throughput["cold_warm"][phase]["status"] == "ok"
        assert _finite(throughput["cold_warm"][phase]["compile_seconds"])

    torch = json.loads((res / "torch.json").read_text())
    for env_id, env in torch["envs"].items():
        (solve,) = env["ppo_jax"]
        assert solve["status"] == "ok", solve
        (row,) = solve["rows"]
        assert _finite(row["steps_per_second"]) and row["steps_per_second"] > 0
        assert len(row["final_return"]) == row["seeds"]
        if "skipped" not in torch:
            for impl in ("torch", "sb3"):
                for job in env[impl]:
                    assert job["status"] == "ok", job
                    assert all(_finite(r["steps_per_second"]) for r in job["rows"])

    peers = json.loads((res / "peers.json").read_text())
    if "skipped" not in peers:
        for row in peers["rows"]:
            for impl in ("rejax", "ppo_jax"):
                assert row[impl]["status"] == "ok", row[impl]
                assert _finite(row[impl]["rows"][0]["steps_per_second"])

    seeds = json.loads((res / "seeds.json").read_text())
    rows = [r for j in seeds["jobs"] for r in j["rows"]]
    assert [r["seeds"] for r in rows] == [1, 4]
    for r in rows:
        assert _finite(r["run_seconds"]) and _finite(r["peak_rss_mib"])
