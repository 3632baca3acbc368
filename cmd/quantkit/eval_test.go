package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/onnxnet"
)

const mnistModel = "../../model/onnx/testdata/mnist-cnn.onnx"

// writeIDX writes a t10k set of n images of h×w (pixel i of image k is
// (k+i)%256) with labels k%classes into dir.
func writeIDX(t *testing.T, dir string, n, h, w, classes int) {
	t.Helper()
	img := binary.BigEndian.AppendUint32(nil, 0x803)
	for _, d := range []int{n, h, w} {
		img = binary.BigEndian.AppendUint32(img, uint32(d))
	}
	for k := range n {
		for i := range h * w {
			img = append(img, byte(k+i))
		}
	}
	lab := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 0x801), uint32(n))
	for k := range n {
		lab = append(lab, byte(k%classes))
	}
	if err := os.WriteFile(filepath.Join(dir, "t10k-images-idx3-ubyte"), img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "t10k-labels-idx1-ubyte"), lab, 0o644); err != nil {
		t.Fatal(err)
	}
}

// On a directory of idx files, the JSON report holds the model, the data
// and a count that the plain output repeats.
func TestEvalDir(t *testing.T) {
	dir := t.TempDir()
	writeIDX(t, dir, 37, 28, 28, 10)
	out, err := run(t, "eval", "--model", mnistModel, "--data", dir, "--batch", "16", "--device", "cpu", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var r EvalReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if r.Total != 37 || r.Params != 5994 || len(r.Layers) != 8 || r.Device != "cpu" || r.Quantized != nil ||
		r.Correct < 0 || r.Correct > 37 || r.Accuracy != float64(r.Correct)/37 || r.InputScale != 1 {
		t.Errorf("report %+v", r)
	}
	// The same run in batches of one and in text.
	text, err := run(t, "eval", "--model", mnistModel, "--data", dir, "--batch", "1", "--device", "cpu")
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if want := "(" + itoa(r.Correct) + " / 37)"; !strings.Contains(text, want) || !strings.Contains(text, "dense 256→10") {
		t.Errorf("text output lacks %q:\n%s", want, text)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// The real MNIST test set, where it can be found or fetched.
func TestEvalMNIST(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	out, err := run(t, "eval", "--model", mnistModel, "--data", "mnist", "--device", "cpu", "--json")
	if err != nil {
		if strings.Contains(err.Error(), "not found") {
			t.Skipf("MNIST unreachable here: %v", err)
		}
		t.Fatalf("%v\n%s", err, out)
	}
	var r EvalReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Correct != 9891 || r.Total != 10000 {
		t.Errorf("%d / %d, want 9891 / 10000", r.Correct, r.Total)
	}
}

func TestEvalErrors(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o755)
	writeIDX(t, data, 3, 28, 28, 10)
	small := filepath.Join(dir, "small")
	os.Mkdir(small, 0o755)
	writeIDX(t, small, 3, 5, 4, 10)
	many := filepath.Join(dir, "many")
	os.Mkdir(many, 0o755)
	writeIDX(t, many, 13, 28, 28, 12)

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
	m, _ := onnx.Read(mnistModel)
	m.Graph.Node[3].OpType = "LeakyRelu"
	b, _ := onnx.Encode(m)
	unsupported := write("leaky.onnx", b)

	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--model", truncated, "--data", data}, "cut.onnx"},
		{[]string{"--model", text, "--data", data}, "notes.onnx: not an ONNX model"},
		{[]string{"--model", filepath.Join(dir, "none.onnx"), "--data", data}, "none.onnx"},
		{[]string{"--model", unsupported, "--data", data}, `unsupported operator "LeakyRelu"`},
		{[]string{"--model", mnistModel, "--data", small}, "takes inputs of shape [1 28 28], but small holds images of 1×5×4"},
		{[]string{"--model", mnistModel, "--data", many}, "gives outputs of shape [10], but many has labels up to 11"},
		{[]string{"--model", mnistModel, "--data", filepath.Join(dir, "nowhere")}, "nowhere"},
		{[]string{"--model", mnistModel, "--data", data, "--split", "val"}, "split"},
		{[]string{"--model", mnistModel, "--data", data, "--batch", "0"}, "--batch"},
		{[]string{"--model", mnistModel, "--data", data, "--input-scale", "-1"}, "--input-scale"},
	}
	for _, c := range cases {
		out, err := run(t, append([]string{"eval", "--device", "cpu"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("eval %v: %v; want an error containing %q\n%s", c.args, err, c.want, out)
		}
	}
}

// A quantized model in QDQ form: the MNIST model with 8-bit per-channel
// weights and its input quantized exactly (pixels 0..255 as codes
// −128..127).
func TestEvalQDQ(t *testing.T) {
	net, err := onnxnet.Load(mnistModel)
	if err != nil {
		t.Fatal(err)
	}
	q := &nn.Quant{WeightBits: 8, WeightScale: make([][]float32, len(net.Layers)), Act: make([]nn.ActQuant, len(net.Layers)+1), Method: "max"}
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
		q.WeightScale[i] = s
	}
	q.Act[0] = nn.ActQuant{Scale: 1, ZeroPoint: -128}
	net.Quant = q
	dir := t.TempDir()
	path := filepath.Join(dir, "mnist-int8.onnx")
	if err := onnxnet.Save(net, path); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o755)
	writeIDX(t, data, 20, 28, 28, 10)
	sets := []string{data}
	if !testing.Short() {
		sets = append(sets, "mnist")
	}
	for _, set := range sets {
		out, err := run(t, "eval", "--model", path, "--data", set, "--device", "cpu", "--json")
		if err != nil {
			if set == "mnist" && strings.Contains(err.Error(), "not found") {
				t.Skipf("MNIST unreachable here: %v", err)
			}
			t.Fatalf("%v\n%s", err, out)
		}
		var r EvalReport
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		if r.Quantized == nil || r.Quantized.WeightBits != 8 || r.Quantized.Activations != 1 || r.Quantized.Method != "max" || r.Params != 5994 {
			t.Errorf("report %+v, quantized %+v", r, r.Quantized)
		}
		t.Logf("%s: %d / %d", set, r.Correct, r.Total)
		// 8-bit weights cost the MNIST model little.
		if set == "mnist" && (r.Total != 10000 || r.Correct < 9870) {
			t.Errorf("MNIST: %d / %d", r.Correct, r.Total)
		}
	}
}

// --engine int8 on a QDQ model with every Conv and Dense input quantized
// (ranges from the float model's activations on the data), and on a float
// model (an error).
func TestEvalInt8Engine(t *testing.T) {
	net, err := onnxnet.Load(mnistModel)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o755)
	writeIDX(t, data, 20, 28, 28, 10)
	set, err := dataset.Load(data, "test")
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, set.N*784)
	idx := make([]int, set.N)
	for i := range idx {
		idx[i] = i
	}
	set.Input(x, idx, 1)
	q := &nn.Quant{WeightBits: 8, WeightScale: make([][]float32, len(net.Layers)), Act: make([]nn.ActQuant, len(net.Layers)+1)}
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
		q.WeightScale[i] = s
		// The input of layer i: the float net cut before it.
		var amax float32 = 255
		if i > 0 {
			head := &nn.Net{Input: net.Input, Layers: net.Layers[:i]}
			y, err := float.Forward(cpu.New(), head, x, set.N)
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
	var reps [2]EvalReport
	for k, engine := range []string{"float", "int8"} {
		out, err := run(t, "eval", "--model", path, "--data", data, "--device", "cpu", "--engine", engine, "--json")
		if err != nil {
			t.Fatalf("%s: %v\n%s", engine, err, out)
		}
		if err := json.Unmarshal([]byte(out), &reps[k]); err != nil {
			t.Fatal(err)
		}
		if reps[k].Engine != engine || reps[k].Total != 20 || reps[k].Quantized == nil || reps[k].Quantized.Activations != 3 {
			t.Errorf("%s: %+v", engine, reps[k])
		}
	}
	// Integer arithmetic and its float emulation differ by rounding only.
	if d := reps[0].Correct - reps[1].Correct; d < -2 || d > 2 {
		t.Errorf("float %d, int8 %d correct of 20", reps[0].Correct, reps[1].Correct)
	}
	if _, err := run(t, "eval", "--model", mnistModel, "--data", data, "--engine", "int8"); err == nil || !strings.Contains(err.Error(), "is a float model") {
		t.Errorf("int8 engine on a float model: %v", err)
	}
	if _, err := run(t, "eval", "--model", mnistModel, "--data", data, "--engine", "fp16"); err == nil || !strings.Contains(err.Error(), "--engine") {
		t.Errorf("--engine fp16: %v", err)
	}
}

// A data set of no images is an error naming it, not 0 / 0.
func TestEvalEmpty(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "empty")
	os.Mkdir(dir, 0o755)
	writeIDX(t, dir, 0, 28, 28, 10)
	out, err := run(t, "eval", "--model", mnistModel, "--data", dir, "--device", "cpu")
	if err == nil || !strings.Contains(err.Error(), "no images") || !strings.Contains(err.Error(), dir) {
		t.Errorf("%v; want an error saying %s holds no images\n%s", err, dir, out)
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

// --limit N decompresses only the first N images: what follows them may
// be anything. Without --limit the corrupt stream is reported as such.
func TestEvalLimitReadsOnlyN(t *testing.T) {
	dir := t.TempDir()
	gzipCorruptAfter(t, dir, 5)
	out, err := run(t, "eval", "--model", mnistModel, "--data", dir, "--limit", "5", "--device", "cpu", "--json")
	if err != nil {
		t.Fatalf("--limit 5: %v\n%s", err, out)
	}
	var r EvalReport
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Total != 5 {
		t.Errorf("--limit 5: %d images, %v\n%s", r.Total, err, out)
	}
	_, err = run(t, "eval", "--model", mnistModel, "--data", dir, "--device", "cpu")
	if err == nil || !strings.Contains(err.Error(), "t10k-labels-idx1-ubyte.gz: gzip: flate: corrupt input") &&
		!strings.Contains(err.Error(), "t10k-images-idx3-ubyte.gz: gzip: flate: corrupt input") {
		t.Errorf("no --limit: %v; want the gzip error naming the file", err)
	}
}
