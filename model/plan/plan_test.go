package plan

import (
	"context"
	"errors"
	"math"
	"regexp"
	"sync/atomic"
	"testing"

	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/model/synth"
	"github.com/quantkit/quantkit/quant"
)

func TestBuild(t *testing.T) {
	ts := synth.LlamaLike(1_000_000).Tensors()
	p, err := Build(ts, Options{Format: CompressedTensors, Scheme: quant.Int8PerChannel})
	if err != nil {
		t.Fatal(err)
	}
	if p.Quantized != 56 || len(p.Items) != 75 {
		t.Fatalf("%d of %d quantized", p.Quantized, len(p.Items))
	}
	if ig := p.Ignore(); len(ig) != 1 || ig[0] != "lm_head" {
		t.Errorf("ignore %v", ig)
	}
	// --include replaces the rule, --exclude keeps.
	p2, _ := Build(ts, Options{Format: CompressedTensors, Scheme: quant.Int8PerChannel,
		Include: regexp.MustCompile(`mlp|lm_head`), Exclude: regexp.MustCompile(`down`)})
	if p2.Quantized != 8*2+1 {
		t.Errorf("include/exclude: %d quantized", p2.Quantized)
	}
	if p2.Hash() == p.Hash() {
		t.Error("different plans, same hash")
	}
	// Parts partition the items.
	seen := map[int]bool{}
	for i := range 3 {
		for _, k := range p.Part(i, 3) {
			if seen[k] || k%3 != i {
				t.Errorf("item %d in part %d", k, i)
			}
			seen[k] = true
		}
	}
	if len(seen) != len(p.Items) {
		t.Errorf("parts cover %d of %d items", len(seen), len(p.Items))
	}
	// GGUF keeps rows that are not whole blocks.
	g, _ := Build([]safetensors.TensorInfo{{Name: "a.weight", DType: "F32", Shape: []int{4, 40}, End: 640}}, Options{Format: GGUFQ8_0})
	if g.Items[0].Action != Keep || g.Items[0].Outputs[0].DType != "F32" {
		t.Errorf("gguf 40-wide row: %+v", g.Items[0])
	}
	if _, err := Build(ts, Options{Format: "fp8"}); err == nil {
		t.Error("unknown format accepted")
	}
}

// Ordered emits in order and never has more than workers+1 items in flight.
func TestOrdered(t *testing.T) {
	for _, workers := range []int{1, 3, 8} {
		var inFlight, peak atomic.Int32
		next := 0
		err := Ordered(context.Background(), 100, workers, func(i int) (int, error) {
			n := inFlight.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			return i * i, nil
		}, func(i, r int) error {
			inFlight.Add(-1)
			if i != next || r != i*i {
				t.Fatalf("emitted %d (%d), want %d", i, r, next)
			}
			next++
			return nil
		})
		if err != nil || next != 100 {
			t.Fatalf("workers %d: %v after %d", workers, err, next)
		}
		if p := peak.Load(); int(p) > workers+1 {
			t.Errorf("workers %d: %d in flight", workers, p)
		}
	}
	boom := errors.New("boom")
	err := Ordered(context.Background(), 50, 4, func(i int) (int, error) {
		if i == 7 {
			return 0, boom
		}
		return i, nil
	}, func(i, r int) error { return nil })
	if !errors.Is(err, boom) {
		t.Errorf("error: %v", err)
	}
}

func TestSanitize(t *testing.T) {
	x := []float32{1, -3, float32(nan()), float32(inf(1)), float32(inf(-1))}
	if n := wholeSanitize(x, true); n != 3 || x[2] != 0 || x[3] != 3 || x[4] != -3 {
		t.Errorf("sanitize: %d %v", n, x)
	}
}

func nan() float64      { return math.NaN() }
func inf(s int) float64 { return math.Inf(s) }
