#!/usr/bin/env bash
# Runs the CUDA build where it may not find a GPU and checks that it never
# dies with gorgonia.org/cu's bare init failure: either CUDA works, or
# gpu/preflight explains why (exit 3) or hands the command to the CPU build.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(QUANTKIT_NO_HANDOVER=1 ./build/quantkit-cuda version 2>&1); rc=$?
case $rc in
0) echo "preflight-check: CUDA works here: $out"; exit 0 ;;
3) grep -q "no usable CUDA GPU" <<<"$out" || { echo "exit 3 without the preflight message: $out"; exit 1; } ;;
*) echo "preflight-check: quantkit-cuda exited $rc before preflight could explain: $out"; exit 1 ;;
esac
echo "preflight-check: without a GPU the CUDA build says: $out"
# Handed over: the CPU build beside it runs the command.
out=$(./build/quantkit-cuda --help 2>&1) || { echo "handover failed: $out"; exit 1; }
grep -q "quantkit" <<<"$out" || { echo "handover printed: $out"; exit 1; }
out=$(./build/quantkit-cuda bench gemm --device gpu --sizes 8 2>&1); rc=$?
[ $rc = 3 ] || { echo "--device gpu without a GPU: exit $rc, want 3: $out"; exit 1; }
echo "preflight-check: handover to the CPU build works; --device gpu exits 3"
