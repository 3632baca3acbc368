package plan

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/half"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
)

// memSource is a Source over tensors in memory, with only the methods
// every Source has: Run reads its blocks through Bytes.
type memSource struct {
	infos []safetensors.TensorInfo
	data  map[string][]byte
}

func (m *memSource) add(name, dtype string, shape []int, x []float32) {
	size, _ := safetensors.DTypeSize(dtype)
	b := make([]byte, size*len(x))
	for i, v := range x {
		switch dtype {
		case "F32":
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		case "F64":
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(float64(v)))
		case "F16":
			binary.LittleEndian.PutUint16(b[2*i:], half.Float32ToFloat16(v))
		case "BF16":
			binary.LittleEndian.PutUint16(b[2*i:], half.Float32ToBFloat16(v))
		case "I64":
			binary.LittleEndian.PutUint64(b[8*i:], uint64(int64(v)))
		}
	}
	var begin int64
	if n := len(m.infos); n > 0 {
		begin = m.infos[n-1].End
	}
	m.infos = append(m.infos, safetensors.TensorInfo{Name: name, DType: dtype, Shape: shape, Begin: begin, End: begin + int64(len(b))})
	if m.data == nil {
		m.data = map[string][]byte{}
	}
	m.data[name] = b
}

func (m *memSource) Bytes(name string) ([]byte, error) {
	b, ok := m.data[name]
	if !ok {
		return nil, fmt.Errorf("no tensor %q", name)
	}
	return b, nil
}

func (m *memSource) Float32(name string) ([]float32, error) {
	for _, t := range m.infos {
		if t.Name == name {
			x := make([]float32, t.Len())
			return x, safetensors.DecodeFloat32(x, m.data[name], t.DType)
		}
	}
	return nil, fmt.Errorf("no tensor %q", name)
}

// pieceSink records what Run writes, in pieces, checking that each piece
// continues its tensor.
type pieceSink struct {
	names  []string
	data   [][]byte
	pieces int
}

func (s *pieceSink) WriteTensor(name string, b []byte) error {
	s.names = append(s.names, name)
	s.data = append(s.data, bytes.Clone(b))
	return nil
}

func (s *pieceSink) WriteTensorAt(name string, off int64, b []byte) error {
	s.pieces++
	if n := len(s.names); n > 0 && s.names[n-1] == name {
		if off != int64(len(s.data[n-1])) {
			return fmt.Errorf("%s: piece at %d after %d bytes", name, off, len(s.data[n-1]))
		}
		s.data[n-1] = append(s.data[n-1], b...)
		return nil
	}
	if off != 0 {
		return fmt.Errorf("%s: first piece at %d", name, off)
	}
	return s.WriteTensor(name, b)
}

// wholeRun is what Run wrote before it streamed: every item whole.
func wholeRun(t *testing.T, p *Plan, src Source, opt RunOptions) (names []string, data [][]byte, stats []Stats, err error) {
	t.Helper()
	for k := range p.Items {
		it := &p.Items[k]
		r, err := wholeItem(p, it, src, opt)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("tensor %q: %w", it.Name, err)
		}
		for j, o := range it.Outputs {
			names = append(names, o.Name)
			data = append(data, r.tensors[j])
		}
		r.stats.Item = k
		stats = append(stats, r.stats)
	}
	return names, data, stats, nil
}

// streamSource is a checkpoint-like test input: quantized weights of
// awkward shapes, kept tensors (a norm, an embedding, integers), in dtype.
func streamSource(rnd *rand.Rand, dtype string, pattern int) *memSource {
	src := &memSource{}
	weight := func(name string, shape []int) {
		n := shape[0] * shape[1]
		src.add(name, dtype, shape, adversarial(rnd, n, pattern))
	}
	weight("a.weight", []int{7, 33})
	src.add("a.norm", "F32", []int{33}, adversarial(rnd, 33, 0))
	weight("b.weight", []int{64, 256})
	src.add("ids", "I64", []int{5}, []float32{1, 2, 3, 4, 5})
	weight("c.weight", []int{1, 4096})
	weight("d.weight", []int{0, 64})
	weight("e.weight", []int{130, 64})
	src.add("embed_tokens.weight", dtype, []int{50, 64}, adversarial(rnd, 50*64, 0))
	return src
}

// withBlocks is Plan.Stream's schedule with per rows (elements) a block
// instead, as small as the item allows.
func withBlocks(t *testing.T, p *Plan, workers, per int) *Streaming {
	t.Helper()
	sch, err := p.Stream(p.All(), workers, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	row, _ := lookupFormat(p.Format)
	for i := range sch.per {
		g, err := geometryOf(row, p.Scheme, &p.Items[i])
		if err != nil {
			t.Fatal(err)
		}
		sch.per[i] = max(min(per, g.units()), g.minUnits)
		if g.minUnits == 2 {
			sch.per[i] = (sch.per[i] + 1) &^ 1
		}
		sch.Block = max(sch.Block, int64(sch.per[i])*g.rowBytes+blockSlack)
	}
	return sch
}

// Streamed in blocks of any size, every format writes what the whole
// tensors gave, byte for byte, for every scheme and input dtype, with and
// without NaN and ±Inf (allowed), and measures the same SQNR up to the
// order of the sums.
func TestStreamMatchesWhole(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 3))
	cases := []struct {
		format Format
		scheme string
	}{
		{CompressedTensors, "int8-sym-channel"}, {CompressedTensors, "int8-sym-tensor"}, {CompressedTensors, "int4-sym-group128"},
		{CompressedTensors, "int4-asym-group32"}, {CompressedTensors, "int8-asym-tensor"}, {CompressedTensors, "int4-asym-channel"},
		{CompressedTensors, "int8-asym-channel"}, {CompressedTensors, "int8-asym-group64"}, {CompressedTensorsPacked, "int4-sym-group32"},
		{CompressedTensorsPacked, "int8-sym-channel"}, {CompressedTensorsPacked, "int4-asym-group16"}, {CompressedTensorsPacked, "int4-sym-tensor"},
		{Safetensors, "int8-sym-channel"}, {Safetensors, "int4-sym-group128"}, {Safetensors, "int4-asym-tensor"},
		{Safetensors, "uint8-asym-channel1"}, {Safetensors, "int4-sym-channel1"}, {Safetensors, "uint4-asym-group7"},
		{GGUFQ8_0, ""}, {GGUFQ4_0, ""},
	}
	for _, dtype := range []string{"F32", "BF16", "F16", "F64"} {
		for pattern := range 2 {
			src := streamSource(rnd, dtype, pattern)
			for _, c := range cases {
				var s quant.Scheme
				if c.scheme != "" {
					var err error
					if s, err = quant.ParseScheme(c.scheme); err != nil {
						t.Fatal(err)
					}
				}
				p, err := Build(src.infos, Options{Format: c.format, Scheme: s})
				if err != nil {
					t.Fatal(err)
				}
				opt := RunOptions{AllowNonFinite: pattern > 0, Workers: 3}
				wantNames, want, wantStats, err := wholeRun(t, p, src, opt)
				if err != nil {
					t.Fatal(err)
				}
				kernels := []Kernels{ReferenceKernels{}}
				if s.Symmetric && s.Granularity == quant.PerGroup && c.format != GGUFQ8_0 && c.format != GGUFQ4_0 {
					kernels = append(kernels, fusedKernels{}, fusedKernels{overflow: true})
				}
				for kn, per := range []int{1, 2, 3, 64, 1 << 30} {
					name := fmt.Sprintf("%s %s %s pattern %d, %d rows a block", dtype, c.format, c.scheme, pattern, per)
					row, _ := lookupFormat(p.Format)
					var sink pieceSink
					opt := opt
					opt.Kernels = kernels[kn%len(kernels)]
					name += fmt.Sprintf(", kernels %#v", opt.Kernels)
					stats, err := runStream(context.Background(), p, row, p.All(), src, &sink, opt, withBlocks(t, p, 3, per))
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if !slices.Equal(sink.names, wantNames) {
						t.Fatalf("%s: tensors %v, want %v", name, sink.names, wantNames)
					}
					for i := range want {
						if !bytes.Equal(sink.data[i], want[i]) {
							t.Errorf("%s: %s differs from the whole tensor's", name, wantNames[i])
						}
					}
					for i, st := range stats {
						w := wantStats[i]
						same := sameSQNR(st.SQNR, w.SQNR)
						if _, ok := opt.Kernels.(fusedKernels); ok {
							// Sums in float32 within a group.
							same = st.SQNR == w.SQNR || math.Abs(st.SQNR-w.SQNR) <= 1e-4
						}
						if st.Item != w.Item || st.NonFinite != w.NonFinite || !same {
							t.Errorf("%s: item %d stats %+v, want %+v", name, i, st, w)
						}
					}
				}
			}
		}
	}
}

// A weight with NaN or ±Inf, not allowed, fails naming the tensor and
// the count of the whole tensor, whichever block finds it.
func TestStreamNonFiniteError(t *testing.T) {
	src := &memSource{}
	x := make([]float32, 40*16)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	x[5], x[300], x[639] = float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))
	src.add("w.weight", "F32", []int{40, 16}, x)
	p, err := Build(src.infos, Options{Format: CompressedTensors, Scheme: quant.Int8PerChannel})
	if err != nil {
		t.Fatal(err)
	}
	row, _ := lookupFormat(p.Format)
	_, err = runStream(context.Background(), p, row, p.All(), src, &pieceSink{}, RunOptions{Workers: 2}, withBlocks(t, p, 2, 3))
	if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), `"w.weight"`) || !strings.Contains(err.Error(), " 3 NaN") {
		t.Errorf("error %v", err)
	}
}

// The planned peak stays within the budget for any tensor size, blocks
// are as large as the budget allows (up to the cap), and a budget too
// small for one block is refused, naming the tensor.
func TestStreamBudget(t *testing.T) {
	tensors := []safetensors.TensorInfo{
		{Name: "big.weight", DType: "BF16", Shape: []int{100_000, 16384}, End: 2 * 100_000 * 16384},
		{Name: "embed_tokens.weight", DType: "F32", Shape: []int{128256, 16384}, End: 4 * 128256 * 16384},
		{Name: "odd.weight", DType: "F32", Shape: []int{9, 7}, End: 4 * 63},
	}
	for _, c := range []struct {
		scheme  quant.Scheme
		format  Format
		workers int
		budget  int64
	}{
		{quant.Int8PerChannel, CompressedTensors, 2, 256 << 20},
		{quant.Int4PerGroup128, CompressedTensors, 16, 256 << 20},
		{quant.Int4PerGroup128, Safetensors, 1, 256 << 20},
		{quant.Int8PerTensor, CompressedTensorsPacked, 4, 128 << 20},
		{quant.Scheme{}, GGUFQ4_0, 8, 100 << 20},
	} {
		p, err := Build(tensors, Options{Format: c.format, Scheme: c.scheme})
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("%s %s, %d workers, %d MiB", c.format, c.scheme, c.workers, c.budget>>20)
		sch, err := p.Stream(p.All(), c.workers, c.budget)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		row, _ := lookupFormat(p.Format)
		var block, tail int64
		for i := range p.Items {
			g, _ := geometryOf(row, p.Scheme, &p.Items[i])
			block = max(block, int64(min(sch.per[i], max(g.units(), 1)))*g.rowBytes+blockSlack)
			tail = max(tail, g.tail)
			if in := int64(sch.per[i]) * int64(g.inSize) * int64(max(g.cols, 1)); in > maxBlockBytes && sch.per[i] > g.minUnits {
				t.Errorf("%s: %s: blocks of %d bytes of input, more than %d", name, p.Items[i].Name, in, maxBlockBytes)
			}
		}
		room := (c.budget - ProgramMemory - writerMemory - tail) / block
		inFlight := max(int64(c.workers+1), min(room, maxInFlight))
		peak := ProgramMemory + writerMemory + tail + inFlight*block
		if sch.Peak != peak || peak > c.budget || sch.Block != block || sch.Tail != tail || int64(sch.InFlight) != inFlight {
			t.Errorf("%s: peak %d (block %d, tail %d), want %d (%d, %d) within %d", name, sch.Peak, sch.Block, sch.Tail, peak, block, tail, c.budget)
		}
	}
	p, err := Build(tensors, Options{Format: CompressedTensors, Scheme: quant.Int8PerChannel})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Stream(p.All(), 64, 40<<20); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("40 MiB for 64 workers: %v", err)
	}
}

// sameSQNR reports whether two SQNRs are equal up to the order of their
// sums (or both NaN).
func sameSQNR(a, b float64) bool {
	return a == b || math.IsNaN(a) && math.IsNaN(b) || math.Abs(a-b) <= 1e-9*math.Abs(b)
}

// fusedKernels are ReferenceKernels with a FitQuantizeGroups made of
// package quant's fit and quantizer, its sums in float32 within a group
// (as cpu.QuantKernels' are): through it the streamed path
// must write what the whole tensors gave. With overflow set its sums are
// +Inf, as a scale rounded far below its group's values can make them,
// and the block is measured again.
type fusedKernels struct {
	ReferenceKernels
	overflow bool
}

func (k fusedKernels) FitQuantizeGroups(codes []byte, scales, x []float32, s quant.Scheme, cols int, round func([]float32) error) (sig, noise float64, err error) {
	p, err := quant.FitAbsMax(s, x, []int{len(x) / cols, cols}, k.AbsMax)
	if err != nil {
		return 0, 0, err
	}
	if round != nil {
		if err := round(p.Scales); err != nil {
			return 0, 0, err
		}
	}
	if err := quant.Quantize(codes, x, p); err != nil {
		return 0, 0, err
	}
	copy(scales, p.Scales)
	p.Runs(func(start, end, g int) {
		var sv, sn float32
		for i := start; i < end; i++ {
			d := x[i] - quant.DequantizeValue(quant.Code(codes, s.Bits, s.Signed, i), p.Scales[g], 0)
			sv += x[i] * x[i]
			sn += d * d
		}
		sig += float64(sv)
		noise += float64(sn)
	})
	if k.overflow {
		return math.Inf(1), noise, nil
	}
	return sig, noise, nil
}
