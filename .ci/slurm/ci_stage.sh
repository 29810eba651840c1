#!/usr/bin/env bash
# CI's SLURM stage for the real workflow: run tests/config/slurm.yaml through profiles/slurm on
# a one-node cluster (one job cancelled and retried), run the same config locally, and check
# that both give the same summary and distribution tables.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"
CONFIG=tests/config/slurm.yaml
WORK="${SLURM_CI_WORK:-/tmp/synth2real-ci}"
rm -rf "$WORK"
mkdir -p "$WORK"
start=$(date +%s)
# One CPU more than the machine has: the controller job holds one while it waits on the jobs.
SLURM_CI_CPUS="${SLURM_CI_CPUS:-$(($(nproc) + 1))}"
export SLURM_CI_CPUS

echo "== SLURM stage: $CONFIG through profiles/slurm, controller as a job (train_generator cancelled once, the controller killed and resubmitted) =="
SLURM_FAULT_RULE="${SLURM_FAULT_RULE:-train_generator}" SLURM_FAULT_MIN_ELAPSED="${SLURM_FAULT_MIN_ELAPSED:-5}" \
  "$HERE/run_stage.sh" all --configfile "$CONFIG" --directory "$WORK/slurm"

echo "== the same config, locally =="
.venv/bin/snakemake all --cores 2 --quiet all --configfile "$CONFIG" --directory "$WORK/local"

echo "== SLURM results vs local results =="
.venv/bin/python "$HERE/compare_results.py" "$WORK/slurm/results/slurm" "$WORK/local/results/slurm"
echo "SLURM stage finished in $(($(date +%s) - start)) s"
