#!/usr/bin/env bash
# The GPU check, run on a machine with an NVIDIA GPU from the repository
# root, with build/ made by `make gpu-check` (Go is not needed there):
#   1. the gpu tests: the backend conformance suite against the CPU backend's
#      semantics on fresh random data, odd sizes included;
#   2. quantkit's kernels timed with CUDA events;
#   3. PyTorch's peers (cuBLASLt INT8, cuBLAS SGEMM with TF32 off, histc, a
#      device-to-device copy) in the same run, and a table of the ratios.
# Results go under $OUT (default ./gpu-results). Needs under 5 minutes.
set -uo pipefail
B=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-./gpu-results}
mkdir -p "$OUT"
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,clocks.max.sm --format=csv | tee "$OUT/gpu.csv"

echo "== correctness: gpu tests (conformance suite) =="
timeout 180 "$B/gpu.test" -test.v -test.count=1 -test.timeout 170s >"$OUT/gpu-test.log" 2>&1
rc=$?
grep -E '^(--- FAIL|FAIL|ok|PASS)' "$OUT/gpu-test.log" | head -40
echo "gpu tests: exit $rc (log: $OUT/gpu-test.log)"
[ $rc = 0 ] || status=1

echo "== timings: quantkit =="
Q="$B/quantkit-cuda"
timeout 150 "$Q" bench gemm --device gpu --sizes 1024,2048,4096,8192 --baseline=false --min-time 300ms --json >"$OUT/ours-gemm.json" || status=1
timeout 60 "$Q" bench quantize --device gpu --elements 16777216,268435456 --min-time 200ms --json >"$OUT/ours-quantize.json" || status=1
timeout 60 "$Q" bench histogram --device gpu --elements 16777216,268435456 --min-time 200ms --json >"$OUT/ours-histogram.json" || status=1

echo "== timings: PyTorch peers, and the table =="
timeout 150 python3 "$B/gpu_check.py" --out "$OUT/gpu-check.json" "$OUT"/ours-*.json || status=1
exit $status
