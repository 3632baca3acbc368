package lmbench

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/lm"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/quant"
)

// Precisions are the precisions a float Hugging Face checkpoint is run at,
// in the order the report lists them.
var Precisions = []string{"fp32", "bf16", "w8a16", "w4a16", "w8a8"}

// DefaultGroupSize is the w4a16 group size.
const DefaultGroupSize = 128

// input is one model argument, probed without reading its weights.
type input struct {
	Path   string
	Format string // "hf", "gguf" or "llama2.c"
	// Label says what an already quantized (or otherwise fixed) input
	// holds; "" for a float Hugging Face checkpoint, which runs at every
	// precision.
	Label string
	// Holds are the precisions a fixed input can be run as (for a
	// quantized int8 per-channel checkpoint: w8a16 as it is, and w8a8).
	Holds   []string
	Context int // 0 when the file does not say
	Vocab   int
}

// float reports whether in is a float Hugging Face checkpoint, which runs
// at every precision.
func (in *input) float() bool { return in.Label == "" }

// probeInput finds what path is: its format, whether it is quantized and
// how, its context length and vocabulary. It reads headers only.
func probeInput(path string) (*input, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, inputerr.Mark(err)
	}
	in := &input{Path: path}
	switch {
	case st.IsDir():
		in.Format = "hf"
		c, context, err := lm.ReadHFConfig(path)
		if err != nil {
			return nil, inputerr.Mark(err)
		}
		in.Context, in.Vocab = context, c.Vocab
		ck, err := checkpoint.Open(path)
		if err != nil {
			return nil, inputerr.Mark(err)
		}
		defer ck.Close()
		var s quant.Scheme
		cc, ok, err := ctensors.ReadConfig(ck.Config())
		if err != nil {
			return nil, inputerr.Mark(fmt.Errorf("%s: %w", path, err))
		}
		if ok {
			s = cc.Scheme
		} else if s, _, ok, err = plan.ReadRawMetadata(ck.Metadata()); err != nil {
			return nil, inputerr.Mark(fmt.Errorf("%s: %w", path, err))
		}
		if ok {
			in.Label, in.Holds = schemeLabel(s)
		}
	case strings.EqualFold(filepath.Ext(path), ".gguf"):
		in.Format = "gguf"
		f, err := gguf.Open(path)
		if err != nil {
			return nil, inputerr.Mark(err)
		}
		defer f.Close()
		arch, _ := f.String("general.architecture")
		n, _ := f.Int(arch + ".context_length")
		in.Context = int(n)
		if emb, ok := f.Tensor("token_embd.weight"); ok && len(emb.Dims) == 2 {
			in.Vocab = emb.Dims[1]
		}
		t := ggufType(f.Tensors())
		in.Label = "gguf " + t.String()
		switch t {
		case gguf.TypeF32:
			in.Holds = []string{"fp32"}
		case gguf.TypeBF16:
			in.Holds = []string{"bf16"}
		}
	case strings.EqualFold(filepath.Ext(path), ".bin"):
		in.Format, in.Label, in.Holds = "llama2.c", "fp32 (llama2.c)", []string{"fp32"}
		f, err := os.Open(path)
		if err != nil {
			return nil, inputerr.Mark(err)
		}
		defer f.Close()
		var hd [7]int32 // dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
		if err := binary.Read(f, binary.LittleEndian, &hd); err != nil {
			return nil, inputerr.Mark(fmt.Errorf("%s: llama2.c header: %w", path, err))
		}
		in.Vocab, in.Context = int(max(hd[5], -hd[5])), int(max(hd[6], 0))
	default:
		return nil, inputerr.Mark(fmt.Errorf("%s: unknown model format: want a Hugging Face folder, a .gguf file or a llama2.c .bin checkpoint", path))
	}
	return in, nil
}

// schemeLabel names what a checkpoint quantized with s holds and the
// precisions it runs as.
func schemeLabel(s quant.Scheme) (string, []string) {
	switch {
	case s.Bits == 8 && s.Signed && s.Symmetric && s.Granularity == quant.PerChannel && s.Axis == 0:
		return "int8 per channel", []string{"w8a16", "w8a8"}
	case s.Bits == 4 && s.Signed && s.Symmetric && s.Granularity == quant.PerGroup:
		return fmt.Sprintf("int4 group %d", s.GroupSize), []string{"w4a16"}
	}
	return s.String(), nil
}

// ggufType is the block type most of a GGUF file's layer matrices have
// (its "Q4_0" beside a Q6_K output, say).
func ggufType(ts []gguf.TensorInfo) gguf.Type {
	count := map[gguf.Type]int{}
	for _, t := range ts {
		if strings.HasPrefix(t.Name, "blk.") && len(t.Dims) == 2 {
			count[t.Type]++
		}
	}
	types := make([]gguf.Type, 0, len(count))
	for t := range count {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool {
		if count[types[i]] != count[types[j]] {
			return count[types[i]] > count[types[j]]
		}
		return types[i] < types[j]
	})
	if len(types) == 0 {
		return gguf.TypeF32
	}
	return types[0]
}

// precisionCase is one precision of one input: a row of the report.
type precisionCase struct {
	in *input
	// Precision is one of Precisions.
	Precision string
	// Label says what runs: "w4a16 (int4 group 128)", "gguf Q4_0".
	Label string
}

// cases lists what Run measures of in: every precision of want (nil:
// Precisions) for a float checkpoint; a fixed input as it is, or as each
// precision of want it holds, refusing it when it holds none.
func cases(in *input, want []string, group int, head bool) ([]precisionCase, error) {
	if in.float() {
		if want == nil {
			want = Precisions
		}
		var cs []precisionCase
		for _, p := range want {
			l := floatLabel(p, group)
			if head && strings.HasPrefix(p, "w") {
				l = strings.TrimSuffix(l, ")") + ", lm_head too)"
			}
			cs = append(cs, precisionCase{in: in, Precision: p, Label: l})
		}
		return cs, nil
	}
	if want == nil {
		p := ""
		if len(in.Holds) > 0 {
			p = in.Holds[0]
		}
		return []precisionCase{{in: in, Precision: p, Label: fixedLabel(in, p, head)}}, nil
	}
	var cs []precisionCase
	for _, p := range want {
		if slices.Contains(in.Holds, p) {
			cs = append(cs, precisionCase{in: in, Precision: p, Label: fixedLabel(in, p, head)})
		}
	}
	if len(cs) == 0 {
		runs := "only as it is"
		if len(in.Holds) > 0 {
			runs = "as " + strings.Join(in.Holds, " or ")
		}
		return nil, inputerr.Mark(fmt.Errorf("%s: holds %s and runs %s: none of --precisions %s applies (precisions are made from float Hugging Face checkpoints; leave --precisions out to run it as it is)",
			in.Path, in.Label, runs, strings.Join(want, ",")))
	}
	return cs, nil
}

func floatLabel(p string, group int) string {
	switch p {
	case "w8a16":
		return "w8a16 (int8 per channel)"
	case "w4a16":
		return fmt.Sprintf("w4a16 (int4 group %d)", group)
	case "w8a8":
		return "w8a8 (int8 per channel and token)"
	}
	return p
}

// fixedLabel labels a quantized input run as precision p (or as it is),
// its float lm_head quantized at load (int8 per channel) when head.
func fixedLabel(in *input, p string, head bool) string {
	l := in.Label
	if in.Format == "hf" && p != "" {
		l = fmt.Sprintf("%s (%s)", in.Label, p)
	}
	if in.Format == "hf" && head {
		l += ", lm_head int8"
	}
	return l
}

// loadOptions are the lm.LoadOptions of precision p of a float Hugging
// Face checkpoint (group: the w4a16 group size), or of a quantized one
// (float false) as it is or as W8A8.
func loadOptions(p string, group int, float bool) (lm.LoadOptions, error) {
	if !float {
		return lm.LoadOptions{Int8: p == "w8a8"}, nil
	}
	int8 := quant.Int8PerChannel
	int4 := quant.Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: quant.PerGroup, GroupSize: group}
	switch p {
	case "fp32":
		return lm.LoadOptions{Float32: true}, nil
	case "bf16":
		return lm.LoadOptions{BF16: true}, nil
	case "w8a16":
		return lm.LoadOptions{Quantize: &int8}, nil
	case "w4a16":
		return lm.LoadOptions{Quantize: &int4}, nil
	case "w8a8":
		return lm.LoadOptions{Quantize: &int8, Int8: true}, nil
	}
	return lm.LoadOptions{}, inputerr.Mark(fmt.Errorf("unknown precision %q (want some of %s)", p, strings.Join(Precisions, ",")))
}
