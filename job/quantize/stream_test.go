package quantize

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/model/ggufmix"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/model/synth"
)

// wideModel writes a checkpoint whose MLP weights are 8 MiB of BF16
// (4096 × 1024) and embeddings 16 MiB of BF16, in two shards.
func wideModel(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "wide")
	cfg := synth.Config{Layers: 1, Hidden: 1024, Intermediate: 4096, Heads: 8, KVHeads: 4, Vocab: 8192, DType: "BF16", Seed: 5}
	if _, err := synth.Write(dir, cfg, synth.Options{ShardSize: 20 << 20}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sameTree fails the test unless directories a and b hold the same files
// with the same bytes.
func sameTree(t *testing.T, what, a, b string) {
	t.Helper()
	ents, err := os.ReadDir(a)
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadDir(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(other) {
		t.Fatalf("%s: %d files, want %d", what, len(other), len(ents))
	}
	for _, e := range ents {
		x, err1 := os.ReadFile(filepath.Join(a, e.Name()))
		y, err2 := os.ReadFile(filepath.Join(b, e.Name()))
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			t.Errorf("%s: %s differs (%v, %v)", what, e.Name(), err1, err2)
		}
	}
}

// A run within a small budget streams each weight in blocks of a few
// rows and writes, byte for byte, what a run in the largest blocks
// writes, for every format (plan's tests compare blocks of every size
// with whole tensors); the planned peak stays within the budget.
func TestRunWithinBudget(t *testing.T) {
	in := wideModel(t)
	const small = plan.ProgramMemory + 4<<20
	for _, c := range []struct {
		format plan.Format
		scheme string
	}{
		{plan.CompressedTensors, "int8-sym-channel"}, {plan.CompressedTensors, "int4-sym-group128"},
		{plan.CompressedTensorsPacked, "int4-asym-group32"}, {plan.Safetensors, "int8-asym-tensor"},
		{plan.GGUFQ8_0, ""},
	} {
		opt := Options{Input: in, Plan: plan.Options{Format: c.format}, Workers: 2}
		if c.scheme != "" {
			opt.Plan.Scheme = scheme(t, c.scheme)
		}
		what := string(c.format) + " " + c.scheme
		dir := t.TempDir()
		whole, streamed := filepath.Join(dir, "whole"), filepath.Join(dir, "streamed")
		if plan.IsGGUF(c.format) {
			whole, streamed = whole+".gguf", streamed+".gguf"
		}
		opt.Output, opt.MaxMemory = whole, 1<<40
		big := mustRun(t, opt)
		opt.Output, opt.MaxMemory = streamed, small
		rep := mustRun(t, opt)
		if rep.MemoryEstimate > small || rep.MaxMemory != small || rep.Stream == nil || rep.MemoryEstimate != rep.Stream.Peak {
			t.Errorf("%s: planned peak %d of a %d budget (%+v)", what, rep.MemoryEstimate, small, rep.Stream)
		}
		// A row of an MLP weight is 1024 values, 12 KiB in flight (BF16
		// read, float32 twice, codes, encoding): the small budget's
		// blocks are a few dozen rows, the large one's 256 KiB of input.
		if 2*rep.Stream.Block > big.Stream.Block || big.Stream.Block < 1<<20 {
			t.Errorf("%s: blocks of %d bytes within the budget, %d without", what, rep.Stream.Block, big.Stream.Block)
		}
		if plan.IsGGUF(c.format) {
			x, err1 := os.ReadFile(whole)
			y, err2 := os.ReadFile(streamed)
			if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
				t.Errorf("%s: the files differ (%v, %v)", what, err1, err2)
			}
		} else {
			sameTree(t, what, whole, streamed)
		}
		for i, tn := range rep.Tensors {
			a, b := tn.SQNR, big.Tensors[i].SQNR
			if (a == nil) != (b == nil) || a != nil && !(*a == *b || (*a-*b)*(*a-*b) < 1e-18*(*b)*(*b)) {
				t.Errorf("%s: %s: SQNR %v, in large blocks %v", what, tn.Name, a, b)
			}
		}
	}
}

// A budget too small for a block of some tensor is refused before
// anything is written, naming the tensor and the least that would do.
func TestRunBudgetTooSmall(t *testing.T) {
	in := wideModel(t)
	out := filepath.Join(t.TempDir(), "q")
	opt := Options{Input: in, Output: out, Plan: plan.Options{Format: plan.CompressedTensors, Scheme: scheme(t, "int8-sym-channel")},
		Workers: 2, MaxMemory: plan.ProgramMemory}
	for _, run := range []func() error{
		func() error { _, err := DryRun(opt); return err },
		func() error { _, err := Run(t.Context(), opt); return err },
	} {
		err := run()
		if err == nil || !inputerr.Is(err) || !strings.Contains(err.Error(), "too small") || !strings.Contains(err.Error(), "give at least") {
			t.Errorf("error %v", err)
		}
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s written: %v", out, err)
	}
}

// --max-memory sizes the GGUF job's blocks: the plan stays within it, and
// a budget too small for a row per block in flight is refused.
func TestGGUFBudget(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in.gguf")
	synthLlama(t, in)
	opt := GGUFOptions{Input: in, Output: filepath.Join(t.TempDir(), "o.gguf"), Mix: ggufmix.Q8_0, Workers: 2}
	rep, err := PlanGGUF(opt)
	if err != nil {
		t.Fatal(err)
	}
	if rep.MaxMemory != plan.DefaultMaxMemory || rep.MemoryEstimate != plan.ProgramMemory+2<<20+4*ggufElemBytes*ggufChunkElems {
		t.Errorf("default: max %d, estimate %d", rep.MaxMemory, rep.MemoryEstimate)
	}
	opt.MaxMemory = plan.ProgramMemory + 3<<20
	if rep, err = PlanGGUF(opt); err != nil || rep.MemoryEstimate > opt.MaxMemory || rep.MemoryEstimate < plan.ProgramMemory+2<<20+4*ggufElemBytes*512 {
		t.Errorf("%d budget: %v, estimate %d", opt.MaxMemory, err, rep.MemoryEstimate)
	}
	opt.MaxMemory = plan.ProgramMemory + 2<<20 + 1000
	if _, err := PlanGGUF(opt); err == nil || !inputerr.Is(err) || !strings.Contains(err.Error(), "too small") {
		t.Errorf("a budget too small: %v", err)
	}
}
