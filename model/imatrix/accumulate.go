package imatrix

import (
	"fmt"
	"math"
	"sort"
	"sync"
)

// Accumulator builds an importance matrix from activations, as
// llama-imatrix's collect_imatrix does for dense tensors: for each weight
// tensor, the float32 sum of x² per input column, added row by row in the
// order given, and the number of rows. It is safe for concurrent use.
//
// llama-imatrix collects the input of every matrix multiplication with a
// weight under blk.* (and output.weight with --process-output) in batches
// of at least 16 tokens; which inputs to feed is the caller's choice.
type Accumulator struct {
	mu      sync.Mutex
	entries map[string]*Entry
}

// NewAccumulator returns an empty Accumulator.
func NewAccumulator() *Accumulator { return &Accumulator{entries: map[string]*Entry{}} }

// Add adds the activation rows x (rows of cols values: the inputs that the
// weight tensor name multiplies, one row per token) to name's sums:
//
//	for each row r: Sums[j] += x[r·cols+j]²;  Counts[0] += rows
//
// It fails if x is not whole rows, if name was seen with another row
// length, or if a sum stops being finite (llama-imatrix stops there too),
// leaving name's entry as it was.
func (a *Accumulator) Add(name string, x []float32, cols int) error {
	if cols <= 0 || len(x)%cols != 0 {
		return fmt.Errorf("imatrix: tensor %q: %d activations are not whole rows of %d", name, len(x), cols)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.entries[name]
	if !ok {
		e = &Entry{Name: name, Sums: make([]float32, cols), Counts: []int64{0}}
	} else if len(e.Sums) != cols {
		return fmt.Errorf("imatrix: tensor %q: rows of %d activations, earlier %d", name, cols, len(e.Sums))
	}
	acc := make([]float32, cols)
	copy(acc, e.Sums)
	for r := 0; r < len(x); r += cols {
		for j, v := range x[r : r+cols] {
			acc[j] += float32(v * v)
		}
	}
	for j, v := range acc {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("imatrix: tensor %q: the sum of x² of column %d is %v (non-finite activations)", name, j, v)
		}
	}
	e.Sums = acc
	e.Counts[0] += int64(len(x) / cols)
	a.entries[name] = e
	return nil
}

// File returns the importance matrix accumulated so far (a copy), for
// WriteGGUF or WriteLegacy: ChunkSize is chunkSize (llama-imatrix's
// context length, the tokens per chunk) and ChunkCount the largest count
// over chunkSize, as llama-imatrix counts chunks.
func (a *Accumulator) File(chunkSize int, datasets ...string) *File {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := &File{Datasets: append([]string{}, datasets...), ChunkSize: chunkSize, HasMetadata: true}
	for _, e := range a.entries {
		f.Entries = append(f.Entries, Entry{Name: e.Name, Sums: append([]float32{}, e.Sums...), Counts: append([]int64{}, e.Counts...)})
		if chunkSize > 0 {
			f.ChunkCount = max(f.ChunkCount, int(e.Counts[0]/int64(chunkSize)))
		}
	}
	sort.Slice(f.Entries, func(i, j int) bool { return f.Entries[i].Name < f.Entries[j].Name })
	return f
}
