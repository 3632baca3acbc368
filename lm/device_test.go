package lm

import (
	"math"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
)

// counting is the cpu backend counting the copies between host and
// device.
type counting struct {
	*cpu.Backend
	uploads, downloads int
}

func (c *counting) Upload(dst backend.Buffer, src any) error {
	c.uploads++
	return c.Backend.Upload(dst, src)
}

func (c *counting) Download(dst any, src backend.Buffer) error {
	c.downloads++
	return c.Backend.Download(dst, src)
}

// TestForwardStaysOnDevice checks that a forward pass moves nothing
// between host and backend but the logits (the token ids and positions go
// in as the host arguments of Embed and RoPE), over prompts that grow the
// cache, and that ForwardLast gives Forward's last row and Greedy's
// tokens.
func TestForwardStaysOnDevice(t *testing.T) {
	b := &counting{Backend: cpu.New()}
	m, err := LoadHF(b, stories+"hf")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tokens := make([]int, 40)
	for i := range tokens {
		tokens[i] = (i*131 + 1) % m.Config.Vocab
	}
	all, err := m.Forward(m.NewCache(), tokens)
	if err != nil {
		t.Fatal(err)
	}
	V := m.Config.Vocab
	c := m.NewCache()
	defer c.Close()
	for i, id := range tokens { // the cache grows from 16 positions to 32 and 64
		b.uploads, b.downloads = 0, 0
		l, err := m.ForwardLast(c, []int{id})
		if err != nil {
			t.Fatal(err)
		}
		if b.uploads != 0 || b.downloads != 1 {
			t.Fatalf("token %d: %d uploads and %d downloads, want 0 and 1", i, b.uploads, b.downloads)
		}
		worst := 0.0
		for j, v := range l {
			worst = math.Max(worst, math.Abs(float64(v-all[i*V+j])))
		}
		if worst > 1e-4 {
			t.Errorf("token %d through the cache: logits differ from the whole prompt's by %g", i, worst)
		}
	}
	if c.Len() != len(tokens) {
		t.Errorf("cache holds %d positions, want %d", c.Len(), len(tokens))
	}
	last, err := m.ForwardLast(m.NewCache(), tokens)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != V {
		t.Fatalf("ForwardLast gave %d logits, want %d", len(last), V)
	}
	for j, v := range last {
		if d := math.Abs(float64(v - all[(len(tokens)-1)*V+j])); d > 1e-5 {
			t.Fatalf("ForwardLast logit %d is %g, Forward's %g", j, v, all[(len(tokens)-1)*V+j])
		}
	}
	c.Truncate(3)
	l3, err := m.Forward(c, tokens[3:4])
	if err != nil {
		t.Fatal(err)
	}
	for j, v := range l3 {
		if d := math.Abs(float64(v - all[3*V+j])); d > 1e-4 {
			t.Fatalf("after Truncate(3), logit %d is %g, want %g", j, v, all[3*V+j])
		}
	}
}
