// reduce.cu: the abs-max and the |x| histogram of float32 tensors, for the
// calibrators (backend.AbsMax, backend.HistogramAbs, quant.Histogram).
//
// All kernels are grid-stride over float4 loads: a scalar head brings x to
// 16-byte alignment (a Buffer slice may start anywhere), the body reads
// float4, a scalar tail finishes. Launch contract: reduce.cuh.
#include "common.cuh"
#include "reduce.cuh"

// ---------------------------------------------------------------------------
// absmax_f32(x, n, out): *out = max(*out, bits of the largest finite |x|).
// Non-negative floats order like their bit patterns as unsigned integers,
// so the maximum is taken on |x|'s bits; NaN and ±Inf (|x| bits >=
// 0x7f800000) are skipped. The caller zeroes *out (0 is +0.0f).

static __device__ __forceinline__ unsigned int max_finite(unsigned int m, float v) {
    const unsigned int u = abs_bits(v);
    return u < F32_INF_BITS ? max(m, u) : m;
}

static __device__ __forceinline__ unsigned int max_finite4(unsigned int m, float4 v) {
    m = max_finite(m, v.x);
    m = max_finite(m, v.y);
    m = max_finite(m, v.z);
    return max_finite(m, v.w);
}

extern "C" __global__ void __launch_bounds__(ABSMAX_THREADS, ABSMAX_BLOCKS_PER_SM)
absmax_f32(const float* __restrict__ x, long long n, unsigned int* __restrict__ out) {
    if (n <= 0) return;
    const long long gt = global_thread(), stride = grid_threads();
    const long long h = head_to_align16(x, n); // scalar head, < 4 elements
    const long long n4 = (n - h) >> 2;        // float4 body
    const long long tail = h + (n4 << 2);     // scalar tail from here, < 4 elements
    const float4* __restrict__ x4 = reinterpret_cast<const float4*>(x + h);

    unsigned int m = 0;
    long long i = gt;
    // Four independent 16-byte loads in flight per thread.
    for (; i + 3 * stride < n4; i += 4 * stride) {
        const float4 v0 = ldg_f4(x4 + i);
        const float4 v1 = ldg_f4(x4 + i + stride);
        const float4 v2 = ldg_f4(x4 + i + 2 * stride);
        const float4 v3 = ldg_f4(x4 + i + 3 * stride);
        m = max_finite4(m, v0);
        m = max_finite4(m, v1);
        m = max_finite4(m, v2);
        m = max_finite4(m, v3);
    }
    for (; i < n4; i += stride) m = max_finite4(m, ldg_f4(x4 + i));
    // Head and tail: at most 3 + 3 elements, one per thread of the first threads.
    if (gt < h) m = max_finite(m, __ldg(x + gt));
    if (gt < n - tail) m = max_finite(m, __ldg(x + tail + gt));

    m = block_reduce_max_u32(m);
    if (threadIdx.x == 0 && m != 0) atomicMax(out, m);
}

// ---------------------------------------------------------------------------
// hist_abs_f32 / hist_abs_f32_global(x, n, inv_width, bins, counts, nonfinite):
// counts[min(floor(|x|·inv_width), bins−1)] += 1 for finite x, *nonfinite
// += the number of NaN and ±Inf. inv_width is a power of two (1/width), so
// |x|·inv_width in float32 is exactly the float32 quotient |x|/width the
// reference (quant.Histogram) computes, rounding included.
//
// Each block counts into a private histogram of uint32 in shared memory
// (all bins for hist_abs_f32; the first HIST_GLOBAL_SMEM_BINS for
// hist_abs_f32_global, the rest straight into global memory), then adds
// each non-zero counter into counts with one 64-bit atomic.
//
// Skew: the lanes of a warp that hit the same bin would serialize on one
// shared-memory address (ReLU outputs put half the values in bin 0). Each
// warp therefore groups equal bins with __match_any_sync and lets one
// leader add the group's size. match is not free, so a warp samples: it
// always groups the first value of each batch of 16 per lane, and groups the
// other 15 only when that sample showed three or more lanes on one bin
// (otherwise plain per-lane atomics, with at most a rare 2-way conflict).
// The loops are warp-uniform (every lane of a warp runs the same
// iterations, lanes past the end carry bin -1), as match and any need.

#define NO_BIN (-1)
#define HIST_UNROLL 4 // float4 loads in flight per lane

// Bin of v, or NO_BIN (counting it in nonfin) when v is NaN or ±Inf.
// Branch-free. BIG: bins > 2^23 (hist_abs_f32_global only; quant caps
// histograms at 2^20 bins).
//
// floor(min(f, bins-1)) = min(floor(f), bins-1) for the integer bins-1, and
// for 0 <= g < 2^23, g + 2^23 rounded toward zero is 2^23 + floor(g)
// exactly (the float spacing there is 1): its bit pattern minus that of
// 2^23 is floor(g). That is one FADD instead of a float->int conversion
// (a quarter-rate instruction). f is NaN only for non-finite v, whose bin
// is discarded (fminf(NaN, c) = c keeps it harmless).
template <bool BIG>
static __device__ __forceinline__ int bin_of(float v, float inv_width, float last_bin, int bins,
                                             unsigned int& nonfin) {
    const unsigned int u = abs_bits(v);
    const bool finite = u < F32_INF_BITS;
    nonfin += finite ? 0u : 1u;
    const float f = __fmul_rn(__uint_as_float(u), inv_width);
    int b;
    if (!BIG) {
        b = __float_as_int(__fadd_rz(fminf(f, last_bin), 8388608.0f)) - 0x4b000000;
    } else {
        // f < 2^31 keeps the conversion in range (f is +Inf when |x| is
        // far past the last bin).
        b = f < 2147483648.0f ? min((int)f, bins - 1) : bins - 1;
    }
    return finite ? b : NO_BIN;
}

// Shared-memory adds through a 32-bit shared address computed once per
// thread (through a generic pointer, sm_90 code recomputes the shared window
// base around every atomic). ptxas turns the +1 form into
// ATOMS.POPC.INC.
static __device__ __forceinline__ void red_shared_add(unsigned int sh_addr, unsigned int v, bool pred) {
    asm volatile(
        "{\n\t.reg .pred p;\n\tsetp.ne.u32 p, %2, 0;\n\t@p red.shared.add.u32 [%0], %1;\n\t}"
        :
        : "r"(sh_addr), "r"(v), "r"((unsigned int)pred)
        : "memory");
}
static __device__ __forceinline__ void red_shared_inc(unsigned int sh_addr, bool pred) {
    asm volatile(
        "{\n\t.reg .pred p;\n\tsetp.ne.u32 p, %1, 0;\n\t@p red.shared.add.u32 [%0], 1;\n\t}"
        :
        : "r"(sh_addr), "r"((unsigned int)pred)
        : "memory");
}

// The private histogram: counters at shared address sh (bins below
// sbins); GLOBAL (hist_abs_f32_global): bins at or above sbins go straight
// to the global counts.
struct HistTarget {
    unsigned int sh;
    int sbins;
    unsigned long long* counts;
};

// Adds c to bin b when pred.
template <bool GLOBAL>
static __device__ __forceinline__ void bin_add(const HistTarget& t, int b, unsigned int c, bool pred) {
    if (!GLOBAL) {
        red_shared_add(t.sh + 4u * (unsigned)b, c, pred);
    } else {
        const bool low = b < t.sbins;
        red_shared_add(t.sh + 4u * (unsigned)b, c, pred && low);
        if (pred && !low) atomicAdd(t.counts + b, (unsigned long long)c);
    }
}
template <bool GLOBAL>
static __device__ __forceinline__ void bin_inc(const HistTarget& t, int b, bool pred) {
    if (!GLOBAL) {
        red_shared_inc(t.sh + 4u * (unsigned)b, pred);
    } else {
        const bool low = b < t.sbins;
        red_shared_inc(t.sh + 4u * (unsigned)b, pred && low);
        if (pred && !low) atomicAdd(t.counts + b, 1ull);
    }
}

// Warp-aggregated add of one value per lane (b may be NO_BIN): the lowest
// lane of each group of equal bins adds the group's size. All 32 lanes
// call it together.
template <bool GLOBAL>
static __device__ __forceinline__ void bin_add_grouped(const HistTarget& t, int b) {
    const unsigned int peers = __match_any_sync(FULL_WARP_MASK, b);
    const unsigned int lane = threadIdx.x & 31u;
    bin_add<GLOBAL>(t, b, __popc(peers), b != NO_BIN && lane == (unsigned)(__ffs(peers) - 1));
}

// Adds the NB bins b[] of each lane of the warp (see above). Warp-uniform call.
template <bool GLOBAL, int NB>
static __device__ __forceinline__ void bins_add(const HistTarget& t, const int (&b)[NB]) {
    const unsigned int lane = threadIdx.x & 31u;
    const unsigned int p0 = __match_any_sync(FULL_WARP_MASK, b[0]);
    const bool hot = __any_sync(FULL_WARP_MASK, b[0] != NO_BIN && __popc(p0) > 2);
    bin_add<GLOBAL>(t, b[0], __popc(p0), b[0] != NO_BIN && lane == (unsigned)(__ffs(p0) - 1));
    if (hot) {
#pragma unroll
        for (int j = 1; j < NB; ++j) bin_add_grouped<GLOBAL>(t, b[j]);
    } else {
#pragma unroll
        for (int j = 1; j < NB; ++j) bin_inc<GLOBAL>(t, b[j], b[j] != NO_BIN);
    }
}

template <bool GLOBAL, bool BIG>
static __device__ __forceinline__ void hist_body(const float* __restrict__ x, long long n, float inv_width, int bins,
                                                 unsigned long long* __restrict__ counts,
                                                 unsigned long long* __restrict__ nonfinite, unsigned int* sh,
                                                 int sbins) {
    // Zero the private histogram.
    for (int i = threadIdx.x; i < sbins; i += blockDim.x) sh[i] = 0u;
    __syncthreads();

    const HistTarget t = {(unsigned int)__cvta_generic_to_shared(sh), sbins, counts};
    const float last_bin = (float)(bins - 1); // exact when !BIG (bins <= 2^23)
    const unsigned int lane = threadIdx.x & 31u;
    const long long gwarp = global_thread() >> 5;
    const long long nwarps = grid_threads() >> 5;
    const long long h = head_to_align16(x, n);
    const long long n4 = (n - h) >> 2;
    const long long tail = h + (n4 << 2);
    const float4* __restrict__ x4 = reinterpret_cast<const float4*>(x + h);
    unsigned int nonfin = 0;

    // Body: each warp takes HIST_UNROLL x 32 float4 per iteration (lane
    // l loads float4 base + 32u + l, u < HIST_UNROLL, all before binning);
    // the loop bound is warp-uniform.
    for (long long base = gwarp * (32 * HIST_UNROLL); base < n4; base += nwarps * (32 * HIST_UNROLL)) {
        float4 v[HIST_UNROLL];
        bool ok[HIST_UNROLL];
#pragma unroll
        for (int u = 0; u < HIST_UNROLL; ++u) {
            const long long i = base + 32 * u + lane;
            ok[u] = i < n4;
            v[u] = ok[u] ? ldg_f4(x4 + i) : make_float4(0.f, 0.f, 0.f, 0.f);
        }
        int b[4 * HIST_UNROLL];
#pragma unroll
        for (int u = 0; u < HIST_UNROLL; ++u) {
            // Lanes past the end loaded zeros (finite, so nonfin stays
            // right) and are masked to NO_BIN afterwards: no branches.
            const int b0 = bin_of<BIG>(v[u].x, inv_width, last_bin, bins, nonfin);
            const int b1 = bin_of<BIG>(v[u].y, inv_width, last_bin, bins, nonfin);
            const int b2 = bin_of<BIG>(v[u].z, inv_width, last_bin, bins, nonfin);
            const int b3 = bin_of<BIG>(v[u].w, inv_width, last_bin, bins, nonfin);
            b[4 * u + 0] = ok[u] ? b0 : NO_BIN;
            b[4 * u + 1] = ok[u] ? b1 : NO_BIN;
            b[4 * u + 2] = ok[u] ? b2 : NO_BIN;
            b[4 * u + 3] = ok[u] ? b3 : NO_BIN;
        }
        bins_add<GLOBAL, 4 * HIST_UNROLL>(t, b);
    }

    // Head and tail (at most 3 + 3 values): the first warp of block 0,
    // lane j < 4 takes head value j, lane 4 + j tail value j.
    if (gwarp == 0) {
        const long long i = lane < 4 ? (long long)lane : tail + (lane - 4);
        const bool ok = lane < 4 ? (long long)lane < h : (lane < 8 && i < n);
        const int b = ok ? bin_of<BIG>(__ldg(x + i), inv_width, last_bin, bins, nonfin) : NO_BIN;
        bin_add_grouped<GLOBAL>(t, b);
    }

    // Flush: every counter is final once all threads pass the barrier.
    __syncthreads();
    for (int i = threadIdx.x; i < sbins; i += blockDim.x) {
        const unsigned int c = sh[i];
        if (c != 0u) atomicAdd(counts + i, (unsigned long long)c);
    }

    // Non-finite values: summed per warp, one atomic per warp that saw any
    // (no shared memory, so that hist_abs_f32 can use all 48 KiB for bins).
    unsigned long long w = nonfin;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) w += __shfl_xor_sync(FULL_WARP_MASK, w, o);
    if (lane == 0 && w != 0ull) atomicAdd(nonfinite, w);
}

extern "C" __global__ void __launch_bounds__(HIST_THREADS, HIST_BLOCKS_PER_SM)
hist_abs_f32(const float* __restrict__ x, long long n, float inv_width, int bins,
             unsigned long long* __restrict__ counts, unsigned long long* __restrict__ nonfinite) {
    extern __shared__ unsigned int hist_sh[]; // bins counters
    if (n <= 0 || bins <= 0) return;
    // bins <= HIST_SMEM_MAX_BINS < 2^23.
    hist_body<false, false>(x, n, inv_width, bins, counts, nonfinite, hist_sh, bins);
}

extern "C" __global__ void __launch_bounds__(HIST_THREADS, HIST_BLOCKS_PER_SM)
hist_abs_f32_global(const float* __restrict__ x, long long n, float inv_width, int bins,
                    unsigned long long* __restrict__ counts, unsigned long long* __restrict__ nonfinite) {
    __shared__ unsigned int low_sh[HIST_GLOBAL_SMEM_BINS];
    if (n <= 0 || bins <= 0) return;
    const int sbins = min(bins, HIST_GLOBAL_SMEM_BINS);
    if (bins <= (1 << 23))
        hist_body<true, false>(x, n, inv_width, bins, counts, nonfinite, low_sh, sbins);
    else
        hist_body<true, true>(x, n, inv_width, bins, counts, nonfinite, low_sh, sbins);
}
