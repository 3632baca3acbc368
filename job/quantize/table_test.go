package quantize

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/model/synth"
)

var errFull = errors.New("full")

// failingWriter takes n bytes, fails once, then takes everything: an
// error in the middle of a table must not be lost to the writes after it.
type failingWriter struct {
	n      int
	failed bool
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if !f.failed && len(p) > f.n {
		f.failed = true
		return f.n, errFull
	}
	f.n -= len(p)
	return len(p), nil
}

// The tables people read, line for line: what they show of each field.
func TestWriteTable(t *testing.T) {
	db := 38.71
	rep := &Report{Input: "in", Output: "out", Format: plan.CompressedTensors, Scheme: "int4-sym-group128", Device: "cpu", Workers: 4,
		Tensors: []Tensor{
			{Item: plan.Item{Name: "model.layers.0.mlp.up_proj.weight", Action: plan.Quantize, Scheme: "int4-sym-group128", BytesIn: 4_000_000, BytesOut: 531_250}, SQNR: &db, NonFinite: 3},
			{Item: plan.Item{Name: "lm_head.weight", Action: plan.Keep, Reason: "lm_head", BytesIn: 2048, BytesOut: 2048}},
		},
		Totals:         Totals{Tensors: 2, Quantized: 1, Kept: 1, BytesIn: 4_002_048, BytesOut: 533_298, Ratio: 0.1333},
		MemoryEstimate: 40_000_000, MaxMemory: 256 << 20, Seconds: 1.5, GBPerSecond: 0.00267,
		Stream: &plan.Streaming{Workers: 4, InFlight: 5, MaxMemory: 256 << 20, Block: 1_500_000, Tail: 100_000, Peak: 40_000_000},
		SQNR:   &SQNRSummary{MinDB: 38.71, MeanDB: 38.71, Worst: []TensorSQNR{{"model.layers.0.mlp.up_proj.weight", 38.71}}}}
	dry := *rep
	dry.DryRun, dry.Device, dry.SQNR = true, "", nil
	bench := &BenchReport{Input: "ck", Params: 1_016_896, Tensors: 75, BytesIn: 4_067_584, LargestTensor: 262_144, Device: "cpu", Workers: 2, Rounds: 3,
		Rows: []BenchRow{
			{Scheme: "int8-sym-channel", Format: "compressed-tensors", BytesOut: 1_200_000, BaselineMedian: 0.5, QuantizeMedian: 0.25, SpeedVsBaseline: 2, QuantizeGBps: 16.27, QuantizePeakRSS: 3_000_000, RSSOverLargest: 11.44},
			{Scheme: "int4-sym-group128", Format: "compressed-tensors", BytesOut: 700_000, BaselineMedian: 0.4, QuantizeMedian: 1.6, SpeedVsBaseline: 0.25, QuantizeGBps: 2.54, QuantizePeakRSS: 12_500_000, RSSOverLargest: 47.68},
		}}
	gen := &GenerateReport{Dir: "g", Config: synth.Config{Layers: 2, Hidden: 64, Intermediate: 256, Heads: 4, KVHeads: 2, Vocab: 1024, DType: "BF16", Seed: 3},
		Files: []GeneratedFile{{"model-00001-of-00002.safetensors", 1_500_000}, {"model-00002-of-00002.safetensors", 540_000},
			{"model.safetensors.index.json", 6100}, {"config.json", 612}},
		Tensors: 75, Params: 1016896, Bytes: 2 * 1016896, Rate: 3_290_000, Elapsed: 1234567 * time.Microsecond}
	for _, tc := range []struct {
		name string
		r    interface{ WriteTable(io.Writer) error }
		want string
	}{
		{"summary", rep, `in → out (compressed-tensors, int4-sym-group128) on cpu, 4 workers
size: 4 MB → 533 kB (ratio 0.133), 1 tensors quantized, 1 kept
time: 1.50 s, 0.003 GB/s
SQNR: min 38.7 dB, mean 38.7 dB; worst:
  model.layers.0.mlp.up_proj.weight                  38.7 dB
kept unquantized (1):
  lm_head.weight: lm_head
non-finite values (--allow-nonfinite):
  model.layers.0.mlp.up_proj.weight: 3 NaN/Inf values quantized as 0 / saturated
`},
		{"plan", &dry, `tensor                             action    scheme / reason    bytes in → out
model.layers.0.mlp.up_proj.weight  quantize  int4-sym-group128  4 MB → 531 kB
lm_head.weight                     keep      lm_head            2.05 kB → 2.05 kB

in → out (compressed-tensors, int4-sym-group128): 2 tensors, 1 quantized, 1 kept; 4 MB → 533 kB (ratio 0.133)
memory: at most about 40 MB of the 268 MB budget with 4 workers (5 blocks of rows in flight, up to 1.5 MB each, 100 kB for the scales of the tensor being written)
dry run: nothing written
`},
		{"dequantize", &DequantizeReport{Input: "q", Output: "d", Tensors: 75, Dequantized: map[string]int{"F32": 2, "BF16": 54}}, `q → d: 75 tensors, dequantized 54 BF16, 2 F32
`},
		{"merge", &MergeReport{Output: "m", PlanHash: "abc123", Format: plan.Safetensors, Parts: []string{"p/part-0-of-2", "p/part-1-of-2"}, Tensors: 131}, `merged 2 parts of plan abc123 (safetensors from p/part-0-of-2) into m: 131 tensors
`},
		{"generate", gen, `wrote g in 1.235s (3.29 MB/s)
  llama-like: 2 layers, hidden 64, intermediate 256, 4 heads (2 kv), vocab 1024, BF16, seed 3
  75 tensors, 1.02M parameters (1016896), 2.03 MB of tensor data
  model-00001-of-00002.safetensors  1.5 MB
  model-00002-of-00002.safetensors  540 kB
  model.safetensors.index.json      6.1 kB
  config.json                       612 B
`},
		{"bench", bench, `input: ck (1.02M params, 75 tensors, 4.07 MB; largest tensor 262 kB)
device cpu, 2 workers, medians of 3 interleaved rounds

             scheme              format  output  read+write  quantize  speed vs read+write  GB/s in  peak RSS  ÷ largest tensor
   int8-sym-channel  compressed-tensors  1.2 MB      0.50 s    0.25 s                2.00×    16.27      3 MB             11.44
  int4-sym-group128  compressed-tensors  700 kB      0.40 s    1.60 s                0.25×     2.54   12.5 MB             47.68
`},
	} {
		var b strings.Builder
		if err := tc.r.WriteTable(&b); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("%s table:\n%s\nwant:\n%s", tc.name, b.String(), tc.want)
		}
		for n := range len(tc.want) {
			if err := tc.r.WriteTable(&failingWriter{n: n}); !errors.Is(err, errFull) {
				t.Errorf("%s table on a writer that fails after %d bytes: error %v", tc.name, n, err)
				break
			}
		}
	}
}
