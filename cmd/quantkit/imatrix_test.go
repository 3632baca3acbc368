package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/imatrix"
)

// imatrixText is calibration text for stories260K: 2000-odd tokens.
var imatrixText = strings.Repeat("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "+
	"One day, she saw a big red ball under a tree. She ran to the ball and picked it up. ", 20)

// TestImatrixCommand runs quantkit imatrix on stories260K.gguf in both
// formats, then checks that quantize --format gguf --calib writes the
// tensors that quantize --imatrix writes with the command's file (same
// text, same chunks), records the dataset and no file, and differs from
// the quantization without an importance matrix.
func TestImatrixCommand(t *testing.T) {
	dir := t.TempDir()
	in := "../../testdata/llm/stories260K/stories260K.gguf"
	text := filepath.Join(dir, "calib.txt")
	os.WriteFile(text, []byte(imatrixText), 0o666)
	m := filepath.Join(dir, "m.gguf")
	out := mustRun(t, "imatrix", in, "--calib", text, "-c", "64", "--chunks", "8", "-o", m)
	if !strings.Contains(out, "35 entries") || !strings.Contains(out, "8 chunks of 64 tokens = 512 tokens") {
		t.Errorf("report:\n%s", out)
	}
	f, err := imatrix.Read(m)
	if err != nil || f.ChunkCount != 8 || f.ChunkSize != 64 || len(f.Entries) != 35 || f.Entries[0].Counts[0] != 512 {
		t.Fatalf("%s: %v, %+v", m, err, f)
	}
	dat := filepath.Join(dir, "m.dat")
	mustRun(t, "imatrix", in, "--calib", text, "-c", "64", "--chunks", "8", "-o", dat)
	g, err := imatrix.Read(dat)
	if err != nil || !g.Legacy || len(g.Entries) != 35 {
		t.Fatalf("%s: %v, %+v", dat, err, g)
	}
	for _, e := range f.Entries {
		a, _ := f.Importance(e.Name)
		b, _ := g.Importance(e.Name)
		for j := range a {
			if d := a[j] - b[j]; d > 1e-6*a[j] || -d > 1e-6*a[j] {
				t.Fatalf("%s[%d]: importance %g in GGUF, %g in .dat", e.Name, j, a[j], b[j])
			}
		}
	}

	withFile, withCalib, without := filepath.Join(dir, "a.gguf"), filepath.Join(dir, "b.gguf"), filepath.Join(dir, "c.gguf")
	mustRun(t, "quantize", in, "--format", "gguf", "--type", "Q4_0", "--imatrix", m, "-o", withFile)
	mustRun(t, "quantize", in, "--format", "gguf", "--type", "Q4_0", "--calib", text, "--calib-ctx", "64", "--calib-chunks", "8", "-o", withCalib)
	mustRun(t, "quantize", in, "--format", "gguf", "--type", "Q4_0", "-o", without)
	a, b, c := openGGUF(t, withFile), openGGUF(t, withCalib), openGGUF(t, without)
	differ := 0
	for _, ti := range a.Tensors() {
		x, _ := a.Bytes(ti.Name)
		y, err := b.Bytes(ti.Name)
		if err != nil || !bytes.Equal(x, y) {
			t.Errorf("%s: --calib's bytes differ from --imatrix's (%v)", ti.Name, err)
		}
		if z, _ := c.Bytes(ti.Name); !bytes.Equal(x, z) {
			differ++
		}
	}
	if differ == 0 {
		t.Error("the importance matrix changed no tensor")
	}
	if ds, _ := b.String("quantize.imatrix.dataset"); ds != text {
		t.Errorf("quantize.imatrix.dataset %q, want %q", ds, text)
	}
	if _, ok := b.Value("quantize.imatrix.file"); ok {
		t.Error("--calib recorded a quantize.imatrix.file")
	}
	if n, _ := b.Uint32("quantize.imatrix.chunks_count"); n != 8 {
		t.Errorf("quantize.imatrix.chunks_count %d, want 8", n)
	}

	// Windows: --calib-samples/--calib-len/--seed select as imatrix's do.
	wm, wq, wc := filepath.Join(dir, "w.gguf"), filepath.Join(dir, "wq.gguf"), filepath.Join(dir, "wc.gguf")
	mustRun(t, "imatrix", in, "--calib", text, "--calib-samples", "4", "--calib-len", "48", "--seed", "2", "-o", wm)
	mustRun(t, "quantize", in, "--format", "gguf", "--type", "Q4_0", "--imatrix", wm, "-o", wq)
	mustRun(t, "quantize", in, "--format", "gguf", "--type", "Q4_0", "--calib", text, "--calib-samples", "4", "--calib-len", "48", "--seed", "2", "-o", wc)
	p, q := openGGUF(t, wq), openGGUF(t, wc)
	same := 0
	for _, ti := range p.Tensors() {
		x, _ := p.Bytes(ti.Name)
		y, err := q.Bytes(ti.Name)
		if err != nil || !bytes.Equal(x, y) {
			t.Errorf("%s: windows: --calib's bytes differ from --imatrix's (%v)", ti.Name, err)
		}
		if z, _ := a.Bytes(ti.Name); bytes.Equal(y, z) {
			same++
		}
	}
	if same == len(p.Tensors()) {
		t.Error("windows and chunks gave the same tensors: the selection flags were ignored")
	}
	if n, _ := q.Uint32("quantize.imatrix.chunks_count"); n != 4 {
		t.Errorf("windows: quantize.imatrix.chunks_count %d, want 4", n)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"imatrix", in, "-o", filepath.Join(dir, "x.gguf")}, "calib"},
		{[]string{"imatrix", in, "--calib", text, "-o", m}, "exists"},
		{[]string{"imatrix", in, "--calib", text, "--calib-samples", "4", "-c", "64", "-o", filepath.Join(dir, "y.gguf")}, "--ctx cuts"},
		{[]string{"imatrix", in, "--calib", text, "-c", "4096", "-o", filepath.Join(dir, "y.gguf")}, "fewer than the 8192"},
		{[]string{"imatrix", in, "--calib", text, "--format", "bin", "-o", filepath.Join(dir, "y.gguf")}, "want gguf or dat"},
		{[]string{"quantize", in, "--format", "gguf", "--type", "Q4_0", "--calib", text, "--imatrix", m, "-o", filepath.Join(dir, "y.gguf")}, "give one"},
		{[]string{"quantize", in, "--format", "gguf", "--type", "Q4_0", "--calib", text, "--seed", "3", "--calib-ctx", "64", "-o", filepath.Join(dir, "y.gguf")}, "--calib-ctx cuts"},
		{[]string{"quantize", in, "--format", "gguf", "--type", "Q4_0", "--calib", text, "--calib-samples", "0", "-o", filepath.Join(dir, "y.gguf")}, "must be positive"},
		{[]string{"quantize", in, "--format", "gguf", "--type", "Q4_0", "--calib-ctx", "64", "-o", filepath.Join(dir, "y.gguf")}, "applies with --calib"},
		{[]string{"quantize", in, "--scheme", "int4", "--method", "gptq", "--calib", text, "--calib-ctx", "64", "-o", filepath.Join(dir, "y")}, "--calib-ctx does not apply"},
		{[]string{"quantize", in, "--format", "gguf", "--type", "Q4_0", "--calib-len", "64", "-o", filepath.Join(dir, "y.gguf")}, "applies with --calib"},
	} {
		out, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error()+out, tc.want) {
			t.Errorf("%v: %v\n%s\nwant an error saying %q", tc.args, err, out, tc.want)
		}
	}
}

func openGGUF(t *testing.T, path string) *gguf.File {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
