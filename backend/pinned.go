package backend

// PinnedAllocator is implemented by backends whose transfers go faster,
// and asynchronously, from page-locked host memory (the gpu backend).
// AllocPinned returns a host slice of n elements of dt ([]float32 for F32,
// and so on) in such memory, zeroed, which Upload and Download take like
// any slice of its type, and a function that frees it (after the copies
// queued on it); the slice must not be used after that.
type PinnedAllocator interface {
	AllocPinned(dt DType, n int) (host any, free func() error, err error)
}
