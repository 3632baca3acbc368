// sim.h — the checked emulation of CUDA blocks that lm_sim.cpp and
// packed_sim.cpp run their kernels' bodies on (lm.cuh and packed.cuh are
// written against a block object, so the same code runs on the device and
// here).
//
// A launch runs block by block; within a block each phase (the code between
// two barriers, HostBlockBase::sync) runs thread by thread. Every global and
// shared access goes through a checked pointer (Ptr into an Arr), which
// fails the run (CHECK) on:
//   - an index outside the buffer; a write through a read-only operand;
//   - two threads writing one global element, or a thread reading a global
//     element another thread wrote in the same launch;
//   - a shared-memory race: an element written by one thread and read or
//     written by another in the same phase; a read of shared memory never
//     written;
//   - a read the operation must not make (Arr::forbid);
//   - a register read before it is written (registers start poisoned).
// Arrs carry a simulated device address (Arr::addr) so vector loads can be
// checked for alignment.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

static int failures = 0;
static long long checks = 0;
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        ++checks;                                                          \
        if (!(cond)) {                                                     \
            if (++failures <= 30) {                                        \
                std::printf("FAIL %s:%d: ", __FILE__, __LINE__);           \
                std::printf(__VA_ARGS__);                                  \
                std::printf("\n");                                         \
            }                                                              \
        }                                                                  \
    } while (0)

// Emulation state: the kernel, block and thread running, the block's phase.
static int g_block = -1, g_thread = -1, g_phase = 0;
static std::string g_kernel;

// gid is the running thread's id across blocks (blocks of ≤ 1024 threads).
static long long gid() { return (long long)g_block * 1024 + g_thread; }

// A buffer, global or shared, at a simulated device address, with
// per-element access records.
template <class T>
struct Arr {
    std::string name;
    bool shared = false;
    unsigned long long addr = 0x10000; // of element 0
    std::vector<T> v;
    std::vector<long long> writer;
    std::vector<int> wphase, reader, rphase;
    std::vector<char> rmulti, written;
    // forbid(i), when set, is true when the running thread must not read
    // element i.
    std::function<bool(long long)> forbid;

    Arr(std::string n, size_t size, bool sh = false) : name(std::move(n)), shared(sh), v(size) { reset(); }
    Arr(std::string n, const std::vector<T>& data, unsigned long long a = 0x10000)
        : name(std::move(n)), addr(a), v(data) {
        reset();
    }
    // reset forgets the access records (between launches).
    void reset() {
        const size_t n = v.size();
        writer.assign(n, -1);
        wphase.assign(n, -1);
        reader.assign(n, -1);
        rphase.assign(n, -1);
        rmulti.assign(n, 0);
        written.assign(n, 0);
    }
    bool in(long long i) const { return i >= 0 && i < (long long)v.size(); }

    T read(long long i) {
        const char* k = g_kernel.c_str();
        if (!in(i)) {
            CHECK(false, "%s: block %d thread %d reads %s[%lld] of %zu", k, g_block, g_thread, name.c_str(), i,
                  v.size());
            return T();
        }
        CHECK(g_thread >= 0, "%s: %s read outside a thread", k, name.c_str());
        if (forbid && forbid(i))
            CHECK(false, "%s: block %d thread %d reads %s[%lld], which it must not", k, g_block, g_thread,
                  name.c_str(), i);
        if (shared) {
            CHECK(written[i], "%s: block %d thread %d reads %s[%lld] before any write", k, g_block, g_thread,
                  name.c_str(), i);
            CHECK(!(wphase[i] == g_phase && writer[i] != g_thread),
                  "%s: race on %s[%lld]: thread %d reads what thread %lld wrote in phase %d", k, name.c_str(), i,
                  g_thread, writer[i], g_phase);
            if (rphase[i] == g_phase && reader[i] != g_thread) rmulti[i] = 1;
            if (rphase[i] != g_phase) rmulti[i] = 0;
            reader[i] = g_thread;
            rphase[i] = g_phase;
        } else {
            CHECK(writer[i] == -1 || writer[i] == gid(),
                  "%s: block %d thread %d reads %s[%lld], which block %lld thread %lld wrote", k, g_block, g_thread,
                  name.c_str(), i, writer[i] / 1024, writer[i] % 1024);
        }
        return v[i];
    }
    void write(long long i, T x) {
        const char* k = g_kernel.c_str();
        if (!in(i)) {
            CHECK(false, "%s: block %d thread %d writes %s[%lld] of %zu", k, g_block, g_thread, name.c_str(), i,
                  v.size());
            return;
        }
        CHECK(g_thread >= 0, "%s: %s written outside a thread", k, name.c_str());
        if (shared) {
            CHECK(!(wphase[i] == g_phase && writer[i] != g_thread),
                  "%s: race on %s[%lld]: threads %lld and %d write in phase %d", k, name.c_str(), i, writer[i],
                  g_thread, g_phase);
            CHECK(!(rphase[i] == g_phase && (reader[i] != g_thread || rmulti[i])),
                  "%s: race on %s[%lld]: thread %d writes what thread %d read in phase %d", k, name.c_str(), i,
                  g_thread, reader[i], g_phase);
            writer[i] = g_thread;
            wphase[i] = g_phase;
        } else {
            CHECK(writer[i] == -1 || writer[i] == gid(),
                  "%s: %s[%lld] written by block %lld thread %lld and block %d thread %d", k, name.c_str(), i,
                  writer[i] / 1024, writer[i] % 1024, g_block, g_thread);
            writer[i] = gid();
        }
        written[i] = 1;
        v[i] = x;
    }
};

// A checked pointer into an Arr (null when a is).
template <class T>
struct Ptr {
    Arr<T>* a = nullptr;
    long long off = 0;
    bool ro = false;

    struct Ref {
        Arr<T>* a;
        long long i;
        bool ro;
        operator T() const { return a->read(i); }
        Ref& operator=(T x) {
            CHECK(!ro, "%s: block %d thread %d writes read-only %s", g_kernel.c_str(), g_block, g_thread,
                  a->name.c_str());
            a->write(i, x);
            return *this;
        }
        Ref& operator=(const Ref& o) { return *this = (T)o; }
    };
    Ref operator[](long long i) const { return Ref{a, off + i, ro}; }
    Ptr operator+(long long d) const { return Ptr{a, off + d, ro}; }
};
template <class T>
Ptr<T> rw(Arr<T>& a) { return Ptr<T>{&a, 0, false}; }
template <class T>
Ptr<T> ro(Arr<T>& a) { return Ptr<T>{&a, 0, true}; }

// poison is what a register holds before its first write: NaN for floats,
// a recognisable pattern otherwise, so a missed initialization shows.
template <class T>
T poison() {
    if constexpr (std::is_same_v<T, float>) {
        return std::nanf("0x5a5a");
    } else if constexpr (std::is_same_v<T, unsigned>) {
        return 0xdeadbeefu;
    } else if constexpr (std::is_same_v<T, int>) {
        return -0x21524111;
    } else {
        T p;
        std::memset(static_cast<void*>(&p), 0x7f, sizeof p);
        return p;
    }
}

// HostBlockBase is the block object a kernel body runs on: registers (one
// value a thread), each (run a phase thread by thread) and sync (a
// barrier). The simulators derive their HostBlock from it and add the
// collectives and loads their kernels use.
struct HostBlockBase {
    int nt;
    template <class T>
    struct Reg {
        std::vector<T> v;
        T& operator[](int t) { return v[t]; }
    };
    template <class T>
    Reg<T> reg() const { return Reg<T>{std::vector<T>(nt, poison<T>())}; }
    int threads() const { return nt; }
    template <class F>
    void each(F f) {
        for (int t = 0; t < nt; ++t) {
            g_thread = t;
            f(t);
        }
        g_thread = -1;
    }
    void sync() { ++g_phase; }
};

// launch runs body(blk, block) for blocks [0, blocks) of threads threads
// each, with fresh phases per block; B is the simulator's HostBlock.
template <class B, class F>
void launch_blocks(const std::string& name, long long blocks, int threads, F body) {
    g_kernel = name;
    for (long long b = 0; b < blocks; ++b) {
        g_block = (int)b;
        g_phase = 0;
        B blk{{threads}};
        body(blk, (int)b);
    }
    g_block = -1;
}
