#!/usr/bin/env bash
# CI stage: run a workflow on a real one-node SLURM cluster, with one job cancelled mid-run.
#
#   .ci/slurm/run_stage.sh SNAKEMAKE_ARGS...
#
# e.g. the toy workflow that proves the cluster path:
#   SLURM_FAULT_RULE=frequency_probe SLURM_FAULT_MIN_ELAPSED=12 \
#     .ci/slurm/run_stage.sh -s tests/slurm/Snakefile --directory /tmp/s2r-slurm-toy
# or the real reduced demo:
#   .ci/slurm/run_stage.sh --configfile tests/config/e2e.yaml --directory /tmp/s2r-slurm all
#
# Steps: up.sh -> profile = profiles/slurm + .ci/slurm/overlay (make_overlay.py) ->
# `snakemake --profile <that> SNAKEMAKE_ARGS...` with fault_test.sh cancelling one running
# job in parallel -> check_run.py (SLURM job ids, GPU requests, the cancelled-and-retried
# job, no partial output) -> dry run says "Nothing to be done" -> down.sh (always, via trap).
#
# Environment:
#   SLURM_FAULT_RULE         rule whose running job is cancelled (default: any rule)
#   SLURM_FAULT_MIN_ELAPSED  cancel only a job running at least this many seconds (default 3)
#   SLURM_FAULT=0            no fault injection
#   SLURM_STAGE_TIMEOUT      seconds allowed for the snakemake run (default 1080)
#   SLURM_STAGE_DIR          stage logs, generated profile (default /tmp/synth2real-slurm-stage)
#   SLURM_STAGE_KEEP_UP=1    leave the cluster running afterwards (debugging)
#   SLURM_PARTIAL_GLOBS      space-separated globs of partial files (default "*.tmp *.tmp.* *.partial")
#   PYTHON                   interpreter with snakemake + the SLURM plugin (default .venv/bin/python)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
source "$HERE/common.sh"

(($#)) || die "usage: run_stage.sh SNAKEMAKE_ARGS... (see the header of this script)"

STAGE="${SLURM_STAGE_DIR:-/tmp/synth2real-slurm-stage}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
TIMEOUT="${SLURM_STAGE_TIMEOUT:-1080}"
FAULT="${SLURM_FAULT:-1}"
read -r -a PARTIAL_GLOBS <<<"${SLURM_PARTIAL_GLOBS:-*.tmp *.tmp.* *.partial}"

[ -x "$PYTHON" ] || die "no python at $PYTHON (set PYTHON)"
# Jobs run `$PYTHON -m snakemake` on the node (sys.executable of this process); sbatch
# exports this environment (--export=ALL), so the venv also comes first on the jobs' PATH.
VENV_BIN="$(dirname "$PYTHON")"
export PATH="$VENV_BIN:$PATH"
if [ -f "$VENV_BIN/activate" ]; then
    VIRTUAL_ENV="$(dirname "$VENV_BIN")"
    export VIRTUAL_ENV
fi

# Work directory of the run (for the partial-output checks): --directory/-d, else cwd.
WORKDIR="$PWD"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
    --directory | -d) WORKDIR="${args[i + 1]:-}" ;;
    --directory=*) WORKDIR="${args[i]#--directory=}" ;;
    esac
done

rm -rf "$STAGE"
mkdir -p "$STAGE"
SMK_LOG="$STAGE/snakemake.log"
CANCELLED="$STAGE/cancelled.txt"
fault_pid=""
smk_pid=""

on_exit() {
    local rc=$?
    if [ -n "$fault_pid" ]; then kill "$fault_pid" 2>/dev/null || true; fi
    if [ -n "$smk_pid" ] && kill -0 "$smk_pid" 2>/dev/null; then
        kill "$smk_pid" 2>/dev/null || true
        sleep 2
        kill -9 "$smk_pid" 2>/dev/null || true
    fi
    if [ -d "$SLURM_CI_DIR/log" ]; then
        cp -r "$SLURM_CI_DIR/log" "$STAGE/daemon-logs" 2>/dev/null || true
    fi
    if [ "${SLURM_STAGE_KEEP_UP:-0}" != 1 ]; then
        "$HERE/down.sh" >/dev/null || echo "[slurm-ci] WARNING: down.sh failed" >&2
    fi
    if ((rc != 0)); then
        echo "[slurm-ci] stage FAILED (rc=$rc); logs in $STAGE" >&2
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

t0=$SECONDS
"$HERE/up.sh"
t_up=$((SECONDS - t0))

"$PYTHON" "$HERE/make_overlay.py" --out "$STAGE/profile"

: >"$SMK_LOG"
if [ "$FAULT" != 0 ]; then
    "$HERE/fault_test.sh" --record "$CANCELLED" --log "$SMK_LOG" \
        ${SLURM_FAULT_RULE:+--rule "$SLURM_FAULT_RULE"} \
        --min-elapsed "${SLURM_FAULT_MIN_ELAPSED:-3}" --timeout "$TIMEOUT" \
        >"$STAGE/fault.log" 2>&1 &
    fault_pid=$!
fi

t1=$SECONDS
timeout -k 30 "$TIMEOUT" "$PYTHON" -m snakemake --profile "$STAGE/profile" "$@" >"$SMK_LOG" 2>&1 &
smk_pid=$!
smk_rc=0
wait "$smk_pid" || smk_rc=$?
smk_pid=""
t_run=$((SECONDS - t1))

if [ -n "$fault_pid" ]; then
    if kill -0 "$fault_pid" 2>/dev/null; then
        kill "$fault_pid" 2>/dev/null || true
    fi
    wait "$fault_pid" 2>/dev/null || true
    fault_pid=""
    cat "$STAGE/fault.log"
fi

if ((smk_rc != 0)); then
    echo "----- $SMK_LOG (last 80 lines) -----" >&2
    tail -n 80 "$SMK_LOG" >&2
    ((smk_rc == 124 || smk_rc == 137)) && die "snakemake ran past ${TIMEOUT}s"
    die "snakemake failed (rc=$smk_rc) after ${t_run}s"
fi

check_args=(--log "$SMK_LOG" --workdir "$WORKDIR")
[ "$FAULT" != 0 ] && check_args+=(--cancelled "$CANCELLED")
for g in "${PARTIAL_GLOBS[@]}"; do check_args+=(--partial-glob "$g"); done
"$PYTHON" "$HERE/check_run.py" "${check_args[@]}"

# Everything is complete and consistent: a second run has nothing to do.
"$PYTHON" -m snakemake --profile "$STAGE/profile" "$@" --dry-run >"$STAGE/dryrun.log" 2>&1 ||
    { tail -n 40 "$STAGE/dryrun.log" >&2; die "dry run after the SLURM run failed"; }
grep -q "Nothing to be done" "$STAGE/dryrun.log" ||
    { tail -n 40 "$STAGE/dryrun.log" >&2; die "dry run after the SLURM run still has jobs to do"; }
say "ok: dry run after the SLURM run has nothing to do"

say "stage passed: cluster up ${t_up}s, snakemake run ${t_run}s, total $((SECONDS - t0))s" \
    "(logs: $STAGE)"
