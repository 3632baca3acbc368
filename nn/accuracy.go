package nn

import (
	"fmt"

	"github.com/quantkit/quantkit/dataset"
)

// Forwarder runs batches of samples: *FloatEngine and *Int8Engine.
type Forwarder interface {
	// Forward writes batch·OutLen() outputs for batch NCHW samples x.
	Forward(x []float32, batch int, out []float32) error
	OutLen() int
}

// Accuracy runs the first n samples of s (all of them when n ≤ 0 or n >
// s.N) through f, batch at a time, with pixels times scale, and returns how
// many the largest output (the first, on ties) classifies as labelled.
func Accuracy(f Forwarder, s *dataset.Set, scale float32, n, batch int) (correct, total int, err error) {
	return AccuracyProgress(f, s, scale, n, batch, nil)
}

// AccuracyProgress is Accuracy calling progress (when not nil) after each
// batch with the samples done and the total.
func AccuracyProgress(f Forwarder, s *dataset.Set, scale float32, n, batch int, progress func(done, total int)) (correct, total int, err error) {
	if n <= 0 || n > s.N {
		n = s.N
	}
	if batch <= 0 {
		batch = f32MaxBatch
	}
	k := f.OutLen()
	if k < s.Classes {
		return 0, 0, fmt.Errorf("the model has %d outputs but %s has labels up to %d", k, s.Name, s.Classes-1)
	}
	size := s.C * s.H * s.W
	x := make([]float32, batch*size)
	out := make([]float32, batch*k)
	idx := make([]int, 0, batch)
	for b0 := 0; b0 < n; b0 += batch {
		nb := min(batch, n-b0)
		idx = idx[:0]
		for i := range nb {
			idx = append(idx, b0+i)
		}
		s.Input(x, idx, scale)
		if err := f.Forward(x[:nb*size], nb, out[:nb*k]); err != nil {
			return 0, 0, err
		}
		for i := range nb {
			if Argmax(out[i*k:(i+1)*k]) == int(s.Labels[b0+i]) {
				correct++
			}
		}
		if progress != nil {
			progress(b0+nb, n)
		}
	}
	return correct, n, nil
}

// Argmax is the index of the largest value of v, the first on ties; NaNs
// are never chosen unless all are NaN (then 0).
func Argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] || v[best] != v[best] {
			best = i
		}
	}
	return best
}
