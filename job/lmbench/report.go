package lmbench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/internal/units"
)

// Report is what Run measured.
type Report struct {
	Date    time.Time     `json:"date"`
	Machine bench.Machine `json:"machine"`
	Device  string        `json:"device"`
	// PromptLen, Gen and Batch are the sizes measured; Prompt says how
	// the prompt's token ids were drawn.
	PromptLen int    `json:"prompt_len"`
	Gen       int    `json:"gen"`
	Batch     int    `json:"batch"`
	Rounds    int    `json:"rounds"`
	Seed      uint64 `json:"seed"`
	Threads   int    `json:"threads,omitempty"`
	Prompt    string `json:"prompt"`
	// Isolation says where each precision ran and how its peak RSS was
	// measured; BatchDecode how a batch decode step runs (Batch > 1).
	Isolation   string `json:"isolation"`
	BatchDecode string `json:"batch_decode,omitempty"`
	Rows        []Row  `json:"rows"`
	// Reference is the row the ratios are over: the first fp32 row, else
	// the first row.
	Reference string `json:"reference"`
	// EnergyNote says why energy was not measured when it was asked for.
	EnergyNote string `json:"energy_note,omitempty"`
}

// Stat is one figure over the rounds: their median, least and greatest,
// and each round's.
type Stat struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Rounds []float64 `json:"rounds"`
}

func newStat(xs []float64) Stat {
	s := Stat{Rounds: xs, Min: xs[0], Max: xs[0]}
	for _, x := range xs {
		s.Min, s.Max = min(s.Min, x), max(s.Max, x)
	}
	s.Median = bench.Median(append([]float64(nil), xs...))
	return s
}

// Spread is half the range over the median, (Max−Min)/2/Median.
func (s Stat) Spread() float64 {
	if s.Median == 0 {
		return 0
	}
	return (s.Max - s.Min) / 2 / s.Median
}

// Row is one precision of one model.
type Row struct {
	Model  string `json:"model"`
	Format string `json:"format"` // hf, gguf, llama2.c
	// Precision is one of Precisions ("" for an input that runs only as
	// it is); Label says what runs ("w4a16 (int4 group 128)", "gguf Q4_0").
	Precision string `json:"precision,omitempty"`
	Label     string `json:"label"`
	Backend   string `json:"backend"`
	Params    int64  `json:"params"`
	// WeightBytes is what the weights take as the model holds them
	// (lm.Weights.WeightBytes); KVCacheBytes the KV cache of one sequence
	// of PromptLen+Gen positions, layers·positions·2·KVDim·4 bytes
	// (BatchKVCacheBytes: Batch of them).
	WeightBytes       int64 `json:"weight_bytes"`
	KVCacheBytes      int64 `json:"kv_cache_bytes"`
	BatchKVCacheBytes int64 `json:"batch_kv_cache_bytes,omitempty"`
	// PeakRSSBytes is the largest peak resident memory over the rounds
	// (Report.Isolation says how it was measured; 0: not measured), and
	// RSSOverWeightsKV its ratio to WeightBytes+KVCacheBytes (+ the batch's).
	PeakRSSBytes     int64   `json:"peak_rss_bytes"`
	RSSOverWeightsKV float64 `json:"rss_over_weights_kv,omitempty"`
	LoadSeconds      Stat    `json:"load_seconds"`
	// TTFTSeconds: a fresh sequence's prompt to its first token's id.
	TTFTSeconds Stat `json:"ttft_seconds"`
	// PrefillTokens is the prompt's tokens per round, DecodeTokens the
	// decoded ones at batch 1, BatchDecodeTokens at Batch (Batch·Gen).
	PrefillTokens              int        `json:"prefill_tokens"`
	PrefillTokensPerSecond     Stat       `json:"prefill_tokens_per_second"`
	DecodeTokens               int        `json:"decode_tokens"`
	DecodeTokensPerSecond      Stat       `json:"decode_tokens_per_second"`
	BatchDecodeTokens          int        `json:"batch_decode_tokens,omitempty"`
	BatchDecodeTokensPerSecond *Stat      `json:"batch_decode_tokens_per_second,omitempty"`
	Energy                     *RowEnergy `json:"energy,omitempty"`
	EnergyNote                 string     `json:"energy_note,omitempty"`
	// The ratios over the reference row (Report.Reference): speeds over
	// its speeds, J/token over its J/token (gross); 0 where either is
	// missing.
	PrefillVsRef     float64 `json:"prefill_vs_ref,omitempty"`
	DecodeVsRef      float64 `json:"decode_vs_ref,omitempty"`
	BatchDecodeVsRef float64 `json:"batch_decode_vs_ref,omitempty"`
	PrefillJVsRef    float64 `json:"prefill_j_vs_ref,omitempty"`
	DecodeJVsRef     float64 `json:"decode_j_vs_ref,omitempty"`
}

// RowEnergy is a row's energy per token: the medians over the rounds of
// each window's energy over the tokens it processed, gross and with the
// idle power over the window's time subtracted.
type RowEnergy struct {
	Source string        `json:"source"`
	Method energy.Method `json:"method"`
	IdleW  float64       `json:"idle_w"`
	// Prefill: the prompt's tokens; decode: the decoded tokens (batch 1).
	PrefillJPerToken    float64 `json:"prefill_j_per_token"`
	PrefillNetJPerToken float64 `json:"prefill_net_j_per_token"`
	DecodeJPerToken     float64 `json:"decode_j_per_token"`
	DecodeNetJPerToken  float64 `json:"decode_net_j_per_token"`
	PrefillAvgPowerW    float64 `json:"prefill_avg_power_w"`
	DecodeAvgPowerW     float64 `json:"decode_avg_power_w"`
	WindowSeconds       float64 `json:"window_seconds"` // the shortest window
	Note                string  `json:"note,omitempty"`
}

// PerToken is a window's energy per token when each of its calls
// processed tokens tokens: gross, EnergyJ/(Calls·tokens), and net,
// (EnergyJ − IdleW·Seconds)/(Calls·tokens).
func PerToken(w energy.Window, tokens int) (gross, net float64) {
	if tokens <= 0 {
		return 0, 0
	}
	return w.PerCall() / float64(tokens), w.NetPerCall() / float64(tokens)
}

// summarize makes case c's row from its rounds' samples.
func summarize(c precisionCase, ss []*sample, o Options) Row {
	s0 := ss[0]
	r := Row{Model: c.in.Path, Format: c.in.Format, Precision: c.Precision, Label: c.Label, Backend: s0.Backend,
		Params: s0.Params, WeightBytes: s0.WeightBytes,
		KVCacheBytes:  int64(s0.Layers) * int64(o.PromptLen+o.Gen) * 2 * int64(s0.KVDim) * 4,
		PrefillTokens: s0.PrefillTokens, DecodeTokens: s0.DecodeTokens, BatchDecodeTokens: s0.BatchDecodeTokens}
	if o.Batch > 1 {
		r.BatchKVCacheBytes = int64(o.Batch) * r.KVCacheBytes
	}
	var load, ttft, pre, dec, bat []float64
	var ej [4][]float64
	var pw [2][]float64
	var e *RowEnergy
	for _, s := range ss {
		load, ttft = append(load, s.LoadSeconds), append(ttft, s.TTFTSeconds)
		pre = append(pre, float64(s.PrefillTokens)/s.PrefillSeconds)
		dec = append(dec, float64(s.DecodeTokens)/s.DecodeSeconds)
		if s.BatchDecodeTokens > 0 {
			bat = append(bat, float64(s.BatchDecodeTokens)/s.BatchDecodeSeconds)
		}
		r.PeakRSSBytes = max(r.PeakRSSBytes, s.PeakRSS)
		if s.EnergyNote != "" {
			r.EnergyNote = s.EnergyNote
		}
		if s.Prefill == nil || s.Decode == nil {
			continue
		}
		if e == nil {
			e = &RowEnergy{Source: s.Prefill.Source, Method: s.Prefill.Method, IdleW: s.Prefill.IdleW,
				WindowSeconds: s.Prefill.Seconds}
		}
		if s.Prefill.Method != energy.Counter || s.Decode.Method != energy.Counter {
			e.Method = energy.Sampled
		}
		for _, n := range []string{s.Prefill.Note, s.Decode.Note} {
			if n != "" && !strings.Contains(e.Note, n) {
				e.Note = strings.TrimPrefix(e.Note+"; "+n, "; ")
			}
		}
		e.WindowSeconds = min(e.WindowSeconds, s.Prefill.Seconds, s.Decode.Seconds)
		g, n := PerToken(*s.Prefill, s.PrefillTokens)
		ej[0], ej[1] = append(ej[0], g), append(ej[1], n)
		g, n = PerToken(*s.Decode, s.DecodeTokens)
		ej[2], ej[3] = append(ej[2], g), append(ej[3], n)
		pw[0], pw[1] = append(pw[0], s.Prefill.AvgPowerW), append(pw[1], s.Decode.AvgPowerW)
	}
	r.LoadSeconds, r.TTFTSeconds = newStat(load), newStat(ttft)
	r.PrefillTokensPerSecond, r.DecodeTokensPerSecond = newStat(pre), newStat(dec)
	if len(bat) > 0 {
		st := newStat(bat)
		r.BatchDecodeTokensPerSecond = &st
	}
	if e != nil {
		med := func(xs []float64) float64 { return bench.Median(xs) }
		e.PrefillJPerToken, e.PrefillNetJPerToken = med(ej[0]), med(ej[1])
		e.DecodeJPerToken, e.DecodeNetJPerToken = med(ej[2]), med(ej[3])
		e.PrefillAvgPowerW, e.DecodeAvgPowerW = med(pw[0]), med(pw[1])
		r.Energy, r.EnergyNote = e, ""
	}
	if kv := r.WeightBytes + r.KVCacheBytes + r.BatchKVCacheBytes; r.PeakRSSBytes > 0 && kv > 0 {
		r.RSSOverWeightsKV = float64(r.PeakRSSBytes) / float64(kv)
	}
	return r
}

// ratios sets every row's ratios over the reference row: the first fp32
// row, else the first.
func (rep *Report) ratios() {
	if len(rep.Rows) == 0 {
		return
	}
	ref := &rep.Rows[0]
	for i := range rep.Rows {
		if rep.Rows[i].Precision == "fp32" {
			ref = &rep.Rows[i]
			break
		}
	}
	rep.Reference = ref.Model + " " + ref.Label
	over := func(a, b float64) float64 {
		if a == 0 || b == 0 {
			return 0
		}
		return a / b
	}
	for i := range rep.Rows {
		r := &rep.Rows[i]
		r.PrefillVsRef = over(r.PrefillTokensPerSecond.Median, ref.PrefillTokensPerSecond.Median)
		r.DecodeVsRef = over(r.DecodeTokensPerSecond.Median, ref.DecodeTokensPerSecond.Median)
		if r.BatchDecodeTokensPerSecond != nil && ref.BatchDecodeTokensPerSecond != nil {
			r.BatchDecodeVsRef = over(r.BatchDecodeTokensPerSecond.Median, ref.BatchDecodeTokensPerSecond.Median)
		}
		if r.Energy != nil && ref.Energy != nil {
			r.PrefillJVsRef = over(r.Energy.PrefillJPerToken, ref.Energy.PrefillJPerToken)
			r.DecodeJVsRef = over(r.Energy.DecodeJPerToken, ref.Energy.DecodeJPerToken)
		}
	}
}

// WriteJSON writes r indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r for people: a row per precision, medians over the
// rounds with their spread (± half the range), energy columns when any
// row has energy, and what was measured how below.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintln(w, r.Machine)
	backendName := r.Device
	if len(r.Rows) > 0 && r.Rows[0].Backend != "" {
		backendName = r.Rows[0].Backend
	}
	fmt.Fprintf(w, "device: %s; prompt %d tokens, %d generated, batch %d; %d rounds, medians (± half the range)\n",
		backendName, r.PromptLen, r.Gen, r.Batch, r.Rounds)
	withEnergy, withBatch := false, false
	for _, x := range r.Rows {
		withEnergy = withEnergy || x.Energy != nil
		withBatch = withBatch || x.BatchDecodeTokensPerSecond != nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "model\tprecision\tweights\tKV cache\tpeak RSS\tRSS/(W+KV)\tTTFT\tprefill tok/s\tdecode tok/s\t")
	if withBatch {
		fmt.Fprintf(tw, "batch %d tok/s\t", r.Batch)
	}
	fmt.Fprint(tw, "prefill ×\tdecode ×\t")
	if withBatch {
		fmt.Fprint(tw, "batch ×\t")
	}
	if withEnergy {
		fmt.Fprint(tw, "prefill J/tok\tnet\tdecode J/tok\tnet\tprefill J ×\tdecode J ×\t")
	}
	fmt.Fprintln(tw)
	for _, x := range r.Rows {
		rss, over := "-", "-"
		if x.PeakRSSBytes > 0 {
			rss, over = units.FormatBytes(x.PeakRSSBytes), fmt.Sprintf("%.2f", x.RSSOverWeightsKV)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t", x.Model, x.Label, units.FormatBytes(x.WeightBytes),
			units.FormatBytes(x.KVCacheBytes+x.BatchKVCacheBytes), rss, over, seconds(x.TTFTSeconds), rate(x.PrefillTokensPerSecond),
			rate(x.DecodeTokensPerSecond))
		if withBatch {
			if s := x.BatchDecodeTokensPerSecond; s != nil {
				fmt.Fprintf(tw, "%s\t", rate(*s))
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t", ratio(x.PrefillVsRef), ratio(x.DecodeVsRef))
		if withBatch {
			fmt.Fprintf(tw, "%s\t", ratio(x.BatchDecodeVsRef))
		}
		if e := x.Energy; e != nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t", joules(e.PrefillJPerToken), joules(e.PrefillNetJPerToken),
				joules(e.DecodeJPerToken), joules(e.DecodeNetJPerToken), ratio(x.PrefillJVsRef), ratio(x.DecodeJVsRef))
		} else if withEnergy {
			fmt.Fprint(tw, "-\t-\t-\t-\t-\t-\t")
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "ratios over %s\n", r.Reference)
	fmt.Fprintf(w, "prompt: %s\n", r.Prompt)
	fmt.Fprintf(w, "isolation: %s\n", r.Isolation)
	if r.BatchDecode != "" {
		fmt.Fprintf(w, "batch decode: %s\n", r.BatchDecode)
	}
	notes := map[string]bool{}
	for _, x := range r.Rows {
		if e := x.Energy; e != nil {
			note := fmt.Sprintf("energy: %s, %s, idle %.1f W, windows of at least %.1f s", e.Source, e.Method, e.IdleW, e.WindowSeconds)
			if e.Note != "" {
				note += " (" + e.Note + ")"
			}
			if !notes[note] {
				notes[note] = true
				fmt.Fprintln(w, note)
			}
		}
	}
	if r.EnergyNote != "" {
		fmt.Fprintln(w, "energy not measured:", strings.TrimPrefix(r.EnergyNote, "energy: "))
	}
	return nil
}

func rate(s Stat) string {
	return fmt.Sprintf("%.4g ±%.0f%%", s.Median, 100*s.Spread())
}

func seconds(s Stat) string {
	v := s.Median
	var t string
	switch {
	case v >= 1:
		t = fmt.Sprintf("%.2f s", v)
	case v >= 1e-3:
		t = fmt.Sprintf("%.1f ms", v*1e3)
	default:
		t = fmt.Sprintf("%.0f µs", v*1e6)
	}
	return fmt.Sprintf("%s ±%.0f%%", t, 100*s.Spread())
}

func joules(j float64) string {
	switch {
	case j >= 1:
		return fmt.Sprintf("%.3g J", j)
	case j >= 1e-3 || j <= -1e-3:
		return fmt.Sprintf("%.3g mJ", j*1e3)
	}
	return fmt.Sprintf("%.3g µJ", j*1e6)
}

func ratio(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", v)
}

// CSVHeader is the header row of WriteCSV: one row per precision; energy
// columns empty when not measured.
var CSVHeader = []string{"model", "format", "precision", "label", "backend", "params", "weight_bytes", "kv_cache_bytes",
	"batch_kv_cache_bytes", "peak_rss_bytes", "rss_over_weights_kv", "prompt_len", "gen", "batch", "rounds",
	"ttft_seconds", "prefill_tokens_per_second", "prefill_tps_min", "prefill_tps_max",
	"decode_tokens_per_second", "decode_tps_min", "decode_tps_max", "batch_decode_tokens_per_second",
	"prefill_vs_ref", "decode_vs_ref", "batch_decode_vs_ref",
	"energy_source", "energy_method", "idle_w", "prefill_j_per_token", "prefill_net_j_per_token",
	"decode_j_per_token", "decode_net_j_per_token", "prefill_j_vs_ref", "decode_j_vs_ref"}

// WriteCSV writes r as CSV for spreadsheets, with the CSVHeader columns
// (medians over the rounds).
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	g := func(v float64) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatFloat(v, 'g', 6, 64)
	}
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, x := range r.Rows {
		bat := ""
		if s := x.BatchDecodeTokensPerSecond; s != nil {
			bat = g(s.Median)
		}
		row := []string{x.Model, x.Format, x.Precision, x.Label, x.Backend, i(x.Params), i(x.WeightBytes), i(x.KVCacheBytes),
			i(x.BatchKVCacheBytes), i(x.PeakRSSBytes), g(x.RSSOverWeightsKV), i(int64(r.PromptLen)), i(int64(r.Gen)),
			i(int64(r.Batch)), i(int64(r.Rounds)), g(x.TTFTSeconds.Median),
			g(x.PrefillTokensPerSecond.Median), g(x.PrefillTokensPerSecond.Min), g(x.PrefillTokensPerSecond.Max),
			g(x.DecodeTokensPerSecond.Median), g(x.DecodeTokensPerSecond.Min), g(x.DecodeTokensPerSecond.Max), bat,
			g(x.PrefillVsRef), g(x.DecodeVsRef), g(x.BatchDecodeVsRef)}
		if e := x.Energy; e != nil {
			row = append(row, e.Source, string(e.Method), g(e.IdleW), g(e.PrefillJPerToken), g(e.PrefillNetJPerToken),
				g(e.DecodeJPerToken), g(e.DecodeNetJPerToken), g(x.PrefillJVsRef), g(x.DecodeJVsRef))
		} else {
			row = append(row, make([]string, len(CSVHeader)-len(row))...)
		}
		cw.Write(row)
	}
	cw.Flush()
	return cw.Error()
}
