#!/usr/bin/env bash
# Builds llama.cpp's own llama-imatrix tool (tools/imatrix/imatrix.cpp of
# the source that setup-llamacpp.sh caches) against node-llama-cpp's
# prebuilt libraries of the same release (libllama, libllama-common,
# libggml, libggml-base: the CPU backends are shared objects loaded at run
# time from their directory), and prints, for eval:
#
#   QUANTKIT_LLAMACPP_IMATRIX   the llama-imatrix binary
#   QUANTKIT_LLAMACPP_LIB_DIR   the directory of the prebuilt libraries; run
#                               the binary with it as the working directory
#                               (ggml_backend_load_all looks for the CPU
#                               backends there)
#
# Only imatrix.cpp is compiled (seconds): libllama-common.so, which the
# tool links, ships prebuilt. The binary is cached under
# ${QUANTKIT_CACHE:-$HOME/.cache/quantkit}/harness-llama.cpp-VERSION/imatrix-KEY,
# keyed by the source file, built in a temporary directory and renamed into
# place, as setup-llamacpp.sh does.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${QUANTKIT_CACHE:-$HOME/.cache/quantkit}
log() { echo "build-llamacpp-imatrix: $*" >&2; }
die() { log "$*"; exit 1; }
command -v g++ >/dev/null || die "g++ is not installed (apt-get install g++)"

env=$("$here/setup-llamacpp.sh")
eval "$env"
src=$QUANTKIT_LLAMACPP_SRC
pre=$QUANTKIT_LLAMACPP_LIB_DIR
version=$QUANTKIT_LLAMACPP_VERSION

tmps=()
cleanup() { local d; for d in "${tmps[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT
trap "exit 130" INT
trap "exit 143" TERM

libs=()
for stem in libllama-common libllama libggml libggml-base; do
	f=
	for c in "$pre/$stem.so" "$pre/$stem".v*.so; do
		[ -f "$c" ] && { f=$(basename "$c"); break; }
	done
	[ -n "$f" ] || die "$pre has no $stem.so (node-llama-cpp's prebuilt libraries)"
	libs+=("-l:$f")
done
key=$(sha256sum <"$src/tools/imatrix/imatrix.cpp" | cut -c1-12)
hdir="$cache/harness-llama.cpp-$version"
hout="$hdir/imatrix-$key"
if [ ! -f "$hout/.complete" ]; then
	mkdir -p "$hdir"
	tmp=$(mktemp -d "$hdir/.imatrix-$key.XXXXXX")
	tmps+=("$tmp")
	log "building llama-imatrix ($version) into $hout"
	g++ -O2 -std=c++17 -I"$src/include" -I"$src/ggml/include" -I"$src/common" -I"$src/vendor" \
		-o "$tmp/llama-imatrix" "$src/tools/imatrix/imatrix.cpp" -L"$pre" "${libs[@]}" -Wl,-rpath,"$pre" -lpthread >&2 ||
		die "g++ $src/tools/imatrix/imatrix.cpp against $pre failed"
	touch "$tmp/.complete"
	mv -T "$tmp" "$hout" 2>/dev/null || { [ -f "$hout/.complete" ] || die "cannot move $tmp to $hout"; rm -rf "$tmp"; }
fi

cat <<ENV
export QUANTKIT_LLAMACPP_IMATRIX=$hout/llama-imatrix
export QUANTKIT_LLAMACPP_LIB_DIR=$pre
ENV
