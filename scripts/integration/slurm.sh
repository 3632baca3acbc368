#!/usr/bin/env bash
# make integration (and make integration-slurm): quantize --shard on a real
# Slurm. Starts a one-node cluster on this machine from Debian's packages
# (slurm-wlm and munge, installed when missing): munged, slurmctld and
# slurmd on localhost, run as root from a temporary directory that holds
# their slurm.conf, key, sockets, state and logs, and stopped at exit. On a
# generated checkpoint it then
#   1. submits deploy/slurm/submit.sh's array job (--shard auto, one task
#      per part) and the merge job that depends on it (afterok), waits for
#      both, and checks that the merged checkpoint is byte for byte the one
#      a single quantize writes;
#   2. submits them again, kills one task's quantkit with SIGKILL while it
#      writes its part (a node lost mid-run: no cleanup), checks that the
#      merge job is cancelled rather than run, reruns that task alone
#      (sbatch --array=K), merges, and checks the same identity.
# Slurm needs root (its daemons, and jobs run as root here): not root, it
# skips with a message. In CI (CI set) a missing piece fails; elsewhere
# it skips. QUANTKIT_BIN is the binary under test (default build/quantkit).
# SLURM_TEST_PARAMS sizes the checkpoint (default 300M parameters, f32:
# 1.2 GB, so that a part takes seconds and its task is caught mid-run).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
BIN=${QUANTKIT_BIN:-$root/build/quantkit}
PARAMS=${SLURM_TEST_PARAMS:-300M}
PARTS=4

skip() {
	if [ -n "${CI:-}" ] && [ "${2:-}" != always ]; then
		echo "slurm: FAIL: $1" >&2
		exit 1
	fi
	echo "slurm: SKIP: $1" >&2
	exit 0
}
say() { echo "slurm: $*" >&2; }
die() {
	echo "slurm: FAIL: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || skip "not root: Slurm's daemons (slurmctld, slurmd, munged) and its jobs here run as root" always
[ -x "$BIN" ] || die "$BIN: no quantkit binary (make build)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
	say "installing slurm-wlm and munge (Debian's packages)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y slurm-wlm munge >/dev/null 2>&1 ||
		{ apt-get update >/dev/null && apt-get install -y slurm-wlm munge >/dev/null; } ||
		skip "apt-get install slurm-wlm munge failed"
fi
say "$(slurmctld -V), $(munged --version 2>&1 | awk '{print $1; exit}')"

work=$(mktemp -d /tmp/quantkit-slurm.XXXXXX)
chmod 0711 "$work"
pids=()
cleanup() {
	local rc=$?
	# Jobs still running (a failure mid-way) end before the daemons do:
	# their slurmstepd and quantkit would outlive slurmd.
	if [ -f "${SLURM_CONF:-}" ] && [ -n "$(squeue -h -o %A 2>/dev/null)" ]; then
		scancel --full --user=root 2>/dev/null || true
		for _ in $(seq 50); do
			[ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
			sleep 0.2
		done
	fi
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ "$rc" != 0 ]; then
		for f in "$work"/log/*.log "$work"/jobs/*.out; do
			[ -f "$f" ] || continue
			echo "--- $f (last 30 lines)" >&2
			tail -n 30 "$f" >&2
		done
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$work"/{munge,state,spool,log,jobs,data}
chmod 0711 "$work/munge"

# munged with a key of its own, on a socket of its own: nothing of the
# machine's munge is used or changed.
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$work/munge/munge.key"
munged --foreground --force --key-file="$work/munge/munge.key" --socket="$work/munge/munge.socket" \
	--pid-file="$work/munge/munged.pid" --seed-file="$work/munge/munged.seed" \
	--log-file="$work/log/munged.log" >>"$work/log/munged.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	[ -S "$work/munge/munge.socket" ] && break
	sleep 0.1
done
munge --socket="$work/munge/munge.socket" -n </dev/null | unmunge --socket="$work/munge/munge.socket" >/dev/null ||
	die "munged does not answer on $work/munge/munge.socket"

# Two free TCP ports for slurmctld and slurmd.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 20000))
		(echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}
ctld_port=$(free_port)
slurmd_port=$(free_port)
[ "$ctld_port" != "$slurmd_port" ] || slurmd_port=$((ctld_port + 1))
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
mem_mb=$((mem_mb > 2048 ? mem_mb - 1024 : mem_mb / 2))
export SLURM_CONF=$work/slurm.conf
cat >"$SLURM_CONF" <<EOF
# A one-node cluster on localhost for scripts/integration/slurm.sh.
ClusterName=quantkit-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge/munge.socket
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MailProg=/bin/true
SchedulerParameters=sched_interval=1
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=$mem_mb State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -i -f "$SLURM_CONF" >>"$work/log/slurmctld.log" 2>&1 &
pids+=($!)
slurmd -D -N localhost -f "$SLURM_CONF" >>"$work/log/slurmd.log" 2>&1 &
pids+=($!)
say "waiting for node localhost to be idle (slurmctld port $ctld_port, slurmd port $slurmd_port)"
state=
for _ in $(seq 120); do
	state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
	[ "$state" = idle ] && break
	sleep 0.5
done
[ "$state" = idle ] || die "node localhost is ${state:-not known to slurmctld} after 60 s"
sinfo >&2

# The jobs' logs (quantkit-*.out) go to the directory they are submitted
# from.
cd "$work/jobs"
export QUANTKIT=$BIN
submit=$root/deploy/slurm/submit.sh
data=$work/data

# job_states ID: the state of each task of job ID, one per line.
job_states() { scontrol -o show job "$1" | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
# wait_jobs ID...: waits until every task of the jobs has ended.
wait_jobs() {
	local id
	for _ in $(seq 1800); do
		for id in "$@"; do
			job_states "$id" | grep -qE 'PENDING|RUNNING|CONFIGURING|COMPLETING|SUSPENDED' && continue 2
		done
		return 0
	done
	die "jobs $* still running after 15 minutes: $(squeue 2>&1)"
}
# expect_states ID STATE: every task of job ID ended in STATE.
expect_states() {
	local got
	got=$(job_states "$1" | sort -u | tr '\n' ' ')
	[ "$got" = "$2 " ] || die "job $1: tasks ended ${got:-nowhere}, want $2 (logs in $work/jobs)"
}
# same A B: directories A and B hold the same files, byte for byte.
same() {
	diff -r "$1" "$2" >&2 || die "$2 differs from $1"
	say "$(basename "$2") = $(basename "$1"), byte for byte: $(cd "$2" && ls | tr '\n' ' ')"
}
submit() { "$submit" -n "$PARTS" -s --cpus-per-task=1 "$@"; }
flags=(--scheme int4 --shard-size 100MB)

say "generating a $PARAMS-parameter checkpoint and quantizing it in one process"
"$BIN" gen --params "$PARAMS" --seed 7 -o "$data/in" >/dev/null
"$BIN" quantize "$data/in" -o "$data/one" "${flags[@]}" >/dev/null

say "1. the array job ($PARTS tasks) and the merge job after it"
read -r job merge < <(submit "$data/in" "$data/parts1" "$data/merged1" "${flags[@]}")
wait_jobs "$job" "$merge"
expect_states "$job" COMPLETED
expect_states "$merge" COMPLETED
grep -h 'is part' quantkit-quantize-"$job"_*.out >&2
cat quantkit-merge-"$merge".out >&2
same "$data/one" "$data/merged1"

kill_task=2
say "2. task $kill_task killed (SIGKILL) while it writes its part, then rerun alone"
parts=$data/parts2
mkdir -p "$parts"
# catch JOB: waits until task kill_task of JOB writes its part (its
# temporary .part-K-of-N.tmp-PID-* appears) and kills that quantkit (PID)
# with SIGKILL; fails if the task ends first.
catch() {
	local tmp pid=
	for _ in $(seq 6000); do
		for tmp in "$parts"/.part-"$kill_task"-of-"$PARTS".tmp-*; do
			[ -e "$tmp" ] || continue
			pid=${tmp##*.tmp-}
			pid=${pid%%-*}
			break 2
		done
		job_states "$1" | grep -qE 'PENDING|RUNNING|CONFIGURING' || return 1
		sleep 0.01
	done
	[ -n "$pid" ] || return 1
	grep -qa -- --shard "/proc/$pid/cmdline" 2>/dev/null || return 1
	kill -KILL "$pid" 2>/dev/null || return 1
	say "killed task $kill_task's quantkit (pid $pid) while it wrote $tmp"
}
# The part takes about a second: should the task finish before it is
# caught, its part is removed and the task run again, twice at most.
read -r job merge < <(submit "$data/in" "$parts" "$data/merged2" "${flags[@]}")
for try in 1 2 3; do
	caught=0
	catch "$job" && caught=1
	wait_jobs "$job" "$merge"
	[ "$caught" = 1 ] && [ ! -e "$parts/part-$kill_task-of-$PARTS" ] && break
	[ "$try" != 3 ] || die "task $kill_task ended before it was caught mid-run, 3 times"
	say "task $kill_task ended before it was caught mid-run: again"
	rm -rf "$parts/part-$kill_task-of-$PARTS" "$data/merged2"
	read -r job merge < <(submit -k "$kill_task" "$data/in" "$parts" "$data/merged2" "${flags[@]}")
done
[ "$(job_states "${job}_$kill_task")" = FAILED ] || die "task $kill_task ended $(job_states "${job}_$kill_task"), want FAILED"
expect_states "$merge" CANCELLED
say "task $kill_task FAILED and the merge job was cancelled (afterok); the other parts are there: $(cd "$parts" && ls | tr '\n' ' ')"
if "$BIN" merge "$parts" -o "$data/early" 2>"$work/early.err"; then
	die "merge without part $kill_task succeeded"
fi
grep -q "part $kill_task of $PARTS (of plan [0-9a-f]*) is missing" "$work/early.err" || die "merge without part $kill_task: $(cat "$work/early.err")"
say "merge by hand now: $(cat "$work/early.err")"
read -r job merge < <(submit -k "$kill_task" "$data/in" "$parts" "$data/merged2" "${flags[@]}")
wait_jobs "$job" "$merge"
expect_states "$job" COMPLETED
expect_states "$merge" COMPLETED
cat quantkit-quantize-"$job"_"$kill_task".out >&2
same "$data/one" "$data/merged2"
say "PASS"
