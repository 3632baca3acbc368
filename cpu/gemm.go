package cpu

import (
	"sync"

	"github.com/quantkit/quantkit/backend"
)

// pool recycles scratch slices (packed GEMM panels) between calls. Slices
// come back with arbitrary contents.
type pool[T any] struct{ p sync.Pool }

func (p *pool[T]) get(n int) []T {
	if v, ok := p.p.Get().(*[]T); ok && cap(*v) >= n {
		return (*v)[:n]
	}
	return make([]T, n)
}

func (p *pool[T]) put(s []T) { p.p.Put(&s) }

// GemmKernels names the micro-kernels the GEMMs run now, as chosen from
// the processor's extensions (see Features and ForceGeneric): for example
// "f32 avx512 14x32, int8 avx512-vnni 14x32", or
// "f32 generic 1x7, int8 generic 1x14".
func GemmKernels() string { return gemmKernels() }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// gemmTasks splits an m×n output into a grid of tasks of at most mc rows
// and at most a share of np column panels, with enough tasks for w workers
// to balance: it returns the number of row blocks, column blocks and the
// panels per column block.
func gemmTasks(m, np, mc, w int) (mb, nb, panelsPerBlock int) {
	mb = ceilDiv(m, mc)
	nb = 1
	if want := 4 * w; w > 1 && mb < want {
		nb = min(ceilDiv(want, mb), np)
	}
	panelsPerBlock = ceilDiv(np, nb)
	nb = ceilDiv(np, panelsPerBlock)
	return mb, nb, panelsPerBlock
}

// checkGemm panics with a message naming fn unless the dimensions are
// non-negative, their products fit an int, and the slices have exactly
// the lengths they imply.
func checkGemm(fn string, m, n, k, la, lb, lc int) {
	if err := gemmDimsError(m, n, k, la, lb, lc); err != nil {
		panic("cpu: " + fn + ": " + err.Error())
	}
}

// gemmDimsError is backend.CheckGemm.
func gemmDimsError(m, n, k, la, lb, lc int) error { return backend.CheckGemm(m, n, k, la, lb, lc) }
