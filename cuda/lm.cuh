// lm.cuh — launch constants and the kernel bodies of lm.cu, the operations
// of a Llama forward pass beside its GEMMs (backend.LMOps; see README.md
// for the kernel ABI and ../backend/lm.go for what each must compute).
//
// Every kernel body is written once, here, as a template over an execution
// context B, and run two ways:
//   - by lm.cu, on the GPU, with LmDeviceBlock: each() runs its function on
//     the calling thread, sync() is __syncthreads(), warp_reduce() shuffles;
//   - by tools/lm_sim.cpp, on a CPU, with its own context: each() runs the
//     function for every thread of the block in turn, sync() ends a phase
//     (shared-memory accesses of one phase are checked for races),
//     warp_reduce() emulates the xor butterfly lane by lane, and every
//     global and shared access goes through a checked pointer (bounds,
//     read-only inputs, writes from two threads, reads of what another
//     thread wrote in place, cache rows the causal mask hides).
// So the emulated index math and reduction order ARE the kernel's. What the
// emulation cannot reproduce bit for bit is the device's expf (the host
// libm's differs by an ulp or two): its numbers are compared with float64
// references within the bounds backendtest uses.
//
// Rules the bodies follow so that both contexts run them alike: values
// live in B::Reg (one per thread) when they cross a sync() or a
// warp_reduce(); a value every thread computes identically (from a
// block-wide reduction) is read with uniform(); loops that contain sync()
// or warp_reduce() are block-uniform; reads from checked pointers go into
// a float (or int) variable, never auto. The header compiles with a plain
// C++17 host compiler.
#pragma once

#include "launch.cuh"

#include <math.h>
#include <stdint.h>
#include <string.h>

// ---------------------------------------------------------------------------
// Launch contract. The constants are in launch.cuh, generated with the Go
// side's from cuda/launch/table.go.
//
// rmsnorm_f32, softmax_f32, quantize_rows_s8: grid (rows), block
// LM_ROW_THREADS, one block per row.
// rope_f32: grid (rows, ceil((dim/2)/LM_ROPE_CHUNK)), block LM_ROPE_THREADS;
// each block rotates LM_ROPE_CHUNK pairs of every head of one row.
// swiglu_f32, add_f32: grid-stride; grid clamp(ceil(n/LM_ELEM_THREADS), 1,
// LM_ELEM_BLOCKS_PER_SM·SMs), block LM_ELEM_THREADS.
// embed_f32: grid (tokens), block LM_EMBED_THREADS.
// attend_f32: grid (tokens·heads), block LM_ATTN_THREADS, dynamic shared
// memory LM_ATTN_SMEM(dim) bytes: q and the output accumulator (dim floats
// each), then the probabilities of one chunk of LM_ATTN_CHUNK keys. dim is
// at most LM_ATTN_MAX_DIM (so that the launch needs no more than the
// default 48 KiB). The constants are in launch.cuh.
#define LM_ATTN_SMEM(dim) ((2 * (dim) + LM_ATTN_CHUNK) * 4)
static_assert(LM_ATTN_SMEM(LM_ATTN_MAX_DIM) == LM_ATTN_MAX_SMEM, "LM_ATTN_MAX_SMEM");

// Every block size is whole warps, at most 32 of them.
#define LM_WARP 32
static_assert(LM_ROW_THREADS % LM_WARP == 0 && LM_ROW_THREADS <= 1024, "LM_ROW_THREADS");
static_assert(LM_ATTN_THREADS % LM_WARP == 0 && LM_ATTN_THREADS <= 1024, "LM_ATTN_THREADS");
static_assert(LM_ATTN_SMEM(LM_ATTN_MAX_DIM) <= 48 * 1024, "attend_f32 needs no opt-in shared memory");

#if defined(__CUDACC__)
#define LM_HD __host__ __device__ __forceinline__
#define LM_BODY __device__ __forceinline__
#else
#define LM_HD inline
#define LM_BODY inline
#endif

// ---------------------------------------------------------------------------
// Arithmetic with its rounding pinned: one IEEE float32 operation each, never
// contracted into an FMA (nvcc contracts a*b+c by default), so the emulation
// computes what the device computes. FMAs are written as fmaf.

#if defined(__CUDA_ARCH__)
LM_HD float lm_add(float a, float b) { return __fadd_rn(a, b); }
LM_HD float lm_sub(float a, float b) { return __fsub_rn(a, b); }
LM_HD float lm_mul(float a, float b) { return __fmul_rn(a, b); }
LM_HD float lm_div(float a, float b) { return __fdiv_rn(a, b); }
LM_HD unsigned lm_f2u(float v) { return __float_as_uint(v); }
LM_HD float lm_u2f(unsigned u) { return __uint_as_float(u); }
// Round half to even, saturating (NaN is handled by the caller).
LM_HD int lm_f2i_rn(float v) { return __float2int_rn(v); }
#else
// The emulator compiles with -ffp-contract=off.
inline float lm_add(float a, float b) { return a + b; }
inline float lm_sub(float a, float b) { return a - b; }
inline float lm_mul(float a, float b) { return a * b; }
inline float lm_div(float a, float b) { return a / b; }
inline unsigned lm_f2u(float v) { unsigned u; memcpy(&u, &v, 4); return u; }
inline float lm_u2f(unsigned u) { float v; memcpy(&v, &u, 4); return v; }
inline int lm_f2i_rn(float v) {
    if (v >= 2147483648.0f) return 2147483647;
    if (v <= -2147483648.0f) return -2147483647 - 1;
    return (int)nearbyintf(v); // the default rounding mode: half to even
}
#endif

// The maximum that propagates NaN, in any order of combination (the twin
// keeps the first NaN it meets; once one is in, every later step keeps it).
LM_HD float lm_nan_max(float m, float v) { return (v > m || v != v) ? v : m; }

struct LmSum {
    LM_HD float operator()(float a, float b) const { return lm_add(a, b); }
};
struct LmNanMax {
    LM_HD float operator()(float a, float b) const { return lm_nan_max(a, b); }
};
struct LmMaxU32 {
    LM_HD unsigned operator()(unsigned a, unsigned b) const { return a > b ? a : b; }
};

// |v| bits below this are finite.
#define LM_INF_BITS 0x7f800000u

// ---------------------------------------------------------------------------
// Index helpers (64-bit offsets: a KV cache or an activation may pass 2^31
// elements).

// Pair i of a head of dim values: (i, i+dim/2) rotate-half, (2i, 2i+1)
// interleaved.
LM_HD void lm_rope_pair(int i, int dim, int interleaved, int* ia, int* ib) {
    if (interleaved) {
        *ia = 2 * i;
        *ib = 2 * i + 1;
    } else {
        *ia = i;
        *ib = i + dim / 2;
    }
}

// Offset of head h of row t of a [rows, heads, dim] tensor.
LM_HD long long lm_head_offset(long long t, int heads, int h, int dim) {
    return (t * heads + h) * (long long)dim;
}

// The KV head query head h reads: h / (heads/kv_heads).
LM_HD int lm_kv_head(int h, int heads, int kv_heads) { return h / (heads / kv_heads); }

// Offset of cache position j, KV head kh, in a [capacity, kv_heads, dim]
// cache.
LM_HD long long lm_kv_offset(long long j, int kh, int kv_heads, int dim) {
    return (j * kv_heads + kh) * (long long)dim;
}

// The cache positions token t attends to: [lo, n), n = start+t+1, lo =
// n-window when a window of that many positions (the token's own among
// them) is shorter than n, else 0.
LM_HD void lm_attn_range(int t, int start, int window, long long* lo, long long* n) {
    *n = (long long)start + t + 1;
    *lo = (window > 0 && *n > window) ? *n - window : 0;
}

// The number of columns of row r softmax reads: limit[r], or cols.
template <class L>
LM_HD int lm_softmax_cols(L limit, bool has_limit, int r, int cols) {
    if (!has_limit) return cols;
    const int n = limit[r];
    return n;
}

// ---------------------------------------------------------------------------
// Element formulas (as the twins of ../backend/lm.go state them).

// RMSNorm's scale: 1/√(ss/cols + eps), the mean and the sum in float32, the
// square root and the reciprocal in double, rounded once (RMSNormF32).
LM_HD float lm_rms_scale(float ss, int cols, float eps) {
    const float ms = lm_add(lm_div(ss, (float)cols), eps);
    return (float)(1.0 / sqrt((double)ms));
}

// weight·(x·s), two float32 products.
LM_HD float lm_rms_out(float x, float s, float w) { return lm_mul(w, lm_mul(x, s)); }

// RoPE's angle: one float32 product of the position and the frequency.
LM_HD float lm_rope_angle(int pos, float freq) { return lm_mul((float)pos, freq); }

// cos and sin of a double r, |r| ≤ π/4 (a little more is fine): fdlibm's
// __kernel_cos and __kernel_sin polynomials (under 1 ulp), every step an
// explicit fma or a single rounding, so that the device and the emulator
// compute the same bits.
LM_HD double lm_kernel_sin(double x) {
    const double S1 = -1.66666666666666324348e-01, S2 = 8.33333333332248946124e-03,
                 S3 = -1.98412698298579493134e-04, S4 = 2.75573137070700676789e-06,
                 S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
    const double z = x * x;
    const double r = fma(z, fma(z, fma(z, fma(z, S6, S5), S4), S3), S2);
    return fma(z * x, fma(z, r, S1), x);
}
LM_HD double lm_kernel_cos(double x) {
    const double C1 = 4.16666666666666019037e-02, C2 = -1.38888888888741095749e-03,
                 C3 = 2.48015872894767294178e-05, C4 = -2.75573143513906633035e-07,
                 C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;
    const double z = x * x;
    const double r = z * fma(z, fma(z, fma(z, fma(z, fma(z, C6, C5), C4), C3), C2), C1);
    const double hz = 0.5 * z, w = 1.0 - hz;
    return w + (((1.0 - w) - hz) + z * r);
}

// The largest |angle| lm_sincos reduces correctly: the quadrant count must be
// an exact integer in double. RoPE's angles are pos·freq < 2^31·freq.
// (LM_ROPE_MAX_ANGLE_LOG2 is in launch.cuh: the Go side refuses larger angles.)
#define LM_ROPE_MAX_ANGLE 0x1p50
static_assert(LM_ROPE_MAX_ANGLE == (double)(1ull << LM_ROPE_MAX_ANGLE_LOG2), "LM_ROPE_MAX_ANGLE");

// cos and sin of a float32 angle in double, without the CUDA library's
// Payne-Hanek path (it needs a local-memory array): x = n·π/2 + r with π/2
// as a triple double, n·C1 split exactly by an fma, x − n·C1 exact
// (Sterbenz), so r is good to about 1e-16 absolute for |x| <
// LM_ROPE_MAX_ANGLE; then the polynomials and the quadrant.
LM_HD void lm_sincos(float angle, double* s, double* c) {
    const double x = (double)angle;
    const double C1 = 1.5707963267948966, C2 = 6.123233995736766e-17, C3 = -1.4973849048591698e-33;
#if defined(__CUDA_ARCH__)
    const double n = rint(x * 0.63661977236758134308);
#else
    const double n = nearbyint(x * 0.63661977236758134308);
#endif
    const double ph = n * C1, pl = fma(n, C1, -ph);
    const double qh = n * C2, ql = fma(n, C2, -qh);
    const double r = (((x - ph) - pl) - qh) - fma(n, C3, ql);
    const double sr = lm_kernel_sin(r), cr = lm_kernel_cos(r);
    const long long quadrant = (long long)fmod(n, 4.0);
    switch ((quadrant + 4) & 3) {
    case 0: *s = sr; *c = cr; break;
    case 1: *s = cr; *c = -sr; break;
    case 2: *s = -sr; *c = -cr; break;
    default: *s = -cr; *c = sr; break;
    }
}

// cos and sin of a float32 angle, computed in double and rounded once to
// float32 (the twin's float32(math.Cos(float64(angle)))), times mscale.
LM_HD void lm_rope_cos_sin(float angle, float mscale, float* c, float* s) {
    double dc, ds;
    lm_sincos(angle, &ds, &dc);
    *c = lm_mul((float)dc, mscale);
    *s = lm_mul((float)ds, mscale);
}

// (a, b) turned by (c, s): a·c − b·s, b·c + a·s, each product rounded.
LM_HD void lm_rope_rotate(float a, float b, float c, float s, float* oa, float* ob) {
    *oa = lm_sub(lm_mul(a, c), lm_mul(b, s));
    *ob = lm_add(lm_mul(b, c), lm_mul(a, s));
}

// silu(g)·u = g/(1+exp(−g))·u in float32. expf: at most 2 ulps from the
// correctly rounded exp on the device.
LM_HD float lm_swiglu(float g, float u) {
    const float e = expf(-g);
    return lm_mul(lm_div(g, lm_add(1.0f, e)), u);
}

// The int8 code of x under scale s > 0: the float32 quotient rounded half
// to even and clamped to ±127; NaN gives 0 (quant.QuantizeValue with zero
// point 0, range [−127, 127]).
LM_HD int lm_quantize_code(float x, float s) {
    if (x != x) return 0;
    int q = lm_f2i_rn(lm_div(x, s));
    q = q < -127 ? -127 : q;
    return q > 127 ? 127 : q;
}

// ---------------------------------------------------------------------------
// Block-wide reduction: each warp folds its lanes with the xor butterfly
// (offsets 16, 8, 4, 2, 1: lane l combines its value with lane l^o's), lane
// 0 of each warp stores the warp's value in red[warp], and after a barrier
// every warp folds red[0..warps) (padded with identity) the same way, so
// that every thread holds the block's result. The trailing barrier keeps the
// next reduction's stores into red from racing this one's loads.
// red holds LM_WARP values.
template <class B, class T, class Op, class S>
LM_BODY T lm_block_reduce(B& blk, typename B::template Reg<T>& r, Op op, T identity, S red) {
    const int warps = blk.threads() / LM_WARP;
    blk.warp_reduce(r, op);
    blk.each([&](int t) {
        if (t % LM_WARP == 0) red[t / LM_WARP] = r[t];
    });
    blk.sync();
    blk.each([&](int t) {
        const int lane = t % LM_WARP;
        if (lane < warps) {
            const T v = red[lane];
            r[t] = v;
        } else {
            r[t] = identity;
        }
    });
    blk.warp_reduce(r, op);
    blk.sync();
    return blk.uniform(r);
}

// ---------------------------------------------------------------------------
// Kernel bodies. Pointer parameters are templates: raw pointers on the
// device, checked pointers in the emulator. Outputs that the contract lets
// alias an input (dst may be x) are not __restrict__.

// rmsnorm_f32, block `row`: dst[row,:] = weight·(x[row,:]·s), s from the
// sum of squares (fmaf per thread over columns tid, tid+T, ..., then the
// block reduction).
template <class B, class X, class W, class D, class S>
LM_BODY void lm_rmsnorm_body(B& blk, int row, X x, W weight, D dst, int cols, float eps, S red) {
    const long long base = (long long)row * cols;
    typename B::template Reg<float> r = blk.template reg<float>();
    blk.each([&](int t) {
        float ss = 0.0f;
        for (int c = t; c < cols; c += blk.threads()) {
            const float v = x[base + c];
            ss = fmaf(v, v, ss);
        }
        r[t] = ss;
    });
    const float ss = lm_block_reduce(blk, r, LmSum(), 0.0f, red);
    const float s = lm_rms_scale(ss, cols, eps);
    blk.each([&](int t) {
        for (int c = t; c < cols; c += blk.threads()) {
            const float v = x[base + c];
            const float w = weight[c];
            dst[base + c] = lm_rms_out(v, s, w);
        }
    });
}

// rope_f32, block (row, chunk): the cos/sin of pairs [i0, i0+cn) for the
// row's position go to shared memory (cs: cos then sin, 2·LM_ROPE_CHUNK
// floats), then the threads rotate those pairs of every head.
template <class B, class X, class D, class P, class F, class S>
LM_BODY void lm_rope_body(B& blk, int row, int chunk, X x, D dst, P pos, F freqs, int heads, int dim,
                          int interleaved, float mscale, S cs) {
    const int half = dim / 2;
    const int i0 = chunk * LM_ROPE_CHUNK;
    const int cn = half - i0 < LM_ROPE_CHUNK ? half - i0 : LM_ROPE_CHUNK;
    blk.each([&](int t) {
        if (t < cn) {
            const int p = pos[row];
            const float f = freqs[i0 + t];
            float c, s;
            lm_rope_cos_sin(lm_rope_angle(p, f), mscale, &c, &s);
            cs[t] = c;
            cs[LM_ROPE_CHUNK + t] = s;
        }
    });
    static_assert(LM_ROPE_THREADS >= LM_ROPE_CHUNK, "one thread per pair of the chunk");
    blk.sync();
    blk.each([&](int t) {
        for (int k = t; k < heads * cn; k += blk.threads()) {
            const int h = k / cn, i = i0 + k % cn;
            int ia, ib;
            lm_rope_pair(i, dim, interleaved, &ia, &ib);
            const long long off = lm_head_offset(row, heads, h, dim);
            const float a = x[off + ia];
            const float b = x[off + ib];
            const float c = cs[k % cn];
            const float s = cs[LM_ROPE_CHUNK + k % cn];
            float oa, ob;
            lm_rope_rotate(a, b, c, s, &oa, &ob);
            dst[off + ia] = oa;
            dst[off + ib] = ob;
        }
    });
}

// swiglu_f32, thread gt of a grid of stride threads.
template <class G, class U, class D>
LM_HD void lm_swiglu_thread(long long gt, long long stride, long long n, G gate, U up, D dst) {
    for (long long i = gt; i < n; i += stride) {
        const float g = gate[i];
        const float u = up[i];
        dst[i] = lm_swiglu(g, u);
    }
}

// add_f32, thread gt: dst[i] = x[i] + y[i mod ny].
template <class X, class Y, class D>
LM_HD void lm_add_thread(long long gt, long long stride, long long n, long long ny, X x, Y y, D dst) {
    for (long long i = gt; i < n; i += stride) {
        const float a = x[i];
        const float b = y[ny == n ? i : i % ny];
        dst[i] = lm_add(a, b);
    }
}

// softmax_f32, block `row`: the NaN-propagating maximum of the first n
// columns, exp(x−max) into dst with their sum, then dst/sum, and zeros
// in columns n..cols. Every thread reads and writes the same columns
// (tid, tid+T, ...) in each pass, so dst may be x.
template <class B, class X, class D, class L, class S>
LM_BODY void lm_softmax_body(B& blk, int row, X x, D dst, L limit, bool has_limit, int cols, S red) {
    const long long base = (long long)row * cols;
    typename B::template Reg<int> rn = blk.template reg<int>();
    blk.each([&](int t) { rn[t] = lm_softmax_cols(limit, has_limit, row, cols); });
    const int n = blk.uniform(rn);
    typename B::template Reg<float> r = blk.template reg<float>();
    blk.each([&](int t) {
        float m = -INFINITY;
        for (int c = t; c < n; c += blk.threads()) {
            const float v = x[base + c];
            m = lm_nan_max(m, v);
        }
        r[t] = m;
    });
    const float m = lm_block_reduce(blk, r, LmNanMax(), -INFINITY, red);
    blk.each([&](int t) {
        float sum = 0.0f;
        for (int c = t; c < n; c += blk.threads()) {
            const float v = x[base + c];
            const float e = expf(lm_sub(v, m));
            dst[base + c] = e;
            sum = lm_add(sum, e);
        }
        r[t] = sum;
    });
    const float sum = lm_block_reduce(blk, r, LmSum(), 0.0f, red);
    blk.each([&](int t) {
        for (int c = t; c < cols; c += blk.threads()) {
            if (c < n) {
                const float e = dst[base + c];
                dst[base + c] = lm_div(e, sum);
            } else {
                dst[base + c] = 0.0f;
            }
        }
    });
}

// embed_f32, block `tok`: dst[tok,:] = table[ids[tok],:].
template <class B, class T, class I, class D>
LM_BODY void lm_embed_body(B& blk, int tok, T table, I ids, D dst, int dim) {
    blk.each([&](int t) {
        const int id = ids[tok];
        const long long src = (long long)id * dim, to = (long long)tok * dim;
        for (int c = t; c < dim; c += blk.threads()) {
            const float v = table[src + c];
            dst[to + c] = v;
        }
    });
}

// quantize_rows_s8, block `row`: the largest finite |x| as bits (finite
// non-negative floats order as their bits), scale = amax/127, codes.
template <class B, class X, class C, class Sc, class S>
LM_BODY void lm_quantize_rows_body(B& blk, int row, X x, C codes, Sc scales, int cols, S red) {
    const long long base = (long long)row * cols;
    typename B::template Reg<unsigned> r = blk.template reg<unsigned>();
    blk.each([&](int t) {
        unsigned m = 0;
        for (int c = t; c < cols; c += blk.threads()) {
            const float v = x[base + c];
            const unsigned u = lm_f2u(v) & 0x7fffffffu;
            if (u < LM_INF_BITS && u > m) m = u;
        }
        r[t] = m;
    });
    const unsigned amax = lm_block_reduce(blk, r, LmMaxU32(), 0u, red);
    const float s = lm_div(lm_u2f(amax), 127.0f);
    blk.each([&](int t) {
        if (t == 0) scales[row] = s;
        for (int c = t; c < cols; c += blk.threads()) {
            const float v = x[base + c];
            codes[base + c] = (signed char)(s == 0.0f ? 0 : lm_quantize_code(v, s));
        }
    });
}

// attend_f32, block th = t·heads + h: causal attention of query (t, h)
// over cache positions [lo, n) of KV head kh, in chunks of LM_ATTN_CHUNK
// keys with a running maximum m and normaliser l (online softmax):
//   scores: warp w computes keys w, w+W, ... of the chunk, its lanes
//           splitting the dot product over dimensions (fmaf), folded by
//           the butterfly; p[jj] = scale·dot;
//   m' = max(m, max p), alpha = exp(m − m'), p[jj] = exp(p[jj] − m'),
//   l = l·alpha + Σ p, acc[i] = acc[i]·alpha + Σ_jj p[jj]·v[j,i] (fmaf,
//   jj ascending; thread i owns acc[i]);
// then out = acc/l. alpha scales acc and l alike, so its rounding cancels
// in the quotient. smem: q (dim), acc (dim), p (LM_ATTN_CHUNK).
template <class B, class Q, class K, class V, class O, class S, class R>
LM_BODY void lm_attend_body(B& blk, int th, Q q, K k, V v, O out, int heads, int kv_heads, int dim,
                            int start, float scale, int window, S smem, R red) {
    const int t = th / heads, h = th % heads;
    const int kh = lm_kv_head(h, heads, kv_heads);
    const int warps = blk.threads() / LM_WARP;
    long long lo, n;
    lm_attn_range(t, start, window, &lo, &n);
    const long long qoff = (long long)th * dim;
    S qs = smem;
    S acc = smem + dim;
    S p = smem + 2 * dim;
    blk.each([&](int i0) {
        for (int i = i0; i < dim; i += blk.threads()) {
            const float qv = q[qoff + i];
            qs[i] = qv;
            acc[i] = 0.0f;
        }
    });
    blk.sync();
    typename B::template Reg<float> r = blk.template reg<float>();
    float m = -INFINITY, l = 0.0f;
    for (long long j0 = lo; j0 < n; j0 += LM_ATTN_CHUNK) {
        const int cn = n - j0 < LM_ATTN_CHUNK ? (int)(n - j0) : LM_ATTN_CHUNK;
        // Scores, one key per warp per round (the rounds are block-uniform).
        for (int round = 0; round * warps < cn; ++round) {
            blk.each([&](int tid) {
                const int jj = round * warps + tid / LM_WARP, lane = tid % LM_WARP;
                float dot = 0.0f;
                if (jj < cn) {
                    const long long ko = lm_kv_offset(j0 + jj, kh, kv_heads, dim);
                    for (int i = lane; i < dim; i += LM_WARP) {
                        const float a = qs[i];
                        const float b = k[ko + i];
                        dot = fmaf(a, b, dot);
                    }
                }
                r[tid] = dot;
            });
            blk.warp_reduce(r, LmSum());
            blk.each([&](int tid) {
                const int jj = round * warps + tid / LM_WARP;
                if (tid % LM_WARP == 0 && jj < cn) p[jj] = lm_mul(scale, r[tid]);
            });
        }
        blk.sync();
        blk.each([&](int tid) {
            float cm = -INFINITY;
            for (int jj = tid; jj < cn; jj += blk.threads()) {
                const float s = p[jj];
                cm = lm_nan_max(cm, s);
            }
            r[tid] = cm;
        });
        const float mnew = lm_nan_max(m, lm_block_reduce(blk, r, LmNanMax(), -INFINITY, red));
        const float alpha = expf(lm_sub(m, mnew));
        blk.each([&](int tid) {
            float sum = 0.0f;
            for (int jj = tid; jj < cn; jj += blk.threads()) {
                const float s = p[jj];
                const float e = expf(lm_sub(s, mnew));
                p[jj] = e;
                sum = lm_add(sum, e);
            }
            r[tid] = sum;
        });
        // The reduction's barriers also publish p.
        const float csum = lm_block_reduce(blk, r, LmSum(), 0.0f, red);
        l = lm_add(lm_mul(l, alpha), csum);
        m = mnew;
        blk.each([&](int i0) {
            for (int i = i0; i < dim; i += blk.threads()) {
                const float a0 = acc[i];
                float a = lm_mul(a0, alpha);
                for (int jj = 0; jj < cn; ++jj) {
                    const float pj = p[jj];
                    const float vv = v[lm_kv_offset(j0 + jj, kh, kv_heads, dim) + i];
                    a = fmaf(pj, vv, a);
                }
                acc[i] = a;
            }
        });
        // The next chunk's scores overwrite p.
        blk.sync();
    }
    blk.each([&](int i0) {
        for (int i = i0; i < dim; i += blk.threads()) {
            const float a = acc[i];
            out[qoff + i] = lm_div(a, l);
        }
    });
}
