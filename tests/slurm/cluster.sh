#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the tests marked `slurm` (and for trying
# `hydra/launcher=slurm` by hand): Debian's munge, slurmctld and slurmd, no systemd, no cgroups.
#
#   tests/slurm/cluster.sh start    install the packages if missing (apt, as root), write the config,
#                                   start the daemons, wait until the node is idle; prints "started",
#                                   or "running" when it was up already
#   tests/slurm/cluster.sh stop     stop the daemons this script started (by their PID files)
#   tests/slurm/cluster.sh env      the line to export so that sbatch/squeue/sinfo find the cluster
#
# Everything lives in $DLRUN_SLURM_DIR (default /tmp/dlrun-slurm): slurm.conf, the munge socket,
# PID files, logs, spool. Exit status 77 means "cannot run here" (no root, no apt): the reason is the
# last line on stderr, and the tests are skipped with it.
set -euo pipefail

STATE=${DLRUN_SLURM_DIR:-/tmp/dlrun-slurm}
CONF=$STATE/slurm.conf
PACKAGES=(munge slurmctld slurmd slurm-client)
SKIP=77

skip() { echo "$*" >&2; exit $SKIP; }
die() { echo "$*" >&2; exit 1; }

running() {  # running NAME: the daemon whose PID file we wrote is alive
    local pid_file=$STATE/$1.pid
    [[ -s $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null || skip "SLURM is not installed and there is no apt-get (missing: ${missing[*]})"
    echo "installing ${missing[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    # a clean machine may have no package lists yet; policy-rc.d (containers) keeps the services stopped
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$STATE/apt.log" 2>&1 \
        || { apt-get update -qq >>"$STATE/apt.log" 2>&1 \
             && apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$STATE/apt.log" 2>&1; } \
        || skip "apt-get could not install ${missing[*]} (see $STATE/apt.log): $(tail -1 "$STATE/apt.log")"
}

write_config() {
    local host cpus mem
    host=$(hostname -s)
    cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # the CPUs this process may use
    # RealMemory a little under what slurmd sees, or the node is drained for "Low RealMemory";
    # the node and the controller at the loopback address: no name lookup of this host is needed
    mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    mem=$(( mem * 9 / 10 ))
    cat >"$CONF" <<EOF
# written by tests/slurm/cluster.sh: one node, this machine
ClusterName=dlrun
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
# no systemd, no cgroups: processes are tracked by their parent, tasks are not confined
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
# quick turn-arounds for the tests: kill 5 s after SIGTERM, forget finished jobs after 5 min
KillWait=5
MinJobAge=300
SchedulerParameters=batch_sched_delay=0,sched_min_interval=100000
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    running munged && return 0
    mkdir -p "$STATE/munge"
    cp /etc/munge/munge.key "$STATE/munge/munge.key"
    chown -R munge:munge "$STATE/munge"
    chmod 700 "$STATE/munge"
    chmod 400 "$STATE/munge/munge.key"
    chmod 711 "$STATE/munge"  # slurm (root) must reach the socket
    runuser -u munge -- munged --force --socket="$STATE/munge/munge.socket" --key-file="$STATE/munge/munge.key" \
        --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log" \
        --seed-file="$STATE/munge/munged.seed" \
        || die "munged did not start: $(tail -1 "$STATE/munge/munged.log" 2>/dev/null)"
    for _ in $(seq 50); do [[ -s $STATE/munge/munged.pid ]] && break; sleep 0.1; done
    cp "$STATE/munge/munged.pid" "$STATE/munged.pid"
}

wait_idle() {
    local state=""
    for _ in $(seq 120); do
        state=$(sinfo -h -N -o %T 2>/dev/null | head -1)
        [[ $state == idle* || $state == mixed* || $state == allocated* ]] && return 0
        sleep 0.5
    done
    die "the node did not become idle (state: ${state:-none}); see $STATE/slurmctld.log and $STATE/slurmd.log"
}

start() {
    [[ $(id -u) -eq 0 ]] || skip "starting a SLURM cluster needs root (munged, slurmctld and slurmd as root)"
    mkdir -p "$STATE"
    install_packages
    export SLURM_CONF=$CONF
    if running slurmctld && running slurmd && running munged; then
        wait_idle
        echo "running"  # started before: whoever started it stops it
        return 0
    fi
    stop 2>/dev/null || true
    mkdir -p "$STATE/ctld" "$STATE/spool"
    write_config
    start_munge
    slurmctld -f "$CONF" || die "slurmctld did not start: $(tail -1 "$STATE/slurmctld.log" 2>/dev/null)"
    slurmd -f "$CONF" || die "slurmd did not start: $(tail -1 "$STATE/slurmd.log" 2>/dev/null)"
    wait_idle
    echo "SLURM cluster up: export SLURM_CONF=$CONF" >&2
    echo "started"
}

stop_daemon() {  # stop_daemon NAME: SIGTERM by PID file, then wait for it to go
    local pid_file=$STATE/$1.pid pid
    [[ -s $pid_file ]] || return 0
    pid=$(cat "$pid_file")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pid_file"
}

stop() {
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon munged
    rm -f "$STATE/munge/munged.pid"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
