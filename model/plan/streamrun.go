package plan

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
)

// streamRun is one Run: its blocks, the state of each item, and the
// buffers of the blocks in flight.
type streamRun struct {
	p     *Plan
	row   *format
	items []int
	src   Source
	sink  chunkSink
	opt   RunOptions
	k     Kernels
	ct    ctensors.Format
	isCT  bool
	// codesAreCT is set when compressed-tensors stores quant's codes as
	// they are (int-quantized signed 8-bit: a code is its own byte).
	codesAreCT bool
	// tailRows is set when each block encodes its own piece of the
	// tensors after the codes (scales, zero points), so that the item
	// being written holds them encoded: every row-local scheme but
	// pack-quantized asymmetric, whose zero points are packed across rows.
	tailRows bool
	geos     []geometry
	states   []itemState
	blocks   []block
	per      []int // rows (elements) per block of each item
	block    int   // bytes of a block's scratch
	stats    []Stats
	// free holds the scratch of blocks no longer in flight; at most
	// Streaming.InFlight exist, one per block in flight.
	free chan *scratch
	// bytesDone counts the input bytes of the items written.
	bytesDone int64
}

// itemState is what the blocks of one item share. The fields under once
// are set by whichever worker first needs them; the rest belong to the
// writing goroutine.
type itemState struct {
	it *Item
	// global holds the parameters of a scheme fitted over the whole
	// tensor (see rowLocal), amax its largest finite |x|.
	globalOnce sync.Once
	global     *quant.Params
	globalErr  error
	amaxOnce   sync.Once
	amax       float32
	amaxErr    error

	off        int64 // bytes of the first output written
	scales     []float32
	zeroPoints []int32
	tail       [][]byte // the outputs after the first, encoded (tailRows)
	sig, noise float64
	nonFinite  int
}

// scratch are the buffers of one block in flight, recycled: one
// allocation of Streaming.Block bytes, carved for each block into its
// rows as float32 (x, and y dequantized), their raw bytes, codes and
// encoding, each as large as a full block of the item needs (so that
// blocks of every size reuse it, and the Go heap holds no garbage of
// them).
type scratch struct {
	buf   []byte
	x, y  []float32
	raw   []byte
	codes []byte
	enc   []byte
	// scales and zeroPoints hold a row-local block's parameters where
	// the kernels fit them in one pass (groupFitter), so that a block
	// leaves no garbage for the collector to chase.
	scales     []float32
	zeroPoints []int32
}

// carve sets s's buffers for the blocks of an item of geometry g, per
// rows (elements) a block.
func (s *scratch) carve(r *streamRun, g geometry, it *Item, per int) {
	off := 0
	bytes := func(n int) []byte {
		b := s.buf[off : off+n : off+n]
		off += (n + 7) &^ 7
		return b
	}
	floats := func(n int) []float32 {
		b := bytes(4 * n)
		if n == 0 {
			return nil
		}
		return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)[:0]
	}
	s.x, s.y, s.raw, s.codes, s.enc, s.scales, s.zeroPoints = nil, nil, nil, nil, nil, nil, nil
	if !g.quantized {
		s.raw = bytes(per * g.inSize)[:0]
		if g.convert {
			s.x, s.enc = floats(per), bytes(4 * per)[:0]
		}
		return
	}
	n := per * g.cols
	s.x, s.y = floats(n), floats(n)
	if it.DType != "F32" || !littleEndianHost {
		s.raw = bytes(n * g.inSize)[:0]
	}
	switch {
	case r.row.isGGUF:
		rs, _ := r.row.gguf.RowSize(int64(g.cols))
		s.enc = bytes(per * int(rs))[:0]
	default:
		s.codes = bytes(r.p.Scheme.PackedLen(n))[:0]
		if r.isCT && !r.codesAreCT {
			nb, _ := ctensors.CodesBytes(it.Shape, per, r.p.Scheme, r.ct)
			s.enc = bytes(int(nb))[:0]
		}
		// The block's parameters, which geometryOf counts for a
		// row-local scheme (8 bytes a pair).
		if np, err := quant.NumParams(r.p.Scheme, []int{per, g.cols}); err == nil && rowLocal(r.p.Scheme) {
			s.scales = floats(np)
			if b := bytes(4 * np); np > 0 {
				s.zeroPoints = unsafe.Slice((*int32)(unsafe.Pointer(&b[0])), np)[:0]
			}
		}
	}
}

// blockOut is a processed block: the piece of its item's first output,
// and what the writing goroutine adds up.
type blockOut struct {
	s          *scratch
	piece      []byte
	scales     []float32 // a row-local block's parameters
	zeroPoints []int32
	tail       [][]byte // or their encoding (tailRows)
	sig, noise float64
	nonFinite  int
}

func newStreamRun(p *Plan, row *format, items []int, src Source, sink Sink, opt RunOptions, sch *Streaming) (*streamRun, error) {
	if opt.Kernels == nil {
		opt.Kernels = ReferenceKernels{}
	}
	r := &streamRun{p: p, row: row, items: items, src: src, opt: opt, k: opt.Kernels,
		states: make([]itemState, len(items)), stats: make([]Stats, len(items)), free: make(chan *scratch, sch.InFlight)}
	r.ct, r.isCT = CTFormat(p.Format, p.Scheme)
	r.tailRows = tailRows(row, p.Scheme)
	if r.isCT {
		one, err := ctensors.CodesBytes([]int{1, 1}, 1, p.Scheme, r.ct)
		r.codesAreCT = err == nil && one == 1 && p.Scheme.Bits == 8 && p.Scheme.Signed
	}
	r.geos = make([]geometry, len(items))
	sizes := map[string]int64{}
	for pos, k := range items {
		it := &p.Items[k]
		g, err := geometryOf(row, p.Scheme, it)
		if err != nil {
			return nil, fmt.Errorf("plan: %w", err)
		}
		r.geos[pos] = g
		r.states[pos].it = it
		r.stats[pos] = Stats{Item: k, SQNR: math.Inf(1)}
		for _, o := range it.Outputs {
			sizes[o.Name] = o.Bytes
		}
	}
	r.blocks = sch.blocks(r.geos)
	r.per = sch.per
	r.block = int(sch.Block)
	if cs, ok := sink.(chunkSink); ok {
		r.sink = cs
	} else {
		r.sink = &wholeSink{sink: sink, sizes: sizes}
	}
	return r, nil
}

// chunkSink is a Sink that takes a tensor in consecutive pieces:
// *checkpoint.Writer and *gguf.Writer are.
type chunkSink interface {
	Sink
	WriteTensorAt(name string, off int64, data []byte) error
}

// wholeSink gathers the pieces of each tensor for a Sink that takes only
// whole tensors.
type wholeSink struct {
	sink  Sink
	sizes map[string]int64
	name  string
	buf   []byte
}

func (w *wholeSink) WriteTensor(name string, data []byte) error {
	return w.sink.WriteTensor(name, data)
}

func (w *wholeSink) WriteTensorAt(name string, off int64, data []byte) error {
	if name != w.name || off != int64(len(w.buf)) {
		if off != 0 {
			return fmt.Errorf("plan: tensor %q: piece at %d after %d bytes", name, off, len(w.buf))
		}
		w.name, w.buf = name, nil
	}
	w.buf = append(w.buf, data...)
	if int64(len(w.buf)) == w.sizes[name] {
		b := w.buf
		w.name, w.buf = "", nil
		return w.sink.WriteTensor(name, b)
	}
	return nil
}

// getScratch is a free scratch, or a new one.
func (r *streamRun) getScratch() *scratch {
	select {
	case s := <-r.free:
		return s
	default:
		return &scratch{buf: make([]byte, r.block)}
	}
}

// putScratch makes s free for the next block.
func (r *streamRun) putScratch(s *scratch) {
	select {
	case r.free <- s:
	default: // more than were ever in flight: let it go
	}
}

func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

// do processes block i.
func (r *streamRun) do(i int) (blockOut, error) {
	b := r.blocks[i]
	st := &r.states[b.pos]
	s := r.getScratch()
	s.carve(r, r.geos[b.pos], st.it, r.per[b.pos])
	var out blockOut
	var err error
	if r.geos[b.pos].quantized {
		out, err = r.quantizeBlock(st, r.geos[b.pos], b, s)
	} else {
		out, err = r.keepBlock(st, r.geos[b.pos], b, s)
	}
	if err != nil {
		r.putScratch(s)
		return blockOut{}, fmt.Errorf("tensor %q: %w", st.it.Name, err)
	}
	out.s = s
	return out, nil
}

// emit writes block i's piece and, after an item's last block, the rest
// of its outputs.
func (r *streamRun) emit(i int, out blockOut) error {
	b := r.blocks[i]
	st := &r.states[b.pos]
	it := st.it
	switch {
	case len(out.piece) > 0:
		if err := r.sink.WriteTensorAt(it.Outputs[0].Name, st.off, out.piece); err != nil {
			return err
		}
		st.off += int64(len(out.piece))
	case b.last && it.Outputs[0].Bytes == 0:
		if err := r.sink.WriteTensor(it.Outputs[0].Name, nil); err != nil {
			return err
		}
	}
	if st.scales == nil && len(out.scales) > 0 && !b.last {
		np, _ := quant.NumParams(r.p.Scheme, it.Shape)
		st.scales, st.zeroPoints = make([]float32, 0, np), make([]int32, 0, np)
	}
	if st.tail == nil && len(out.tail) > 0 {
		st.tail = make([][]byte, len(out.tail))
		for j := range st.tail {
			st.tail[j] = make([]byte, 0, it.Outputs[j+1].Bytes)
		}
	}
	for j, piece := range out.tail {
		st.tail[j] = append(st.tail[j], piece...)
	}
	st.scales = append(st.scales, out.scales...)
	st.zeroPoints = append(st.zeroPoints, out.zeroPoints...)
	r.putScratch(out.s) // out's scales may lie in it
	st.sig += out.sig
	st.noise += out.noise
	st.nonFinite += out.nonFinite
	if !b.last {
		return nil
	}
	if err := r.finish(b.pos, st); err != nil {
		return err
	}
	release(r.src, it.Name)
	r.bytesDone += it.BytesIn
	if r.opt.Progress != nil {
		r.opt.Progress(r.items[b.pos], r.bytesDone, b.pos+1)
	}
	return nil
}

// finish writes the outputs of an item after its codes (scales, zero
// points) and records its stats.
func (r *streamRun) finish(pos int, st *itemState) error {
	it := st.it
	if it.Action == Quantize {
		r.stats[pos].SQNR = sqnrOf(st.sig, st.noise)
		r.stats[pos].NonFinite = st.nonFinite
	}
	if it.Action == Quantize && !r.row.isGGUF {
		tail, err := r.tail(st)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", it.Name, err)
		}
		for j, data := range tail {
			if err := r.sink.WriteTensor(it.Outputs[j+1].Name, data); err != nil {
				return err
			}
		}
	}
	if st.off != it.Outputs[0].Bytes {
		return fmt.Errorf("plan: tensor %q: %d bytes written of %d", it.Outputs[0].Name, st.off, it.Outputs[0].Bytes)
	}
	st.scales, st.zeroPoints, st.global, st.tail = nil, nil, nil, nil // written: free them
	return nil
}

// tail encodes the outputs after the codes of a quantized item.
func (r *streamRun) tail(st *itemState) ([][]byte, error) {
	it := st.it
	s := r.p.Scheme
	if r.tailRows {
		if len(st.tail) != len(it.Outputs)-1 {
			return nil, fmt.Errorf("%d tensors after the codes where the plan has %d", len(st.tail), len(it.Outputs)-1)
		}
		return st.tail, nil
	}
	p := &quant.Params{Scheme: s, Shape: it.Shape, Scales: st.scales, ZeroPoints: st.zeroPoints}
	if !rowLocal(s) {
		p = st.global
	}
	if r.isCT {
		ts, err := ctensors.EncodeParams(it.Name, p, r.ct, it.ScaleDType)
		if err != nil {
			return nil, err
		}
		out := make([][]byte, len(ts))
		for i, t := range ts {
			if t.Name != it.Outputs[i+1].Name {
				return nil, fmt.Errorf("encoded tensor %q where the plan has %q", t.Name, it.Outputs[i+1].Name)
			}
			out[i] = t.Data
		}
		return out, nil
	}
	scales := make([]byte, 4*len(p.Scales))
	for i, v := range p.Scales {
		binary.LittleEndian.PutUint32(scales[4*i:], math.Float32bits(v))
	}
	out := [][]byte{scales}
	if !s.Symmetric {
		zp := make([]byte, 4*len(p.ZeroPoints))
		for i, v := range p.ZeroPoints {
			binary.LittleEndian.PutUint32(zp[4*i:], uint32(v))
		}
		out = append(out, zp)
	}
	return out, nil
}

// tailRows reports whether each block of a format and scheme encodes its
// own piece of the tensors after the codes (see streamRun.tailRows).
func tailRows(row *format, s quant.Scheme) bool {
	if row.isGGUF || !rowLocal(s) {
		return false
	}
	ct, isCT := CTFormat(row.name, s)
	return !isCT || s.Symmetric || ct != ctensors.PackQuantized
}

// tailPieces encodes the parameters p of rows [first, ...) of item it:
// its pieces of the tensors after the codes.
func (r *streamRun) tailPieces(it *Item, first int, p *quant.Params) ([][]byte, error) {
	if r.isCT {
		return ctensors.EncodeParamsRows(it.Name, it.Shape, first, p, r.ct, it.ScaleDType)
	}
	scales := make([]byte, 4*len(p.Scales))
	for i, v := range p.Scales {
		binary.LittleEndian.PutUint32(scales[4*i:], math.Float32bits(v))
	}
	if p.Scheme.Symmetric {
		return [][]byte{scales}, nil
	}
	zp := make([]byte, 4*len(p.ZeroPoints))
	for i, v := range p.ZeroPoints {
		binary.LittleEndian.PutUint32(zp[4*i:], uint32(v))
	}
	return [][]byte{scales, zp}, nil
}

// tensorReaderAt is a Source that reads raw bytes of a tensor into a
// buffer (*checkpoint.Checkpoint, with pread).
type tensorReaderAt interface {
	ReadTensorAt(name string, dst []byte, off int64) error
}

// readRaw reads len(dst) raw bytes of tensor name from byte off.
func (r *streamRun) readRaw(name string, dst []byte, off int64) error {
	if len(dst) == 0 {
		return nil
	}
	if ra, ok := r.src.(tensorReaderAt); ok {
		return ra.ReadTensorAt(name, dst, off)
	}
	b, err := r.src.Bytes(name)
	if err != nil {
		return err
	}
	if off < 0 || off+int64(len(dst)) > int64(len(b)) {
		return fmt.Errorf("bytes [%d, %d) of %d", off, off+int64(len(dst)), len(b))
	}
	copy(dst, b[off:])
	return nil
}

var littleEndianHost = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// readFloat32 reads elements [lo, lo+len(x)) of item it as float32 into
// x, through s.raw unless they are F32.
func (r *streamRun) readFloat32(it *Item, g geometry, lo int, x []float32, s *scratch) error {
	if len(x) == 0 {
		return nil
	}
	off := int64(lo) * int64(g.inSize)
	if it.DType == "F32" && littleEndianHost {
		return r.readRaw(it.Name, unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x)), off)
	}
	s.raw = grow(s.raw, len(x)*g.inSize)
	if err := r.readRaw(it.Name, s.raw, off); err != nil {
		return err
	}
	return safetensors.DecodeFloat32(x, s.raw, it.DType)
}

// scan reads the whole of quantized item st.it block by block into buf
// and calls fn on each block of rows [lo, hi).
func (r *streamRun) scan(st *itemState, g geometry, per int, buf []float32, s *scratch, fn func(x []float32, lo, hi int) error) error {
	for lo := 0; lo < g.rows || lo == 0; lo += per {
		hi := min(lo+per, g.rows)
		x := buf[:(hi-lo)*g.cols]
		if err := r.readFloat32(st.it, g, lo*g.cols, x, s); err != nil {
			return err
		}
		if err := fn(x, lo, hi); err != nil {
			return err
		}
		if hi == g.rows {
			break
		}
	}
	return nil
}

// finiteAbsMax is the largest finite |x| of the item, read once with buf.
func (r *streamRun) finiteAbsMax(st *itemState, g geometry, per int, buf []float32, s *scratch) (float32, error) {
	st.amaxOnce.Do(func() {
		st.amaxErr = r.scan(st, g, per, buf, s, func(x []float32, _, _ int) error {
			st.amax = max(st.amax, r.k.AbsMax(x))
			return nil
		})
	})
	return st.amax, st.amaxErr
}

// sanitize counts the NaN and ±Inf values of x, a block of the item, and
// when they are allowed replaces NaN with 0 and ±Inf with ± the item's
// largest finite |x| (read with buf, which must not be x). When they are
// not, it fails with the count of the whole item.
func (r *streamRun) sanitize(st *itemState, g geometry, per int, x, buf []float32, s *scratch) (int, error) {
	n := countNonFinite(x)
	if n == 0 {
		return 0, nil
	}
	if !r.opt.AllowNonFinite {
		total := 0
		if err := r.scan(st, g, per, buf, s, func(x []float32, _, _ int) error {
			total += countNonFinite(x)
			return nil
		}); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("%w: %d NaN or infinite values (--allow-nonfinite quantizes them: NaN as 0, ±Inf saturated)", ErrNonFinite, total)
	}
	amax, err := r.finiteAbsMax(st, g, per, buf, s)
	if err != nil {
		return 0, err
	}
	for i, v := range x {
		switch {
		case math.IsNaN(float64(v)):
			x[i] = 0
		case math.IsInf(float64(v), 1):
			x[i] = amax
		case math.IsInf(float64(v), -1):
			x[i] = -amax
		}
	}
	return n, nil
}

// globalParams are the parameters of a scheme fitted over the whole
// tensor, as fitMinMax fits them on the whole tensor (the same maxima,
// in any order), with scales rounded to the item's scale dtype.
func (r *streamRun) globalParams(st *itemState, g geometry, per int, s *scratch) (*quant.Params, error) {
	st.globalOnce.Do(func() {
		st.global, st.globalErr = r.fitGlobal(st, g, per, s)
	})
	return st.global, st.globalErr
}

func (r *streamRun) fitGlobal(st *itemState, g geometry, per int, s *scratch) (*quant.Params, error) {
	sc := r.p.Scheme
	p, err := quant.NewParams(sc, st.it.Shape)
	if err != nil {
		return nil, err
	}
	lo := make([]float32, len(p.Scales))
	hi := make([]float32, len(p.Scales))
	buf := grow(s.y, per*g.cols)
	s.y = buf
	x := grow(s.x, per*g.cols)
	s.x = x
	err = r.scan(st, g, per, x, s, func(x []float32, r0, r1 int) error {
		if r.opt.AllowNonFinite {
			if _, err := r.sanitize(st, g, per, x, buf, s); err != nil {
				return err
			}
		}
		bp := quant.Params{Scheme: sc, Shape: []int{r1 - r0, g.cols}, Scales: p.Scales, ZeroPoints: p.ZeroPoints}
		if sc.Symmetric {
			bp.Runs(func(start, end, k int) { hi[k] = max(hi[k], r.k.AbsMax(x[start:end])) })
			return nil
		}
		bp.Runs(func(start, end, k int) { lo[k], hi[k] = minMax(x[start:end], lo[k], hi[k]) })
		return nil
	})
	if err != nil {
		return nil, err
	}
	for k := range p.Scales {
		if sc.Symmetric {
			p.Scales[k], p.ZeroPoints[k] = sc.ScaleZeroPoint(-hi[k], hi[k])
		} else {
			p.Scales[k], p.ZeroPoints[k] = sc.ScaleZeroPoint(lo[k], hi[k])
		}
	}
	if st.it.ScaleDType != "F32" {
		if err := ctensors.RoundScales(p, st.it.ScaleDType); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// minMax is quant.FitMinMax's reduction of one run: the range [mn, mx]
// (which holds 0) widened to the finite values of x.
func minMax(x []float32, mn, mx float32) (float32, float32) {
	for _, v := range x {
		if v < mn {
			if v >= -math.MaxFloat32 {
				mn = v
			}
		} else if v > mx && v <= math.MaxFloat32 {
			mx = v
		}
	}
	return mn, mx
}

// quantizeBlock reads, fits, quantizes, measures and encodes rows
// [b.lo, b.hi) of a quantized item. It first does so without looking for
// NaN and ±Inf: Σx² of the SQNR is finite exactly when every value is,
// so only a block whose sum is not (or whose fit failed) is counted,
// sanitized and done again, and the others are read once less.
func (r *streamRun) quantizeBlock(st *itemState, g geometry, b block, s *scratch) (blockOut, error) {
	it := st.it
	sc := r.p.Scheme
	per := r.per[b.pos]
	n := (b.hi - b.lo) * g.cols
	var gp *quant.Params
	if !r.row.isGGUF && !rowLocal(sc) {
		var err error
		if gp, err = r.globalParams(st, g, per, s); err != nil {
			return blockOut{}, err
		}
	}
	s.x, s.y = grow(s.x, max(n, per*g.cols)), grow(s.y, max(n, per*g.cols))
	x := s.x[:n]
	if err := r.readFloat32(it, g, b.lo*g.cols, x, s); err != nil {
		return blockOut{}, err
	}
	out, err := r.quantizeRows(st, g, b, s, gp)
	if err == nil && !math.IsInf(out.sig, 0) && !math.IsNaN(out.sig) {
		return out, nil
	}
	nonFinite, serr := r.sanitize(st, g, per, x, s.y, s)
	if serr != nil {
		return blockOut{}, serr
	}
	if nonFinite == 0 {
		return blockOut{}, err
	}
	if out, err = r.quantizeRows(st, g, b, s, gp); err != nil {
		return blockOut{}, err
	}
	out.nonFinite = nonFinite
	return out, nil
}

// sqnrSummer is a Kernels with a faster sqnrSums (cpu.QuantKernels).
type sqnrSummer interface {
	SQNRSums(x, y []float32) (sig, noise float64)
}

// sums are the SQNR sums of x and its dequantized values y.
func (r *streamRun) sums(x, y []float32) (sig, noise float64) {
	if k, ok := r.k.(sqnrSummer); ok {
		return k.SQNRSums(x, y)
	}
	return sqnrSums(x, y)
}

// groupFitter is a Kernels that fits, quantizes and measures the groups
// of a symmetric per-group scheme in one pass over each
// (cpu.QuantKernels): codes and scales bit for bit those of fitMinMax,
// the scales rounded by round, and Quantize; the SQNR sums to within
// about 1e-6, relatively, and not finite when x is not (see
// cpu.FitQuantizeGroups).
type groupFitter interface {
	FitQuantizeGroups(codes []byte, scales, x []float32, s quant.Scheme, cols int, round func([]float32) error) (sig, noise float64, err error)
}

// fitQuantizeGroups fits and quantizes the rows x of shape into codes
// with gf, the parameters in s, rounding the scales to the item's scale
// dtype, and sets out's
// SQNR sums. Where gf's sums are not finite it measures again through y
// (the dequantized rows) in float64, whose Σx² is finite exactly when x
// is: the fused sums of x/scale may overflow where a scale was rounded
// far below its group's values.
func (r *streamRun) fitQuantizeGroups(gf groupFitter, it *Item, x, y []float32, codes []byte, shape []int, s *scratch, out *blockOut) (*quant.Params, error) {
	sc := r.p.Scheme
	np, err := quant.NumParams(sc, shape)
	if err != nil {
		return nil, err
	}
	s.scales, s.zeroPoints = grow(s.scales, np), grow(s.zeroPoints, np)
	clear(s.zeroPoints)
	p := &quant.Params{Scheme: sc, Shape: shape, Scales: s.scales, ZeroPoints: s.zeroPoints}
	var round func([]float32) error
	if dt := it.ScaleDType; dt != "F32" {
		round = func(scales []float32) error { return ctensors.RoundScales(&quant.Params{Scales: scales}, dt) }
	}
	sig, noise, err := gf.FitQuantizeGroups(codes, p.Scales, x, sc, shape[1], round)
	if err != nil {
		return nil, err
	}
	if math.IsInf(sig, 0) || math.IsNaN(sig) || math.IsInf(noise, 0) || math.IsNaN(noise) {
		if err := r.k.Dequantize(y, codes, p); err != nil {
			return nil, err
		}
		sig, noise = r.sums(x, y)
	}
	out.sig, out.noise = sig, noise
	return p, nil
}

// quantizeRows fits (unless gp holds the tensor's parameters),
// quantizes, measures and encodes the rows [b.lo, b.hi) read into s.x.
func (r *streamRun) quantizeRows(st *itemState, g geometry, b block, s *scratch, gp *quant.Params) (blockOut, error) {
	it := st.it
	sc := r.p.Scheme
	rows := b.hi - b.lo
	n := rows * g.cols
	x, y := s.x[:n], s.y[:n]
	var out blockOut
	if r.row.isGGUF {
		rs, _ := r.row.gguf.RowSize(int64(g.cols))
		s.enc = grow(s.enc, rows*int(rs))
		out.piece = s.enc
		switch r.row.gguf {
		case gguf.TypeQ8_0:
			gguf.QuantizeQ8_0(out.piece, x)
			gguf.DequantizeQ8_0(y, out.piece)
		case gguf.TypeQ4_0:
			gguf.QuantizeQ4_0(out.piece, x)
			gguf.DequantizeQ4_0(y, out.piece)
		default:
			return blockOut{}, fmt.Errorf("GGUF type %s not supported", r.row.gguf)
		}
		out.sig, out.noise = r.sums(x, y)
		return out, nil
	}
	shape := []int{rows, g.cols}
	var p *quant.Params
	var err error
	s.codes = grow(s.codes, sc.PackedLen(n))
	gf, fused := r.k.(groupFitter)
	fused = fused && gp == nil && sc.Granularity == quant.PerGroup && sc.Symmetric
	switch {
	case gp != nil:
		p = &quant.Params{Scheme: sc, Shape: shape, Scales: gp.Scales, ZeroPoints: gp.ZeroPoints}
	case fused:
		if p, err = r.fitQuantizeGroups(gf, it, x, y, s.codes, shape, s, &out); err != nil {
			return blockOut{}, err
		}
	default:
		if p, err = fitMinMax(r.k, sc, x, shape); err != nil {
			return blockOut{}, err
		}
		if it.ScaleDType != "F32" {
			if err := ctensors.RoundScales(p, it.ScaleDType); err != nil {
				return blockOut{}, err
			}
		}
	}
	if gp == nil {
		if !r.tailRows {
			out.scales, out.zeroPoints = p.Scales, p.ZeroPoints
		} else if out.tail, err = r.tailPieces(it, b.lo, p); err != nil {
			return blockOut{}, err
		}
	}
	if !fused {
		if err := r.k.Quantize(s.codes, x, p); err != nil {
			return blockOut{}, err
		}
		if err := r.k.Dequantize(y, s.codes, p); err != nil {
			return blockOut{}, err
		}
		out.sig, out.noise = r.sums(x, y)
	}
	out.piece = s.codes
	if r.isCT && !r.codesAreCT {
		nb, err := ctensors.CodesBytes(it.Shape, rows, sc, r.ct)
		if err != nil {
			return blockOut{}, err
		}
		s.enc = grow(s.enc, int(nb))
		if err := ctensors.EncodeCodes(s.enc, s.codes, it.Name, it.Shape, rows, sc, r.ct); err != nil {
			return blockOut{}, err
		}
		out.piece = s.enc
	}
	return out, nil
}

// keepBlock copies elements [b.lo, b.hi) of a kept item: byte for byte,
// or converted to F32.
func (r *streamRun) keepBlock(st *itemState, g geometry, b block, s *scratch) (blockOut, error) {
	it := st.it
	n := b.hi - b.lo
	if !g.convert {
		s.raw = grow(s.raw, n*g.inSize)
		if err := r.readRaw(it.Name, s.raw, int64(b.lo)*int64(g.inSize)); err != nil {
			return blockOut{}, err
		}
		return blockOut{piece: s.raw}, nil
	}
	s.x = grow(s.x, n)
	if err := r.readFloat32(it, g, b.lo, s.x, s); err != nil {
		return blockOut{}, err
	}
	s.enc = grow(s.enc, 4*n)
	for i, v := range s.x {
		binary.LittleEndian.PutUint32(s.enc[4*i:], math.Float32bits(v))
	}
	return blockOut{piece: s.enc}, nil
}
