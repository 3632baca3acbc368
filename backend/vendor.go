package backend

import "fmt"

// VendorGemmKind is one GEMM of a device vendor's library (cuBLAS,
// cuBLASLt) that a backend can run beside its own kernels, as a baseline.
type VendorGemmKind struct {
	// Name identifies the kind in PrepareVendorGemm: "cublas-sgemm".
	Name string
	// Impl is the library as reports name it: "cublas", "cublaslt".
	Impl string
	// Precision is the arithmetic: "fp32" (float32, no TF32), "tf32",
	// "bf16" and "fp16" (those inputs, float32 accumulation and output),
	// "int8" (int8 inputs, exact int32 accumulation and output).
	Precision string
	// Describe says how it is called, for the report: "cublasSgemm,
	// CUBLAS_DEFAULT_MATH, libcublas.so.12".
	Describe string
}

// Input is the type of the A and B buffers PrepareVendorGemm takes: S8 for
// int8, F32 for the float precisions (converted to the kind's input type
// once, when prepared).
func (k VendorGemmKind) Input() DType {
	if k.Precision == "int8" {
		return S8
	}
	return F32
}

// Output is the type of the C buffer: S32 for int8, F32 otherwise.
func (k VendorGemmKind) Output() DType {
	if k.Precision == "int8" {
		return S32
	}
	return F32
}

// VendorGemmer is implemented by backends that can run a vendor's GEMMs
// (the gpu backend with cuBLAS and cuBLASLt, loaded when it runs) in the
// same layout as GemmF32 and GemmS8: C[m×n] = A[m×k]·B[n×k]ᵀ, row-major,
// both operands K-contiguous.
type VendorGemmer interface {
	// VendorGemms lists the kinds this device can run, and says in note
	// what is missing and why ("cuBLAS not found (tried libcublas.so.13,
	// …)"); a device with no vendor library returns no kinds and a note.
	VendorGemms() (kinds []VendorGemmKind, note string)
	// PrepareVendorGemm readies kind on a (m×k) and b (n×k), of type
	// kind.Input(), writing c (m×n, of type kind.Output()): it converts
	// the inputs when the kind needs to and sets up the library's
	// descriptors, so that Run queues one GEMM and nothing else.
	PrepareVendorGemm(kind string, m, n, k int, a, b, c Buffer) (VendorGemm, error)
}

// VendorGemm is a prepared vendor GEMM.
type VendorGemm interface {
	// Run queues one C = A·Bᵀ on the backend's stream and returns.
	Run() error
	// Close frees what the preparation allocated.
	Close() error
}

// CheckVendorGemm reports whether a, b and c have the types and sizes
// kind needs for an m×n×k product.
func CheckVendorGemm(kind VendorGemmKind, m, n, k int, a, b, c Buffer) error {
	in, out := kind.Input(), kind.Output()
	for _, x := range []struct {
		name string
		buf  Buffer
		want DType
	}{{"A", a, in}, {"B", b, in}, {"C", c, out}} {
		if x.buf == nil {
			return fmt.Errorf("%s: %s is nil", kind.Name, x.name)
		}
		if x.buf.DType() != x.want {
			return fmt.Errorf("%s: %s is %v, want %v", kind.Name, x.name, x.buf.DType(), x.want)
		}
	}
	if err := CheckGemm(m, n, k, a.Len(), b.Len(), c.Len()); err != nil {
		return fmt.Errorf("%s: %w", kind.Name, err)
	}
	return nil
}

// DeviceCopier is implemented by backends with memory of their own that
// can copy a buffer to another on the device: the bandwidth that
// memory-bound kernels are measured against. CopyDevice queues the copy
// of src into dst (same type and length).
type DeviceCopier interface {
	CopyDevice(dst, src Buffer) error
}
