// Command ort runs the same ONNX image classifiers through ONNX Runtime
// (onnxruntime-node, CPU) and through quantkit's float and integer engines
// on the same number of threads, and prints images per second at each
// batch size with quantkit's ratio to ONNX Runtime (above 1: quantkit is
// faster) and each side's accuracy. It is the comparison of issue 21, not
// part of make test; run it with
//
//	make bench-ort                         # MNIST CNN, 2 threads, batch 1 and 256
//	make bench-ort ORT_FLAGS='-rounds 5 -qdq model.onnx'
//
// which installs onnxruntime-node@1.30.0 once into
// ${QUANTKIT_CACHE:-~/.cache/quantkit}/onnxruntime-node-1.30.0 (npm, with
// --onnxruntime-node-install=skip: the CPU build only), or by hand with
// -ort-modules pointing at that node_modules.
//
// The models, written into -work:
//
//	FP32  the ONNX model zoo MNIST CNN as onnxnet.Export writes it (opset
//	      13, batch dimension N; the zoo file itself fixes batch 1)
//	INT8  its int8 PTQ (percentile calibration on 512 training images)
//	      as onnxnet.ExportQDQ writes it, or the QDQ file -qdq names (for
//	      example `quantkit qat -o x.onnx`)
//	INT8 ORT form  the same network in the form ONNX Runtime's own
//	      quantizer writes (int32 biases, a QuantizeLinear after each
//	      Conv/Gemm: see ortForm), which ONNX Runtime fuses into its int8
//	      kernels; quantkit's column repeats its INT8 QDQ figure
//
// Both sides read the same files: quantkit lowers them again
// (onnxnet.Lower, onnxnet.ImportQDQ) and runs float.Engine and
// integer.Engine on the CPU backend with GOMAXPROCS = -threads. Each side
// runs the 10,000 MNIST test images in batches (the last one short) after a
// warm-up pass, in -rounds rounds that alternate between the two sides;
// the figure is each side's best pass. ONNX Runtime's
// time is that of session.run from Node, tensor creation included
// (intra-op threads = -threads, sequential execution, all graph
// optimizations).
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/calib"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/integer"
	"github.com/quantkit/quantkit/nn/mnistcnn"
	"github.com/quantkit/quantkit/nn/onnxnet"
)

type options struct {
	ortModules string
	work       string
	qdq        string
	threads    int
	rounds     int
	batches    []int
	images     int
}

func main() {
	cache := os.Getenv("QUANTKIT_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "quantkit")
	}
	var o options
	var batches string
	flag.StringVar(&o.ortModules, "ort-modules", filepath.Join(cache, "onnxruntime-node-1.30.0", "node_modules"), "`DIR`: node_modules holding onnxruntime-node")
	flag.StringVar(&o.work, "work", filepath.Join(cache, "bench-ort"), "`DIR` for the ONNX files and inputs")
	flag.StringVar(&o.qdq, "qdq", "", "QDQ ONNX `FILE` to time as INT8 instead of the PTQ export")
	flag.IntVar(&o.threads, "threads", 2, "threads on each side")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds, each a timed pass over the images on each side (the best counts)")
	flag.StringVar(&batches, "batches", "1,256", "batch sizes, comma-separated")
	flag.IntVar(&o.images, "images", 10000, "test images (at most 10,000)")
	flag.Parse()
	for _, f := range strings.Split(batches, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || b < 1 {
			fmt.Fprintf(os.Stderr, "ort: -batches: %q is not a batch size\n", f)
			os.Exit(2)
		}
		o.batches = append(o.batches, b)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "ort:", err)
		os.Exit(1)
	}
}

// model is one ONNX file both sides run.
type model struct {
	name, path string
	net        *nn.Net
}

// result is one side's pass over the images at one batch size.
type result struct {
	seconds float64
	correct int
}

func run(o options) error {
	if _, err := os.Stat(filepath.Join(o.ortModules, "onnxruntime-node")); err != nil {
		return fmt.Errorf("onnxruntime-node not found in %s (npm install onnxruntime-node@1.30.0 --onnxruntime-node-install=skip there, or make bench-ort)", o.ortModules)
	}
	if err := os.MkdirAll(o.work, 0o755); err != nil {
		return err
	}
	test, err := dataset.LoadLimit("mnist", "test", o.images)
	if err != nil {
		return err
	}
	models, err := prepare(o)
	if err != nil {
		return err
	}
	in := models[0].net.Input
	x := make([]float32, test.N*test.C*test.H*test.W)
	idx := make([]int, test.N)
	for i := range idx {
		idx[i] = i
	}
	test.Input(x, idx, models[0].net.InputScale)
	inputs, labels := filepath.Join(o.work, "inputs.f32"), filepath.Join(o.work, "labels.u8")
	if err := writeF32(inputs, x); err != nil {
		return err
	}
	if err := os.WriteFile(labels, test.Labels, 0o644); err != nil {
		return err
	}

	// Rounds alternate between the two sides, so that a load on the
	// machine that comes and goes touches both alike; each side keeps its
	// best pass.
	runtime.GOMAXPROCS(o.threads)
	ort, qk := map[string]result{}, map[string]result{}
	better := func(m map[string]result, k string, r result) {
		if old, ok := m[k]; !ok || r.seconds < old.seconds {
			m[k] = r
		}
	}
	for range o.rounds {
		res, err := runORT(o, models, inputs, labels, test.N, in)
		if err != nil {
			return err
		}
		for k, r := range res {
			better(ort, k, r)
		}
		done := map[*nn.Net]string{} // the model name a net was timed under
		for _, m := range models {
			for _, b := range o.batches {
				if name, ok := done[m.net]; ok {
					better(qk, key(m.name, b), qk[key(name, b)])
					continue
				}
				r, err := runQuantkit(m, x, test.Labels, b, 1)
				if err != nil {
					return fmt.Errorf("%s: %w", m.name, err)
				}
				better(qk, key(m.name, b), r)
			}
			if _, ok := done[m.net]; !ok {
				done[m.net] = m.name
			}
		}
	}
	fmt.Printf("MNIST CNN, %d test images, %d threads, best pass of %d interleaved rounds (%s, %d CPUs)\n\n",
		test.N, o.threads, o.rounds, runtime.GOARCH, runtime.NumCPU())
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tbatch\tORT images/s\tquantkit images/s\tquantkit/ORT\tORT acc %\tquantkit acc %\t")
	for _, m := range models {
		for _, b := range o.batches {
			q, r := qk[key(m.name, b)], ort[key(m.name, b)]
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.2f×\t%.2f\t%.2f\t\n", m.name, b,
				float64(test.N)/r.seconds, float64(test.N)/q.seconds, r.seconds/q.seconds,
				100*float64(r.correct)/float64(test.N), 100*float64(q.correct)/float64(test.N))
		}
	}
	tw.Flush()
	fmt.Printf("\nfiles: %s\n", o.work)
	return nil
}

func key(name string, batch int) string { return name + "/" + strconv.Itoa(batch) }

// prepare writes the FP32 and INT8 ONNX files and lowers them again.
func prepare(o options) ([]model, error) {
	m, err := onnx.Decode(mnistcnn.ONNX)
	if err != nil {
		return nil, err
	}
	net, err := onnxnet.Lower(m)
	if err != nil {
		return nil, err
	}
	fp32 := filepath.Join(o.work, "mnist-fp32.onnx")
	if err := onnxnet.Save(net, fp32); err != nil {
		return nil, err
	}
	qdq := o.qdq
	if qdq == "" {
		train, err := dataset.LoadLimit("mnist", "train", 512)
		if err != nil {
			return nil, err
		}
		idx := make([]int, train.N)
		for i := range idx {
			idx[i] = i
		}
		s := &nn.Samples{N: train.N, Fill: func(dst []float32, which []int) {
			train.Input(dst, which, net.InputScale)
		}}
		st, err := calib.CollectActStats(net, s, 0, 0)
		if err != nil {
			return nil, err
		}
		q, err := calib.PTQ(net, st, calib.PTQOptions{Method: "percentile"})
		if err != nil {
			return nil, err
		}
		qdq = filepath.Join(o.work, "mnist-int8-qdq.onnx")
		if err := onnxnet.Save(q, qdq); err != nil {
			return nil, err
		}
	}
	var out []model
	for _, f := range []struct{ name, path string }{{"FP32", fp32}, {"INT8 QDQ", qdq}} {
		m, err := onnx.Read(f.path)
		if err != nil {
			return nil, err
		}
		n, err := onnxnet.Lower(m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		if f.name != "FP32" && n.Quant == nil {
			return nil, fmt.Errorf("%s: not a quantized (QDQ) model", f.path)
		}
		out = append(out, model{name: f.name, path: f.path, net: n})
	}
	// ONNX Runtime's own int8 form of the same model, which quantkit runs
	// as the QDQ file (the same integer network).
	m, err = onnx.Read(qdq)
	if err != nil {
		return nil, err
	}
	if m, err = ortForm(m); err != nil {
		return nil, fmt.Errorf("%s: %w", qdq, err)
	}
	ortPath := filepath.Join(o.work, "mnist-int8-ort.onnx")
	if err := onnx.Write(ortPath, m); err != nil {
		return nil, err
	}
	out = append(out, model{name: "INT8 ORT form", path: ortPath, net: out[1].net})
	return out, nil
}

func writeF32(path string, x []float32) error {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return os.WriteFile(path, b, 0o644)
}

// runORT times the models through ort.mjs.
func runORT(o options, models []model, inputs, labels string, n int, sample []int) (map[string]result, error) {
	type reqModel struct {
		Name string `json:"name"`
		Path string `json:"path"`
	}
	req := struct {
		Models  []reqModel `json:"models"`
		Inputs  string     `json:"inputs"`
		Labels  string     `json:"labels"`
		Images  int        `json:"images"`
		Sample  []int      `json:"sample"`
		Batches []int      `json:"batches"`
		Threads int        `json:"threads"`
		Rounds  int        `json:"rounds"`
	}{Inputs: inputs, Labels: labels, Images: n, Sample: sample, Batches: o.batches, Threads: o.threads, Rounds: 1}
	for _, m := range models {
		req.Models = append(req.Models, reqModel{m.name, m.path})
	}
	js, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	reqPath := filepath.Join(o.work, "request.json")
	if err := os.WriteFile(reqPath, js, 0o644); err != nil {
		return nil, err
	}
	script, err := scriptPath()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("node", script, reqPath)
	cmd.Env = append(os.Environ(), "ORT_NODE_MODULES="+o.ortModules)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("node %s: %w\n%s", script, err, stderr.String())
	}
	res := map[string]result{}
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	for sc.Scan() {
		var line struct {
			Model   string  `json:"model"`
			Batch   int     `json:"batch"`
			Seconds float64 `json:"seconds"`
			Correct int     `json:"correct"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("node %s: output %q: %w", script, sc.Text(), err)
		}
		res[key(line.Model, line.Batch)] = result{line.Seconds, line.Correct}
	}
	for _, m := range models {
		for _, b := range o.batches {
			if _, ok := res[key(m.name, b)]; !ok {
				return nil, fmt.Errorf("node %s: no timing of %s at batch %d", script, m.name, b)
			}
		}
	}
	return res, nil
}

// scriptPath finds ort.mjs beside this command's source (go run from the
// repository root, or the directory itself).
func scriptPath() (string, error) {
	for _, p := range []string{"bench/ort/ort.mjs", "ort.mjs"} {
		if _, err := os.Stat(p); err == nil {
			return filepath.Abs(p)
		}
	}
	return "", errors.New("ort.mjs not found: run from the repository root (go run ./bench/ort)")
}

// runQuantkit times one model on the CPU backend: float.Engine for a
// float net, integer.Engine for a quantized one.
func runQuantkit(m model, x []float32, labels []uint8, batch, rounds int) (result, error) {
	var e interface {
		Forward(x []float32, batch int, out []float32) error
		OutLen() int
		InLen() int
		Close() error
	}
	var err error
	if m.net.Quant == nil {
		e, err = float.New(cpu.New(), m.net)
	} else {
		e, err = integer.New(cpu.New(), m.net)
	}
	if err != nil {
		return result{}, err
	}
	defer e.Close()
	in, k := e.InLen(), e.OutLen()
	n := len(x) / in
	out := make([]float32, n*k)
	pass := func() (float64, int, error) {
		t0 := time.Now()
		for b0 := 0; b0 < n; b0 += batch {
			nb := min(batch, n-b0)
			if err := e.Forward(x[b0*in:(b0+nb)*in], nb, out[b0*k:(b0+nb)*k]); err != nil {
				return 0, 0, err
			}
		}
		s := time.Since(t0).Seconds()
		correct := 0
		for i := range n {
			if nn.Argmax(out[i*k:(i+1)*k]) == int(labels[i]) {
				correct++
			}
		}
		return s, correct, nil
	}
	if _, _, err := pass(); err != nil { // warm-up
		return result{}, err
	}
	best := result{seconds: math.Inf(1)}
	for range rounds {
		s, c, err := pass()
		if err != nil {
			return result{}, err
		}
		best = result{min(best.seconds, s), c}
	}
	return best, nil
}
