package cpu

// The quantize kernels of elem_amd64.s as the Go code calls them: each
// helper runs the assembly on the longest prefix it handles (whole blocks
// of 64 on AVX-512, then of 32 on AVX2) and returns that length, 0 when
// use has neither extension (always, without the assembly: elem_noasm.go).

// quantize8Asm is quantize8 on a prefix of x.
func quantize8Asm(dst []byte, x []float32, sc float32, zp, qmin, qmax int32) int {
	n := 0
	if m := len(x) &^ 63; use.AVX512 && m > 0 {
		quantize8AVX512(dst[:m], x[:m], sc, zp, qmin, qmax)
		n = m
	}
	if m := (len(x) - n) &^ 31; use.AVX2FMA && m > 0 {
		quantize8AVX2(dst[n:n+m], x[n:n+m], sc, zp, qmin, qmax)
		n += m
	}
	return n
}

// quantize4Asm packs the codes of a prefix of x (of even length) into
// pairs, two codes a byte.
func quantize4Asm(pairs []byte, x []float32, sc float32, zp, qmin, qmax int32) int {
	n := 0
	if m := len(x) &^ 63; use.AVX512 && m > 0 {
		quantize4AVX512(pairs[:m/2], x[:m], sc, zp, qmin, qmax)
		n = m
	}
	if m := (len(x) - n) &^ 31; use.AVX2FMA && m > 0 {
		quantize4AVX2(pairs[n/2:(n+m)/2], x[n:n+m], sc, zp, qmin, qmax)
		n += m
	}
	return n
}

// quantize8VecAsm codes a prefix of x, element i under sc[i] and zp[i].
func quantize8VecAsm(dst []byte, x, sc []float32, zp []int32, qmin, qmax int32) int {
	n := 0
	if m := len(x) &^ 63; use.AVX512 && m > 0 {
		quantize8VecAVX512(dst[:m], x[:m], sc[:m], zp[:m], qmin, qmax)
		n = m
	}
	if m := (len(x) - n) &^ 31; use.AVX2FMA && m > 0 {
		quantize8VecAVX2(dst[n:n+m], x[n:n+m], sc[n:n+m], zp[n:n+m], qmin, qmax)
		n += m
	}
	return n
}

// quantize4VecAsm packs the codes of a prefix of x into pairs, element i
// under sc[i] and zp[i].
func quantize4VecAsm(pairs []byte, x, sc []float32, zp []int32, qmin, qmax int32) int {
	n := 0
	if m := len(x) &^ 63; use.AVX512 && m > 0 {
		quantize4VecAVX512(pairs[:m/2], x[:m], sc[:m], zp[:m], qmin, qmax)
		n = m
	}
	if m := (len(x) - n) &^ 31; use.AVX2FMA && m > 0 {
		quantize4VecAVX2(pairs[n/2:(n+m)/2], x[n:n+m], sc[n:n+m], zp[n:n+m], qmin, qmax)
		n += m
	}
	return n
}

// quantizeGroupsAsm codes len(sc) whole groups of group elements (a
// multiple of 32), group g under sc[g] and zp[g], into dst (packed two
// codes a byte when bits is 4). The caller checks use.AVX2FMA.
func quantizeGroupsAsm(bits int, dst []byte, x, sc []float32, zp []int32, group int, qmin, qmax int32) {
	if use.AVX512 && group == 32 {
		// Two groups a step of 64; an odd last group goes to AVX2.
		m := len(sc) &^ 1
		e := m * 32
		if bits == 8 {
			quantize8Groups32AVX512(dst[:e], x[:e], sc[:m], zp[:m], qmin, qmax)
		} else {
			quantize4Groups32AVX512(dst[:e/2], x[:e], sc[:m], zp[:m], qmin, qmax)
		}
		dst, x, sc, zp = dst[e*bits/8:], x[e:], sc[m:], zp[m:]
		if len(sc) == 0 {
			return
		}
	}
	wide := use.AVX512 && group%64 == 0
	switch {
	case bits == 8 && wide:
		quantize8GroupsAVX512(dst, x, sc, zp, group, qmin, qmax)
	case bits == 8:
		quantize8GroupsAVX2(dst, x, sc, zp, group, qmin, qmax)
	case wide:
		quantize4GroupsAVX512(dst, x, sc, zp, group, qmin, qmax)
	default:
		quantize4GroupsAVX2(dst, x, sc, zp, group, qmin, qmax)
	}
}
