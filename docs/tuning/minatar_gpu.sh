#!/usr/bin/env bash
# Held-out check of the four MinAtar presets on one GPU: 8 seeds (100-107) per preset at the
# preset's own settings and budget, one `ppo-jax sweep` (one compiled program) per preset,
# the four run side by side so that their compilations overlap. Writes under $OUT:
#   minatar-sweeps.tar.gz  the four sweep directories (report.md, curves.png, results.csv,
#                          sweep.json, config.yaml) and each one's log
#   summary.md             per preset: per-seed final returns, IQM, mean, min, count >= T (issue 12 bars)
#   run.log                this script's own log (versions, devices, timings)
#
# Two steps.
#   1. Here, in the repository root, with network (once):
#        bash docs/tuning/minatar_gpu.sh --prepare
#      downloads the packages the GPU image lacks (gymnax, gymnasium, rliable, arch,
#      tensorboardX, pandas 2.x for arch) as Python 3.12 wheels into runs/gpu-wheels/ (gitignored).
#   2. On the device machine, with the device tool's `run`:
#        command: bash docs/tuning/minatar_gpu.sh
#        carry:   ["runs/gpu-wheels"]
#        timeout_s: 420
#      MINATAR_GPU_BUDGET_S (default 300) caps each sweep's wall time; a sweep cut off leaves its
#      log (with the progress lines) but no report. MINATAR_SEEDS / MINATAR_FIRST_SEED change the
#      seeds (default 8 from 100); MINATAR_PRESETS the presets (default: all four);
#      MINATAR_SMOKE_STEPS shrinks every budget (for a dry run of the script on a CPU).
#      PENDULUM_GRID=1 adds, beside them, a Pendulum-v1 grid at 1e6 steps (gamma 0.95,0.99 x
#      max_grad_norm 0.5,10 x learning_rate 5e-4,1e-3) on seeds 0-15 and the same grid on the
#      held-out seeds 100-115 (same shapes, so the second compile is a cache hit); the point to
#      keep is chosen on seeds 0-15 alone (most seeds >= -200, then IQM) and its held-out row
#      is the check. The CPU could not afford it (docs/tuning/pendulum/); about a minute of GPU.
set -uo pipefail

WHEELS=runs/gpu-wheels
if [[ "${1:-}" == "--prepare" ]]; then
    PY=${PYTHON:-python3}
    mkdir -p "$WHEELS"
    plat=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
          --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
          --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    "$PY" -m pip download -q --no-deps --only-binary=:all: "${plat[@]}" -d "$WHEELS" \
        gymnax==1.0.1 gymnasium==1.3.0 farama-notifications==0.0.6 tensorboardX==2.6.5 \
        arch==7.2.0 pandas==2.3.3 || exit 1
    # rliable 1.2 is published as a source archive only; it is pure Python.
    "$PY" -m pip wheel -q --no-deps -w "$WHEELS" rliable==1.2.0 || exit 1
    ls -l "$WHEELS"; du -sh "$WHEELS"
    exit 0
fi

OUT=${OUT:-runs/minatar-gpu-out}
mkdir -p "$OUT"
WORK=$(mktemp -d)
LOG="$OUT/run.log"
exec > >(tee -a "$LOG") 2>&1
PY=${PYTHON:-python3}
BUDGET_S=${MINATAR_GPU_BUDGET_S:-300}
SEEDS=${MINATAR_SEEDS:-8}
FIRST=${MINATAR_FIRST_SEED:-100}
PRESETS=${MINATAR_PRESETS:-"breakout_minatar space_invaders_minatar asterix_minatar freeway_minatar"}
echo "== $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') budget ${BUDGET_S}s seeds ${FIRST}..$((FIRST + SEEDS - 1))"

# Packages the image lacks, from the carried wheels (nothing installed where they are present).
if [[ -d "$WHEELS" ]] && ! "$PY" -c "import gymnax, rliable.library, tensorboardX" 2>/dev/null; then
    SITE=/tmp/ppo_jax_site
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        $(ls "$WHEELS"/*.whl | grep -v '/pandas-') || exit 1
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    # arch 7 (under rliable) fails to import with pandas 3: bring pandas 2 only then.
    if ! "$PY" -c "import arch.bootstrap" 2>/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
            "$WHEELS"/pandas-*.whl || exit 1
    fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Four processes share the GPU: none may take 75% of its memory up front.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
"$PY" -c "import jax, flax, optax, gymnax, rliable.library; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" || exit 1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

declare -A BAR=([breakout_minatar]=25 [space_invaders_minatar]=131 [asterix_minatar]=15 [freeway_minatar]=58)
declare -A IQM_BAR=([breakout_minatar]=40 [space_invaders_minatar]=160 [asterix_minatar]=25 [freeway_minatar]=60)

start=$(date +%s)
pids=()
for p in $PRESETS; do
    extra=()
    [[ -n "${MINATAR_SMOKE_STEPS:-}" ]] && extra=(--set "total_timesteps=$MINATAR_SMOKE_STEPS")
    timeout --signal=INT --kill-after=20 "$BUDGET_S" \
        "$PY" -c "import sys; from ppo_jax.cli import main; sys.exit(main())" sweep "configs/$p.yaml" \
        --seeds "$SEEDS" --seed "$FIRST" ${extra[@]+"${extra[@]}"} --out "$WORK/$p" >"$WORK/$p.log" 2>&1 &
    pids+=($!)
done
PENDULUM_RUNS=()
if [[ "${PENDULUM_GRID:-0}" == 1 ]]; then
    pgrid=(--grid gamma=0.95,0.99 --grid max_grad_norm=0.5,10 --grid learning_rate=0.0005,0.001)
    psteps=${MINATAR_SMOKE_STEPS:-1000000}
    (
        for first in 0 100; do
            timeout --signal=INT --kill-after=20 "$BUDGET_S" \
                "$PY" -c "import sys; from ppo_jax.cli import main; sys.exit(main())" sweep configs/pendulum.yaml \
                --set total_timesteps="$psteps" "${pgrid[@]}" --seeds 16 --seed "$first" \
                --out "$WORK/pendulum_grid_seeds$first" >"$WORK/pendulum_grid_seeds$first.log" 2>&1
        done
    ) &
    pids+=($!)
    PENDULUM_RUNS=(pendulum_grid_seeds0 pendulum_grid_seeds100)
fi
names=($PRESETS); [[ ${#PENDULUM_RUNS[@]} -gt 0 ]] && names+=(pendulum_grid)
for i in "${!pids[@]}"; do
    wait "${pids[$i]}"; echo "${names[$i]}: exit $? at $(( $(date +%s) - start )) s"
done
echo "== all sweeps done in $(( $(date +%s) - start )) s"

{
    echo "# MinAtar presets on held-out seeds ${FIRST}-$((FIRST + SEEDS - 1)), $(date -u +%F), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo
    command -v nvidia-smi >/dev/null && echo "GPU: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); four sweeps run side by side"
    echo
    for p in $PRESETS; do
        if [[ -f "$WORK/$p/results.csv" ]]; then
            "$PY" docs/tuning/summarize.py "$WORK/$p" --bar "${BAR[$p]}" --iqm-bar "${IQM_BAR[$p]}"
        else
            echo "### $p: no result (cut off at ${BUDGET_S} s or failed); last lines of its log:"
            echo; echo '```'; tail -5 "$WORK/$p.log"; echo '```'; echo
        fi
    done
    for d in ${PENDULUM_RUNS[@]+"${PENDULUM_RUNS[@]}"}; do
        if [[ -f "$WORK/$d/results.csv" ]]; then
            "$PY" docs/tuning/summarize.py "$WORK/$d" --bar -200 --iqm-bar -150
        else
            echo "### $d: no result; last lines of its log:"; echo; echo '```'; tail -5 "$WORK/$d.log"; echo '```'; echo
        fi
    done
} > "$OUT/summary.md"
cat "$OUT/summary.md"
tar -C "$WORK" -czf "$OUT/minatar-sweeps.tar.gz" .
ls -l "$OUT"
