#!/usr/bin/env bash
# Each environment suite from a clean install of its extra: a fresh venv per extra, `pip install
# -e ".[EXTRA]"` of this checkout, then a tiny `ppo-jax train --env SUITE:ID` (two updates) and
# `ppo-jax eval` of that run. Evidence for docs/envs-clean-install.md.
#
#   scripts/clean_install_check.sh [EXTRA ...]      (default: every suite extra)
#
# Venvs go to ${CX_ROOT:-/tmp}/cx-EXTRA (remade each time), logs and runs to ${CX_LOGS:-/tmp/cx-logs}.
# CX_SKIP_INSTALL=1 reuses venvs made by an earlier call (the runs only).
# Everything that computes runs under `nice -n 19` (a shared machine). Prints one line per extra:
# what ran, its exit codes and times. Needs network access (or a pip index) for the installs.
set -u
REPO="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="${CX_ROOT:-/tmp}"
LOGS="${CX_LOGS:-/tmp/cx-logs}"
PY="${PYTHON:-python3}"
mkdir -p "$LOGS"

# extra -> env id and the settings of a run of two updates (small batches: Brax, Playground and
# Craftax step at ~0.3-5k steps/s on a CPU and compile for minutes)
declare -A ENV=(
  [jumanji]="jumanji:Snake-v1"
  [xminigrid]="xminigrid:MiniGrid-Empty-6x6"
  [navix]="navix:Navix-Empty-5x5-v0"
  [brax]="brax:inverted_pendulum"
  [playground]="playground:CartpoleBalance"
  [craftax]="craftax:Craftax-Classic-Symbolic-v1"
)
declare -A SETS=(
  [jumanji]="total_timesteps=1024 num_envs=4 num_steps=128 max_episode_steps=100"
  [xminigrid]="total_timesteps=1024 num_envs=4 num_steps=128"
  [navix]="total_timesteps=1024 num_envs=4 num_steps=128"
  [brax]="total_timesteps=512 num_envs=4 num_steps=64 num_minibatches=4 update_epochs=1 max_episode_steps=100"
  [playground]="total_timesteps=512 num_envs=4 num_steps=64 num_minibatches=4 update_epochs=1 max_episode_steps=100"
  [craftax]="total_timesteps=256 num_envs=2 num_steps=64 update_epochs=1 max_episode_steps=100"
)
EXTRAS=("$@")
[ ${#EXTRAS[@]} -eq 0 ] && EXTRAS=(jumanji xminigrid navix brax playground craftax)

for extra in "${EXTRAS[@]}"; do
  if [ -z "${ENV[$extra]:-}" ]; then echo "unknown extra: $extra (known: ${!ENV[*]})" >&2; exit 2; fi
  venv="$ROOT/cx-$extra"; run="$LOGS/run-$extra"
  t0=$(date +%s)
  rm -rf "$run"
  if [ -n "${CX_SKIP_INSTALL:-}" ] && [ -x "$venv/bin/ppo-jax" ]; then
    pip_rc="reused"
  else
    rm -rf "$venv"
    nice -n 19 "$PY" -m venv "$venv"
    nice -n 19 "$venv/bin/pip" install -q -e "$REPO[$extra]" > "$LOGS/$extra.pip.log" 2>&1
    pip_rc=$?
  fi
  t1=$(date +%s)
  sets=(); for kv in ${SETS[$extra]}; do sets+=(--set "$kv"); done
  (cd "$LOGS" && nice -n 19 "$venv/bin/ppo-jax" train --env "${ENV[$extra]}" "${sets[@]}" \
     --out "$run" --no-progress) > "$LOGS/$extra.train.log" 2>&1
  train_rc=$?
  t2=$(date +%s)
  (cd "$LOGS" && nice -n 19 "$venv/bin/ppo-jax" eval "$run" --episodes 2) > "$LOGS/$extra.eval.log" 2>&1
  eval_rc=$?
  t3=$(date +%s)
  echo "$extra: pip rc=$pip_rc ($((t1 - t0)) s) · train --env ${ENV[$extra]} ${sets[*]}" \
       "rc=$train_rc ($((t2 - t1)) s) · eval rc=$eval_rc ($((t3 - t2)) s) · $(date -u +%FT%TZ)"
done
