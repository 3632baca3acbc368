package backend

// HostBuffer is a Buffer whose memory is host memory that Go code may
// read and write in place: what a host slice holds after a write, Download
// returns, and what Upload or an operation writes, the slice shows. Host
// code then uses such a buffer without copying it (the cpu backend's
// buffers are Go slices). Buffers in device memory (gpu) must not
// implement it: callers that find no HostBuffer move data with Upload and
// Download.
//
// Each accessor returns the buffer's elements when DType is its type (F32
// for F32, and so on), sharing the buffer's memory, len Len(); it returns
// nil for the other types. Host is the type-safe way to ask.
type HostBuffer interface {
	Buffer
	F32() []float32
	S8() []int8
	U8() []uint8
	S32() []int32
}

// Elem is a host element type of a Buffer: float32 for F32, int8 for S8,
// uint8 for U8, int32 for S32.
type Elem interface {
	float32 | int8 | uint8 | int32
}

// DTypeOf is the DType whose host element type is T.
func DTypeOf[T Elem]() DType {
	var z T
	switch any(z).(type) {
	case float32:
		return F32
	case int8:
		return S8
	case uint8:
		return U8
	}
	return S32
}

// Host is the memory of b as a []T, shared with b, when b is a HostBuffer
// whose DType is T's; ok is false otherwise (device memory, or another
// element type), and the caller copies with Upload and Download instead.
//
//	if h, ok := backend.Host[float32](b); ok {
//		h[0] = 1 // writes the buffer
//	}
func Host[T Elem](b Buffer) (h []T, ok bool) {
	hb, ok := b.(HostBuffer)
	if !ok || hb.DType() != DTypeOf[T]() {
		return nil, false
	}
	var s any
	switch hb.DType() {
	case F32:
		s = hb.F32()
	case S8:
		s = hb.S8()
	case U8:
		s = hb.U8()
	default:
		s = hb.S32()
	}
	h, ok = s.([]T)
	return h, ok
}
