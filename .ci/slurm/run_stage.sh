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
# Steps: up.sh -> profile = profiles/slurm + .ci/slurm/overlay (make_overlay.py), then the CI
# site profile .ci/slurm/site (partitions cpu/gpu, no account) -> the controller submitted as
# a SLURM job (profiles/slurm/controller.sbatch SNAKEMAKE_ARGS...) with fault_test.sh
# cancelling one running job in parallel -> the controller job itself cancelled mid-run and
# submitted again -> check_run.py (SLURM job ids, GPU requests and partitions, no account,
# the cancelled-and-retried job, nothing finished redone after the controller restart, no
# partial output) -> dry run says "Nothing to be done" -> down.sh (always, via trap).
#
# Environment:
#   SLURM_FAULT_RULE         rule whose running job is cancelled (default: any rule)
#   SLURM_FAULT_MIN_ELAPSED  cancel only a job running at least this many seconds (default 3)
#   SLURM_FAULT=0            no fault injection
#   SLURM_CONTROLLER_KILL=0  do not kill and resubmit the controller
#   SLURM_KILL_AFTER_RULE    kill the controller once a job of this rule finished (default:
#                            SLURM_FAULT_RULE, else any rule)
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
KILL="${SLURM_CONTROLLER_KILL:-1}"
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
CANCELLED="$STAGE/cancelled.txt"
fault_pid=""

on_exit() {
    local rc=$?
    if [ -n "$fault_pid" ]; then kill "$fault_pid" 2>/dev/null || true; fi
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

# The controller runs as a SLURM job (profiles/slurm/controller.sbatch, as the README says),
# with the stage's profile and then the CI site profile (partitions, no account).
export SYNTH2REAL_PROFILE="$STAGE/profile" SNAKEMAKE=snakemake
submit_controller() {
    sbatch --parsable --chdir "$REPO" --partition cpu --cpus-per-task 1 --mem 1024M \
        --time "$(((TIMEOUT + 59) / 60))" --output "$STAGE/controller-%j.log" \
        "$REPO/profiles/slurm/controller.sbatch" --profile "$HERE/site" "$@"
}
job_state() { scontrol show job -o "$1" 2>/dev/null | sed -n 's/.* JobState=\([A-Z_]*\).*/\1/p'; }
# wait_done JOBID: wait until the job has ended (or the stage's deadline); print its state.
wait_done() {
    local st
    while :; do
        st="$(job_state "$1")"
        case "$st" in PENDING | RUNNING | COMPLETING | CONFIGURING | SUSPENDED | "") ;; *) break ;; esac
        ((SECONDS < deadline)) || { echo TIMEOUT; return; }
        sleep 2
    done
    echo "$st"
}
deadline=$((SECONDS + TIMEOUT))
t1=$SECONDS

ctl1="$(submit_controller "$@")"
SMK_LOG="$STAGE/controller-$ctl1.log"
say "controller 1: SLURM job $ctl1 (log $SMK_LOG)"
until [ -e "$SMK_LOG" ]; do
    ((SECONDS < deadline)) || die "controller $ctl1 never started"
    sleep 1
done
if [ "$FAULT" != 0 ]; then
    "$HERE/fault_test.sh" --record "$CANCELLED" --log "$SMK_LOG" \
        ${SLURM_FAULT_RULE:+--rule "$SLURM_FAULT_RULE"} \
        --min-elapsed "${SLURM_FAULT_MIN_ELAPSED:-3}" --timeout "$TIMEOUT" \
        >"$STAGE/fault.log" 2>&1 &
    fault_pid=$!
fi

logs=("$SMK_LOG")
if [ "$KILL" != 0 ]; then
    # Kill the controller mid-run, once a job of the fault rule (or any rule) has finished
    # and another job of the run is running; then submit it again: it must resume.
    after="${SLURM_KILL_AFTER_RULE:-${SLURM_FAULT_RULE:-}}"
    if [ "$FAULT" != 0 ]; then
        # ... and only once controller 1 has seen the cancelled job fail and resubmitted it.
        until [ -s "$CANCELLED" ] && grep -q "Trying to restart job" "$SMK_LOG"; do
            ((SECONDS < deadline)) || die "fault injection never fired or was never retried"
            sleep 1
        done
    fi
    until grep -q "Finished jobid: [0-9]* (Rule: ${after:-[a-z_]*})" "$SMK_LOG"; do
        [ "$(job_state "$ctl1")" = RUNNING ] || die "controller $ctl1 ended before the kill"
        ((SECONDS < deadline)) || die "no job of ${after:-any rule} finished"
        sleep 1
    done
    run_id="$(sed -n 's/.*SLURM run ID: \([^ ]*\).*/\1/p' "$SMK_LOG" | head -n1)"
    running=""
    while [ -z "$running" ]; do
        ((SECONDS < deadline)) || die "no running job to kill the controller beside"
        sleep 1
        running="$(squeue -h -t RUNNING --name "$run_id" -o '%i:%k' 2>/dev/null | xargs)"
    done
    scancel "$ctl1"
    say "killed controller $ctl1 while these ran: $running"
    echo "$ctl1|$running" >"$STAGE/controller_killed.txt"
    say "controller 1 ended: $(wait_done "$ctl1")"
    ctl2="$(submit_controller "$@")"
    logs+=("$STAGE/controller-$ctl2.log")
    say "controller 2: SLURM job $ctl2 (log ${logs[-1]})"
    st="$(wait_done "$ctl2")"
    grep -E "cancelling .* of an earlier controller" "${logs[-1]}" ||
        say "controller 2 found no leftover jobs (controller 1 cancelled its own)"
else
    st="$(wait_done "$ctl1")"
fi
t_run=$((SECONDS - t1))

if [ -n "$fault_pid" ]; then
    if kill -0 "$fault_pid" 2>/dev/null; then
        kill "$fault_pid" 2>/dev/null || true
    fi
    wait "$fault_pid" 2>/dev/null || true
    fault_pid=""
    cat "$STAGE/fault.log"
fi

if [ "$st" != COMPLETED ]; then
    echo "----- ${logs[-1]} (last 80 lines) -----" >&2
    tail -n 80 "${logs[-1]}" >&2
    [ "$st" = TIMEOUT ] && die "the run went past ${TIMEOUT}s"
    die "the controller job ended $st after ${t_run}s"
fi

check_args=(--workdir "$WORKDIR")
for l in "${logs[@]}"; do check_args+=(--log "$l"); done
if [ "$KILL" != 0 ]; then check_args+=(--killed "$STAGE/controller_killed.txt"); fi
[ "$FAULT" != 0 ] && check_args+=(--cancelled "$CANCELLED")
for g in "${PARTIAL_GLOBS[@]}"; do check_args+=(--partial-glob "$g"); done
"$PYTHON" "$HERE/check_run.py" "${check_args[@]}"

# Everything is complete and consistent: a second run has nothing to do.
"$PYTHON" -m snakemake --profile "$STAGE/profile" --profile "$HERE/site" "$@" --dry-run >"$STAGE/dryrun.log" 2>&1 ||
    { tail -n 40 "$STAGE/dryrun.log" >&2; die "dry run after the SLURM run failed"; }
grep -q "Nothing to be done" "$STAGE/dryrun.log" ||
    { tail -n 40 "$STAGE/dryrun.log" >&2; die "dry run after the SLURM run still has jobs to do"; }
say "ok: dry run after the SLURM run has nothing to do"

say "stage passed: cluster up ${t_up}s, snakemake run ${t_run}s, total $((SECONDS - t0))s" \
    "(logs: $STAGE)"
