// Launch contract of gemm_f32 (gemm_f32.cu); the constants are in launch.cuh,
// generated from cuda/launch/table.go with the Go side's.
//
//   grid  (ceil(N / GEMM_F32_BN), ceil(M / GEMM_F32_BM)), block GEMM_F32_THREADS,
//   no dynamic shared memory (GEMM_F32_SMEM bytes of static shared memory).
//
// M, N >= 1 (a grid with a zero dimension cannot be launched: the caller
// skips empty outputs); K >= 0 (K = 0 writes zeros). Pointers 4-byte aligned;
// 16-byte aligned A, B and K % 4 == 0 take the float4 load path.
#pragma once

#include "launch.cuh"

// Static shared memory: two stages of As[BK][BM+PAD] and Bs[BK][BN+PAD].
static_assert(GEMM_F32_SMEM == 2 * GEMM_F32_BK * (GEMM_F32_BM + GEMM_F32_PAD + GEMM_F32_BN + GEMM_F32_PAD) * 4,
              "GEMM_F32_SMEM");
