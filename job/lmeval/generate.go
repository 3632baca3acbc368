package lmeval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/internal/units"
	"github.com/quantkit/quantkit/lm"
	"github.com/quantkit/quantkit/tokenizer"
)

// GenerateOptions are Generate's inputs.
type GenerateOptions struct {
	Model     *lm.Model
	Tokenizer *tokenizer.Tokenizer
	// Prompt is encoded with the tokenizer's special tokens (BOS for a
	// Llama); an empty prompt is BOS alone.
	Prompt string
	N      int // tokens to generate at most; generation stops early at EOS
	// Temp is the sampling temperature; 0 (the default) is greedy decoding,
	// the argmax of the logits.
	Temp float64
	// TopP keeps, when sampling, the most likely tokens whose probabilities
	// add up to at least TopP (nucleus sampling); 0 or 1 keeps them all.
	TopP float64
	Seed uint64 // of the sampler's PCG generator
	// Context is the longest sequence allowed, prompt included (0: no
	// limit): a longer prompt is an error, generation stops at it.
	Context int
	// OnToken, when set, receives the text as it is generated: the pieces
	// concatenate to the report's Text.
	OnToken func(text string)
}

// GenerateReport is what Generate did.
type GenerateReport struct {
	PromptTokens int    `json:"prompt_tokens"`
	Tokens       []int  `json:"tokens"`      // the generated ids
	Text         string `json:"text"`        // the generated text
	StopReason   string `json:"stop_reason"` // "eos", "length" or "context"
	// Prefill is the forward pass over the prompt; decode the one-token
	// passes after it.
	PrefillSeconds         float64 `json:"prefill_seconds"`
	PrefillTokensPerSecond float64 `json:"prefill_tokens_per_second"`
	DecodeTokens           int     `json:"decode_tokens"`
	DecodeSeconds          float64 `json:"decode_seconds"`
	DecodeTokensPerSecond  float64 `json:"decode_tokens_per_second"`
	// WeightBytes is the memory the model's weights take as it holds
	// them (packed, int8 or float32: lm.Weights.WeightBytes).
	WeightBytes int64 `json:"weight_bytes"`
}

// WriteTable writes the timings.
func (r *GenerateReport) WriteTable(w io.Writer) error {
	_, err := fmt.Fprintf(w, "prompt %d tokens in %.3f s (%.1f tokens/s); generated %d tokens, %d decode steps in %.3f s (%.1f tokens/s); stopped at %s; weights %s in memory\n",
		r.PromptTokens, r.PrefillSeconds, r.PrefillTokensPerSecond, len(r.Tokens), r.DecodeTokens, r.DecodeSeconds, r.DecodeTokensPerSecond, r.StopReason, units.FormatBytes(r.WeightBytes))
	return err
}

func rate(n int, s float64) float64 {
	if s <= 0 {
		return 0
	}
	return float64(n) / s
}

// Generate encodes the prompt, runs it through the model and appends up to
// N tokens, each the argmax of the next-token logits (Temp 0) or drawn from
// softmax(logits/Temp) restricted to the top-p nucleus. The text streams
// through OnToken: the whole sequence is decoded after each token and the
// new suffix is emitted, holding back a trailing U+FFFD (an incomplete
// UTF-8 sequence of byte tokens) until the bytes after it arrive, so that
// multi-byte characters and SentencePiece's spaces come out as a decode of
// the whole would give them.
func Generate(ctx context.Context, opt GenerateOptions) (*GenerateReport, error) {
	m, tok := opt.Model, opt.Tokenizer
	switch {
	case m == nil || tok == nil:
		return nil, errors.New("lmeval: Generate needs a model and a tokenizer")
	case opt.N < 0:
		return nil, inputerr.Mark(fmt.Errorf("lmeval: %d tokens to generate", opt.N))
	case !(opt.Temp >= 0) || math.IsInf(opt.Temp, 0):
		return nil, inputerr.Mark(fmt.Errorf("lmeval: temperature %g: want 0 (greedy) or more", opt.Temp))
	case !(opt.TopP >= 0 && opt.TopP <= 1):
		return nil, inputerr.Mark(fmt.Errorf("lmeval: top-p %g: want a probability in [0, 1]", opt.TopP))
	}
	prompt := tok.EncodeWith(opt.Prompt, true)
	if len(prompt) == 0 {
		bos := tok.BOS()
		if bos < 0 {
			bos = m.Config.BOS
		}
		if bos < 0 {
			return nil, inputerr.Mark(errors.New("lmeval: the prompt is empty and the model has no BOS token to start from"))
		}
		prompt = []int{bos}
	}
	if opt.Context > 0 && len(prompt) > opt.Context {
		return nil, inputerr.Mark(fmt.Errorf("lmeval: the prompt is %d tokens, longer than the context of %d", len(prompt), opt.Context))
	}
	eos := map[int]bool{}
	for _, e := range []int{m.Config.EOS, tok.EOS()} {
		if e >= 0 {
			eos[e] = true
		}
	}
	rep := &GenerateReport{PromptTokens: len(prompt), StopReason: "length", Tokens: []int{}, WeightBytes: m.Weights.WeightBytes()}
	cache := m.NewCache()
	if err := cache.Reserve(len(prompt) + opt.N); err != nil {
		return nil, err
	}
	start := time.Now()
	logits, err := m.ForwardLast(cache, prompt)
	if err != nil {
		return nil, err
	}
	rep.PrefillSeconds = time.Since(start).Seconds()
	rep.PrefillTokensPerSecond = rate(len(prompt), rep.PrefillSeconds)

	rng := rand.New(rand.NewPCG(opt.Seed, 0x9e3779b97f4a7c15))
	s := &sampler{temp: opt.Temp, topP: opt.TopP, rng: rng}
	stream := newStreamer(tok, prompt, opt.OnToken)
	V := m.Config.Vocab
	decodeStart := time.Now()
	for len(rep.Tokens) < opt.N {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		next := s.next(logits[len(logits)-V:])
		rep.Tokens = append(rep.Tokens, next)
		stream.add(next)
		if eos[next] {
			rep.StopReason = "eos"
			break
		}
		if len(rep.Tokens) == opt.N {
			break
		}
		if opt.Context > 0 && cache.Len() >= opt.Context {
			rep.StopReason = "context"
			break
		}
		if logits, err = m.Forward(cache, []int{next}); err != nil {
			return rep, err
		}
		rep.DecodeTokens++
	}
	rep.DecodeSeconds = time.Since(decodeStart).Seconds()
	rep.DecodeTokensPerSecond = rate(rep.DecodeTokens, rep.DecodeSeconds)
	rep.Text = stream.finish()
	return rep, nil
}

// sampler picks the next token from logits.
type sampler struct {
	temp, topP float64
	rng        *rand.Rand
	idx        []int
	p          []float64
}

func (s *sampler) next(logits []float32) int {
	if s.temp == 0 {
		return argmax(logits)
	}
	// softmax(logits/temp) in float64
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	s.p = s.p[:0]
	sum := 0.0
	for _, v := range logits {
		e := math.Exp((float64(v) - mx) / s.temp)
		s.p = append(s.p, e)
		sum += e
	}
	s.idx = s.idx[:0]
	for i := range s.p {
		s.p[i] /= sum
		s.idx = append(s.idx, i)
	}
	keep := len(s.idx)
	if s.topP > 0 && s.topP < 1 {
		// the smallest set of the most likely tokens with mass ≥ TopP;
		// equal probabilities in id order, so a seed gives one sequence.
		slices.SortStableFunc(s.idx, func(a, b int) int {
			switch {
			case s.p[a] > s.p[b]:
				return -1
			case s.p[a] < s.p[b]:
				return 1
			}
			return 0
		})
		cum := 0.0
		for k, i := range s.idx {
			cum += s.p[i]
			if cum >= s.topP {
				keep = k + 1
				break
			}
		}
	}
	mass := 0.0
	for _, i := range s.idx[:keep] {
		mass += s.p[i]
	}
	r := s.rng.Float64() * mass
	for _, i := range s.idx[:keep] {
		r -= s.p[i]
		if r < 0 {
			return i
		}
	}
	return s.idx[keep-1]
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// streamer emits the text of generated tokens as they come: the decode of
// the whole sequence (the prompt with its special tokens, then the
// generated tokens that are not special) less the decoded prompt, less what
// it emitted before. Special tokens are skipped, except that a llama2.c
// tokenizer decodes with them: it drops the space of the first word after
// BOS only when BOS is decoded too (tokenizer.json's Metaspace decoder
// strips the start of the text instead).
// finish returns what was emitted, so the pieces always concatenate to it.
type streamer struct {
	tok       *tokenizer.Tokenizer
	ids       []int
	promptLen int
	base      string // the decoded prompt
	text      string // the generated text, as of the last token
	out       strings.Builder
	emit      func(string)
	decode    func([]int) string
}

func newStreamer(tok *tokenizer.Tokenizer, prompt []int, emit func(string)) *streamer {
	s := &streamer{tok: tok, ids: slices.Clone(prompt), promptLen: len(prompt), emit: emit, decode: tok.DecodeSkipSpecial}
	if tok.Kind() == tokenizer.Llama2C {
		s.decode = tok.Decode
	}
	s.base = s.decode(prompt)
	return s
}

func (s *streamer) add(id int) {
	if s.tok.IsSpecial(id) {
		return
	}
	s.ids = append(s.ids, id)
	full := s.decode(s.ids)
	if strings.HasPrefix(full, s.base) {
		s.text = full[len(s.base):]
	} else {
		// a clean-up rule changed the prompt's own text across the
		// boundary: decode the generated ids alone.
		s.text = s.decode(s.ids[s.promptLen:])
	}
	s.flush(strings.TrimRight(s.text, string(utf8.RuneError)))
}

// flush emits ready past what was emitted, when it extends it (a decode
// that rewrites text already out waits until it extends it again).
func (s *streamer) flush(ready string) {
	done := s.out.String()
	if len(ready) <= len(done) || !strings.HasPrefix(ready, done) {
		return
	}
	s.out.WriteString(ready[len(done):])
	if s.emit != nil {
		s.emit(ready[len(done):])
	}
}

func (s *streamer) finish() string {
	s.flush(s.text)
	return s.out.String()
}
