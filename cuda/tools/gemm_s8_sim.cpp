// gemm_s8_sim.cpp — checks the index math of ../gemm_s8.cu on a CPU, with
// the kernel's own helpers from ../gemm_s8.cuh.
//
//   g++ -std=c++17 -O2 -ffp-contract=off -Wall -Wextra -o /tmp/gemm_s8_sim cuda/tools/gemm_s8_sim.cpp && /tmp/gemm_s8_sim
//
// 1. Static properties: the shared-memory swizzle is a bijection, every
//    ldmatrix 8-address phase is bank-conflict-free, the block
//    rasterization is a bijection of the grid.
// 2. A functional emulation of whole launches, mirroring gemm_s8_body step
//    by step for all 256 threads of each block: cp.async copies (with
//    src-size zero fill and out-of-bounds checks on the global reads), the
//    commit/wait_group accounting, __syncthreads phases with race detection
//    on every shared-memory byte (a copy may land any time between its issue
//    and the wait that covers it; reads must come after the barrier that
//    follows that wait, and no copy may be issued into bytes read in the same
//    phase), ldmatrix and mma.m16n8k32 per the PTX ISA fragment definitions
//    (written here independently of the header's derivation), and the
//    epilogue with its predicated and vectorized stores; the int8 output's
//    quad transpose (shfl.xor emulated lane by lane) and 8-byte stores,
//    checked against the packed layout, for alignment, and for whole
//    32-byte sectors per warp store where rows allow. Results are compared
//    with a naive GEMM and a reference epilogue written from Go's semantics.
//
// What it cannot check: anything the hardware does differently from the
// PTX ISA text, and divergence between this mirror and gemm_s8.cu — keep
// the two in step when editing either.
#include "../gemm_s8.cuh"

#include <cfenv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <vector>

static int failures = 0;
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            if (++failures <= 20) {                                        \
                std::printf("FAIL %s:%d: ", __FILE__, __LINE__);           \
                std::printf(__VA_ARGS__);                                  \
                std::printf("\n");                                         \
            }                                                              \
        }                                                                  \
    } while (0)

constexpr int BM = GEMM_S8_BM, BN = GEMM_S8_BN, BK = GEMM_S8_BK, STAGES = GEMM_S8_STAGES;
constexpr int THREADS = GEMM_S8_THREADS, MI = GEMM_S8_MI, NI = GEMM_S8_NI;

// ---------------------------------------------------------------------------
// 1. Static checks.

static void check_swizzle() {
    for (int row = 0; row < BM; ++row) {
        bool seen[4] = {};
        for (int c = 0; c < 4; ++c) {
            uint32_t o = gemm_s8_swizzle(row, c);
            CHECK(o % 16 == 0, "swizzle not 16-aligned");
            CHECK(o / BK == (uint32_t)row, "swizzle leaves its row");
            int pc = (o % BK) / 16;
            CHECK(!seen[pc], "swizzle row %d not a bijection", row);
            seen[pc] = true;
        }
    }
}

// Bank group (16 bytes = 4 banks) of a shared-memory byte offset.
static int bank_group(uint32_t off) { return (off / 16) % 8; }

static void check_ldmatrix_conflicts() {
    int phases = 0;
    for (int wm = 0; wm < GEMM_S8_WARPS_M; ++wm)
        for (int wn = 0; wn < GEMM_S8_WARPS_N; ++wn)
            for (int ks = 0; ks < BK / 32; ++ks) {
                for (int mi = 0; mi < MI; ++mi)
                    for (int q = 0; q < 4; ++q) {
                        bool used[8] = {};
                        for (int l = 8 * q; l < 8 * q + 8; ++l) {
                            uint32_t o = gemm_s8_ldsm_a(l, wm, mi, ks);
                            CHECK(o % 16 == 0, "A ldmatrix address not 16-aligned");
                            CHECK(!used[bank_group(o)], "A ldmatrix bank conflict wm=%d mi=%d ks=%d q=%d", wm, mi, ks, q);
                            used[bank_group(o)] = true;
                        }
                        ++phases;
                    }
                for (int p = 0; p < NI / 2; ++p)
                    for (int q = 0; q < 4; ++q) {
                        bool used[8] = {};
                        for (int l = 8 * q; l < 8 * q + 8; ++l) {
                            uint32_t o = gemm_s8_ldsm_b(l, wn, p, ks);
                            CHECK(o % 16 == 0, "B ldmatrix address not 16-aligned");
                            CHECK(!used[bank_group(o)], "B ldmatrix bank conflict wn=%d p=%d ks=%d q=%d", wn, p, ks, q);
                            used[bank_group(o)] = true;
                        }
                        ++phases;
                    }
            }
    // cp.async stores: a warp writes 32 × 16 bytes = 4 wavefronts at best;
    // count the wavefronts the swizzle gives (the largest number of chunks a
    // warp puts in one bank group).
    int worst = 0;
    for (int w = 0; w < THREADS / 32; ++w)
        for (int r = 0; r < 2; ++r) {
            int cnt[8] = {};
            for (int l = 0; l < 32; ++l) {
                int tid = 32 * w + l;
                uint32_t o = gemm_s8_swizzle(gemm_s8_load_row(tid), gemm_s8_load_chunk(tid)) + r * GEMM_S8_LOAD_ROWS * BK;
                ++cnt[bank_group(o)];
            }
            for (int g = 0; g < 8; ++g) worst = cnt[g] > worst ? cnt[g] : worst;
        }
    CHECK(worst == 4, "cp.async stores take %d wavefronts per warp, want 4", worst);
    std::printf("ldmatrix: %d 8-row phases checked conflict-free; cp.async stores: %d wavefronts per warp\n", phases,
                worst);
}

static void check_block_map() {
    int grids = 0;
    for (int gy = 1; gy <= 40; ++gy)
        for (int gx = 1; gx <= 40; ++gx) {
            std::vector<char> seen(gx * gy, 0);
            for (int by = 0; by < gy; ++by)
                for (int bx = 0; bx < gx; ++bx) {
                    int bm = -1, bn = -1;
                    gemm_s8_block_map(bx, by, gx, gy, &bm, &bn);
                    CHECK(bm >= 0 && bm < gy && bn >= 0 && bn < gx, "block map out of grid");
                    if (bm >= 0 && bm < gy && bn >= 0 && bn < gx) {
                        CHECK(!seen[bm * gx + bn], "block map not injective gx=%d gy=%d", gx, gy);
                        seen[bm * gx + bn] = 1;
                    }
                }
            ++grids;
        }
    // Wide and tall grids (a full check), and the fallback for huge ones.
    const int shapes[][2] = {{100000, 3}, {3, 65535}, {70000, 9}, {65535, 65535}};
    for (const auto& sh : shapes) {
        const int gx = sh[0], gy = sh[1];
        const bool full = (long long)gx * gy <= 4000000;
        std::vector<char> seen(full ? (size_t)gx * gy : 0, 0);
        for (int by = 0; by < gy; ++by)
            for (int bx = 0; bx < gx; ++bx) {
                if (!full && !(bx == gx - 1 && by == gy - 1)) continue;
                int bm = -1, bn = -1;
                gemm_s8_block_map(bx, by, gx, gy, &bm, &bn);
                bool in = bm >= 0 && bm < gy && bn >= 0 && bn < gx;
                CHECK(in, "block map out of grid gx=%d gy=%d", gx, gy);
                if (in && full) {
                    CHECK(!seen[(size_t)bm * gx + bn], "block map not injective gx=%d gy=%d", gx, gy);
                    seen[(size_t)bm * gx + bn] = 1;
                }
            }
        ++grids;
    }
    (void)grids;
}

// ---------------------------------------------------------------------------
// 2. Functional emulation.

struct Byte {
    int read_phase = -1;      // last phase in which some thread read it
    int issue_phase = -1;     // phase of the latest copy into it
    int complete_phase = -1;  // phase of the wait that completed it; -1 while pending
    bool pending = false;
};

struct Copy {
    uint32_t dst;
    const int8_t* src; // null: zero fill
};

struct Launch {
    int M, N, K;
    const int8_t* A;
    const int8_t* B;
    size_t a_len, b_len;
    // epilogue
    int out; // 0 s32, 1 f32, 2 s8
    const int32_t* col_offset;
    const float* row_scale;
    int row_scale_len;
    const float* col_scale;
    int col_scale_len;
    const float* bias;
    int relu;
    float out_scale;
    int out_zero_point;
    uintptr_t c_addr; // pretend device address of C (alignment only)
    // outputs
    std::vector<int32_t>* c32;
    std::vector<float>* cf;
    std::vector<int8_t>* c8;
    std::vector<int>* writes;
};

static bool in_buf(const int8_t* p, size_t n, const int8_t* base, size_t len) {
    return p >= base && p + n <= base + len;
}

// Sectors and bytes of the int8 stores of every warp store instruction in
// the 8-byte path, for the coalescing check in run_case.
static long long s8_store_sectors = 0, s8_store_bytes = 0, s8_full_instrs = 0, s8_instrs = 0;

// gemm_s8.cu's store_s8 for one warp: the quad transpose with shfl.xor
// emulated lane by lane (every lane sends from its values before the
// exchange, as the shuffles of one round do), then the stores, 8-byte or
// byte by byte.
static void store_s8(const Launch& L, int row0, int col0, int wm, int wn, const uint32_t (&o8w)[32][MI][2][NI / 2]) {
    const int M = L.M, N = L.N;
    uint32_t x[32][MI][2][2];
    for (int mi = 0; mi < MI; ++mi) {
        for (int lane = 0; lane < 32; ++lane) gemm_s8_xpose_init(x[lane][mi], o8w[lane][mi], lane & 3);
        for (int r = 1; r < 4; ++r) {
            uint32_t sent[32];
            for (int lane = 0; lane < 32; ++lane) sent[lane] = gemm_s8_xpose_send(o8w[lane][mi], lane & 3, r);
            for (int lane = 0; lane < 32; ++lane) gemm_s8_xpose_recv(x[lane][mi], sent[lane ^ r], lane & 3, r);
        }
    }
    // After the transpose lane (g, t) must hold bytes 8t..8t+7 of its row:
    // those lane (g, s) held as pair ni = t, for s = 0..3 (independent of
    // the header's helpers: straight from gemm_s8_unpack's layout).
    for (int lane = 0; lane < 32; ++lane)
        for (int mi = 0; mi < MI; ++mi)
            for (int hr = 0; hr < 2; ++hr)
                for (int b = 0; b < 8; ++b) {
                    const int t = lane & 3, s = b >> 1, h = b & 1;
                    const int8_t want = gemm_s8_unpack(o8w[(lane & ~3) | s][mi][hr][gemm_s8_pack_word(t)], t, h);
                    const int8_t got = (int8_t)(uint8_t)(x[lane][mi][hr][b >> 2] >> (8 * (b & 3)));
                    CHECK(got == want, "quad transpose: lane %d mi %d hr %d byte %d", lane, mi, hr, b);
                }
    const bool vec8 = (N & 7) == 0 && (L.c_addr & 7) == 0;
    for (int mi = 0; mi < MI; ++mi)
        for (int hr = 0; hr < 2; ++hr) {
            std::set<uintptr_t> sectors; // of this store instruction
            int bytes = 0, active = 0;
            for (int lane = 0; lane < 32; ++lane) {
                const int j = col0 + gemm_s8_store8_col(lane, wn);
                CHECK(gemm_s8_store8_col(lane, wn) == gemm_s8_acc_col(lane & ~3, wn, lane & 3, 0),
                      "lane %d stores columns other than the quad's pair tile %d", lane, lane & 3);
                const int i = row0 + gemm_s8_acc_row(lane, wm, mi, 2 * hr);
                if (j >= N || i >= M) continue;
                const size_t e = (size_t)i * N + j;
                if (vec8) {
                    CHECK(j + 8 <= N, "8-byte store past N");
                    CHECK((L.c_addr + e) % 8 == 0, "misaligned 8-byte store");
                }
                for (int b = 0; b < 8; ++b) {
                    if (!vec8 && j + b >= N) continue;
                    (*L.writes)[e + b]++;
                    (*L.c8)[e + b] = (int8_t)(uint8_t)(x[lane][mi][hr][b >> 2] >> (8 * (b & 3)));
                }
                if (vec8) {
                    ++active;
                    bytes += 8;
                    sectors.insert((L.c_addr + e) / 32);
                    sectors.insert((L.c_addr + e + 7) / 32);
                }
            }
            // Rows of N % 32 == 0 bytes from a 32-byte aligned C: each quad's
            // 32 bytes are one whole sector.
            if (vec8 && N % 32 == 0 && L.c_addr % 32 == 0)
                CHECK((int)sectors.size() * 32 == bytes, "int8 store of %d bytes touches %d sectors", bytes,
                      (int)sectors.size());
            if (vec8 && active > 0) {
                ++s8_instrs;
                s8_store_sectors += (long long)sectors.size();
                s8_store_bytes += bytes;
                if (active == 32) ++s8_full_instrs;
            }
        }
}

static void emulate_block(const Launch& L, int bx, int by, int gx, int gy) {
    static std::vector<uint8_t> smem(GEMM_S8_SMEM);
    static std::vector<Byte> st(GEMM_S8_SMEM);
    // Fill with garbage so that a read of a never-written byte shows up.
    for (auto& b : smem) b = 0xA5;
    for (auto& s : st) s = Byte();
    int phase = 0;

    int bm, bn;
    gemm_s8_block_map(bx, by, gx, gy, &bm, &bn);
    const int row0 = bm * BM, col0 = bn * BN;
    const int M = L.M, N = L.N, K = L.K;
    const int ktiles = (K + BK - 1) / BK;

    // Per-thread cp.async groups: committed groups (oldest first) and the open one.
    std::vector<std::vector<std::vector<Copy>>> groups(THREADS);
    std::vector<std::vector<Copy>> open(THREADS);

    auto issue = [&](int tid, uint32_t dst, const int8_t* src, int bytes, const int8_t* base, size_t len) {
        CHECK(dst % 16 == 0 && dst + 16 <= GEMM_S8_SMEM, "cp.async dst %u", dst);
        CHECK(bytes == 0 || bytes == 16, "src-size %d", bytes);
        if (bytes == 16) {
            CHECK(in_buf(src, 16, base, len), "cp.async reads out of bounds");
            CHECK(((src - base) % 16) == 0, "cp.async src not 16-aligned relative to base");
        }
        for (int b = 0; b < 16; ++b) {
            Byte& s = st[dst + b];
            CHECK(s.read_phase < phase, "WAR race: copy into byte %u read in this phase", dst + b);
            CHECK(!s.pending, "WAW: two copies pending into byte %u", dst + b);
            s.pending = true;
            s.issue_phase = phase;
            s.complete_phase = -1;
        }
        open[tid].push_back(Copy{dst, bytes == 16 && in_buf(src, 16, base, len) ? src : nullptr});
    };
    auto commit = [&](int tid) {
        groups[tid].push_back(open[tid]);
        open[tid].clear();
    };
    auto wait = [&](int tid, int n) { // cp.async.wait_group n
        auto& g = groups[tid];
        while ((int)g.size() > n) {
            for (const Copy& c : g.front()) {
                for (int b = 0; b < 16; ++b) {
                    smem[c.dst + b] = c.src ? (uint8_t)c.src[b] : 0;
                    st[c.dst + b].pending = false;
                    st[c.dst + b].complete_phase = phase;
                }
            }
            g.erase(g.begin());
        }
    };
    auto read16 = [&](uint32_t off, uint8_t* out) {
        CHECK(off % 16 == 0 && off + 16 <= GEMM_S8_SMEM, "ldmatrix address %u", off);
        for (int b = 0; b < 16; ++b) {
            Byte& s = st[off + b];
            CHECK(!s.pending, "RAW race: byte %u read while a copy into it is pending", off + b);
            CHECK(s.complete_phase >= 0 && s.complete_phase < phase, "byte %u read before its copy was fenced", off + b);
            s.read_phase = phase;
            out[b] = smem[off + b];
        }
    };
    // ldmatrix.x4: lane l supplies the row address of matrix l/8; register q
    // of lane l gets bytes 4(l%4)..+3 of row l/4 of matrix q.
    auto ldmatrix_x4 = [&](const uint32_t addr[32], uint32_t regs[32][4]) {
        uint8_t rows[32][16];
        for (int l = 0; l < 32; ++l) read16(addr[l], rows[l]);
        for (int l = 0; l < 32; ++l)
            for (int q = 0; q < 4; ++q) {
                const uint8_t* r = rows[8 * q + l / 4];
                int o = 4 * (l % 4);
                regs[l][q] = (uint32_t)r[o] | (uint32_t)r[o + 1] << 8 | (uint32_t)r[o + 2] << 16 | (uint32_t)r[o + 3] << 24;
            }
    };
    // mma.m16n8k32.row.col.s32.s8.s8.s32 per the PTX ISA fragment tables.
    auto mma = [&](int32_t d[32][4], uint32_t a[32][4], uint32_t b[32][2]) {
        int8_t Am[16][32], Bm[32][8];
        for (int l = 0; l < 32; ++l) {
            int g = l >> 2, t = l & 3;
            for (int i = 0; i < 16; ++i) { // a_i, i = element index 0..15
                int row = (i < 4 || (i >= 8 && i < 12)) ? g : g + 8;
                int col = t * 4 + (i & 3) + (i >= 8 ? 16 : 0);
                Am[row][col] = (int8_t)(a[l][i / 4] >> (8 * (i % 4)));
            }
            for (int i = 0; i < 8; ++i) { // b_i
                int row = t * 4 + (i & 3) + (i >= 4 ? 16 : 0);
                Bm[row][g] = (int8_t)(b[l][i / 4] >> (8 * (i % 4)));
            }
        }
        for (int l = 0; l < 32; ++l) {
            int g = l >> 2, t = l & 3;
            for (int i = 0; i < 4; ++i) { // c_i
                int row = i < 2 ? g : g + 8;
                int col = t * 2 + (i & 1);
                int32_t s = 0;
                for (int k = 0; k < 32; ++k) s += (int32_t)Am[row][k] * (int32_t)Bm[k][col];
                d[l][i] = (int32_t)((uint32_t)d[l][i] + (uint32_t)s);
            }
        }
    };

    // ---- per-thread setup (mirrors gemm_s8_body)
    struct T {
        int lr, lc;
        uint32_t st_off;
        const int8_t* a_src[2];
        const int8_t* b_src[2];
        bool a_ok[2], b_ok[2];
    };
    std::vector<T> th(THREADS);
    for (int tid = 0; tid < THREADS; ++tid) {
        T& t = th[tid];
        t.lr = gemm_s8_load_row(tid);
        t.lc = gemm_s8_load_chunk(tid);
        t.st_off = gemm_s8_swizzle(t.lr, t.lc);
        for (int r = 0; r < 2; ++r) {
            const int ar = row0 + t.lr + r * GEMM_S8_LOAD_ROWS;
            const int br = col0 + t.lr + r * GEMM_S8_LOAD_ROWS;
            t.a_ok[r] = ar < M;
            t.b_ok[r] = br < N;
            t.a_src[r] = L.A + (t.a_ok[r] ? (long long)ar * K + t.lc * 16 : 0);
            t.b_src[r] = L.B + (t.b_ok[r] ? (long long)br * K + t.lc * 16 : 0);
        }
        // The kernel relies on rows lr and lr + 64 sharing the swizzle.
        CHECK(gemm_s8_swizzle(t.lr + GEMM_S8_LOAD_ROWS, t.lc) == t.st_off + GEMM_S8_LOAD_ROWS * BK, "swizzle +64");
    }
    auto load_tile = [&](int tid, int kt, int s) {
        const T& t = th[tid];
        const int k = kt * BK;
        const bool k_ok = k + t.lc * 16 < K;
        const uint32_t sa = s * GEMM_S8_STAGE_BYTES + t.st_off;
        const uint32_t sb = sa + GEMM_S8_B_OFFSET;
        for (int r = 0; r < 2; ++r) {
            const bool av = t.a_ok[r] && k_ok;
            const bool bv = t.b_ok[r] && k_ok;
            issue(tid, sa + r * GEMM_S8_LOAD_ROWS * BK, av ? t.a_src[r] + k : L.A, av ? 16 : 0, L.A, L.a_len);
            issue(tid, sb + r * GEMM_S8_LOAD_ROWS * BK, bv ? t.b_src[r] + k : L.B, bv ? 16 : 0, L.B, L.b_len);
        }
    };

    // acc[warp][mi][ni][lane][c]
    static int32_t acc[THREADS / 32][MI][NI][32][4];
    std::memset(acc, 0, sizeof acc);

    // ---- prologue
    for (int s = 0; s < STAGES - 1; ++s)
        for (int tid = 0; tid < THREADS; ++tid) {
            if (s < ktiles) load_tile(tid, s, s);
            commit(tid);
        }
    int rd = 0, wr = STAGES - 1;
    for (int kt = 0; kt < ktiles; ++kt) {
        for (int tid = 0; tid < THREADS; ++tid) wait(tid, STAGES - 2);
        ++phase; // __syncthreads
        for (int tid = 0; tid < THREADS; ++tid) {
            if (kt + STAGES - 1 < ktiles) load_tile(tid, kt + STAGES - 1, wr);
            commit(tid);
        }
        const uint32_t so = rd * GEMM_S8_STAGE_BYTES;
        for (int w = 0; w < THREADS / 32; ++w) {
            const int wm = w / GEMM_S8_WARPS_N, wn = w % GEMM_S8_WARPS_N;
            for (int ks = 0; ks < BK / 32; ++ks) {
                uint32_t af[MI][32][4], bf[NI][32][2];
                for (int mi = 0; mi < MI; ++mi) {
                    uint32_t addr[32];
                    for (int l = 0; l < 32; ++l) {
                        addr[l] = gemm_s8_ldsm_a(l, wm, 0, ks) + so + mi * 16 * BK; // as the kernel computes it
                        CHECK(addr[l] == gemm_s8_ldsm_a(l, wm, mi, ks) + so, "A tile offset is not mi*16*BK");
                    }
                    ldmatrix_x4(addr, af[mi]);
                }
                for (int p = 0; p < NI / 2; ++p) {
                    uint32_t addr[32], t[32][4];
                    for (int l = 0; l < 32; ++l) {
                        addr[l] = GEMM_S8_B_OFFSET + gemm_s8_ldsm_b(l, wn, 0, ks) + so + p * 16 * BK;
                        CHECK(addr[l] == GEMM_S8_B_OFFSET + gemm_s8_ldsm_b(l, wn, p, ks) + so, "B pair offset");
                    }
                    ldmatrix_x4(addr, t);
                    for (int l = 0; l < 32; ++l) {
                        bf[2 * p][l][0] = t[l][0];
                        bf[2 * p][l][1] = t[l][1];
                        bf[2 * p + 1][l][0] = t[l][2];
                        bf[2 * p + 1][l][1] = t[l][3];
                    }
                }
                for (int mi = 0; mi < MI; ++mi)
                    for (int ni = 0; ni < NI; ++ni) mma(acc[w][mi][ni], af[mi], bf[ni]);
            }
        }
        rd = rd == STAGES - 1 ? 0 : rd + 1;
        wr = wr == STAGES - 1 ? 0 : wr + 1;
    }
    for (int tid = 0; tid < THREADS; ++tid) {
        wait(tid, 0);
        CHECK(open[tid].empty(), "uncommitted copies at exit");
    }

    // ---- epilogue (mirrors the kernel: factor loads, a pass computing every
    // value, int8 results packed 4 to a word, then the predicated stores)
    const size_t esize = L.out == 0 ? 4 : L.out == 1 ? 4 : 1;
    const bool vec = (N & 1) == 0 && (L.c_addr & (2 * esize - 1)) == 0;
    const bool has_cs = L.col_scale_len != 0, has_bias = L.bias != nullptr;
    const float relu_floor = gemm_s8_relu_floor(L.relu != 0);
    for (int w = 0; w < THREADS / 32; ++w) {
        const int wm = w / GEMM_S8_WARPS_N, wn = w % GEMM_S8_WARPS_N;
        uint32_t o8w[32][MI][2][NI / 2]; // the warp's packed int8 results, for the quad transpose
        for (int lane = 0; lane < 32; ++lane) {
            int jc[NI];
            int32_t off[NI][2];
            float cs[NI][2], bias[NI][2];
            for (int ni = 0; ni < NI; ++ni) {
                jc[ni] = col0 + gemm_s8_acc_col(lane, wn, ni, 0);
                CHECK(gemm_s8_acc_col(lane, wn, ni, 1) == jc[ni] - col0 + 1 &&
                          gemm_s8_acc_col(lane, wn, ni, 2) == jc[ni] - col0 &&
                          gemm_s8_acc_col(lane, wn, ni, 3) == jc[ni] - col0 + 1,
                      "accumulator columns are not pairs");
                for (int h = 0; h < 2; ++h) {
                    const int j = jc[ni] + h;
                    const bool in = j < N;
                    off[ni][h] = (L.col_offset && in) ? L.col_offset[j] : 0;
                    cs[ni][h] = (has_cs && in) ? L.col_scale[L.col_scale_len == 1 ? 0 : j] : GEMM_S8_NO_SCALE;
                    bias[ni][h] = (has_bias && in) ? L.bias[j] : GEMM_S8_NO_BIAS;
                }
            }
            float rs[MI][2];
            for (int mi = 0; mi < MI; ++mi)
                for (int hr = 0; hr < 2; ++hr) {
                    const int i = row0 + gemm_s8_acc_row(lane, wm, mi, 2 * hr);
                    CHECK(gemm_s8_acc_row(lane, wm, mi, 2 * hr + 1) == i - row0, "accumulator rows are not pairs");
                    rs[mi][hr] = GEMM_S8_NO_SCALE;
                    if (L.out != 0 && L.row_scale_len != 0 && i < M)
                        rs[mi][hr] = L.row_scale[L.row_scale_len == 1 ? 0 : i];
                }
            // Values: s32 and f32 held one per slot, s8 packed.
            int32_t o32[MI][2][2 * NI];
            float of[MI][2][2 * NI];
            uint32_t o8[MI][2][NI / 2];
            for (int mi = 0; mi < MI; ++mi)
                for (int hr = 0; hr < 2; ++hr) {
                    for (int x = 0; x < NI / 2; ++x) o8[mi][hr][x] = 0;
                    for (int ni = 0; ni < NI; ++ni)
                        for (int h = 0; h < 2; ++h) {
                            const int32_t a = gemm_s8_wrap_add(acc[w][mi][ni][lane][2 * hr + h], off[ni][h]);
                            if (L.out == 0) {
                                o32[mi][hr][2 * ni + h] = a;
                            } else {
                                const float y = gemm_s8_epi_f32(a, rs[mi][hr], cs[ni][h], bias[ni][h], relu_floor);
                                if (L.out == 1) {
                                    of[mi][hr][2 * ni + h] = y;
                                } else {
                                    uint32_t& word = o8[mi][hr][gemm_s8_pack_word(ni)];
                                    word = gemm_s8_pack(word, ni, h, gemm_s8_quantize(y, L.out_scale, L.out_zero_point));
                                }
                            }
                        }
                }
            if (L.out == 2) {
                std::memcpy(o8w[lane], o8, sizeof o8);
                continue; // stored by store_s8 below, once every lane has its values
            }
            for (int mi = 0; mi < MI; ++mi)
                for (int hr = 0; hr < 2; ++hr) {
                    const int i = row0 + gemm_s8_acc_row(lane, wm, mi, 2 * hr);
                    if (i >= M) continue;
                    for (int ni = 0; ni < NI; ++ni) {
                        const int j = jc[ni];
                        if (j >= N) continue;
                        const size_t e = (size_t)i * N + j;
                        // store_pair: vec -> one aligned pair store, else
                        // C[j] and, when j + 1 < N, C[j+1].
                        if (vec) {
                            CHECK(j + 1 < N, "vector store past N");
                            CHECK(((L.c_addr + e * esize) % (2 * esize)) == 0, "misaligned vector store");
                        }
                        const bool second = vec || j + 1 < N;
                        (*L.writes)[e]++;
                        if (second) (*L.writes)[e + 1]++;
                        if (L.out == 0) {
                            (*L.c32)[e] = o32[mi][hr][2 * ni];
                            if (second) (*L.c32)[e + 1] = o32[mi][hr][2 * ni + 1];
                        } else if (L.out == 1) {
                            (*L.cf)[e] = of[mi][hr][2 * ni];
                            if (second) (*L.cf)[e + 1] = of[mi][hr][2 * ni + 1];
                        }
                    }
                }
        }
        if (L.out == 2) store_s8(L, row0, col0, wm, wn, o8w);
    }
}

// Reference epilogue, from Go's semantics (backend.Epilogue, cpu.GemmS8,
// quant.QuantizeValue), independent of the header's functions.
static float ref_f32(int32_t a, int i, int j, const Launch& L) {
    volatile float y = (float)a;
    if (L.row_scale_len) y = y * L.row_scale[L.row_scale_len == 1 ? 0 : i];
    if (L.col_scale_len) y = y * L.col_scale[L.col_scale_len == 1 ? 0 : j];
    if (L.bias) y = y + L.bias[j];
    if (L.relu) { // Go: max(y, 0): NaN if y is NaN, +0 for ±0
        float v = y;
        if (std::isnan(v)) return v;
        return v > 0 ? v : 0.0f;
    }
    return y;
}
static int8_t ref_s8(float y, float scale, int32_t zp) {
    if (std::isnan(y)) return (int8_t)zp;
    volatile float d = y / scale;
    double q = std::nearbyint((double)d) + (double)zp; // RoundToEven (FE_TONEAREST)
    if (q <= -128) return -128;
    if (q >= 127) return 127;
    return (int8_t)(int32_t)q;
}

static bool same_f32(float a, float b) {
    uint32_t x, y;
    std::memcpy(&x, &a, 4);
    std::memcpy(&y, &b, 4);
    return x == y || (std::isnan(a) && std::isnan(b));
}

static void run_case(int M, int N, int K, int out, bool full_ep, uintptr_t c_addr, std::mt19937& rng, int scale_len_mode) {
    std::uniform_int_distribution<int> s8(-128, 127);
    std::vector<int8_t> A((size_t)M * K), B((size_t)N * K);
    for (auto& v : A) v = (int8_t)s8(rng);
    for (auto& v : B) v = (int8_t)s8(rng);
    // Place the matrices exactly in their own heap blocks so that the bounds
    // checks in issue() are tight.
    std::vector<int32_t> col_offset(N), ref_acc((size_t)M * N);
    std::vector<float> row_scale(M), col_scale(N), bias(N);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    // Magnitudes chosen so that most int8 outputs fall between the clamps.
    for (auto& v : col_offset) v = (int32_t)(rng() % 200001) - 100000;
    for (auto& v : row_scale) v = std::ldexp(u(rng), -13);
    for (auto& v : col_scale) v = u(rng);
    for (auto& v : bias) v = u(rng) * 4;
    if (N >= 4) col_offset[N - 1] = INT32_MAX; // wrap-around

    Launch L{};
    L.M = M, L.N = N, L.K = K;
    L.A = A.data(), L.B = B.data(), L.a_len = A.size(), L.b_len = B.size();
    L.out = out;
    L.c_addr = c_addr;
    if (full_ep) {
        L.col_offset = col_offset.data();
        if (scale_len_mode == 0) {
            L.row_scale = row_scale.data(), L.row_scale_len = M;
            L.col_scale = col_scale.data(), L.col_scale_len = N;
        } else {
            L.row_scale = row_scale.data(), L.row_scale_len = 1;
            L.col_scale = col_scale.data(), L.col_scale_len = 1;
        }
        L.bias = bias.data();
        L.relu = out != 0 && (M + N) % 2 == 0;
        L.out_scale = 0.25f;
        L.out_zero_point = 3;
    } else {
        L.out_scale = 1.0f;
    }
    std::vector<int32_t> c32;
    std::vector<float> cf;
    std::vector<int8_t> c8;
    std::vector<int> writes((size_t)M * N, 0);
    if (out == 0) c32.assign((size_t)M * N, 0x7eadbeef);
    if (out == 1) cf.assign((size_t)M * N, -12345.0f);
    if (out == 2) c8.assign((size_t)M * N, 99);
    L.c32 = &c32, L.cf = &cf, L.c8 = &c8, L.writes = &writes;

    const int gx = (N + BN - 1) / BN, gy = (M + BM - 1) / BM;
    for (int by = 0; by < gy; ++by)
        for (int bx = 0; bx < gx; ++bx) emulate_block(L, bx, by, gx, gy);

    int bad = 0;
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            int32_t s = 0;
            for (int k = 0; k < K; ++k) s += (int32_t)A[(size_t)i * K + k] * (int32_t)B[(size_t)j * K + k];
            int32_t a = (int32_t)((uint32_t)s + (uint32_t)(L.col_offset ? L.col_offset[j] : 0));
            size_t e = (size_t)i * N + j;
            if (writes[e] != 1) {
                if (bad++ < 5) std::printf("  C[%d,%d] written %d times\n", i, j, writes[e]);
                continue;
            }
            bool ok;
            if (out == 0) {
                ok = c32[e] == a;
            } else if (out == 1) {
                ok = same_f32(cf[e], ref_f32(a, i, j, L));
            } else {
                ok = c8[e] == ref_s8(ref_f32(a, i, j, L), L.out_scale, L.out_zero_point);
            }
            if (!ok && bad++ < 5) std::printf("  C[%d,%d] wrong (acc %d)\n", i, j, a);
        }
    int inner = 0; // int8 outputs strictly between the clamps: the test should see many
    if (out == 2)
        for (int8_t v : c8) inner += v > -128 && v < 127;
    CHECK(out != 2 || !full_ep || (M * N < 64) || inner * 4 > M * N,
          "M=%d N=%d K=%d: only %d of %d int8 outputs unsaturated", M, N, K, inner, M * N);
    CHECK(bad == 0, "M=%d N=%d K=%d out=%d ep=%d c_addr%%16=%d: %d bad outputs", M, N, K, out, (int)full_ep,
          (int)(c_addr % 16), bad);
    std::printf("  M=%-5d N=%-5d K=%-4d out=%s ep=%d align=%d: %s\n", M, N, K, out == 0 ? "s32" : out == 1 ? "f32" : "s8",
                (int)full_ep, (int)(c_addr % 16), bad ? "FAIL" : "ok");
}

// Epilogue edge cases against the Go-semantics reference.
static void check_epilogue_values() {
    const float nan = std::nanf(""), inf = INFINITY;
    const float one = GEMM_S8_NO_SCALE, nob = GEMM_S8_NO_BIAS;
    // max(y, 0)
    CHECK(std::signbit(gemm_s8_epi_f32(0, -1.0f, one, nob, gemm_s8_relu_floor(true))) == false, "relu(-0) must be +0");
    CHECK(std::isnan(gemm_s8_epi_f32(1, nan, one, nob, gemm_s8_relu_floor(true))), "relu(NaN) must be NaN");
    CHECK(gemm_s8_epi_f32(-5, one, one, nob, gemm_s8_relu_floor(true)) == 0.0f, "relu(-5)");
    // -0 survives without bias and without relu: 0 · (-1) = -0
    CHECK(std::signbit(gemm_s8_epi_f32(0, -1.0f, one, nob, gemm_s8_relu_floor(false))), "-0 kept without bias");
    CHECK(std::signbit(gemm_s8_epi_f32(0, one, -1.0f, nob, gemm_s8_relu_floor(false))), "-0 kept without bias (col scale)");
    CHECK(!std::signbit(gemm_s8_epi_f32(0, -1.0f, one, 0.0f, gemm_s8_relu_floor(false))), "-0 + 0 = +0 with a bias");
    // identities are exact on every value the CPU would keep
    const float vals[] = {0.0f, -0.0f, 1.0f, -3.5f, 0x1p-149f, -0x1p-149f, 0x1p-126f, 3.4e38f, inf, -inf};
    for (float v : vals) {
        CHECK(same_f32(gemm_s8_fmul(v, one), v), "x·1 != x for %a", v);
        CHECK(same_f32(gemm_s8_fadd(v, nob), v), "x + (-0) != x for %a", v);
    }
    // no FMA: (a·rs)·cs + bias rounded at each step
    {
        float rs = 1.0f + 0x1p-23f, cs = 1.0f - 0x1p-23f, b = -1.0f;
        volatile float p1 = (float)1 * rs;
        volatile float p2 = p1 * cs;
        volatile float want = p2 + b;
        CHECK(same_f32(gemm_s8_epi_f32(1, rs, cs, b, gemm_s8_relu_floor(false)), want), "rounding order");
    }
    // the full reference on random epilogues, absent parts included
    {
        std::mt19937 r2(11);
        std::uniform_real_distribution<float> uf(-2.0f, 2.0f);
        for (int n = 0; n < 100000; ++n) {
            int32_t a = (int32_t)r2() >> (r2() % 32);
            float rsv = uf(r2), csv = uf(r2), bv = uf(r2);
            Launch L{};
            L.row_scale = &rsv, L.row_scale_len = n & 1;
            L.col_scale = &csv, L.col_scale_len = (n >> 1) & 1;
            L.bias = (n >> 2) & 1 ? &bv : nullptr;
            L.relu = (n >> 3) & 1;
            if (n % 50 == 0) a = 0; // signed zeros
            float got = gemm_s8_epi_f32(a, L.row_scale_len ? rsv : one, L.col_scale_len ? csv : one,
                                        L.bias ? bv : nob, gemm_s8_relu_floor(L.relu != 0));
            CHECK(same_f32(got, ref_f32(a, 0, 0, L)), "epilogue(%d) = %a, want %a", a, got, ref_f32(a, 0, 0, L));
        }
    }
    // quantize: ties to even, NaN -> zp, clamps, huge zero points
    struct QC {
        float y, s;
        int32_t zp;
    } qs[] = {{0.5f, 1, 0},   {1.5f, 1, 0},  {2.5f, 1, 0},    {-0.5f, 1, 0},       {-2.5f, 1, 0},  {127.5f, 1, 0},
              {-128.5f, 1, 0}, {126.5f, 1, 0}, {1e30f, 1e-30f, 0}, {inf, 1, 0},       {-inf, 1, 0},   {nan, 1, 7},
              {3.0f, 0.1f, 5}, {-3.0f, 0.1f, -5}, {100, 1, 2000000000}, {-100, 1, -2000000000},
              {5e9f, 1, -2147483647 - 1}, {0.25f, 0.5f, -128}, {0.75f, 0.5f, 127}, {-0.0f, 1, 0}};
    for (const QC& q : qs) {
        int8_t got = gemm_s8_quantize(q.y, q.s, q.zp), want = ref_s8(q.y, q.s, q.zp);
        CHECK(got == want, "quantize(%g, %g, %d) = %d, want %d", q.y, q.s, q.zp, got, want);
    }
    // random sweep
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-300.0f, 300.0f);
    for (int n = 0; n < 200000; ++n) {
        float y = u(rng), s = std::ldexp(1.0f + (float)(rng() % 1000) / 1000.0f, (int)(rng() % 8) - 4);
        if (n % 3 == 0) y = std::round(y * 2) / 2 * s; // ties
        int32_t zp = (int32_t)(rng() % 256) - 128;
        int8_t got = gemm_s8_quantize(y, s, zp), want = ref_s8(y, s, zp);
        CHECK(got == want, "quantize(%a, %a, %d) = %d, want %d", y, s, zp, got, want);
    }
}

// pad_rows_s8 over several grids, alignments and shapes against a plain copy.
static void check_pad_rows() {
    std::mt19937 rng(3);
    const int shapes[][3] = {{1, 1, 16}, {3, 5, 16}, {7, 16, 16}, {5, 100, 112}, {33, 17, 20}, {2, 3, 7},
                             {9, 64, 64}, {4, 30, 32}, {6, 13, 13}, {3, 40, 24} /* truncates */};
    const long long strides[] = {1, 7, 32, 256, 1000, 4096};
    int runs = 0;
    for (const auto& sh : shapes)
        for (long long stride : strides)
            for (int soff = 0; soff < 4; ++soff)
                for (int doff = 0; doff < 4; doff += 3) {
                    const int rows = sh[0], K = sh[1], Kpad = sh[2];
                    // 16-aligned storage, then offsets to exercise the byte paths.
                    alignas(16) static int8_t sbuf[4096 + 16], dbuf[4096 + 16];
                    int8_t* src = sbuf + soff;
                    int8_t* dst = dbuf + doff;
                    for (int i = 0; i < rows * K; ++i) src[i] = (int8_t)(rng() & 0xff);
                    std::memset(dbuf, 0x5a, sizeof dbuf);
                    for (long long t = 0; t < stride; ++t) gemm_s8_pad_thread(src, dst, rows, K, Kpad, t, stride);
                    int bad = 0;
                    for (int r = 0; r < rows; ++r)
                        for (int c = 0; c < Kpad; ++c)
                            bad += dst[r * Kpad + c] != (c < K ? src[r * K + c] : 0);
                    for (int i = 0; i < doff; ++i) bad += dbuf[i] != 0x5a;
                    for (int i = doff + rows * Kpad; i < (int)sizeof dbuf; ++i) bad += dbuf[i] != 0x5a;
                    CHECK(bad == 0, "pad_rows rows=%d K=%d Kpad=%d stride=%lld soff=%d doff=%d: %d bad bytes", rows, K,
                          Kpad, stride, soff, doff, bad);
                    ++runs;
                }
    std::printf("pad_rows: %d runs\n", runs);
}

int main() {
    std::fesetround(FE_TONEAREST);
    check_swizzle();
    check_ldmatrix_conflicts();
    check_block_map();
    check_epilogue_values();
    check_pad_rows();
    std::printf("static checks: %s\n", failures ? "FAIL" : "ok");

    std::mt19937 rng(1);
    struct Case {
        int M, N, K;
    } cases[] = {
        {1, 1, 16},     {1, 1, 0},      {3, 5, 32},      {16, 8, 48},     {128, 128, 64},  {129, 130, 80},
        {127, 255, 16}, {200, 257, 208}, {64, 64, 64 * 7}, {130, 66, 1024}, {1, 300, 112},  {300, 1, 144},
        {1155, 100, 80}, {256, 384, 192}, {33, 1200, 48},
    };
    for (const Case& c : cases)
        for (int out = 0; out < 3; ++out) {
            const bool ep = out != 0 || c.M % 2 == 1;
            run_case(c.M, c.N, c.K, out, ep, 0, rng, c.N % 2);
        }
    // int8 C 32-byte aligned, N % 32 == 0: whole sectors per warp store.
    run_case(256, 96, 64, 2, true, 0, rng, 0);
    run_case(130, 160, 32, 2, true, 32, rng, 1);
    // N % 8 == 0 but rows not sector aligned; N odd (byte stores).
    run_case(70, 40, 64, 2, true, 8, rng, 0);
    run_case(70, 37, 64, 2, true, 0, rng, 1);
    std::printf("int8 8-byte stores: %lld warp instructions (%lld with all 32 lanes), %lld bytes in %lld sectors (%.0f%% of each sector)\n",
                s8_instrs, s8_full_instrs, s8_store_bytes, s8_store_sectors,
                s8_store_sectors ? 100.0 * s8_store_bytes / (32.0 * s8_store_sectors) : 0.0);
    // Misaligned C (a Slice view): scalar stores only.
    run_case(70, 34, 64, 0, true, 4, rng, 0);
    run_case(70, 34, 64, 1, true, 4, rng, 1);
    run_case(70, 34, 64, 2, true, 1, rng, 0);
    run_case(70, 34, 64, 2, false, 0, rng, 0);
    std::printf("%s (%d failures)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
