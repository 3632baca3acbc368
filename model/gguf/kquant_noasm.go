//go:build !amd64 || noasm || gccgo || safe

package gguf

// Builds without kquant_amd64.s: useAVX2 is false, and the kernels' names
// run their pure-Go twins (never called, but they keep one set of callers).

var useAVX2 = false

func kTrialsAVX2(groups int, xm, x, w *[32]float32, iscale *[kLanes]float32, hi uint32, sumL, sumL2, sumXL *[kLanes]float32) {
	kTrialsGo(8*groups, xm, x, w, iscale, hi, sumL, sumL2, sumXL)
}

func kErrsAVX2(groups int, xm, x, w *[32]float32, iscale, scale, vmin *[kLanes]float32, hi uint32, err *[kLanes]float32) {
	kErrsGo(8*groups, xm, x, w, iscale, scale, vmin, hi, err)
}

func q6TrialsAVX2(x, w, wx *[16]float32, iscale *[kLanes]float32, sumLX, sumL2 *[kLanes]float32) {
	q6TrialsGo(kLanes, x, w, wx, iscale, sumLX, sumL2)
}

func dequantQ4_KAVX2(y *[QK_K]float32, q *[QK_K / 2]byte, qh *[QK_K / 8]byte, s, m *[8]float32) {
	panic("gguf: no AVX2 kernels in this build")
}

func dequantQ5_KAVX2(y *[QK_K]float32, q *[QK_K / 2]byte, qh *[QK_K / 8]byte, s, m *[8]float32) {
	panic("gguf: no AVX2 kernels in this build")
}

func dequantQ6_KAVX2(y *[QK_K]float32, b *[blockQ6_KSize]byte, s *[QK_K / 16]float32) {
	panic("gguf: no AVX2 kernels in this build")
}
