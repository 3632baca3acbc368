package plan

import (
	"fmt"
	"math"

	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
)

// DefaultMaxMemory is the memory budget of a run unless told otherwise
// (RunOptions.MaxMemory): enough for blocks of several MiB on every core,
// little next to the checkpoints worth streaming.
const DefaultMaxMemory = 256 << 20

// ProgramMemory is what a budget sets aside for the program itself
// (code, runtime, goroutines, the plan and its small allocations) before
// it is divided among the blocks in flight: a run on a 1M-parameter
// checkpoint peaks at about 34 MB RSS.
const ProgramMemory = 40 << 20

// writerMemory is the buffers of the output writers: a 1 MiB buffered
// writer over the file being written, and one more over a GGUF file.
const writerMemory = 2 << 20

// maxBlockBytes caps the input bytes of one block however large the
// budget, so that the workers take turns at a tensor rather than wait for
// the largest. On 2 shared cores 2–8 MiB ran alike; blocks of 256 KiB
// took two to three times the system time on a checkpoint with rows of
// 8 KiB.
const maxBlockBytes = 4 << 20

// maxInFlight caps the blocks in flight a large budget allows.
const maxInFlight = 8

// blockSlack is what a block's buffers lose to alignment: each of the
// five starts 8-byte aligned in the block's one allocation.
const blockSlack = 64

// minKeptBlock is the smallest block of a kept tensor, in elements.
const minKeptBlock = 4096

// Streaming is how Run streams a plan's items within a memory budget:
// each item in blocks of rows (of elements, for a kept tensor), so that
// memory is bounded by the budget, not by the largest tensor. At most
// InFlight blocks are in flight, each holding its rows as float32 (read
// and dequantized), its raw bytes when they are not F32, its codes and
// their encoding; besides them, the item being written holds the encoded
// scales and zero points of its blocks so far (its scale tensors follow
// its codes in the file): 2 to 8 bytes a parameter, a fraction of the
// tensor (1/64 of a BF16 weight at int4 group-128), which Tail counts.
type Streaming struct {
	Workers   int   `json:"workers"`
	MaxMemory int64 `json:"max_memory"`
	// InFlight is the most blocks in flight: Workers+1, or more when the
	// budget holds more (up to 8).
	InFlight int `json:"in_flight"`
	// Block is the most memory one block in flight holds, Tail the most
	// an item's parameters and scale tensors hold while it is written.
	Block int64 `json:"block_bytes"`
	Tail  int64 `json:"tail_bytes"`
	// Peak is the memory planned for: ProgramMemory, the writers'
	// buffers, Tail and InFlight blocks. It is at most MaxMemory.
	Peak int64 `json:"peak_bytes"`
	// per is, for each item given (in order), its rows per block, or its
	// elements per block for a kept item.
	per []int
}

// geometry is what streaming needs to know of one item.
type geometry struct {
	quantized  bool
	rows, cols int // a quantized item's shape
	elems      int // a kept item's elements
	inSize     int // bytes of an input element
	convert    bool
	// rowBytes is the memory of one row (element, for a kept item) of a
	// block in flight; minUnits the fewest a block holds (2 rows of odd
	// length at 4 bits, so that the codes of a block fill whole bytes).
	rowBytes int64
	minUnits int
	tail     int64
}

// geometryOf works out item it's geometry under format row and scheme s.
func geometryOf(row *format, s quant.Scheme, it *Item) (geometry, error) {
	size, ok := safetensors.DTypeSize(it.DType)
	if !ok {
		return geometry{}, fmt.Errorf("tensor %q: dtype %q not supported", it.Name, it.DType)
	}
	g := geometry{inSize: size, minUnits: 1}
	if it.Action != Quantize {
		n, err := quant.NumElements(it.Shape)
		if err != nil {
			return geometry{}, fmt.Errorf("tensor %q: %w", it.Name, err)
		}
		g.elems = n
		g.convert = it.Outputs[0].Bytes != it.BytesIn
		g.rowBytes = int64(size)
		if g.convert { // raw, float32, and their float32 encoding
			g.rowBytes += 8
		}
		g.minUnits = min(max(n, 1), minKeptBlock)
		return g, nil
	}
	g.quantized = true
	g.rows, g.cols = it.Shape[0], it.Shape[1]
	cols := int64(g.cols)
	g.rowBytes = 8 * cols // the row as float32, read and dequantized
	if it.DType != "F32" {
		g.rowBytes += int64(size) * cols
	}
	if row.isGGUF {
		rs, err := row.gguf.RowSize(cols)
		if err != nil {
			return geometry{}, fmt.Errorf("tensor %q: %w", it.Name, err)
		}
		g.rowBytes += rs
		return g, nil
	}
	g.rowBytes += (cols*int64(s.Bits) + 7) / 8 // codes
	if ct, ok := CTFormat(row.name, s); ok {
		enc, err := ctensors.CodesBytes(it.Shape, 1, s, ct)
		if err != nil {
			return geometry{}, fmt.Errorf("tensor %q: %w", it.Name, err)
		}
		g.rowBytes += enc
	}
	np, err := quant.NumParams(s, it.Shape)
	if err != nil {
		return geometry{}, fmt.Errorf("tensor %q: %w", it.Name, err)
	}
	var enc int64 // the encoded tensors after the codes
	for _, o := range it.Outputs[1:] {
		enc += o.Bytes
	}
	if rowLocal(s) && g.rows > 0 {
		// The block's scales and zero points, and their encoding.
		g.rowBytes += 8*int64(np/g.rows) + (enc+int64(g.rows)-1)/int64(g.rows)
	}
	if s.Bits == 4 && g.cols%2 == 1 {
		g.minUnits = 2
	}
	// The item's encoded scales and zero points, which each block
	// encodes; else its scales and zero points besides, and for a scheme
	// fitted over the whole tensor their ranges too.
	g.tail = enc
	if !tailRows(row, s) {
		g.tail += 8 * int64(np)
	}
	if !rowLocal(s) {
		g.tail += 8 * int64(np)
	}
	return g, nil
}

// rowLocal reports whether s gives every row of a 2-D weight parameters
// of its own (per-channel along axis 0, per-group), so that a block of
// rows is fitted on its own; the others (per-tensor, per-channel along
// axis 1) are fitted over the whole tensor first.
func rowLocal(s quant.Scheme) bool {
	return s.Granularity == quant.PerGroup || s.Granularity == quant.PerChannel && s.Axis == 0
}

// Stream plans how Run streams the given items with workers workers
// within maxMemory bytes (0 means DefaultMaxMemory): the blocks' sizes
// and the peak. It fails, naming the tensor, when even the smallest block
// of some item does not fit.
func (p *Plan) Stream(items []int, workers int, maxMemory int64) (*Streaming, error) {
	row, err := lookupFormat(p.Format)
	if err != nil {
		return nil, err
	}
	if maxMemory == 0 {
		maxMemory = DefaultMaxMemory
	}
	workers = max(workers, 1)
	geos := make([]geometry, len(items))
	var tail int64
	for i, k := range items {
		if geos[i], err = geometryOf(row, p.Scheme, &p.Items[k]); err != nil {
			return nil, fmt.Errorf("plan: %w", err)
		}
		tail = max(tail, geos[i].tail)
	}
	st := &Streaming{Workers: workers, MaxMemory: maxMemory, Tail: tail, per: make([]int, len(items))}
	inFlight := int64(workers + 1)
	perBlock := (maxMemory-ProgramMemory-writerMemory-tail)/inFlight - blockSlack
	for i, g := range geos {
		need := int64(g.minUnits) * g.rowBytes
		if need > perBlock {
			it := &p.Items[items[i]]
			return nil, fmt.Errorf("plan: a memory budget of %s is too small: tensor %q needs %s for each of the %d blocks in flight "+
				"with %d workers, and %s for its scales; give at least %s, or fewer workers",
				mib(maxMemory), it.Name, mib(need), inFlight, workers, mib(tail),
				mib(ProgramMemory+writerMemory+tail+inFlight*(maxNeed(geos)+blockSlack)))
		}
		units := g.units()
		per := units
		if g.rowBytes > 0 {
			in := int64(g.inSize) * max(int64(g.cols), 1)
			per = int(min(int64(units), perBlock/g.rowBytes, max(maxBlockBytes/in, int64(g.minUnits))))
		}
		if g.minUnits == 2 && per < units {
			per &^= 1
		}
		st.per[i] = max(per, 1)
		st.Block = max(st.Block, int64(min(st.per[i], max(units, 1)))*g.rowBytes+blockSlack)
	}
	// Blocks smaller than the budget allows: let more of them be in
	// flight, so that the workers run ahead of a write that stalls.
	st.InFlight = int(inFlight)
	if st.Block > 0 {
		room := (maxMemory - ProgramMemory - writerMemory - tail) / st.Block
		st.InFlight = int(max(inFlight, min(room, int64(maxInFlight))))
	}
	st.Peak = ProgramMemory + writerMemory + tail + int64(st.InFlight)*st.Block
	return st, nil
}

// units is the number of rows (elements, for a kept item) of the item.
func (g geometry) units() int {
	if g.quantized {
		return g.rows
	}
	return g.elems
}

// maxNeed is the largest smallest block of geos.
func maxNeed(geos []geometry) int64 {
	var m int64
	for _, g := range geos {
		m = max(m, int64(g.minUnits)*g.rowBytes)
	}
	return m
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// blocks lists the blocks of the items, in order: [lo, hi) in rows or
// elements of the item at position pos of items.
type block struct {
	pos, lo, hi int
	last        bool
}

func (st *Streaming) blocks(geos []geometry) []block {
	var out []block
	for pos, g := range geos {
		n, per := g.units(), st.per[pos]
		for lo := 0; ; lo += per {
			hi := min(lo+per, n)
			out = append(out, block{pos: pos, lo: lo, hi: hi, last: hi == n})
			if hi == n {
				break
			}
		}
	}
	return out
}

// sqnrSums are the sums of quant.SQNR over x and its dequantized y:
// Σ x² and Σ (x − y)², each in four float64 sums so that an addition
// does not wait for the one before it (the SQNR pass reads every weight
// twice over). The order of the additions is not quant.SQNR's: the
// reported SQNR may differ from it in its last digits, as it does for
// the sums of blocks.
func sqnrSums(x, y []float32) (sig, noise float64) {
	var s0, s1, s2, s3, n0, n1, n2, n3 float64
	y = y[:len(x)]
	i := 0
	for ; i+4 <= len(x); i += 4 {
		xs, ys := x[i:i+4:i+4], y[i:i+4:i+4]
		a0, a1, a2, a3 := float64(xs[0]), float64(xs[1]), float64(xs[2]), float64(xs[3])
		d0, d1, d2, d3 := a0-float64(ys[0]), a1-float64(ys[1]), a2-float64(ys[2]), a3-float64(ys[3])
		s0 += a0 * a0
		s1 += a1 * a1
		s2 += a2 * a2
		s3 += a3 * a3
		n0 += d0 * d0
		n1 += d1 * d1
		n2 += d2 * d2
		n3 += d3 * d3
	}
	for ; i < len(x); i++ {
		a := float64(x[i])
		d := a - float64(y[i])
		s0 += a * a
		n0 += d * d
	}
	return (s0 + s1) + (s2 + s3), (n0 + n1) + (n2 + n3)
}

// sqnrOf is quant.SQNR from the sums.
func sqnrOf(sig, noise float64) float64 {
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(sig/noise)
}
