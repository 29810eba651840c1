#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on this machine for CI.
#
#   .ci/slurm/up.sh          # install (if needed), configure, start, wait until the node is idle
#
# - installs Debian's slurm-wlm + munge when missing (apt, quiet, non-interactive);
# - writes /etc/slurm/{slurm,gres,cgroup}.conf: one node (`hostname -s`), all its CPUs,
#   RealMemory a bit below the free memory, two placeholder GPUs (gpu:2 backed by
#   /dev/nvidia0 and /dev/nvidia1), partitions `cpu` (default) and `gpu` on that node, no
#   accounting (status via squeue),
#   no cgroups;
# - starts munged, slurmctld, slurmd as root in the background; state and logs go to
#   $SLURM_CI_DIR (default /tmp/synth2real-slurm);
# - waits until `sinfo` shows the node idle, or fails loudly with the daemon logs.
#
# Idempotent: when the daemons already run with the same configuration it only re-checks the
# node; otherwise it restarts them. Quiet on success (one summary line), loud on failure.
# Environment: SLURM_CI_DIR, SLURM_CI_TIMEOUT (seconds to wait for idle, default 60),
# SLURM_CI_GPUS (placeholder GPU count, default 2), SLURM_CI_CPUS (CPUs the node advertises;
# default: the real count; more oversubscribes the machine, via SlurmdParameters=config_overrides).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
source "$HERE/common.sh"

TIMEOUT="${SLURM_CI_TIMEOUT:-60}"
NGPUS="${SLURM_CI_GPUS:-2}"
t0=$SECONDS

# --- 1. packages --------------------------------------------------------------------------
need_pkgs=()
for cmd_pkg in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
    command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || need_pkgs+=("${cmd_pkg#*:}")
done
if ((${#need_pkgs[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    log="$(mktemp)"
    # Only refresh the index when it is missing or older than a day.
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n1)" ]; then
        apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; die "apt-get update failed"; }
    fi
    # slurm-wlm = slurmctld + slurmd + slurm-client; no recommends (keeps it ~10 packages).
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >"$log" 2>&1 ||
        { cat "$log" >&2; die "apt-get install slurm-wlm munge failed"; }
    rm -f "$log"
    say "installed slurm-wlm + munge in $((SECONDS - t0)) s"
fi
t_pkgs=$((SECONDS - t0))

# --- 2. munge -----------------------------------------------------------------------------
id munge >/dev/null 2>&1 || die "user 'munge' missing after installing munge"
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key >/dev/null
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged >/dev/null 2>&1 || true
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null 2>&1 || {
        tail -n 30 /var/log/munge/munged.log >&2 2>/dev/null || true
        die "munged did not start"
    }
fi

# --- 3. configuration ---------------------------------------------------------------------
mkdir -p "$SLURM_CI_DIR"/{log,state,spool}
# Placeholder GPU device files. slurmd only stat()s them; character devices with the NVIDIA
# major number look like the real thing, plain files are the fallback.
gpu_files=()
for ((i = 0; i < NGPUS; i++)); do
    dev="/dev/nvidia$i"
    if [ ! -e "$dev" ]; then
        mknod -m 0666 "$dev" c 195 "$i" 2>/dev/null || touch "$dev"
        echo "$dev" >>"$SLURM_CI_DIR/created_devices"
    fi
    gpu_files+=("$dev")
done

node="$(hostname -s)"
# The node's real topology, as slurmd sees it (so slurmd never drains it for "low CPUs").
hw="$(slurmd -C 2>/dev/null | head -n1)"
cpus="$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")"
topo="$(grep -o 'Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' <<<"$hw" || true)"
[ -n "$cpus" ] || cpus="$(nproc)"
overrides=""
task_plugin=task/affinity
if [ -n "${SLURM_CI_CPUS:-}" ] && ((SLURM_CI_CPUS != cpus)); then
    cpus="$SLURM_CI_CPUS"
    topo=""
    overrides="SlurmdParameters=config_overrides"
    task_plugin=task/none # CPUs that don't exist can't be pinned
fi
# RealMemory: 90% of what is available now, never above slurmd's own figure.
avail_mb=$(($(awk '/^MemAvailable:/ {print $2}' /proc/meminfo) / 1024))
hw_mb="$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")"
mem_mb=$((avail_mb * 9 / 10))
[ -n "$hw_mb" ] && ((mem_mb > hw_mb)) && mem_mb=$hw_mb
# Keep the figure of an earlier run while it still fits, so a second run sees no change.
old_mb="$(sed -n 's/^NodeName=.* RealMemory=\([0-9]*\).*/\1/p' /etc/slurm/slurm.conf 2>/dev/null || true)"
if [ -n "$old_mb" ] && ((old_mb <= avail_mb && old_mb * 10 >= mem_mb * 9)); then
    mem_mb=$old_mb
fi

last=$((NGPUS - 1))
conf_tmp="$(mktemp -d)"
trap 'rm -rf "$conf_tmp"' EXIT
cat >"$conf_tmp/slurm.conf" <<EOF
$SLURM_CI_MARKER
ClusterName=synth2real-ci
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
StateSaveLocation=$SLURM_CI_DIR/state
SlurmdSpoolDir=$SLURM_CI_DIR/spool
SlurmctldPidFile=$SLURM_CI_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_CI_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_CI_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_CI_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups (CI runs in a container/VM without a delegated cgroup tree); task/affinity
# only pins CPUs (sched_setaffinity), so srun --cpu-bind works (task/none when oversubscribed).
ProctrackType=proctrack/linuxproc
TaskPlugin=$task_plugin
# No accounting: job state comes from squeue only.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Scheduling: GPUs as GRES, cores and memory as consumable resources, fast cycles.
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_min_interval=100000,default_queue_depth=200
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
EnforcePartLimits=ALL
# Finished jobs stay visible to squeue/scontrol for 1 h: the executor reads their end state
# there, and check_run.py reads every job of the stage (which must end within 20 min).
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
MessageTimeout=10
$overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus ${topo} RealMemory=$mem_mb Gres=gpu:$NGPUS State=UNKNOWN
# Two partitions on the one node, as on a real site: CPU jobs go to cpu, GPU jobs to gpu
# (chosen by the SLURM plugin from .ci/slurm/site/partitions.yaml).
PartitionName=cpu Nodes=$node Default=YES MaxTime=7-00:00:00 State=UP OverSubscribe=NO
PartitionName=gpu Nodes=$node MaxTime=7-00:00:00 State=UP OverSubscribe=NO
EOF
cat >"$conf_tmp/gres.conf" <<EOF
$SLURM_CI_MARKER
AutoDetect=off
NodeName=$node Name=gpu File=/dev/nvidia[0-$last]
EOF
cat >"$conf_tmp/cgroup.conf" <<EOF
$SLURM_CI_MARKER
# Nothing is constrained: TaskPlugin=$task_plugin, ProctrackType=proctrack/linuxproc.
CgroupPlugin=autodetect
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF

mkdir -p /etc/slurm
for f in slurm.conf gres.conf cgroup.conf; do
    if [ -e "/etc/slurm/$f" ] && ! grep -qF "$SLURM_CI_MARKER" "/etc/slurm/$f"; then
        die "/etc/slurm/$f exists and was not written by this script; refusing to overwrite"
    fi
done
changed=0
for f in slurm.conf gres.conf cgroup.conf; do
    if ! cmp -s "$conf_tmp/$f" "/etc/slurm/$f"; then
        install -m 0644 "$conf_tmp/$f" "/etc/slurm/$f"
        changed=1
    fi
done

# --- 4. daemons ---------------------------------------------------------------------------
t1=$SECONDS
if ((changed)) || ! daemon_alive slurmctld || ! daemon_alive slurmd; then
    stop_slurm_daemons
    : >"$SLURM_CI_DIR/log/slurmctld.log"
    : >"$SLURM_CI_DIR/log/slurmd.log"
    # -c: start from a clean state (no jobs left over from an earlier run).
    slurmctld -c >"$SLURM_CI_DIR/log/slurmctld.out" 2>&1 ||
        { dump_logs; die "slurmctld failed to start"; }
    # Start slurmd only once slurmctld answers, or its first registration fails and it
    # retries ~10 s later.
    # (slurmctld daemonizes and writes its pid file a moment later.)
    up=0
    for _ in $(seq 150); do
        if timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP'; then
            up=1
            break
        fi
        sleep 0.2
    done
    ((up)) || { dump_logs; die "slurmctld does not answer (log above)"; }
    slurmd -N "$node" >"$SLURM_CI_DIR/log/slurmd.out" 2>&1 ||
        { dump_logs; die "slurmd failed to start"; }
fi

state=""
deadline=$((SECONDS + TIMEOUT))
while ((SECONDS < deadline)); do
    # (a daemon writes its pid file a moment after it forks; give it 5 s to appear)
    for d in slurmctld slurmd; do
        if ! daemon_alive "$d" && { [ -s "$SLURM_CI_DIR/$d.pid" ] || ((SECONDS > t1 + 5)); }; then
            dump_logs
            die "$d exited during start-up (log above)"
        fi
    done
    state="$(timeout 5 sinfo -h -N -n "$node" -o '%t' 2>/dev/null | head -n1 || true)"
    case "$state" in
    idle | mix | alloc) break ;;
    down* | drain* | drng*)
        # After a restart the node may come back DOWN; resume it once.
        scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true
        ;;
    esac
    sleep 0.5
done
case "$state" in
idle | mix | alloc) ;;
*)
    echo "node state: '${state:-<no answer from slurmctld>}'" >&2
    scontrol show node "$node" >&2 2>/dev/null || true
    dump_logs
    die "node $node not idle after ${TIMEOUT}s"
    ;;
esac

say "up: node $node CPUs=$cpus RealMemory=${mem_mb}M gpu:$NGPUS partitions=cpu,gpu" \
    "(packages ${t_pkgs}s, daemons $((SECONDS - t1))s, total $((SECONDS - t0))s)"
