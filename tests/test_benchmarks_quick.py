"""Smoke check of the benchmark suite: `python -m benchmarks.run --quick` into a
temporary directory produces its results, and every number in them is finite.
Never asserts on a time. (About 3 minutes on 2 quiet CPU cores; the peers and sbx
rows only where their venvs exist, which --quick never creates.)"""

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
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = tmp_path / "results"
    report = (tmp_path / "RESULTS.md").read_text()
    for heading in (
        "## Targets",
        "## 1. Throughput",
        "## 2. Against PyTorch",
        "## 3. Against a JAX peer",
        "## 4. Seeds scaling",
        "## 5. Cores",
        "## 6. Compile time",
        "## 7. Memory per env step",
        "## 8. The CNN under vmap",
        "## 9. GPU",
        "## Where the time goes",
    ):
        assert heading in report
    assert (res / "throughput.png").exists() and (res / "throughput.csv").exists()

    throughput = json.loads((res / "throughput.json").read_text())
    assert all(j["status"] == "ok" for j in throughput["jobs"]), throughput["jobs"]
    rows = [r for j in throughput["jobs"] for r in j["rows"] if r["kind"] == "throughput"]
    assert rows
    for r in rows:
        for name in (
            "compile_seconds",
            "run_seconds",
            "steps_per_second",
            "floor_steps_per_second",
            "flops_per_update",
            "achieved_flops_per_second",
        ):
            assert _finite(r[name]) and r[name] > 0, (name, r[name])
    # per-suite rows: measured where the suite's extra is installed, else said so
    assert throughput["suites"], throughput.keys()
    for name, job in throughput["suites"].items():
        if job["status"].startswith("not installed"):
            assert f".[{name}]" in job["status"] and not job["rows"]
            continue
        assert job["status"] == "ok", (name, job)
        (row,) = [r for r in job["rows"] if r["kind"] == "suite_throughput"]
        assert (
            row["suite"] == name
            and _finite(row["steps_per_second"])
            and _finite(row["floor_steps_per_second"])
        )
    assert "Per environment suite" in report
    matmul = [r for j in throughput["jobs"] for r in j["rows"] if r["kind"] == "matmul"]
    assert matmul and _finite(matmul[0]["matmul_flops_per_second"])

    torch = json.loads((res / "torch.json").read_text())
    # provenance: the commit, the load at the section's start and end, every job's settings
    assert torch["format"] == 2 and torch["commit"] and len(torch["load_at_start"]) == 3
    assert torch["presets"]["configs/cartpole.yaml"]["env_id"] == "CartPole-v1"
    for env_id, env in torch["envs"].items():
        runs = env["one_core"]
        for name, jobs in runs.items():
            if name not in ("ppo_jax_cold", "ppo_jax_warm") and "skipped" in torch:
                continue
            for job in jobs:
                assert job["status"] == "ok", job
                assert job["cpus"] == [0] and len(job["load_start"]) == 3
                (row,) = job["rows"]
                assert row["settings"]["env_id"] == env_id and _finite(row["steps_per_second"])
                # pinned to one core from its start: never more than one core's CPU time
                assert 0 < row["cpu_over_wall"] <= 1.05, (name, row["cpu_over_wall"])
        (warm,) = runs["ppo_jax_warm"][0]["rows"]
        assert warm["cache_hits"], "the warm run loads what the cold one compiled"
        assert not runs["ppo_jax_cold"][0]["rows"][0]["cache_hits"]
    whole = torch["envs"]["CartPole-v1"]["whole_machine"]
    (row,) = whole["ppo_jax"]["rows"]
    assert row["devices_used"] == 2 and row["seeds"] == 2
    if "skipped" not in torch:
        assert [j["cpus"] for j in whole["torch"]] == [[0], [1]]
        assert all(j["status"] == "ok" for j in whole["torch"]), whole["torch"]
    assert "One agent each on one core" in report and "The whole machine" in report

    peers = json.loads((res / "peers.json").read_text())
    if "skipped" not in peers:
        for row in peers["rows"]:
            for impl in ("rejax", "ppo_jax"):
                assert row[impl]["status"] == "ok", row[impl]
                assert _finite(row[impl]["rows"][0]["steps_per_second"])
            # the headline peer runs on the same jax as ppo_jax
            assert row["rejax"]["rows"][0]["jax"] == peers["versions"]["jax"]
        # 8 seeds vmapped: rejax on one device, ppo_jax on 1 and 2 forced host devices
        assert peers["seed_rows"]
        for row in peers["seed_rows"]:
            (peer,) = row["rejax"]["rows"]
            assert row["rejax"]["status"] == "ok" and peer["vmapped"] and peer["seeds"] == row["seeds"]
            assert peer["jax"] == peers["versions"]["jax"] and _finite(peer["steps_per_second"])
            for devices in (1, 2):
                job = row[f"ppo_jax_{devices}dev"]
                assert job["status"] == "ok", job
                (r,) = job["rows"]
                assert (
                    r["devices_used"] == devices
                    and r["seeds"] == row["seeds"]
                    and _finite(r["steps_per_second"])
                )
        assert "vmapped seeds on the same jax (" in report

    seeds = json.loads((res / "seeds.json").read_text())
    rows = [r for j in seeds["jobs"] for r in j["rows"]]
    assert [r["seeds"] for r in rows] == [1, 4]
    for r in rows:
        assert _finite(r["run_seconds"]) and _finite(r["peak_rss_mib"])

    cores = json.loads((res / "cores.json").read_text())
    rows = [r for j in cores["jobs"] for r in j["rows"]]
    assert rows and all(j["status"] == "ok" for j in cores["jobs"]), cores["jobs"]
    for r in rows:
        # 2 seeds over 2 forced host devices: the suite's XLA_FLAGS reached the job
        assert r["devices_visible"] == 2
        assert _finite(r["steps_per_second"]) and _finite(r["cpu_over_wall"])
    assert [r["devices_used"] for r in rows if r["kind"] == "cores"] == [2]
    # one agent on one device, then data-parallel over both
    assert [r["devices_used"] for r in rows if r["kind"] == "data_parallel"] == [1, 2]

    compiled = json.loads((res / "compile.json").read_text())
    rows = [r for j in compiled["jobs"] for r in j["rows"]]
    assert sorted(r["phase"] for r in rows) == ["cold", "warm"]
    assert all(
        _finite(r["compile_seconds"]) and (r["lower_seconds"] is None or _finite(r["lower_seconds"]))
        for r in rows
    )

    memory = json.loads((res / "memory.json").read_text())
    (row,) = [r for j in memory["jobs"] for r in j["rows"]]
    assert _finite(row["bytes_per_env_step"]) and row["bytes_per_env_step"] > 0
    assert all(n > 0 for n in row["largest_envs_times_seeds"].values())

    cnn = json.loads((res / "cnn.json").read_text())
    (row,) = [r for j in cnn["jobs"] for r in j["rows"]]
    assert _finite(row["grouped_ms"]) and _finite(row["patches_ms"])
    # the patches + batched matmul form computes the same convolution as the grouped one
    assert row["max_rel_diff_grad"] < 1e-4
