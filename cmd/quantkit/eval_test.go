package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/job/experiment"
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

// expRun runs the command line and returns what it printed to stdout and
// to stderr apart, and its error.
func expRun(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err = app.Run(append([]string{"quantkit"}, args...))
	return out.String(), errOut.String(), err
}

// eval's flags reach the job and its report is rendered: --json prints
// only the JSON report to stdout, --json-out writes the same to a file
// while the table goes to stdout.
func TestEvalCLI(t *testing.T) {
	dir := t.TempDir()
	writeIDX(t, dir, 37, 28, 28, 10)
	js := filepath.Join(dir, "r.json")
	out, _, err := expRun(t, "eval", "--model", mnistModel, "--data", dir, "--batch", "16", "--limit", "30",
		"--input-scale", "0.5", "--device", "cpu", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var r experiment.EvalReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if r.Total != 30 || r.Model != mnistModel || r.Device != "cpu" || r.InputScale != 0.5 || r.Engine != "float" || r.Split != "test" {
		t.Errorf("report %+v", r)
	}
	text, _, err := expRun(t, "eval", "--model", mnistModel, "--data", dir, "--device", "cpu", "--json-out", js)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	data, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &r); err != nil || r.Total != 37 {
		t.Fatalf("--json-out: %v, %+v", err, r)
	}
	if want := "(" + itoa(r.Correct) + " / 37)"; !strings.Contains(text, want) || !strings.Contains(text, "dense 256→10") {
		t.Errorf("text output lacks %q:\n%s", want, text)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// Flags out of range are refused before any work, naming the flag; the
// job's errors about the model or data are marked as bad input.
func TestEvalErrors(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o755)
	writeIDX(t, data, 3, 28, 28, 10)
	small := filepath.Join(dir, "small")
	os.Mkdir(small, 0o755)
	writeIDX(t, small, 3, 5, 4, 10)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--model", filepath.Join(dir, "none.onnx"), "--data", data}, filepath.Join(dir, "none.onnx") + ": no such file"},
		{[]string{"--model", mnistModel, "--data", small}, "eval: " + mnistModel + " takes inputs of shape [1 28 28], but small holds images of 1×5×4"},
		{[]string{"--model", mnistModel, "--data", filepath.Join(dir, "nowhere")}, "nowhere"},
		{[]string{"--model", mnistModel, "--data", data, "--engine", "int8"}, "is a float model"},
		{[]string{"--model", mnistModel, "--data", data, "--batch", "0"}, "--batch"},
		{[]string{"--model", mnistModel, "--data", data, "--limit", "-1"}, "--limit"},
		{[]string{"--model", mnistModel, "--data", data, "--input-scale", "-1"}, "--input-scale -1"},
		{[]string{"--model", mnistModel, "--data", data, "--engine", "fp16"}, `--engine "fp16"`},
		{[]string{"--model", mnistModel, "--data", data, "extra"}, "unexpected arguments"},
		{[]string{"--model", mnistModel, "--data", data, "--json-out", filepath.Join(dir, "no-such-dir", "r.json")}, "--json-out"},
	}
	for _, c := range cases {
		out, err := run(t, append([]string{"eval", "--device", "cpu"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("eval %v: %v; want a bad-input error containing %q\n%s", c.args, err, c.want, out)
		}
	}
}
