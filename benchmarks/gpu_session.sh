#!/usr/bin/env bash
# The GPU benchmarks in one call on a lent machine with no network (about 8 minutes).
#
# Step 1, here, with network (once; the wheels are git-ignored):
#     bash benchmarks/gpu_session.sh --prepare
#   downloads the pure-Python packages that the GPU machine's image lacks (gymnax 1.0.1,
#   gymnasium 1.3.0 and farama-notifications for gymnax and the PyTorch PPO, tensorboardX, six)
#   into benchmarks/.gpu-wheels/ (about 1.2 MB).
#
# Step 2, on the GPU machine (its image has python3 3.12 with jax + jax-cuda13-plugin 0.11.x,
#   flax, optax, chex, orbax, matplotlib, pyyaml, rich and a CUDA torch; nothing can be fetched):
#     bash benchmarks/gpu_session.sh
#   with benchmarks/.gpu-wheels carried. It installs the wheels into /tmp/site (--no-deps),
#   checks that jax sees the GPU, runs `python -m benchmarks.run --gpu` (its own budget: 400 s;
#   the 2048-agent headline first), and leaves in $OUT:
#     gpu-results.tar.gz   benchmarks/results/gpu/*.json, *.csv, *.png and the RESULTS.md it wrote
#     gpu-session.log      everything printed, versions and nvidia-smi first
#
# Step 3, here: tar -xzf gpu-results.tar.gz -C benchmarks/results/gpu && python -m benchmarks.report
#
# The GPU machine's jax (0.11.x) is not the 0.10.2 of the CPU results: every JSON records its
# versions. If its jax has no CUDA backend, this says so and stops (jax[cuda] cannot be installed
# there without network: carry jax, jaxlib and the jax-cuda plugin wheels, several hundred MB,
# over the 64 MiB that a call may carry).
set -uo pipefail

cd "$(dirname "$0")/.."
WHEELS=benchmarks/.gpu-wheels
PY=${PYTHON:-python3}

if [[ "${1:-}" == "--prepare" ]]; then
    mkdir -p "$WHEELS"
    exec "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$WHEELS" \
        gymnax==1.0.1 gymnasium==1.3.0 farama-notifications==0.0.4 tensorboardX==2.6.5 six==1.17.0
fi

OUT=${OUT:-/tmp/gpu-session-out}
mkdir -p "$OUT"
LOG="$OUT/gpu-session.log"
exec > >(tee "$LOG") 2>&1
export PYTHONUNBUFFERED=1

echo "== $(date -u +%FT%TZ) gpu_session.sh on $(hostname)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi: none"

if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$WHEELS"/*.whl || { echo "installing the carried wheels failed"; exit 3; }
    export PYTHONPATH="/tmp/site:$PWD"
else
    echo "no wheels in $WHEELS: run 'bash benchmarks/gpu_session.sh --prepare' where there is network," \
         "and carry benchmarks/.gpu-wheels"
    export PYTHONPATH="$PWD"
fi

"$PY" - <<'EOF' || { echo "STOP: this python cannot run ppo_jax on a GPU (see above)"; exit 3; }
import importlib.metadata as md, sys
for name in ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "flax", "optax", "chex", "gymnax",
             "gymnasium", "torch", "numpy"):
    try:
        print(f"  {name} {md.version(name)}")
    except md.PackageNotFoundError:
        pass
import jax
print("  jax backend:", jax.default_backend(), jax.devices())
if jax.default_backend() != "gpu":
    print("jax sees no CUDA device: jax[cuda] is not installed here and cannot be without network")
    sys.exit(1)
import torch
print("  torch CUDA:", torch.cuda.is_available())
import ppo_jax, gymnax  # noqa: F401  the package itself imports here
EOF

status=0
# The suite's own budget is 400 s; this timeout only guards against a hang.
timeout 450 "$PY" -m benchmarks.run --gpu --out /tmp/gpu-bench || status=$?
echo "== benchmarks.run --gpu ended with status $status at $(date -u +%FT%TZ)"

if [[ -d /tmp/gpu-bench/results/gpu ]]; then
    cp /tmp/gpu-bench/RESULTS.md /tmp/gpu-bench/results/gpu/RESULTS-gpu-session.md 2>/dev/null
    tar -czf "$OUT/gpu-results.tar.gz" -C /tmp/gpu-bench/results/gpu .
    echo "== wrote $OUT/gpu-results.tar.gz: $(tar -tzf "$OUT/gpu-results.tar.gz" | tr '\n' ' ')"
fi
exit $status
