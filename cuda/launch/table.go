// Package launch is the one table of the CUDA kernels' launch constants
// (block sizes, tiles, vector widths, unroll factors, grid caps) and of the
// few ABI values both sides use. `make ptx` runs ./gen, which writes the
// table as #defines into cuda/launch.cuh, which the kernels include, and as
// Go constants into gpu/constants_gen.go, which the backend launches with;
// make ptx-check (and gpu's TestLaunchConstants, in the default build)
// fails when either file differs from what the table generates. Change a
// value here, run make ptx, commit both files and the PTX.
package launch

// Const is one row of the table.
type Const struct {
	C     string // the #define name, GEMM_S8_BM
	Go    string // the Go constant in package gpu, gemmS8BM
	Value int
	Doc   string // one line
	Expr  string // how it is derived from other rows, shown in both files; "" for a plain value
}

// Section is a group of rows with a comment for both files.
type Section struct {
	Doc    []string // comment lines
	Consts []Const
}

// The values, named so that derived rows are computed, not copied.
const (
	gemmS8BM        = 128
	gemmS8BN        = 128
	gemmS8BK        = 64
	gemmS8Stages    = 4
	gemmS8WarpsM    = 2
	gemmS8WarpsN    = 4
	gemmS8Threads   = 32 * gemmS8WarpsM * gemmS8WarpsN
	gemmS8WM        = gemmS8BM / gemmS8WarpsM
	gemmS8WN        = gemmS8BN / gemmS8WarpsN
	gemmS8Smem      = gemmS8Stages * (gemmS8BM + gemmS8BN) * gemmS8BK
	gemmF32BM       = 128
	gemmF32BN       = 128
	gemmF32BK       = 8
	gemmF32Pad      = 4
	absMaxThreads   = 256
	absMaxPerThread = 16
	histThreads     = 512
	histPerThread   = 64
	quantThreads    = 256
	quantVec        = 8
	quantUnroll     = 2
	pkGemvWarps     = 4
	lmAttnChunk     = 128
	lmAttnMaxDim    = 4096
)

// Table is every constant, in the order the files list them.
var Table = []Section{
	{Doc: []string{
		"gemm_s8_s32, gemm_s8_f32, gemm_s8_s8 (gemm_s8.cu): grid (ceil(N/GEMM_S8_BN),",
		"ceil(M/GEMM_S8_BM)), block GEMM_S8_THREADS, GEMM_S8_SMEM bytes of dynamic shared",
		"memory (over 48 KiB: the caller raises the function's limit first). Warps",
		"GEMM_S8_WARPS_M × GEMM_S8_WARPS_N over the tile, each GEMM_S8_WM × GEMM_S8_WN,",
		"that is GEMM_S8_MI × GEMM_S8_NI tiles of mma.m16n8k32. pad_rows_s8:",
		"grid-stride, PAD_ROWS_THREADS threads per block.",
	}, Consts: []Const{
		{"GEMM_S8_BM", "gemmS8BM", gemmS8BM, "block tile rows (of A and C)", ""},
		{"GEMM_S8_BN", "gemmS8BN", gemmS8BN, "block tile columns (rows of B, columns of C)", ""},
		{"GEMM_S8_BK", "gemmS8BK", gemmS8BK, "block tile depth, in int8 elements = bytes", ""},
		{"GEMM_S8_STAGES", "gemmS8Stages", gemmS8Stages, "cp.async pipeline depth", ""},
		{"GEMM_S8_WARPS_M", "gemmS8WarpsM", gemmS8WarpsM, "warp rows", ""},
		{"GEMM_S8_WARPS_N", "gemmS8WarpsN", gemmS8WarpsN, "warp columns", ""},
		{"GEMM_S8_THREADS", "gemmS8Threads", gemmS8Threads, "threads per block", "32 * GEMM_S8_WARPS_M * GEMM_S8_WARPS_N"},
		{"GEMM_S8_WM", "gemmS8WM", gemmS8WM, "warp tile rows", "GEMM_S8_BM / GEMM_S8_WARPS_M"},
		{"GEMM_S8_WN", "gemmS8WN", gemmS8WN, "warp tile columns", "GEMM_S8_BN / GEMM_S8_WARPS_N"},
		{"GEMM_S8_MI", "gemmS8MI", gemmS8WM / 16, "MMA tiles per warp tile, down", "GEMM_S8_WM / 16"},
		{"GEMM_S8_NI", "gemmS8NI", gemmS8WN / 8, "MMA tiles per warp tile, across", "GEMM_S8_WN / 8"},
		{"GEMM_S8_SMEM", "gemmS8Smem", gemmS8Smem, "dynamic shared memory, bytes", "GEMM_S8_STAGES * (GEMM_S8_BM + GEMM_S8_BN) * GEMM_S8_BK"},
		{"GEMM_S8_MIN_BLOCKS", "gemmS8MinBlocks", 2, "__launch_bounds__ blocks per SM: at most 128 registers a thread", ""},
		{"GEMM_S8_GROUP_M", "gemmS8GroupM", 8, "block rows per rasterization group (gemm_s8_block_map)", ""},
		{"GEMM_S8_K_ALIGN", "gemmS8KAlign", 16, "K granularity and byte alignment of A and B (16-byte cp.async)", ""},
		{"PAD_ROWS_THREADS", "padRowsThreads", 256, "pad_rows_s8 threads per block", ""},
	}},
	{Doc: []string{
		"gemm_f32 (gemm_f32.cu): grid (ceil(N/GEMM_F32_BN), ceil(M/GEMM_F32_BM)), block",
		"GEMM_F32_THREADS (16×16, each an 8×8 tile of C), GEMM_F32_SMEM bytes of static",
		"shared memory (two stages of As[BK][BM+PAD] and Bs[BK][BN+PAD]).",
	}, Consts: []Const{
		{"GEMM_F32_BM", "gemmF32BM", gemmF32BM, "rows of C per block", ""},
		{"GEMM_F32_BN", "gemmF32BN", gemmF32BN, "columns of C per block", ""},
		{"GEMM_F32_BK", "gemmF32BK", gemmF32BK, "K per shared-memory stage", ""},
		{"GEMM_F32_THREADS", "gemmF32Threads", 256, "threads per block", ""},
		{"GEMM_F32_PAD", "gemmF32Pad", gemmF32Pad, "floats of padding per shared-memory row", ""},
		{"GEMM_F32_SMEM", "gemmF32Smem", 2 * gemmF32BK * (gemmF32BM + gemmF32Pad + gemmF32BN + gemmF32Pad) * 4, "static shared memory, bytes",
			"2 * GEMM_F32_BK * (GEMM_F32_BM + GEMM_F32_PAD + GEMM_F32_BN + GEMM_F32_PAD) * 4"},
		{"GEMM_F32_MIN_BLOCKS", "gemmF32MinBlocks", 2, "__launch_bounds__ blocks per SM", ""},
	}},
	{Doc: []string{
		"reduce.cu, grid-stride (any grid is correct; these keep the memory busy):",
		"absmax_f32 grid clamp(ceil(n/ABSMAX_ELEMS_PER_BLOCK), 1, ABSMAX_BLOCKS_PER_SM·SMs),",
		"block ABSMAX_THREADS; hist_abs_f32 and hist_abs_f32_global grid",
		"clamp(ceil(n/HIST_ELEMS_PER_BLOCK), 1, HIST_BLOCKS_PER_SM·SMs), block HIST_THREADS.",
		"hist_abs_f32 keeps bins·4 bytes of dynamic shared memory, bins ≤ HIST_SMEM_MAX_BINS",
		"(48 KiB, no opt-in); hist_abs_f32_global privatizes its first",
		"HIST_GLOBAL_SMEM_BINS bins in static shared memory.",
	}, Consts: []Const{
		{"ABSMAX_THREADS", "absMaxThreads", absMaxThreads, "threads per block", ""},
		{"ABSMAX_BLOCKS_PER_SM", "absMaxBlocksPerSM", 4, "grid cap per SM and __launch_bounds__", ""},
		{"ABSMAX_ELEMS_PER_BLOCK", "absMaxElemsPerBlock", absMaxThreads * absMaxPerThread, "values per block before the cap", "ABSMAX_THREADS * 16"},
		{"HIST_THREADS", "histThreads", histThreads, "threads per block", ""},
		{"HIST_BLOCKS_PER_SM", "histBlocksPerSM", 2, "grid cap per SM and __launch_bounds__", ""},
		{"HIST_ELEMS_PER_BLOCK", "histElemsPerBlock", histThreads * histPerThread, "values per block before the cap", "HIST_THREADS * 64"},
		{"HIST_SMEM_MAX_BINS", "histSmemMaxBins", 12288, "most bins of hist_abs_f32", ""},
		{"HIST_GLOBAL_SMEM_BINS", "histGlobalSmemBins", 4096, "bins hist_abs_f32_global keeps in shared memory", ""},
	}},
	{Doc: []string{
		"quantize_f32, dequantize_f32 (quantize.cu): block QUANT_THREADS (at most), grid",
		"clamp(ceil(n/QUANT_ELEMS_PER_BLOCK), 1, QUANT_BLOCKS_PER_SM·SMs), grid-stride;",
		"each thread handles QUANT_UNROLL vectors of QUANT_VEC elements per pass.",
	}, Consts: []Const{
		{"QUANT_THREADS", "quantThreads", quantThreads, "threads per block", ""},
		{"QUANT_VEC", "quantVec", quantVec, "consecutive elements per vector (float4 loads where aligned)", ""},
		{"QUANT_UNROLL", "quantUnroll", quantUnroll, "vectors per thread per pass, loads issued together", ""},
		{"QUANT_BLOCKS_PER_SM", "quantBlocksPerSM", 3, "grid cap per SM and __launch_bounds__ (≤ 80 registers)", ""},
		{"QUANT_ELEMS_PER_BLOCK", "quantElemsPerBlock", quantThreads * quantVec * quantUnroll, "elements per block per pass", "QUANT_THREADS * QUANT_VEC * QUANT_UNROLL"},
	}},
	{Doc: []string{
		"lm.cu: rmsnorm_f32, softmax_f32, quantize_rows_s8 one block of LM_ROW_THREADS per",
		"row; rope_f32 grid (rows, ceil((dim/2)/LM_ROPE_CHUNK)) of LM_ROPE_THREADS;",
		"swiglu_f32, add_f32 grid-stride, LM_ELEM_THREADS on clamp(ceil(n/LM_ELEM_THREADS),",
		"1, LM_ELEM_BLOCKS_PER_SM·SMs) blocks; embed_f32 one block of LM_EMBED_THREADS per",
		"token; attend_f32 one block of LM_ATTN_THREADS per (token, head), (2·dim +",
		"LM_ATTN_CHUNK)·4 bytes of dynamic shared memory, dim ≤ LM_ATTN_MAX_DIM. rope_f32's",
		"angles stay below 2^LM_ROPE_MAX_ANGLE_LOG2.",
	}, Consts: []Const{
		{"LM_ROW_THREADS", "lmRowThreads", 256, "threads per row", ""},
		{"LM_ROPE_THREADS", "lmRopeThreads", 128, "rope_f32 threads per block", ""},
		{"LM_ROPE_CHUNK", "lmRopeChunk", 64, "rotation pairs per rope_f32 block", ""},
		{"LM_ELEM_THREADS", "lmElemThreads", 256, "swiglu_f32, add_f32 threads per block", ""},
		{"LM_ELEM_BLOCKS_PER_SM", "lmElemBlocksPerSM", 8, "their grid cap per SM", ""},
		{"LM_EMBED_THREADS", "lmEmbedThreads", 256, "embed_f32 threads per token", ""},
		{"LM_ATTN_THREADS", "lmAttnThreads", 128, "attend_f32 threads per (token, head)", ""},
		{"LM_ATTN_CHUNK", "lmAttnChunk", lmAttnChunk, "keys per online-softmax chunk", ""},
		{"LM_ATTN_MAX_DIM", "lmAttnMaxDim", lmAttnMaxDim, "largest head dimension", ""},
		{"LM_ATTN_MAX_SMEM", "lmAttnMaxSmem", (2*lmAttnMaxDim + lmAttnChunk) * 4, "attend_f32's dynamic shared memory at LM_ATTN_MAX_DIM, bytes",
			"(2 * LM_ATTN_MAX_DIM + LM_ATTN_CHUNK) * 4"},
		{"LM_ROPE_MAX_ANGLE_LOG2", "lmRopeMaxAngleLog2", 50, "rope_f32's angles are below 2^this", ""},
	}},
	{Doc: []string{
		"packed.cu: packed_gemv_8/_4 (m ≤ PK_GEMV_MAX_M) grid ceil(n/PK_GEMV_WARPS) of",
		"PK_GEMV_THREADS, a warp per output column; packed_gemm_8/_4 grid (ceil(n/PK_GEMM_BN),",
		"ceil(m/PK_GEMM_BM)) of PK_GEMM_THREADS, static shared memory only. PK_HDR_* are the",
		"kernels' kind parameter: a block's header.",
	}, Consts: []Const{
		{"PK_GEMV_WARPS", "pkGemvWarps", pkGemvWarps, "warps (output columns) per GEMV block", ""},
		{"PK_GEMV_THREADS", "pkGemvThreads", pkGemvWarps * 32, "GEMV threads per block", "PK_GEMV_WARPS * 32"},
		{"PK_GEMV_MAX_M", "pkGemvMaxM", 8, "most rows of A a GEMV takes", ""},
		{"PK_GEMM_BM", "pkGemmBM", 64, "GEMM block tile rows", ""},
		{"PK_GEMM_BN", "pkGemmBN", 64, "GEMM block tile columns", ""},
		{"PK_GEMM_BK", "pkGemmBK", 32, "GEMM K step", ""},
		{"PK_GEMM_THREADS", "pkGemmThreads", 256, "GEMM threads per block", ""},
		{"PK_HDR_F32", "pkHdrF32", 0, "float32 scale; zero point zconst", ""},
		{"PK_HDR_F32_ZP", "pkHdrF32ZP", 1, "float32 scale, int32 zero point", ""},
		{"PK_HDR_F16", "pkHdrF16", 2, "float16 scale; zero point zconst", ""},
	}},
}
