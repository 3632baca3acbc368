// Shared device helpers for the FP32 kernels (gemm_f32, reduce, quantize).
// Header-only; helpers are static __device__ __forceinline__, except those
// holding a static __shared__ variable: internal linkage would give that
// variable a name hashed from the build path, and the committed PTX must
// be the same wherever `make ptx` runs.
#pragma once

#include "launch.cuh"

#include <stdint.h>

#define FULL_WARP_MASK 0xffffffffu

// Launch contract of quantize_f32 / dequantize_f32 (quantize.cu), with the
// constants of launch.cuh: block QUANT_THREADS threads (at most; no warp-level
// code, any smaller block works), no dynamic shared memory, any grid of at
// least one block (grid-stride). Each thread handles QUANT_UNROLL vectors
// of QUANT_VEC consecutive elements per pass, so
//   grid = clamp(ceil(n / QUANT_ELEMS_PER_BLOCK), 1, QUANT_BLOCKS_PER_SM * SMs)
// covers n (elements, not bytes, for 4 bits too) in one pass while keeping
// every block resident (QUANT_BLOCKS_PER_SM is the occupancy the launch
// bounds guarantee: at most 80 registers per thread).
static_assert(QUANT_ELEMS_PER_BLOCK == QUANT_THREADS * QUANT_VEC * QUANT_UNROLL, "QUANT_ELEMS_PER_BLOCK");

// Non-negative float bits, |x|: clear the sign.
static __device__ __forceinline__ unsigned int abs_bits(float v) {
    return __float_as_uint(v) & 0x7fffffffu;
}

// |x| bits below this are finite; at or above it NaN or +-Inf.
#define F32_INF_BITS 0x7f800000u

// 16-byte alignment of a pointer.
static __device__ __forceinline__ bool aligned16(const void* p) {
    return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// Elements of 4 bytes before a float pointer reaches 16-byte alignment,
// capped at n: the scalar head of a float4 loop.
static __device__ __forceinline__ long long head_to_align16(const float* p, long long n) {
    long long h = (long long)(((16u - (unsigned)(reinterpret_cast<uintptr_t>(p) & 15u)) & 15u) >> 2);
    return h < n ? h : n;
}

// Global thread index and grid-wide thread count (64-bit safe products).
static __device__ __forceinline__ long long global_thread() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}
static __device__ __forceinline__ long long grid_threads() {
    return (long long)gridDim.x * blockDim.x;
}

// Read-only, streaming loads (x is read once): ld.global.nc.L1::no_allocate
// would be ideal; __ldg is the portable read-only path.
static __device__ __forceinline__ float4 ldg_f4(const float4* p) { return __ldg(p); }

// Block-wide reduction helpers. blockDim.x must be a multiple of 32 and at
// most 1024; every thread of the block must call them (they synchronize).
// The result is valid in thread 0.
__device__ __forceinline__ unsigned int block_reduce_max_u32(unsigned int v) {
    __shared__ unsigned int warp_vals[32];
    v = __reduce_max_sync(FULL_WARP_MASK, v);
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    if (lane == 0) warp_vals[warp] = v;
    __syncthreads();
    if (warp == 0) {
        const unsigned nw = blockDim.x >> 5;
        v = lane < nw ? warp_vals[lane] : 0u;
        v = __reduce_max_sync(FULL_WARP_MASK, v);
    }
    return v;
}

__device__ __forceinline__ unsigned long long block_reduce_sum_u64(unsigned long long v) {
    __shared__ unsigned long long warp_sums[32];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_WARP_MASK, v, o);
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        const unsigned nw = blockDim.x >> 5;
        v = lane < nw ? warp_sums[lane] : 0ull;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_WARP_MASK, v, o);
    }
    return v;
}
