//go:build integration

package gguf

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestK23GoldenFromGGML recomputes k23Golden from llama.cpp's own output
// and wants the committed digests (printing them, for a new llama.cpp
// release).
func TestK23GoldenFromGGML(t *testing.T) {
	ref := refQuantizer(t)
	x := k23GoldenRows()
	for _, c := range k23Types {
		sum := sha256.Sum256(ref.quantize(c.typ, QK_K, x))
		got := hex.EncodeToString(sum[:])
		t.Logf("Type%v: %q,", c.typ, got)
		if k23Golden[c.typ] != got {
			t.Errorf("%v: ggml's digest is %s, k23Golden has %q", c.typ, got, k23Golden[c.typ])
		}
	}
}
