package ggufmix

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/model/gguf"
)

// golden is one testdata/*.golden file: a model shape and the types
// llama.cpp's own code chose for it (see testdata/mixref).
type golden struct {
	model    Model
	tensors  []Tensor
	keep     map[string]bool
	sections []goldenSection
}

type goldenSection struct {
	mix   Mix
	pure  bool
	base  gguf.Type
	types map[string]gguf.Type // the tensors not of the base type
}

func readGolden(t *testing.T, path string) *golden {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g := &golden{keep: map[string]bool{}}
	atoi := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return n
	}
	parseType := func(s string) gguf.Type {
		typ, ok := gguf.ParseType(s)
		if !ok {
			t.Fatalf("%s: type %q", path, s)
		}
		return typ
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		switch {
		case len(w) == 6 && w[0] == "model":
			g.model = Model{Arch: w[1], Layers: atoi(w[2]), Heads: atoi(w[3]), HeadsKV: atoi(w[4]), Experts: atoi(w[5])}
		case len(w) == 6 && w[0] == "tensor":
			g.tensors = append(g.tensors, Tensor{Name: w[1], Type: gguf.TypeF32, Dims: []int{atoi(w[2]), atoi(w[3]), atoi(w[4]), atoi(w[5])}})
		case len(w) == 2 && w[0] == "keep":
			g.keep[w[1]] = true
		case len(w) >= 2 && strings.HasPrefix(w[0], "["):
			name := strings.Trim(w[0], "[]")
			m, err := ParseMix(name)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			pure := len(w) == 3 && w[1] == "pure]"
			g.sections = append(g.sections, goldenSection{mix: m, pure: pure, base: parseType(w[len(w)-1]), types: map[string]gguf.Type{}})
		case len(w) == 2 && len(g.sections) > 0:
			g.sections[len(g.sections)-1].types[w[0]] = parseType(w[1])
		default:
			t.Fatalf("%s: line %q", path, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(g.tensors) == 0 || len(g.sections) != 2*len(Mixes()) {
		t.Fatalf("%s: %d tensors, %d sections", path, len(g.tensors), len(g.sections))
	}
	return g
}

// TestLlamaCppTypes compares Choose with the types llama.cpp's code chose
// for each model shape of testdata, each mix, plain and pure.
func TestLlamaCppTypes(t *testing.T) {
	paths, _ := filepath.Glob("testdata/*.golden")
	if len(paths) < 6 {
		t.Fatalf("golden files: %v", paths)
	}
	for _, path := range paths {
		g := readGolden(t, path)
		for _, sec := range g.sections {
			if sec.base != sec.mix.Base() {
				t.Errorf("%s: %v: base type %v, llama.cpp's %v", path, sec.mix, sec.mix.Base(), sec.base)
			}
			got, err := Choose(sec.mix, g.tensors, g.model, sec.pure)
			if err != nil {
				t.Errorf("%s: %v pure %v: %v", path, sec.mix, sec.pure, err)
				continue
			}
			for i, tn := range g.tensors {
				c := got[i]
				want, quantized := sec.base, !g.keep[tn.Name]
				if w, ok := sec.types[tn.Name]; ok {
					want = w
				}
				if !quantized {
					want = tn.Type
				}
				if c.Type != want || c.Quantized != quantized || c.Reason == "" {
					t.Errorf("%s: %v pure %v: %s %v: %v quantized %v (%s), llama.cpp: %v quantized %v",
						path, sec.mix, sec.pure, tn.Name, tn.Dims, c.Type, c.Quantized, c.Reason, want, quantized)
				}
			}
		}
	}
}

// llama7B is Llama 2 7B's tensors, in the order convert_hf_to_gguf.py
// writes them.
func llama7B() ([]Tensor, Model) {
	ts := []Tensor{{"token_embd.weight", gguf.TypeF16, []int{4096, 32000}}}
	for i := range 32 {
		p := "blk." + strconv.Itoa(i) + "."
		ts = append(ts,
			Tensor{p + "attn_q.weight", gguf.TypeF16, []int{4096, 4096}},
			Tensor{p + "attn_k.weight", gguf.TypeF16, []int{4096, 4096}},
			Tensor{p + "attn_v.weight", gguf.TypeF16, []int{4096, 4096}},
			Tensor{p + "attn_output.weight", gguf.TypeF16, []int{4096, 4096}},
			Tensor{p + "ffn_gate.weight", gguf.TypeF16, []int{4096, 11008}},
			Tensor{p + "ffn_up.weight", gguf.TypeF16, []int{4096, 11008}},
			Tensor{p + "ffn_down.weight", gguf.TypeF16, []int{11008, 4096}},
			Tensor{p + "attn_norm.weight", gguf.TypeF32, []int{4096}},
			Tensor{p + "ffn_norm.weight", gguf.TypeF32, []int{4096}})
	}
	ts = append(ts, Tensor{"output_norm.weight", gguf.TypeF32, []int{4096}}, Tensor{"output.weight", gguf.TypeF16, []int{4096, 32000}})
	return ts, Model{Arch: "llama", Layers: 32, Heads: 32, HeadsKV: 32}
}

// TestLlama7BRules transcribes llama.cpp's rules for a 32-layer Llama by
// hand, as a reader checks them against llama-quant.cpp.
func TestLlama7BRules(t *testing.T) {
	ts, model := llama7B()
	// use_more_bits(i, 32): i < 4, i >= 28, or (i-4)%3 == 2.
	moreBits := map[int]bool{0: true, 1: true, 2: true, 3: true, 6: true, 9: true, 12: true, 15: true, 18: true, 21: true, 24: true, 27: true, 28: true, 29: true, 30: true, 31: true}
	for _, tc := range []struct {
		mix  Mix
		pure bool
		want func(name string, layer int) gguf.Type
	}{
		{Q4_K_M, false, func(name string, l int) gguf.Type {
			switch {
			case name == "output.weight":
				return gguf.TypeQ6_K
			case (strings.HasSuffix(name, "attn_v.weight") || strings.HasSuffix(name, "ffn_down.weight")) && moreBits[l]:
				return gguf.TypeQ6_K
			}
			return gguf.TypeQ4_K
		}},
		{Q5_K_M, false, func(name string, l int) gguf.Type {
			switch {
			case name == "output.weight":
				return gguf.TypeQ6_K
			case (strings.HasSuffix(name, "attn_v.weight") || strings.HasSuffix(name, "ffn_down.weight")) && moreBits[l]:
				return gguf.TypeQ6_K
			}
			return gguf.TypeQ5_K
		}},
		{Q4_K_S, false, func(name string, l int) gguf.Type {
			switch {
			case name == "output.weight":
				return gguf.TypeQ6_K
			case strings.HasSuffix(name, "attn_v.weight") && l < 4, strings.HasSuffix(name, "ffn_down.weight") && l < 4:
				return gguf.TypeQ5_K
			}
			return gguf.TypeQ4_K
		}},
		{Q5_K_S, false, func(name string, l int) gguf.Type {
			if name == "output.weight" {
				return gguf.TypeQ6_K
			}
			return gguf.TypeQ5_K
		}},
		{Q6_K, false, func(string, int) gguf.Type { return gguf.TypeQ6_K }},
		{Q8_0, false, func(string, int) gguf.Type { return gguf.TypeQ8_0 }},
		{Q4_0, false, func(name string, l int) gguf.Type {
			if name == "output.weight" {
				return gguf.TypeQ6_K
			}
			return gguf.TypeQ4_0
		}},
		{Q4_K_M, true, func(string, int) gguf.Type { return gguf.TypeQ4_K }},
		{Q4_0, true, func(string, int) gguf.Type { return gguf.TypeQ4_0 }},
		{F16, false, func(string, int) gguf.Type { return gguf.TypeF16 }},
		{F32, false, func(string, int) gguf.Type { return gguf.TypeF32 }},
	} {
		got, err := Choose(tc.mix, ts, model, tc.pure)
		if err != nil {
			t.Fatal(err)
		}
		for i, tn := range ts {
			want := tn.Type // norms stay F32
			if len(tn.Dims) == 2 {
				l, _ := blockLayer(tn.Name)
				want = tc.want(tn.Name, l)
			}
			if got[i].Type != want || got[i].Fallback {
				t.Errorf("%v pure %v: %s: %v (%s), want %v", tc.mix, tc.pure, tn.Name, got[i].Type, got[i].Reason, want)
			}
		}
	}
}

// TestStories260K checks the types of testdata/llm/stories260K, whose FFN
// of 172 no block size divides, against what llama.cpp does with it.
func TestStories260K(t *testing.T) {
	f, err := gguf.Open("../../testdata/llm/stories260K/stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	model, err := ModelFromMetadata(f.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	if model != (Model{Arch: "llama", Layers: 5, Heads: 8, HeadsKV: 4}) {
		t.Fatalf("model %+v", model)
	}
	var ts []Tensor
	for _, ti := range f.Tensors() {
		ts = append(ts, Tensor{ti.Name, ti.Type, ti.Dims})
	}
	for _, tc := range []struct {
		mix  Mix
		want map[string]gguf.Type // by name without the "blk.N." prefix; layer-dependent ones as NAME@N
	}{
		// Q8_0 blocks of 32 do not divide 172: ffn_down falls back to F16,
		// not refused.
		{Q8_0, map[string]gguf.Type{"ffn_down.weight": gguf.TypeF16, "*": gguf.TypeQ8_0}},
		// output.weight gets Q6_K, whose 256 does not divide 64: Q8_0.
		{Q4_0, map[string]gguf.Type{"output.weight": gguf.TypeQ8_0, "ffn_down.weight": gguf.TypeF16, "*": gguf.TypeQ4_0}},
		// Q4_K falls back to Q5_0 (64 columns); attn_v in use_more_bits
		// layers 2 and 4 of 5 gets Q6_K, falling back to Q8_0.
		{Q4_K_M, map[string]gguf.Type{"output.weight": gguf.TypeQ8_0, "ffn_down.weight": gguf.TypeF16,
			"attn_v.weight@2": gguf.TypeQ8_0, "attn_v.weight@4": gguf.TypeQ8_0, "*": gguf.TypeQ5_0}},
		{Q6_K, map[string]gguf.Type{"ffn_down.weight": gguf.TypeF16, "*": gguf.TypeQ8_0}},
	} {
		got, err := Choose(tc.mix, ts, model, false)
		if err != nil {
			t.Fatal(err)
		}
		for i, tn := range ts {
			want := gguf.TypeF32
			if len(tn.Dims) == 2 {
				short := tn.Name
				l, inBlock := blockLayer(tn.Name)
				if inBlock {
					short = strings.SplitN(tn.Name, ".", 3)[2]
				}
				var ok bool
				if want, ok = tc.want[short+"@"+strconv.Itoa(l)]; !ok || !inBlock {
					if want, ok = tc.want[short]; !ok {
						want = tc.want["*"]
					}
				}
			}
			if got[i].Type != want {
				t.Errorf("%v: %s: %v (%s), want %v", tc.mix, tn.Name, got[i].Type, got[i].Reason, want)
			}
			if got[i].Type == gguf.TypeF16 && !strings.Contains(got[i].Reason, "172 columns") {
				t.Errorf("%v: %s: reason %q does not name the 172 columns", tc.mix, tn.Name, got[i].Reason)
			}
		}
	}
}

func TestReasons(t *testing.T) {
	ts, model := llama7B()
	got, err := Choose(Q4_K_M, ts, model, false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"output.weight":          "Q6_K: output.weight in every mix but Q8_0",
		"blk.2.attn_v.weight":    "Q6_K: attn_v 2 of 32, a use_more_bits layer, in Q4_K_M",
		"blk.5.attn_v.weight":    "Q4_K: the mix's type",
		"blk.31.ffn_down.weight": "Q6_K: ffn_down in layer 31 of 32, a use_more_bits layer, in Q4_K_M",
		"blk.0.attn_norm.weight": "1-D: kept as F32",
	}
	for i, tn := range ts {
		if w, ok := want[tn.Name]; ok && got[i].Reason != w {
			t.Errorf("%s: reason %q, want %q", tn.Name, got[i].Reason, w)
		}
	}
	fb, err := Choose(Q4_K_M, []Tensor{{"blk.0.ffn_down.weight", gguf.TypeF32, []int{172, 64}}}, Model{Arch: "llama", Layers: 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	if w := "Q6_K: ffn_down in layer 0 of 1, a use_more_bits layer, in Q4_K_M; 172 columns, a multiple of neither Q6_K's 256 nor Q8_0's 32: fell back to F16"; fb[0].Reason != w || !fb[0].Fallback {
		t.Errorf("fallback reason %q, want %q", fb[0].Reason, w)
	}
}

// TestOrder checks llama-quantize's order: tensors outside blocks first,
// then by layer number (not as text), then by name.
func TestOrder(t *testing.T) {
	names := []string{"token_embd.weight", "blk.10.attn_q.weight", "blk.2.ffn_up.weight", "blk.2.attn_q.weight", "output.weight", "blk.x.weight", "blk.-1.a"}
	var got []string
	for _, i := range Order(names) {
		got = append(got, names[i])
	}
	want := "blk.-1.a blk.x.weight output.weight token_embd.weight blk.2.attn_q.weight blk.2.ffn_up.weight blk.10.attn_q.weight"
	if strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
}

func TestParseMix(t *testing.T) {
	for name, want := range map[string]Mix{"q4_k_m": Q4_K_M, "Q4_K": Q4_K_M, "q3_k": Q3_K_M, "Q3_K_S": Q3_K_S, "Q3_K_L": Q3_K_L, "Q2_K": Q2_K, "Q5_K": Q5_K_M, "q8_0": Q8_0, "F16": F16, "bf16": BF16, "F32": F32} {
		if m, err := ParseMix(name); err != nil || m != want {
			t.Errorf("ParseMix(%q) = %v, %v; want %v", name, m, err, want)
		}
	}
	if _, err := ParseMix("Q2_K_S"); err == nil || !strings.Contains(err.Error(), "Q4_K_M") || !strings.Contains(err.Error(), "Q3_K_L") {
		t.Errorf("ParseMix(Q2_K_S): %v", err)
	}
	for _, m := range Mixes() {
		if m2, err := ParseMix(m.String()); err != nil || m2 != m {
			t.Errorf("%v does not parse back: %v %v", m, m2, err)
		}
	}
	if Q4_K_M.FileType() != 15 || Q8_0.FileType() != 7 || Q4_0.FileType() != 2 || BF16.FileType() != 32 || Q2_K.FileType() != 10 || Q3_K_S.FileType() != 11 || Q3_K_M.FileType() != 12 || Q3_K_L.FileType() != 13 {
		t.Error("file types are not llama_ftype's")
	}
}

func TestChooseErrors(t *testing.T) {
	ts := []Tensor{{"blk.0.ffn_down_exps.weight", gguf.TypeF32, []int{256, 256, 8}}}
	if _, err := Choose(Q4_K_M, ts, Model{Arch: "llama"}, false); err == nil {
		t.Error("a model without layers was accepted")
	}
	if _, err := Choose(Mix(99), ts, Model{Arch: "llama", Layers: 1}, false); err == nil {
		t.Error("mix 99 was accepted")
	}
	bad := []Tensor{{"ffn_down_exps.weight", gguf.TypeF32, []int{256, 256, 8}}}
	if _, err := Choose(Q4_K_M, bad, Model{Arch: "llama", Layers: 1, Experts: 8}, false); err == nil || !strings.Contains(err.Error(), "ffn_down_exps.weight") {
		t.Errorf("an expert tensor without a layer: %v", err)
	}
	over := []Tensor{{"blk.3.ffn_down_exps.weight", gguf.TypeF32, []int{256, 256, 8}}}
	if _, err := Choose(Q4_K_M, over, Model{Arch: "llama", Layers: 2, Experts: 8}, false); err == nil || !strings.Contains(err.Error(), "bad layer 3") {
		t.Errorf("an expert tensor past the last layer: %v", err)
	}
}

// TestImatrixFFNDown: with an importance matrix the Q4_0 and Q5_0 mixes
// give ffn_down of the first 1/8 of the layers (4 of Llama 2 7B's 32)
// Q4_1 and Q5_1, as llama.cpp's llama_tensor_get_type; without one they
// do not, and other mixes do not change.
func TestImatrixFFNDown(t *testing.T) {
	ts, m := llama7B()
	for _, c := range []struct {
		mix        Mix
		imatrix    bool
		first, low gguf.Type
	}{
		{Q4_0, true, gguf.TypeQ4_1, gguf.TypeQ4_0},
		{Q5_0, true, gguf.TypeQ5_1, gguf.TypeQ5_0},
		{Q4_0, false, gguf.TypeQ4_0, gguf.TypeQ4_0},
		{Q8_0, true, gguf.TypeQ8_0, gguf.TypeQ8_0},
	} {
		mm := m
		mm.Imatrix = c.imatrix
		choices, err := Choose(c.mix, ts, mm, false)
		if err != nil {
			t.Fatal(err)
		}
		for i, ch := range choices {
			name := ts[i].Name
			if !strings.HasSuffix(name, "ffn_down.weight") {
				continue
			}
			l, _ := strconv.Atoi(strings.Split(name, ".")[1])
			want := c.low
			if l < 4 {
				want = c.first
			}
			if ch.Type != want {
				t.Errorf("%v, imatrix %v: %s is %v, want %v (%s)", c.mix, c.imatrix, name, ch.Type, want, ch.Reason)
			}
		}
	}
}
