#!/usr/bin/env bash
# Stop the CI SLURM cluster started by up.sh and clean up after it.
#
#   .ci/slurm/down.sh            # cancel jobs, stop slurmd/slurmctld/munged, remove state
#   SLURM_CI_KEEP_LOGS=1 ...     # keep $SLURM_CI_DIR/log (e.g. for CI artifacts)
#
# Safe to run twice or when nothing runs. Leaves the Debian packages installed, and removes
# only files that up.sh wrote (config files carrying its marker, placeholder devices it made).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
source "$HERE/common.sh"

if daemon_alive slurmctld; then
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    # Let slurmstepd reap the job processes before slurmd goes away.
    for _ in $(seq 40); do
        [ -z "$(squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null)" ] && break
        sleep 0.5
    done
fi
stop_slurm_daemons
stop_daemon munged /run/munge/munged.pid

for f in slurm.conf gres.conf cgroup.conf; do
    if [ -e "/etc/slurm/$f" ] && grep -qF "$SLURM_CI_MARKER" "/etc/slurm/$f"; then
        rm -f "/etc/slurm/$f"
    fi
done
if [ -s "$SLURM_CI_DIR/created_devices" ]; then
    while read -r dev; do
        case "$dev" in /dev/nvidia[0-9]*) rm -f "$dev" ;; esac
    done <"$SLURM_CI_DIR/created_devices"
fi

if [ "${SLURM_CI_KEEP_LOGS:-0}" = 1 ]; then
    find "$SLURM_CI_DIR" -mindepth 1 -maxdepth 1 ! -name log -exec rm -rf {} +
else
    rm -rf "$SLURM_CI_DIR"
fi
say "down"
