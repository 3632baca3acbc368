// packed.cuh — launch constants and the kernel bodies of packed.cu: C[m×n]
// = A[m×k]·Wᵀ where W [n×k] stays packed in a block format (backend.Packed,
// backend.GemmPackedF32) and is decoded in registers or shared memory,
// never in global memory.
//
// Formats (one row of k values is the row's blocks, back to back; a block
// of g values is its header then its codes):
//   - quant.RowFormat, 8 or 4 bits, signed or unsigned codes: header
//     float32 scale (PK_HDR_F32) or float32 scale + int32 zero point
//     (PK_HDR_F32_ZP); codes as quant.PutCode packs them (4 bits: value 2i
//     in the low nibble of byte i, 2i+1 in the high one); any group g (even
//     at 4 bits), the last block of a row shorter when g does not divide k.
//   - gguf Q8_0: header float16 scale (PK_HDR_F16), 32 int8 codes.
//   - gguf Q4_0: header float16 scale, 32 unsigned 4-bit codes "split"
//     (value i in the low nibble of byte i, value i+16 in the high one of
//     byte i), zero point 8.
// Every value decodes to exactly what the Go decoders give:
//   w = float32(q − zp) · scale     (one int→float rounding, one product)
// and the kernels sum a·w in float32 with fmaf, in their own order
// (backend.GemmPackedF32's contract: within backendtest.GemmF32Bound).
//
// As in lm.cuh, the bodies are templates over an execution context B, run
// by packed.cu on the device (PkDeviceBlock) and by tools/packed_sim.cpp on
// a CPU thread by thread with checked memory. The context provides:
//   reg<T>(), each(f), sync(), warp_sum(reg, m)    as in lm.cuh
//   mod16(p, off)           address of p+off modulo 16, in bytes
//   ld8/ld32/ld64/ld128(p, off[, q])   loads of packed bytes (ld32..128
//                           need off aligned to their width: the caller
//                           checks with mod16)
//   ldf4(p, off, v)         4 floats of global memory, 16-byte aligned
//   lds4(p, off, v)         4 floats of shared memory, 16-byte aligned
// The header compiles with a plain C++17 host compiler.
#pragma once

#include "launch.cuh"

#include <math.h>
#include <stdint.h>
#include <string.h>

// ---------------------------------------------------------------------------
// Launch contract. The constants are in launch.cuh, generated with the Go
// side's from cuda/launch/table.go.
//
// packed_gemv_8, packed_gemv_4 (m ≤ PK_GEMV_MAX_M): grid
// (ceil(n/PK_GEMV_WARPS)), block PK_GEMV_WARPS·32 threads; warp w of block
// x computes output column j = x·PK_GEMV_WARPS + w for every row of A.
// packed_gemm_8, packed_gemm_4 (any m): grid (ceil(n/PK_GEMM_BN),
// ceil(m/PK_GEMM_BM)), block PK_GEMM_THREADS, static shared memory only.
// PK_HDR_F32, PK_HDR_F32_ZP, PK_HDR_F16: header kinds of a block (the
// kernels' kind parameter).
static_assert(PK_GEMV_THREADS == PK_GEMV_WARPS * 32, "PK_GEMV_THREADS");

#define PK_WARP 32
// Values a GEMV lane decodes per step: 16 bytes of codes.
#define PK_V8 16
#define PK_V4 32
// Shared-memory row pitch of the GEMM tiles (floats; a multiple of 4 so
// that float4 reads stay aligned).
#define PK_AS_PITCH (PK_GEMM_BM + 4)
#define PK_WS_PITCH (PK_GEMM_BN + 4)

static_assert(PK_GEMM_THREADS == 256 && PK_GEMM_BM == 64 && PK_GEMM_BN == 64 && PK_GEMM_BK == 32,
              "the GEMM body's thread mapping assumes 256 threads on 64×64×32 tiles");
static_assert(PK_GEMV_MAX_M <= PK_WARP, "one lane writes each row's output");

// Loop unrolling: nvcc's pragma, nothing for the host compiler.
#if defined(__CUDACC__)
#define PK_UNROLL _Pragma("unroll")
#define PK_UNROLL_1 _Pragma("unroll 1")
#define PK_UNROLL_8 _Pragma("unroll 8")
#else
#define PK_UNROLL
#define PK_UNROLL_1
#define PK_UNROLL_8
#endif

#if defined(__CUDACC__)
#define PK_HD __host__ __device__ __forceinline__
#define PK_BODY __device__ __forceinline__
#else
#define PK_HD inline
#define PK_BODY inline
#endif

// ---------------------------------------------------------------------------
// Arithmetic with its rounding pinned (never contracted: the decoded value
// is rounded before it is multiplied by A, as the Go decoders store it).

#if defined(__CUDA_ARCH__)
PK_HD float pk_mul(float a, float b) { return __fmul_rn(a, b); }
PK_HD float pk_add(float a, float b) { return __fadd_rn(a, b); }
PK_HD float pk_u2f(unsigned u) { return __uint_as_float(u); }
PK_HD float pk_i2f(int v) { return __int2float_rn(v); }
#else
inline float pk_mul(float a, float b) { return a * b; }
inline float pk_add(float a, float b) { return a + b; }
inline float pk_u2f(unsigned u) { float v; memcpy(&v, &u, 4); return v; }
inline float pk_i2f(int v) { return (float)v; } // round to nearest even
#endif

// IEEE half bits to float, exactly (subnormals, infinities, NaN).
PK_HD float pk_h2f(unsigned h) {
    const unsigned s = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return pk_u2f(s | 0x7f800000u | (m << 13));
    if (e != 0) return pk_u2f(s | ((e + 112) << 23) | (m << 13));
    // ±0 and subnormals: m·2^-24, exact in float32.
    const float v = pk_mul(pk_i2f((int)m), 5.9604644775390625e-8f);
    return s ? -v : v;
}

// The decoded value of code q: float32(q − zp)·sc, the difference wrapping
// as Go's int32 arithmetic does.
PK_HD float pk_decode(int q, int zp, float sc) {
    return pk_mul(pk_i2f((int)((unsigned)q - (unsigned)zp)), sc);
}

// Code e of 8-bit codes packed little-endian in q[].
PK_HD int pk_code8(const unsigned* q, int e, int sign) {
    const unsigned b = (q[e >> 2] >> ((e & 3) * 8)) & 0xffu;
    return sign ? (int)(signed char)b : (int)b;
}

// Nibble of byte bi of q[], the high one when hi.
PK_HD int pk_code4(const unsigned* q, int bi, int hi, int sign) {
    const unsigned n = (q[bi >> 2] >> ((bi & 3) * 8 + hi * 4)) & 0xfu;
    return sign ? (int)(n ^ 8u) - 8 : (int)n;
}

// ---------------------------------------------------------------------------
// Row geometry.

struct PkFmt {
    int k, group, bits, kind, sign, zconst, split;
    int hdr;      // header bytes: 4, 8 or 2
    int bb;       // bytes of a full block
    int nbf;      // full blocks per row
    int tail;     // values of the last, shorter block (0: none)
    long long rb; // bytes per row
};

PK_HD PkFmt pk_fmt(int k, int group, int bits, int kind, int sign, int zconst, int split) {
    PkFmt f;
    f.k = k;
    f.group = group;
    f.bits = bits;
    f.kind = kind;
    f.sign = sign;
    f.zconst = zconst;
    f.split = split;
    f.hdr = kind == PK_HDR_F32 ? 4 : kind == PK_HDR_F32_ZP ? 8 : 2;
    f.bb = f.hdr + (group * bits + 7) / 8;
    f.nbf = k / group;
    f.tail = k - f.nbf * group;
    f.rb = (long long)f.nbf * f.bb + (f.tail ? f.hdr + (f.tail * bits + 7) / 8 : 0);
    return f;
}

// One GEMV step of a lane: values [p0, p0+n) of a row, all in the block
// whose header is at byte boff of the row, their codes nbytes bytes from
// byte coff.
struct PkUnit {
    int p0, n, nbytes;
    long long boff, coff;
};

// Steps of V values per row: ceil(group/V) per full block, then the tail.
PK_HD int pk_units(const PkFmt& f, int V) {
    const int upb = (f.group + V - 1) / V;
    return f.nbf * upb + (f.tail + V - 1) / V;
}

PK_HD PkUnit pk_unit(const PkFmt& f, int V, int u) {
    const int upb = (f.group + V - 1) / V;
    int b = u / upb, s = u - b * upb, len = f.group;
    if (b >= f.nbf) { // the tail block
        b = f.nbf;
        s = u - f.nbf * upb;
        len = f.tail;
    }
    PkUnit un;
    un.p0 = b * f.group + s * V;
    un.n = len - s * V < V ? len - s * V : V;
    un.nbytes = (un.n * f.bits + 7) / 8;
    un.boff = (long long)b * f.bb;
    un.coff = un.boff + f.hdr + (long long)s * V * f.bits / 8;
    return un;
}

// ---------------------------------------------------------------------------
// Loads of packed bytes at any alignment.

// 4 bytes at off, little-endian: one aligned load, else four byte loads.
template <class B, class PW>
PK_HD unsigned pk_ld_u32(B& blk, PW w, long long off) {
    if ((blk.mod16(w, off) & 3u) == 0) return blk.ld32(w, off);
    unsigned v = 0;
PK_UNROLL
    for (int i = 0; i < 4; ++i) v |= blk.ld8(w, off + i) << (8 * i);
    return v;
}

// A block's scale and zero point, its header at byte off.
template <class B, class PW>
PK_HD void pk_block_params(B& blk, PW w, long long off, const PkFmt& f, float* sc, int* zp) {
    if (f.kind == PK_HDR_F16) {
        *sc = pk_h2f(blk.ld8(w, off) | (blk.ld8(w, off + 1) << 8));
        *zp = f.zconst;
        return;
    }
    *sc = pk_u2f(pk_ld_u32(blk, w, off));
    *zp = f.kind == PK_HDR_F32_ZP ? (int)pk_ld_u32(blk, w, off + 4) : f.zconst;
}

// nbytes ≤ 16 bytes of codes at off into q[4] (zero past nbytes): one
// 16-byte load where the address allows, else 8-, 4- or 1-byte loads.
template <class B, class PW>
PK_HD void pk_load_codes(B& blk, PW w, long long off, int nbytes, unsigned q[4]) {
    const unsigned al = blk.mod16(w, off);
    if (nbytes == 16 && al == 0) {
        blk.ld128(w, off, q);
    } else if (nbytes == 16 && (al & 7u) == 0) {
        blk.ld64(w, off, q);
        blk.ld64(w, off + 8, q + 2);
    } else if ((al & 3u) == 0 && (nbytes & 3) == 0) {
PK_UNROLL
        for (int i = 0; i < 4; ++i) q[i] = i < nbytes / 4 ? blk.ld32(w, off + 4 * i) : 0u;
    } else {
PK_UNROLL
        for (int i = 0; i < 4; ++i) q[i] = 0;
PK_UNROLL
        for (int i = 0; i < 16; ++i)
            if (i < nbytes) q[i >> 2] |= blk.ld8(w, off + i) << (8 * (i & 3));
    }
}

// ---------------------------------------------------------------------------
// GEMV (m ≤ PK_GEMV_MAX_M): a warp per output column j (a row of W). Lane l
// takes the steps l, l+32, ... of the row (pk_unit): one block header and
// 16 bytes of codes each, so that a warp reads consecutive bytes of the
// row and each packed byte once; it decodes the codes in registers and
// adds a[i, p]·w[p] for every row i of A into its own float32 sums, which
// the warp then adds up with a butterfly of shuffles.

struct PkAcc {
    float v[PK_GEMV_MAX_M];
};

template <int BITS, class B, class PW, class PA>
PK_HD void pk_gemv_lane(B& blk, PW w, PA a, const PkFmt& f, int m, int j, int lane, float* acc) {
    constexpr int V = BITS == 8 ? PK_V8 : PK_V4;
    const int nu = pk_units(f, V);
    const long long row = (long long)j * f.rb;
    for (int u = lane; u < nu; u += PK_WARP) {
        const PkUnit un = pk_unit(f, V, u);
        float sc;
        int zp;
        pk_block_params(blk, w, row + un.boff, f, &sc, &zp);
        unsigned q[4];
        pk_load_codes(blk, w, row + un.coff, un.nbytes, q);
        // Decode and multiply in halves of PK_V8 values (the 16 bytes of
        // 4-bit codes are loaded once), so that the live decoded weights
        // and activations fit the registers.
PK_UNROLL
        for (int h = 0; h < V; h += PK_V8) {
            float wv[PK_V8];
PK_UNROLL
            for (int e0 = 0; e0 < PK_V8; ++e0) {
                const int e = h + e0;
                int c;
                if (BITS == 8)
                    c = pk_code8(q, e, f.sign);
                else if (f.split) // Q4_0: group 32, one step per block
                    c = pk_code4(q, e & 15, e >> 4, f.sign);
                else
                    c = pk_code4(q, e >> 1, e & 1, f.sign);
                wv[e0] = e < un.n ? pk_decode(c, zp, sc) : 0.0f;
            }
            const bool full = un.n == V;
PK_UNROLL
            for (int i = 0; i < PK_GEMV_MAX_M; ++i) {
                if (i >= m) break;
                const long long ao = (long long)i * f.k + un.p0 + h;
                // PK_V8 values of row i (zeros past n, where the weights
                // are 0 too: they add +0).
                float x[PK_V8];
                if (full && blk.mod16(a, ao) == 0) {
PK_UNROLL
                    for (int e = 0; e < PK_V8; e += 4) blk.ldf4(a, ao + e, x + e);
                } else {
PK_UNROLL
                    for (int e = 0; e < PK_V8; ++e) {
                        x[e] = 0.0f;
                        if (h + e < un.n) {
                            const float v = a[ao + e];
                            x[e] = v;
                        }
                    }
                }
                float s = acc[i];
PK_UNROLL
                for (int e = 0; e < PK_V8; ++e) s = fmaf(x[e], wv[e], s);
                acc[i] = s;
            }
        }
    }
}

// Block bx of packed_gemv_*: PK_GEMV_WARPS columns.
template <int BITS, class B, class PW, class PA, class PC>
PK_BODY void pk_gemv_body(B& blk, int bx, PW w, PA a, PC c, const PkFmt& f, int m, int n) {
    auto acc = blk.template reg<PkAcc>();
    blk.each([&](int t) {
        PkAcc& r = acc[t];
PK_UNROLL
        for (int i = 0; i < PK_GEMV_MAX_M; ++i) r.v[i] = 0.0f;
        const int j = bx * PK_GEMV_WARPS + t / PK_WARP;
        if (j < n) pk_gemv_lane<BITS>(blk, w, a, f, m, j, t % PK_WARP, r.v);
    });
    blk.warp_sum(acc, m);
    blk.each([&](int t) {
        const int j = bx * PK_GEMV_WARPS + t / PK_WARP, lane = t % PK_WARP;
        if (j >= n) return;
PK_UNROLL
        for (int i = 0; i < PK_GEMV_MAX_M; ++i)
            if (i < m && lane == i) c[(long long)i * n + j] = acc[t].v[i];
    });
}

// ---------------------------------------------------------------------------
// GEMM (any m): a block per 64×64 tile of C, K in steps of 32. Each step,
// thread t loads 8 consecutive values of row t/4 of the A tile and decodes
// 8 of row t/4 of the W tile (zeros past m, n or k), both stored K-major in
// shared memory as float; then each thread adds the 4×4 products of its
// part of the tile (rows 4·(t/16).., columns 4·(t%16)..) with fmaf.

struct PkTile {
    float v[16];
};

// Thread t's 8 values of the A tile at (m0, k0) into As.
template <class B, class PA, class PS>
PK_HD void pk_gemm_load_a(B& blk, PA a, PS As, int t, int m0, int k0, int m, int k) {
    const int r = t >> 2, kk = (t & 3) * 8, gr = m0 + r, gk = k0 + kk;
    float x[8];
    const long long ao = (long long)gr * k + gk;
    if (gr < m && gk + 8 <= k && blk.mod16(a, ao) == 0) {
        blk.ldf4(a, ao, x);
        blk.ldf4(a, ao + 4, x + 4);
    } else {
PK_UNROLL
        for (int e = 0; e < 8; ++e) {
            x[e] = 0.0f;
            if (gr < m && gk + e < k) {
                const float v = a[ao + e];
                x[e] = v;
            }
        }
    }
PK_UNROLL
    for (int e = 0; e < 8; ++e) As[(kk + e) * PK_AS_PITCH + r] = x[e];
}

// Thread t's 8 decoded values of the W tile at (n0, k0) into Ws.
template <int BITS, class B, class PW, class PS>
PK_HD void pk_gemm_load_w(B& blk, PW w, PS Ws, int t, int n0, int k0, const PkFmt& f, int n) {
    const int r = t >> 2, kk = (t & 3) * 8, j = n0 + r;
    const long long row = (long long)j * f.rb;
    int cb = -1, zp = 0;
    float sc = 0.0f;
PK_UNROLL_1
    for (int e = 0; e < 8; ++e) {
        const int p = k0 + kk + e;
        float v = 0.0f;
        if (j < n && p < f.k) {
            const int b = p / f.group, s = p - b * f.group;
            const long long boff = row + (long long)b * f.bb;
            if (b != cb) {
                pk_block_params(blk, w, boff, f, &sc, &zp);
                cb = b;
            }
            int c;
            if (BITS == 8) {
                const unsigned byte = blk.ld8(w, boff + f.hdr + s);
                c = f.sign ? (int)(signed char)byte : (int)byte;
            } else {
                const int half = f.group / 2;
                const int bi = f.split ? (s < half ? s : s - half) : s >> 1, hi = f.split ? s >= half : s & 1;
                const unsigned nib = (blk.ld8(w, boff + f.hdr + bi) >> (4 * hi)) & 0xfu;
                c = f.sign ? (int)(nib ^ 8u) - 8 : (int)nib;
            }
            v = pk_decode(c, zp, sc);
        }
        Ws[(kk + e) * PK_WS_PITCH + r] = v;
    }
}

// Thread t's 4×4 products of one K step.
template <class B, class PS>
PK_HD void pk_gemm_step(B& blk, PS As, PS Ws, int t, float* acc) {
    const int ty = t >> 4, tx = t & 15;
PK_UNROLL_8
    for (int kk = 0; kk < PK_GEMM_BK; ++kk) {
        float x[4], y[4];
        blk.lds4(As, kk * PK_AS_PITCH + ty * 4, x);
        blk.lds4(Ws, kk * PK_WS_PITCH + tx * 4, y);
PK_UNROLL
        for (int r = 0; r < 4; ++r)
PK_UNROLL
            for (int q = 0; q < 4; ++q) acc[r * 4 + q] = fmaf(x[r], y[q], acc[r * 4 + q]);
    }
}

// Block (bx, by) of packed_gemm_*. As and Ws are PK_GEMM_BK·PK_AS_PITCH and
// PK_GEMM_BK·PK_WS_PITCH floats of shared memory.
template <int BITS, class B, class PW, class PA, class PC, class PS>
PK_BODY void pk_gemm_body(B& blk, int bx, int by, PW w, PA a, PC c, const PkFmt& f, int m, int n, PS As, PS Ws) {
    const int m0 = by * PK_GEMM_BM, n0 = bx * PK_GEMM_BN;
    auto acc = blk.template reg<PkTile>();
    blk.each([&](int t) {
PK_UNROLL
        for (int i = 0; i < 16; ++i) acc[t].v[i] = 0.0f;
    });
    for (int k0 = 0; k0 < f.k; k0 += PK_GEMM_BK) {
        blk.each([&](int t) {
            pk_gemm_load_a(blk, a, As, t, m0, k0, m, f.k);
            pk_gemm_load_w<BITS>(blk, w, Ws, t, n0, k0, f, n);
        });
        blk.sync();
        blk.each([&](int t) { pk_gemm_step(blk, As, Ws, t, acc[t].v); });
        blk.sync();
    }
    blk.each([&](int t) {
        const int ty = t >> 4, tx = t & 15;
PK_UNROLL
        for (int r = 0; r < 4; ++r) {
            const int gr = m0 + ty * 4 + r;
PK_UNROLL
            for (int q = 0; q < 4; ++q) {
                const int gc = n0 + tx * 4 + q;
                if (gr < m && gc < n) c[(long long)gr * n + gc] = acc[t].v[r * 4 + q];
            }
        }
    });
}
