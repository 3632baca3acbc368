// Package cublas runs NVIDIA's cuBLAS and cuBLASLt GEMMs as baselines for
// quantkit's own kernels. The libraries are loaded when first asked for
// (dlopen of libcublas.so.13, .12, .11 or the unversioned name, and the
// same for libcublasLt), so a binary built with the cuda tag still starts
// where they are missing and says which names it tried.
//
// The layout and the tables here are plain Go, built and tested
// everywhere; the calls into the libraries (lib.go) need the cuda tag.
//
// quantkit's GEMMs are C[m×n] = A[m×k]·B[n×k]ᵀ, every matrix row-major,
// both operands K-contiguous. cuBLAS is column-major: a row-major m×n
// matrix is the column-major n×m matrix of its transpose, so the same
// memory holds Cᵀ = B·Aᵀ, which cuBLAS computes as op(B')·op(A') with B'
// the column-major k×n matrix in B's memory (transposed: OpT) and A' the
// column-major k×m matrix in A's (not transposed: OpN). That is the "TN"
// form, the one cuBLASLt's INT8 tensor-core (IMMA) kernels accept in the
// regular (non-COL32) data order.
package cublas

import (
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/quantkit/quantkit/internal/half"
)

// Op is cublasOperation_t.
type Op int32

// The cublasOperation_t values.
const (
	OpN Op = 0 // CUBLAS_OP_N
	OpT Op = 1 // CUBLAS_OP_T
)

// Call is a column-major GEMM D[M×N] = op(X)·op(Y) as cuBLAS takes it: X
// is the first operand (lda), Y the second (ldb).
type Call struct {
	TransX, TransY Op
	M, N, K        int
	// XIsB says that the first operand is quantkit's B and the second its
	// A (always so: see RowMajorABt).
	XIsB          bool
	LdX, LdY, LdD int
}

// RowMajorABt is the column-major call that computes quantkit's row-major
// C[m×n] = A[m×k]·B[n×k]ᵀ in C's memory: Cᵀ[n×m] = Bᵀ'·A' with B first,
// transposed, and A second, not transposed; every leading dimension is the
// row length of the row-major matrix (k, k, n).
func RowMajorABt(m, n, k int) Call {
	return Call{TransX: OpT, TransY: OpN, M: n, N: m, K: k, XIsB: true, LdX: k, LdY: k, LdD: n}
}

// Check reports whether the call's sizes fit cuBLAS's 32-bit int
// parameters (and a leading dimension of at least 1, as cuBLAS wants
// even for an empty operand).
func (c Call) Check() error {
	for _, v := range []int{c.M, c.N, c.K, c.LdX, c.LdY, c.LdD} {
		if v < 0 || v > math.MaxInt32 {
			return fmt.Errorf("cublas: m=%d n=%d k=%d: a size exceeds cuBLAS's 32-bit int", c.N, c.M, c.K)
		}
	}
	if c.LdX < 1 || c.LdY < 1 || c.LdD < 1 {
		return fmt.Errorf("cublas: m=%d n=%d k=%d: cuBLAS needs every dimension at least 1", c.N, c.M, c.K)
	}
	return nil
}

// CheckIMMA reports whether cuBLASLt's INT8 tensor-core kernels take the
// call in the regular data order: TN, the column-major M (quantkit's n)
// and K multiples of 4, every leading dimension a multiple of 4 (cuBLAS
// documentation, cublasLtMatmul, "To use IMMA kernels"). Pointers must be
// 4-byte aligned too; device allocations are 256-byte aligned.
func (c Call) CheckIMMA() error {
	if err := c.Check(); err != nil {
		return err
	}
	if c.TransX != OpT || c.TransY != OpN {
		return fmt.Errorf("cublas: INT8 GEMM needs the TN form")
	}
	if c.M%4 != 0 || c.K%4 != 0 || c.LdX%4 != 0 || c.LdY%4 != 0 || c.LdD%4 != 0 {
		return fmt.Errorf("cublas: INT8 GEMM m=%d n=%d k=%d: cuBLASLt's IMMA kernels need n and k multiples of 4", c.N, c.M, c.K)
	}
	return nil
}

// Library sonames, newest first; the unversioned name last (a
// development symlink, which may be missing where the runtime is).
var (
	CublasNames   = []string{"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"}
	CublasLtNames = []string{"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"}
)

// SearchDirs are the directories tried after the loader's own search
// (LD_LIBRARY_PATH, the ld.so cache), where CUDA installs keep the
// libraries without telling the loader: each of $QUANTKIT_CUBLAS_PATH
// (colon-separated), $CUDA_HOME/lib64, $CUDA_PATH/lib64,
// /usr/local/cuda/lib64 and /usr/local/cuda/targets/<arch>-linux/lib, in
// that order, once each.
func SearchDirs(getenv func(string) string, goarch string) []string {
	var dirs []string
	add := func(d string) {
		if d != "" && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	for _, d := range strings.Split(getenv("QUANTKIT_CUBLAS_PATH"), ":") {
		add(d)
	}
	for _, env := range []string{"CUDA_HOME", "CUDA_PATH"} {
		if v := getenv(env); v != "" {
			add(filepath.Join(v, "lib64"))
		}
	}
	add("/usr/local/cuda/lib64")
	target := "x86_64-linux"
	if goarch == "arm64" {
		target = "sbsa-linux"
	}
	add("/usr/local/cuda/targets/" + target + "/lib")
	return dirs
}

// Candidates are the paths dlopen tries, in order: every name as it is
// (the loader's search), then every name in each of dirs.
func Candidates(names, dirs []string) []string {
	out := slices.Clone(names)
	for _, d := range dirs {
		for _, n := range names {
			out = append(out, filepath.Join(d, n))
		}
	}
	return out
}

// NotFound is the note of a library that none of the candidates opened:
// "cuBLAS not found (tried libcublas.so.13, …, libcublas.so, also in
// /usr/local/cuda/lib64, …: <the last loader error>)".
func NotFound(library string, names, dirs []string, lastErr string) string {
	s := fmt.Sprintf("%s not found (tried %s", library, strings.Join(names, ", "))
	if len(dirs) > 0 {
		s += ", also in " + strings.Join(dirs, ", ")
	}
	if lastErr != "" {
		s += ": " + lastErr
	}
	return s + ")"
}

// Status is cublasStatus_t.
type Status int32

var statusNames = map[Status]string{
	0: "CUBLAS_STATUS_SUCCESS", 1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED",
	7: "CUBLAS_STATUS_INVALID_VALUE", 8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR",
	13: "CUBLAS_STATUS_EXECUTION_FAILED", 14: "CUBLAS_STATUS_INTERNAL_ERROR", 15: "CUBLAS_STATUS_NOT_SUPPORTED",
	16: "CUBLAS_STATUS_LICENSE_ERROR",
}

// Error is the status's name, "cublas status N" for an unknown one.
func (s Status) Error() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("cublas status %d", int32(s))
}

// DataType is cudaDataType_t.
type DataType int32

// The cudaDataType_t values used here.
const (
	R32F  DataType = 0  // CUDA_R_32F
	R16F  DataType = 2  // CUDA_R_16F
	R8I   DataType = 3  // CUDA_R_8I
	R32I  DataType = 10 // CUDA_R_32I
	R16BF DataType = 14 // CUDA_R_16BF
)

// ComputeType is cublasComputeType_t.
type ComputeType int32

// The cublasComputeType_t values used here.
const (
	Compute32F         ComputeType = 68 // CUBLAS_COMPUTE_32F
	Compute32FFastTF32 ComputeType = 77 // CUBLAS_COMPUTE_32F_FAST_TF32
	Compute32I         ComputeType = 72 // CUBLAS_COMPUTE_32I
)

// Math is cublasMath_t.
type Math int32

// The cublasMath_t values used here.
const (
	DefaultMath      Math = 0  // CUBLAS_DEFAULT_MATH: no TF32 for float32
	TF32TensorOpMath Math = 3  // CUBLAS_TF32_TENSOR_OP_MATH
	gemmDefaultAlgo       = -1 // CUBLAS_GEMM_DEFAULT
	matmulDescTransA      = 3  // CUBLASLT_MATMUL_DESC_TRANSA
	matmulDescTransB      = 4  // CUBLASLT_MATMUL_DESC_TRANSB
	ltWorkspaceBytes      = 32 << 20
)

// Entry is how one kind of GEMM calls the library.
type Entry int

// The entry points.
const (
	Sgemm    Entry = iota // cublasSgemm_v2
	GemmEx                // cublasGemmEx
	LtMatmul              // cublasLtMatmul
)

func (e Entry) String() string {
	return [...]string{"cublasSgemm", "cublasGemmEx", "cublasLtMatmul"}[e]
}

// Kind is one vendor GEMM: a row of Kinds.
type Kind struct {
	Name      string // "cublas-sgemm"
	Impl      string // "cublas" or "cublaslt"
	Precision string // "fp32", "tf32", "bf16", "fp16", "int8"
	Entry     Entry
	Math      Math        // cublasSetMathMode before the call (Sgemm)
	Input     DataType    // A and B as the library reads them
	Output    DataType    // C
	Compute   ComputeType // GemmEx and LtMatmul
	Scale     DataType    // alpha and beta (LtMatmul's scale type)
}

// Lt says whether the kind needs cuBLASLt.
func (k Kind) Lt() bool { return k.Entry == LtMatmul }

// Describe is how the kind calls the library, for reports.
func (k Kind) Describe() string {
	switch k.Entry {
	case Sgemm:
		mode := "CUBLAS_DEFAULT_MATH"
		if k.Math == TF32TensorOpMath {
			mode = "CUBLAS_TF32_TENSOR_OP_MATH"
		}
		return fmt.Sprintf("%v, %s", k.Entry, mode)
	default:
		return fmt.Sprintf("%v, %s inputs, %s out, %s", k.Entry, typeName(k.Input), typeName(k.Output), computeName(k.Compute))
	}
}

func typeName(t DataType) string {
	return map[DataType]string{R32F: "CUDA_R_32F", R16F: "CUDA_R_16F", R8I: "CUDA_R_8I", R32I: "CUDA_R_32I", R16BF: "CUDA_R_16BF"}[t]
}

func computeName(c ComputeType) string {
	return map[ComputeType]string{Compute32F: "CUBLAS_COMPUTE_32F", Compute32FFastTF32: "CUBLAS_COMPUTE_32F_FAST_TF32", Compute32I: "CUBLAS_COMPUTE_32I"}[c]
}

// Kinds are the vendor GEMMs, one row each: cuBLAS SGEMM with TF32 off
// and on; cublasGemmEx on BF16 and FP16 inputs with float32 accumulation
// and output, and on INT8 with int32; cuBLASLt's INT8 matmul (int8 in,
// int32 out, CUBLAS_COMPUTE_32I, TN).
var Kinds = []Kind{
	{Name: "cublas-sgemm", Impl: "cublas", Precision: "fp32", Entry: Sgemm, Math: DefaultMath, Input: R32F, Output: R32F, Compute: Compute32F, Scale: R32F},
	{Name: "cublas-sgemm-tf32", Impl: "cublas", Precision: "tf32", Entry: Sgemm, Math: TF32TensorOpMath, Input: R32F, Output: R32F, Compute: Compute32FFastTF32, Scale: R32F},
	{Name: "cublas-gemmex-bf16", Impl: "cublas", Precision: "bf16", Entry: GemmEx, Input: R16BF, Output: R32F, Compute: Compute32F, Scale: R32F},
	{Name: "cublas-gemmex-fp16", Impl: "cublas", Precision: "fp16", Entry: GemmEx, Input: R16F, Output: R32F, Compute: Compute32F, Scale: R32F},
	{Name: "cublas-gemmex-int8", Impl: "cublas", Precision: "int8", Entry: GemmEx, Input: R8I, Output: R32I, Compute: Compute32I, Scale: R32I},
	{Name: "cublaslt-int8", Impl: "cublaslt", Precision: "int8", Entry: LtMatmul, Input: R8I, Output: R32I, Compute: Compute32I, Scale: R32I},
}

// KindNamed is the row of Kinds called name.
func KindNamed(name string) (Kind, bool) {
	for _, k := range Kinds {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// CheckCall reports whether kind can run an m×n×k product in quantkit's
// layout: the sizes fit, and INT8 kinds meet the IMMA rules.
func (k Kind) CheckCall(m, n, kk int) error {
	c := RowMajorABt(m, n, kk)
	if k.Input == R8I {
		return c.CheckIMMA()
	}
	return c.Check()
}

// InputBytes is the size of one input element.
func (k Kind) InputBytes() int {
	switch k.Input {
	case R8I:
		return 1
	case R16F, R16BF:
		return 2
	}
	return 4
}

// EncodeInput converts float32 values to the kind's 16-bit input type
// (round to nearest, ties to even), little-endian, as the device reads
// them; nil for the kinds that read float32 or int8 as they are.
func (k Kind) EncodeInput(x []float32) []byte {
	var enc func([]byte, []float32, binary.ByteOrder)
	switch k.Input {
	case R16BF:
		enc = half.EncodeBFloat16
	case R16F:
		enc = half.EncodeFloat16
	default:
		return nil
	}
	out := make([]byte, 2*len(x))
	enc(out, x, binary.LittleEndian)
	return out
}
