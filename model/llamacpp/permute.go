package llamacpp

import "fmt"

// QKRow is the row of a Hugging Face q_proj/k_proj weight (or bias) that
// row r of llama.cpp's attn_q/attn_k holds, for a tensor of rows rows in
// heads heads: convert_hf_to_gguf.py's LlamaModel.permute, which reshapes
// the rows to [heads, 2, rows/heads/2] and swaps the last two axes. Within
// a head of d = rows/heads rows, Hugging Face keeps the rotary pairs in
// the rotate-half layout (row i pairs with row i+d/2) and llama.cpp in the
// interleaved one (row 2i pairs with row 2i+1):
//
//	gguf row h·d + 2i + j  =  hf row h·d + j·d/2 + i    (j = 0, 1; i < d/2)
//
// rows must be a multiple of 2·heads (CheckQK).
func QKRow(r, rows, heads int) int {
	d := rows / heads
	h, k := r/d, r%d
	return h*d + (k%2)*(d/2) + k/2
}

// CheckQK reports whether a q or k projection of rows rows can be split
// into heads heads of an even number of rows each, as the permutation
// needs.
func CheckQK(rows, heads int) error {
	if heads < 1 || rows%heads != 0 || (rows/heads)%2 != 0 {
		return fmt.Errorf("%d rows do not split into %d heads of an even number of rows", rows, heads)
	}
	return nil
}

// PermuteQK writes to dst the rows of src, a row-major [rows, len/rows]
// tensor, in llama.cpp's order: dst row r is src row QKRow(r, rows,
// heads). It only moves whole rows, so it is exact; PermuteQKBytes does the
// same to encoded rows. dst and src must not overlap.
func PermuteQK(dst, src []float32, rows, heads int) {
	permuteRows(dst, src, rows, heads, false)
}

// UnpermuteQK is the inverse of PermuteQK: it takes a llama.cpp attn_q or
// attn_k back to Hugging Face's order.
func UnpermuteQK(dst, src []float32, rows, heads int) {
	permuteRows(dst, src, rows, heads, true)
}

// PermuteQKBytes is PermuteQK on raw rows of any encoding (F16, BF16, a
// block type whose rows are whole blocks): the data is rows rows of
// len(src)/rows bytes each.
func PermuteQKBytes(dst, src []byte, rows, heads int) {
	permuteRows(dst, src, rows, heads, false)
}

// UnpermuteQKBytes is UnpermuteQK on raw rows of any encoding, as
// PermuteQKBytes is PermuteQK.
func UnpermuteQKBytes(dst, src []byte, rows, heads int) {
	permuteRows(dst, src, rows, heads, true)
}

func permuteRows[T any](dst, src []T, rows, heads int, inverse bool) {
	if err := CheckQK(rows, heads); err != nil {
		panic("llamacpp: " + err.Error())
	}
	if len(src) != len(dst) || len(src)%rows != 0 {
		panic(fmt.Sprintf("llamacpp: permuting %d rows of %d elements into %d", rows, len(src), len(dst)))
	}
	cols := len(src) / rows
	for r := range rows {
		s := QKRow(r, rows, heads)
		if inverse {
			copy(dst[s*cols:(s+1)*cols], src[r*cols:(r+1)*cols])
		} else {
			copy(dst[r*cols:(r+1)*cols], src[s*cols:(s+1)*cols])
		}
	}
}
