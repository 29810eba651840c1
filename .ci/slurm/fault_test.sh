#!/usr/bin/env bash
# Fault injection for the SLURM CI stage: wait for one running SLURM job of a Snakemake run,
# `scancel` it, record what was cancelled, exit. Run it in the background next to
# `snakemake --executor slurm`; .ci/slurm/check_run.py then verifies that Snakemake retried
# the job, that the workflow completed and that no partial output is left.
#
#   .ci/slurm/fault_test.sh --record FILE [--log SNAKEMAKE_LOG] [--rule RULE]
#                           [--min-elapsed SECONDS] [--timeout SECONDS]
#
#   --record FILE       where to write "<slurm job id>|<comment>|<elapsed>" of the cancelled job
#   --log FILE          the run's Snakemake log: only jobs of its "SLURM run ID" are touched
#                       (otherwise any running job of the current user is a candidate)
#   --rule RULE         only cancel a job of this rule (default: any rule)
#   --min-elapsed S     only cancel a job that has run at least S seconds (default 3)
#   --timeout S         give up (exit 1, loudly) after S seconds without a candidate (default 600)
#
# The job's comment, set by snakemake-executor-plugin-slurm, is "rule_<rule>[_wildcards_<w>]".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
source "$HERE/common.sh"

record="" log="" rule="" min_elapsed=3 timeout_s=600
while (($#)); do
    case "$1" in
    --record) record="$2"; shift 2 ;;
    --log) log="$2"; shift 2 ;;
    --rule) rule="$2"; shift 2 ;;
    --min-elapsed) min_elapsed="$2"; shift 2 ;;
    --timeout) timeout_s="$2"; shift 2 ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) die "fault_test: unknown argument $1" ;;
    esac
done
[ -n "$record" ] || die "fault_test: --record FILE is required"
rm -f "$record"

# squeue's %M: [days-][hours:]minutes:seconds
to_seconds() {
    local t="$1" d=0 h=0 m=0 s=0
    [[ "$t" == *-* ]] && { d="${t%%-*}"; t="${t#*-}"; }
    IFS=: read -r -a parts <<<"$t"
    case "${#parts[@]}" in
    3) h="${parts[0]}" m="${parts[1]}" s="${parts[2]}" ;;
    2) m="${parts[0]}" s="${parts[1]}" ;;
    1) s="${parts[0]}" ;;
    esac
    echo $(((10#$d * 86400) + (10#$h * 3600) + (10#$m * 60) + 10#$s))
}

deadline=$((SECONDS + timeout_s))
run_id=""
while ((SECONDS < deadline)); do
    if [ -n "$log" ] && [ -z "$run_id" ]; then
        run_id="$(sed -n 's/.*SLURM run ID: \([^ ]*\).*/\1/p' "$log" 2>/dev/null | head -n1 || true)"
        [ -n "$run_id" ] || { sleep 1; continue; }
    fi
    name_filter=()
    [ -n "$run_id" ] && name_filter=(--name "$run_id")
    # %i job id (array tasks as <job>_<task>), %k comment, %M time used
    while IFS='|' read -r jobid comment elapsed; do
        [ -n "$jobid" ] || continue
        if [ -n "$rule" ]; then
            case "$comment" in
            "rule_${rule}" | "rule_${rule}_wildcards_"*) ;;
            *) continue ;;
            esac
        fi
        (($(to_seconds "$elapsed") >= min_elapsed)) || continue
        scancel "$jobid" || die "fault_test: scancel $jobid failed"
        echo "$jobid|$comment|$elapsed" >"$record"
        say "fault: cancelled running SLURM job $jobid ($comment) after $elapsed"
        exit 0
    done < <(squeue -h -t RUNNING -u "$(id -un)" "${name_filter[@]}" -o '%i|%k|%M' 2>/dev/null || true)
    sleep 1
done
die "fault_test: no running job${rule:+ of rule $rule} for ${min_elapsed}s within ${timeout_s}s"
