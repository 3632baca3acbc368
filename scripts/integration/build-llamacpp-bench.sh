#!/usr/bin/env bash
# Builds llama.cpp from the source that setup-llamacpp.sh caches, natively
# for this CPU (CPU backend only, GGML_NATIVE, Release, OpenMP), and the
# timing harness scripts/integration/llamabench.c against it; prints, for
# eval:
#
#   QUANTKIT_LLAMACPP_BENCH          the harness (prefill/decode timing and
#                                    greedy tokens, the way llama-bench times)
#   QUANTKIT_LLAMACPP_BENCH_BUILD    which llama.cpp it is linked with: "native
#                                    DIR (BUILD-INFO)" or "prebuilt DIR"
#   QUANTKIT_LLAMACPP_BENCH_BACKENDS the directory of the ggml backends to load
#                                    (prebuilt only; empty for native)
#   QUANTKIT_LLAMACPP_VERSION        the llama.cpp release and commit
#
# With LLAMACPP_BUILD=prebuilt the harness links node-llama-cpp's prebuilt
# CPU libraries instead (the ones the integration tests use: ggml's CPU
# backend as shared objects, one per x86 level, the best for this processor
# loaded at run time; no OpenMP, ggml's own threads) and nothing is compiled
# but the harness: seconds instead of the native build's many minutes on a
# small machine.
#
# bench/llamacpp (make bench-llamacpp) runs it beside quantkit.
#
# The libraries are built once per llama.cpp version, compiler, cmake
# options and CPU (a -march=native build is only good on the CPU model it
# was made on: the key holds /proc/cpuinfo's model name and flags), into
# ${QUANTKIT_CACHE:-$HOME/.cache/quantkit}/llamacpp-native-VERSION/KEY, outside
# the clone; the harness beside them, keyed by its source. Only the
# targets the harness links (llama, ggml, ggml-base, ggml-cpu) are built:
# no tools, common, tests or server. As in setup-llamacpp.sh, each piece is
# built in a temporary directory and renamed into place at the end. cmake is
# installed with apt-get when it is missing (CI starts from a clean machine).
#
# JOBS (default: the CPU count) sets the build's parallelism. Progress and
# the build's time go to stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${QUANTKIT_CACHE:-$HOME/.cache/quantkit}
log() { echo "build-llamacpp-bench: $*" >&2; }
die() { log "$*"; exit 1; }

if ! command -v cmake >/dev/null; then
	log "cmake is missing: installing it with apt-get"
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get install -y cmake >&2 || { $SUDO apt-get update >&2 && $SUDO apt-get install -y cmake >&2; } ||
		die "cannot install cmake (apt-get install cmake)"
fi
for tool in gcc g++ cmake; do
	command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install build-essential cmake)"
done

env=$("$here/setup-llamacpp.sh")
eval "$env"
src=$QUANTKIT_LLAMACPP_SRC
version=$QUANTKIT_LLAMACPP_VERSION

tmps=()
cleanup() { local d; for d in "${tmps[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT
trap "exit 130" INT
trap "exit 143" TERM

place() {
	mv -T "$1" "$2" 2>/dev/null && return
	[ -f "$2/.complete" ] || die "cannot move $1 to $2 (remove $2 and rerun)"
	rm -rf "$1"
}

mode=${LLAMACPP_BUILD:-native}
case $mode in native | prebuilt) ;; *) die "LLAMACPP_BUILD=$mode: want native or prebuilt" ;; esac
hsum=$(sha256sum <"$here/llamabench.c" | cut -c1-12)
ccflags=(-O2 -Wall -Wextra -Werror -std=c11 -I"$src/include" -I"$src/ggml/include")

if [ "$mode" = prebuilt ]; then
	pre=$QUANTKIT_LLAMACPP_LIB_DIR
	libllama=
	for f in "$pre"/libllama.so "$pre"/libllama.v*.so; do
		[ -f "$f" ] && { libllama=$(basename "$f"); break; }
	done
	libggml=
	for f in "$pre"/libggml.so "$pre"/libggml.v*.so; do
		[ -f "$f" ] && { libggml=$(basename "$f"); break; }
	done
	[ -n "$libllama" ] && [ -n "$libggml" ] || die "$pre lacks libllama or libggml"
	hdir="$cache/harness-llama.cpp-$version"
	hout="$hdir/bench-prebuilt-$hsum"
	if [ ! -f "$hout/.complete" ]; then
		mkdir -p "$hdir"
		tmp=$(mktemp -d "$hdir/.bench-prebuilt-$hsum.XXXXXX")
		tmps+=("$tmp")
		gcc "${ccflags[@]}" -o "$tmp/llamabench" "$here/llamabench.c" -L"$pre" -l:"$libllama" -l:"$libggml" \
			-l:libggml-base.so -Wl,-rpath,"$pre" >&2 || die "gcc $here/llamabench.c against $pre failed"
		touch "$tmp/.complete"
		place "$tmp" "$hout"
	fi
	cat <<ENV
export QUANTKIT_LLAMACPP_VERSION=$version
export QUANTKIT_LLAMACPP_BENCH=$hout/llamabench
export QUANTKIT_LLAMACPP_BENCH_BUILD='prebuilt $pre'
export QUANTKIT_LLAMACPP_BENCH_BACKENDS=$pre
ENV
	exit 0
fi

# --- 1. libllama and ggml, native, static ----------------------------------
opts=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON -DGGML_OPENMP=ON
	-DGGML_BACKEND_DL=OFF -DGGML_CCACHE=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
	-DLLAMA_OPENSSL=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_BLAS=OFF)
cpu=$(grep -m1 '^model name' /proc/cpuinfo || true; grep -m1 -E '^(flags|Features)' /proc/cpuinfo || true)
key=$( { echo "$cpu"; printf '%s\n' "${opts[@]}"; gcc --version | head -1; g++ --version | head -1; } | sha256sum | cut -c1-12)
root="$cache/llamacpp-native-$version"
lib="$root/$key"
mkdir -p "$root"
find "$root" -mindepth 1 -maxdepth 1 -type d -name '.*.??????' -mmin +180 -exec rm -rf {} + 2>/dev/null || true
if [ ! -f "$lib/.complete" ]; then
	[ ! -e "$lib" ] || die "$lib exists but is incomplete (no .complete): remove it and rerun"
	tmp=$(mktemp -d "$root/.$key.XXXXXX")
	tmps+=("$tmp")
	jobs=${JOBS:-$(nproc)}
	log "building llama.cpp $version (CPU, native, Release; targets llama and ggml) into $lib with $jobs jobs"
	start=$(date +%s)
	cmake -S "$src" -B "$tmp/build" "${opts[@]}" >"$tmp/configure.log" 2>&1 ||
		{ tail -30 "$tmp/configure.log" >&2; die "cmake configure of $src failed (log above)"; }
	cmake --build "$tmp/build" --target llama ggml ggml-base ggml-cpu -j "$jobs" >"$tmp/build.log" 2>&1 ||
		{ tail -30 "$tmp/build.log" >&2; die "cmake --build of $src failed (log above)"; }
	# The static libraries, wherever this release's CMake puts them.
	mkdir -p "$tmp/lib"
	for a in libllama.a libggml.a libggml-cpu.a libggml-base.a; do
		f=$(find "$tmp/build" -name "$a" -print -quit)
		[ -n "$f" ] || die "the build of $src made no $a"
		cp "$f" "$tmp/lib/$a"
	done
	secs=$(($(date +%s) - start))
	{ echo "llama.cpp $version"; echo "$cpu" | head -1; printf '%s ' "${opts[@]}"; echo;
		echo "jobs $jobs, $secs s"; } >"$tmp/BUILD-INFO"
	rm -rf "$tmp/build"
	touch "$tmp/.complete"
	place "$tmp" "$lib"
	log "built in $secs s"
fi

# --- 2. the harness ---------------------------------------------------------
hout="$lib/harness-$hsum"
if [ ! -f "$hout/.complete" ]; then
	tmp=$(mktemp -d "$lib/.harness-$hsum.XXXXXX")
	tmps+=("$tmp")
	gcc "${ccflags[@]}" -c -o "$tmp/llamabench.o" "$here/llamabench.c" >&2 || die "gcc $here/llamabench.c failed"
	g++ -o "$tmp/llamabench" "$tmp/llamabench.o" "$lib/lib/libllama.a" "$lib/lib/libggml.a" \
		"$lib/lib/libggml-cpu.a" "$lib/lib/libggml-base.a" -fopenmp -lpthread -lm >&2 ||
		die "linking $here/llamabench.c against $lib failed"
	touch "$tmp/.complete"
	place "$tmp" "$hout"
fi

cat <<ENV
export QUANTKIT_LLAMACPP_VERSION=$version
export QUANTKIT_LLAMACPP_BENCH=$hout/llamabench
export QUANTKIT_LLAMACPP_BENCH_BUILD='native $lib ($(sed -n 4p "$lib/BUILD-INFO"))'
export QUANTKIT_LLAMACPP_BENCH_BACKENDS=
ENV
