// lm.cu: the operations of a Llama forward pass beside its GEMMs
// (backend.LMOps): RMSNorm, RoPE, SwiGLU, softmax, embedding lookup,
// residual/bias add, per-row int8 quantization and causal grouped-query
// attention over a KV cache. The kernel bodies are in lm.cuh, shared with
// the CPU emulation in tools/lm_sim.cpp; this file gives them the device's
// execution context and their entry points. Launch contract: lm.cuh and
// README.md.
#include "lm.cuh"

// The device context of lm.cuh's bodies: each thread runs its own part.
struct LmDeviceBlock {
    template <class T>
    struct Reg {
        T v;
        __device__ __forceinline__ T& operator[](int) { return v; }
    };
    template <class T>
    __device__ __forceinline__ Reg<T> reg() const { return Reg<T>(); }
    __device__ __forceinline__ int threads() const { return blockDim.x; }
    template <class F>
    __device__ __forceinline__ void each(F f) const { f((int)threadIdx.x); }
    __device__ __forceinline__ void sync() const { __syncthreads(); }
    template <class T, class Op>
    __device__ __forceinline__ void warp_reduce(Reg<T>& r, Op op) const {
#pragma unroll
        for (int o = LM_WARP / 2; o > 0; o >>= 1) r.v = op(r.v, __shfl_xor_sync(0xffffffffu, r.v, o));
    }
    template <class T>
    __device__ __forceinline__ T uniform(Reg<T>& r) const { return r.v; }
};

extern "C" __global__ void __launch_bounds__(LM_ROW_THREADS)
rmsnorm_f32(const float* x, const float* __restrict__ weight, float* dst, int rows, int cols, float eps) {
    __shared__ float red[LM_WARP];
    LmDeviceBlock blk;
    lm_rmsnorm_body(blk, (int)blockIdx.x, x, weight, dst, cols, eps, red);
}

extern "C" __global__ void __launch_bounds__(LM_ROPE_THREADS)
rope_f32(const float* x, float* dst, const int* __restrict__ pos, const float* __restrict__ freqs, int rows,
         int heads, int dim, int interleaved, float mscale) {
    __shared__ float cs[2 * LM_ROPE_CHUNK];
    LmDeviceBlock blk;
    lm_rope_body(blk, (int)blockIdx.x, (int)blockIdx.y, x, dst, pos, freqs, heads, dim, interleaved, mscale, cs);
}

extern "C" __global__ void __launch_bounds__(LM_ELEM_THREADS)
swiglu_f32(const float* gate, const float* up, float* dst, long long n) {
    lm_swiglu_thread((long long)blockIdx.x * blockDim.x + threadIdx.x, (long long)gridDim.x * blockDim.x, n, gate,
                     up, dst);
}

extern "C" __global__ void __launch_bounds__(LM_ELEM_THREADS)
add_f32(const float* x, const float* y, float* dst, long long n, long long ny) {
    lm_add_thread((long long)blockIdx.x * blockDim.x + threadIdx.x, (long long)gridDim.x * blockDim.x, n, ny, x, y,
                  dst);
}

extern "C" __global__ void __launch_bounds__(LM_ROW_THREADS)
softmax_f32(const float* x, float* dst, const int* __restrict__ limit, int rows, int cols) {
    __shared__ float red[LM_WARP];
    LmDeviceBlock blk;
    lm_softmax_body(blk, (int)blockIdx.x, x, dst, limit, limit != nullptr, cols, red);
}

extern "C" __global__ void __launch_bounds__(LM_EMBED_THREADS)
embed_f32(const float* __restrict__ table, const int* __restrict__ ids, float* __restrict__ dst, int dim) {
    LmDeviceBlock blk;
    lm_embed_body(blk, (int)blockIdx.x, table, ids, dst, dim);
}

extern "C" __global__ void __launch_bounds__(LM_ROW_THREADS)
quantize_rows_s8(const float* __restrict__ x, signed char* __restrict__ codes, float* __restrict__ scales, int rows,
                 int cols) {
    __shared__ unsigned red[LM_WARP];
    LmDeviceBlock blk;
    lm_quantize_rows_body(blk, (int)blockIdx.x, x, codes, scales, cols, red);
}

extern "C" __global__ void __launch_bounds__(LM_ATTN_THREADS)
attend_f32(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
           float* __restrict__ out, int tokens, int heads, int kv_heads, int dim, int start, float scale, int window) {
    extern __shared__ float lm_attn_smem[];
    __shared__ float red[LM_WARP];
    LmDeviceBlock blk;
    lm_attend_body(blk, (int)blockIdx.x, q, k, v, out, heads, kv_heads, dim, start, scale, window, lm_attn_smem,
                   red);
}
