#!/usr/bin/env bash
# Quantizes a checkpoint on Slurm in N parts at once and merges them:
# submits quantize.sbatch as an array of N tasks (task K writes
# PARTS/part-K-of-N with quantkit quantize --shard auto) and merge.sbatch,
# which starts when every task has succeeded (--dependency=afterok) and is
# cancelled if one fails (--kill-on-invalid-dep=yes).
#
#   submit.sh -n N [-k K,...] [-s SBATCH_ARG]... IN PARTS OUT [QUANTIZE_FLAG...]
#
#   -n N        the number of parts (array tasks 0..N-1)
#   -k K,...    submit only these tasks (a rerun of failed ones), then the
#               merge again; the parts already in PARTS are kept
#   -s ARG      an sbatch option for both jobs (-s --partition=cpu
#               -s --time=2:00:00 -s --cpus-per-task=8); repeatable
#
# QUANTIZE_FLAGs go to every task (--scheme int4, --format gguf --type
# Q4_K_M, ...). IN, PARTS and OUT must be on a file system every node
# sees. QUANTKIT is the quantkit binary the jobs run (default: quantkit on
# PATH here, made absolute). Prints the two job IDs, array then merge, on
# stdout; the logs are quantkit-*.out in the current directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() {
	sed -n '7,15p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
n= only=
sbatch_args=()
while getopts n:k:s: opt; do
	case $opt in
	n) n=$OPTARG ;;
	k) only=$OPTARG ;;
	s) sbatch_args+=("$OPTARG") ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 3 ] || usage
case $n in
'' | *[!0-9]* | 0) echo "submit.sh: -n N: give the number of parts, a positive integer" >&2 && exit 2 ;;
esac
case $only in
*[!0-9,]*) echo "submit.sh: -k $only: give task indices, K or K,K,..." >&2 && exit 2 ;;
esac
for k in ${only//,/ }; do
	[ "$k" -lt "$n" ] || { echo "submit.sh: -k: task $k is not in 0..$((n - 1))" >&2 && exit 2; }
done
in=$(realpath -m "$1") parts=$(realpath -m "$2") out=$(realpath -m "$3")
shift 3
QUANTKIT=${QUANTKIT:-$(command -v quantkit || true)}
[ -n "$QUANTKIT" ] || { echo "submit.sh: no quantkit on PATH: set QUANTKIT to the binary" >&2 && exit 2; }
export QUANTKIT=$(realpath "$QUANTKIT")

array=${only:-0-$((n - 1))}
job=$(sbatch --parsable --array="$array" --export=ALL,QUANTKIT_SHARD_COUNT="$n" "${sbatch_args[@]}" \
	"$here/quantize.sbatch" "$in" "$parts" "$@")
job=${job%%;*}
merge=$(sbatch --parsable --dependency=afterok:"$job" --kill-on-invalid-dep=yes "${sbatch_args[@]}" \
	"$here/merge.sbatch" "$parts" "$out")
merge=${merge%%;*}
rerun=$(printf '%q ' "$0" -n "$n" -k K)
for a in "${sbatch_args[@]}"; do
	rerun+=$(printf -- '-s %q ' "$a")
done
rerun+=$(printf '%q ' "$in" "$parts" "$out" "$@")
cat >&2 <<MSG
submit.sh: array job $job quantizes $in in $n parts (tasks $array) into $parts;
submit.sh: job $merge merges them into $out once every task has succeeded.
submit.sh: a task K that fails cancels the merge: rerun it alone, and merge, with
submit.sh:   $rerun
MSG
echo "$job $merge"
