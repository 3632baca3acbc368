package mmap

import (
	"runtime"
	"testing"
)

// TestArena checks that an arena's memory is zeroed, writable, distinct
// between buffers, outside the Go heap where the build maps (the heap does
// not grow by what it hands out), and that Free lets it all go.
func TestArena(t *testing.T) {
	var a Arena
	const n = 64 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := a.Float32s(n / 4)
	b := a.Bytes(1000)
	runtime.ReadMemStats(&after)
	if len(x) != n/4 || len(b) != 1000 || cap(b) != 1000 {
		t.Fatalf("lengths %d, %d (cap %d)", len(x), len(b), cap(b))
	}
	for i := range x {
		if x[i] != 0 {
			t.Fatalf("x[%d] = %g, not zeroed", i, x[i])
		}
		x[i] = float32(i)
	}
	for i := range b {
		b[i] = byte(i)
	}
	if x[n/4-1] != float32(n/4-1) || b[999] != byte(999%256) {
		t.Fatal("writes did not stick")
	}
	c := a.CopyBytes(b)
	c[0] = 99
	if b[0] != 0 || c[1] != 1 {
		t.Fatal("CopyBytes shares memory or lost bytes")
	}
	if canMap {
		if grew := int64(after.HeapSys) - int64(before.HeapSys); grew > n/2 {
			t.Errorf("the Go heap grew by %d bytes for a %d-byte arena buffer", grew, n)
		}
		if m := a.Mapped(); m != n+1000+1000 {
			t.Errorf("Mapped %d, want %d", m, n+2000)
		}
	}
	if err := a.Free(); err != nil {
		t.Fatal(err)
	}
	if a.Mapped() != 0 {
		t.Error("Free left memory mapped")
	}
	if a.Bytes(0) != nil || a.Float32s(0) != nil {
		t.Error("zero-length buffers should be nil")
	}
}
