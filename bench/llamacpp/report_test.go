package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{9, 9, 1, 2, 9}, 9},
	} {
		in := append([]float64(nil), c.in...)
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Fatalf("median reordered its argument: %v", c.in)
			}
		}
	}
}

func TestRatesAndAgreement(t *testing.T) {
	r := rates([]int64{2e9, 0, 5e8}, 100)
	if len(r) != 2 || r[0] != 50 || r[1] != 200 {
		t.Errorf("rates = %v, want [50 200] (a zero time skipped)", r)
	}
	for _, c := range []struct {
		a, b     []int
		same, of int
	}{
		{[]int{1, 2, 3}, []int{1, 2, 3}, 3, 3},
		{[]int{1, 2, 3}, []int{1, 5, 3}, 1, 3}, // after a difference nothing counts
		{[]int{7}, []int{8}, 0, 1},
		{[]int{1, 2, 3, 4}, []int{1, 2}, 2, 2},
		{nil, []int{1}, 0, 0},
	} {
		if s, o := agreement(c.a, c.b); s != c.same || o != c.of {
			t.Errorf("agreement(%v, %v) = %d/%d, want %d/%d", c.a, c.b, s, o, c.same, c.of)
		}
	}
}

func TestPromptRoundTrip(t *testing.T) {
	p := makePrompt(300, 1000, 1, 7)
	if p[0] != 1 {
		t.Errorf("prompt starts with %d, want BOS 1", p[0])
	}
	for i, id := range p[1:] {
		if id < 3 || id >= 1000 {
			t.Fatalf("token %d is %d, outside [3, 1000)", i+1, id)
		}
	}
	q := makePrompt(300, 1000, 1, 7)
	distinct := map[int]bool{}
	for i := range p {
		if p[i] != q[i] {
			t.Fatalf("two prompts of the same seed differ at %d", i)
		}
		distinct[p[i]] = true
	}
	if len(distinct) < 200 {
		t.Errorf("%d distinct ids in 300: not random", len(distinct))
	}
	path := filepath.Join(t.TempDir(), "p.txt")
	if err := writePrompt(path, p); err != nil {
		t.Fatal(err)
	}
	got, err := readPrompt(path, 250, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != p[i] {
			t.Fatalf("read back %d at %d, wrote %d", got[i], i, p[i])
		}
	}
	if _, err := readPrompt(path, 301, 1000); err == nil || !strings.Contains(err.Error(), "300 token ids") {
		t.Errorf("reading 301 of 300 ids: err = %v", err)
	}
	if _, err := readPrompt(path, 300, 500); err == nil || !strings.Contains(err.Error(), "[0, 500)") {
		t.Errorf("ids past a smaller vocabulary: err = %v", err)
	}
}

func TestTable(t *testing.T) {
	// llama.cpp: prefill 100 tokens in 1 s, 2 s, 4 s (median 50 t/s);
	// quantkit: 0.5 s, 0.25 s, 1 s (median 200 t/s): 4×. Decode 10
	// tokens in 1 s against 2 s: 0.5×.
	l := []sample{
		{PrefillNS: []int64{1e9}, DecodeNS: []int64{1e9}, Tokens: []int{5, 6, 7, 8}, MaxRSS: 100 << 20},
		{PrefillNS: []int64{2e9}, DecodeNS: []int64{1e9}, MaxRSS: 300 << 20},
		{PrefillNS: []int64{4e9}, DecodeNS: []int64{1e9}, MaxRSS: 200 << 20},
	}
	q := []sample{
		{PrefillNS: []int64{5e8}, DecodeNS: []int64{2e9}, Tokens: []int{5, 6, 9, 8}, MaxRSS: 50 << 20},
		{PrefillNS: []int64{25e7}, DecodeNS: []int64{2e9}, MaxRSS: 60 << 20},
		{PrefillNS: []int64{1e9}, DecodeNS: []int64{2e9}, MaxRSS: 40 << 20},
	}
	var b strings.Builder
	rows := []row{{"Q8_0", "GGUF file", l, q}, {"F32", "GGUF file", nil, nil}}
	writeTable(&b, rows, 100, 10, median)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("table has %d lines, want 4:\n%s", len(lines), b.String())
	}
	if !strings.Contains(lines[0], "llama.cpp pp100 t/s") || !strings.Contains(lines[0], "quantkit tg10 t/s") {
		t.Errorf("header %q does not name the lengths", lines[0])
	}
	want := "| Q8_0 | GGUF file | 50.0 | 200 | 4.00× | 10.0 | 5.0 | 0.50× | 300 | 60 | 2/4 |"
	if lines[2] != want {
		t.Errorf("row\n%s\nwant\n%s", lines[2], want)
	}
	if want := "| F32 | GGUF file | – | – | – | – | – | – | – | – | – |"; lines[3] != want {
		t.Errorf("empty row\n%s\nwant\n%s", lines[3], want)
	}
	// The fastest rounds: llama.cpp 100 t/s, quantkit 400 t/s.
	b.Reset()
	writeTable(&b, rows, 100, 10, best)
	if want := "| Q8_0 | GGUF file | 100 | 400 | 4.00× | 10.0 | 5.0 | 0.50× | 300 | 60 | 2/4 |"; !strings.Contains(b.String(), want) {
		t.Errorf("best table\n%s\nlacks\n%s", b.String(), want)
	}
}

func TestPlans(t *testing.T) {
	o := options{precisions: "q4_0, F32,q8_0", checkpoints: true}
	ps, err := o.plans("/w")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		for _, v := range p.variants {
			got = append(got, p.precision+" "+filepath.Base(p.gguf)+" "+v.load+" "+v.path)
		}
	}
	want := []string{
		"Q4_0 Q4_0.gguf gguf /w/Q4_0.gguf", "Q4_0 Q4_0.gguf hf /w/int4",
		"F32 F32.gguf gguf /w/F32.gguf",
		"Q8_0 Q8_0.gguf gguf /w/Q8_0.gguf", "Q8_0 Q8_0.gguf hf /w/int8", "Q8_0 Q8_0.gguf hf-w8a8 /w/int8",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plans:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	o.checkpoints = false
	if ps, _ = o.plans("/w"); len(ps[0].variants) != 1 || len(ps[2].variants) != 1 {
		t.Errorf("-checkpoints=false still runs checkpoints: %+v", ps)
	}
	if _, err := (options{precisions: "q8_0,q5_k"}).plans("/w"); err == nil || !strings.Contains(err.Error(), "q5_k") {
		t.Errorf("an unknown precision: err = %v", err)
	}
}

func TestRunJSON(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	s, err := runJSON(exec.Command("sh", "-c", `echo '{"prefill_ns":[7],"decode_ns":[9],"tokens":[1,2],"model_desc":"llama F32"}'`), "fake")
	if err != nil {
		t.Fatal(err)
	}
	if s.PrefillNS[0] != 7 || s.DecodeNS[0] != 9 || len(s.Tokens) != 2 || s.ModelDesc != "llama F32" || s.MaxRSS <= 0 {
		t.Errorf("sample %+v", s)
	}
	for _, c := range []struct{ script, want string }{
		{`echo '{"prefill_ns":[],"decode_ns":[1]}'`, "no timings"},
		{`echo not json`, "not a sample"},
		{`exit 3`, "exit status 3"},
	} {
		if _, err := runJSON(exec.Command("sh", "-c", c.script), "fake"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.script, err, c.want)
		}
	}
}
