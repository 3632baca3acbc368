//go:build integration

package llamacpp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/testenv"
)

// repoRoot is the repository root, relative to this package's directory.
const repoRoot = "../.."

var stories260K = filepath.Join(repoRoot, "testdata", "llm", "stories260K")

// setupHint says how to get what the tests need.
const setupHint = "run `make integration`, or `eval \"$(scripts/integration/setup-llamacpp.sh)\"` before go test -tags integration"

// envFile returns the file named by the environment variable name, ending
// the test (testenv.Missing) when it is unset or names nothing.
func envFile(t *testing.T, name string) string {
	t.Helper()
	p := os.Getenv(name)
	if p == "" {
		testenv.Missing(t, "%s is not set: %s", name, setupHint)
	}
	if _, err := os.Stat(p); err != nil {
		testenv.Missing(t, "%s=%s: %v: %s", name, p, err, setupHint)
	}
	return p
}

// quantizeHarness returns the path of the llama_model_quantize harness.
func quantizeHarness(t *testing.T) string {
	t.Helper()
	envFile(t, "QUANTKIT_LLAMACPP_LIB_DIR") // the harness finds libllama there
	return envFile(t, "QUANTKIT_LLAMACPP_QUANTIZE")
}

// quantkitBin returns the quantkit binary under test: $QUANTKIT_BIN, or
// build/quantkit as make build writes it.
func quantkitBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("QUANTKIT_BIN"); p != "" {
		return envFile(t, "QUANTKIT_BIN")
	}
	p, err := filepath.Abs(filepath.Join(repoRoot, "build", "quantkit"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		testenv.Missing(t, "quantkit binary %s: %v: run make build (make integration does) or set QUANTKIT_BIN", p, err)
	}
	return p
}

// run runs name with args and returns its standard output; a failure ends
// the test with the command line, the exit status and what it printed.
func run(t *testing.T, what, name string, args ...string) []byte {
	t.Helper()
	out, err := runErr(name, args...)
	if err != nil {
		t.Fatalf("%s failed: %v", what, err)
	}
	return out
}

// runErr is run returning the failure.
func runErr(name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := fmt.Sprintf("%s: %v", commandLine(name, args), err)
		if stdout.Len() > 0 {
			msg += "\n--- stdout:\n" + tail(stdout.String())
		}
		if stderr.Len() > 0 {
			msg += "\n--- stderr:\n" + tail(stderr.String())
		}
		return nil, errors.New(strings.TrimRight(msg, "\n"))
	}
	return stdout.Bytes(), nil
}

func commandLine(name string, args []string) string {
	return strings.Join(append([]string{name}, args...), " ")
}

// tail keeps the last 40 lines of s.
func tail(s string) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > 40 {
		lines = append([]string{fmt.Sprintf("[%d lines before]\n", len(lines)-40)}, lines[len(lines)-40:]...)
	}
	return strings.Join(lines, "")
}

// llamaQuantize writes llama.cpp's own quantization of in to out:
// llama_model_quantize with llama-quantize's type name typ on 2 threads.
func llamaQuantize(t *testing.T, in, out, typ string, pure bool) {
	t.Helper()
	args := []string{"--nthread", "2"}
	if pure {
		args = append(args, "--pure")
	}
	args = append(args, in, out, typ)
	run(t, "llama.cpp's llama_model_quantize", quantizeHarness(t), args...)
}

// prompt is the token sequence the probabilities are taken over: BOS, "Once
// upon a time" (the story stories260K tells from BOS), then " do" and two
// byte-fallback tokens, off its beaten track.
var prompt = []int{1, 403, 407, 261, 378, 400, 34, 94}

// nextTokenProbs is what probs.mjs prints.
type nextTokenProbs struct {
	Model  string      `json:"model"`
	Tokens []int       `json:"tokens"`
	NVocab int         `json:"nVocab"`
	Probs  [][]float64 `json:"probs"` // [position][token id]
}

// llamaProbs returns llama.cpp's next-token probabilities for model at each
// position of prompt (CPU, F32 KV cache, no flash attention).
func llamaProbs(t *testing.T, model string) nextTokenProbs {
	t.Helper()
	return llamaProbsOf(t, model, prompt)
}

// llamaProbsOf is llamaProbs over tokens instead of prompt.
func llamaProbsOf(t *testing.T, model string, tokens []int) nextTokenProbs {
	t.Helper()
	script := envFile(t, "QUANTKIT_LLAMACPP_PROBS")
	envFile(t, "QUANTKIT_LLAMACPP_NODE_MODULES")
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "node is not installed (apt-get install nodejs): %v", err)
	}
	arg, _ := json.Marshal(tokens)
	out, err := runErr(node, script, model, string(arg))
	if err != nil {
		t.Fatalf("llama.cpp (node-llama-cpp) could not evaluate %s: %v", model, err)
	}
	var p nextTokenProbs
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("%s %s: output is not the expected JSON: %v\n%s", script, model, err, tail(string(out)))
	}
	if len(p.Probs) != len(tokens) {
		t.Fatalf("%s %s: %d rows of probabilities for %d tokens", script, model, len(p.Probs), len(tokens))
	}
	for i, row := range p.Probs {
		if len(row) != p.NVocab {
			t.Fatalf("%s %s: position %d has %d probabilities, nVocab %d", script, model, i, len(row), p.NVocab)
		}
	}
	return p
}

// klDivergence is KL(p‖q) = Σ p_i ln(p_i/q_i) in nats, after renormalising
// both (llama.cpp's float32 softmax sums to 1 within about 5e-6 only). A
// token that p gives mass and q none makes it +Inf.
func klDivergence(p, q []float64) float64 {
	var sp, sq float64
	for i := range p {
		sp += p[i]
		sq += q[i]
	}
	var kl float64
	for i := range p {
		pi, qi := p[i]/sp, q[i]/sq
		if pi == 0 {
			continue
		}
		if qi == 0 {
			return math.Inf(1)
		}
		kl += pi * math.Log(pi/qi)
	}
	return max(kl, 0)
}

// argmax is the index of the largest element (the first of equals).
func argmax(p []float64) int {
	best := 0
	for i, v := range p {
		if v > p[best] {
			best = i
		}
	}
	return best
}
