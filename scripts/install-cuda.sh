#!/usr/bin/env bash
# Installs what the CUDA build needs (nvcc, ptxas, cuobjdump, cuda.h,
# libcuda.so to link against) from Debian's non-free component, CUDA 11.8.
# Idempotent: does nothing when nvcc and cuda.h are already there.
set -euo pipefail
if command -v nvcc >/dev/null 2>&1 && [ -f /usr/include/cuda.h ]; then
	exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
src=/etc/apt/sources.list.d/debian.sources
nonfree=/etc/apt/sources.list.d/quantkit-nonfree.sources
if ! grep -qs 'non-free' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null; then
	mirror=$(awk '/^URIs:/ {print $2; exit}' "$src" 2>/dev/null || true)
	[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
	$SUDO tee "$nonfree" >/dev/null <<SRC
Types: deb
URIs: $mirror
Suites: $codename $codename-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends nvidia-cuda-toolkit nvidia-cuda-dev >/dev/null
nvcc --version | tail -1
