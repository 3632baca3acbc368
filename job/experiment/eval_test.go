package experiment

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/onnxnet"
)

func evalOpt(model, data string) EvalOptions {
	return EvalOptions{Backend: cpuBackend(), Model: model, Data: data}
}

// On a directory of idx files: the report describes the model and the
// data, and its count is an independent count's, in batches that do and
// do not divide the images.
func TestEvalDir(t *testing.T) {
	dir := t.TempDir()
	writeIDX(t, dir, "t10k", 37, 28, 28, 10, 0)
	set, err := dataset.Load(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	net, err := onnxnet.Load(mnistModel)
	if err != nil {
		t.Fatal(err)
	}
	want := refCorrect(t, net, set, 37, false)
	for _, batch := range []int{1, 16, 0} {
		opt := evalOpt(mnistModel, dir)
		opt.Batch = batch
		r, err := Eval(context.Background(), opt)
		if err != nil {
			t.Fatal(err)
		}
		if r.Total != 37 || r.Correct != want || r.Params != 5994 || len(r.Layers) != 8 || r.Device != "cpu" || r.Quantized != nil ||
			r.Accuracy != float64(want)/37 || r.InputScale != 1 || r.Engine != "float" || r.Split != "test" || r.ImageFile != set.ImageFile {
			t.Errorf("batch %d: report %+v, want %d correct", batch, r, want)
		}
	}
}

// The real MNIST test set, where it can be found or fetched.
func TestEvalMNIST(t *testing.T) {
	needMNIST(t)
	r, err := Eval(context.Background(), evalOpt(mnistModel, "mnist"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Correct != 9891 || r.Total != 10000 {
		t.Errorf("%d / %d, want 9891 / 10000", r.Correct, r.Total)
	}
}

// Models and data that cannot be evaluated are input errors naming what
// is wrong; the model is read first.
func TestEvalInputErrors(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	data, small, many, empty := mk("data"), mk("small"), mk("many"), mk("empty")
	writeIDX(t, data, "t10k", 3, 28, 28, 10, 0)
	writeIDX(t, small, "t10k", 3, 5, 4, 10, 0)
	writeIDX(t, many, "t10k", 13, 28, 28, 12, 0)
	writeIDX(t, empty, "t10k", 0, 28, 28, 10, 0)
	model, err := os.ReadFile(mnistModel)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	truncated := write("cut.onnx", model[:len(model)-3000])
	text := write("notes.onnx", []byte("this is not a model\n"))
	m, err := onnx.Read(mnistModel)
	if err != nil {
		t.Fatal(err)
	}
	m.Graph.Node[3].OpType = "LeakyRelu"
	b, err := onnx.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	unsupported := write("leaky.onnx", b)
	nowhere := filepath.Join(dir, "nowhere")
	for _, c := range []struct {
		opt  EvalOptions
		want string
	}{
		{evalOpt(truncated, nowhere), "cut.onnx"},
		{evalOpt(text, nowhere), "notes.onnx: not an ONNX model"},
		{evalOpt(filepath.Join(dir, "none.onnx"), nowhere), "none.onnx"},
		{evalOpt(unsupported, nowhere), `unsupported operator "LeakyRelu"`},
		{evalOpt(mnistModel, small), "takes inputs of shape [1 28 28], but small holds images of 1×5×4"},
		{evalOpt(mnistModel, many), "gives outputs of shape [10], but many has labels up to 11"},
		{evalOpt(mnistModel, nowhere), "nowhere"},
		{evalOpt(mnistModel, empty), filepath.Join(empty, "t10k-images-idx3-ubyte") + " holds no images"},
		{EvalOptions{Backend: cpuBackend(), Model: mnistModel, Data: data, Split: "val"}, "split"},
		{EvalOptions{Backend: cpuBackend(), Model: mnistModel, Data: data, Engine: "fp16"}, `engine "fp16"`},
		{EvalOptions{Backend: cpuBackend(), Model: mnistModel, Data: data, Engine: "int8"}, "is a float model"},
		{EvalOptions{Backend: cpuBackend(), Model: mnistModel, Data: data, InputScale: -1}, "input scale -1"},
	} {
		_, err := Eval(context.Background(), c.opt)
		if err == nil || !errors.Is(err, inputerr.ErrInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want a bad-input error containing %q", c.opt, err, c.want)
		}
	}
}

// perChannelScales are max |w| / 127 of each output channel of each layer
// with weights.
func perChannelScales(net *nn.Net) [][]float32 {
	scales := make([][]float32, len(net.Layers))
	for i, l := range net.Layers {
		var w []float32
		var outC int
		switch l := l.(type) {
		case *nn.Conv2D:
			w, outC = l.W, l.OutC
		case *nn.Dense:
			w, outC = l.W, l.Out
		default:
			continue
		}
		s := make([]float32, outC)
		k := len(w) / outC
		for o := range s {
			for _, v := range w[o*k : (o+1)*k] {
				s[o] = max(s[o], v/127, -v/127)
			}
		}
		scales[i] = s
	}
	return scales
}

// A quantized model in QDQ form: the MNIST model with 8-bit per-channel
// weights and its input quantized exactly (pixels 0..255 as codes
// −128..127).
func TestEvalQDQ(t *testing.T) {
	net, err := onnxnet.Load(mnistModel)
	if err != nil {
		t.Fatal(err)
	}
	net.Quant = &nn.Quant{WeightBits: 8, WeightScale: perChannelScales(net), Act: make([]nn.ActQuant, len(net.Layers)+1), Method: "max"}
	net.Quant.Act[0] = nn.ActQuant{Scale: 1, ZeroPoint: -128}
	dir := t.TempDir()
	path := filepath.Join(dir, "mnist-int8.onnx")
	if err := onnxnet.Save(net, path); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	writeIDX(t, data, "t10k", 20, 28, 28, 10, 0)
	sets := []string{data}
	if !testing.Short() {
		needMNIST(t)
		sets = append(sets, "mnist")
	}
	for _, set := range sets {
		r, err := Eval(context.Background(), evalOpt(path, set))
		if err != nil {
			t.Fatal(err)
		}
		if q := r.Quantized; q == nil || q.WeightBits != 8 || q.Activations != 1 || q.Method != "max" || r.Params != 5994 {
			t.Errorf("report %+v, quantized %+v", r, r.Quantized)
		}
		// 8-bit weights cost the MNIST model little.
		if set == "mnist" && (r.Total != 10000 || r.Correct < 9870) {
			t.Errorf("MNIST: %d / %d", r.Correct, r.Total)
		}
	}
}

// The int8 engine on a QDQ model with every Conv and Dense input
// quantized (ranges from the float model's activations on the data)
// agrees with its float emulation but for rounding.
func TestEvalInt8Engine(t *testing.T) {
	net, err := onnxnet.Load(mnistModel)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeIDX(t, dir, "t10k", 20, 28, 28, 10, 0)
	set, err := dataset.Load(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, set.N*784)
	set.Input(x, firstN(set.N), 1)
	q := &nn.Quant{WeightBits: 8, WeightScale: perChannelScales(net), Act: make([]nn.ActQuant, len(net.Layers)+1)}
	for i, s := range q.WeightScale {
		if s == nil {
			continue
		}
		// The input of layer i: the float net cut before it.
		var amax float32 = 255
		if i > 0 {
			head := &nn.Net{Input: net.Input, Layers: net.Layers[:i]}
			y, err := float.Forward(cpuBackend(), head, x, set.N)
			if err != nil {
				t.Fatal(err)
			}
			amax = 0
			for _, v := range y {
				amax = max(amax, v)
			}
		}
		q.Act[i] = nn.ActQuant{Scale: amax / 255, ZeroPoint: -128}
	}
	net.Quant = q
	path := filepath.Join(dir, "mnist-w8a8.onnx")
	if err := onnxnet.Save(net, path); err != nil {
		t.Fatal(err)
	}
	var reps [2]*EvalReport
	for k, engine := range []string{"float", "int8"} {
		opt := evalOpt(path, dir)
		opt.Engine = engine
		if reps[k], err = Eval(context.Background(), opt); err != nil {
			t.Fatalf("%s: %v", engine, err)
		}
		if r := reps[k]; r.Engine != engine || r.Total != 20 || r.Quantized == nil || r.Quantized.Activations != 3 {
			t.Errorf("%s: %+v", engine, r)
		}
	}
	if d := reps[0].Correct - reps[1].Correct; d < -2 || d > 2 {
		t.Errorf("float %d, int8 %d correct of 20", reps[0].Correct, reps[1].Correct)
	}
}

// gzipCorruptAfter writes a t10k set whose headers declare 1000 images of
// 28×28 and whose gzip streams hold the first n of them (and their
// labels), then turn to garbage.
func gzipCorruptAfter(t *testing.T, dir string, n int) {
	t.Helper()
	img := binary.BigEndian.AppendUint32(nil, 0x803)
	for _, d := range []int{1000, 28, 28} {
		img = binary.BigEndian.AppendUint32(img, uint32(d))
	}
	img = append(img, make([]byte, n*784)...)
	lab := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 0x801), 1000)
	lab = append(lab, make([]byte, n)...)
	for name, b := range map[string][]byte{"t10k-images-idx3-ubyte.gz": img, "t10k-labels-idx1-ubyte.gz": lab} {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Flush()
		if err := os.WriteFile(filepath.Join(dir, name), append(buf.Bytes(), 0xff, 0xff, 0xff, 0xff), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Limit N decompresses only the first N images: what follows them may be
// anything. Without a limit the corrupt stream is reported as such.
func TestEvalLimitReadsOnlyN(t *testing.T) {
	dir := t.TempDir()
	gzipCorruptAfter(t, dir, 5)
	opt := evalOpt(mnistModel, dir)
	opt.Limit = 5
	r, err := Eval(context.Background(), opt)
	if err != nil || r.Total != 5 {
		t.Fatalf("limit 5: %v, %+v", err, r)
	}
	_, err = Eval(context.Background(), evalOpt(mnistModel, dir))
	if err == nil || !strings.Contains(err.Error(), "t10k-labels-idx1-ubyte.gz: gzip: flate: corrupt input") &&
		!strings.Contains(err.Error(), "t10k-images-idx3-ubyte.gz: gzip: flate: corrupt input") {
		t.Errorf("no limit: %v; want the gzip error naming the file", err)
	}
}

// A model with NaN or infinite weights is refused, naming the tensors,
// before the data is looked at; allowed, it is evaluated with a warning
// naming them.
func TestEvalNonFinite(t *testing.T) {
	m, err := onnx.Read(mnistModel)
	if err != nil {
		t.Fatal(err)
	}
	init := m.Graph.InitializerByName("Parameter5")
	vals, err := init.Float32()
	if err != nil {
		t.Fatal(err)
	}
	vals[3] = float32(math.NaN())
	*init = *onnx.NewFloat("Parameter5", init.Dims, vals)
	dir := t.TempDir()
	path := filepath.Join(dir, "nan.onnx")
	if err := onnx.Write(path, m); err != nil {
		t.Fatal(err)
	}
	_, err = Eval(context.Background(), evalOpt(path, filepath.Join(dir, "no-such-data")))
	if !errors.Is(err, onnxnet.ErrNonFinite) || !errors.Is(err, inputerr.ErrInput) || !strings.Contains(err.Error(), `initializer "Parameter5": 1 NaN of 200 values`) {
		t.Errorf("%v", err)
	}
	writeIDX(t, dir, "t10k", 4, 28, 28, 10, 0)
	var warnings []string
	opt := evalOpt(path, dir)
	opt.AllowNonFinite = true
	opt.Warn = func(msg string) { warnings = append(warnings, msg) }
	r, err := Eval(context.Background(), opt)
	if err != nil || r.Total != 4 {
		t.Fatalf("%v, %+v", err, r)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], path+` has non-finite weights, loaded as they are: initializer "Parameter5": 1 NaN of 200 values`) {
		t.Errorf("warnings %q", warnings)
	}
}
