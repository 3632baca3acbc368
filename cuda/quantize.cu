// quantize.cu: quantize_f32 and dequantize_f32, every scheme of package
// quant, bit for bit as quant.QuantizeValue / quant.DequantizeValue and the
// code packing of quant.PutCode / quant.Code.
//
//   quantize:   q = x is NaN ? zp : clamp(rint(x / s) + zp, qmin, qmax)
//               (x / s correctly rounded in float32 as Go's x/scale, rint
//               half-to-even as math.RoundToEven; computed as
//               rint(clamp(x / s, qmin - zp, qmax - zp)) + zp, which is the
//               same and makes ±Inf and huge quotients saturate, see
//               quantize_value)
//   dequantize: x = float32(q - zp) * s   (one rounding, no FMA)
//
// Parameter index of element i: mode 0 per-tensor: 0; mode 1 per-channel:
// (i / inner) % channels; mode 2 per-group: (i / cols) * per_row +
// (i % cols) / group. zero_points may be NULL (all zero).
//
// Codes: 8 bits, one byte per element (two's complement for signed); 4
// bits, element 2k in the low nibble of byte k and 2k+1 in the high
// nibble, an odd n leaving the last high nibble 0.
//
// Work split: each thread handles vectors of QUANT_VEC = 8 consecutive
// elements, grid-stride (for 4 bits a vector is 4 whole bytes: no two
// threads write the same byte). With x 16-byte aligned and codes aligned to
// the vector's code bytes (8 for 8 bits, 4 for 4 bits) a vector is two
// float4 and one 8- or 4-byte code access; otherwise the same loop runs on
// single elements (8 bits) or single bytes (4 bits). The last n % 8
// elements are a scalar tail. The parameter index is never divided out per
// element: each thread keeps the quotient/remainder decomposition of its
// position (a "cursor") and advances it by additions, both along a vector
// and by the grid stride (decomposed once per thread). A vector whose
// elements share one parameter (always per-tensor; per-channel/per-group
// runs of 8 or more) loads it once and converts like per-tensor; others
// walk element by element, reloading the (cached) parameter when it changes.
//
// Launch contract: common.cuh (QUANT_*).
#include "common.cuh"

static_assert(QUANT_VEC == 8, "the vector path is written for 8 elements");

// ---------------------------------------------------------------------------
// Index arithmetic.

// a / b and a % b for a >= 0, b >= 1, in 32 bits when both fit.
static __device__ __forceinline__ void divmod(long long a, long long b, long long& q, long long& r) {
    if ((((unsigned long long)a | (unsigned long long)b) >> 32) == 0) {
        const unsigned int ua = (unsigned int)a, ub = (unsigned int)b;
        const unsigned int uq = ua / ub;
        q = uq;
        r = ua - uq * ub;
    } else {
        q = a / b;
        r = a - q * b;
    }
}

struct Layout {
    long long channels, inner; // mode 1
    long long cols, group, per_row; // mode 2
    long long G, R;                 // mode 2: cols = G * group + R
};

// Parameter index of element i, by division (tails only).
template <int MODE>
static __device__ __forceinline__ long long param_index(long long i, const Layout& L) {
    if (MODE == 1) {
        long long a, r, c;
        divmod(i, L.inner, a, r);
        divmod(a, L.channels, r, c);
        return c;
    }
    if (MODE == 2) {
        long long row, col, g, gc;
        divmod(i, L.cols, row, col);
        divmod(col, L.group, g, gc);
        return row * L.per_row + g;
    }
    return 0;
}

// Cursor: the decomposition of a position i.
//   mode 1: i = a * inner + r, c = a % channels (the parameter index).
//   mode 2: i = row * cols + col, col = g * group + gc.
template <int MODE>
struct Cursor {
    long long u, v, w, z; // mode 1: r, c; mode 2: row, col, g, gc

    __device__ __forceinline__ void init(long long i, const Layout& L) {
        if (MODE == 1) {
            long long a, q;
            divmod(i, L.inner, a, u);
            divmod(a, L.channels, q, v);
        } else if (MODE == 2) {
            divmod(i, L.cols, u, v);
            divmod(v, L.group, w, z);
        }
    }
    __device__ __forceinline__ long long index(const Layout& L) const {
        if (MODE == 1) return v;
        if (MODE == 2) return u * L.per_row + w;
        return 0;
    }
    // Position + 1.
    __device__ __forceinline__ void next(const Layout& L) {
        if (MODE == 1) {
            if (++u == L.inner) {
                u = 0;
                if (++v == L.channels) v = 0;
            }
        } else if (MODE == 2) {
            ++v;
            ++z;
            if (v == L.cols) {
                v = 0;
                z = 0;
                w = 0;
                ++u;
            } else if (z == L.group) {
                z = 0;
                ++w;
            }
        }
    }
    // Position + k for a k that stays inside the current parameter run
    // (same_param was true): no carries.
    __device__ __forceinline__ void skip(int k) {
        if (MODE == 1) {
            u += k;
        } else if (MODE == 2) {
            v += k;
            z += k;
        }
    }
    // Position + S, where step holds S decomposed like a position (see
    // make_step below).
    __device__ __forceinline__ void advance(const Cursor& step, const Layout& L) {
        if (MODE == 1) {
            // step.u = S % inner, step.v = (S / inner) % channels.
            u += step.u;
            v += step.v;
            if (u >= L.inner) {
                u -= L.inner;
                ++v;
            }
            if (v >= L.channels) v -= L.channels; // v < 2 * channels here
        } else if (MODE == 2) {
            // step.u = S / cols, step.v = S % cols = step.w * group + step.z.
            u += step.u;
            v += step.v;
            w += step.w;
            z += step.z;
            if (z >= L.group) {
                z -= L.group;
                ++w;
            }
            if (v >= L.cols) { // at most once: both terms were < cols
                v -= L.cols;
                ++u;
                w -= L.G;
                z -= L.R;
                if (z < 0) {
                    z += L.group;
                    --w;
                }
            }
        }
    }
};

// The decomposition of a stride S for Cursor::advance.
template <int MODE>
static __device__ __forceinline__ Cursor<MODE> make_step(long long S, const Layout& L) {
    Cursor<MODE> s = {0, 0, 0, 0};
    if (MODE == 1) {
        long long a, q;
        divmod(S, L.inner, a, s.u);
        divmod(a, L.channels, q, s.v);
    } else if (MODE == 2) {
        divmod(S, L.cols, s.u, s.v);
        divmod(s.v, L.group, s.w, s.z);
    }
    return s;
}

// Whether the V elements from cursor c share one parameter.
template <int MODE, int V>
static __device__ __forceinline__ bool same_param(const Cursor<MODE>& c, const Layout& L) {
    if (MODE == 1) return c.u + (V - 1) < L.inner;
    if (MODE == 2) return c.z + (V - 1) < L.group && c.v + (V - 1) < L.cols;
    return true;
}

// ---------------------------------------------------------------------------
// One value, without float<->int conversion instructions (quarter rate):
// for an integer-valued float or an int of magnitude below 2^22, adding
// MAGIC = 1.5 * 2^23 lands in [2^23, 2^24), where floats are the integers
// and the bit pattern is 0x4b400000 + the value.
//
// Quantize: with lo = qmin - zp and hi = qmax - zp (integers),
//   clamp(rint(y) + zp, qmin, qmax) = rint(clamp(y, lo, hi)) + zp
// (rint is monotonic and fixes integers), and for |t| <= 510 the float sum
// t + MAGIC rounded to nearest-even is MAGIC + rint(t) exactly (spacing 1,
// MAGIC even). Clamping first also makes ±Inf and huge quotients saturate.
// Dequantize: float(q - zp) is the float with bits 0x4b400000 + q - zp,
// minus MAGIC (exact).

#define MAGIC_F 12582912.0f
#define MAGIC_BITS 0x4b400000

// Parameter p's scale and derived constants, reloaded only when p changes.
struct ParamCache {
    long long p;
    float s, lo, hi;
    int zp, k; // quantize: k = zp - MAGIC_BITS; dequantize: k = MAGIC_BITS - zp
    __device__ __forceinline__ void get(long long q, const float* __restrict__ scales,
                                        const int* __restrict__ zero_points, int qmin, int qmax, bool dequant) {
        if (q != p) {
            p = q;
            s = __ldg(scales + q);
            zp = zero_points ? __ldg(zero_points + q) : 0;
            lo = (float)(qmin - zp);
            hi = (float)(qmax - zp);
            k = dequant ? MAGIC_BITS - zp : zp - MAGIC_BITS;
        }
    }
};

static __device__ __forceinline__ int quantize_value(float x, const ParamCache& pc) {
    const float y = __fdiv_rn(x, pc.s); // correctly rounded, as Go's float32 x/scale
    const float t = fminf(fmaxf(y, pc.lo), pc.hi);
    const int q = __float_as_int(__fadd_rn(t, MAGIC_F)) + pc.k;
    return x != x ? pc.zp : q;
}

static __device__ __forceinline__ float dequantize_value(int q, const ParamCache& pc) {
    return __fmul_rn(__fsub_rn(__int_as_float(q + pc.k), MAGIC_F), pc.s);
}

// Code k (0-based) of a packed word of codes.
template <int BITS>
static __device__ __forceinline__ int decode(unsigned long long w, int k, bool is_signed) {
    const unsigned int b = (unsigned int)(w >> (BITS * k));
    if (BITS == 8) return is_signed ? (int)(signed char)(b & 0xffu) : (int)(b & 0xffu);
    return is_signed ? ((int)(b << 28)) >> 28 : (int)(b & 0xfu);
}

struct QArgs {
    const float* __restrict__ scales;
    const int* __restrict__ zero_points;
    Layout L;
    int qmin, qmax;
    int is_signed;
};

// ---------------------------------------------------------------------------
// Vectors of V elements: 8 (float4 and wide code accesses), else 1 (8 bits)
// or 2 (4 bits: one byte).

template <int V>
static __device__ __forceinline__ void load_x(const float* __restrict__ x, long long i0, float (&xv)[V]) {
    if constexpr (V == 8) {
        const float4 p = ldg_f4(reinterpret_cast<const float4*>(x + i0));
        const float4 q = ldg_f4(reinterpret_cast<const float4*>(x + i0 + 4));
        xv[0] = p.x, xv[1] = p.y, xv[2] = p.z, xv[3] = p.w;
        xv[4] = q.x, xv[5] = q.y, xv[6] = q.z, xv[7] = q.w;
    } else {
#pragma unroll
        for (int k = 0; k < V; ++k) xv[k] = __ldg(x + i0 + k);
    }
}

template <int V>
static __device__ __forceinline__ void store_x(float* __restrict__ x, long long i0, const float (&xv)[V]) {
    if constexpr (V == 8) {
        *reinterpret_cast<float4*>(x + i0) = make_float4(xv[0], xv[1], xv[2], xv[3]);
        *reinterpret_cast<float4*>(x + i0 + 4) = make_float4(xv[4], xv[5], xv[6], xv[7]);
    } else {
#pragma unroll
        for (int k = 0; k < V; ++k) x[i0 + k] = xv[k];
    }
}

// The V codes from element i0, element k at bits [BITS*k, BITS*k + BITS).
template <int BITS, int V>
static __device__ __forceinline__ unsigned long long load_codes(const unsigned char* __restrict__ codes, long long i0) {
    if constexpr (V == 8 && BITS == 8) {
        const uint2 w = __ldg(reinterpret_cast<const uint2*>(codes + i0));
        return (unsigned long long)w.y << 32 | w.x;
    } else if constexpr (V == 8) {
        return __ldg(reinterpret_cast<const unsigned int*>(codes + (i0 >> 1)));
    } else {
        return __ldg(codes + (BITS == 8 ? i0 : (i0 >> 1)));
    }
}

template <int BITS, int V>
static __device__ __forceinline__ void store_codes(unsigned char* __restrict__ codes, long long i0, const int (&qv)[V]) {
    if constexpr (BITS == 8 && V == 8) {
        uint2 w = {0u, 0u};
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            w.x |= (unsigned int)(qv[k] & 0xff) << (8 * k);
            w.y |= (unsigned int)(qv[k + 4] & 0xff) << (8 * k);
        }
        *reinterpret_cast<uint2*>(codes + i0) = w;
    } else if constexpr (BITS == 8) {
        codes[i0] = (unsigned char)qv[0];
    } else {
        unsigned int w = 0;
#pragma unroll
        for (int k = 0; k < V; ++k) w |= (unsigned int)(qv[k] & 0xf) << (4 * k);
        if constexpr (V == 8)
            *reinterpret_cast<unsigned int*>(codes + (i0 >> 1)) = w;
        else
            codes[i0 >> 1] = (unsigned char)w;
    }
}

// Quantizes one vector whose first element the cursor is on; leaves the
// cursor on its last element.
template <int MODE, int V>
static __device__ __forceinline__ void quantize_vec(Cursor<MODE>& cur, ParamCache& pc, const QArgs& a,
                                                    const float (&xv)[V], int (&qv)[V]) {
    if (same_param<MODE, V>(cur, a.L)) {
        if (MODE != 0) pc.get(cur.index(a.L), a.scales, a.zero_points, a.qmin, a.qmax, false);
#pragma unroll
        for (int k = 0; k < V; ++k) qv[k] = quantize_value(xv[k], pc);
        if (MODE != 0) cur.skip(V - 1);
    } else {
#pragma unroll
        for (int k = 0; k < V; ++k) {
            if (k) cur.next(a.L);
            pc.get(cur.index(a.L), a.scales, a.zero_points, a.qmin, a.qmax, false);
            qv[k] = quantize_value(xv[k], pc);
        }
    }
}

template <int BITS, int MODE, int V>
static __device__ __forceinline__ void dequantize_vec(Cursor<MODE>& cur, ParamCache& pc, const QArgs& a,
                                                      unsigned long long cw, float (&xv)[V]) {
    const bool sgn = a.is_signed != 0;
    if (same_param<MODE, V>(cur, a.L)) {
        if (MODE != 0) pc.get(cur.index(a.L), a.scales, a.zero_points, 0, 0, true);
#pragma unroll
        for (int k = 0; k < V; ++k) xv[k] = dequantize_value(decode<BITS>(cw, k, sgn), pc);
        if (MODE != 0) cur.skip(V - 1);
    } else {
#pragma unroll
        for (int k = 0; k < V; ++k) {
            if (k) cur.next(a.L);
            pc.get(cur.index(a.L), a.scales, a.zero_points, 0, 0, true);
            xv[k] = dequantize_value(decode<BITS>(cw, k, sgn), pc);
        }
    }
}

// The main loops: vectors t0, t0 + T, ... below nv (T threads in the
// grid), QUANT_UNROLL vectors per iteration with all their loads issued
// before any is converted. They cover elements [0, nv * V); the caller
// does the tail.

template <int BITS, int MODE, int V>
static __device__ __forceinline__ void quantize_loop(const float* __restrict__ x, unsigned char* __restrict__ codes,
                                                     long long nv, const QArgs& a) {
    const long long t0 = global_thread(), T = grid_threads();
    if (t0 >= nv) return;
    Cursor<MODE> cur;
    cur.init(t0 * V, a.L);
    // The cursor ends each vector on its last element: the stride from
    // there to the next vector's first is T*V - (V-1).
    const Cursor<MODE> step = make_step<MODE>(T * V - (V - 1), a.L);
    ParamCache pc = {-1, 1.f, 0.f, 0.f, 0, 0};
    if (MODE == 0) pc.get(0, a.scales, a.zero_points, a.qmin, a.qmax, false);

    for (long long t = t0; t < nv; t += QUANT_UNROLL * T) {
        float xv[QUANT_UNROLL][V];
#pragma unroll
        for (int u = 0; u < QUANT_UNROLL; ++u)
            if (u == 0 || t + u * T < nv) load_x<V>(x, (t + u * T) * V, xv[u]);
#pragma unroll
        for (int u = 0; u < QUANT_UNROLL; ++u) {
            // Past nv the cursor goes wrong, but then the loop ends.
            if (u == 0 || t + u * T < nv) {
                int qv[V];
                quantize_vec<MODE, V>(cur, pc, a, xv[u], qv);
                store_codes<BITS, V>(codes, (t + u * T) * V, qv);
            }
            if (MODE != 0) cur.advance(step, a.L);
        }
    }
}

template <int BITS, int MODE, int V>
static __device__ __forceinline__ void dequantize_loop(const unsigned char* __restrict__ codes, float* __restrict__ x,
                                                       long long nv, const QArgs& a) {
    const long long t0 = global_thread(), T = grid_threads();
    if (t0 >= nv) return;
    Cursor<MODE> cur;
    cur.init(t0 * V, a.L);
    const Cursor<MODE> step = make_step<MODE>(T * V - (V - 1), a.L); // as in quantize_loop
    ParamCache pc = {-1, 1.f, 0.f, 0.f, 0, 0};
    if (MODE == 0) pc.get(0, a.scales, a.zero_points, 0, 0, true);

    for (long long t = t0; t < nv; t += QUANT_UNROLL * T) {
        unsigned long long cw[QUANT_UNROLL];
#pragma unroll
        for (int u = 0; u < QUANT_UNROLL; ++u)
            cw[u] = (u == 0 || t + u * T < nv) ? load_codes<BITS, V>(codes, (t + u * T) * V) : 0ull;
#pragma unroll
        for (int u = 0; u < QUANT_UNROLL; ++u) {
            if (u == 0 || t + u * T < nv) {
                float xv[V];
                dequantize_vec<BITS, MODE, V>(cur, pc, a, cw[u], xv);
                store_x<V>(x, (t + u * T) * V, xv);
            }
            if (MODE != 0) cur.advance(step, a.L);
        }
    }
}

// ---------------------------------------------------------------------------
// Per-(bits, mode) drivers: main loop (vector or scalar) and tail.

template <int BITS, int MODE>
static __device__ __forceinline__ void quantize_run(const float* __restrict__ x, unsigned char* __restrict__ codes,
                                                    long long n, const QArgs& a) {
    // Vector path: x 16-byte aligned, codes aligned to 8 (8 bits) or 4 (4 bits) bytes.
    const bool vec = aligned16(x) && (reinterpret_cast<uintptr_t>(codes) & (BITS == 8 ? 7u : 3u)) == 0;
    long long done;
    if (vec) {
        const long long nv = n / 8;
        quantize_loop<BITS, MODE, 8>(x, codes, nv, a);
        done = nv * 8;
    } else {
        const long long nv = BITS == 8 ? n : n / 2;
        quantize_loop<BITS, MODE, BITS == 8 ? 1 : 2>(x, codes, nv, a);
        done = BITS == 8 ? nv : nv * 2;
    }
    // Tail: elements [done, n), fewer than 8; one unit (element, or byte
    // of two elements for 4 bits) per thread.
    const long long rest = n - done;
    const long long units = BITS == 8 ? rest : (rest + 1) / 2;
    const long long t = global_thread();
    if (t < units) {
        ParamCache pc = {-1, 1.f, 0.f, 0.f, 0, 0};
        if (BITS == 8) {
            const long long i = done + t;
            pc.get(param_index<MODE>(i, a.L), a.scales, a.zero_points, a.qmin, a.qmax, false);
            codes[i] = (unsigned char)quantize_value(__ldg(x + i), pc);
        } else {
            const long long i = done + 2 * t; // done is even
            pc.get(param_index<MODE>(i, a.L), a.scales, a.zero_points, a.qmin, a.qmax, false);
            unsigned int w = quantize_value(__ldg(x + i), pc) & 0xf;
            if (i + 1 < n) { // else the high nibble stays 0
                pc.get(param_index<MODE>(i + 1, a.L), a.scales, a.zero_points, a.qmin, a.qmax, false);
                w |= (unsigned int)(quantize_value(__ldg(x + i + 1), pc) & 0xf) << 4;
            }
            codes[i >> 1] = (unsigned char)w;
        }
    }
}

template <int BITS, int MODE>
static __device__ __forceinline__ void dequantize_run(const unsigned char* __restrict__ codes, float* __restrict__ x,
                                                      long long n, const QArgs& a) {
    const bool vec = aligned16(x) && (reinterpret_cast<uintptr_t>(codes) & (BITS == 8 ? 7u : 3u)) == 0;
    long long done;
    if (vec) {
        const long long nv = n / 8;
        dequantize_loop<BITS, MODE, 8>(codes, x, nv, a);
        done = nv * 8;
    } else {
        const long long nv = BITS == 8 ? n : n / 2;
        dequantize_loop<BITS, MODE, BITS == 8 ? 1 : 2>(codes, x, nv, a);
        done = BITS == 8 ? nv : nv * 2;
    }
    const long long rest = n - done;
    const long long units = BITS == 8 ? rest : (rest + 1) / 2;
    const long long t = global_thread();
    if (t < units) {
        const bool sgn = a.is_signed != 0;
        ParamCache pc = {-1, 1.f, 0.f, 0.f, 0, 0};
        if (BITS == 8) {
            const long long i = done + t;
            pc.get(param_index<MODE>(i, a.L), a.scales, a.zero_points, 0, 0, true);
            x[i] = dequantize_value(decode<8>(__ldg(codes + i), 0, sgn), pc);
        } else {
            const long long i = done + 2 * t;
            const unsigned int b = __ldg(codes + (i >> 1));
            pc.get(param_index<MODE>(i, a.L), a.scales, a.zero_points, 0, 0, true);
            x[i] = dequantize_value(decode<4>(b, 0, sgn), pc);
            if (i + 1 < n) {
                pc.get(param_index<MODE>(i + 1, a.L), a.scales, a.zero_points, 0, 0, true);
                x[i + 1] = dequantize_value(decode<4>(b, 1, sgn), pc);
            }
        }
    }
}

static __device__ __forceinline__ bool make_args(QArgs& a, const float* scales, const int* zero_points, int mode,
                                                 long long channels, long long inner, long long cols,
                                                 long long group, long long per_row) {
    a.scales = scales;
    a.zero_points = zero_points;
    a.L.channels = channels;
    a.L.inner = inner;
    a.L.cols = cols;
    a.L.group = group;
    a.L.per_row = per_row;
    a.L.G = 0;
    a.L.R = 0;
    if (mode == 1) return channels >= 1 && inner >= 1;
    if (mode == 2) {
        if (cols < 1 || group < 1 || per_row < 1) return false;
        divmod(cols, group, a.L.G, a.L.R);
        return true;
    }
    return mode == 0;
}

// ---------------------------------------------------------------------------

extern "C" __global__ void __launch_bounds__(QUANT_THREADS, QUANT_BLOCKS_PER_SM)
quantize_f32(const float* __restrict__ x, unsigned char* __restrict__ codes, long long n,
             const float* __restrict__ scales, const int* __restrict__ zero_points, int mode, long long channels,
             long long inner, long long cols, long long group, long long per_row, int bits, int qmin, int qmax) {
    QArgs a;
    if (n <= 0 || !make_args(a, scales, zero_points, mode, channels, inner, cols, group, per_row)) return;
    a.qmin = qmin;
    a.qmax = qmax;
    a.is_signed = 0;
    if (bits == 8) {
        if (mode == 0) quantize_run<8, 0>(x, codes, n, a);
        else if (mode == 1) quantize_run<8, 1>(x, codes, n, a);
        else quantize_run<8, 2>(x, codes, n, a);
    } else if (bits == 4) {
        if (mode == 0) quantize_run<4, 0>(x, codes, n, a);
        else if (mode == 1) quantize_run<4, 1>(x, codes, n, a);
        else quantize_run<4, 2>(x, codes, n, a);
    }
}

extern "C" __global__ void __launch_bounds__(QUANT_THREADS, QUANT_BLOCKS_PER_SM)
dequantize_f32(const unsigned char* __restrict__ codes, float* __restrict__ x, long long n,
               const float* __restrict__ scales, const int* __restrict__ zero_points, int mode, long long channels,
               long long inner, long long cols, long long group, long long per_row, int bits, int is_signed) {
    QArgs a;
    if (n <= 0 || !make_args(a, scales, zero_points, mode, channels, inner, cols, group, per_row)) return;
    a.qmin = 0;
    a.qmax = 0;
    a.is_signed = is_signed;
    if (bits == 8) {
        if (mode == 0) dequantize_run<8, 0>(codes, x, n, a);
        else if (mode == 1) dequantize_run<8, 1>(codes, x, n, a);
        else dequantize_run<8, 2>(codes, x, n, a);
    } else if (bits == 4) {
        if (mode == 0) dequantize_run<4, 0>(codes, x, n, a);
        else if (mode == 1) dequantize_run<4, 1>(codes, x, n, a);
        else dequantize_run<4, 2>(codes, x, n, a);
    }
}
