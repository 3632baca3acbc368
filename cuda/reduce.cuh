// Launch contract of reduce.cu (absmax_f32, hist_abs_f32,
// hist_abs_f32_global), with the constants of launch.cuh (generated with the
// Go side's from cuda/launch/table.go). All three kernels
// are grid-stride: any grid of at least one block is correct; the grids
// below are what keeps the GPU's memory busy without needless blocks.
#pragma once

#include "launch.cuh"

// absmax_f32: block ABSMAX_THREADS, no dynamic shared memory,
// grid = clamp(ceil(n / ABSMAX_ELEMS_PER_BLOCK), 1, ABSMAX_BLOCKS_PER_SM * SMs).

// hist_abs_f32: block HIST_THREADS, dynamic shared memory bins * 4 bytes
// (one uint32 counter per bin), 1 <= bins <= HIST_SMEM_MAX_BINS. The
// largest, 12288 bins, is exactly 48 KiB, the default limit: no opt-in
// (the kernel uses no static shared memory).
// hist_abs_f32_global: same parameters and block, no dynamic shared memory,
// any bins >= 1 (for bins > HIST_SMEM_MAX_BINS). It privatizes the first
// HIST_GLOBAL_SMEM_BINS bins in static shared memory (where skewed data,
// zeros above all, piles up) and adds the others with 64-bit global
// atomics.
// Both: grid = clamp(ceil(n / HIST_ELEMS_PER_BLOCK), 1, HIST_BLOCKS_PER_SM * SMs)
// (every block zeroes and flushes its private histogram, so blocks should
// each see many values).
