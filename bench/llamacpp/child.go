package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/lm"
)

// Loaders: how the quantkit side opens a model file.
const (
	loadGGUF   = "gguf"    // lm.LoadGGUF: the GGUF file in its own block types
	loadHF     = "hf"      // lm.LoadHFWith: a Hugging Face checkpoint, quantized weights packed (weight-only)
	loadHFW8A8 = "hf-w8a8" // lm.LoadHFWith with Int8: an int8 per-channel checkpoint as W8A8
	// loadHFHead and loadHFW8A8Head are the same with QuantizeHead: the
	// checkpoint's float lm_head int8 per channel at load.
	loadHFHead     = "hf-head"
	loadHFW8A8Head = "hf-w8a8-head"
	// loadGGUFFloat32 is lm.LoadGGUFWith with Float32: the GGUF file's
	// weights dequantized to float32 at load, the reference its packed
	// run should match (a diagnosis: `-child -load gguf-f32`).
	loadGGUFFloat32 = "gguf-f32"
)

// sample is what one run of either engine reports: the time of each
// timed prefill and decode, the greedy tokens after the prompt, and
// (filled by the parent from the child's rusage) its peak RSS.
type sample struct {
	PrefillNS []int64 `json:"prefill_ns"`
	DecodeNS  []int64 `json:"decode_ns"`
	Tokens    []int   `json:"tokens"`
	// Llama.cpp only.
	ModelDesc  string `json:"model_desc,omitempty"`
	ModelSize  int64  `json:"model_size,omitempty"`
	SystemInfo string `json:"system_info,omitempty"`
	// Set by the parent.
	MaxRSS int64 `json:"-"`
}

// childArgs is what the parent passes to a quantkit child.
type childArgs struct {
	load, path, promptFile string
	threads, prompt, gen   int
	agree                  int
}

// runChild measures quantkit as llamabench.c measures llama.cpp, in this
// process: the model loaded on the CPU backend with threads threads, one
// warm-up prefill and decode step, then a prefill of the prompt on an
// empty cache (ForwardLast: the logits of the last token only, as
// llama_decode of a batch computes them), agree greedy tokens after it
// (untimed), and gen single-token decodes from BOS on an emptied cache,
// each fed the argmax of the logits before it. It prints the sample as
// JSON on stdout.
func runChild(a childArgs) error {
	runtime.GOMAXPROCS(a.threads)
	cpu.SetThreads(a.threads)
	b := cpu.New()
	var (
		m   *lm.Model
		err error
	)
	switch a.load {
	case loadGGUF:
		m, err = lm.LoadGGUF(b, a.path)
	case loadHF, loadHFHead:
		m, err = lm.LoadHFWith(b, a.path, lm.LoadOptions{QuantizeHead: a.load == loadHFHead})
	case loadHFW8A8, loadHFW8A8Head:
		m, err = lm.LoadHFWith(b, a.path, lm.LoadOptions{Int8: true, QuantizeHead: a.load == loadHFW8A8Head})
	case loadGGUFFloat32:
		m, err = lm.LoadGGUFWith(b, a.path, lm.LoadOptions{Float32: true})
	default:
		return fmt.Errorf("-load %q: want %s, %s, %s, %s, %s or %s", a.load, loadGGUF, loadHF, loadHFHead, loadHFW8A8, loadHFW8A8Head, loadGGUFFloat32)
	}
	if err != nil {
		return err
	}
	defer m.Close()
	prompt, err := readPrompt(a.promptFile, a.prompt, m.Config.Vocab)
	if err != nil {
		return err
	}
	bos := max(m.Config.BOS, 0)
	c := m.NewCache()
	defer c.Close()

	prefill := func() ([]float32, time.Duration, error) {
		c.Reset()
		t := time.Now()
		logits, err := m.ForwardLast(c, prompt)
		return logits, time.Since(t), err
	}
	decode := func(n int) (time.Duration, error) {
		c.Reset()
		tok := bos
		t := time.Now()
		for range n {
			logits, err := m.ForwardLast(c, []int{tok})
			if err != nil {
				return 0, err
			}
			tok = argmax(logits)
		}
		return time.Since(t), nil
	}

	// Warm-up, as llama-bench: one prefill, one decode step.
	if _, _, err := prefill(); err != nil {
		return err
	}
	if _, err := decode(1); err != nil {
		return err
	}
	var s sample
	logits, d, err := prefill()
	if err != nil {
		return err
	}
	s.PrefillNS = append(s.PrefillNS, d.Nanoseconds())
	for i := range a.agree {
		tok := argmax(logits)
		s.Tokens = append(s.Tokens, tok)
		if i+1 < a.agree {
			if logits, err = m.ForwardLast(c, []int{tok}); err != nil {
				return err
			}
		}
	}
	if d, err = decode(a.gen); err != nil {
		return err
	}
	s.DecodeNS = append(s.DecodeNS, d.Nanoseconds())
	return json.NewEncoder(os.Stdout).Encode(s)
}

// argmax is the index of the largest element, the first among equals (as
// llamabench.c picks).
func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
