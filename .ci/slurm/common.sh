# Shared helpers for .ci/slurm/*.sh (sourced, not executed).
# shellcheck shell=bash

SLURM_CI_DIR="${SLURM_CI_DIR:-/tmp/synth2real-slurm}"
# shellcheck disable=SC2034  # used by the scripts that source this file
SLURM_CI_MARKER="# written by synth2real .ci/slurm/up.sh"

say() { echo "[slurm-ci] $*"; }
die() {
    echo "[slurm-ci] ERROR: $*" >&2
    exit 1
}

# daemon_alive NAME: the pid in $SLURM_CI_DIR/NAME.pid runs a process called NAME.
daemon_alive() {
    local pidfile="$SLURM_CI_DIR/$1.pid" pid
    [ -s "$pidfile" ] || return 1
    pid="$(cat "$pidfile")"
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}

# stop_daemon NAME PIDFILE: SIGTERM the pid in PIDFILE (if it is NAME), wait, then SIGKILL.
stop_daemon() {
    local name="$1" pidfile="$2" pid
    [ -s "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            [ -d "/proc/$pid" ] || break
            sleep 0.1
        done
        if [ -d "/proc/$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$pidfile"
}

stop_slurm_daemons() {
    stop_daemon slurmd "$SLURM_CI_DIR/slurmd.pid"
    stop_daemon slurmctld "$SLURM_CI_DIR/slurmctld.pid"
}

dump_logs() {
    local f
    for f in "$SLURM_CI_DIR"/log/*; do
        [ -s "$f" ] || continue
        echo "----- $f (last 40 lines) -----" >&2
        tail -n 40 "$f" >&2
    done
    if [ -s /var/log/munge/munged.log ]; then
        echo "----- /var/log/munge/munged.log (last 10 lines) -----" >&2
        tail -n 10 /var/log/munge/munged.log >&2
    fi
}
