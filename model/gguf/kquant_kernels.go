package gguf

import "math"

// kLanes is the number of trials the trial kernels evaluate at once: three
// AVX2 registers of eight float32 lanes. make_qkx2_quants tries at most 21
// scales (Q4_K), make_qx_quants 19 (Q6_K).
const kLanes = 24

// kTrialsGo is, for each of the first n trials t (kTrialsAVX2: 8·groups), make_qkx2_quants' sums
// over the codes l = max(0, min(nmax, nearest_int(iscale[t]·xm[i]))):
//
//	sumL[t] = Σ w·l,  sumL2[t] = Σ (w·l)·l,  sumXL[t] = Σ (w·l)·x
//
// each added in element order, as ggml adds them. hi is the bits of
// 1.5·2^23 + nmax.
func kTrialsGo(n int, xm, x, w *[32]float32, iscale *[kLanes]float32, hi uint32, sumL, sumL2, sumXL *[kLanes]float32) {
	nmax := int32(math.Float32frombits(hi) - 12582912)
	for t := range n {
		var a, b, c float32
		for i, v := range xm {
			fl := float32(max(0, min(nmax, nearestInt(float32(iscale[t]*v)))))
			wl := float32(w[i] * fl)
			a += wl
			b += float32(wl * fl)
			c += float32(wl * x[i])
		}
		sumL[t], sumL2[t], sumXL[t] = a, b, c
	}
}

// kErrsGo is, for each of the first n trials t, make_qkx2_quants' error
// Σ w·(scale[t]·l + vmin[t] − x)², added in element order, over the codes
// l of kTrialsGo.
func kErrsGo(n int, xm, x, w *[32]float32, iscale, scale, vmin *[kLanes]float32, hi uint32, err *[kLanes]float32) {
	nmax := int32(math.Float32frombits(hi) - 12582912)
	for t := range n {
		var e float32
		for i, v := range xm {
			fl := float32(max(0, min(nmax, nearestInt(float32(iscale[t]*v)))))
			d := float32(float32(scale[t]*fl)+vmin[t]) - x[i]
			e += float32(w[i] * float32(d*d))
		}
		err[t] = e
	}
}

// q6TrialsGo is, for each of the first n trials t, make_qx_quants' sums
// over the codes l = max(−32, min(31, nearest_int(iscale[t]·x[i]))):
//
//	sumLX[t] = Σ (w·x)·l,  sumL2[t] = Σ (w·l)·l
//
// each added in element order; wx[i] is w[i]·x[i].
func q6TrialsGo(n int, x, w, wx *[16]float32, iscale *[kLanes]float32, sumLX, sumL2 *[kLanes]float32) {
	for t := range n {
		sumLX[t], sumL2[t] = q6SumsAny(x, w, wx, iscale[t])
	}
}

// kBitsOK reports whether every iscale·xm of a trial kernel lies safely
// inside (−2^22, 2^22), where the kernels' rounding and clamping on the
// bits of iscale·xm + 1.5·2^23 equal nearest_int and the integer clamp:
// maxIscale and maxXm are the largest magnitudes (NaN if any is NaN).
func kBitsOK(maxIscale, maxXm float32) bool {
	return float32(maxIscale*maxXm) < 0x1p21
}

// kTrials runs kTrialsAVX2 where it computes what kTrialsGo computes (AVX2
// present and allowed, and every product within kBitsOK), and kTrialsGo
// otherwise.
func kTrials(bitsOK bool, n int, xm, x, w *[32]float32, iscale *[kLanes]float32, hi uint32, sumL, sumL2, sumXL *[kLanes]float32) {
	if bitsOK && useAVX2 {
		kTrialsAVX2((n+7)/8, xm, x, w, iscale, hi, sumL, sumL2, sumXL)
		return
	}
	kTrialsGo(n, xm, x, w, iscale, hi, sumL, sumL2, sumXL)
}

// kErrs is kTrials for the errors.
func kErrs(bitsOK bool, n int, xm, x, w *[32]float32, iscale, scale, vmin *[kLanes]float32, hi uint32, err *[kLanes]float32) {
	if bitsOK && useAVX2 {
		kErrsAVX2((n+7)/8, xm, x, w, iscale, scale, vmin, hi, err)
		return
	}
	kErrsGo(n, xm, x, w, iscale, scale, vmin, hi, err)
}

// q6TrialsAll is kTrials for Q6_K; finite says that every x is finite,
// which keeps every |iscale·x| ≤ 33.
func q6TrialsAll(finite bool, n int, x, w, wx *[16]float32, iscale *[kLanes]float32, sumLX, sumL2 *[kLanes]float32) {
	if finite && useAVX2 {
		q6TrialsAVX2(x, w, wx, iscale, sumLX, sumL2)
		return
	}
	q6TrialsGo(n, x, w, wx, iscale, sumLX, sumL2)
}
