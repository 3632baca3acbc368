#!/usr/bin/env bash
# Checks the generated PTX without a GPU: ptxas compiles every kernel for
# sm_80 and sm_90 with no register spills, and the INT8 GEMM's SASS uses the
# tensor cores (IMMA), ldmatrix (LDSM) and cp.async (LDGSTS).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
for ptx in cuda/ptx/*.ptx; do
	name=$(basename "$ptx" .ptx)
	for arch in sm_80 sm_90; do
		ptxas -arch=$arch -v "$ptx" -o "$tmp/$name.$arch.cubin" 2>"$tmp/$name.$arch.log"
		# ptxas -v prints one "Compiling entry function" block per kernel.
		awk -v f="$name" -v a="$arch" '
			/Compiling entry function/ { k = $0; sub(/.*function .?/, "", k); sub(/.? for .*/, "", k) }
			/spill stores/ { if ($1 != 0 || $5 != 0) { printf "%s %s %s: %s\n", f, a, k, $0; bad = 1 } }
			/Used [0-9]+ registers/ { r = $0; sub(/.*Used /, "", r); printf "  %-10s %s %-24s %s\n", f, a, k, r }
			END { exit bad }' "$tmp/$name.$arch.log" || fail=1
	done
done
if [ -f "$tmp/gemm_s8.sm_90.cubin" ]; then
	sass=$(cuobjdump -sass "$tmp/gemm_s8.sm_90.cubin")
	for op in IMMA LDSM LDGSTS; do
		n=$(grep -c "$op" <<<"$sass" || true)
		echo "  gemm_s8 sm_90 SASS: $n $op instructions"
		[ "$n" -gt 0 ] || { echo "gemm_s8: no $op in the SASS"; fail=1; }
	done
fi
[ "$fail" = 0 ] && echo "cuda-check: no spills; INT8 GEMM on tensor cores"
exit $fail
