package cpu

import (
	"fmt"
	"math"
	"sync"
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

// gemmDimsError reports whether dimensions and slice lengths of a GEMM
// agree.
func gemmDimsError(m, n, k, la, lb, lc int) error {
	if m < 0 || n < 0 || k < 0 {
		return fmt.Errorf("negative dimension in m=%d n=%d k=%d", m, n, k)
	}
	mk, ok1 := mulOK(m, k)
	nk, ok2 := mulOK(n, k)
	mn, ok3 := mulOK(m, n)
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("m=%d n=%d k=%d overflows", m, n, k)
	}
	switch {
	case la != mk:
		return fmt.Errorf("A has %d elements, want m·k = %d·%d = %d", la, m, k, mk)
	case lb != nk:
		return fmt.Errorf("B has %d elements, want n·k = %d·%d = %d", lb, n, k, nk)
	case lc != mn:
		return fmt.Errorf("C has %d elements, want m·n = %d·%d = %d", lc, m, n, mn)
	}
	return nil
}

func mulOK(a, b int) (int, bool) {
	if a != 0 && b > math.MaxInt/a {
		return 0, false
	}
	return a * b, true
}
