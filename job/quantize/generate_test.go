package quantize

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/model/synth"
)

// Generate writes what synth.Write writes, claimed and committed as Run's
// output, and reports the files as they are on disk.
func TestGenerate(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "g")
	cfg := synth.LlamaLike(1_000_000)
	cfg.Seed = 3
	var last, total int64
	rep, err := Generate(context.Background(), GenerateOptions{Output: out, Config: cfg, ShardSize: 1_000_000,
		Progress: func(written, all int64) { last, total = written, all }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Dir != out || rep.Config != cfg || rep.Tensors != len(cfg.Tensors()) || rep.Params != cfg.Params() || rep.Bytes != 4*cfg.Params() ||
		rep.Seconds <= 0 || rep.Rate <= 0 {
		t.Errorf("report %+v", rep)
	}
	if last != rep.Bytes || total != rep.Bytes {
		t.Errorf("progress ended at %d of %d, want %d of %d", last, total, rep.Bytes, rep.Bytes)
	}
	var sum int64
	for _, f := range rep.Files {
		fi, err := os.Stat(filepath.Join(out, f.Name))
		if err != nil || fi.Size() != f.Bytes {
			t.Errorf("%s: %v, size %d reported", f.Name, err, f.Bytes)
		}
		sum += f.Bytes
	}
	if got := entries(t, out); len(got) != len(rep.Files) || len(rep.Files) < 4 {
		t.Errorf("%s holds %v, the report %v", out, got, rep.Files)
	}
	if sum <= rep.Bytes {
		t.Errorf("files of %d bytes hold %d of tensor data", sum, rep.Bytes)
	}
	if got := entries(t, root); len(got) != 1 {
		t.Errorf("%s holds %v, want the output alone", root, got)
	}
	// The same bytes as synth.Write's, read back through the index.
	ref := filepath.Join(t.TempDir(), "ref")
	if _, err := synth.Write(ref, cfg, synth.Options{}); err != nil {
		t.Fatal(err)
	}
	a, b := openCk(t, out), openCk(t, ref)
	for _, ti := range b.Tensors() {
		x, err1 := a.Bytes(ti.Name)
		y, err2 := b.Bytes(ti.Name)
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			t.Fatalf("%s differs from synth.Write's: %v %v", ti.Name, err1, err2)
		}
	}

	// An existing output needs Force; then it is replaced.
	if _, err := Generate(context.Background(), GenerateOptions{Output: out, Config: cfg}); err == nil || !errors.Is(err, inputerr.ErrInput) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("existing output: %v", err)
	}
	if rep, err := Generate(context.Background(), GenerateOptions{Output: out, Config: cfg, Force: true}); err != nil || len(rep.Files) != 4 {
		t.Errorf("--force: %v %+v", err, rep)
	}
	if got := entries(t, out); len(got) != 4 {
		t.Errorf("after Force %s holds %v", out, got)
	}

	// Refusals before any work, and a cancelled run, leave nothing.
	dir := t.TempDir()
	bad := cfg
	bad.DType = "F8"
	ctx, cancel := context.WithCancel(context.Background())
	for _, tc := range []struct {
		ctx  context.Context
		opt  GenerateOptions
		want error
	}{
		{context.Background(), GenerateOptions{Output: filepath.Join(dir, "x"), Config: bad}, inputerr.ErrInput},
		{context.Background(), GenerateOptions{Output: filepath.Join(dir, "x"), Config: cfg, ShardSize: -1}, inputerr.ErrInput},
		{ctx, GenerateOptions{Output: filepath.Join(dir, "x"), Config: cfg, Progress: func(int64, int64) { cancel() }}, context.Canceled},
	} {
		if _, err := Generate(tc.ctx, tc.opt); !errors.Is(err, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.opt, err, tc.want)
		}
		if got := entries(t, dir); len(got) != 0 {
			t.Errorf("%+v left %v", tc.opt, got)
		}
	}
}
