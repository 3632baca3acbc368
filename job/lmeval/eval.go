package lmeval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"

	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/lm"
	"github.com/quantkit/quantkit/tokenizer"
)

// NamedModel is a model and the name a report gives it.
type NamedModel struct {
	Name  string
	Model *lm.Model
}

// EvalOptions are Eval's inputs.
type EvalOptions struct {
	Models []NamedModel
	// Ref, when set, is the reference whose next-token distributions the
	// models' are compared with (the unquantized model).
	Ref *NamedModel
	// Tokens is the text as ids, without BOS; when nil, Text is encoded
	// with Tokenizer (without special tokens).
	Tokens    []int
	Text      string
	Tokenizer *tokenizer.Tokenizer
	// Ctx is the window length in tokens (llama-perplexity's -c).
	Ctx int
	// Progress, when set, is called after each window of each model.
	Progress func(done, total int, what string)
}

// KLStats compare a model's next-token distributions Q with the
// reference's P over the scored positions.
type KLStats struct {
	// KL(P‖Q) = Σ P log(P/Q) per position: mean, 99th percentile (nearest
	// rank) and maximum, in nats.
	Mean float64 `json:"mean"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	// Top1 is the fraction of positions where the model's most likely
	// token is the reference's.
	Top1 float64 `json:"top1_agreement"`
}

// ModelEval is one model's results.
type ModelEval struct {
	Name string `json:"name"`
	// NLL is the mean negative log-likelihood of the scored tokens, in
	// nats; Perplexity is exp(NLL).
	NLL        float64  `json:"nll"`
	Perplexity float64  `json:"perplexity"`
	KL         *KLStats `json:"kl,omitempty"` // nil without a reference
}

// EvalReport is Eval's result.
type EvalReport struct {
	// Device is the backend the first model ran on (lm.Model.Device): on
	// the CPU it says whether packed weights were multiplied exactly or
	// with 8-bit activations.
	Device  string      `json:"device"`
	Ctx     int         `json:"ctx"`
	Windows int         `json:"windows"`
	Scored  int         `json:"scored_tokens"` // per model
	Ref     *ModelEval  `json:"ref,omitempty"`
	Models  []ModelEval `json:"models"`
}

// WriteTable writes one row per model, the reference first.
func (r *EvalReport) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "%d windows of %d tokens, %d tokens scored (the second half of each window); %s\n", r.Windows, r.Ctx, r.Scored, r.Device)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tperplexity\tNLL\tmean KL\tp99 KL\tmax KL\ttop-1 agree\t")
	row := func(m ModelEval, ref bool) {
		name := m.Name
		if ref {
			name += " (ref)"
		}
		fmt.Fprintf(tw, "%s\t%.4f\t%.5f\t", name, m.Perplexity, m.NLL)
		if m.KL != nil {
			fmt.Fprintf(tw, "%.3g\t%.3g\t%.3g\t%.2f%%\t\n", m.KL.Mean, m.KL.P99, m.KL.Max, 100*m.KL.Top1)
		} else {
			fmt.Fprintf(tw, "-\t-\t-\t-\t\n")
		}
	}
	if r.Ref != nil {
		row(*r.Ref, true)
	}
	for _, m := range r.Models {
		row(m, false)
	}
	return tw.Flush()
}

// Eval measures each model's perplexity on the text and, with a reference,
// the KL divergence of its next-token distributions from the reference's,
// as llama-perplexity (with --kl-divergence) does: the tokens are cut into
// len/Ctx non-overlapping windows of Ctx tokens (the tail that does not
// fill one is dropped), the first token of each window is replaced by BOS
// when the model has one, each window is one forward pass from an empty
// cache, and only the second half of the window is scored, the logits at
// positions Ctx/2 … Ctx−2 predicting tokens Ctx/2+1 … Ctx−1, so that every
// scored token sees at least Ctx/2 tokens of context. Log-softmax, NLL and
// KL are computed in float64.
func Eval(ctx context.Context, opt EvalOptions) (*EvalReport, error) {
	if len(opt.Models) == 0 {
		return nil, errors.New("lmeval: no models to evaluate")
	}
	toks := opt.Tokens
	if toks == nil {
		if opt.Tokenizer == nil {
			return nil, errors.New("lmeval: a text needs a tokenizer")
		}
		toks = opt.Tokenizer.EncodeWith(opt.Text, false)
	}
	if len(toks) == 0 {
		return nil, inputerr.Mark(errors.New("lmeval: the text is empty"))
	}
	if opt.Ctx < 4 {
		return nil, inputerr.Mark(fmt.Errorf("lmeval: a context of %d tokens: want at least 4", opt.Ctx))
	}
	windows := len(toks) / opt.Ctx
	if windows == 0 {
		return nil, inputerr.Mark(fmt.Errorf("lmeval: the text is %d tokens, shorter than one window of %d (lower --ctx)", len(toks), opt.Ctx))
	}
	all := slices.Clone(opt.Models)
	if opt.Ref != nil {
		all = append(all, *opt.Ref)
	}
	V := all[0].Model.Config.Vocab
	for _, m := range all {
		if m.Model.Config.Vocab != V {
			return nil, inputerr.Mark(fmt.Errorf("lmeval: %s has %d tokens, %s %d: models to compare share a vocabulary", m.Name, m.Model.Config.Vocab, all[0].Name, V))
		}
		for _, id := range toks {
			if id < 0 || id >= m.Model.Config.Vocab {
				return nil, inputerr.Mark(fmt.Errorf("lmeval: token %d out of %s's vocabulary of %d", id, m.Name, V))
			}
		}
	}
	first := opt.Ctx / 2
	perWindow := opt.Ctx - 1 - first
	rep := &EvalReport{Ctx: opt.Ctx, Windows: windows, Scored: windows * perWindow, Device: opt.Models[0].Model.Device()}

	type acc struct {
		nll   float64
		kl    []float64
		agree int
	}
	accs := make([]acc, len(all))
	caches := make([]*lm.Cache, len(all))
	for i, m := range all {
		caches[i] = m.Model.NewCache()
		if err := caches[i].Reserve(opt.Ctx); err != nil {
			return nil, err
		}
	}
	refLP := make([]float64, perWindow*V) // the reference's log-probabilities in this window
	lp := make([]float64, V)
	done, total := 0, windows*len(all)
	for w := range windows {
		// the reference first, so the models can compare as they go
		for k := len(all) - 1; k >= 0; k-- {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			m := all[k]
			isRef := opt.Ref != nil && k == len(all)-1
			win := slices.Clone(toks[w*opt.Ctx : (w+1)*opt.Ctx])
			if m.Model.Config.BOS >= 0 {
				win[0] = m.Model.Config.BOS
			}
			caches[k].Reset()
			logits, err := m.Model.Forward(caches[k], win)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m.Name, err)
			}
			a := &accs[k]
			for j := first; j < opt.Ctx-1; j++ {
				logSoftmax(lp, logits[j*V:(j+1)*V])
				a.nll -= lp[win[j+1]]
				r := refLP[(j-first)*V : (j-first+1)*V]
				switch {
				case isRef:
					copy(r, lp)
				case opt.Ref != nil:
					kl := 0.0
					for v, lr := range r {
						if p := math.Exp(lr); p > 0 {
							kl += p * (lr - lp[v])
						}
					}
					a.kl = append(a.kl, math.Max(kl, 0))
					if argmax64(r) == argmax64(lp) {
						a.agree++
					}
				}
			}
			done++
			if opt.Progress != nil {
				opt.Progress(done, total, m.Name)
			}
		}
	}
	for k, m := range all {
		a := accs[k]
		e := ModelEval{Name: m.Name, NLL: a.nll / float64(rep.Scored)}
		e.Perplexity = math.Exp(e.NLL)
		if opt.Ref != nil && k < len(opt.Models) {
			e.KL = klStats(a.kl, a.agree)
		}
		if k < len(opt.Models) {
			rep.Models = append(rep.Models, e)
		} else {
			rep.Ref = &e
		}
	}
	return rep, nil
}

func klStats(kl []float64, agree int) *KLStats {
	s := &KLStats{Top1: float64(agree) / float64(len(kl))}
	for _, v := range kl {
		s.Mean += v
	}
	s.Mean /= float64(len(kl))
	sorted := slices.Clone(kl)
	slices.Sort(sorted)
	s.Max = sorted[len(sorted)-1]
	s.P99 = sorted[int(math.Ceil(0.99*float64(len(sorted))))-1]
	return s
}

// logSoftmax is dst[i] = x[i] − log Σ exp x, in float64.
func logSoftmax(dst []float64, x []float32) {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	sum := 0.0
	for _, v := range x {
		sum += math.Exp(float64(v) - mx)
	}
	lse := mx + math.Log(sum)
	for i, v := range x {
		dst[i] = float64(v) - lse
	}
}

func argmax64(x []float64) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
