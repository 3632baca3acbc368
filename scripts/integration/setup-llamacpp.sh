#!/usr/bin/env bash
# Installs the real llama.cpp that `make integration` checks quantkit against,
# once, into a cache outside the clone keyed by version, and prints the
# environment the integration tests read (as `export NAME=value` lines, for
# eval):
#
#   QUANTKIT_LLAMACPP_NODE_MODULES  node_modules holding node-llama-cpp
#   QUANTKIT_LLAMACPP_LIB_DIR       its prebuilt CPU binaries for linux-x64
#                                   (libggml-base.so, libggml*.so, libllama.so)
#   QUANTKIT_LLAMACPP_SRC           the llama.cpp source its binaries were built
#                                   from (cloned from its git bundle; llama.h)
#   QUANTKIT_LLAMACPP_QUANTIZE      a C harness around llama_model_quantize
#   QUANTKIT_LLAMACPP_PROBS         a node script printing next-token probabilities
#   QUANTKIT_LLAMACPP_VERSION       the llama.cpp release and commit those are
#   QUANTKIT_HFTOKENIZERS_NODE_MODULES  node_modules holding @huggingface/tokenizers
#                                   (the reference the tokenizer package is checked
#                                   against)
#
# llama.cpp comes from the npm package node-llama-cpp, whose linux-x64
# optional dependency ships the binaries (the npm registry is reachable from
# the developers' machines and CI; GitHub releases are not). Nothing is
# written half: each piece is made in a temporary directory beside its place
# and renamed into it at the end, so an interrupted run leaves no cache entry.
#
# Cache: ${QUANTKIT_CACHE:-$HOME/.cache/quantkit}. Progress goes to stderr.
set -euo pipefail

NLC_VERSION=3.21.1
HFT_VERSION=0.2.0
here=$(cd "$(dirname "$0")" && pwd)
cache=${QUANTKIT_CACHE:-$HOME/.cache/quantkit}
mkdir -p "$cache"
log() { echo "setup-llamacpp: $*" >&2; }
die() { log "$*"; exit 1; }

for tool in node npm git gcc; do
	command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install nodejs npm git gcc)"
done

# Removes the temporary directories of this run when it stops early, and
# those that a killed run left (older than an hour: a run beside this one
# may be filling its own).
tmps=()
cleanup() { local d; for d in "${tmps[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT
trap "exit 130" INT
trap "exit 143" TERM
find "$cache" -maxdepth 1 -type d \( -name '.node-llama-cpp-*.??????' -o -name '.llama.cpp-*.??????' \) \
	-mmin +60 -exec rm -rf {} + 2>/dev/null || true
find "$cache" -maxdepth 1 -type d -name '.hf-tokenizers-*.??????' -mmin +60 -exec rm -rf {} + 2>/dev/null || true
find "$cache" -mindepth 2 -maxdepth 2 -type d -path "$cache/harness-llama.cpp-*/.*.??????" \
	-mmin +60 -exec rm -rf {} + 2>/dev/null || true

# place moves the finished temporary directory $1 to $2; when a run beside
# this one got there first, its copy stands and ours goes.
place() {
	mv -T "$1" "$2" 2>/dev/null && return
	[ -f "$2/.complete" ] || die "cannot move $1 to $2 (remove $2 and rerun)"
	rm -rf "$1"
}

# --- 1. node-llama-cpp and its prebuilt llama.cpp ---------------------------
pkg="$cache/node-llama-cpp-$NLC_VERSION"
if [ ! -f "$pkg/.complete" ]; then
	[ ! -e "$pkg" ] || die "$pkg exists but is incomplete (no .complete): remove it and rerun"
	tmp=$(mktemp -d "$cache/.node-llama-cpp-$NLC_VERSION.XXXXXX")
	tmps+=("$tmp")
	log "installing node-llama-cpp@$NLC_VERSION into $pkg (about 730 MB, once)"
	start=$(date +%s)
	# npm's own cache goes with the install (the tarballs would hold another
	# 400 MB in ~/.npm that nothing reads again: this cache is the cache).
	(cd "$tmp" && echo '{"name":"quantkit-llamacpp","private":true}' >package.json &&
		npm i -E "node-llama-cpp@$NLC_VERSION" --node-llama-cpp-postinstall=skip \
			--cache "$tmp/.npm-cache" --no-audit --no-fund --loglevel=error >&2) ||
		die "npm i -E node-llama-cpp@$NLC_VERSION failed"
	rm -rf "$tmp/.npm-cache"
	[ -d "$tmp/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64" ] ||
		die "node-llama-cpp@$NLC_VERSION installed without @node-llama-cpp/linux-x64 (its prebuilt CPU binaries)"
	touch "$tmp/.complete"
	place "$tmp" "$pkg"
	log "installed in $(($(date +%s) - start)) s"
fi
nm="$pkg/node_modules"
lib="$nm/@node-llama-cpp/linux-x64/bins/linux-x64"
[ -f "$lib/libggml-base.so" ] || die "$lib/libggml-base.so is missing: remove $pkg and rerun"
libllama=
for f in "$lib"/libllama.so "$lib"/libllama.v*.so; do
	[ -f "$f" ] && { libllama=$f; break; }
done
[ -n "$libllama" ] || die "$lib has no libllama.so or libllama.v*.so: remove $pkg and rerun"
# The release the binaries were built from, as node-llama-cpp records it
# (llama/binariesGithubRelease.json), and the commit of its source bundle:
# together they key the source and the harnesses built against it.
bundle="$nm/node-llama-cpp/llama/gitRelease.bundle"
release=$(node -e 'process.stdout.write(String(require(process.argv[1]).release ?? ""))' \
	"$nm/node-llama-cpp/llama/binariesGithubRelease.json" 2>/dev/null || true)
[ -n "$release" ] || die "cannot tell which llama.cpp release node-llama-cpp@$NLC_VERSION ships ($nm/node-llama-cpp/llama/binariesGithubRelease.json)"
[ -f "$bundle" ] || die "$bundle is missing: node-llama-cpp@$NLC_VERSION ships no llama.cpp source"
commit=$(git bundle list-heads "$bundle" | awk '$2 == "HEAD" {print substr($1, 1, 12); exit}')
[ -n "$commit" ] || die "$bundle has no HEAD"
version=$release-$commit

# --- 2. the llama.cpp source, for llama.h ----------------------------------
src="$cache/llama.cpp-$version"
if [ ! -f "$src/.complete" ]; then
	tmp=$(mktemp -d "$cache/.llama.cpp-$version.XXXXXX")
	tmps+=("$tmp")
	log "cloning llama.cpp $version from $bundle"
	git -c advice.detachedHead=false clone --quiet "$bundle" "$tmp" >&2 || die "git clone $bundle failed"
	[ -f "$tmp/include/llama.h" ] || die "llama.cpp $version from $bundle has no include/llama.h"
	touch "$tmp/.complete"
	place "$tmp" "$src"
fi

# --- 3. harnesses, built against that release -------------------------------
hdir="$cache/harness-llama.cpp-$version"
hsum=$(cat "$here/quantize.c" "$here/probs.mjs" | sha256sum | cut -c1-12)
hout="$hdir/$hsum"
if [ ! -f "$hout/.complete" ]; then
	mkdir -p "$hdir"
	tmp=$(mktemp -d "$hdir/.$hsum.XXXXXX")
	tmps+=("$tmp")
	log "building the harnesses into $hout"
	gcc -O2 -Wall -Wextra -Werror -std=c11 -I"$src/include" -I"$src/ggml/include" \
		-o "$tmp/llama-quantize-harness" "$here/quantize.c" -ldl >&2 ||
		die "gcc $here/quantize.c failed against $src/include/llama.h"
	cp "$here/probs.mjs" "$tmp/probs.mjs"
	touch "$tmp/.complete"
	place "$tmp" "$hout"
fi

# --- 4. @huggingface/tokenizers (pure JS) -----------------------------------
hft="$cache/hf-tokenizers-$HFT_VERSION"
if [ ! -f "$hft/.complete" ]; then
	[ ! -e "$hft" ] || die "$hft exists but is incomplete (no .complete): remove it and rerun"
	tmp=$(mktemp -d "$cache/.hf-tokenizers-$HFT_VERSION.XXXXXX")
	tmps+=("$tmp")
	log "installing @huggingface/tokenizers@$HFT_VERSION into $hft (once)"
	(cd "$tmp" && echo '{"name":"quantkit-hf-tokenizers","private":true}' >package.json &&
		npm i -E "@huggingface/tokenizers@$HFT_VERSION" \
			--cache "$tmp/.npm-cache" --no-audit --no-fund --loglevel=error >&2) ||
		die "npm i -E @huggingface/tokenizers@$HFT_VERSION failed"
	rm -rf "$tmp/.npm-cache"
	touch "$tmp/.complete"
	place "$tmp" "$hft"
fi

cat <<ENV
export QUANTKIT_HFTOKENIZERS_NODE_MODULES=$hft/node_modules
export QUANTKIT_LLAMACPP_VERSION=$version
export QUANTKIT_LLAMACPP_NODE_MODULES=$nm
export QUANTKIT_LLAMACPP_LIB_DIR=$lib
export QUANTKIT_LLAMACPP_SRC=$src
export QUANTKIT_LLAMACPP_QUANTIZE=$hout/llama-quantize-harness
export QUANTKIT_LLAMACPP_PROBS=$hout/probs.mjs
ENV
