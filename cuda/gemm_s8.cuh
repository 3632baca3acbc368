// gemm_s8.cuh — launch constants and index helpers of the INT8 tensor-core
// GEMM in gemm_s8.cu (see README.md for the kernel ABI).
//
// The constants are in launch.cuh, generated with the Go side's from
// cuda/launch/table.go: launch gemm_s8_* with grid (ceil(N/GEMM_S8_BN),
// ceil(M/GEMM_S8_BM)), block GEMM_S8_THREADS and GEMM_S8_SMEM bytes of
// dynamic shared memory (more than 48 KiB: raise
// CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES to GEMM_S8_SMEM on each of
// the three functions first).
//
// The helpers are __host__ __device__ so that tools/gemm_s8_sim.cpp can check
// the very index math the kernel runs (swizzle bijection, bank conflicts,
// ldmatrix/mma fragment layouts, tails, the pipeline) on a CPU. This header
// must keep compiling with a plain C++17 host compiler.
#pragma once

#include "launch.cuh"

#include <stdint.h>

// GEMM_S8_SMEM = STAGES × (BM + BN) × BK = 4 × 256 × 64 bytes.
// Warps are laid out GEMM_S8_WARPS_M × GEMM_S8_WARPS_N over the block tile;
// each computes a GEMM_S8_WM × GEMM_S8_WN warp tile, that is
// GEMM_S8_MI × GEMM_S8_NI tiles of the m16n8k32 MMA.
// GEMM_S8_MIN_BLOCKS, the __launch_bounds__ minimum blocks per SM, caps
// registers at 128 per thread so that two blocks (16 warps, 2 × 64 KiB of
// shared memory) fit an SM of sm_80/sm_90 (one on sm_86/sm_89, whose SMs
// have 100 KiB of shared memory). Thread blocks are rasterized in groups of
// GEMM_S8_GROUP_M block rows (see gemm_s8_block_map).
static_assert(GEMM_S8_K_ALIGN == 16, "cp.async copies 16-byte chunks of A and B rows");
static_assert(GEMM_S8_SMEM == GEMM_S8_STAGES * (GEMM_S8_BM + GEMM_S8_BN) * GEMM_S8_BK, "GEMM_S8_SMEM");
static_assert(GEMM_S8_THREADS == 32 * GEMM_S8_WARPS_M * GEMM_S8_WARPS_N, "GEMM_S8_THREADS");
static_assert(GEMM_S8_BM == GEMM_S8_WARPS_M * GEMM_S8_WM && GEMM_S8_BN == GEMM_S8_WARPS_N * GEMM_S8_WN, "warp tiling");
static_assert(GEMM_S8_WM == 16 * GEMM_S8_MI && GEMM_S8_WN == 8 * GEMM_S8_NI && GEMM_S8_NI % 2 == 0, "mma tiling");
// The swizzle below is written for 64-byte shared-memory rows.
static_assert(GEMM_S8_BK == 64, "the swizzle assumes BK = 64 bytes = 4 chunks of 16 bytes");
// Global->shared copies: each thread moves (BM·BK/16)/THREADS chunks of A and
// as many of B per stage, at rows (tid/4) + 64·r.
static_assert(GEMM_S8_BM * GEMM_S8_BK / 16 == 2 * GEMM_S8_THREADS && GEMM_S8_BN == GEMM_S8_BM, "load mapping");

#define GEMM_S8_STAGE_BYTES ((GEMM_S8_BM + GEMM_S8_BN) * GEMM_S8_BK) // A tile then B tile
#define GEMM_S8_B_OFFSET (GEMM_S8_BM * GEMM_S8_BK)                   // B tile within a stage
#define GEMM_S8_LOAD_ROWS (GEMM_S8_THREADS / 4)                      // rows one pass of copies covers (64)

#if defined(__CUDACC__)
#define GEMM_S8_HD __host__ __device__ __forceinline__
#else
#define GEMM_S8_HD inline
#endif

// ---------------------------------------------------------------------------
// Shared-memory layout and swizzle.
//
// A stage holds the A tile (BM rows) then the B tile (BN rows), each row BK =
// 64 bytes of K, i.e. 4 chunks of 16 bytes (the unit of cp.async and of an
// ldmatrix row). Logical chunk c of row r is stored at physical chunk
//
//     c ^ ((r >> 1) & 3)
//
// Why: shared memory has 32 banks of 4 bytes, so a 128-byte "line" holds 8
// chunks; a 64-byte row is half a line and rows r, r+1 share a line (r even).
// One ldmatrix 8×8 matrix reads 8 consecutive rows (r0 = 8k … 8k+7) at the
// same logical chunk c: it is conflict-free when the 8 chunk positions
// ((r & 1)·4 + physical chunk) are distinct. Unswizzled they would be only
// {c, 4 + c} (4-way conflicts); with the XOR, row pair p = (r >> 1) & 3 moves
// the chunk to c ^ p, which is distinct for the 4 pairs, and the two rows of a
// pair sit in different halves of the line: 8 distinct positions. A 64-byte
// row (BK = 64) rather than 128 bytes keeps 4 stages at 64 KiB, under the
// 99 KiB per block of sm_86/sm_89 and small enough for 2 blocks per SM on
// sm_80/sm_90. The XOR permutes the 4 chunks of each row, so every byte has
// exactly one home (tools/gemm_s8_sim.cpp checks both properties).
GEMM_S8_HD uint32_t gemm_s8_swizzle(int row, int chunk) {
    return (uint32_t)(row * GEMM_S8_BK + ((chunk ^ ((row >> 1) & 3)) << 4));
}

// ---------------------------------------------------------------------------
// Global -> shared copies. Thread tid copies, for r = 0, 1, the 16-byte chunk
// gemm_s8_load_chunk(tid) of tile row gemm_s8_load_row(tid) + 64·r, of A and
// of B: four consecutive threads read one 64-byte row segment, so a warp
// reads 8 whole 64-byte segments (16 full 32-byte sectors).
GEMM_S8_HD int gemm_s8_load_row(int tid) { return tid >> 2; }
GEMM_S8_HD int gemm_s8_load_chunk(int tid) { return tid & 3; }

// ---------------------------------------------------------------------------
// Fragment layouts (PTX ISA, mma.m16n8k32 with .s8; groupID g = lane >> 2,
// threadID_in_group t = lane & 3; each .b32 register holds 4 int8, lowest k
// in the lowest byte):
//
//   A (16×32, row): a0 = A[g][4t..4t+3]     a1 = A[g+8][4t..4t+3]
//                   a2 = A[g][16+4t..+3]    a3 = A[g+8][16+4t..+3]
//   B (32×8, col):  b0 = B[k=4t..4t+3][n=g] b1 = B[k=16+4t..+3][n=g]
//                   B is stored N×K (K-contiguous), so b0 is row g of the
//                   stored B tile, bytes 4t..4t+3, and b1 bytes 16+4t..+3.
//   C/D (16×8):     c0, c1 = C[g][2t], C[g][2t+1]; c2, c3 = C[g+8][2t], C[g+8][2t+1]
//
// ldmatrix.m8n8.x4.b16 loads four 8×(8×b16 = 16 bytes) matrices; lanes
// 8q..8q+7 give the row addresses of matrix q, and register q of lane l
// receives row l>>2 of matrix q, bytes 4(l&3)..4(l&3)+3 — exactly the "row g,
// bytes 4t..4t+3" shape of every a_i and b_i above. So:
//
//   A, one x4 per 16×32 tile: matrix q = rows 8(q&1)..+7, k-chunk q>>1, i.e.
//     lane l points at tile row (l & 15), k-chunk (l >> 4); registers
//     r0..r3 are a0..a3.
//   B, one x4 per two 8-column tiles (n 0..15): matrix q = n-rows 8(q>>1)..+7,
//     k-chunk q&1, i.e. lane l points at n-row (l & 7) + 8(l >> 4), k-chunk
//     (l >> 3) & 1; r0, r1 are b0, b1 of the first 8 columns, r2, r3 of the
//     next 8.
//
// Each k-step ks (0, 1) of a BK = 64 stage covers k-chunks 2ks and 2ks+1.

// Byte offset, within the A tile of a stage, of lane's ldmatrix row address
// for MMA row tile mi of warp row warp_m at k-step ks.
GEMM_S8_HD uint32_t gemm_s8_ldsm_a(int lane, int warp_m, int mi, int ks) {
    int row = warp_m * GEMM_S8_WM + mi * 16 + (lane & 15);
    int chunk = 2 * ks + (lane >> 4);
    return gemm_s8_swizzle(row, chunk);
}

// Byte offset, within the B tile of a stage, of lane's ldmatrix row address
// for the MMA column tiles 2p, 2p+1 of warp column warp_n at k-step ks.
GEMM_S8_HD uint32_t gemm_s8_ldsm_b(int lane, int warp_n, int p, int ks) {
    int row = warp_n * GEMM_S8_WN + p * 16 + (lane & 7) + ((lane >> 4) << 3);
    int chunk = 2 * ks + ((lane >> 3) & 1);
    return gemm_s8_swizzle(row, chunk);
}

// Tile coordinates (row, column within the block tile) of accumulator
// register c (0..3) of MMA tile (mi, ni) of lane in warp (warp_m, warp_n).
GEMM_S8_HD int gemm_s8_acc_row(int lane, int warp_m, int mi, int c) {
    return warp_m * GEMM_S8_WM + mi * 16 + (lane >> 2) + ((c >> 1) << 3);
}
GEMM_S8_HD int gemm_s8_acc_col(int lane, int warp_n, int ni, int c) {
    return warp_n * GEMM_S8_WN + ni * 8 + 2 * (lane & 3) + (c & 1);
}

// ---------------------------------------------------------------------------
// Block rasterization. The grid is (ceil(N/BN), ceil(M/BM)) as the ABI says;
// the linear block id (x fastest, the order blocks are roughly dispatched in)
// is remapped so that consecutive blocks walk down GROUP_M block rows of one
// block column before moving to the next column: a wave then touches
// GROUP_M row panels of A and a few column panels of B, which stay in L2,
// instead of one row panel of A and all of B. A bijection of the grid onto
// itself (the last group may have fewer rows).
GEMM_S8_HD void gemm_s8_block_map(int bx, int by, int gx, int gy, int* bm, int* bn) {
    // Unsigned 32-bit arithmetic; grids too large for it (over 2^29 blocks,
    // an output of some 10^13 elements) keep the launch order.
    if ((unsigned long long)gx * (unsigned long long)gy * GEMM_S8_GROUP_M >= (1ull << 32)) {
        *bm = by;
        *bn = bx;
        return;
    }
    const unsigned pid = (unsigned)by * (unsigned)gx + (unsigned)bx;
    const unsigned per_group = GEMM_S8_GROUP_M * (unsigned)gx;
    const unsigned group = pid / per_group;
    const unsigned first_m = group * GEMM_S8_GROUP_M;
    const unsigned left = (unsigned)gy - first_m;
    const unsigned rows = left < GEMM_S8_GROUP_M ? left : GEMM_S8_GROUP_M;
    const unsigned in_group = pid - group * per_group;
    *bm = (int)(first_m + in_group % rows);
    *bn = (int)(in_group / rows);
}

// ---------------------------------------------------------------------------
// The epilogue, exactly as backend.Epilogue and the CPU backend compute it.
// Rounding is explicit (__fmul_rn / __fadd_rn / __fdiv_rn on the device) so
// that no multiply-add is contracted and results match bit for bit. A host
// compiler must not contract either (the simulator builds with
// -ffp-contract=off).
#if defined(__CUDA_ARCH__)
GEMM_S8_HD float gemm_s8_fmul(float a, float b) { return __fmul_rn(a, b); }
GEMM_S8_HD float gemm_s8_fadd(float a, float b) { return __fadd_rn(a, b); }
GEMM_S8_HD float gemm_s8_fdiv(float a, float b) { return __fdiv_rn(a, b); }
GEMM_S8_HD float gemm_s8_i2f(int32_t a) { return __int2float_rn(a); }
GEMM_S8_HD float gemm_s8_rint(float a) { return rintf(a); }
#else
GEMM_S8_HD float gemm_s8_fmul(float a, float b) { return a * b; }
GEMM_S8_HD float gemm_s8_fadd(float a, float b) { return a + b; }
GEMM_S8_HD float gemm_s8_fdiv(float a, float b) { return a / b; }
GEMM_S8_HD float gemm_s8_i2f(int32_t a) { return (float)a; }
GEMM_S8_HD float gemm_s8_rint(float a) { return __builtin_rintf(a); }
#endif

// a = acc + col_offset, wrapping like Go's int32 addition.
GEMM_S8_HD int32_t gemm_s8_wrap_add(int32_t acc, int32_t off) {
    return (int32_t)((uint32_t)acc + (uint32_t)off);
}

// y = float32(float32(a)·rs)·cs + bias, then max(y, 0) under ReLU.
// Missing factors are passed as identities, which keeps the epilogue
// branch-free and is exact: a missing scale is 1 (x·1 = x for every x the
// CPU would have kept unmultiplied, ±0 and ±Inf included; only a NaN's
// payload could differ, and a NaN can only come from a NaN scale), a missing
// bias is -0 (x + (-0) = x for every x, -0 included, where +0 would turn a -0
// into +0; the CPU adds nothing and keeps the -0).
//
// ReLU is y = (y > floor || y is NaN) ? y : floor with floor = +0, which is
// Go's max(y, 0): NaN for a NaN y, +0 for y = ±0 (fmaxf is neither:
// fmaxf(NaN, 0) = 0). Without ReLU the floor is -Inf, which changes nothing
// (y = -Inf gives the floor, -Inf), so the same straight-line code serves
// both and the compiler does not duplicate the epilogue per case.
#define GEMM_S8_NO_SCALE 1.0f
#define GEMM_S8_NO_BIAS (-0.0f)
GEMM_S8_HD float gemm_s8_relu_floor(bool relu) {
#if defined(__CUDA_ARCH__)
    return relu ? 0.0f : __int_as_float(0xff800000u);
#else
    return relu ? 0.0f : -__builtin_huge_valf();
#endif
}
GEMM_S8_HD float gemm_s8_epi_f32(int32_t a, float rs, float cs, float bias, float floor) {
    float y = gemm_s8_i2f(a);
    y = gemm_s8_fmul(y, rs);
    y = gemm_s8_fmul(y, cs);
    y = gemm_s8_fadd(y, bias);
    return (y > floor || y != y) ? y : floor;
}

// quant.QuantizeValue(y, scale, zp, -128, 127) stored as int8. Go computes
//   NaN -> zp; q = RoundToEven(float64(float32(y/scale))) + float64(zp),
//   clamped to [-128, 127].
// Here: rintf rounds half to even and is exact on a float32, so r equals
// Go's RoundToEven(float64(·)). Go's double sum r + zp rounds monotonically
// and the bounds -128, 127 are doubles, and a sum strictly between them is a
// small exact integer, so the clamped result only depends on the exact sum
// r + zp, which is computed in int64 (no FP64, slow on consumer GPUs). r is
// first clamped to ±2^32: beyond that, r + zp is past the same bound for any
// int32 zp. A NaN quotient (impossible for a finite positive scale) gives 0,
// as Go's int32(NaN) then int8 does on amd64 and arm64.
// Written with selects only, so that it compiles to straight-line code.
GEMM_S8_HD int8_t gemm_s8_quantize(float y, float scale, int32_t zp) {
    float r = gemm_s8_rint(gemm_s8_fdiv(y, scale));
    const bool nan_q = r != r;
    r = r < -0x1p32f ? -0x1p32f : r;
    r = r > 0x1p32f ? 0x1p32f : r;
    long long q = nan_q ? 0 : (long long)r + (long long)zp;
    q = q < -128 ? -128 : q;
    q = q > 127 ? 127 : q;
    return (int8_t)(y != y ? zp : (int32_t)q);
}

// int8 results are held packed, 4 to a 32-bit word: the pair (h = 0, 1) of
// MMA column tile ni lives in word ni >> 1, bytes 2(ni & 1) + h.
GEMM_S8_HD int gemm_s8_pack_word(int ni) { return ni >> 1; }
GEMM_S8_HD uint32_t gemm_s8_pack(uint32_t word, int ni, int h, int8_t q) {
    return word | (uint32_t)(uint8_t)q << (8 * (2 * (ni & 1) + h));
}
GEMM_S8_HD int8_t gemm_s8_unpack(uint32_t word, int ni, int h) {
    return (int8_t)(uint8_t)(word >> (8 * (2 * (ni & 1) + h)));
}

// ---------------------------------------------------------------------------
// int8 output stores. After the epilogue, lane (g, t) = (lane >> 2, lane & 3)
// holds, per MMA row tile mi and half hr, the column pairs ni·8 + 2t (ni =
// 0..3) of one row of its warp tile: four 2-byte "units", packed as above
// (unit ni = 16 bits at 16·(ni & 1) of word ni >> 1). The quad's 4 lanes
// hold the row's WN = 32 contiguous bytes between them, but stored as they
// lie each lane would write 2 bytes per store, 8 bytes of each 32-byte
// sector per instruction. A transpose of the quad's 4×4 units (3 rounds of
// shfl.xor) leaves lane t with units ni = t of lanes 0..3, i.e. bytes 8t ..
// 8t + 7 of the row, which it stores with one 8-byte store: a warp's store
// then writes 8 rows × 32 bytes, whole sectors.
//
// Round r (1, 2, 3): lane t exchanges with lane t ^ r, sending its unit t ^ r
// (the partner's bytes) of both halves hr at once (hr 0 in the low 16 bits,
// hr 1 in the high) and putting what it receives, the partner's unit t, at
// position t ^ r. Its own unit t stays at position t.
static_assert(GEMM_S8_WN == 32 && GEMM_S8_NI == 4, "the int8 store transposes 4 units of 2 bytes across a quad");

// Unit k (0..3) of the packed pair (w0, w1).
GEMM_S8_HD uint32_t gemm_s8_unit(uint32_t w0, uint32_t w1, int k) {
    const uint32_t w = (k & 2) ? w1 : w0;
    return (k & 1) ? w >> 16 : w & 0xffffu;
}
// Puts unit u (16 bits) at position k of the pair (w0, w1), which holds zero
// there.
GEMM_S8_HD void gemm_s8_put_unit(uint32_t& w0, uint32_t& w1, int k, uint32_t u) {
    const uint32_t v = u << (16 * (k & 1));
    w0 |= (k & 2) ? 0u : v;
    w1 |= (k & 2) ? v : 0u;
}
// The transpose's start: x holds the lane's own unit t of w (per half hr).
GEMM_S8_HD void gemm_s8_xpose_init(uint32_t (&x)[2][2], const uint32_t (&w)[2][2], int t) {
    for (int hr = 0; hr < 2; ++hr) {
        x[hr][0] = x[hr][1] = 0;
        gemm_s8_put_unit(x[hr][0], x[hr][1], t, gemm_s8_unit(w[hr][0], w[hr][1], t));
    }
}
// What lane t sends in round r.
GEMM_S8_HD uint32_t gemm_s8_xpose_send(const uint32_t (&w)[2][2], int t, int r) {
    const int k = t ^ r;
    return gemm_s8_unit(w[0][0], w[0][1], k) | gemm_s8_unit(w[1][0], w[1][1], k) << 16;
}
// Where lane t puts what it received in round r.
GEMM_S8_HD void gemm_s8_xpose_recv(uint32_t (&x)[2][2], uint32_t got, int t, int r) {
    const int k = t ^ r;
    gemm_s8_put_unit(x[0][0], x[0][1], k, got & 0xffffu);
    gemm_s8_put_unit(x[1][0], x[1][1], k, got >> 16);
}
// Column, within the block tile, of the 8 bytes lane stores after the
// transpose (for every row it holds).
GEMM_S8_HD int gemm_s8_store8_col(int lane, int warp_n) { return warp_n * GEMM_S8_WN + 8 * (lane & 3); }

// ---------------------------------------------------------------------------
// 4-byte loads and stores through int8_t pointers (plain on the device,
// memcpy on a host, where the cast would break C++ aliasing rules).
GEMM_S8_HD uint32_t gemm_s8_ld32(const int8_t* p) {
#if defined(__CUDA_ARCH__)
    return *(const uint32_t*)p;
#else
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
#endif
}
GEMM_S8_HD void gemm_s8_st32(int8_t* p, uint32_t v) {
#if defined(__CUDA_ARCH__)
    *(uint32_t*)p = v;
#else
    __builtin_memcpy(p, &v, 4);
#endif
}

// pad_rows_s8, the work of the thread numbered start of stride threads.
// Copies rows × K bytes of src (row stride K) into rows of Kpad bytes of dst,
// zero-filling columns K..Kpad-1 (Kpad >= K; a smaller Kpad truncates).
// Grid-stride over dst in units of 4 bytes when Kpad % 4 == 0 and dst is
// 4-byte aligned (the usual case: Kpad is a multiple of 16), of bytes
// otherwise; whole words are read from src when K % 4 == 0 and src is
// aligned. Each thread divides once, to find where it starts, then steps
// (row, column) by the stride without dividing again.
GEMM_S8_HD void gemm_s8_pad_thread(const int8_t* src, int8_t* dst, int rows, int K, int Kpad, long long start,
                                   long long stride) {
    if (rows <= 0 || Kpad <= 0) return;
    const bool words = (Kpad & 3) == 0 && ((uintptr_t)dst & 3) == 0;
    const int per_row = words ? Kpad >> 2 : Kpad; // units per dst row
    const long long total = (long long)rows * per_row;
    if (start >= total) return;
    long long r = start / per_row;
    int c = (int)(start - r * per_row);
    const long long dr = stride / per_row;
    const int dc = (int)(stride - dr * per_row);
    const bool src_words = (K & 3) == 0 && ((uintptr_t)src & 3) == 0;
    for (long long e = start; e < total; e += stride) {
        const int8_t* s = src + r * K;
        if (words) {
            const int k = c << 2;
            uint32_t v = 0;
            if (src_words && k + 4 <= K) {
                v = gemm_s8_ld32(s + k);
            } else {
                for (int b = 0; b < 4; ++b)
                    if (k + b < K) v |= (uint32_t)(uint8_t)s[k + b] << (8 * b);
            }
            gemm_s8_st32(dst + 4 * e, v);
        } else {
            dst[e] = c < K ? s[c] : (int8_t)0;
        }
        r += dr;
        c += dc;
        if (c >= per_row) {
            c -= per_row;
            ++r;
        }
    }
}
