//go:build cuda

package cublas

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

// The few cuBLAS and cuBLASLt entry points used, declared here rather
// than taken from cublas_v2.h and cublasLt.h, so that building needs
// neither the headers nor the libraries: they are opened with dlopen when
// a run asks for them. Handles, descriptors, device pointers and streams
// travel as uintptr_t; enums are int; alpha and beta are passed by value
// to the trampolines, which hand the library the address of a local copy
// (host pointer mode: read before the call returns).

typedef int (*create_fn)(uintptr_t *);
typedef int (*destroy_fn)(uintptr_t);
typedef int (*set_stream_fn)(uintptr_t, uintptr_t);
typedef int (*set_math_fn)(uintptr_t, int);
typedef int (*get_property_fn)(int, int *);
typedef int (*sgemm_fn)(uintptr_t, int, int, int, int, int, const float *, uintptr_t, int, uintptr_t, int,
	const float *, uintptr_t, int);
typedef int (*gemmex_fn)(uintptr_t, int, int, int, int, int, const void *, uintptr_t, int, int, uintptr_t, int, int,
	const void *, uintptr_t, int, int, int, int);
typedef int (*lt_desc_create_fn)(uintptr_t *, int, int);
typedef int (*lt_desc_set_fn)(uintptr_t, int, const void *, size_t);
typedef int (*lt_layout_create_fn)(uintptr_t *, int, uint64_t, uint64_t, int64_t);
typedef int (*lt_matmul_fn)(uintptr_t, uintptr_t, const void *, uintptr_t, uintptr_t, uintptr_t, uintptr_t,
	const void *, uintptr_t, uintptr_t, uintptr_t, uintptr_t, const void *, uintptr_t, size_t, uintptr_t);
typedef size_t (*lt_version_fn)(void);

static void *qk_dlopen(const char *name) { return dlopen(name, RTLD_NOW | RTLD_LOCAL); }
static const char *qk_dlerror(void) { return dlerror(); }
static void *qk_dlsym(void *h, const char *name) { return dlsym(h, name); }

static int qk_create(void *f, uintptr_t *h) { return ((create_fn)f)(h); }
static int qk_destroy(void *f, uintptr_t h) { return ((destroy_fn)f)(h); }
static int qk_set_stream(void *f, uintptr_t h, uintptr_t s) { return ((set_stream_fn)f)(h, s); }
static int qk_set_math(void *f, uintptr_t h, int m) { return ((set_math_fn)f)(h, m); }
static int qk_get_property(void *f, int type, int *v) { return ((get_property_fn)f)(type, v); }
static size_t qk_lt_version(void *f) { return ((lt_version_fn)f)(); }

static int qk_sgemm(void *f, uintptr_t h, int ta, int tb, int m, int n, int k, float alpha, uintptr_t a, int lda,
		uintptr_t b, int ldb, float beta, uintptr_t c, int ldc) {
	return ((sgemm_fn)f)(h, ta, tb, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc);
}

// qk_gemmex passes alpha and beta as float, or as int32 when ints is set
// (the compute type CUBLAS_COMPUTE_32I scales by int32).
static int qk_gemmex(void *f, uintptr_t h, int ta, int tb, int m, int n, int k, uintptr_t a, int atype, int lda,
		uintptr_t b, int btype, int ldb, uintptr_t c, int ctype, int ldc, int compute, int algo, int ints) {
	float fa = 1, fb = 0;
	int32_t ia = 1, ib = 0;
	const void *alpha = ints ? (const void *)&ia : (const void *)&fa;
	const void *beta = ints ? (const void *)&ib : (const void *)&fb;
	return ((gemmex_fn)f)(h, ta, tb, m, n, k, alpha, a, atype, lda, b, btype, ldb, beta, c, ctype, ldc, compute, algo);
}

static int qk_lt_desc_create(void *f, uintptr_t *d, int compute, int scale) { return ((lt_desc_create_fn)f)(d, compute, scale); }
static int qk_lt_desc_set_int(void *f, uintptr_t d, int attr, int32_t v) { return ((lt_desc_set_fn)f)(d, attr, &v, sizeof v); }
static int qk_lt_layout_create(void *f, uintptr_t *l, int type, uint64_t rows, uint64_t cols, int64_t ld) {
	return ((lt_layout_create_fn)f)(l, type, rows, cols, ld);
}

// qk_lt_matmul is D = alpha·op(A)·op(B) + beta·C with C = D, alpha 1 and
// beta 0 as int32 (scale type CUDA_R_32I) or float, and no algorithm
// chosen: cuBLASLt runs its own heuristic with the workspace given.
static int qk_lt_matmul(void *f, uintptr_t h, uintptr_t desc, uintptr_t a, uintptr_t adesc, uintptr_t b,
		uintptr_t bdesc, uintptr_t c, uintptr_t cdesc, uintptr_t ws, size_t wsbytes, uintptr_t stream, int ints) {
	float fa = 1, fb = 0;
	int32_t ia = 1, ib = 0;
	const void *alpha = ints ? (const void *)&ia : (const void *)&fa;
	const void *beta = ints ? (const void *)&ib : (const void *)&fb;
	return ((lt_matmul_fn)f)(h, desc, alpha, a, adesc, b, bdesc, beta, c, cdesc, c, cdesc, 0, ws, wsbytes, stream);
}
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// Lib is cuBLAS and cuBLASLt as loaded, with the entry points found.
// Either may be missing: Note says which and why.
type Lib struct {
	// CublasName and CublasLtName are the names opened, a soname or a
	// path ("" when not).
	CublasName, CublasLtName string
	// CublasVersion and CublasLtVersion are the libraries' own versions
	// ("12.8.4").
	CublasVersion, CublasLtVersion string
	// Note says what could not be loaded, "" when both were.
	Note string

	create, destroy, setStream, setMath, getProperty, sgemm, gemmEx unsafe.Pointer
	ltCreate, ltDestroy, ltDescCreate, ltDescDestroy, ltDescSet     unsafe.Pointer
	ltLayoutCreate, ltLayoutDestroy, ltMatmul, ltVersion            unsafe.Pointer
}

var (
	loadOnce sync.Once
	loaded   *Lib
)

// Load opens the libraries once per process (later calls return the same
// Lib), trying Candidates of the sonames in SearchDirs; it never fails:
// what is missing is in Lib.Note.
func Load() *Lib {
	loadOnce.Do(func() { loaded = load() })
	return loaded
}

func load() *Lib {
	l := &Lib{}
	var notes []string
	dirs := SearchDirs(os.Getenv, runtime.GOARCH)
	if h, name, err := open(Candidates(CublasNames, dirs)); err != "" {
		notes = append(notes, NotFound("cuBLAS", CublasNames, dirs, err))
	} else if miss := l.syms(h, map[string]*unsafe.Pointer{
		"cublasCreate_v2": &l.create, "cublasDestroy_v2": &l.destroy, "cublasSetStream_v2": &l.setStream,
		"cublasSetMathMode": &l.setMath, "cublasGetProperty": &l.getProperty, "cublasSgemm_v2": &l.sgemm,
		"cublasGemmEx": &l.gemmEx,
	}); miss != "" {
		notes = append(notes, fmt.Sprintf("cuBLAS %s lacks %s", name, miss))
		l.create = nil
	} else {
		l.CublasName = name
		var v [3]C.int
		for i := range v {
			C.qk_get_property(l.getProperty, C.int(i), &v[i]) // MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
		}
		l.CublasVersion = fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2])
	}
	if h, name, err := open(Candidates(CublasLtNames, dirs)); err != "" {
		notes = append(notes, NotFound("cuBLASLt", CublasLtNames, dirs, err))
	} else if miss := l.syms(h, map[string]*unsafe.Pointer{
		"cublasLtCreate": &l.ltCreate, "cublasLtDestroy": &l.ltDestroy, "cublasLtMatmulDescCreate": &l.ltDescCreate,
		"cublasLtMatmulDescDestroy": &l.ltDescDestroy, "cublasLtMatmulDescSetAttribute": &l.ltDescSet,
		"cublasLtMatrixLayoutCreate": &l.ltLayoutCreate, "cublasLtMatrixLayoutDestroy": &l.ltLayoutDestroy,
		"cublasLtMatmul": &l.ltMatmul, "cublasLtGetVersion": &l.ltVersion,
	}); miss != "" {
		notes = append(notes, fmt.Sprintf("cuBLASLt %s lacks %s", name, miss))
		l.ltCreate = nil
	} else {
		l.CublasLtName = name
		v := C.qk_lt_version(l.ltVersion) // major·10000 + minor·100 + patch
		l.CublasLtVersion = fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)
	}
	l.Note = strings.Join(notes, "; ")
	return l
}

// open dlopens the first of names that opens; err is the last loader
// error when none does.
func open(names []string) (h unsafe.Pointer, name, err string) {
	for _, n := range names {
		cs := C.CString(n)
		h := C.qk_dlopen(cs)
		C.free(unsafe.Pointer(cs))
		if h != nil {
			return h, n, ""
		}
		if e := C.qk_dlerror(); e != nil {
			err = C.GoString(e)
		}
	}
	return nil, "", err
}

// syms resolves each symbol; miss lists those not found.
func (l *Lib) syms(h unsafe.Pointer, want map[string]*unsafe.Pointer) (miss string) {
	var missing []string
	for name, p := range want {
		cs := C.CString(name)
		*p = C.qk_dlsym(h, cs)
		C.free(unsafe.Pointer(cs))
		if *p == nil {
			missing = append(missing, name)
		}
	}
	return strings.Join(missing, ", ")
}

// HasCublas says whether cuBLAS loaded with every entry point used.
func (l *Lib) HasCublas() bool { return l.CublasName != "" }

// HasLt says whether cuBLASLt loaded with every entry point used.
func (l *Lib) HasLt() bool { return l.CublasLtName != "" }

// Has says whether the library kind needs loaded.
func (l *Lib) Has(k Kind) bool {
	if k.Lt() {
		return l.HasLt()
	}
	return l.HasCublas()
}

func check(what string, r C.int) error {
	if r == 0 {
		return nil
	}
	return fmt.Errorf("cublas: %s: %w", what, Status(r))
}

// Handle is a cuBLAS handle and a cuBLASLt handle (each when its library
// loaded) whose work goes to one stream. Make it, use it and destroy it
// on the OS thread that holds the CUDA context: cuBLAS works in the
// context current when the handle is made.
type Handle struct {
	lib    *Lib
	blas   C.uintptr_t
	lt     C.uintptr_t
	stream C.uintptr_t
}

// NewHandle makes the handles and binds the cuBLAS one to stream (a
// CUstream; 0 is the legacy default stream).
func (l *Lib) NewHandle(stream uintptr) (*Handle, error) {
	h := &Handle{lib: l, stream: C.uintptr_t(stream)}
	if l.HasCublas() {
		if err := check("cublasCreate", C.qk_create(l.create, &h.blas)); err != nil {
			return nil, err
		}
		if err := check("cublasSetStream", C.qk_set_stream(l.setStream, h.blas, h.stream)); err != nil {
			h.Destroy()
			return nil, err
		}
	}
	if l.HasLt() {
		if err := check("cublasLtCreate", C.qk_create(l.ltCreate, &h.lt)); err != nil {
			h.Destroy()
			return nil, err
		}
	}
	return h, nil
}

// Library names the library kind calls, its version and the file:
// "cuBLASLt 12.8.4 (libcublasLt.so.12)"; "" when it is not loaded.
func (l *Lib) Library(k Kind) string {
	switch {
	case !l.Has(k):
		return ""
	case k.Lt():
		return fmt.Sprintf("cuBLASLt %s (%s)", l.CublasLtVersion, l.CublasLtName)
	}
	return fmt.Sprintf("cuBLAS %s (%s)", l.CublasVersion, l.CublasName)
}

// Destroy frees the handles.
func (h *Handle) Destroy() {
	if h.blas != 0 {
		C.qk_destroy(h.lib.destroy, h.blas)
		h.blas = 0
	}
	if h.lt != 0 {
		C.qk_destroy(h.lib.ltDestroy, h.lt)
		h.lt = 0
	}
}

// Plan is one kind at one size, its cuBLASLt descriptors made.
type Plan struct {
	h       *Handle
	kind    Kind
	call    Call
	desc    C.uintptr_t
	layouts [3]C.uintptr_t // X (quantkit's B), Y (its A), D (its C)
}

// Prepare checks that kind can run quantkit's m×n×k product and, for
// cuBLASLt, makes its descriptors.
func (h *Handle) Prepare(kind Kind, m, n, k int) (*Plan, error) {
	if !h.lib.Has(kind) {
		return nil, fmt.Errorf("cublas: %s: library not loaded (%s)", kind.Name, h.lib.Note)
	}
	if err := kind.CheckCall(m, n, k); err != nil {
		return nil, err
	}
	p := &Plan{h: h, kind: kind, call: RowMajorABt(m, n, k)}
	if !kind.Lt() {
		return p, nil
	}
	l, c := h.lib, p.call
	if err := check("cublasLtMatmulDescCreate", C.qk_lt_desc_create(l.ltDescCreate, &p.desc, C.int(kind.Compute), C.int(kind.Scale))); err != nil {
		return nil, err
	}
	if err := firstErr(
		check("cublasLtMatmulDescSetAttribute(TRANSA)", C.qk_lt_desc_set_int(l.ltDescSet, p.desc, matmulDescTransA, C.int32_t(c.TransX))),
		check("cublasLtMatmulDescSetAttribute(TRANSB)", C.qk_lt_desc_set_int(l.ltDescSet, p.desc, matmulDescTransB, C.int32_t(c.TransY))),
	); err != nil {
		p.Close()
		return nil, err
	}
	// Each layout is the matrix as stored, before op(): X is k×n (B's
	// memory), Y k×m (A's), D n×m (C's), column-major.
	dims := [3][3]int{{c.K, c.M, c.LdX}, {c.K, c.N, c.LdY}, {c.M, c.N, c.LdD}}
	types := [3]DataType{kind.Input, kind.Input, kind.Output}
	for i, d := range dims {
		if err := check("cublasLtMatrixLayoutCreate", C.qk_lt_layout_create(l.ltLayoutCreate, &p.layouts[i], C.int(types[i]),
			C.uint64_t(d[0]), C.uint64_t(d[1]), C.int64_t(d[2]))); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// WorkspaceBytes is the device workspace a cuBLASLt plan is given.
const WorkspaceBytes = ltWorkspaceBytes

// Run queues quantkit's C = A·Bᵀ on the handle's stream: a and b are the
// device addresses of A (m×k) and B (n×k) in the kind's input type, c of
// C; workspace (WorkspaceBytes, 0 for none) serves cuBLASLt.
func (p *Plan) Run(a, b, c, workspace uintptr) error {
	h, l, k, cl := p.h, p.h.lib, p.kind, p.call
	// The first operand is B, the second A (RowMajorABt).
	x, y, d := C.uintptr_t(b), C.uintptr_t(a), C.uintptr_t(c)
	ints := C.int(0)
	if k.Scale == R32I {
		ints = 1
	}
	switch k.Entry {
	case Sgemm:
		if err := check("cublasSetMathMode", C.qk_set_math(l.setMath, h.blas, C.int(k.Math))); err != nil {
			return err
		}
		return check("cublasSgemm", C.qk_sgemm(l.sgemm, h.blas, C.int(cl.TransX), C.int(cl.TransY), C.int(cl.M), C.int(cl.N), C.int(cl.K),
			1, x, C.int(cl.LdX), y, C.int(cl.LdY), 0, d, C.int(cl.LdD)))
	case GemmEx:
		if err := check("cublasSetMathMode", C.qk_set_math(l.setMath, h.blas, C.int(DefaultMath))); err != nil {
			return err
		}
		return check("cublasGemmEx", C.qk_gemmex(l.gemmEx, h.blas, C.int(cl.TransX), C.int(cl.TransY), C.int(cl.M), C.int(cl.N), C.int(cl.K),
			x, C.int(k.Input), C.int(cl.LdX), y, C.int(k.Input), C.int(cl.LdY), d, C.int(k.Output), C.int(cl.LdD),
			C.int(k.Compute), gemmDefaultAlgo, ints))
	default:
		wsBytes := C.size_t(0)
		if workspace != 0 {
			wsBytes = WorkspaceBytes
		}
		return check("cublasLtMatmul", C.qk_lt_matmul(l.ltMatmul, h.lt, p.desc, x, p.layouts[0], y, p.layouts[1], d, p.layouts[2],
			C.uintptr_t(workspace), wsBytes, h.stream, ints))
	}
}

// Close frees the plan's descriptors.
func (p *Plan) Close() {
	l := p.h.lib
	for i, lay := range p.layouts {
		if lay != 0 {
			C.qk_destroy(l.ltLayoutDestroy, lay)
			p.layouts[i] = 0
		}
	}
	if p.desc != 0 {
		C.qk_destroy(l.ltDescDestroy, p.desc)
		p.desc = 0
	}
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
