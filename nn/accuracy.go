package nn

import "fmt"

// Forwarder runs batches of samples: float.Engine and integer.Engine.
type Forwarder interface {
	// Forward writes batch·OutLen() outputs for batch NCHW samples x
	// (batch·InLen() values).
	Forward(x []float32, batch int, out []float32) error
	InLen() int
	OutLen() int
}

// accuracyBatch is the batch Accuracy runs when given none: the float
// engine's largest pass.
const accuracyBatch = 128

// Accuracy runs the first n samples of s (all of them when n ≤ 0 or n >
// s.N) through f, batch at a time, and returns how many the largest
// output (the first, on ties) classifies as labelled. A label the
// outputs cannot reach is an error, before any sample runs.
func Accuracy(f Forwarder, s *Samples, n, batch int) (correct, total int, err error) {
	return AccuracyProgress(f, s, n, batch, nil)
}

// AccuracyProgress is Accuracy calling progress (when not nil) after each
// batch with the samples done and the total.
func AccuracyProgress(f Forwarder, s *Samples, n, batch int, progress func(done, total int)) (correct, total int, err error) {
	if err := s.Check(true); err != nil {
		return 0, 0, err
	}
	if n <= 0 || n > s.N {
		n = s.N
	}
	if batch <= 0 {
		batch = accuracyBatch
	}
	k := f.OutLen()
	for i, l := range s.Labels[:n] {
		if int(l) >= k {
			return 0, 0, fmt.Errorf("nn: the model has %d outputs but sample %d is labelled %d", k, i, l)
		}
	}
	size := f.InLen()
	x := make([]float32, batch*size)
	out := make([]float32, batch*k)
	idx := make([]int, 0, batch)
	for b0 := 0; b0 < n; b0 += batch {
		nb := min(batch, n-b0)
		idx = idx[:0]
		for i := range nb {
			idx = append(idx, b0+i)
		}
		s.Fill(x[:nb*size], idx)
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

// Argmax is the index of the largest value of v, the first on ties. NaNs
// are never chosen: it is -1 when v is empty or all NaN, so an output that
// is all NaN never matches a label.
func Argmax(v []float32) int {
	best := -1
	for i, x := range v {
		if x == x && (best < 0 || x > v[best]) {
			best = i
		}
	}
	return best
}
