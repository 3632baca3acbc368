package onnxnet

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/quant"
)

// Metadata keys the exporters write (metadata_props) and Lower reads.
const (
	MetaInputScale = "quantkit.input_scale" // Net.InputScale, as %g
	MetaWeightBits = "quantkit.weight_bits" // Quant.WeightBits
	MetaMethod     = "quantkit.method"      // Quant.Method
)

// Load reads the ONNX file at path and lowers it with Lower.
func Load(path string) (*nn.Net, error) {
	net, _, err := LoadWith(path, Options{})
	return net, err
}

// LoadWith reads the ONNX file at path and lowers it with
// LowerWith. Errors name the file.
func LoadWith(path string, opt Options) (*nn.Net, []NonFinite, error) {
	m, err := onnx.Read(path)
	if err != nil {
		return nil, nil, err
	}
	net, bad, err := LowerWith(m, opt)
	if err != nil {
		return nil, nil, fmt.Errorf("nn: %s: %w", path, err)
	}
	return net, bad, nil
}

// Lower lowers an ONNX graph that is a chain of supported operators
// into a Net:
//
//	Conv (group 1, dilation 1; pads or auto_pad)  → Conv2D
//	Add of a constant after Conv/MatMul/Gemm      → its bias
//	BatchNormalization after Conv                  → folded into it
//	MatMul by a constant, Gemm                     → Dense
//	Relu, MaxPool, Softmax                         → ReLU, MaxPool, Softmax
//	Reshape/Flatten to [N, features]               → Flatten
//	Identity, Dropout                              → nothing
//
// Nodes whose inputs are all constants (initializers, Constant nodes) are
// evaluated at load time: Reshape, Identity, Constant, QuantizeLinear,
// DequantizeLinear.
// Initializers may also be listed as graph inputs; the one input that is
// not an initializer is the image, [N,C,H,W] or [N,F] with any N.
//
// QuantizeLinear→DequantizeLinear pairs on activations and
// DequantizeLinear of INT8 weight initializers (the QDQ form ExportQDQ
// writes) set Net.Quant: the weights become their dequantized values, their
// codes' scales WeightScale, the pairs' parameters Act.
//
// Names the graph uses twice are an error (onnx.Graph.CheckNames), and
// so are NaN and infinite values in the constants nodes read and in the
// lowered weights (ErrNonFinite, naming the tensors); LowerWith can
// allow those.
//
// Errors name the node; an operator outside the list is an error naming it.
func Lower(m *onnx.Model) (*nn.Net, error) {
	net, _, err := LowerWith(m, Options{})
	return net, err
}

// LowerWith is Lower with options. It also returns the tensors with
// NaN or infinite values that opt.AllowNonFinite let through.
func LowerWith(m *onnx.Model, opt Options) (*nn.Net, []NonFinite, error) {
	if m == nil || m.Graph == nil {
		return nil, nil, errors.New("no graph")
	}
	if err := m.Graph.CheckNames(); err != nil {
		return nil, nil, err
	}
	bad, err := constantsNonFinite(m.Graph)
	if err != nil {
		return nil, nil, err
	}
	if len(bad) > 0 && !opt.AllowNonFinite {
		return nil, nil, nonFiniteError(bad)
	}
	l := &lowering{
		g:       m.Graph,
		consts:  map[string]*onnx.Tensor{},
		wcodes:  map[string]*lowerWeight{},
		outputs: map[string]bool{},
		net:     &nn.Net{InputScale: 1},
		opset:   m.Opset(),
	}
	if err := l.run(); err != nil {
		return nil, nil, err
	}
	if err := l.meta(m); err != nil {
		return nil, nil, err
	}
	if _, err := nn.Shapes(l.net); err != nil {
		return nil, nil, err
	}
	// Values that only lowering made non-finite (folding a
	// BatchNormalization with a negative variance, an overflowing Gemm
	// alpha); where the constants were, the layers only repeat them.
	if len(bad) == 0 {
		bad = layersNonFinite(l.net)
		if len(bad) > 0 && !opt.AllowNonFinite {
			return nil, nil, nonFiniteError(bad)
		}
	}
	return l.net, bad, nil
}

// lowerWeight is a weight given as DequantizeLinear of int8 codes: the
// float values, the codes and the scales along axis.
type lowerWeight struct {
	codes  []int64
	scales []float32
	axis   int
}

type lowering struct {
	g       *onnx.Graph
	consts  map[string]*onnx.Tensor
	wcodes  map[string]*lowerWeight
	outputs map[string]bool
	net     *nn.Net
	opset   int64

	declared map[string]*onnx.ValueInfo // value_info and outputs by name

	cur   string   // the tensor the chain has reached
	shape []int    // its shape per sample: [C,H,W] or [F]
	last  nn.Layer // the layer that produced cur, if nothing since changed it

	// pending is the quantization of cur set by a QuantizeLinear →
	// DequantizeLinear pair, for the next Conv2D or Dense.
	pending   *nn.ActQuant
	qcodes    bool // cur holds QuantizeLinear codes
	quantized bool // some weight or activation was quantized
	wscale    map[int][]float32
	act       map[int]nn.ActQuant
}

func (l *lowering) run() error {
	for _, t := range l.g.Initializer {
		if t.Name == "" {
			return errors.New("an initializer has no name")
		}
		l.consts[t.Name] = t
	}
	l.wscale, l.act = map[int][]float32{}, map[int]nn.ActQuant{}
	// The image input: the one graph input that is not an initializer.
	var in *onnx.ValueInfo
	for _, v := range l.g.Input {
		if _, ok := l.consts[v.Name]; ok {
			continue
		}
		if in != nil {
			return fmt.Errorf("graph inputs %q and %q: only networks with one input are supported", in.Name, v.Name)
		}
		in = v
	}
	if in == nil {
		return errors.New("the graph has no input that is not an initializer")
	}
	if in.ElemType != onnx.DataFloat {
		return fmt.Errorf("input %q is %s, want FLOAT", in.Name, in.ElemType)
	}
	if !in.HasShape || len(in.Shape) < 2 || len(in.Shape) > 4 {
		return fmt.Errorf("input %q has shape %v: want [N,C,H,W], [N,H,W] or [N,F] with known C, H, W, F", in.Name, in.Shape)
	}
	size := int64(1)
	for _, d := range in.Shape[1:] {
		if d.Param != "" || d.Value <= 0 || d.Value > nn.MaxSampleSize {
			return fmt.Errorf("input %q has shape %v: want known sizes after the batch dimension", in.Name, in.Shape)
		}
		if size *= d.Value; size > nn.MaxSampleSize {
			return fmt.Errorf("input %q has shape %v: more than %d values per sample", in.Name, in.Shape, nn.MaxSampleSize)
		}
		l.shape = append(l.shape, int(d.Value))
	}
	if len(l.shape) == 2 {
		l.shape = []int{1, l.shape[0], l.shape[1]} // [N,H,W]: one channel, same layout
	}
	l.net.Input = slices.Clone(l.shape)
	l.net.InputName = in.Name
	l.cur = in.Name

	for _, n := range l.g.Node {
		if err := l.node(n); err != nil {
			return err
		}
	}
	if len(l.g.Output) != 1 {
		return fmt.Errorf("the graph has %d outputs: only networks with one output are supported", len(l.g.Output))
	}
	if out := l.g.Output[0].Name; out != l.cur {
		if _, ok := l.consts[out]; ok {
			return fmt.Errorf("output %q is a constant", out)
		}
		return fmt.Errorf("output %q is not the end of the chain of layers (which is %q)", out, l.cur)
	}
	if l.qcodes {
		return errors.New("the graph ends in QuantizeLinear codes, not float values")
	}
	if l.pending != nil {
		l.act[len(l.net.Layers)] = *l.pending // a Q/DQ pair on the output
	}
	l.net.OutputName = l.cur
	if len(l.net.Layers) == 0 {
		return errors.New("the graph has no layers")
	}
	if l.quantized {
		q := &nn.Quant{WeightScale: make([][]float32, len(l.net.Layers)), Act: make([]nn.ActQuant, len(l.net.Layers)+1)}
		for i := range l.net.Layers {
			q.WeightScale[i] = l.wscale[i]
		}
		for i, a := range l.act {
			q.Act[i] = a
		}
		l.net.Quant = q
	}
	return nil
}

// meta applies the metadata the exporters write.
func (l *lowering) meta(m *onnx.Model) error {
	if v, ok := m.MetadataValue(MetaInputScale); ok {
		s, err := strconv.ParseFloat(v, 32)
		if err != nil || !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("metadata %s = %q: want a positive number", MetaInputScale, v)
		}
		l.net.InputScale = float32(s)
	}
	q := l.net.Quant
	if q == nil {
		return nil
	}
	q.Method, _ = m.MetadataValue(MetaMethod)
	if v, ok := m.MetadataValue(MetaWeightBits); ok {
		b, err := strconv.Atoi(v)
		if err != nil || (b != 8 && b != 4) {
			return fmt.Errorf("metadata %s = %q: want 8 or 4", MetaWeightBits, v)
		}
		q.WeightBits = b
	} else {
		// Without the exporter's word: 4 when every code fits −7..7.
		q.WeightBits = 4
		for _, w := range l.wcodes {
			for _, c := range w.codes {
				if c < -7 || c > 7 {
					q.WeightBits = 8
				}
			}
		}
	}
	lim := int64(1)<<(q.WeightBits-1) - 1
	for _, w := range l.wcodes {
		for _, c := range w.codes {
			if c < -lim || c > lim {
				return fmt.Errorf("weight code %d outside ±%d of %d-bit symmetric weights", c, lim, q.WeightBits)
			}
		}
	}
	return nil
}

// isConst reports whether name is a constant (an initializer or the output
// of a node evaluated at load time); "" (an omitted optional input) counts.
func (l *lowering) isConst(name string) bool {
	if name == "" {
		return true
	}
	_, ok := l.consts[name]
	return ok
}

func (l *lowering) constFloats(n *onnx.Node, name string) ([]float32, []int64, error) {
	t, ok := l.consts[name]
	if !ok {
		return nil, nil, fmt.Errorf("%s: input %q is not a constant", n.Describe(), name)
	}
	v, err := t.Float32()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", n.Describe(), err)
	}
	return v, t.Dims, nil
}

func (l *lowering) node(n *onnx.Node) error {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return fmt.Errorf("%s: operator %q of domain %q is not supported", n.Describe(), n.OpType, n.Domain)
	}
	if len(n.Output) == 0 || n.Output[0] == "" {
		return fmt.Errorf("%s: no output", n.Describe())
	}
	for _, o := range n.Output {
		if o == "" {
			continue
		}
		if _, isConst := l.consts[o]; l.outputs[o] || isConst || o == l.net.InputName {
			return fmt.Errorf("%s: output %q is produced twice", n.Describe(), o)
		}
		l.outputs[o] = true
	}
	allConst := true
	for _, in := range n.Input {
		allConst = allConst && l.isConst(in)
	}
	if n.OpType == "Constant" || (allConst && len(n.Input) > 0) {
		return l.fold(n)
	}
	// The chain: the node must read the tensor the chain has reached.
	if len(n.Input) == 0 || n.Input[0] != l.cur {
		for _, in := range n.Input {
			if in == l.cur {
				return fmt.Errorf("%s: reads %q as input other than its first, which is not supported", n.Describe(), l.cur)
			}
		}
		return fmt.Errorf("%s: does not continue the chain of layers at %q: only networks that are a chain of layers are supported", n.Describe(), l.cur)
	}
	for _, in := range n.Input[1:] {
		if !l.isConst(in) {
			return fmt.Errorf("%s: input %q is computed, not a constant: only networks that are a chain of layers are supported", n.Describe(), in)
		}
	}
	if l.qcodes && n.OpType != "DequantizeLinear" {
		return fmt.Errorf("%s: reads QuantizeLinear codes: only QuantizeLinear→DequantizeLinear pairs are supported", n.Describe())
	}
	for _, o := range n.Output[1:] {
		if o != "" && n.OpType != "Dropout" {
			return fmt.Errorf("%s: its output %q beyond the first is not supported", n.Describe(), o)
		}
	}
	var err error
	switch n.OpType {
	case "Conv":
		err = l.conv(n)
	case "Add":
		err = l.add(n)
	case "BatchNormalization":
		err = l.batchNorm(n)
	case "MatMul", "Gemm":
		err = l.dense(n)
	case "Relu":
		err = l.layer(n, &nn.ReLU{}, l.shape)
	case "MaxPool":
		err = l.maxPool(n)
	case "Reshape", "Flatten":
		err = l.flatten(n)
	case "Softmax":
		err = l.softmax(n)
	case "Identity", "Dropout":
		l.cur = n.Output[0]
	case "QuantizeLinear":
		err = l.quantizeLinear(n)
	case "DequantizeLinear":
		err = l.dequantizeLinear(n)
	default:
		return fmt.Errorf("%s: unsupported operator %q (supported: Conv, Add, BatchNormalization, MatMul, Gemm, Relu, MaxPool, Reshape, Flatten, Softmax, Identity, Dropout, QuantizeLinear, DequantizeLinear)", n.Describe(), n.OpType)
	}
	if err != nil {
		return err
	}
	return l.checkDeclared(n)
}

// checkDeclared compares the shape the chain has reached with the one the
// model declares for that tensor (value_info or the graph output), where
// it declares one with known sizes; the batch dimension is not compared.
func (l *lowering) checkDeclared(n *onnx.Node) error {
	if l.declared == nil {
		l.declared = map[string]*onnx.ValueInfo{}
		for _, list := range [][]*onnx.ValueInfo{l.g.ValueInfo, l.g.Output} {
			for _, v := range list {
				if !v.HasShape {
					continue
				}
				// Declared twice (value_info and the output may both
				// declare a tensor): not with two shapes, of which one
				// would go unchecked.
				if d, ok := l.declared[v.Name]; ok && !slices.Equal(d.Shape, v.Shape) {
					return fmt.Errorf("%q is declared with two shapes, %v and %v", v.Name, d.Shape, v.Shape)
				}
				l.declared[v.Name] = v
			}
		}
	}
	v := l.declared[l.cur]
	if v == nil || !v.HasShape || len(v.Shape) < 2 {
		return nil
	}
	got := slices.Clone(l.shape)
	want := v.Shape[1:]
	if len(got) == len(want)+1 && got[0] == 1 {
		got = got[1:] // an [N,H,W] tensor held as one channel
	}
	if len(got) != len(want) {
		return fmt.Errorf("%s: output %q has %d dimensions per sample here, but the model declares shape %v", n.Describe(), l.cur, len(got), v.Shape)
	}
	for i, d := range want {
		if d.Param == "" && d.Value > 0 && d.Value != int64(got[i]) {
			return fmt.Errorf("%s: output %q has shape %v per sample here, but the model declares %v", n.Describe(), l.cur, got, v.Shape)
		}
	}
	return nil
}

// layer appends ly, which maps the chain's tensor to the node's output of
// shape out.
func (l *lowering) layer(n *onnx.Node, ly nn.Layer, out []int) error {
	// A Q/DQ pair quantizes the tensor entering this layer (ReLU, MaxPool
	// and Flatten commute with it, so it may stand before them too).
	if l.pending != nil {
		l.act[len(l.net.Layers)] = *l.pending
		l.pending = nil
	}
	l.net.Layers = append(l.net.Layers, ly)
	l.cur, l.shape, l.last = n.Output[0], out, ly
	return nil
}

// fold evaluates a node whose inputs are all constants.
func (l *lowering) fold(n *onnx.Node) error {
	out := n.Output[0]
	if n.OpType != "Constant" && n.Input[0] == "" {
		return fmt.Errorf("%s: no first input", n.Describe())
	}
	switch n.OpType {
	case "Constant":
		a := n.Attr("value")
		if a == nil || a.Type != onnx.AttrTensor {
			return fmt.Errorf("%s: only Constant nodes with a tensor value are supported", n.Describe())
		}
		t := *a.T
		t.Name = out
		l.consts[out] = &t
	case "Identity":
		t := *l.consts[n.Input[0]]
		t.Name = out
		l.consts[out] = &t
	case "Reshape":
		if len(n.Input) != 2 || n.Input[1] == "" {
			return fmt.Errorf("%s: Reshape wants 2 inputs", n.Describe())
		}
		src := l.consts[n.Input[0]]
		shape, err := l.consts[n.Input[1]].Int64()
		if err != nil {
			return fmt.Errorf("%s: shape: %w", n.Describe(), err)
		}
		dims, err := reshapeDims(src.Dims, shape)
		if err != nil {
			return fmt.Errorf("%s: %w", n.Describe(), err)
		}
		t := *src
		t.Name, t.Dims = out, dims
		l.consts[out] = &t
		if w, ok := l.wcodes[n.Input[0]]; ok && w.axis == 0 && len(dims) > 0 && dims[0] == src.Dims[0] {
			l.wcodes[out] = w
		}
	case "DequantizeLinear":
		return l.dequantizeWeight(n)
	case "QuantizeLinear":
		return l.quantizeConst(n)
	default:
		return fmt.Errorf("%s: evaluating %q on constants at load time is not supported", n.Describe(), n.OpType)
	}
	return nil
}

// reshapeDims applies ONNX Reshape's rules (0 copies a dim, −1 is
// inferred) to dims.
func reshapeDims(dims, shape []int64) ([]int64, error) {
	total := int64(1)
	for _, d := range dims {
		total *= d
	}
	out := make([]int64, len(shape))
	known, infer := int64(1), -1
	for i, s := range shape {
		switch {
		case s == 0 && i < len(dims):
			out[i] = dims[i]
		case s == -1 && infer < 0:
			infer = i
			continue
		case s > 0:
			out[i] = s
		default:
			return nil, fmt.Errorf("reshape of %v to %v: bad target", dims, shape)
		}
		known *= out[i]
	}
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("reshape of %v to %v: cannot infer the −1", dims, shape)
		}
		out[infer] = total / known
		known = total
	}
	if known != total {
		return nil, fmt.Errorf("reshape of %v (%d elements) to %v", dims, total, shape)
	}
	return out, nil
}

// spatial reads kernel_shape, strides, pads, auto_pad and dilations of a
// Conv or MaxPool on an h×w input.
func spatial(n *onnx.Node, h, w int, kernel []int64) (kh, kw, sh, sw, pt, pl, pb, pr int, err error) {
	fail := func(format string, args ...any) (int, int, int, int, int, int, int, int, error) {
		return 0, 0, 0, 0, 0, 0, 0, 0, fmt.Errorf("%s: "+format, append([]any{n.Describe()}, args...)...)
	}
	if k, e := n.AttrInts("kernel_shape", kernel); e != nil {
		return fail("%v", e)
	} else {
		kernel = k
	}
	if len(kernel) != 2 || kernel[0] <= 0 || kernel[1] <= 0 || kernel[0] > 1<<12 || kernel[1] > 1<<12 {
		return fail("kernel_shape %v: only 2-D kernels are supported", kernel)
	}
	strides, e1 := n.AttrInts("strides", []int64{1, 1})
	pads, e2 := n.AttrInts("pads", []int64{0, 0, 0, 0})
	dil, e3 := n.AttrInts("dilations", []int64{1, 1})
	autoPad, e4 := n.AttrString("auto_pad", "NOTSET")
	if err := errors.Join(e1, e2, e3, e4); err != nil {
		return fail("%v", err)
	}
	if len(strides) != 2 || strides[0] <= 0 || strides[1] <= 0 || strides[0] > 1<<12 || strides[1] > 1<<12 {
		return fail("strides %v", strides)
	}
	if len(dil) != 2 || dil[0] != 1 || dil[1] != 1 {
		return fail("dilations %v: only 1 is supported", dil)
	}
	if len(pads) != 4 {
		return fail("pads %v: want 4 values", pads)
	}
	for _, p := range pads {
		if p < 0 || p > 1<<12 {
			return fail("pads %v", pads)
		}
	}
	kh, kw, sh, sw = int(kernel[0]), int(kernel[1]), int(strides[0]), int(strides[1])
	// pads are [top, left, bottom, right] (x1_begin, x2_begin, x1_end, x2_end).
	pt, pl, pb, pr = int(pads[0]), int(pads[1]), int(pads[2]), int(pads[3])
	switch autoPad {
	case "NOTSET":
	case "VALID":
		pt, pl, pb, pr = 0, 0, 0, 0
	case "SAME_UPPER", "SAME_LOWER":
		// Output ceil(in/stride); the odd cell of padding at the end
		// (SAME_UPPER) or the beginning (SAME_LOWER).
		same := func(in, k, s int) (int, int) {
			total := max((in+s-1)/s*s-s+k-in, 0)
			if autoPad == "SAME_UPPER" {
				return total / 2, total - total/2
			}
			return total - total/2, total / 2
		}
		pt, pb = same(h, kh, sh)
		pl, pr = same(w, kw, sw)
	default:
		return fail("auto_pad %q", autoPad)
	}
	return kh, kw, sh, sw, pt, pl, pb, pr, nil
}

func (l *lowering) conv(n *onnx.Node) error {
	if len(l.shape) != 3 {
		return fmt.Errorf("%s: input of shape %v, want [C,H,W]", n.Describe(), l.shape)
	}
	if len(n.Input) < 2 || n.Input[1] == "" {
		return fmt.Errorf("%s: no weight input", n.Describe())
	}
	if g, err := n.AttrInt("group", 1); err != nil || g != 1 {
		return fmt.Errorf("%s: group %d: only group 1 is supported (%v)", n.Describe(), g, err)
	}
	w, wd, err := l.constFloats(n, n.Input[1])
	if err != nil {
		return err
	}
	c, h, wi := l.shape[0], l.shape[1], l.shape[2]
	if len(wd) != 4 || wd[1] != int64(c) || wd[0] <= 0 {
		return fmt.Errorf("%s: weight of shape %v on an input of %d channels, want [OutC,%d,KH,KW]", n.Describe(), wd, c, c)
	}
	kh, kw, sh, sw, pt, pl, pb, pr, err := spatial(n, h, wi, []int64{wd[2], wd[3]})
	if err != nil {
		return err
	}
	if kh != int(wd[2]) || kw != int(wd[3]) {
		return fmt.Errorf("%s: kernel_shape %dx%d but the weight is %v", n.Describe(), kh, kw, wd)
	}
	conv := &nn.Conv2D{Name: n.Name, InC: c, OutC: int(wd[0]), KH: kh, KW: kw, StrideH: sh, StrideW: sw,
		PadT: pt, PadL: pl, PadB: pb, PadR: pr, W: w, B: make([]float32, wd[0])}
	if conv.Name == "" {
		conv.Name = n.Input[1]
	}
	if len(n.Input) > 2 && n.Input[2] != "" {
		b, bd, err := l.constFloats(n, n.Input[2])
		if err != nil {
			return err
		}
		if len(b) != conv.OutC {
			return fmt.Errorf("%s: bias of shape %v for %d output channels", n.Describe(), bd, conv.OutC)
		}
		copy(conv.B, b)
	}
	oh, ow := (h+pt+pb-kh)/sh+1, (wi+pl+pr-kw)/sw+1
	if h+pt+pb < kh || wi+pl+pr < kw {
		return fmt.Errorf("%s: kernel %dx%d larger than the padded input %dx%d", n.Describe(), kh, kw, h+pt+pb, wi+pl+pr)
	}
	if err := l.weightQuant(n, n.Input[1], 0, conv.OutC); err != nil {
		return err
	}
	return l.layer(n, conv, []int{conv.OutC, oh, ow})
}

// weightQuant records the weight scales of the layer about to be appended
// when its weight came from DequantizeLinear of codes along axis.
func (l *lowering) weightQuant(n *onnx.Node, name string, axis, outC int) error {
	w, ok := l.wcodes[name]
	if !ok {
		return nil
	}
	if w.axis != axis || len(w.scales) != outC {
		return fmt.Errorf("%s: weight %q is quantized with %d scales along axis %d, want %d along the output channels (axis %d)",
			n.Describe(), name, len(w.scales), w.axis, outC, axis)
	}
	l.wscale[len(l.net.Layers)] = w.scales
	return nil
}

// add folds an Add of a constant into the bias of the layer just before.
func (l *lowering) add(n *onnx.Node) error {
	if len(n.Input) != 2 {
		return fmt.Errorf("%s: Add wants 2 inputs", n.Describe())
	}
	v, dims, err := l.constFloats(n, n.Input[1])
	if err != nil {
		return err
	}
	// Numpy broadcasting aligns trailing dims; leading 1s (the batch) do
	// not matter.
	for len(dims) > 0 && dims[0] == 1 && len(dims) > len(l.shape) {
		dims = dims[1:]
	}
	switch ly := l.last.(type) {
	case *nn.Conv2D:
		perChannel := len(dims) == 3 && dims[0] == int64(ly.OutC) && dims[1] == 1 && dims[2] == 1
		if len(v) == 1 || perChannel {
			for o := range ly.B {
				ly.B[o] += v[min(o, len(v)-1)]
			}
			l.cur = n.Output[0]
			return nil
		}
	case *nn.Dense:
		if len(v) == 1 || (len(dims) == 1 && dims[0] == int64(ly.Out)) {
			for o := range ly.B {
				ly.B[o] += v[min(o, len(v)-1)]
			}
			l.cur = n.Output[0]
			return nil
		}
	default:
		return fmt.Errorf("%s: adding a constant is supported only right after Conv, MatMul or Gemm (as their bias)", n.Describe())
	}
	return fmt.Errorf("%s: constant of shape %v does not broadcast as a bias of the output %v", n.Describe(), dims, l.shape)
}

func (l *lowering) batchNorm(n *onnx.Node) error {
	conv, ok := l.last.(*nn.Conv2D)
	if !ok {
		return fmt.Errorf("%s: BatchNormalization is supported only right after Conv (folded into it)", n.Describe())
	}
	if len(n.Input) != 5 {
		return fmt.Errorf("%s: want 5 inputs (X, scale, B, mean, var)", n.Describe())
	}
	eps, err := n.AttrFloat("epsilon", 1e-5)
	if err != nil {
		return err
	}
	if l.wscale[len(l.net.Layers)-1] != nil {
		return fmt.Errorf("%s: folding into a quantized convolution would change its weights", n.Describe())
	}
	var p [4][]float32
	for i := range p {
		if p[i], _, err = l.constFloats(n, n.Input[1+i]); err != nil {
			return err
		}
		if len(p[i]) != conv.OutC {
			return fmt.Errorf("%s: input %q has %d values for %d channels", n.Describe(), n.Input[1+i], len(p[i]), conv.OutC)
		}
	}
	gamma, beta, mean, variance := p[0], p[1], p[2], p[3]
	k := conv.InC * conv.KH * conv.KW
	for o := range conv.OutC {
		s := float32(float64(gamma[o]) / math.Sqrt(float64(variance[o])+float64(eps)))
		for j := range k {
			conv.W[o*k+j] *= s
		}
		conv.B[o] = (conv.B[o]-mean[o])*s + beta[o]
	}
	l.cur = n.Output[0]
	return nil
}

func (l *lowering) dense(n *onnx.Node) error {
	if len(l.shape) != 1 {
		return fmt.Errorf("%s: input of shape %v per sample: %s is supported on [N, features] (Flatten or Reshape first)", n.Describe(), l.shape, n.OpType)
	}
	in := l.shape[0]
	if len(n.Input) < 2 || n.Input[1] == "" {
		return fmt.Errorf("%s: no weight input", n.Describe())
	}
	b, bd, err := l.constFloats(n, n.Input[1])
	if err != nil {
		return err
	}
	transB, alpha, beta := int64(0), float32(1), float32(1)
	if n.OpType == "Gemm" {
		transA, e1 := n.AttrInt("transA", 0)
		tb, e2 := n.AttrInt("transB", 0)
		a, e3 := n.AttrFloat("alpha", 1)
		be, e4 := n.AttrFloat("beta", 1)
		if err := errors.Join(e1, e2, e3, e4); err != nil {
			return err
		}
		if transA != 0 {
			return fmt.Errorf("%s: transA = 1 is not supported", n.Describe())
		}
		transB, alpha, beta = tb, a, be
	}
	if len(bd) != 2 {
		return fmt.Errorf("%s: weight of shape %v, want 2-D", n.Describe(), bd)
	}
	kDim, outDim, axis := bd[0], bd[1], 1
	if transB != 0 {
		kDim, outDim, axis = bd[1], bd[0], 0
	}
	if kDim != int64(in) {
		return fmt.Errorf("%s: weight of shape %v (transB %d) on %d input features", n.Describe(), bd, transB, in)
	}
	out := int(outDim)
	d := &nn.Dense{Name: n.Name, In: in, Out: out, W: make([]float32, in*out), B: make([]float32, out)}
	if d.Name == "" {
		d.Name = n.Input[1]
	}
	for o := range out {
		for i := range in {
			if transB != 0 {
				d.W[o*in+i] = alpha * b[o*in+i]
			} else {
				d.W[o*in+i] = alpha * b[i*out+o]
			}
		}
	}
	if len(n.Input) > 2 && n.Input[2] != "" {
		c, cd, err := l.constFloats(n, n.Input[2])
		if err != nil {
			return err
		}
		if len(c) != 1 && len(c) != out {
			return fmt.Errorf("%s: C of shape %v for %d outputs", n.Describe(), cd, out)
		}
		for o := range out {
			d.B[o] = beta * c[min(o, len(c)-1)]
		}
	}
	if err := l.weightQuant(n, n.Input[1], axis, out); err != nil {
		return err
	}
	if _, ok := l.wscale[len(l.net.Layers)]; ok && alpha != 1 {
		return fmt.Errorf("%s: alpha %g on quantized weights is not supported", n.Describe(), alpha)
	}
	return l.layer(n, d, []int{out})
}

func (l *lowering) maxPool(n *onnx.Node) error {
	if len(l.shape) != 3 {
		return fmt.Errorf("%s: input of shape %v, want [C,H,W]", n.Describe(), l.shape)
	}
	if cm, err := n.AttrInt("ceil_mode", 0); err != nil || cm != 0 {
		return fmt.Errorf("%s: ceil_mode %d: only 0 is supported (%v)", n.Describe(), cm, err)
	}
	if so, err := n.AttrInt("storage_order", 0); err != nil || so != 0 {
		return fmt.Errorf("%s: storage_order %d: only 0 is supported (%v)", n.Describe(), so, err)
	}
	c, h, w := l.shape[0], l.shape[1], l.shape[2]
	kh, kw, sh, sw, pt, pl, pb, pr, err := spatial(n, h, w, nil)
	if err != nil {
		return err
	}
	if pt >= kh || pb >= kh || pl >= kw || pr >= kw {
		return fmt.Errorf("%s: pads %d,%d,%d,%d not smaller than the kernel %dx%d", n.Describe(), pt, pl, pb, pr, kh, kw)
	}
	if h+pt+pb < kh || w+pl+pr < kw {
		return fmt.Errorf("%s: kernel %dx%d larger than the padded input %dx%d", n.Describe(), kh, kw, h+pt+pb, w+pl+pr)
	}
	p := &nn.MaxPool{KH: kh, KW: kw, StrideH: sh, StrideW: sw, PadT: pt, PadL: pl, PadB: pb, PadR: pr}
	return l.layer(n, p, []int{c, (h+pt+pb-kh)/sh + 1, (w+pl+pr-kw)/sw + 1})
}

// flatten lowers a Reshape or Flatten that turns the per-sample tensor
// into a vector (or leaves it as it is).
func (l *lowering) flatten(n *onnx.Node) error {
	size := 1
	for _, d := range l.shape {
		size *= d
	}
	if n.OpType == "Flatten" {
		axis, err := n.AttrInt("axis", 1)
		if err != nil {
			return err
		}
		if axis != 1 && axis != -int64(len(l.shape)+1) {
			return fmt.Errorf("%s: axis %d: only flattening all but the batch dimension (axis 1) is supported", n.Describe(), axis)
		}
	} else {
		if len(n.Input) != 2 || n.Input[1] == "" {
			return fmt.Errorf("%s: Reshape wants 2 inputs", n.Describe())
		}
		target, err := l.consts[n.Input[1]].Int64()
		if err != nil {
			return fmt.Errorf("%s: shape: %w", n.Describe(), err)
		}
		// The batch dimension is n (0 copies it, −1 infers it, 1 is the
		// batch of one the model was exported with); the rest must be the
		// sample, flattened or as it is.
		if len(target) == 0 || target[0] < -1 {
			return fmt.Errorf("%s: reshape to %v", n.Describe(), target)
		}
		rest := target[1:]
		prod := int64(1)
		infer := false
		for i, d := range rest {
			switch {
			case d == -1 && target[0] != -1 && !infer:
				infer = true
			case d == 0 && i+1 < len(l.shape)+1:
				prod *= int64(l.shape[i])
			case d > 0:
				prod *= d
			default:
				return fmt.Errorf("%s: reshape to %v is not supported", n.Describe(), target)
			}
		}
		switch {
		case len(rest) == 1 && (infer || prod == int64(size)):
		case !infer && slices.Equal(rest, toInt64(l.shape)):
			l.cur = n.Output[0] // already that shape
			return nil
		default:
			return fmt.Errorf("%s: reshape of a sample of shape %v to %v: only flattening to [N, %d] is supported", n.Describe(), l.shape, target, size)
		}
	}
	if len(l.shape) == 1 {
		l.cur = n.Output[0]
		return nil
	}
	return l.layer(n, &nn.Flatten{}, []int{size})
}

func toInt64(s []int) []int64 {
	out := make([]int64, len(s))
	for i, v := range s {
		out[i] = int64(v)
	}
	return out
}

func (l *lowering) softmax(n *onnx.Node) error {
	def := int64(-1)
	if l.opset < 13 {
		def = 1 // before opset 13 Softmax flattened from axis on
	}
	axis, err := n.AttrInt("axis", def)
	if err != nil {
		return err
	}
	if len(l.shape) != 1 || (axis != 1 && axis != -1) {
		return fmt.Errorf("%s: softmax over axis %d of a sample of shape %v: only the last axis of [N, features] is supported", n.Describe(), axis, l.shape)
	}
	return l.layer(n, &nn.Softmax{}, l.shape)
}

// qdqParams reads the scale and zero point of a QuantizeLinear or
// DequantizeLinear node.
func (l *lowering) qdqParams(n *onnx.Node) ([]float32, []int64, onnx.DataType, error) {
	if len(n.Input) < 2 {
		return nil, nil, 0, fmt.Errorf("%s: no scale", n.Describe())
	}
	s, _, err := l.constFloats(n, n.Input[1])
	if err != nil {
		return nil, nil, 0, err
	}
	for _, v := range s {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			return nil, nil, 0, fmt.Errorf("%s: scale %g", n.Describe(), v)
		}
	}
	zdt := onnx.DataUint8 // the default zero point is uint8 0
	zp := make([]int64, len(s))
	if len(n.Input) > 2 && n.Input[2] != "" {
		t := l.consts[n.Input[2]]
		if zp, err = t.Int64(); err != nil {
			return nil, nil, 0, fmt.Errorf("%s: zero point: %w", n.Describe(), err)
		}
		if len(zp) != len(s) {
			return nil, nil, 0, fmt.Errorf("%s: %d scales and %d zero points", n.Describe(), len(s), len(zp))
		}
		zdt = t.DataType
	}
	return s, zp, zdt, nil
}

// actParams reads the per-tensor parameters of a QuantizeLinear or
// DequantizeLinear on an activation as int8 ones: uint8 codes (ONNX
// Runtime's default for activations) are the int8 codes plus 128, so
// (s, z) over 0..255 is exactly (s, z−128) over −128..127.
func (l *lowering) actParams(n *onnx.Node) (nn.ActQuant, error) {
	s, zp, zdt, err := l.qdqParams(n)
	if err != nil {
		return nn.ActQuant{}, err
	}
	if len(s) != 1 {
		return nn.ActQuant{}, fmt.Errorf("%s: per-channel activation quantization is not supported", n.Describe())
	}
	switch zdt {
	case onnx.DataInt8:
		return nn.ActQuant{Scale: s[0], ZeroPoint: int32(zp[0])}, nil
	case onnx.DataUint8:
		return nn.ActQuant{Scale: s[0], ZeroPoint: int32(zp[0]) - 128}, nil
	}
	return nn.ActQuant{}, fmt.Errorf("%s: activations quantized to %s: only INT8 and UINT8 are supported", n.Describe(), zdt)
}

func (l *lowering) quantizeLinear(n *onnx.Node) error {
	a, err := l.actParams(n)
	if err != nil {
		return err
	}
	if l.pending != nil && *l.pending != a {
		return fmt.Errorf("%s: quantizes a tensor quantized with other parameters already", n.Describe())
	}
	l.pending = &a
	l.qcodes, l.quantized = true, true
	l.cur = n.Output[0]
	return nil
}

func (l *lowering) dequantizeLinear(n *onnx.Node) error {
	if !l.qcodes {
		return fmt.Errorf("%s: dequantizes a computed tensor that no QuantizeLinear produced", n.Describe())
	}
	a, err := l.actParams(n)
	if err != nil {
		return err
	}
	if a != *l.pending {
		return fmt.Errorf("%s: parameters differ from the QuantizeLinear before it", n.Describe())
	}
	l.qcodes = false
	l.cur = n.Output[0]
	return nil
}

// dequantizeWeight evaluates DequantizeLinear of an integer constant. An
// INT8 one with zero points 0 is a weight quantized as Quant describes
// it: its codes and scales are kept for the layer that reads it. Others
// (INT32 biases, UINT8 or asymmetric weights) just become their float
// values.
func (l *lowering) dequantizeWeight(n *onnx.Node) error {
	src := l.consts[n.Input[0]]
	codes, err := src.Int64()
	if err != nil {
		return fmt.Errorf("%s: %w", n.Describe(), err)
	}
	s, zp, _, err := l.qdqParams(n)
	if err != nil {
		return err
	}
	symmetric := src.DataType == onnx.DataInt8
	for _, z := range zp {
		symmetric = symmetric && z == 0
	}
	axis64, err := n.AttrInt("axis", 1)
	if err != nil {
		return err
	}
	rank := int64(len(src.Dims))
	if axis64 < 0 {
		axis64 += rank
	}
	w := &lowerWeight{codes: codes, scales: s, axis: int(axis64)}
	vals := make([]float32, len(codes))
	if len(s) == 1 {
		w.axis = -1 // per tensor
		for i, c := range codes {
			vals[i] = float32(c-zp[0]) * s[0]
		}
	} else {
		if axis64 < 0 || axis64 >= rank || src.Dims[axis64] != int64(len(s)) {
			return fmt.Errorf("%s: %d scales along axis %d of a constant of shape %v", n.Describe(), len(s), axis64, src.Dims)
		}
		inner := 1
		for _, d := range src.Dims[axis64+1:] {
			inner *= int(d)
		}
		for i, c := range codes {
			ch := (i / inner) % len(s)
			vals[i] = float32(c-zp[ch]) * s[ch]
		}
	}
	out := onnx.NewFloat(n.Output[0], slices.Clone(src.Dims), vals)
	l.consts[out.Name] = out
	if symmetric {
		l.wcodes[out.Name] = w
		l.quantized = true
	}
	return nil
}

// quantizeConst evaluates QuantizeLinear of a float constant (weights
// that an exporter of fake-quantized models leaves in float, quantized in
// the graph): the codes, INT8 or UINT8 as the zero point says.
func (l *lowering) quantizeConst(n *onnx.Node) error {
	src := l.consts[n.Input[0]]
	x, err := src.Float32()
	if err != nil {
		return fmt.Errorf("%s: %w", n.Describe(), err)
	}
	s, zp, zdt, err := l.qdqParams(n)
	if err != nil {
		return err
	}
	lo, hi := int32(-128), int32(127)
	if zdt == onnx.DataUint8 {
		lo, hi = 0, 255
	} else if zdt != onnx.DataInt8 {
		return fmt.Errorf("%s: quantizing to %s: only INT8 and UINT8 are supported", n.Describe(), zdt)
	}
	ch := func(int) int { return 0 }
	if len(s) > 1 {
		axis, err := n.AttrInt("axis", 1)
		if err != nil {
			return err
		}
		rank := int64(len(src.Dims))
		if axis < 0 {
			axis += rank
		}
		if axis < 0 || axis >= rank || src.Dims[axis] != int64(len(s)) {
			return fmt.Errorf("%s: %d scales along axis %d of a constant of shape %v", n.Describe(), len(s), axis, src.Dims)
		}
		inner := 1
		for _, d := range src.Dims[axis+1:] {
			inner *= int(d)
		}
		ch = func(i int) int { return (i / inner) % len(s) }
	}
	codes := make([]int32, len(x))
	for i, v := range x {
		c := ch(i)
		codes[i] = quant.QuantizeValue(v, s[c], int32(zp[c]), lo, hi)
	}
	dims := slices.Clone(src.Dims)
	if zdt == onnx.DataUint8 {
		u := make([]uint8, len(codes))
		for i, c := range codes {
			u[i] = uint8(c)
		}
		l.consts[n.Output[0]] = onnx.NewUint8(n.Output[0], dims, u)
	} else {
		q := make([]int8, len(codes))
		for i, c := range codes {
			q[i] = int8(c)
		}
		l.consts[n.Output[0]] = onnx.NewInt8(n.Output[0], dims, q)
	}
	return nil
}
