#!/usr/bin/env bash
# Checks the generated kernels without a GPU, for every architecture the
# fatbins hold SASS for (CUDA_SASS, from the Makefile; default 80 86 89 90):
#  - ptxas compiles every kernel of cuda/ptx for it with no register spills
#    (ptxas -v: registers, spill stores and loads);
#  - each committed fatbin of cuda/fatbin holds exactly SASS for those
#    architectures and the PTX for compute_$CUDA_PTX, and its SASS uses no
#    local memory (cuobjdump -res-usage: LOCAL:0 for every function, so no
#    spills in the code the driver loads either);
#  - each INT8 GEMM kernel's SASS in the fatbin runs on the tensor cores
#    (IMMA.16832.S8.S8 on every architecture from sm_80 to sm_90), ldmatrix
#    (LDSM) and cp.async (LDGSTS), and gemm_s8_s8 stores its int8 results
#    8 bytes per lane (STG.E.64; no 2-byte STG.E.U16).
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a archs <<<"${CUDA_SASS:-80 86 89 90}"
ptx_arch=${CUDA_PTX:-80}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

echo "ptxas -v, no spills:"
for ptx in cuda/ptx/*.ptx; do
	name=$(basename "$ptx" .ptx)
	for a in "${archs[@]}"; do
		arch=sm_$a
		ptxas -arch=$arch -v "$ptx" -o "$tmp/$name.$arch.cubin" 2>"$tmp/$name.$arch.log"
		# ptxas -v prints one "Compiling entry function" block per kernel.
		awk -v f="$name" -v a="$arch" '
			/Compiling entry function/ { k = $0; sub(/.*function .?/, "", k); sub(/.? for .*/, "", k) }
			/spill stores/ { if ($1 != 0 || $5 != 0) { printf "%s %s %s: %s\n", f, a, k, $0; bad = 1 } }
			/Used [0-9]+ registers/ { r = $0; sub(/.*Used /, "", r); printf "  %-10s %s %-24s %s\n", f, a, k, r }
			END { exit bad }' "$tmp/$name.$arch.log" || fail=1
	done
done

echo "fatbins:"
want_list=""
for a in "${archs[@]}"; do want_list+="ELF sm_$a;"; done
want_list+="PTX sm_$ptx_arch;"
for fb in cuda/fatbin/*.fatbin; do
	name=$(basename "$fb" .fatbin)
	[ -f "cuda/ptx/$name.ptx" ] || { echo "$fb: no cuda/ptx/$name.ptx beside it"; fail=1; }
	# "ELF file    1: gemm_s8.1.sm_80.cubin", "PTX file    1: gemm_s8.1.sm_80.ptx"
	got=$(cuobjdump -lelf -lptx "$fb" | sed -E 's/^(ELF|PTX) file +[0-9]+: .*\.(sm_[0-9]+)\.(cubin|ptx)$/\1 \2/' | tr '\n' ';')
	if [ "$got" != "$want_list" ]; then
		echo "$fb holds \"$got\", want \"$want_list\": run make ptx"
		fail=1
	fi
	for a in "${archs[@]}"; do
		# Resource usage per function: "REG:128 STACK:0 SHARED:0 LOCAL:0 ...".
		cuobjdump -res-usage -arch "sm_$a" "$fb" >"$tmp/res.txt"
		n=$(grep -c 'REG:' "$tmp/res.txt" || true)
		[ "$n" -gt 0 ] || { echo "$fb: no SASS functions for sm_$a"; fail=1; }
		awk -v f="$fb" -v a="sm_$a" '
			/Function / { k = $2; sub(/:$/, "", k) }
			/REG:/ { for (i = 1; i <= NF; i++) if ($i ~ /^(LOCAL|STACK):/ && $i !~ /:0$/) { printf "%s %s %s: %s\n", f, a, k, $0; bad = 1 } }
			END { exit bad }' "$tmp/res.txt" || fail=1
	done
	echo "  $name: $(stat -c %s "$fb") bytes, ${got//;/ }"
done

echo "INT8 GEMM SASS:"
fb=cuda/fatbin/gemm_s8.fatbin
for a in "${archs[@]}"; do
	for fn in gemm_s8_s32 gemm_s8_f32 gemm_s8_s8; do
		cuobjdump -sass -arch "sm_$a" -fun "$fn" "$fb" >"$tmp/sass.txt"
		line="  sm_$a $fn:"
		for op in IMMA.16832.S8.S8 LDSM LDGSTS; do
			n=$(grep -c "$op" "$tmp/sass.txt" || true)
			line+=" $n $op"
			[ "$n" -gt 0 ] || { echo "gemm_s8 sm_$a $fn: no $op in the SASS"; fail=1; }
		done
		if [ "$fn" = gemm_s8_s8 ]; then
			# int8 results: 8-byte stores (STG.E.64), no 2-byte ones.
			n64=$(grep -c 'STG\.E\.64' "$tmp/sass.txt" || true)
			n16=$(grep -c 'STG\.E\.U16' "$tmp/sass.txt" || true)
			line+=" $n64 STG.E.64 $n16 STG.E.U16"
			[ "$n64" -gt 0 ] && [ "$n16" = 0 ] || { echo "gemm_s8 sm_$a $fn: int8 stores are not 8 bytes wide"; fail=1; }
		fi
		echo "$line"
	done
done
[ "$fail" = 0 ] && echo "cuda-check: no spills on ${archs[*]/#/sm_}; fatbins hold that SASS and compute_$ptx_arch PTX; INT8 GEMM on tensor cores"
exit $fail
