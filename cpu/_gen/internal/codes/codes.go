// Package codes holds avo pieces the quantize generators share.
package codes

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Masks are the DATA constants Pack32 reads, each a 32-bit pattern
// splatted over a vector: LowBytes 0x00FF, LowNibble 0x000F and
// HighNibble 0x00F0 in every word.
type Masks struct{ LowBytes, LowNibble, HighNibble Mem }

// Pack32 stores 32 int32 codes, q[0..3] eight each in order, to dst as
// bytes (bits 8) or as 4-bit codes two to a byte, the even element in the
// low nibble (bits 4). perm holds the dword order {0, 4, 1, 5, 2, 6, 3, 7}
// that undoes the lane interleaving of the packs. Codes must lie in
// [-128, 255] (8 bits) or [-8, 15] (4 bits).
func Pack32(q [4]VecVirtual, bits int, m Masks, perm VecVirtual, dst Mem) {
	// The words of VPACKSSDW hold the codes exactly.
	a, b := YMM(), YMM()
	VPACKSSDW(q[1], q[0], a)
	VPACKSSDW(q[3], q[2], b)
	if bits == 8 {
		// The low byte of every word, through an unsigned pack.
		VPAND(m.LowBytes, a, a)
		VPAND(m.LowBytes, b, b)
		VPACKUSWB(b, a, a)
		VPERMD(a, perm, a)
		VMOVDQU(a, dst)
		return
	}
	// A signed pack keeps 4-bit codes; then the pair of bytes of each
	// word becomes one byte, the even element in the low nibble.
	VPACKSSWB(b, a, a)
	VPERMD(a, perm, a)
	t := YMM()
	VPSRLW(U8(4), a, t)
	VPAND(m.HighNibble, t, t)
	VPAND(m.LowNibble, a, a)
	VPOR(t, a, a)
	VPACKUSWB(a, a, a)
	VPERMQ(U8(0x08), a, a)
	VMOVDQU(a.AsX(), dst)
}
