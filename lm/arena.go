package lm

import "github.com/quantkit/quantkit/internal/mmap"

// The loaders put every weight matrix the model keeps in memory of its own
// (a mmap.Arena, freed by Model.Close) rather than on the Go heap: with
// gigabytes of weights on the heap the collector lets garbage grow to
// their size before it collects (GOGC=100), which showed as a peak
// resident memory 20–30 % above weights and KV cache; off the heap it
// paces itself on the small working set. Norms, biases and other vectors
// under arenaMin stay on the heap.

// arenaMin is the size from which a weight goes into the arena.
const arenaMin = 64 << 10

// arenaF32 returns n zeroed float32s: from a when they are arenaMin bytes
// or more.
func arenaF32(a *mmap.Arena, n int) []float32 {
	if 4*n >= arenaMin {
		return a.Float32s(n)
	}
	return make([]float32, n)
}

// arenaBytes returns n zeroed bytes: from a when they are arenaMin or more.
func arenaBytes(a *mmap.Arena, n int) []byte {
	if n >= arenaMin {
		return a.Bytes(n)
	}
	return make([]byte, n)
}

// keepF32 moves x into a when it is arenaMin bytes or more (the heap copy
// becomes garbage).
func keepF32(a *mmap.Arena, x []float32) []float32 {
	if 4*len(x) < arenaMin {
		return x
	}
	return a.CopyFloat32s(x)
}

// keepBytes moves b into a when it is arenaMin bytes or more.
func keepBytes(a *mmap.Arena, b []byte) []byte {
	if len(b) < arenaMin {
		return b
	}
	return a.CopyBytes(b)
}
