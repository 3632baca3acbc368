#!/usr/bin/env bash
# make integration: installs llama.cpp into the cache if needed
# (setup-llamacpp.sh), exports what it prints, then vets and runs the tests
# with build tag integration — in every package that has some (those whose
# file lists change with the tag), not the whole module again: the others'
# tests are make test's. QUANTKIT_BIN (default build/quantkit) is the
# binary under test; make integration builds it first.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}

env=$(scripts/integration/setup-llamacpp.sh)
echo "$env"
eval "$env"
# llama.cpp's own llama-imatrix (job/imatrix compares with it): one file
# compiled against the prebuilt libraries, cached.
env=$(scripts/integration/build-llamacpp-imatrix.sh)
echo "$env"
eval "$env"
export QUANTKIT_BIN=${QUANTKIT_BIN:-$PWD/build/quantkit}

list() { "$GO" list "$@" -f '{{.ImportPath}} {{.GoFiles}} {{.TestGoFiles}} {{.XTestGoFiles}}' ./...; }
without=$(list)
with=$(list -tags integration)
mapfile -t pkgs < <(comm -13 <(sort <<<"$without") <(sort <<<"$with") | cut -d' ' -f1)
if [ ${#pkgs[@]} -eq 0 ]; then
	echo "integration: no package has files with build tag integration" >&2
	exit 1
fi
echo "$GO vet -tags integration ${pkgs[*]}"
"$GO" vet -tags integration "${pkgs[@]}"
echo "QUANTKIT_BIN=$QUANTKIT_BIN $GO test -count=1 -tags integration ${pkgs[*]}"
"$GO" test -count=1 -tags integration "${pkgs[@]}"
