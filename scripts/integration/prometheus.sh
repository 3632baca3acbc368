#!/usr/bin/env bash
# make integration, the Prometheus part: a real Prometheus server (Debian's
# prometheus package, installed with apt-get when missing) scrapes `quantkit
# monitor` running on fake sources, and the answers of its HTTP API are
# checked against what the fakes produced:
#
#   - a fake powercap tree (QUANTKIT_RAPL_ROOT) whose package counter draws
#     50 W and wraps at 200 J (every 4 s), a dram zone at 10 W, and a psys
#     zone that is made unreadable for a while;
#   - a fake NVML (QUANTKIT_FAKE_NVML, a JSON file) with one GPU at 300 W,
#     taken away for a while.
#
# Checked: rate() of the CPU and GPU energy counters equals the fakes' power
# and no reset is seen across the wraps; the counter equals the fake's
# energy since it started; quantkit_source_up follows the unreadable zone;
# a GPU that goes away leaves the scrape; the job energy that `quantkit
# profile --monitor` and `quantkit bench --monitor` report equals what
# their --json reports say, and the INT8/FP32 ratio the Grafana dashboard
# draws comes out of it; `promtool check metrics` passes on the exposition;
# and 50 concurrent scrapers for 30 s (scripts/integration/loadscrape) see
# no error while the monitor's memory stays bounded (latency printed).
#
# QUANTKIT_BIN is the binary under test (default build/quantkit). Without
# prometheus and no way to install it (not root, no apt-get), the test is
# skipped with a message, or fails when CI is set.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
QK=${QUANTKIT_BIN:-$PWD/build/quantkit}
LOAD_SECONDS=${QUANTKIT_LOAD_SECONDS:-30}
log() { echo "prometheus-test: $*" >&2; }
die() { log "FAIL: $*"; exit 1; }
skip() {
	if [ -n "${CI:-}" ]; then die "$* (CI is set: not skipped)"; fi
	log "SKIP: $*"
	exit 0
}

[ -x "$QK" ] || die "$QK is not an executable (make build, or set QUANTKIT_BIN)"

# The tools: Debian's prometheus (prometheus, promtool), curl and jq.
need=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || need+=(prometheus)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		skip "${need[*]} not installed, and no apt-get as root to install them (apt-get install ${need[*]})"
	fi
	log "installing ${need[*]} (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	# The package's service is not wanted here: policy-rc.d keeps it from
	# starting where a service manager would start it.
	if apt-get install -y --no-install-recommends "${need[@]}" >&2 || { apt-get update >&2 &&
		apt-get install -y --no-install-recommends "${need[@]}" >&2; }; then :; else
		skip "apt-get install ${need[*]} failed"
	fi
fi
log "$(prometheus --version 2>&1 | head -1)"

work=$(mktemp -d "${TMPDIR:-/tmp}/quantkit-prometheus.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "${keep:-}" = 1 ]; then log "left $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap "exit 130" INT
trap "exit 143" TERM
trap 'keep=1; log "failed at line $LINENO; logs in $work"' ERR

# --- The fake sources ---------------------------------------------------
CPU_W=50 DRAM_W=10 GPU_W=300
MAX_UJ=200000000 # the package counter wraps at 200 J: every 4 s at 50 W
rapl=$work/powercap
mkdir -p "$rapl/intel-rapl:0" "$rapl/intel-rapl:0:0" "$rapl/intel-rapl:1"
echo package-0 >"$rapl/intel-rapl:0/name"
echo $MAX_UJ >"$rapl/intel-rapl:0/max_energy_range_uj"
echo dram >"$rapl/intel-rapl:0:0/name"
echo 65712999613 >"$rapl/intel-rapl:0:0/max_energy_range_uj"
echo psys >"$rapl/intel-rapl:1/name"
echo 262143328850 >"$rapl/intel-rapl:1/max_energy_range_uj"
echo 7000000 >"$rapl/intel-rapl:1/energy_uj"
gpus=$work/gpus.json

# now_us is the time in microseconds (bash's clock, no fork).
now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }
# put writes $2 to file $1 in one rename, as sysfs would show it whole.
put() { printf '%s\n' "$2" >"$1.tmp" && mv -f "$1.tmp" "$1"; }
# fakes_at writes every fake counter for the time $1 (µs since t0): each
# source has drawn its power since t0 (the GPU from 1000 J).
fakes_at() {
	local el=$1 gone=${2:-}
	put "$rapl/intel-rapl:0/energy_uj" $(((CPU_W * el) % MAX_UJ))
	put "$rapl/intel-rapl:0:0/energy_uj" $((DRAM_W * el))
	local gpu_j
	gpu_j=$(printf '%d.%06d' $(((GPU_W * el) / 1000000 + 1000)) $(((GPU_W * el) % 1000000)))
	if [ -e "$work/gpu-gone" ]; then
		put "$gpus" '{"driver":"580.65.06","cuda":"13.0","gpus":[]}'
	else
		put "$gpus" "{\"driver\":\"580.65.06\",\"cuda\":\"13.0\",\"gpus\":[{\"name\":\"Fake H100\",\"uuid\":\"GPU-0000fake-0000-0000-0000-000000000001\",\"pci_bus_id\":\"00000000:1B:00.0\",\"energy_j\":$gpu_j,\"power_w\":$GPU_W,\"power_instant_w\":$((GPU_W + 5)),\"memory_total_bytes\":85899345920,\"memory_used_bytes\":1073741824,\"temperature_c\":50,\"sm_clock_mhz\":1980,\"mem_clock_mhz\":2619,\"util_gpu_pct\":90,\"util_mem_pct\":40,\"throttle\":[\"sw_power_cap\"]}]}"
	fi
}
t0=$(now_us)
fakes_at 0
(
	while :; do
		fakes_at $(($(now_us) - t0))
		sleep 0.02
	done
) &
pids+=($!)

# --- quantkit monitor ---------------------------------------------------
export QUANTKIT_RAPL_ROOT=$rapl QUANTKIT_FAKE_NVML=$gpus
"$QK" monitor --listen 127.0.0.1:0 2>"$work/monitor.log" &
mon_pid=$!
pids+=($mon_pid)
for _ in $(seq 100); do
	grep -q "serving" "$work/monitor.log" 2>/dev/null && break
	sleep 0.05
done
mon=$(sed -n 's#.*serving http://\([^/]*\)/metrics#\1#p' "$work/monitor.log" | head -1)
[ -n "$mon" ] || die "quantkit monitor did not start: $(cat "$work/monitor.log")"
log "quantkit monitor (pid $mon_pid) on $mon"
# The monitor reads RAPL when scraped, and must be scraped more often than
# the counter wraps (here every 4 s): read it every 0.5 s from before the
# first wrap until Prometheus scrapes it.
(
	while :; do
		curl -fsS "http://$mon/metrics" >/dev/null
		sleep 0.5
	done
) &
poller=$!
pids+=($poller)

# promtool's lint on the exposition, in both formats.
curl -fsS "http://$mon/metrics" | promtool check metrics >&2 || die "promtool check metrics (text format)"
curl -fsS -H 'Accept: application/openmetrics-text;version=1.0.0' "http://$mon/metrics" >"$work/om.txt"
tail -1 "$work/om.txt" | grep -qx '# EOF' || die "OpenMetrics exposition does not end with # EOF"
grep -q '^# TYPE quantkit_cpu_energy_joules counter' "$work/om.txt" || die "OpenMetrics: no counter family quantkit_cpu_energy_joules"
log "promtool check metrics: ok; OpenMetrics served when asked for"

# --- Prometheus ---------------------------------------------------------
port() { # a free port on 127.0.0.1
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		(echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	die "no free port"
}
prom=127.0.0.1:$(port)
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: quantkit
    honor_labels: true # the jobs' job label is theirs, not exported_job
    static_configs:
      - targets: ["$mon"]
EOF
promtool check config "$work/prometheus.yml" >&2
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
	--web.listen-address="$prom" --log.level=warn >"$work/prometheus.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	curl -fsS "http://$prom/-/ready" >/dev/null 2>&1 && break
	sleep 0.1
done
curl -fsS "http://$prom/-/ready" >/dev/null || die "prometheus did not start: $(tail -5 "$work/prometheus.log")"
log "prometheus on $prom, scraping every 1s"

# query prints the value of the instant query $1 (one series; empty when
# none); query_n the number of series it returns.
query() {
	curl -fsS "http://$prom/api/v1/query" --data-urlencode "query=$1" | jq -r '.data.result[0].value[1] // empty'
}
query_n() {
	curl -fsS "http://$prom/api/v1/query" --data-urlencode "query=$1" | jq -r '.data.result | length'
}
# near checks that value $2 is within $4 (relative) of $3; $1 says what.
near() {
	awk -v what="$1" -v got="$2" -v want="$3" -v tol="$4" 'BEGIN {
		if (got == "") { print "prometheus-test: FAIL: " what ": no value" > "/dev/stderr"; exit 1 }
		d = got - want; if (d < 0) d = -d
		ok = d <= tol * (want < 0 ? -want : want)
		printf "prometheus-test: %s: %s, want %s ±%g%%: %s\n", what, got, want, tol * 100, ok ? "ok" : "FAIL" > "/dev/stderr"
		exit !ok }'
}
# wait_for waits until the query $1 has a value (up to $2 s).
wait_for() {
	for _ in $(seq $(($2 * 5))); do
		[ -n "$(query "$1")" ] && return
		sleep 0.2
	done
	die "no value for $1 after $2 s"
}

wait_for 'quantkit_source_up{source="rapl"}' 20
kill $poller
sleep 22 # 22 scrapes, five wraps of the package counter

# --- CPU and GPU counters, across the wraps -------------------------------
wraps=$(((($(now_us) - t0) * CPU_W) / MAX_UJ))
[ "$wraps" -ge 3 ] || die "only $wraps wraps so far"
near "rate(cpu package energy[20s]) in W, across $wraps wraps" \
	"$(query 'rate(quantkit_cpu_energy_joules_total{zone="package",index="0"}[20s])')" $CPU_W 0.05
near "rate(cpu dram energy[20s]) in W" "$(query 'rate(quantkit_cpu_energy_joules_total{zone="dram"}[20s])')" $DRAM_W 0.05
near "rate(gpu energy[20s]) in W" "$(query 'rate(quantkit_gpu_energy_joules_total{gpu="0"}[20s])')" $GPU_W 0.05
[ "$(query 'resets(quantkit_cpu_energy_joules_total{zone="package"}[1m])')" = 0 ] ||
	die "Prometheus saw a counter reset across the wraps"
log "resets(cpu package energy[1m]) = 0 across $wraps wraps: ok"
# The counter is the fake's energy since t0 (the monitor's first reading
# came before the first wrap): compare at the last sample's own timestamp
# (a range selector returns the samples as scraped).
res=$(curl -fsS "http://$prom/api/v1/query" --data-urlencode 'query=quantkit_cpu_energy_joules_total{zone="package"}[5s]' |
	jq -r '.data.result[0].values[-1] | "\(.[0]) \(.[1])"')
read -r ts joules <<<"$res"
want=$(awk -v ts="$ts" -v t0="$t0" -v w=$CPU_W 'BEGIN { printf "%.3f", w * (ts - t0 / 1e6) }')
# The fake's files trail the clock by its loop's period (a fraction of a
# second on a loaded machine): allow 1 s of it, 50 J. A wrap lost or
# counted twice would be 200 J off.
near "cpu package counter in J (the fake's energy since it started, unwrapped)" "$joules" "$want" \
	"$(awk -v w="$want" -v p=$CPU_W 'BEGIN { print p / w }')"
near "gpu power (reading=average) in W" "$(query 'quantkit_gpu_power_watts{gpu="0",reading="average"}')" $GPU_W 0
near "gpu memory clock in Hz" "$(query 'quantkit_gpu_memory_clock_hertz{gpu="0"}')" 2619000000 0
[ "$(query 'quantkit_gpu_info{uuid="GPU-0000fake-0000-0000-0000-000000000001",pci_bus_id="00000000:1B:00.0"}')" = 1 ] ||
	die "quantkit_gpu_info does not carry the fake's identity"

# --- An unreadable zone, a GPU that goes away -----------------------------
rm "$rapl/intel-rapl:1/energy_uj"
mkdir "$rapl/intel-rapl:1/energy_uj" # reads fail, even as root
touch "$work/gpu-gone"
sleep 3
[ "$(query 'quantkit_source_up{source="rapl"}')" = 0 ] || die "an unreadable zone left quantkit_source_up{source=\"rapl\"} at 1"
[ "$(query_n 'quantkit_cpu_energy_joules_total{zone="psys"}')" = 0 ] || die "the unreadable psys zone is still exported"
[ "$(query_n 'quantkit_gpu_info')" = 0 ] || die "the GPU that went away is still exported"
[ "$(query 'quantkit_source_up{source="nvml"}')" = 1 ] || die "no GPU left nvml down"
grep -q 'intel-rapl:1/energy_uj' "$work/monitor.log" || die "the monitor's log does not name the unreadable zone"
near "rate(cpu package energy[20s]) in W, meanwhile" \
	"$(query 'rate(quantkit_cpu_energy_joules_total{zone="package"}[20s])')" $CPU_W 0.05
rmdir "$rapl/intel-rapl:1/energy_uj"
echo 7000000 >"$rapl/intel-rapl:1/energy_uj"
rm "$work/gpu-gone"
sleep 3
[ "$(query 'quantkit_source_up{source="rapl"}')" = 1 ] || die "rapl did not come back"
[ "$(query_n 'quantkit_gpu_info')" = 1 ] || die "the GPU did not come back"
log "unreadable zone: source_up 0 and logged, then 1; a GPU gone and back: ok"

# --- Jobs: profile and bench report to the monitor -------------------------
# $1 precision, $2 seconds: the JSON report of one profiled run.
profile_run() {
	"$QK" profile --idle 0 --json --job resnet50 --label "precision=$1" --monitor "http://$mon" -- sleep "$2"
}
profile_run int8 2 >"$work/int8.json"
profile_run fp32 3 >"$work/fp32.json"
sleep 2.5
for p in int8 fp32; do
	for src in gpu:0 cpu:package-0; do
		case $src in gpu:0) name="gpu:0 Fake H100" w=$GPU_W ;; *) name="cpu package-0 (RAPL)" w=$CPU_W ;; esac
		reported=$(jq -r --arg n "$name" '.sources[] | select(.name == $n) | .energy_j' "$work/$p.json")
		# The source's own window: its counter read before the start and after the exit.
		seconds=$(jq -r --arg n "$name" '.sources[] | select(.name == $n) | .seconds' "$work/$p.json")
		got=$(query "quantkit_job_energy_joules_total{job=\"resnet50\",precision=\"$p\",source=\"$src\"}")
		near "job resnet50 $p on $src in J (as profile --json reported it)" "$got" "$reported" 1e-9
		# The fakes are rewritten every 20 ms or so by a shell loop, which a
		# loaded machine holds up: each counter reading may trail the clock
		# by up to 0.5 s, so allow 1 s of the fake's power (the check
		# above is the exact one).
		want=$(awk -v w=$w -v s="$seconds" 'BEGIN { print w * s }')
		near "job resnet50 $p on $src in J (the fake's power x the counter window, ±1 s of it)" "$got" "$want" \
			"$(awk -v w=$w -v e="$want" 'BEGIN { print w / e }')"
	done
done
[ "$(query 'quantkit_job_runs_total{job="resnet50",precision="int8"}')" = 1 ] || die "runs_total is not 1"
near "job resnet50 int8 seconds (as profile --json reported them)" \
	"$(query 'quantkit_job_seconds_total{job="resnet50",precision="int8"}')" "$(jq .seconds "$work/int8.json")" 1e-9

"$QK" bench gemm --device cpu --sizes 48 --dtypes fp32,int8 --baseline=false --min-time 20ms --energy --idle 0 \
	--min-window 300ms --json --monitor "http://$mon" 2>/dev/null >"$work/bench.json"
sleep 2.5
for dt in fp32 int8; do
	reported=$(jq -r --arg d "$dt" '.results[] | select(.dtype == $d and .op == "gemm") | .energy.joules_per_call * .energy.calls' "$work/bench.json")
	near "job bench-gemm $dt in J (as bench --json reported it)" \
		"$(query "quantkit_job_energy_joules_total{job=\"bench-gemm\",precision=\"$dt\",op=\"gemm\",size=\"48x48x48\"}")" "$reported" 1e-9
done

# lm generate on the CPU: the package's energy from its start to its end
# (a short run: this checks the plumbing more than the number).
"$QK" lm generate --device cpu -n 400 --label precision=fp32 --monitor "http://$mon" \
	testdata/llm/stories260K/hf >/dev/null 2>&1
sleep 2.5
lm_s=$(query 'quantkit_job_seconds_total{job="lm-generate",precision="fp32"}')
lm_j=$(query 'quantkit_job_energy_joules_total{job="lm-generate",precision="fp32",source="cpu:package-0"}')
# Between 0 and the fake's power over the run and its files' lag (0.5 s at
# each end).
awk -v j="$lm_j" -v s="$lm_s" -v w=$CPU_W 'BEGIN { exit !(j != "" && j > 0 && j <= w * (s + 1)) }' ||
	die "job lm-generate: $lm_j J in $lm_s s, want between 0 and $CPU_W W x ($lm_s + 1) s"
log "job lm-generate on cpu:package-0: $lm_j J in $lm_s s (the fake: $CPU_W W): ok"

# --- The Grafana dashboard's queries ---------------------------------------
# Every query of deploy/monitor/grafana-dashboard.json is valid PromQL and
# answers; the INT8/FP32 panel gives the ratio of the runs above.
dash=deploy/monitor/grafana-dashboard.json
n=0
while IFS= read -r expr; do
	q=${expr//'$instance'/.*}
	q=${q//'$__rate_interval'/5s}
	q=${q//'$__range'/5m}
	res=$(curl -sS "http://$prom/api/v1/query" --data-urlencode "query=$q")
	[ "$(jq -r .status <<<"$res")" = success ] || die "dashboard query $q: $(jq -r .error <<<"$res")"
	[ "$(jq -r '.data.result | length' <<<"$res")" -gt 0 ] || die "dashboard query $q: no series"
	n=$((n + 1))
done < <(jq -r '.panels[].targets[]?.expr' "$dash")
ratio_expr=$(jq -r '.panels[] | select(.title == "INT8 / FP32 joules per run") | .targets[0].expr' "$dash")
ratio=$(curl -fsS "http://$prom/api/v1/query" --data-urlencode "query=${ratio_expr//'$instance'/.*}" |
	jq -r '.data.result[] | select(.metric.job == "resnet50") | .value[1]')
want=$(jq -s '(.[0].sources | map(.energy_j) | add) / (.[1].sources | map(.energy_j) | add)' "$work/int8.json" "$work/fp32.json")
near "dashboard's INT8/FP32 joules per run for resnet50 (from the two --json reports)" "$ratio" "$want" 1e-9
log "the dashboard's $n queries answer"

# --- Load: 50 scrapers for 30 s, beside Prometheus --------------------------
"$GO" build -o "$work/loadscrape" ./scripts/integration/loadscrape
"$work/loadscrape" -url "http://$mon/metrics" -pid "$mon_pid" -scrapers 50 -for "${LOAD_SECONDS}s" -max-rss-mib 256 >&2 ||
	die "the load test"
[ "$(query 'quantkit_source_up{source="nvml"}')" = 1 ] || die "the monitor is not scraped after the load"
kill -0 "$mon_pid" || die "the monitor died"
near "rate(cpu package energy[20s]) in W, after the load" \
	"$(query 'rate(quantkit_cpu_energy_joules_total{zone="package"}[20s])')" $CPU_W 0.05
[ "$(query 'resets(quantkit_cpu_energy_joules_total{zone="package"}[2m])')" = 0 ] || die "a counter reset under load"
log "PASS"
