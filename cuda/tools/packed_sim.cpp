// packed_sim.cpp — runs the kernel bodies of ../packed.cuh (the very code
// packed.cu launches) on a CPU and checks them, without a GPU.
//
//   g++ -std=c++17 -O2 -ffp-contract=off -Wall -Wextra -o /tmp/packed_sim cuda/tools/packed_sim.cpp && /tmp/packed_sim
//
// Each launch is emulated block by block; within a block, each phase (the
// code between two barriers) runs thread by thread, and the GEMV's warp
// shuffles are emulated lane by lane in the butterfly's order. Buffers have
// simulated device addresses (the weights and A at every offset modulo 16,
// as views of a buffer may be), so the kernels' choice of 16-, 8-, 4- or
// 1-byte loads is exercised, and every access goes through a checked
// pointer, which fails the run on:
//   - an index outside the buffer, a write through a read-only operand;
//   - a vector load at an address not aligned to its width;
//   - two threads writing one output element; an output never written;
//   - a shared-memory race (an element written by one thread and read or
//     written by another in the same phase) or a read before any write.
// The results are compared with a float64 product over the weights decoded
// by an independent transcription of the Go decoders (quant.RowFormat,
// gguf Q8_0 and Q4_0), within backendtest.GemmF32Bound, on random shapes
// with edges: k not a multiple of the group, of 16 or 32 values or of 4
// (odd k at 4 bits: a partial last block of odd length), n not a multiple
// of the warps per block or the tile, m = 1..8 (GEMV) and 1..150 (GEMM),
// zero points at the ends of the code range and beyond, zero and subnormal
// scales.
//
// What it cannot check: timing, the hardware beyond the CUDA programming
// model (memory ordering across a barrier is assumed), and the device's
// fmaf is taken to be the host's (both IEEE fused multiply-add).
#include "../packed.cuh"
#include "sim.h"

#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

// Load statistics: which widths the kernels chose.
static long long n_ld128, n_ld64, n_ld32, n_ld8, n_ldf4, n_ldf1;

// The host context of packed.cuh's bodies.
struct HostBlock : HostBlockBase {
    void warp_sum(Reg<PkAcc>& r, int m) {
        CHECK(nt % PK_WARP == 0, "%s: block of %d threads is not whole warps", g_kernel.c_str(), nt);
        for (int w = 0; w < nt / PK_WARP; ++w)
            for (int i = 0; i < PK_GEMV_MAX_M && i < m; ++i)
                for (int o = PK_WARP / 2; o > 0; o >>= 1) {
                    float next[PK_WARP];
                    for (int l = 0; l < PK_WARP; ++l)
                        next[l] = pk_add(r[w * PK_WARP + l].v[i], r[w * PK_WARP + (l ^ o)].v[i]);
                    for (int l = 0; l < PK_WARP; ++l) r[w * PK_WARP + l].v[i] = next[l];
                }
    }
    template <class T>
    unsigned mod16(Ptr<T> p, long long off) const {
        return (unsigned)((p.a->addr + (unsigned long long)((p.off + off) * (long long)sizeof(T))) & 15u);
    }
    template <class T>
    void aligned(Ptr<T> p, long long off, unsigned width, const char* what) const {
        CHECK((mod16(p, off) & (width - 1)) == 0, "%s: block %d thread %d: %s of %s at byte address %llx",
              g_kernel.c_str(), g_block, g_thread, what, p.a->name.c_str(),
              p.a->addr + (unsigned long long)((p.off + off) * (long long)sizeof(T)));
    }
    unsigned ld8(Ptr<unsigned char> p, long long off) {
        ++n_ld8;
        const unsigned char b = p[off];
        return b;
    }
    unsigned word(Ptr<unsigned char> p, long long off) {
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
            const unsigned char b = p[off + i];
            v |= (unsigned)b << (8 * i);
        }
        return v;
    }
    unsigned ld32(Ptr<unsigned char> p, long long off) {
        ++n_ld32;
        aligned(p, off, 4, "a 4-byte load");
        return word(p, off);
    }
    void ld64(Ptr<unsigned char> p, long long off, unsigned* q) {
        ++n_ld64;
        aligned(p, off, 8, "an 8-byte load");
        for (int i = 0; i < 2; ++i) q[i] = word(p, off + 4 * i);
    }
    void ld128(Ptr<unsigned char> p, long long off, unsigned* q) {
        ++n_ld128;
        aligned(p, off, 16, "a 16-byte load");
        for (int i = 0; i < 4; ++i) q[i] = word(p, off + 4 * i);
    }
    void ldf4(Ptr<float> p, long long off, float* x) {
        ++n_ldf4;
        aligned(p, off, 16, "a float4 load");
        for (int i = 0; i < 4; ++i) x[i] = p[off + i];
    }
    void lds4(Ptr<float> p, int off, float* x) {
        aligned(p, off, 16, "a float4 shared load");
        for (int i = 0; i < 4; ++i) x[i] = p[off + i];
    }
};

// ---------------------------------------------------------------------------
// Formats, packing and the reference decoder.

struct Format {
    std::string name;
    int bits, kind, sign, zconst, split, group;
};

static std::mt19937_64 rng(17);
static int rnd(int lo, int hi) { return lo + (int)(rng() % (unsigned long long)(hi - lo + 1)); }

static void put32(std::vector<unsigned char>& d, size_t o, unsigned v) {
    for (int i = 0; i < 4; ++i) d[o + i] = (unsigned char)(v >> (8 * i));
}
static unsigned get32(const std::vector<unsigned char>& d, size_t o) {
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) v |= (unsigned)d[o + i] << (8 * i);
    return v;
}
static float bits2f(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
static unsigned f2bits(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
// IEEE half to float through double (independent of pk_h2f).
static float half2f(unsigned h) {
    const int e = (h >> 10) & 31, m = h & 1023;
    const double s = (h & 0x8000) ? -1 : 1;
    if (e == 31) return m ? std::nanf("") : (float)(s * INFINITY);
    if (e == 0) return (float)(s * std::ldexp((double)m, -24));
    return (float)(s * std::ldexp(1024.0 + m, e - 25));
}

// Row bytes, as quant.RowFormat.RowBytes / gguf Type.RowBytes.
static long long row_bytes(const Format& f, int k) {
    const int hdr = f.kind == PK_HDR_F32 ? 4 : f.kind == PK_HDR_F32_ZP ? 8 : 2;
    const int full = k / f.group, tail = k % f.group;
    return (long long)full * (hdr + (f.group * f.bits + 7) / 8) + (tail ? hdr + (tail * f.bits + 7) / 8 : 0);
}

static unsigned rand_scale_bits(const Format& f) {
    if (f.kind == PK_HDR_F16) {
        switch (rng() % 10) {
        case 0: return 0;
        case 1: return (unsigned)rnd(1, 1023); // subnormal
        case 2: return 0x8000u | (unsigned)rnd(0x2000, 0x3c00);
        default: return (unsigned)rnd(0x1000, 0x3c00);
        }
    }
    std::normal_distribution<double> nd(0, 0.05);
    switch (rng() % 12) {
    case 0: return 0;
    case 1: return f2bits(1e-40f); // subnormal
    default: return f2bits((float)nd(rng));
    }
}
static int rand_zp(const Format& f) {
    const int lo = f.sign ? -(1 << (f.bits - 1)) : 0, hi = f.sign ? (1 << (f.bits - 1)) - 1 : (1 << f.bits) - 1;
    switch (rng() % 8) {
    case 0: return lo;
    case 1: return hi;
    case 2: return rng() % 2 ? INT_MIN : INT_MAX; // wraps, as Go's int32
    case 3: return rnd(-100000, 100000);
    default: return rnd(lo, hi);
    }
}

// Random packed rows of n×k values; dec gets them decoded as the Go
// decoders do: float32(q − zp)·scale.
static std::vector<unsigned char> pack(const Format& f, int n, int k, std::vector<float>& dec) {
    const long long rb = row_bytes(f, k);
    std::vector<unsigned char> d((size_t)(n * rb));
    dec.assign((size_t)n * k, 0);
    const int hdr = f.kind == PK_HDR_F32 ? 4 : f.kind == PK_HDR_F32_ZP ? 8 : 2;
    for (int j = 0; j < n; ++j) {
        size_t o = (size_t)(j * rb);
        for (int p0 = 0; p0 < k; p0 += f.group) {
            const int len = std::min(f.group, k - p0);
            float sc;
            int zp = f.zconst;
            if (f.kind == PK_HDR_F16) {
                const unsigned h = rand_scale_bits(f);
                d[o] = (unsigned char)h;
                d[o + 1] = (unsigned char)(h >> 8);
                sc = half2f(h);
            } else {
                put32(d, o, rand_scale_bits(f));
                sc = bits2f(get32(d, o));
                if (f.kind == PK_HDR_F32_ZP) {
                    zp = rand_zp(f);
                    put32(d, o + 4, (unsigned)zp);
                }
            }
            const size_t c = o + hdr;
            const int nbytes = (len * f.bits + 7) / 8;
            for (int i = 0; i < nbytes; ++i) d[c + i] = (unsigned char)rng();
            if (f.bits == 4 && len % 2) d[c + nbytes - 1] &= 0x0f; // PackRows clears the unused nibble
            for (int i = 0; i < len; ++i) {
                int q;
                if (f.bits == 8) {
                    q = f.sign ? (int)(signed char)d[c + i] : d[c + i];
                } else {
                    const int bi = f.split ? i % (len / 2) : i / 2, hi = f.split ? i >= len / 2 : i % 2;
                    const int nib = (d[c + bi] >> (4 * hi)) & 15;
                    q = f.sign && nib >= 8 ? nib - 16 : nib;
                }
                const int diff = (int)((unsigned)q - (unsigned)zp);
                dec[(size_t)j * k + p0 + i] = (float)diff * sc;
            }
            o = c + nbytes;
        }
    }
    return d;
}

static std::vector<float> activations(size_t n) {
    std::normal_distribution<double> nd(0, 1);
    std::vector<float> x(n);
    for (auto& v : x) v = (float)nd(rng);
    for (size_t i = 5; i < n; i += 11) x[i] = rng() % 2 ? 0.0f : (float)(nd(rng) * 1e4);
    return x;
}

// ---------------------------------------------------------------------------
// One product through the GEMV or the GEMM, checked.

static long long n_gemv, n_gemm;

static void run(const Format& f, int m, int n, int k, bool gemv) {
    std::vector<float> dec;
    auto wbytes = pack(f, n, k, dec);
    auto a = activations((size_t)m * k);
    Arr<unsigned char> W("w", wbytes, 0x100000 + (unsigned long long)rnd(0, 15));
    Arr<float> A("a", a, 0x800000 + 4 * (unsigned long long)rnd(0, 3)), C("c", (size_t)m * n);
    const PkFmt pf = pk_fmt(k, f.group, f.bits, f.kind, f.sign, f.zconst, f.split);
    CHECK(pf.rb == row_bytes(f, k), "%s k=%d: pk_fmt gives %lld row bytes, want %lld", f.name.c_str(), k, pf.rb,
          row_bytes(f, k));
    char what[160];
    std::snprintf(what, sizeof what, "%s %s m=%d n=%d k=%d (w at +%llu, a at +%llu)",
                  gemv ? "packed_gemv" : "packed_gemm", f.name.c_str(), m, n, k, W.addr & 15, A.addr & 15);
    g_kernel = what;
    if (gemv) {
        ++n_gemv;
        const int blocks = (n + PK_GEMV_WARPS - 1) / PK_GEMV_WARPS;
        for (int b = 0; b < blocks; ++b) {
            g_block = b;
            g_phase = 0;
            HostBlock blk{{PK_GEMV_THREADS}};
            if (f.bits == 8)
                pk_gemv_body<8>(blk, b, ro(W), ro(A), rw(C), pf, m, n);
            else
                pk_gemv_body<4>(blk, b, ro(W), ro(A), rw(C), pf, m, n);
        }
    } else {
        ++n_gemm;
        const int bx = (n + PK_GEMM_BN - 1) / PK_GEMM_BN, by = (m + PK_GEMM_BM - 1) / PK_GEMM_BM;
        Arr<float> As("As", PK_GEMM_BK * PK_AS_PITCH, true), Ws("Ws", PK_GEMM_BK * PK_WS_PITCH, true);
        As.addr = 0x40; // __align__(16)
        Ws.addr = 0x40 + 16 * PK_GEMM_BK * PK_AS_PITCH;
        for (int y = 0; y < by; ++y)
            for (int x = 0; x < bx; ++x) {
                g_block = y * bx + x;
                g_phase = 0;
                As.reset();
                Ws.reset();
                HostBlock blk{{PK_GEMM_THREADS}};
                if (f.bits == 8)
                    pk_gemm_body<8>(blk, x, y, ro(W), ro(A), rw(C), pf, m, n, rw(As), rw(Ws));
                else
                    pk_gemm_body<4>(blk, x, y, ro(W), ro(A), rw(C), pf, m, n, rw(As), rw(Ws));
            }
    }
    g_block = -1;
    int bad = 0;
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
            double ref = 0, abs = 0;
            for (int p = 0; p < k; ++p) {
                const double x = (double)a[(size_t)i * k + p] * dec[(size_t)j * k + p];
                ref += x;
                abs += std::fabs(x);
            }
            const double bound = (k + 1) * 0x1p-24 * abs + (k + 1) * 0x1p-149;
            const size_t o = (size_t)i * n + j;
            const float got = C.v[o];
            if (!C.written[o]) {
                if (++bad <= 3) CHECK(false, "%s: C[%d,%d] never written", what, i, j);
            } else if (!(std::fabs((double)got - ref) <= bound) && ++bad <= 3) {
                CHECK(false, "%s: C[%d,%d] = %.9g, want %.9g within %.3g", what, i, j, got, ref, bound);
            }
            ++checks;
        }
    CHECK(bad == 0, "%s: %d outputs wrong", what, bad);
}

// ---------------------------------------------------------------------------

static Format row_format(int bits, bool sign, bool sym, int group) {
    Format f{"", bits, sym ? PK_HDR_F32 : PK_HDR_F32_ZP, sign, 0, 0, group};
    char s[64];
    std::snprintf(s, sizeof s, "%sint%d g%d%s", sign ? "" : "u", bits, group, sym ? "" : " asymmetric");
    f.name = s;
    return f;
}

int main() {
    const Format q8_0{"Q8_0", 8, PK_HDR_F16, 1, 0, 0, 32}, q4_0{"Q4_0", 4, PK_HDR_F16, 0, 8, 1, 32};
    // Fixed edge cases, then random ones.
    const int ks[] = {1, 2, 3, 7, 16, 17, 31, 32, 33, 63, 64, 100, 129, 255, 256, 257, 1000};
    for (int bits : {8, 4})
        for (bool sign : {true, false})
            for (bool sym : {true, false})
                for (int group : {2, 4, 6, 16, 30, 32, 34, 64, 128, 1000}) {
                    if (bits == 8 && group == 2) continue;
                    const Format f = row_format(bits, sign, sym, group);
                    for (int k : ks) {
                        if (rng() % 3) continue; // a third of them: the run stays short
                        const int m = rnd(1, PK_GEMV_MAX_M), n = rnd(1, 9);
                        run(f, m, n, k, true);
                        if (rng() % 2) run(f, rnd(1, 70), rnd(1, 70), k, false);
                    }
                }
    for (int it = 0; it < 60; ++it) {
        const int bits = rng() % 2 ? 8 : 4;
        int group = rnd(1, 300);
        if (bits == 4) group += group % 2;
        Format f = row_format(bits, rng() % 2, rng() % 2, group);
        if (it % 5 == 0) f.group = rnd(300, 3000); // per channel
        const int k = rnd(1, 1200);
        if (it % 5 == 0 && f.group < k) f.group = k + (bits == 4 ? k % 2 : 0);
        run(f, rnd(1, PK_GEMV_MAX_M), rnd(1, 40), k, true);
        if (it % 3 == 0) run(f, rnd(1, 150), rnd(1, 140), std::min(k, 400), false);
    }
    for (const Format& f : {q8_0, q4_0})
        for (int k : {32, 64, 96, 256, 544}) {
            for (int m = 1; m <= PK_GEMV_MAX_M; m += 3) run(f, m, rnd(1, 13), k, true);
            run(f, rnd(9, 90), rnd(1, 100), k, false);
        }
    std::printf("loads: %lld×16 B, %lld×8 B, %lld×4 B, %lld×1 B of packed weights; %lld float4 loads of A\n",
                n_ld128, n_ld64, n_ld32, n_ld8, n_ldf4);
    (void)n_ldf1;
    CHECK(n_ld128 > 0 && n_ld64 > 0 && n_ld32 > 0 && n_ld8 > 0 && n_ldf4 > 0, "a load width was never exercised");
    if (failures) {
        std::printf("packed_sim: %d failures in %lld checks\n", failures, checks);
        return 1;
    }
    std::printf("packed_sim: ok, %lld GEMV and %lld GEMM launches, %lld checks\n", n_gemv, n_gemm, checks);
    return 0;
}
