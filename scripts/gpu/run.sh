#!/usr/bin/env bash
# The GPU check, the one command to run on a machine with an NVIDIA GPU,
# from the repository root, with build/gpu-check/ made by `make gpu-check`
# (Go is not needed there):
#   OUT=<results dir> bash build/gpu-check/run.sh
#   1. the gpu tests (gpu.test): every kernel against the CPU backend's
#      semantics (the conformance suite, the LM and packed-weight checks),
#      the cuBLAS/cuBLASLt calls against host loops, odd sizes included;
#   2. quantkit's kernels timed with CUDA events beside cuBLAS SGEMM (TF32
#      off and on), cuBLAS BF16/FP16 (float32 accumulation), cuBLAS and
#      cuBLASLt INT8, and a device-to-device copy, each vendor result
#      checked against quantkit's; energy from NVML's counter;
#   3. when PyTorch is there, its peers (torch._int_mm, torch.mm with TF32
#      off, torch.histc, a copy) at the same sizes;
#   4. quantkit bench gpu-summary: $OUT/summary.json (README, "The GPU
#      check") and a short table.
# Everything lands under $OUT (default ./gpu-results). Under 5 minutes on an
# H100 as estimated (each step has a timeout: 150 + 150 + 45 s at most). Exits 0 when the
# check is OK.
set -uo pipefail
B=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-./gpu-results}
mkdir -p "$OUT"
Q="$B/quantkit-cuda"
# cuBLAS is opened at run time from the loader's path and /usr/local/cuda;
# PyTorch's wheels carry one of their own, tried after those.
if d=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null); then
	export QUANTKIT_CUBLAS_PATH="${QUANTKIT_CUBLAS_PATH:+$QUANTKIT_CUBLAS_PATH:}$d"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,clocks.max.sm --format=csv | tee "$OUT/gpu.csv"

echo "== 1. correctness: gpu tests =="
timeout 150 "$B/gpu.test" -test.v -test.count=1 -test.timeout 145s >"$OUT/gpu-test.log" 2>&1
tests_rc=$?
grep -E '^(--- FAIL|FAIL|ok|PASS)' "$OUT/gpu-test.log" | head -20
echo "gpu tests: exit $tests_rc (log: $OUT/gpu-test.log)"

echo "== 2. timings and energy: quantkit beside cuBLAS/cuBLASLt and a device copy =="
timeout 150 "$Q" bench all --device gpu --sizes 1024,2048,4096,8192 --elements 16777216,268435456 \
	--baseline=false --vendor --min-time 200ms --energy --min-window 1s --idle 2s \
	--json-out "$OUT/bench.json" --csv "$OUT/bench.csv" --plot "$OUT/bench.png" >"$OUT/bench.txt" 2>"$OUT/bench.err"
echo "bench: exit $? (table: $OUT/bench.txt)"
tail -3 "$OUT/bench.err"

peers=()
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null && [ -s "$OUT/bench.json" ]; then
	echo "== 3. PyTorch's peers =="
	timeout 45 python3 "$B/gpu_check.py" --out "$OUT/peers.json" "$OUT/bench.json" >"$OUT/peers.txt" 2>&1 &&
		peers=(--peers "$OUT/peers.json")
	tail -12 "$OUT/peers.txt"
fi

echo "== 4. summary =="
"$Q" bench gpu-summary --tests "$OUT/gpu-test.log" --tests-exit "$tests_rc" --report "$OUT/bench.json" \
	"${peers[@]}" --out "$OUT/summary.json"
rc=$?
if [ ! -s "$OUT/summary.json" ]; then
	# quantkit-cuda could not start (it said why above): a summary anyway.
	printf '{"schema": "quantkit-gpu-check/1", "ok": false, "tests": {"exit_code": %d}, "gemm": [], "memory": [], "notes": ["quantkit-cuda bench gpu-summary exited %d: see the output of run.sh"]}\n' \
		"$tests_rc" "$rc" >"$OUT/summary.json"
fi
exit $rc
