package gguf

import "fmt"

// RowBytes is the size of a row of k elements of type t, for types
// DecodeFloat32 converts; with DecodeRows it makes t a
// backend.PackedFormat, so that a model keeps its tensors in their GGUF
// blocks and a backend decodes them a tile of rows at a time.
func (t Type) RowBytes(k int) (int, error) {
	if !t.CanDecode() {
		return 0, fmt.Errorf("gguf: %v has no conversion to float32", t)
	}
	if k <= 0 {
		return 0, fmt.Errorf("gguf: %v row of %d elements", t, k)
	}
	n, err := t.RowSize(int64(k))
	return int(n), err
}

// DecodeRows converts len(dst) elements (rows of k) of type t from src,
// which holds exactly their bytes, to float32 (DecodeFloat32). It panics
// on a length mismatch or a type it cannot convert, as the kernels it
// feeds check both once, up front (backend.Packed.Check).
func (t Type) DecodeRows(dst []float32, src []byte, k int) {
	if n, err := t.RowSize(int64(len(dst))); err != nil || int(n) != len(src) {
		panic(fmt.Sprintf("gguf: DecodeRows of %d %v elements from %d bytes (%v)", len(dst), t, len(src), err))
	}
	if err := DecodeFloat32(dst, src, t); err != nil {
		panic(err)
	}
}
