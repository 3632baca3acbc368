//go:build cuda

package cublas

import (
	"strings"
	"testing"
)

// TestLoad opens the libraries this machine has (no GPU needed: only the
// loader and the symbols are checked) and a name no machine has.
func TestLoad(t *testing.T) {
	if _, _, err := open([]string{"libquantkit-missing.so.99"}); !strings.Contains(err, "libquantkit-missing.so.99") {
		t.Errorf("opening a missing library: error %q does not name it", err)
	}
	l := Load()
	if l != Load() {
		t.Error("Load loaded twice")
	}
	if l.Note != "" && !strings.Contains(l.Note, "not found (tried ") && !strings.Contains(l.Note, "lacks") {
		t.Errorf("Note = %q", l.Note)
	}
	if !l.HasCublas() && !l.HasLt() {
		t.Skipf("neither library on this machine: %s", l.Note)
	}
	t.Logf("loaded %s, %s; note %q", l.Library(Kinds[0]), l.Library(Kinds[len(Kinds)-1]), l.Note)
	for _, v := range []string{l.CublasVersion, l.CublasLtVersion} {
		if v != "" && (strings.HasPrefix(v, "0.") || strings.Count(v, ".") != 2) {
			t.Errorf("version %q", v)
		}
	}
	for _, k := range Kinds {
		if l.Has(k) != (k.Lt() && l.HasLt() || !k.Lt() && l.HasCublas()) {
			t.Errorf("%s: Has = %v", k.Name, l.Has(k))
		}
	}
}

// A cuBLAS that is nowhere: a note naming what was tried, cuBLASLt still
// loaded where it is, and the kinds of the missing library unavailable.
func TestLoadMissing(t *testing.T) {
	saved := CublasNames
	defer func() { CublasNames = saved }()
	CublasNames = []string{"libquantkit-missing.so.1"}
	t.Setenv("QUANTKIT_CUBLAS_PATH", "/nonexistent")
	l := load()
	if l.HasCublas() || !strings.Contains(l.Note, "cuBLAS not found (tried libquantkit-missing.so.1, also in /nonexistent, ") {
		t.Errorf("HasCublas %v, note %q", l.HasCublas(), l.Note)
	}
	sg, _ := KindNamed("cublas-sgemm")
	if l.Has(sg) {
		t.Error("SGEMM available without cuBLAS")
	}
	if _, err := (&Handle{lib: l}).Prepare(sg, 4, 4, 4); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Prepare without cuBLAS: %v", err)
	}
}
