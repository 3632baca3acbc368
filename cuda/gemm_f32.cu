// gemm_f32: C[M×N] = A[M×K]·B[N×K]ᵀ in float32, A and B row-major and
// K-contiguous, C row-major. The like-for-like SIMT baseline for the INT8
// tensor-core GEMM (gemm_s8.cu).
//
// Classic register-blocked SGEMM:
// - a block computes a 128×128 tile of C with 256 threads; each thread owns
//   an 8×8 register tile split 2×2 into 4×4 quadrants 64 rows / 64 columns
//   apart, so its shared-memory reads are float4 and conflict-free;
// - warps are 4×8 threads (4 along M, 8 along N): a warp reads 4 distinct
//   float4 of A and 8 of B per k, broadcast to the others;
// - per K step of 8 each thread loads one float4 of A and one of B (a row
//   of A's tile is 8 contiguous floats, two threads per row) and stores them
//   transposed into As[k][m] / Bs[k][n] (padded by 4 floats: the transposed
//   stores are conflict-free and rows stay 16-byte aligned);
// - two shared-memory stages and a register prefetch of the next K step:
//   global loads of step t+1 are in flight while step t's 512 FMAs run, one
//   __syncthreads per step;
// - tails: rows/columns past M/N and k past K load as zeros (they add
//   nothing) and stores are predicated. When K % 4 != 0 or A or B is not
//   16-byte aligned, a scalar-load variant of the same kernel runs (chosen
//   once per launch from the arguments, so every thread agrees); C is
//   stored as float4 when N % 4 == 0 and C is 16-byte aligned, else by
//   element.
//
// Launch contract: gemm_f32.cuh.
#include "common.cuh"
#include "gemm_f32.cuh"

#define BM GEMM_F32_BM
#define BN GEMM_F32_BN
#define BK GEMM_F32_BK
#define PAD GEMM_F32_PAD

static_assert(GEMM_F32_THREADS == 256, "thread mapping assumes 256 threads");
static_assert(BM == 128 && BN == 128 && BK == 8, "tile mapping assumes 128x128x8");
static_assert(GEMM_F32_SMEM == 2 * BK * (BM + PAD) * 4 + 2 * BK * (BN + PAD) * 4, "smem size");

// One thread's share of a BM×BK (or BN×BK) tile: 4 consecutive k of one row.
struct Frag4 {
    float v[4];
};

// Loads this thread's 4 consecutive k of one row into f, zero where out of
// range. krem is how many of the 4 are in range (<= 0: none; it is 0 for a
// row past M or N). VEC: one float4 load (K % 4 == 0 and 16-byte aligned
// rows, so the 4 values are all in range or all out).
template <bool VEC>
static __device__ __forceinline__ void load_frag(Frag4& f, const float* __restrict__ p, int krem) {
    if (VEC) {
        float4 t = make_float4(0.f, 0.f, 0.f, 0.f);
        if (krem > 0) t = __ldg(reinterpret_cast<const float4*>(p));
        f.v[0] = t.x;
        f.v[1] = t.y;
        f.v[2] = t.z;
        f.v[3] = t.w;
    } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) f.v[j] = j < krem ? __ldg(p + j) : 0.f;
    }
}

#define STAGE_A (BK * (BM + PAD)) // floats per stage of As
#define STAGE_B (BK * (BN + PAD))
#define LDA (BM + PAD)            // floats per k row of As
#define LDB (BN + PAD)

template <bool VEC>
static __device__ __forceinline__ void gemm_f32_body(const float* __restrict__ A, const float* __restrict__ B,
                                                     float* __restrict__ C, int M, int N, int K, float* As,
                                                     float* Bs) {
    const int tid = threadIdx.x;
    const int m0 = blockIdx.y * BM;
    const int n0 = blockIdx.x * BN;

    // Loader mapping: row tid/2 of the tile, k offset 0 or 4.
    const int lrow = tid >> 1;
    const int lk = (tid & 1) * 4;
    const bool a_ok = m0 + lrow < M;
    const bool b_ok = n0 + lrow < N;
    // Rows past the end are clamped (the pointer stays inside the matrix)
    // and load nothing (their k budget is 0).
    const float* a_ptr = A + (long long)(a_ok ? m0 + lrow : M - 1) * K + lk;
    const float* b_ptr = B + (long long)(b_ok ? n0 + lrow : N - 1) * K + lk;
    int ka = a_ok ? K - lk : 0; // k of this thread's 4 still in range, from the current step
    int kb = b_ok ? K - lk : 0;

    // Compute mapping: warp (wm, wn) in 4×2, lane (lm, ln) in 4×8.
    const int warp = tid >> 5, lane = tid & 31;
    const int tm = ((warp >> 1) * 4 + (lane >> 3)) * 4; // rows tm..tm+3, tm+64..tm+67
    const int tn = ((warp & 1) * 8 + (lane & 7)) * 4;   // cols tn..tn+3, tn+64..tn+67

    float* const as_st = As + lk * LDA + lrow; // transposed store: As[k][m]
    float* const bs_st = Bs + lk * LDB + lrow;
    const float* const as_rd = As + tm;
    const float* const bs_rd = Bs + tn;

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

    Frag4 fa, fb;
    // Step 0 (K may be 0: everything loads as zero and the loop does not run).
    load_frag<VEC>(fa, a_ptr, ka);
    load_frag<VEC>(fb, b_ptr, kb);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        as_st[j * LDA] = fa.v[j];
        bs_st[j * LDB] = fb.v[j];
    }
    __syncthreads();

    int oa = 0, ob = 0; // offset of the stage being read
    for (int t = (K + BK - 1) / BK; t > 0; --t) {
        // Prefetch the next step into registers before this step's FMAs.
        // The loads are unconditional in the control flow (past the last
        // step the budgets are <= 0 and they are zero fills), so the
        // compiler cannot sink them below the FMAs into a branch.
        ka -= BK;
        kb -= BK;
        a_ptr += BK;
        b_ptr += BK;
        load_frag<VEC>(fa, a_ptr, ka);
        load_frag<VEC>(fb, b_ptr, kb);
#pragma unroll
        for (int k = 0; k < BK; ++k) {
            const float4 a0 = *reinterpret_cast<const float4*>(as_rd + oa + k * LDA);
            const float4 a1 = *reinterpret_cast<const float4*>(as_rd + oa + k * LDA + 64);
            const float4 b0 = *reinterpret_cast<const float4*>(bs_rd + ob + k * LDB);
            const float4 b1 = *reinterpret_cast<const float4*>(bs_rd + ob + k * LDB + 64);
            const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int i = 0; i < 8; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        // The other stage was last read in the previous step, which every
        // thread finished before the barrier that ended it. (After the last
        // step this stores zeros nobody reads.)
        oa ^= STAGE_A;
        ob ^= STAGE_B;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            as_st[oa + j * LDA] = fa.v[j];
            bs_st[ob + j * LDB] = fb.v[j];
        }
        __syncthreads();
    }

    // Epilogue: row i of the thread's tile is tm + i (i < 4) or tm + 60 + i.
    const bool cvec = ((N & 3) == 0) && aligned16(C);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int row = m0 + tm + (i < 4 ? i : 60 + i);
        if (row >= M) continue;
        float* crow = C + (long long)row * N;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int col = n0 + tn + h * 64;
            const float* v = &acc[i][h * 4];
            if (cvec) {
                // N % 4 == 0 and col % 4 == 0: the float4 is all in or all out.
                if (col < N) *reinterpret_cast<float4*>(crow + col) = make_float4(v[0], v[1], v[2], v[3]);
            } else {
#pragma unroll
                for (int j = 0; j < 4; ++j)
                    if (col + j < N) crow[col + j] = v[j];
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(GEMM_F32_THREADS, GEMM_F32_MIN_BLOCKS)
gemm_f32(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C, int M, int N, int K) {
    // Uniform for the whole launch: every thread takes the same path.
    // One copy of the shared tiles for both variants.
    __shared__ __align__(16) float As[2 * STAGE_A];
    __shared__ __align__(16) float Bs[2 * STAGE_B];
    const bool vec = ((K & 3) == 0) && aligned16(A) && aligned16(B);
    if (vec)
        gemm_f32_body<true>(A, B, C, M, N, K, As, Bs);
    else
        gemm_f32_body<false>(A, B, C, M, N, K, As, Bs);
}
