// lm_sim.cpp — runs the kernel bodies of ../lm.cuh (the very code lm.cu
// launches) on a CPU and checks them, without a GPU.
//
//   g++ -std=c++17 -O2 -ffp-contract=off -Wall -Wextra -o /tmp/lm_sim cuda/tools/lm_sim.cpp && /tmp/lm_sim
//
// Each launch is emulated block by block; within a block, each phase (the
// code between two barriers) runs thread by thread, and warp shuffles are
// emulated lane by lane in the butterfly's order. Every global and shared
// access goes through a checked pointer, which fails the run on:
//   - an index outside the buffer; a write through a read-only operand;
//   - two threads writing one global element, or a thread reading a global
//     element another thread wrote (an in-place operation must not);
//   - a shared-memory race: an element written by one thread and read or
//     written by another in the same phase; a read of shared memory never
//     written;
//   - a read the operation must not make (a KV-cache row the causal mask
//     hides or past the last token, softmax columns past the limit);
//   - a "uniform" value (a block reduction's result) that differs between
//     threads; a register read before it is written (poisoned).
// The results are compared with float64 references within the bounds of
// backend/backendtest (exact for embed, add and quantize), on random shapes
// with edge sizes: columns not a multiple of 32 or of the block, odd head
// counts and dimensions, every GQA ratio of 1 to 8, Start > 0, several key
// chunks, operations in place.
//
// What it cannot check: the device's expf (the host libm's differs by an
// ulp or two, within the bounds), timing, and hardware behaviour beyond the
// CUDA programming model (memory ordering across a barrier is assumed).
#include "../lm.cuh"
#include "sim.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

// The host context of lm.cuh's bodies: sim.h's block with the warp
// reduction and the uniform-value check lm.cuh uses.
struct HostBlock : HostBlockBase {
    template <class T, class Op>
    void warp_reduce(Reg<T>& r, Op op) {
        CHECK(nt % LM_WARP == 0, "%s: block of %d threads is not whole warps", g_kernel.c_str(), nt);
        for (int w = 0; w < nt / LM_WARP; ++w)
            for (int o = LM_WARP / 2; o > 0; o >>= 1) {
                T next[LM_WARP];
                for (int l = 0; l < LM_WARP; ++l) next[l] = op(r[w * LM_WARP + l], r[w * LM_WARP + (l ^ o)]);
                for (int l = 0; l < LM_WARP; ++l) r[w * LM_WARP + l] = next[l];
            }
    }
    template <class T>
    T uniform(Reg<T>& r) {
        for (int t = 1; t < nt; ++t) {
            T a = r[0], b = r[t];
            bool same = std::memcmp(&a, &b, sizeof(T)) == 0 || (a == b); // ±0 alike
            if constexpr (std::is_same_v<T, float>) same = same || (a != a && b != b);
            CHECK(same, "%s: block %d: the uniform value differs between threads 0 and %d", g_kernel.c_str(),
                  g_block, t);
        }
        return r[0];
    }
};

// Runs body(blk, block) for blocks [0, blocks), fresh phases per block.
template <class F>
void launch(const char* name, long long blocks, int threads, F body) {
    launch_blocks<HostBlock>(name, blocks, threads, body);
}

// ---------------------------------------------------------------------------
// Data and comparisons.

static std::mt19937_64 rng(1);
static const double Unit = 0x1p-24, Subnormal = 0x1p-149, FlushBound = 0x1p-120;

static std::vector<float> values(size_t n, double scale, bool adversarial = true) {
    std::normal_distribution<double> nd(0, scale);
    std::vector<float> x(n);
    for (auto& v : x) v = (float)nd(rng);
    const float adv[] = {0.0f, -0.0f, (float)(scale * 1e3), (float)(-scale * 1e3), 1e-30f, -3e-39f};
    if (adversarial)
        for (size_t i = 3; i < n; i += 7) x[i] = adv[rng() % 6];
    return x;
}

static void within(const char* what, const std::vector<float>& got, const std::vector<double>& want,
                   const std::vector<double>& bound) {
    int bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        const double d = std::fabs((double)got[i] - want[i]);
        if (!(d <= bound[i]) && ++bad <= 5)
            CHECK(false, "%s: element %zu is %g, want %g within %.3g", what, i, got[i], want[i], bound[i]);
    }
    CHECK(bad == 0, "%s: %d elements out of bounds", what, bad);
}

static void all_written(const char* what, const std::vector<char>& written) {
    size_t miss = 0;
    for (char w : written) miss += !w;
    CHECK(miss == 0, "%s: %zu outputs never written", what, miss);
}

static bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

// ---------------------------------------------------------------------------
// RMSNorm.

static void test_rmsnorm(int rows, int cols, double scale, float eps, bool inplace) {
    auto x = values((size_t)rows * cols, scale), w = values(cols, 1);
    if (rows >= 2) std::fill(x.begin(), x.begin() + cols, 0.0f);
    Arr<float> X("x", x), W("weight", w), D("dst", x.size()), red("red", LM_WARP, true);
    Arr<float>& out = inplace ? X : D;
    launch("rmsnorm_f32", rows, LM_ROW_THREADS, [&](HostBlock& blk, int b) {
        red.reset();
        lm_rmsnorm_body(blk, b, inplace ? rw(X) : ro(X), ro(W), rw(out), cols, eps, rw(red));
    });
    std::vector<double> want(x.size()), bound(x.size());
    for (int r = 0; r < rows; ++r) {
        double ss = 0;
        for (int c = 0; c < cols; ++c) ss += (double)x[(size_t)r * cols + c] * x[(size_t)r * cols + c];
        const double inv = 1 / std::sqrt(ss / cols + (double)eps);
        for (int c = 0; c < cols; ++c) {
            const size_t i = (size_t)r * cols + c;
            want[i] = (double)x[i] * inv * w[c];
            bound[i] = (cols + 8) * Unit * std::fabs(want[i]) + 4 * Subnormal;
        }
    }
    char what[96];
    std::snprintf(what, sizeof what, "rmsnorm %dx%d%s", rows, cols, inplace ? " in place" : "");
    within(what, out.v, want, bound);
    all_written(what, out.written);
}

// ---------------------------------------------------------------------------
// RoPE.

static void test_rope(int heads, int dim, bool interleaved, bool inplace) {
    const std::vector<int> pos = {0, 1, 2, 7, 4095, 100000, 131071, 1 << 20, 3};
    const int rows = (int)pos.size(), half = dim / 2;
    std::vector<float> freqs(half);
    for (int i = 0; i < half; ++i) freqs[i] = 1 / (float)std::pow(10000.0, (double)(float(2 * i) / float(dim)));
    auto x = values((size_t)rows * heads * dim, 1);
    Arr<float> X("x", x), D("dst", x.size()), F("freqs", freqs), cs("cs", 2 * LM_ROPE_CHUNK, true);
    Arr<int> P("pos", pos);
    Arr<float>& out = inplace ? X : D;
    const int chunks = (half + LM_ROPE_CHUNK - 1) / LM_ROPE_CHUNK;
    launch("rope_f32", (long long)rows * chunks, LM_ROPE_THREADS, [&](HostBlock& blk, int b) {
        cs.reset();
        // blockIdx.x = row, blockIdx.y = chunk.
        lm_rope_body(blk, b / chunks, b % chunks, inplace ? rw(X) : ro(X), rw(out), ro(P), ro(F), heads, dim,
                     interleaved, 1.0f, rw(cs));
    });
    std::vector<double> want(x.size()), bound(x.size());
    std::vector<float> twin(x.size());
    for (int t = 0; t < rows; ++t)
        for (int h = 0; h < heads; ++h)
            for (int i = 0; i < half; ++i) {
                const size_t base = ((size_t)t * heads + h) * dim;
                const size_t ia = base + (interleaved ? 2 * i : i), ib = base + (interleaved ? 2 * i + 1 : i + half);
                const float angle = (float)pos[t] * freqs[i];
                const double a = x[ia], bb = x[ib];
                want[ia] = a * std::cos((double)angle) - bb * std::sin((double)angle);
                want[ib] = a * std::sin((double)angle) + bb * std::cos((double)angle);
                bound[ia] = bound[ib] = 8 * Unit * (std::fabs(a) + std::fabs(bb)) + 4 * Subnormal;
                // RoPEF32, transcribed: the kernel must give its bits.
                const float c = (float)std::cos((double)angle), s = (float)std::sin((double)angle);
                twin[ia] = x[ia] * c - x[ib] * s;
                twin[ib] = x[ib] * c + x[ia] * s;
            }
    char what[96];
    std::snprintf(what, sizeof what, "rope %d heads dim %d%s%s", heads, dim, interleaved ? " interleaved" : "",
                  inplace ? " in place" : "");
    within(what, out.v, want, bound);
    all_written(what, out.written);
    int diff = 0;
    for (size_t i = 0; i < twin.size(); ++i) diff += !same_bits(twin[i], out.v[i]);
    CHECK(diff == 0, "%s: %d elements differ from RoPEF32's bits", what, diff);
}

// lm_sincos against the host libm in double: absolute error at most 4e-16
// (2 ulps at 1), and the float32 roundings equal to the twin's nearly always
// (a double result a hair from a float32 tie may round the other way).
static void test_sincos() {
    std::uniform_real_distribution<double> u(0, 1);
    long long n = 0, differ = 0;
    double worst = 0;
    auto one = [&](float a) {
        double s, c;
        lm_sincos(a, &s, &c);
        const double es = std::fabs(s - std::sin((double)a)), ec = std::fabs(c - std::cos((double)a));
        worst = std::max(worst, std::max(es, ec));
        differ += !same_bits((float)s, (float)std::sin((double)a)) + !same_bits((float)c, (float)std::cos((double)a));
        ++n;
    };
    for (int i = 0; i < 200000; ++i) one((float)std::ldexp(u(rng), (int)(rng() % 32)));      // up to 2^31
    for (long long k = 1; k < 2000000000LL; k = k * 3 / 2 + 1) {                               // near n·π/2
        const float a = (float)(k * 1.5707963267948966);
        one(a), one(std::nextafter(a, 0.0f)), one(std::nextafter(a, INFINITY));
    }
    for (int p = 0; p < 1 << 21; p += 997) one((float)p * 0.0001f), one((float)p);
    CHECK(worst <= 4e-16, "lm_sincos: error %.3g against libm", worst);
    CHECK(differ * 100000 <= n, "lm_sincos: %lld of %lld float32 roundings differ from libm's", differ, 2 * n);
    std::printf("lm_sincos: %lld angles, largest error %.3g, %lld float32 roundings differ from libm's\n", n, worst,
                differ);
}

// ---------------------------------------------------------------------------
// SwiGLU and Add: grid-stride, with grids smaller than the data.

static void test_swiglu(long long n, int grid, int alias) {
    auto g = values(n, 4), u = values(n, 1);
    const float edge[] = {-88, -88.8f, -89, -100, -104, -1e30f, 88, 89, 1e30f, 20, -20, 1e-40f};
    for (long long i = 0; i < n; i += 5) g[i] = edge[(i / 5) % 12];
    Arr<float> G("gate", g), U("up", u), D("dst", n);
    Arr<float>& out = alias == 1 ? G : alias == 2 ? U : D;
    launch("swiglu_f32", grid, LM_ELEM_THREADS, [&](HostBlock& blk, int b) {
        blk.each([&](int t) {
            lm_swiglu_thread((long long)b * LM_ELEM_THREADS + t, (long long)grid * LM_ELEM_THREADS, n,
                             alias == 1 ? rw(G) : ro(G), alias == 2 ? rw(U) : ro(U), rw(out));
        });
    });
    std::vector<double> want(n), bound(n);
    for (long long i = 0; i < n; ++i) {
        const double gv = g[i];
        want[i] = gv / (1 + std::exp(-gv)) * u[i];
        bound[i] = 8 * Unit * std::fabs(want[i]) + FlushBound * std::fabs((double)u[i]) + 2 * Subnormal;
    }
    char what[64];
    std::snprintf(what, sizeof what, "swiglu n=%lld grid=%d alias=%d", n, grid, alias);
    within(what, out.v, want, bound);
    all_written(what, out.written);
}

static void test_add(long long n, long long ny, int grid, int alias) {
    auto x = values(n, 3), y = values(ny, 3);
    const float edge[] = {INFINITY, -INFINITY, NAN, -0.0f, 0, 3e38f, -3e38f, 1e-40f};
    for (long long i = 0; i < n; i += 11) x[i] = edge[(i / 11) % 8];
    Arr<float> X("x", x), Y("y", y), D("dst", n);
    Arr<float>& out = alias == 1 ? X : alias == 2 ? Y : D;
    launch("add_f32", grid, LM_ELEM_THREADS, [&](HostBlock& blk, int b) {
        blk.each([&](int t) {
            lm_add_thread((long long)b * LM_ELEM_THREADS + t, (long long)grid * LM_ELEM_THREADS, n, ny,
                          alias == 1 ? rw(X) : ro(X), alias == 2 ? rw(Y) : ro(Y), rw(out));
        });
    });
    int bad = 0;
    for (long long i = 0; i < n; ++i) {
        const float want = x[i] + y[i % ny];
        if (!same_bits(out.v[i], want) && !(want != want && out.v[i] != out.v[i])) ++bad;
    }
    CHECK(bad == 0, "add n=%lld ny=%lld alias=%d: %d sums differ from x+y", n, ny, alias, bad);
    all_written("add", out.written);
}

// ---------------------------------------------------------------------------
// Softmax.

static void test_softmax(int rows, int cols, double scale, bool causal, bool inplace) {
    auto x = values((size_t)rows * cols, scale, false);
    std::vector<int> limit;
    if (causal) {
        limit.resize(rows);
        for (int r = 0; r < rows; ++r) {
            limit[r] = cols - rows + r + 1;
            if (limit[r] < 1) limit[r] = 1;
        }
    }
    if (rows >= 3 && cols >= 3) {
        const int n0 = causal ? limit[0] : cols;
        for (int j = 0; j < n0; ++j) x[j] = 7;
        x[cols] = -INFINITY;
        x[cols + 2] = -INFINITY;
        x[2 * cols + 1] = 1e30f;
    }
    Arr<float> X("x", x), D("dst", x.size()), red("red", LM_WARP, true);
    Arr<int> L("limit", causal ? limit : std::vector<int>{0});
    Arr<float>& out = inplace ? X : D;
    // Columns past a row's limit must not be read.
    if (causal) X.forbid = [&](long long i) { return !inplace && (i % cols) >= limit[i / cols]; };
    launch("softmax_f32", rows, LM_ROW_THREADS, [&](HostBlock& blk, int b) {
        red.reset();
        lm_softmax_body(blk, b, inplace ? rw(X) : ro(X), rw(out), ro(L), causal, cols, rw(red));
    });
    std::vector<double> want(x.size()), bound(x.size());
    for (int r = 0; r < rows; ++r) {
        const int n = causal ? limit[r] : cols;
        double m = -INFINITY, sum = 0;
        for (int j = 0; j < n; ++j) m = std::max(m, (double)x[(size_t)r * cols + j]);
        for (int j = 0; j < n; ++j) sum += std::exp((double)x[(size_t)r * cols + j] - m);
        for (int j = 0; j < cols; ++j) {
            const size_t i = (size_t)r * cols + j;
            if (j >= n) {
                want[i] = 0, bound[i] = 0;
                continue;
            }
            const double p = std::exp((double)x[i] - m) / sum;
            double d = (double)x[i] - m;
            if (std::isinf(d)) d = 0;
            want[i] = p;
            bound[i] = 2 * Unit * p * (n + 8 + std::fabs(d)) + FlushBound;
        }
    }
    char what[96];
    std::snprintf(what, sizeof what, "softmax %dx%d%s%s", rows, cols, causal ? " causal" : "",
                  inplace ? " in place" : "");
    within(what, out.v, want, bound);
    all_written(what, out.written);
}

// ---------------------------------------------------------------------------
// Embed.

static void test_embed(int vocab, int dim, int tokens) {
    auto table = values((size_t)vocab * dim, 1);
    table[0] = INFINITY;
    std::vector<int> ids(tokens);
    for (int i = 0; i < tokens; ++i) ids[i] = i == 0 ? vocab - 1 : (int)(rng() % vocab);
    Arr<float> T("table", table), D("dst", (size_t)tokens * dim);
    Arr<int> I("ids", ids);
    launch("embed_f32", tokens, LM_EMBED_THREADS,
           [&](HostBlock& blk, int b) { lm_embed_body(blk, b, ro(T), ro(I), rw(D), dim); });
    int bad = 0;
    for (int t = 0; t < tokens; ++t)
        for (int c = 0; c < dim; ++c) bad += !same_bits(D.v[(size_t)t * dim + c], table[(size_t)ids[t] * dim + c]);
    CHECK(bad == 0, "embed %dx%d: %d values differ", vocab, dim, bad);
    all_written("embed", D.written);
}

// ---------------------------------------------------------------------------
// QuantizeRows: bit for bit against backendtest's float64 formulation.

static void test_quantize_rows(int rows, int cols) {
    auto x = values((size_t)rows * cols, 2);
    if (rows >= 3) {
        std::fill(x.begin() + cols, x.begin() + 2 * cols, 0.0f);
        float* r = &x[2 * (size_t)cols];
        for (int i = 0; i < cols; ++i) r[i] = (float)(i % 254 - 127) + 0.5f;
        r[0] = 127;
        if (cols > 4) r[1] = NAN, r[2] = INFINITY, r[3] = -INFINITY;
    }
    if (rows >= 4) // a row of subnormals only: the scale underflows to 0
        for (int i = 0; i < cols; ++i) x[3 * (size_t)cols + i] = (i % 2 ? 1 : -1) * 1e-44f;
    Arr<float> X("x", x), S("scales", rows), red("red", LM_WARP, true);
    Arr<signed char> C("codes", (size_t)rows * cols);
    Arr<unsigned> ured("red", LM_WARP, true);
    launch("quantize_rows_s8", rows, LM_ROW_THREADS, [&](HostBlock& blk, int b) {
        ured.reset();
        lm_quantize_rows_body(blk, b, ro(X), rw(C), rw(S), cols, rw(ured));
    });
    int bad = 0;
    for (int r = 0; r < rows; ++r) {
        double amax = 0;
        for (int c = 0; c < cols; ++c) {
            const double a = std::fabs((double)x[(size_t)r * cols + c]);
            if (a > amax && !std::isinf(a)) amax = a;
        }
        const float s = (float)(amax / 127);
        if (!same_bits(S.v[r], s) && ++bad <= 3) CHECK(false, "quantize rows: scale %d is %g, want %g", r, S.v[r], s);
        for (int c = 0; c < cols; ++c) {
            const float v = x[(size_t)r * cols + c];
            double q = 0;
            if (s != 0 && v == v) {
                q = std::nearbyint((double)(float)((double)v / (double)s));
                q = std::max(-127.0, std::min(127.0, q));
            }
            if (C.v[(size_t)r * cols + c] != (signed char)q && ++bad <= 3)
                CHECK(false, "quantize rows: code (%d,%d) of %g is %d, want %d", r, c, v, C.v[(size_t)r * cols + c],
                      (int)q);
        }
    }
    CHECK(bad == 0, "quantize rows %dx%d: %d mismatches", rows, cols, bad);
    all_written("quantize rows codes", C.written);
    all_written("quantize rows scales", S.written);
}

// ---------------------------------------------------------------------------
// Attention.

static void test_attention(int tokens, int heads, int kv_heads, int dim, int start, int spare, float scale32,
                           int window, double qscale = 1) {
    const int capacity = start + tokens + spare, row = kv_heads * dim;
    auto q = values((size_t)tokens * heads * dim, qscale, false);
    auto k = values((size_t)capacity * row, 1, false), v = values((size_t)capacity * row, 1);
    // Masked positions hold values that would dominate if read; past the
    // last token, NaN.
    for (int j = start + 1; j < start + tokens; ++j)
        for (int i = 0; i < row; ++i) k[(size_t)j * row + i] = 50 * (q[i % q.size()] < 0 ? -1.0f : 1.0f);
    for (size_t i = (size_t)(start + tokens) * row; i < k.size(); ++i) k[i] = v[i] = NAN;
    const float scale = scale32 != 0 ? scale32 : (float)(1 / std::sqrt((double)dim));
    Arr<float> Q("q", q), K("k", k), V("v", v), O("out", q.size());
    Arr<float> smem("smem", LM_ATTN_SMEM(dim) / 4, true), red("red", LM_WARP, true);
    // Each block may read only its token's window of its KV head.
    auto allowed = [&](long long i) {
        const int th = g_block, t = th / heads, h = th % heads;
        const long long j = i / row, kh = (i % row) / dim;
        long long lo, n;
        lm_attn_range(t, start, window, &lo, &n);
        return j >= lo && j < n && kh == h / (heads / kv_heads);
    };
    K.forbid = V.forbid = [&](long long i) { return !allowed(i); };
    launch("attend_f32", (long long)tokens * heads, LM_ATTN_THREADS, [&](HostBlock& blk, int b) {
        smem.reset();
        red.reset();
        lm_attend_body(blk, b, ro(Q), ro(K), ro(V), rw(O), heads, kv_heads, dim, start, scale, window, rw(smem),
                       rw(red));
    });
    std::vector<double> want(q.size()), bound(q.size());
    for (int t = 0; t < tokens; ++t)
        for (int h = 0; h < heads; ++h) {
            const int kh = h * kv_heads / heads;
            const long long n = start + t + 1, lo = window > 0 && n > window ? n - window : 0;
            const float* qs = &q[((size_t)t * heads + h) * dim];
            std::vector<double> s(n);
            double maxA = 0, m = -INFINITY;
            for (long long j = lo; j < n; ++j) {
                double dot = 0, abs = 0;
                for (int i = 0; i < dim; ++i) {
                    const double p = (double)qs[i] * k[(size_t)j * row + kh * dim + i];
                    dot += p, abs += std::fabs(p);
                }
                s[j] = scale * dot;
                maxA = std::max(maxA, scale * abs);
                m = std::max(m, s[j]);
            }
            double sum = 0, maxD = 0;
            for (long long j = lo; j < n; ++j) sum += std::exp(s[j] - m), maxD = std::max(maxD, m - s[j]);
            for (int i = 0; i < dim; ++i) {
                double o = 0, mag = 0, vmax = 0;
                for (long long j = lo; j < n; ++j) {
                    const double p = std::exp(s[j] - m) / sum, vv = v[(size_t)j * row + kh * dim + i];
                    o += p * vv, mag += p * std::fabs(vv), vmax = std::max(vmax, std::fabs(vv));
                }
                const size_t idx = ((size_t)t * heads + h) * dim + i;
                want[idx] = o;
                bound[idx] = Unit * (2 * (dim + 2) * maxA + 2 * maxD + 2 * (double)(n - lo) + 16) * mag +
                             FlushBound * vmax;
            }
        }
    char what[128];
    std::snprintf(what, sizeof what, "attention tokens=%d heads=%d/%d dim=%d start=%d window=%d", tokens, heads,
                  kv_heads, dim, start, window);
    within(what, O.v, want, bound);
    all_written(what, O.written);
}

// ---------------------------------------------------------------------------

int main() {
    // RMSNorm: columns below, at and past a warp and the block, odd sizes.
    const int rms_cols[] = {1, 7, 31, 32, 33, 64, 255, 256, 257, 1000, 4099};
    for (int cols : rms_cols) {
        test_rmsnorm(3, cols, 1, 1e-5f, false);
        test_rmsnorm(2, cols, 100, 1e-6f, true);
    }
    test_rmsnorm(2, 1000, 1e15, 1e-5f, false);
    test_rmsnorm(3, 33, 1e-25, 1e-6f, false);

    test_sincos();
    // RoPE: pairs below, at and past one chunk; odd head counts.
    const int rope[][2] = {{1, 2}, {3, 6}, {2, 64}, {5, 130}, {1, 128}, {3, 200}, {7, 258}};
    for (auto& c : rope)
        for (int il = 0; il < 2; ++il) {
            test_rope(c[0], c[1], il, false);
            test_rope(c[0], c[1], il, true);
        }

    for (long long n : {1LL, 7LL, 1000LL, 4099LL})
        for (int alias = 0; alias < 3; ++alias) test_swiglu(n, n > 1000 ? 3 : 1, alias);

    const long long adds[][2] = {{1, 1}, {7, 7}, {12, 3}, {4099, 4099}, {64 * 33, 33}, {1000, 1}};
    for (auto& c : adds)
        for (int alias = 0; alias < 3; ++alias)
            if (alias != 2 || c[0] == c[1]) test_add(c[0], c[1], 2, alias);

    const int sm[][2] = {{1, 1}, {3, 5}, {4, 129}, {2, 1000}, {6, 6}, {5, 300}, {3, 257}};
    for (auto& c : sm)
        for (int causal = 0; causal < 2; ++causal) {
            test_softmax(c[0], c[1], 10, causal, false);
            test_softmax(c[0], c[1], 10, causal, true);
        }
    test_softmax(2, 1000, 1e30, false, false);

    test_embed(1, 1, 3);
    test_embed(5, 7, 13);
    test_embed(512, 64, 9);
    test_embed(300, 300, 5);

    const int qr[][2] = {{1, 1}, {3, 7}, {5, 64}, {33, 130}, {4, 257}, {2, 4099}};
    for (auto& c : qr) test_quantize_rows(c[0], c[1]);

    // Attention: every GQA ratio of 1 to 8, odd and large dimensions, Start
    // > 0, more keys than a chunk (LM_ATTN_CHUNK), sliding windows.
    test_attention(1, 1, 1, 1, 0, 0, 0, 0);
    test_attention(3, 4, 4, 8, 0, 2, 0, 0);
    test_attention(4, 6, 3, 6, 5, 1, 0, 0);
    test_attention(5, 8, 2, 10, 2, 3, 0, 0);
    test_attention(2, 8, 1, 64, 37, 4, 0, 0);
    test_attention(7, 16, 4, 17, 0, 0, 0, 0);
    test_attention(3, 4, 2, 16, 20, 5, 0, 0, 30);
    test_attention(2, 4, 1, 12, 11, 0, 0.5f, 0);
    test_attention(2, 6, 2, 33, 300, 3, 0, 0);  // three chunks, odd dimension
    test_attention(3, 3, 1, 160, 127, 1, 0, 0); // dim past the block; n crosses a chunk edge
    test_attention(2, 2, 1, 4, 100000 - 2, 2, 0, 0, 1) /* far positions: many chunks */;
    test_attention(4, 4, 2, 8, 10, 0, 0, 5);     // window shorter than the range
    test_attention(2, 2, 2, 8, 200, 0, 0, 150);  // window across chunks
    test_attention(2, 2, 1, 8, 3, 0, 0, 1000);   // window longer than the range

    if (failures) {
        std::printf("lm_sim: %d of %lld checks FAILED\n", failures, checks);
        return 1;
    }
    std::printf("lm_sim: all %lld checks passed (rmsnorm, rope, swiglu, add, softmax, embed, quantize_rows, attend)\n",
                checks);
    return 0;
}
