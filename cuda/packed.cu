// packed.cu: C = A·Wᵀ with W packed in a block format (backend.GemmPacked):
// quant.RowFormat int8/uint8/int4/uint4, symmetric or with zero points, any
// group; gguf Q8_0 and Q4_0. A GEMV for decode steps (m ≤ PK_GEMV_MAX_M)
// and a tiled GEMM for more rows, one entry point each per code width. The
// kernel bodies are in packed.cuh, shared with the CPU emulation in
// tools/packed_sim.cpp; this file gives them the device's execution context
// and their entry points. Launch contract: packed.cuh and README.md.
//
// Parameters of every entry: w (n rows of the format's row bytes), a
// (m×k float), c (m×n float), m, n, k, group (values per block), kind
// (PK_HDR_*), sign (codes signed), zconst (the zero point when the header
// stores none), split (Q4_0's nibble order; group must be 32).
#include "packed.cuh"

// The device context of packed.cuh's bodies: each thread runs its own part.
struct PkDeviceBlock {
    template <class T>
    struct Reg {
        T v;
        __device__ __forceinline__ T& operator[](int) { return v; }
    };
    template <class T>
    __device__ __forceinline__ Reg<T> reg() const { return Reg<T>(); }
    template <class F>
    __device__ __forceinline__ void each(F f) const { f((int)threadIdx.x); }
    __device__ __forceinline__ void sync() const { __syncthreads(); }
    __device__ __forceinline__ void warp_sum(Reg<PkAcc>& r, int m) const {
#pragma unroll
        for (int i = 0; i < PK_GEMV_MAX_M; ++i) {
            if (i >= m) break;
#pragma unroll
            for (int o = PK_WARP / 2; o > 0; o >>= 1)
                r.v.v[i] = pk_add(r.v.v[i], __shfl_xor_sync(0xffffffffu, r.v.v[i], o));
        }
    }
    template <class T>
    __device__ __forceinline__ unsigned mod16(const T* p, long long off) const {
        return (unsigned)(reinterpret_cast<uintptr_t>(p + off) & 15u);
    }
    // Packed weights are streamed once: read-only, non-coherent loads.
    __device__ __forceinline__ unsigned ld8(const unsigned char* p, long long off) const { return __ldg(p + off); }
    __device__ __forceinline__ unsigned ld32(const unsigned char* p, long long off) const {
        return __ldg(reinterpret_cast<const unsigned*>(p + off));
    }
    __device__ __forceinline__ void ld64(const unsigned char* p, long long off, unsigned* q) const {
        const uint2 v = __ldg(reinterpret_cast<const uint2*>(p + off));
        q[0] = v.x;
        q[1] = v.y;
    }
    __device__ __forceinline__ void ld128(const unsigned char* p, long long off, unsigned* q) const {
        const uint4 v = __ldg(reinterpret_cast<const uint4*>(p + off));
        q[0] = v.x;
        q[1] = v.y;
        q[2] = v.z;
        q[3] = v.w;
    }
    __device__ __forceinline__ void ldf4(const float* p, long long off, float* x) const {
        const float4 v = __ldg(reinterpret_cast<const float4*>(p + off));
        x[0] = v.x;
        x[1] = v.y;
        x[2] = v.z;
        x[3] = v.w;
    }
    __device__ __forceinline__ void lds4(const float* p, int off, float* x) const {
        const float4 v = *reinterpret_cast<const float4*>(p + off);
        x[0] = v.x;
        x[1] = v.y;
        x[2] = v.z;
        x[3] = v.w;
    }
};

#define PK_GEMV_ENTRY(name, bits)                                                                                 \
    extern "C" __global__ void __launch_bounds__(PK_GEMV_THREADS)                                                 \
        name(const unsigned char* __restrict__ w, const float* __restrict__ a, float* __restrict__ c, int m, int n, \
             int k, int group, int kind, int sign, int zconst, int split) {                                       \
        PkDeviceBlock blk;                                                                                        \
        const PkFmt f = pk_fmt(k, group, bits, kind, sign, zconst, split);                                       \
        pk_gemv_body<bits>(blk, (int)blockIdx.x, w, a, c, f, m, n);                                               \
    }

#define PK_GEMM_ENTRY(name, bits)                                                                                 \
    extern "C" __global__ void __launch_bounds__(PK_GEMM_THREADS)                                                 \
        name(const unsigned char* __restrict__ w, const float* __restrict__ a, float* __restrict__ c, int m, int n, \
             int k, int group, int kind, int sign, int zconst, int split) {                                       \
        __shared__ __align__(16) float As[PK_GEMM_BK * PK_AS_PITCH];                                              \
        __shared__ __align__(16) float Ws[PK_GEMM_BK * PK_WS_PITCH];                                              \
        PkDeviceBlock blk;                                                                                        \
        const PkFmt f = pk_fmt(k, group, bits, kind, sign, zconst, split);                                       \
        pk_gemm_body<bits>(blk, (int)blockIdx.x, (int)blockIdx.y, w, a, c, f, m, n, (float*)As, (float*)Ws);      \
    }

PK_GEMV_ENTRY(packed_gemv_8, 8)
PK_GEMV_ENTRY(packed_gemv_4, 4)
PK_GEMM_ENTRY(packed_gemm_8, 8)
PK_GEMM_ENTRY(packed_gemm_4, 4)
