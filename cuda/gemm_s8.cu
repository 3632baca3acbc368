// gemm_s8.cu — INT8 tensor-core GEMM with a fused epilogue (see README.md
// for the ABI, gemm_s8.cuh for the launch constants, the shared-memory
// swizzle and the fragment layouts).
//
//   C[M×N] = epilogue(A[M×K] · B[N×K]ᵀ), int8 inputs, exact int32 sums.
//
// Block tile 128×128×64, 256 threads = 8 warps in a 2×4 grid, warp tile
// 64×32 = 4×4 tiles of mma.sync.m16n8k32.s8 (64 int32 accumulators per
// thread). A 4-stage cp.async pipeline feeds 64-byte swizzled shared-memory
// rows (4 × 16 KiB = GEMM_S8_SMEM bytes of dynamic shared memory), read with
// ldmatrix.x4. The epilogue runs on the accumulators in registers and writes
// C directly (no int32 matrix is stored first); int8 results are first
// exchanged within each quad of lanes so that each lane stores 8 contiguous
// bytes (store_s8).
//
// Requirements (the Go driver checks or arranges them): K % 16 == 0 (the
// backend pads other K with pad_rows_s8), A and B 16-byte aligned. M, N are
// arbitrary (out-of-range rows are zero-filled in shared memory and never
// stored), the K tail (K % 64 != 0) zero-fills whole 16-byte chunks. C needs
// only natural alignment; wider stores are used when C and N allow.
//
// Build: make ptx (nvcc -ptx -arch=compute_80 -O3 -std=c++17). Check the
// index math, the pipeline and the epilogue on a CPU with
// tools/gemm_s8_sim.cpp (how to run it is at its top).

#include "gemm_s8.cuh"

#include <type_traits>

// No anonymous namespace: nvcc names its symbols after a hash of the build
// path, which would make the committed PTX depend on where it was built.
// Helpers are static and inlined; the shared-memory array has a plain name.

static constexpr int BM = GEMM_S8_BM;
static constexpr int BN = GEMM_S8_BN;
static constexpr int BK = GEMM_S8_BK;
static constexpr int STAGES = GEMM_S8_STAGES;
static constexpr int MI = GEMM_S8_MI;
static constexpr int NI = GEMM_S8_NI;

extern __shared__ __align__(128) uint8_t gemm_s8_smem[]; // GEMM_S8_SMEM bytes

enum OutKind { OUT_S32 = 0, OUT_F32 = 1, OUT_S8 = 2 };

static __device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

// 16-byte global->shared copy, bypassing L1 (.cg), with a hint to fetch
// whole 128-byte lines into L2 (the other half of a line is mostly the
// neighbouring k-tile of the same row). src_bytes = 0 reads nothing and
// zero-fills the 16 bytes (rows past M/N, chunks past K); src is then a
// valid base pointer anyway.
static __device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes)
                 : "memory");
}

static __device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int N>
static __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

static __device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// d = a·b + d, m16n8k32, int8 × int8 -> int32 (no saturation: wraps like
// int32 addition, which cannot happen for |K| < 2^17 anyway).
static __device__ __forceinline__ void mma_s8(int32_t (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

struct Epi {
    const int32_t* col_offset; // nullable, N
    const float* row_scale;    // row_scale_len values: 0 (null), 1 or M
    int row_scale_len;
    const float* col_scale; // col_scale_len values: 0 (null), 1 or N
    int col_scale_len;
    const float* bias; // nullable, N
    int relu;
    float out_scale;
    int out_zero_point;
};

// The 2-element vector type of each output type.
template <typename T>
struct Pair;
template <>
struct Pair<int32_t> {
    using V = int2;
};
template <>
struct Pair<float> {
    using V = float2;
};

// Stores C[i][j], C[i][j+1] = v0, v1 (j even, j < N) into row = C + i·N.
// vec: N is even and C aligned for a pair, so j + 1 < N and the pair store is
// aligned; otherwise two predicated scalar stores.
template <typename T>
static __device__ __forceinline__ void store_pair(T* row, int j, int N, bool vec, T v0, T v1) {
    if (vec) {
        typename Pair<T>::V v;
        v.x = v0;
        v.y = v1;
        *reinterpret_cast<typename Pair<T>::V*>(row + j) = v;
    } else {
        row[j] = v0;
        if (j + 1 < N) row[j + 1] = v1;
    }
}

template <int OUT>
struct OutType;
template <>
struct OutType<OUT_S32> {
    using T = int32_t;
};
template <>
struct OutType<OUT_F32> {
    using T = float;
};
template <>
struct OutType<OUT_S8> {
    using T = int8_t;
};

// Stores the int8 results of one thread, packed as gemm_s8_pack holds them
// (out[mi][hr][w]), after the quad transpose of gemm_s8.cuh: each lane
// writes 8 contiguous bytes per row, one 8-byte store where N % 8 == 0 and C
// is 8-byte aligned (whole 32-byte sectors per warp store), else the bytes
// below N one by one. Every lane of the warp must call it (shuffles).
static __device__ __forceinline__ void store_s8(int8_t* __restrict__ C, int M, int N, int row0, int col0, int lane,
                                                int warp_m, int warp_n, uint32_t (&out)[MI][2][NI / 2]) {
    const int t = lane & 3;
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
        uint32_t x[2][2];
        gemm_s8_xpose_init(x, out[mi], t);
#pragma unroll
        for (int r = 1; r < 4; ++r) {
            const uint32_t got = __shfl_xor_sync(0xffffffffu, gemm_s8_xpose_send(out[mi], t, r), r);
            gemm_s8_xpose_recv(x, got, t, r);
        }
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
            out[mi][hr][0] = x[hr][0];
            out[mi][hr][1] = x[hr][1];
        }
    }
    const bool vec8 = (N & 7) == 0 && (reinterpret_cast<uintptr_t>(C) & 7) == 0;
    const int j = col0 + gemm_s8_store8_col(lane, warp_n);
    if (j >= N) return;
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
            const int i = row0 + gemm_s8_acc_row(lane, warp_m, mi, 2 * hr);
            if (i >= M) continue;
            int8_t* p = C + (long long)i * N + j;
            if (vec8) {
                *reinterpret_cast<uint2*>(p) = make_uint2(out[mi][hr][0], out[mi][hr][1]);
            } else {
#pragma unroll
                for (int b = 0; b < 8; ++b)
                    if (j + b < N) p[b] = (int8_t)(uint8_t)(out[mi][hr][b >> 2] >> (8 * (b & 3)));
            }
        }
    }
}

template <int OUT>
static __device__ __forceinline__ void gemm_s8_body(const int8_t* __restrict__ A, const int8_t* __restrict__ B,
                                                    typename OutType<OUT>::T* __restrict__ C, int M, int N, int K,
                                                    const Epi& ep) {
    using T = typename OutType<OUT>::T;

    const unsigned utid = threadIdx.x; // unsigned: shifts and masks, no sign fix-ups
    const int tid = (int)utid;
    const int lane = (int)(utid & 31u);
    const int warp_m = (int)((utid >> 5) / GEMM_S8_WARPS_N); // 0..1
    const int warp_n = (int)((utid >> 5) % GEMM_S8_WARPS_N); // 0..3

    int bm, bn;
    gemm_s8_block_map(blockIdx.x, blockIdx.y, gridDim.x, gridDim.y, &bm, &bn);
    const int row0 = bm * BM; // first row of A / C
    const int col0 = bn * BN; // first row of B = first column of C

    const uint32_t smem = smem_addr(gemm_s8_smem);
    const int ktiles = (K + BK - 1) / BK;

    // ---- global -> shared copy plan: rows lr and lr + 64 of the A and B
    // tiles, chunk lc (16 bytes) of each 64-byte row segment.
    const int lr = gemm_s8_load_row(tid);
    const int lc = gemm_s8_load_chunk(tid);
    // The swizzle depends on row bits 1..2 only, so rows lr and lr + 64 share
    // it: the second copy lands LOAD_ROWS·BK bytes after the first.
    const uint32_t st_off = gemm_s8_swizzle(lr, lc);
    const int8_t* a_src[2];
    const int8_t* b_src[2];
    bool a_ok[2], b_ok[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int ar = row0 + lr + r * GEMM_S8_LOAD_ROWS;
        const int br = col0 + lr + r * GEMM_S8_LOAD_ROWS;
        a_ok[r] = ar < M;
        b_ok[r] = br < N;
        // 64-bit offsets: M·K may pass 2^31.
        a_src[r] = A + (a_ok[r] ? (long long)ar * K + lc * 16 : 0);
        b_src[r] = B + (b_ok[r] ? (long long)br * K + lc * 16 : 0);
    }

    // Issues the copies of k-tile kt into stage s (no commit).
    auto load_tile = [&](int kt, int s) {
        const int k = kt * BK;             // tile start
        const bool k_ok = k + lc * 16 < K; // K % 16 == 0: whole chunk in range or out
        const uint32_t sa = smem + s * GEMM_S8_STAGE_BYTES + st_off;
        const uint32_t sb = sa + GEMM_S8_B_OFFSET;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const bool av = a_ok[r] && k_ok;
            const bool bv = b_ok[r] && k_ok;
            cp_async16(sa + r * GEMM_S8_LOAD_ROWS * BK, av ? a_src[r] + k : A, av ? 16 : 0);
            cp_async16(sb + r * GEMM_S8_LOAD_ROWS * BK, bv ? b_src[r] + k : B, bv ? 16 : 0);
        }
    };

    // ---- ldmatrix addresses (stage 0; other stages add STAGE_BYTES). Tile mi
    // (pair p) is 16 rows further, which leaves the swizzle (row bits 1..2)
    // alone: its address is the mi = 0 (p = 0) one plus mi·16·BK, an
    // immediate offset in the instruction rather than a register per tile.
    uint32_t a_ld[2], b_ld[2];
#pragma unroll
    for (int ks = 0; ks < 2; ++ks) {
        a_ld[ks] = smem + gemm_s8_ldsm_a(lane, warp_m, 0, ks);
        b_ld[ks] = smem + GEMM_S8_B_OFFSET + gemm_s8_ldsm_b(lane, warp_n, 0, ks);
    }

    int32_t acc[MI][NI][4];
#pragma unroll
    for (int mi = 0; mi < MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < NI; ++ni)
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[mi][ni][c] = 0;

    // ---- pipeline. Prologue: tiles 0..STAGES-2 into stages 0..STAGES-2, one
    // commit group per tile, committed even when empty (tile past the end) so
    // that "group g holds tile g" always holds.
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < ktiles) load_tile(s, s);
        cp_async_commit();
    }

    int rd = 0;          // stage of tile kt
    int wr = STAGES - 1; // stage of tile kt + STAGES - 1
    for (int kt = 0; kt < ktiles; ++kt) {
        // STAGES-1+kt groups are committed; allowing STAGES-2 pending means
        // groups 0..kt, so tile kt, have landed for this thread; the barrier
        // makes every thread's copies visible and also ends all reads of
        // stage wr (= the stage of tile kt-1, consumed in the last iteration).
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        if (kt + STAGES - 1 < ktiles) load_tile(kt + STAGES - 1, wr);
        cp_async_commit();

        const uint32_t so = rd * GEMM_S8_STAGE_BYTES;
#pragma unroll
        for (int ks = 0; ks < BK / 32; ++ks) {
            uint32_t af[MI][4];
            uint32_t bf[NI][2];
#pragma unroll
            for (int mi = 0; mi < MI; ++mi) ldsm_x4(af[mi], a_ld[ks] + so + mi * 16 * BK);
#pragma unroll
            for (int p = 0; p < NI / 2; ++p) {
                uint32_t t[4];
                ldsm_x4(t, b_ld[ks] + so + p * 16 * BK);
                bf[2 * p][0] = t[0];
                bf[2 * p][1] = t[1];
                bf[2 * p + 1][0] = t[2];
                bf[2 * p + 1][1] = t[3];
            }
#pragma unroll
            for (int mi = 0; mi < MI; ++mi)
#pragma unroll
                for (int ni = 0; ni < NI; ++ni) mma_s8(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
        }
        rd = rd == STAGES - 1 ? 0 : rd + 1;
        wr = wr == STAGES - 1 ? 0 : wr + 1;
    }
    // Only empty groups can be pending here; drain them anyway so that no copy
    // outlives the block.
    cp_async_wait<0>();

    // ---- epilogue, straight from the accumulators. Thread holds rows
    // gemm_s8_acc_row(.., mi, c) for mi < 4, c in {0, 2} and column pairs
    // gemm_s8_acc_col(.., ni, 0) (+1) for ni < 4.

    int jc[NI];
    int32_t off[NI][2];
    float cs[NI][2], bias[NI][2];
    const bool has_cs = ep.col_scale_len != 0;
    const bool has_bias = ep.bias != nullptr;
    const float relu_floor = gemm_s8_relu_floor(ep.relu != 0);
#pragma unroll
    for (int ni = 0; ni < NI; ++ni) {
        jc[ni] = col0 + gemm_s8_acc_col(lane, warp_n, ni, 0);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int j = jc[ni] + h;
            const bool in = j < N;
            off[ni][h] = (ep.col_offset != nullptr && in) ? ep.col_offset[j] : 0;
            if constexpr (OUT != OUT_S32) {
                cs[ni][h] = (has_cs && in) ? ep.col_scale[ep.col_scale_len == 1 ? 0 : j] : GEMM_S8_NO_SCALE;
                bias[ni][h] = (has_bias && in) ? ep.bias[j] : GEMM_S8_NO_BIAS;
            }
        }
    }

    // Two passes: first every output value, branch-free (out-of-range rows
    // and columns compute harmless values from identity factors), then the
    // predicated stores. Kept apart, the compiler cannot duplicate the whole
    // epilogue per store variant (vec or not).
    // (The factors are all loaded first, in loops of their own, for the same
    // reason.)
    float rs[MI][2];
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
            const int i = row0 + gemm_s8_acc_row(lane, warp_m, mi, 2 * hr);
            rs[mi][hr] = GEMM_S8_NO_SCALE;
            if (OUT != OUT_S32 && ep.row_scale_len != 0 && i < M)
                rs[mi][hr] = ep.row_scale[ep.row_scale_len == 1 ? 0 : i];
        }
    }
    // int8 results are packed 4 to a register (gemm_s8_pack): 16 registers
    // instead of 64 keep the s8 kernel free of spills under the 128-register
    // cap.
    using Held = typename std::conditional<OUT == OUT_S8, uint32_t, T>::type;
    constexpr int HELD = OUT == OUT_S8 ? NI / 2 : 2 * NI;
    Held out[MI][2][HELD];
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
            if constexpr (OUT == OUT_S8) {
#pragma unroll
                for (int w = 0; w < HELD; ++w) out[mi][hr][w] = 0;
            }
#pragma unroll
            for (int ni = 0; ni < NI; ++ni) {
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int32_t a = gemm_s8_wrap_add(acc[mi][ni][2 * hr + h], off[ni][h]);
                    if constexpr (OUT == OUT_S32) {
                        out[mi][hr][2 * ni + h] = a;
                    } else {
                        const float y = gemm_s8_epi_f32(a, rs[mi][hr], cs[ni][h], bias[ni][h], relu_floor);
                        if constexpr (OUT == OUT_F32) {
                            out[mi][hr][2 * ni + h] = y;
                        } else {
                            uint32_t& word = out[mi][hr][gemm_s8_pack_word(ni)];
                            word = gemm_s8_pack(word, ni, h, gemm_s8_quantize(y, ep.out_scale, ep.out_zero_point));
                        }
                    }
                }
            }
        }
    }
    if constexpr (OUT == OUT_S8) {
        store_s8(C, M, N, row0, col0, lane, warp_m, warp_n, out);
    } else {
        const bool vec = (N & 1) == 0 && (reinterpret_cast<uintptr_t>(C) & (2 * sizeof(T) - 1)) == 0;
#pragma unroll
        for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
            for (int hr = 0; hr < 2; ++hr) {
                const int i = row0 + gemm_s8_acc_row(lane, warp_m, mi, 2 * hr);
                if (i >= M) continue;
                T* crow = C + (long long)i * N;
#pragma unroll
                for (int ni = 0; ni < NI; ++ni) {
                    const int j = jc[ni];
                    if (j >= N) continue;
                    store_pair(crow, j, N, vec, out[mi][hr][2 * ni], out[mi][hr][2 * ni + 1]);
                }
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(GEMM_S8_THREADS, GEMM_S8_MIN_BLOCKS)
    gemm_s8_s32(const int8_t* __restrict__ A, const int8_t* __restrict__ B, int32_t* __restrict__ C, int M, int N,
                int K, const int32_t* __restrict__ col_offset) {
    Epi ep = {col_offset, nullptr, 0, nullptr, 0, nullptr, 0, 1.0f, 0};
    gemm_s8_body<OUT_S32>(A, B, C, M, N, K, ep);
}

extern "C" __global__ void __launch_bounds__(GEMM_S8_THREADS, GEMM_S8_MIN_BLOCKS)
    gemm_s8_f32(const int8_t* __restrict__ A, const int8_t* __restrict__ B, float* __restrict__ C, int M, int N,
                int K, const int32_t* __restrict__ col_offset, const float* __restrict__ row_scale,
                int row_scale_len, const float* __restrict__ col_scale, int col_scale_len,
                const float* __restrict__ bias, int relu) {
    Epi ep = {col_offset, row_scale, row_scale_len, col_scale, col_scale_len, bias, relu, 1.0f, 0};
    gemm_s8_body<OUT_F32>(A, B, C, M, N, K, ep);
}

extern "C" __global__ void __launch_bounds__(GEMM_S8_THREADS, GEMM_S8_MIN_BLOCKS)
    gemm_s8_s8(const int8_t* __restrict__ A, const int8_t* __restrict__ B, int8_t* __restrict__ C, int M, int N,
               int K, const int32_t* __restrict__ col_offset, const float* __restrict__ row_scale,
               int row_scale_len, const float* __restrict__ col_scale, int col_scale_len,
               const float* __restrict__ bias, int relu, float out_scale, int out_zero_point) {
    Epi ep = {col_offset, row_scale, row_scale_len, col_scale, col_scale_len, bias, relu, out_scale, out_zero_point};
    gemm_s8_body<OUT_S8>(A, B, C, M, N, K, ep);
}

// Copies rows × K bytes of src (row stride K) into rows of Kpad bytes of dst,
// zero-filling columns K..Kpad-1; see gemm_s8_pad_thread in gemm_s8.cuh.
extern "C" __global__ void __launch_bounds__(PAD_ROWS_THREADS)
    pad_rows_s8(const int8_t* __restrict__ src, int8_t* __restrict__ dst, int rows, int K, int Kpad) {
    gemm_s8_pad_thread(src, dst, rows, K, Kpad, (long long)blockIdx.x * blockDim.x + threadIdx.x,
                       (long long)gridDim.x * blockDim.x);
}
