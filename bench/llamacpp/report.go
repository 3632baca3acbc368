package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
)

// makePrompt returns n token ids: bos, then ids drawn uniformly from
// [3, vocab) by a PCG seeded with seed (ids 0-2 are the usual unk, BOS and
// EOS), the same on every run.
func makePrompt(n, vocab, bos int, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, 17))
	p := make([]int, n)
	p[0] = bos
	for i := 1; i < n; i++ {
		p[i] = 3 + r.IntN(vocab-3)
	}
	return p
}

// writePrompt writes ids apart by spaces, as llamabench.c -f reads them.
func writePrompt(path string, ids []int) error {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(id))
	}
	b.WriteByte('\n')
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// readPrompt reads the first n ids of a prompt file and checks them
// against the vocabulary.
func readPrompt(path string, n, vocab int) ([]int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(raw))
	if len(f) < n {
		return nil, fmt.Errorf("%s: %d token ids, want %d", path, len(f), n)
	}
	ids := make([]int, n)
	for i := range ids {
		id, err := strconv.Atoi(f[i])
		if err != nil || id < 0 || id >= vocab {
			return nil, fmt.Errorf("%s: token %d is %q, not an id in [0, %d)", path, i, f[i], vocab)
		}
		ids[i] = id
	}
	return ids, nil
}

// best is the largest rate (the fastest round); 0 for none.
func best(x []float64) float64 {
	b := 0.0
	for _, v := range x {
		b = max(b, v)
	}
	return b
}

// median is the middle value (the mean of the two middle ones for an
// even count); 0 for none.
func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := slices.Clone(x)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// rates turns the times of runs of n tokens each into tokens per second.
func rates(ns []int64, n int) []float64 {
	r := make([]float64, 0, len(ns))
	for _, d := range ns {
		if d > 0 {
			r = append(r, float64(n)/(float64(d)/1e9))
		}
	}
	return r
}

// agreement is the length of the common prefix of two greedy token
// sequences and the length compared (the shorter's): after the first
// difference the two continue from different histories, so later
// positions say nothing.
func agreement(a, b []int) (same, of int) {
	of = min(len(a), len(b))
	for same < of && a[same] == b[same] {
		same++
	}
	return same, of
}

// row is one line of the table: a quantkit variant beside llama.cpp at
// the same precision, each side's samples over the rounds.
type row struct {
	precision string // llama.cpp's GGUF type: F32, Q8_0, Q4_0
	quantkit  string // what quantkit ran: "GGUF file", "int8 checkpoint (W8A8)", ...
	llama, qk []sample
}

// summary holds a row's medians (or bests).
type summary struct {
	llamaPP, qkPP, llamaTG, qkTG float64 // tokens per second
	llamaRSS, qkRSS              int64   // bytes, the largest over the rounds
	same, of                     int     // greedy agreement of the first round
}

// summarize reduces a row's rounds with stat (median, or best for the
// fastest round: the least disturbed on a shared machine).
func summarize(r row, nPrompt, nGen int, stat func([]float64) float64) summary {
	var s summary
	collect := func(ss []sample) (pp, tg []float64, rss int64) {
		for _, x := range ss {
			pp = append(pp, rates(x.PrefillNS, nPrompt)...)
			tg = append(tg, rates(x.DecodeNS, nGen)...)
			rss = max(rss, x.MaxRSS)
		}
		return
	}
	lpp, ltg, lrss := collect(r.llama)
	qpp, qtg, qrss := collect(r.qk)
	s.llamaPP, s.llamaTG, s.llamaRSS = stat(lpp), stat(ltg), lrss
	s.qkPP, s.qkTG, s.qkRSS = stat(qpp), stat(qtg), qrss
	if len(r.llama) > 0 && len(r.qk) > 0 {
		s.same, s.of = agreement(r.llama[0].Tokens, r.qk[0].Tokens)
	}
	return s
}

// ratio formats q/l (quantkit over llama.cpp: above 1, quantkit is
// faster), "–" where either is missing.
func ratio(q, l float64) string {
	if q <= 0 || l <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", q/l)
}

func rate(x float64) string {
	if x <= 0 {
		return "–"
	}
	if x >= 100 {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.1f", x)
}

func mib(b int64) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", float64(b)/(1<<20))
}

// writeTable prints the rows as a Markdown table: tokens per second
// (stat over the rounds: median or best), quantkit's ratio to llama.cpp,
// peak RSS of each side's process in MiB, and the greedy agreement.
func writeTable(w io.Writer, rows []row, nPrompt, nGen int, stat func([]float64) float64) {
	fmt.Fprintf(w, "| precision | quantkit runs | llama.cpp pp%d t/s | quantkit pp%d t/s | ratio | llama.cpp tg%d t/s | quantkit tg%d t/s | ratio | llama.cpp RSS MiB | quantkit RSS MiB | greedy agree |\n",
		nPrompt, nPrompt, nGen, nGen)
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rows {
		s := summarize(r, nPrompt, nGen, stat)
		agree := "–"
		if s.of > 0 {
			agree = fmt.Sprintf("%d/%d", s.same, s.of)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.precision, r.quantkit, rate(s.llamaPP), rate(s.qkPP), ratio(s.qkPP, s.llamaPP),
			rate(s.llamaTG), rate(s.qkTG), ratio(s.qkTG, s.llamaTG), mib(s.llamaRSS), mib(s.qkRSS), agree)
	}
}
