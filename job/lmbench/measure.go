package lmbench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/lm"
)

// job is what one measurement (a precision of an input, one round) needs:
// what a child process reads on its stdin.
type job struct {
	Path      string `json:"path"`
	Format    string `json:"format"`
	Float     bool   `json:"float"` // a float Hugging Face checkpoint
	Precision string `json:"precision"`
	GroupSize int    `json:"group_size"`
	// QuantizeHead quantizes lm_head too (Options.QuantizeHead).
	QuantizeHead bool   `json:"quantize_head"`
	PromptLen    int    `json:"prompt_len"`
	Gen          int    `json:"gen"`
	Batch        int    `json:"batch"`
	Seed         uint64 `json:"seed"`
	Threads      int    `json:"threads"`
	Device       string `json:"device"`
	// Energy asks for the energy windows: a child opens Device's counter
	// itself; IdleW is the idle power measured once by Run.
	Energy bool           `json:"energy"`
	Window energy.Options `json:"window"`
	IdleW  float64        `json:"idle_w"`
}

// sample is what one measurement gives.
type sample struct {
	Backend     string  `json:"backend"` // the backend's Describe
	Params      int64   `json:"params"`
	Layers      int     `json:"layers"`
	KVDim       int     `json:"kv_dim"`
	WeightBytes int64   `json:"weight_bytes"`
	LoadSeconds float64 `json:"load_seconds"`
	// TTFTSeconds is a new sequence's prompt through a fresh cache to the
	// first token's id (the cache's allocation, the prefill, the logits
	// of the last position and their argmax); PrefillSeconds the same
	// prompt again through the cache, reset, alone.
	TTFTSeconds        float64 `json:"ttft_seconds"`
	PrefillSeconds     float64 `json:"prefill_seconds"`
	PrefillTokens      int     `json:"prefill_tokens"`
	DecodeSeconds      float64 `json:"decode_seconds"`
	DecodeTokens       int     `json:"decode_tokens"`
	BatchDecodeSeconds float64 `json:"batch_decode_seconds,omitempty"`
	BatchDecodeTokens  int     `json:"batch_decode_tokens,omitempty"`
	// PeakRSS is the process's peak resident memory (0: not measured).
	PeakRSS int64 `json:"peak_rss_bytes"`
	// Prefill and Decode are the energy windows (nil when not measured;
	// EnergyNote says why when it was asked for).
	Prefill    *energy.Window `json:"prefill_energy,omitempty"`
	Decode     *energy.Window `json:"decode_energy,omitempty"`
	EnergyNote string         `json:"energy_note,omitempty"`
}

// forwardBatch runs one decode step of len(cs) sequences, tokens[i]
// appended to cs[i], as one batched pass (lm.Model.ForwardBatch: the
// weights read once for the batch), and returns len(cs)·Vocab logits.
func forwardBatch(m *lm.Model, cs []*lm.Cache, tokens []int) ([]float32, error) {
	return m.ForwardBatch(cs, tokens)
}

// BatchDecode says how batch decode runs, for the report.
const BatchDecode = "one step of every sequence in one pass (lm.Model.ForwardBatch): projections and lm_head as GEMMs of batch rows, attention per sequence over its own KV cache"

// Prompt is the synthetic prompt of sequence seq: n token ids drawn
// uniformly from [0, vocab) by a PCG seeded (seed, seq), the same in
// every round and for every precision.
func Prompt(seed uint64, seq, n, vocab int) []int {
	r := rand.New(rand.NewPCG(seed, uint64(seq)))
	ids := make([]int, n)
	for i := range ids {
		ids[i] = r.IntN(vocab)
	}
	return ids
}

// load opens j's model on b as j's precision asks.
func load(b backend.Backend, j *job) (*lm.Model, error) {
	switch j.Format {
	case "gguf":
		return lm.LoadGGUF(b, j.Path)
	case "llama2.c":
		return lm.LoadLlama2C(b, j.Path)
	}
	opt, err := loadOptions(j.Precision, j.GroupSize, j.Float)
	if err != nil {
		return nil, err
	}
	// A float checkpoint's head takes the precision's scheme; a quantized
	// checkpoint's float head int8 per channel (lm.LoadOptions).
	if opt.Quantize != nil || !j.Float {
		opt.QuantizeHead = j.QuantizeHead
	}
	return lm.LoadHFWith(b, j.Path, opt)
}

// measure runs j in this process: opens the backend, loads the model,
// warms up once (a prefill and a few decode steps) and measures. src,
// when not nil, is the energy counter of the windows.
func measure(ctx context.Context, j *job, src energy.Source) (s *sample, err error) {
	if j.Threads > 0 {
		defer cpu.SetThreads(cpu.SetThreads(j.Threads))
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(j.Threads))
	}
	b, _, err := backend.Open(j.Device)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", j.Device, err)
	}
	defer b.Close()
	t0 := time.Now()
	m, err := load(b, j)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, m.Close()) }()
	cfg := m.Config
	s = &sample{Backend: b.Describe(), Layers: cfg.Layers, KVDim: cfg.KVDim(), WeightBytes: m.Weights.WeightBytes(),
		LoadSeconds: time.Since(t0).Seconds(), Params: params(cfg, m.Weights)}
	prompt := Prompt(j.Seed, 0, j.PromptLen, cfg.Vocab)
	stop := func() error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("lmbench: %w", err)
		}
		return nil
	}
	// decode runs n greedy steps from tok on c.
	decode := func(c *lm.Cache, tok, n int) error {
		for range n {
			logits, err := m.ForwardLast(c, []int{tok})
			if err != nil {
				return err
			}
			if err := stop(); err != nil {
				return err
			}
			tok = argmax(logits)
		}
		return nil
	}

	// Warm-up: the same paths once, untimed.
	warm := m.NewCache()
	positions := j.PromptLen + j.Gen
	err = warm.Reserve(positions)
	var logits []float32
	if err == nil {
		logits, err = m.ForwardLast(warm, prompt)
	}
	if err == nil {
		err = decode(warm, argmax(logits), min(j.Gen, 4))
	}
	warm.Close()
	if err != nil {
		return nil, err
	}
	if err := stop(); err != nil {
		return nil, err
	}

	c := m.NewCache()
	defer c.Close()
	t0 = time.Now()
	if err := c.Reserve(positions); err != nil {
		return nil, err
	}
	logits, err = m.ForwardLast(c, prompt)
	if err != nil {
		return nil, err
	}
	first := argmax(logits)
	s.TTFTSeconds = time.Since(t0).Seconds()

	c.Truncate(0)
	t0 = time.Now()
	if _, err := m.ForwardLast(c, prompt); err != nil {
		return nil, err
	}
	if err := b.Synchronize(); err != nil {
		return nil, err
	}
	s.PrefillSeconds, s.PrefillTokens = time.Since(t0).Seconds(), len(prompt)

	t0 = time.Now()
	if err := decode(c, first, j.Gen); err != nil {
		return nil, err
	}
	if err := b.Synchronize(); err != nil {
		return nil, err
	}
	s.DecodeSeconds, s.DecodeTokens = time.Since(t0).Seconds(), j.Gen

	if j.Batch > 1 {
		if s.BatchDecodeSeconds, err = batchDecode(m, j, stop); err != nil {
			return nil, err
		}
		if err := b.Synchronize(); err != nil {
			return nil, err
		}
		s.BatchDecodeTokens = j.Batch * j.Gen
	}

	if src != nil {
		if why := unreadable(src); why != "" {
			s.EnergyNote = why
			return s, nil
		}
		sync := b.Synchronize
		// Prefill: the prompt through the reset cache, n times.
		w, err := energy.Measure(src, j.Window, j.IdleW, func(n int) error {
			for range n {
				c.Truncate(0)
				if _, err := m.ForwardLast(c, prompt); err != nil {
					return err
				}
				if err := stop(); err != nil {
					return err
				}
			}
			return sync()
		})
		if err != nil {
			return nil, err
		}
		s.Prefill = &w
		// Decode: Gen steps after the prompt, the cache cut back to the
		// prompt before each call.
		w, err = energy.Measure(src, j.Window, j.IdleW, func(n int) error {
			for range n {
				c.Truncate(len(prompt))
				if err := decode(c, first, j.Gen); err != nil {
					return err
				}
			}
			return sync()
		})
		if err != nil {
			return nil, err
		}
		s.Decode = &w
	}
	return s, nil
}

// batchDecode prefills j.Batch sequences (prompts 1 … Batch, untimed) and
// times j.Gen decode steps of all of them together (forwardBatch).
func batchDecode(m *lm.Model, j *job, stop func() error) (float64, error) {
	cs := make([]*lm.Cache, j.Batch)
	toks := make([]int, j.Batch)
	defer func() {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
	}()
	V := m.Config.Vocab
	for i := range cs {
		cs[i] = m.NewCache()
		if err := cs[i].Reserve(j.PromptLen + j.Gen); err != nil {
			return 0, err
		}
		logits, err := m.ForwardLast(cs[i], Prompt(j.Seed, i+1, j.PromptLen, V))
		if err != nil {
			return 0, err
		}
		toks[i] = argmax(logits)
	}
	t0 := time.Now()
	for range j.Gen {
		logits, err := forwardBatch(m, cs, toks)
		if err != nil {
			return 0, err
		}
		if err := stop(); err != nil {
			return 0, err
		}
		for i := range toks {
			toks[i] = argmax(logits[i*V : (i+1)*V])
		}
	}
	return time.Since(t0).Seconds(), nil
}

// argmax is the index of the largest logit, the first among equals.
func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// params counts the model's parameters from its configuration: the
// embedding, the lm_head when it is not tied, the norms, the projections
// and their biases.
func params(c lm.Config, w *lm.Weights) int64 {
	h, q, kv, ff, v := int64(c.Hidden), int64(c.QDim()), int64(c.KVDim()), int64(c.Intermediate), int64(c.Vocab)
	n := v*h + h
	if w.LMHead != nil || w.LMHeadPacked != nil {
		n += v * h
	}
	per := 2*h + q*h + 2*kv*h + h*q + 3*ff*h
	for _, l := range w.Layers {
		n += per + int64(len(l.QBias)+len(l.KBias)+len(l.VBias)+len(l.OBias))
	}
	return n
}

// unreadable says why src can be read neither as a counter nor as power,
// in words for the report; "" when it can.
func unreadable(src energy.Source) string {
	_, errE := src.Energy()
	if errE == nil {
		return ""
	}
	_, errP := src.Power()
	if errP == nil {
		return ""
	}
	return fmt.Sprintf("%s: energy counter: %v; power: %v", src.Name(), errE, errP)
}
