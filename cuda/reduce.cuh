// Launch constants of reduce.cu (absmax_f32, hist_abs_f32,
// hist_abs_f32_global), mirrored in ../gpu/kernels.go. All three kernels
// are grid-stride: any grid of at least one block is correct; the grids
// below are what keeps the GPU's memory busy without needless blocks.
#pragma once

// absmax_f32: block ABSMAX_THREADS, no dynamic shared memory,
// grid = clamp(ceil(n / ABSMAX_ELEMS_PER_BLOCK), 1, ABSMAX_BLOCKS_PER_SM * SMs).
#define ABSMAX_THREADS 256
#define ABSMAX_BLOCKS_PER_SM 4
#define ABSMAX_ELEMS_PER_BLOCK (ABSMAX_THREADS * 16)

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
#define HIST_THREADS 512
#define HIST_BLOCKS_PER_SM 2
#define HIST_ELEMS_PER_BLOCK (HIST_THREADS * 64)
#define HIST_SMEM_MAX_BINS 12288
#define HIST_GLOBAL_SMEM_BINS 4096
