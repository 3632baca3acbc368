// Package alloctest measures how many bytes a reader allocates, so that
// tests and fuzz targets can hold every reader of untrusted input to a
// bound: a header that declares a size must not make the reader allocate
// more than a small multiple of what the file can hold.
package alloctest

import (
	"fmt"
	"runtime"
)

// Bytes returns the bytes f allocates on the heap (the growth of
// runtime.MemStats.TotalAlloc across the call). Other goroutines that
// allocate meanwhile are counted too, so callers run f alone.
func Bytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Limit is the bound a reader of n input bytes is held to: factor times n
// plus slack bytes (for fixed costs: buffers, maps, error strings).
func Limit(n int, factor, slack uint64) uint64 { return factor*uint64(n) + slack }

// Check returns an error when f allocates more than Limit(n, factor,
// slack) bytes reading an input of n bytes; what names the reader.
func Check(what string, n int, factor, slack uint64, f func()) error {
	got := Bytes(f)
	if lim := Limit(n, factor, slack); got > lim {
		return fmt.Errorf("%s allocated %d bytes reading %d input bytes; the bound is %d (%d×input + %d)", what, got, n, lim, factor, slack)
	}
	return nil
}
