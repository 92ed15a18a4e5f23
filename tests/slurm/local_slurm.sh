#!/usr/bin/env bash
# local_slurm.sh up|down|status: a real, throwaway, single-node Slurm cluster on localhost for the test suite.
#
#   up      install Debian's Slurm, munge and MariaDB if missing (root only), start munged, MariaDB, slurmdbd,
#           slurmctld and slurmd, wait until the node is idle and accounting (sacct) works, and print on stdout one
#           line, SLURM_CONF=<path>, for clients to export. Idempotent: a healthy cluster is left as it is.
#   down    stop what `up` started (running jobs cancelled first) and remove its folder. Idempotent.
#   status  exit 0 when the cluster is up and healthy, 1 otherwise.
#
# Every file of the cluster (configs, state, spool, logs, pid files, munge key, the MariaDB datadir and socket) lives
# in one folder, $RXF_SLURM_DIR (default /tmp/rxf-local-slurm); clients find the cluster through
# SLURM_CONF=<folder>/slurm.conf, so /etc/slurm, /etc/munge and the system's MariaDB are never read or touched. The one
# thing outside it: munged's socket, /run/munge/munge.socket.2 (a munged already answering there is used as it is).
# Progress goes to stderr. Exit codes: 0 ok, 1 failure (the relevant daemon log's tail printed), 2 usage,
# 3 cannot set up here (not root, Slurm missing and no apt-get, or another Slurm's daemons on this machine): the one
# line on stderr says why and what to run. RXF_SLURM_WAIT_S (default 60): how long `up` waits for the cluster.
set -euo pipefail

PROG=local_slurm.sh
DIR=${RXF_SLURM_DIR:-/tmp/rxf-local-slurm}
CONF=$DIR/slurm.conf
CLUSTER=rxf
WAIT_S=${RXF_SLURM_WAIT_S:-60} # how long `up` waits for the node to be idle and accounting to answer
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
# our daemons but munged, in start order, named as in /proc/PID/comm
DAEMONS=(mariadbd slurmdbd slurmctld slurmd)
# munged's default socket, the one Slurm's accounting clients (sacct, sacctmgr) use whatever AuthInfo says
MUNGE_SOCKET=/run/munge/munge.socket.2
# the standard ports of slurmctld, slurmd and slurmdbd; ours uses them too, so another cluster's daemons conflict
PORTS=(6817 6818 6819)
export PATH=$PATH:/usr/sbin:/sbin
# every Slurm command and daemon below (slurmdbd included: it reads slurmdbd.conf from SLURM_CONF's folder) uses ours
export SLURM_CONF=$CONF
# slurmdbd (libmariadb) connects to StorageHost=localhost through this socket rather than the system default one
export MYSQL_UNIX_PORT=$DIR/mysql/mysqld.sock

say() { echo "$PROG: $*" >&2; }

pidfile() {
    case $1 in
        munged) echo "$DIR/munge/munged.pid" ;;
        mariadbd) echo "$DIR/mysql/mysqld.pid" ;;
        *) echo "$DIR/run/$1.pid" ;;
    esac
}

logfile() {
    case $1 in
        mariadbd) echo "$DIR/log/mariadb.log" ;;
        munged) echo "$DIR/munge/munged.log" ;; # munged wants its log owned by munge, in a folder only munge writes
        *) echo "$DIR/log/$1.log" ;;
    esac
}

# the pid of our daemon $1 when it runs (its pid file names a live process of that name), else nothing and status 1
running_pid() {
    local file pid
    file=$(pidfile "$1")
    [[ -r $file ]] || return 1
    pid=$(tr -dc 0-9 <"$file")
    [[ -n $pid && "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$1" ]] || return 1
    echo "$pid"
}

# the last lines of daemon $1's log, and of what it printed on stdout/stderr while it started
log_tail() {
    local file
    for file in "$(logfile "$1")" "$DIR/log/$1.out"; do
        if [[ -s $file ]]; then
            say "last lines of $file:"
            tail -n 25 "$file" >&2
        fi
    done
}

fail() { # fail MESSAGE [DAEMON...]: the message, the named daemons' log tails, exit 1
    local message=$1 d
    shift
    say "$message"
    for d in "$@"; do log_tail "$d"; done
    exit 1
}

# the node's state as sinfo prints it (idle, mix, alloc, drain, down*, ...), empty when slurmctld does not answer
node_state() { timeout 10 sinfo -h -n localhost -o %t 2>/dev/null | head -n 1 || true; }

# accounting answers: slurmdbd runs, reaches MariaDB, and slurmctld registered the cluster (its ControlHost is set)
accounting_ok() {
    local host
    timeout 10 sacct -n -X -S now >/dev/null 2>&1 || return 1
    host=$(timeout 10 sacctmgr -n -P show cluster "$CLUSTER" format=controlhost 2>/dev/null) || return 1
    [[ -n $host ]]
}

# a munged answers on the default socket (ours, or the machine's: any munged serves a single-node cluster)
munge_ok() { munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }

healthy() {
    local d
    [[ -r $CONF ]] || return 1
    munge_ok || return 1
    for d in "${DAEMONS[@]}"; do running_pid "$d" >/dev/null || return 1; done
    [[ $(node_state) =~ ^(idle|mix|alloc|comp)$ ]] || return 1
    accounting_ok
}

print_conf() {
    say "up; use it with: export SLURM_CONF=$CONF"
    echo "SLURM_CONF=$CONF"
}

installed() {
    local cmd
    for cmd in slurmctld slurmd slurmdbd sbatch sacct sacctmgr munged mariadbd mariadb-install-db mariadb-admin; do
        command -v "$cmd" >/dev/null || return 1
    done
}

install_packages() {
    local log=$DIR/log/install.log created_policy=0 apt=(apt-get -y -qq --no-install-recommends)
    # wait for a dpkg lock another apt holds rather than fail at once
    apt+=(-o DPkg::Lock::Timeout=300)
    say "installing ${PACKAGES[*]} (log: $log)"
    # a policy-rc.d that exits 101 forbids the packages' init scripts to start their daemons (system munged, MariaDB
    # and Slurm on the standard ports) while they install: we start our own, from our folder
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "${PACKAGES[@]}" >"$log" 2>&1; then
        say "install failed; updating the package lists and retrying"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "${PACKAGES[@]}" >>"$log" 2>&1 ||
            fail "apt-get install ${PACKAGES[*]} failed" install
    fi
    if ((created_policy)); then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
}

# refuse (exit 3: cannot set up here) when Slurm daemons that are not ours run, or something else holds Slurm's ports
check_conflicts() {
    local d pid ours port
    for d in slurmctld slurmd slurmdbd; do
        ours=$(running_pid "$d" || true)
        for pid in $(pgrep -x "$d" || true); do
            if [[ $pid != "$ours" ]]; then
                say "another $d (pid $pid, not ours) runs on this machine; stop it first (or use that cluster)"
                exit 3
            fi
        done
    done
    for port in "${PORTS[@]}"; do
        if [[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]]; then
            say "port $port (Slurm's) is in use by another program; cannot start a local cluster"
            exit 3
        fi
    done
}

# `slurmd -C` describes this machine (CPUs, Boards, SocketsPerBoard, CoresPerSocket, ThreadsPerCore, RealMemory):
# the node line must not claim more, or slurmctld drains the node ("Low RealMemory", "Low CPUs")
node_hardware() {
    local line
    line=$(slurmd -C 2>/dev/null | grep -m 1 '^NodeName=') || fail "slurmd -C printed no NodeName line"
    echo "${line#NodeName=* }"
}

write_configs() {
    local hardware
    hardware=$(node_hardware)
    cat >"$CONF" <<EOF
# Written by tests/slurm/local_slurm.sh: a single-node test cluster. Every path is in $DIR.
ClusterName=$CLUSTER
# "localhost" works whatever the machine's hostname: slurmd is started with -N localhost
SlurmctldHost=localhost
# daemons and the jobs of this test cluster run as root
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire=10 (default 120 s): a requeued job may start again ~10 s after it ended
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$(pidfile slurmctld)
SlurmdPidFile=$(pidfile slurmd)
SlurmctldLogFile=$(logfile slurmctld)
SlurmdLogFile=$(logfile slurmd)
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups here: track a job's processes by parent pid, bind no tasks
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
# no mail to send from a test cluster
MailProg=/bin/true
# jobs may be requeued (scontrol requeue, --requeue); finished jobs stay in slurmctld (squeue, scontrol) 10 minutes
JobRequeue=1
MinJobAge=600
# a node that was DOWN (e.g. slurmd restarted) comes back by itself once its slurmd registers
ReturnToService=2
# a cancelled job's processes get SIGKILL 5 s after SIGTERM (default 30 s, the node stays busy that long)
KillWait=5
# schedule every 2 s (main and backfill; defaults 60 s and 30 s): a queued or requeued job starts soon
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
# allocate cores, not whole nodes: two 1-CPU jobs run side by side on a 2-core machine; memory is not tracked
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# job accounting in slurmdbd (MariaDB), so sacct works; nothing enforced, so no accounts or associations needed
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=localhost $hardware State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    # slurmdbd reads slurmdbd.conf from SLURM_CONF's folder; it must be mode 0600, owned by SlurmUser
    cat >"$DIR/slurmdbd.conf" <<EOF
# Written by tests/slurm/local_slurm.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$(logfile slurmdbd)
PidFile=$(pidfile slurmdbd)
DebugLevel=info
# MariaDB on its own socket (MYSQL_UNIX_PORT), no TCP; root logs in by unix_socket authentication, no password
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
    chown root:root "$DIR/slurmdbd.conf"
    chmod 600 "$DIR/slurmdbd.conf"
}

# wait up to $2 seconds for command $1 (a function or command line, run by eval) to succeed
wait_for() {
    local what=$1 limit=$2 start=$SECONDS
    until eval "$what"; do
        ((SECONDS - start < limit)) || return 1
        sleep 0.5
    done
}

start_munged() {
    if munge_ok; then
        say "using the munged that already answers on $MUNGE_SOCKET"
        return 0
    fi
    # Slurm 22.05's accounting clients (sacctmgr, sacct) ignore AuthInfo=socket=..., so our munged listens on the
    # default socket; without systemd nobody creates its folder
    install -d -o munge -g munge -m 0755 "$DIR/munge" "$(dirname "$MUNGE_SOCKET")"
    # a private key for this cluster (the machine's /etc/munge/munge.key, if any, is not used); munged insists on
    # the key being owned by its user and readable by nobody else
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chown munge:munge "$DIR/munge/munge.key"
    chmod 0400 "$DIR/munge/munge.key"
    # munged runs as the munge user (it owns key, seed and log); it daemonizes itself
    runuser -u munge -- munged --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" \
        --pid-file="$(pidfile munged)" --seed-file="$DIR/munge/munged.seed" --log-file="$(logfile munged)" \
        </dev/null >>"$DIR/log/munged.out" 2>&1 || fail "munged did not start" munged
    wait_for 'munge_ok' 10 || fail "munged did not start" munged
}

mariadb_ping() { mariadb-admin --no-defaults --socket="$MYSQL_UNIX_PORT" -uroot ping >/dev/null 2>&1; }

start_mariadb() {
    local log
    log=$(logfile mariadbd)
    install -d -o mysql -g mysql -m 0755 "$DIR/mysql"
    touch "$log"
    chown mysql:mysql "$log"
    if [[ ! -d $DIR/mysql/data/mysql ]]; then
        # a private datadir; root@localhost authenticates by unix socket (the connecting process runs as root)
        mariadb-install-db --no-defaults --user=mysql --datadir="$DIR/mysql/data" --skip-test-db \
            --auth-root-authentication-method=socket >>"$log" 2>&1 || fail "mariadb-install-db failed" mariadbd
    fi
    # --no-defaults: nothing from /etc/mysql (port, datadir, socket); --skip-networking: the socket only, no TCP
    # port; innodb_lock_wait_timeout=900 as slurmdbd asks; a small buffer pool: the test database is tiny (slurmdbd
    # logs "Database settings not recommended values: innodb_buffer_pool_size" at MariaDB's default 128M too)
    setsid mariadbd --no-defaults --user=mysql --datadir="$DIR/mysql/data" --socket="$MYSQL_UNIX_PORT" \
        --pid-file="$(pidfile mariadbd)" --log-error="$log" --skip-networking --skip-log-bin \
        --innodb-buffer-pool-size=32M --innodb-lock-wait-timeout=900 </dev/null >>"$log" 2>&1 &
    wait_for 'mariadb_ping' 60 || fail "MariaDB did not start" mariadbd
}

start_slurmdbd() {
    slurmdbd </dev/null >>"$DIR/log/slurmdbd.out" 2>&1 || fail "slurmdbd did not start" slurmdbd
    wait_for 'running_pid slurmdbd >/dev/null && timeout 5 sacctmgr -n list cluster >/dev/null 2>&1' 30 ||
        fail "slurmdbd did not start" slurmdbd mariadbd
    # register the cluster before slurmctld first connects (it then finds itself and sends its node and job data)
    if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster 2>/dev/null) ]]; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null || fail "sacctmgr add cluster $CLUSTER failed" slurmdbd
    fi
}

start_slurm() {
    slurmctld -f "$CONF" </dev/null >>"$DIR/log/slurmctld.out" 2>&1 || fail "slurmctld did not start" slurmctld
    wait_for 'running_pid slurmctld >/dev/null && timeout 5 scontrol ping >/dev/null 2>&1' 30 ||
        fail "slurmctld did not start" slurmctld
    # -N localhost: this slurmd is node "localhost" whatever the hostname
    slurmd -f "$CONF" -N localhost </dev/null >>"$DIR/log/slurmd.out" 2>&1 || fail "slurmd did not start" slurmd
}

up() {
    if healthy; then
        print_conf
        return 0
    fi
    if [[ $EUID -ne 0 ]]; then
        if installed; then
            say "needs root to start the cluster (munged, MariaDB and slurmd run as their own users): sudo $0 up"
        else
            say "needs root to install: sudo apt-get install -y --no-install-recommends ${PACKAGES[*]}"
        fi
        exit 3
    fi
    if ! installed && ! command -v apt-get >/dev/null; then
        say "Slurm is not installed and there is no apt-get; install ${PACKAGES[*]} (or their equivalents)"
        exit 3
    fi
    # a half-up or stale cluster in our folder: start again from nothing
    if [[ -e $DIR ]]; then
        say "the cluster in $DIR is not healthy; stopping it and starting afresh"
        down
    fi
    check_conflicts
    install -d -m 0755 "$DIR" "$DIR/log" "$DIR/run" "$DIR/state" "$DIR/spool"
    if ! installed; then
        install_packages
    fi
    write_configs
    start_munged
    start_mariadb
    start_slurmdbd
    start_slurm
    say "waiting up to ${WAIT_S}s for node localhost to be idle and accounting to answer"
    local start=$SECONDS state
    while :; do
        state=$(node_state)
        if [[ $state == drain* || $state == down* ]]; then
            # e.g. drained at first registration, or down before slurmd answered: put it back in service
            scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
        fi
        if [[ $state =~ ^(idle|mix|alloc)$ ]] && accounting_ok; then break; fi
        if ((SECONDS - start >= WAIT_S)); then
            say "node state: '${state:-no answer}'"
            fail "the cluster did not become ready within ${WAIT_S}s" slurmctld slurmd slurmdbd
        fi
        sleep 0.5
    done
    print_conf
}

# stop our daemons named in the arguments, those that run: SIGTERM to all at once, SIGKILL to any still there 15 s later
stop_daemons() {
    local d pid pids=() names=() waited=0 alive
    for d in "$@"; do
        pid=$(running_pid "$d") || continue
        say "stopping $d (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || continue
        pids+=("$pid")
        names+=("$d")
    done
    while :; do
        alive=0
        for d in "${!pids[@]}"; do
            [[ "$(cat "/proc/${pids[d]}/comm" 2>/dev/null)" == "${names[d]}" ]] || continue
            alive=1
            if ((waited == 150)); then
                say "${names[d]} (pid ${pids[d]}) ignored SIGTERM for 15 s; killing it"
                kill -KILL "${pids[d]}" 2>/dev/null || true
            fi
        done
        ((alive)) || return 0
        sleep 0.1
        waited=$((waited + 1))
    done
}

# our job steps left over once slurmd is gone (slurmstepd outlives slurmd): the slurmstepd processes whose environment
# (inherited from our slurmd) names our slurm.conf, and all their descendants (the jobs' processes)
our_job_processes() {
    local pid steps=()
    for pid in $(pgrep -x slurmstepd || true); do
        if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "SLURM_CONF=$CONF"; then steps+=("$pid"); fi
    done
    ((${#steps[@]})) || return 0
    ps -e -o pid=,ppid= | awk -v roots="${steps[*]}" '
        BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
        { parent[$1] = $2 }
        END {
            do {
                grew = 0
                for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 }
            } while (grew)
            for (p in keep) print p
        }'
}

down() {
    local pids
    if running_pid slurmctld >/dev/null; then
        # cancel every job, so that slurmd's job steps end with it (slurmstepd outlives slurmd otherwise)
        timeout 10 scancel --partition=debug >/dev/null 2>&1 || true
        wait_for '[[ -z $(timeout 5 squeue -h -t running,completing -o %i 2>/dev/null) ]]' 15 || true
    fi
    # the Slurm daemons first (slurmctld and slurmdbd may still write to the database), then MariaDB and munged
    stop_daemons slurmd slurmctld slurmdbd
    stop_daemons mariadbd munged
    # stray job processes (a job step slurmd could not end), identified by their SLURM_CONF
    pids=$(our_job_processes)
    if [[ -n $pids ]]; then
        say "killing leftover job processes: $(echo $pids)"
        kill -KILL $pids 2>/dev/null || true
    fi
    rm -rf "$DIR"
}

status() {
    if healthy; then
        say "up: $CONF"
        return 0
    fi
    say "not up (or not healthy): $DIR"
    return 1
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    *)
        echo "usage: $PROG up|down|status  (cluster folder: \$RXF_SLURM_DIR, default /tmp/rxf-local-slurm)" >&2
        exit 2
        ;;
esac
