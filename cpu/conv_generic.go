//go:build !amd64 || noasm || gccgo || safe

package cpu

// Without the amd64 kernels a convolution runs convF32Generic.
func convF32SIMD(cv *ConvF32, dst, x []float32, n int) bool { return false }

// Without the amd64 kernels no layout but the compact one is written.
func convWideStrides(cv *ConvF32, n int) (row, img int, ok bool) { return 0, 0, false }

// Without the amd64 kernels the max-pool rows run in Go.
func maxPool2x2RowSIMD(y, r0, r1 []float32) bool { return false }
func maxIntoSIMD(y, x []float32) bool            { return false }

func maxWindowsSIMD(t, x []float32, rs, kh, kw int) bool { return false }

func maxWindowsS32SIMD(t, x []int32, rs, kh, kw, step int) bool { return false }
