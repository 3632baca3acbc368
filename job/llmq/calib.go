package llmq

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/model/npy"
	"github.com/quantkit/quantkit/tokenizer"
)

// Defaults of the calibration set, as llm-compressor's examples use them
// (512 samples of 2048 tokens there; fewer here, for a CPU).
const (
	DefaultSamples = 128
	DefaultSeqLen  = 512
)

// CalibOptions say where the calibration tokens come from and how many.
type CalibOptions struct {
	// Path is a plain text file, a JSONL file (.jsonl: one JSON object a
	// line with a "text" string) or a .npy array of token ids (int32 or
	// int64).
	Path string
	// Samples is the number of sequences, SeqLen their length in tokens;
	// 0 means DefaultSamples and DefaultSeqLen.
	Samples, SeqLen int
	// Seed chooses the windows (see LoadCalibration).
	Seed uint64
}

// Calibration is the calibration set: Samples sequences of SeqLen token
// ids, each run from position 0.
type Calibration struct {
	Source    string `json:"source"`
	Samples   int    `json:"samples"`
	SeqLen    int    `json:"seq_len"`
	Documents int    `json:"documents"` // texts (lines of JSONL), or npy rows
	Tokens    int    `json:"tokens"`    // in the stream the windows were cut from
	// Distinct is how many of the stream's positions the windows cover
	// (overlapping windows of a short text count each position once;
	// npy rows all count): the calibration set's real size.
	Distinct  int    `json:"distinct_tokens"`
	Seed      uint64 `json:"seed"`
	Selection string `json:"selection"`
	IDs       []int  `json:"-"` // Samples·SeqLen ids, sequence after sequence
}

// LoadCalibration reads the calibration set opt describes, tokenizing text
// with tok (ids must be below vocab):
//
//   - text: the documents (the whole file for plain text; each line's
//     "text" for JSONL, empty lines skipped) are encoded without special
//     tokens, each preceded by bos and followed by eos (when ≥ 0), and
//     concatenated into one stream; each of the Samples sequences is the
//     SeqLen tokens at an offset drawn uniformly from [0, len−SeqLen] by a
//     PCG generator seeded with Seed, as the GPTQ paper's code samples its
//     calibration windows from WikiText-2 and C4. Windows may overlap
//     when the stream is short; a stream shorter than one sequence is
//     refused.
//   - .npy: a 2-D array [n, t] is n sequences: Samples distinct rows
//     drawn by the seeded generator (all n, in order, when Samples ≥ n
//     is not asked for: Samples must be ≤ n), each cut to its first
//     SeqLen ids (t ≥ SeqLen); a 1-D array is a token stream, cut as text
//     is.
func LoadCalibration(opt CalibOptions, tok *tokenizer.Tokenizer, bos, eos, vocab int) (*Calibration, error) {
	n, T := opt.Samples, opt.SeqLen
	if n == 0 {
		n = DefaultSamples
	}
	if T == 0 {
		T = DefaultSeqLen
	}
	if n < 0 || T < 0 {
		return nil, inputerr.Mark(fmt.Errorf("calibration: %d samples of %d tokens", n, T))
	}
	c := &Calibration{Source: opt.Path, Samples: n, SeqLen: T, Seed: opt.Seed}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x9e3779b97f4a7c15))
	var stream []int
	switch strings.ToLower(filepath.Ext(opt.Path)) {
	case ".npy":
		a, err := npy.ReadFile(opt.Path)
		if err != nil {
			return nil, inputerr.Mark(fmt.Errorf("calibration: %w", err))
		}
		ids, err := npyInts(opt.Path, a)
		if err != nil {
			return nil, err
		}
		for i, id := range ids {
			if id < 0 || id >= vocab {
				return nil, inputerr.Mark(fmt.Errorf("calibration: %s: id %d at %d is outside the vocabulary [0, %d)", opt.Path, id, i, vocab))
			}
		}
		switch len(a.Shape) {
		case 1:
			stream, c.Documents = ids, 1
		case 2:
			rows, t := a.Shape[0], a.Shape[1]
			c.Documents, c.Tokens = rows, rows*t
			if t < T {
				return nil, inputerr.Mark(fmt.Errorf("calibration: %s: rows of %d ids are shorter than one sequence of %d (--calib-len)", opt.Path, t, T))
			}
			if n > rows {
				return nil, inputerr.Mark(fmt.Errorf("calibration: %s: %d rows, fewer than the %d samples asked for (--calib-samples)", opt.Path, rows, n))
			}
			pick := rng.Perm(rows)[:n]
			for _, r := range pick {
				c.IDs = append(c.IDs, ids[r*t:r*t+T]...)
			}
			c.Distinct = n * T
			c.Selection = fmt.Sprintf("%d of %d rows drawn without replacement (PCG seed %d), each cut to its first %d ids", n, rows, opt.Seed, T)
			return c, nil
		default:
			return nil, inputerr.Mark(fmt.Errorf("calibration: %s: a %d-D array; want token ids [n, t] or [t]", opt.Path, len(a.Shape)))
		}
	default:
		docs, err := readDocuments(opt.Path)
		if err != nil {
			return nil, err
		}
		if tok == nil {
			return nil, fmt.Errorf("calibration: %s: text needs the model's tokenizer", opt.Path)
		}
		c.Documents = len(docs)
		for _, d := range docs {
			if bos >= 0 {
				stream = append(stream, bos)
			}
			stream = append(stream, tok.EncodeWith(d, false)...)
			if eos >= 0 {
				stream = append(stream, eos)
			}
		}
		for i, id := range stream {
			if id < 0 || id >= vocab {
				return nil, fmt.Errorf("calibration: %s: the tokenizer gave id %d (token %d), outside the model's vocabulary of %d", opt.Path, id, i, vocab)
			}
		}
	}
	c.Tokens = len(stream)
	if len(stream) < T {
		return nil, inputerr.Mark(fmt.Errorf("calibration: %s has %d tokens, fewer than one sequence of %d (--calib-len): give more text or a shorter --calib-len",
			opt.Path, len(stream), T))
	}
	c.IDs = make([]int, 0, n*T)
	offs := make([]int, n)
	for i := range offs {
		offs[i] = rng.IntN(len(stream) - T + 1)
		c.IDs = append(c.IDs, stream[offs[i]:offs[i]+T]...)
	}
	c.Distinct = covered(offs, T)
	c.Selection = fmt.Sprintf("%d windows of %d tokens at uniform random offsets (PCG seed %d) in the %d-token stream of %d documents, each as BOS text EOS; %d distinct tokens",
		n, T, opt.Seed, len(stream), c.Documents, c.Distinct)
	return c, nil
}

// covered is the number of positions the windows [off, off+T) cover.
func covered(offs []int, T int) int {
	offs = slices.Sorted(slices.Values(offs))
	n, end := 0, 0
	for _, o := range offs {
		n += o + T - max(o, end)
		end = o + T
	}
	return n
}

// readDocuments reads the texts of a plain text or JSONL file.
func readDocuments(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, inputerr.Mark(fmt.Errorf("calibration: %w", err))
	}
	if strings.ToLower(filepath.Ext(path)) != ".jsonl" {
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, inputerr.Mark(fmt.Errorf("calibration: %s is empty", path))
		}
		return []string{string(data)}, nil
	}
	var docs []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<30)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var rec struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, inputerr.Mark(fmt.Errorf("calibration: %s:%d: %w", path, line, err))
		}
		if rec.Text == nil {
			return nil, inputerr.Mark(fmt.Errorf("calibration: %s:%d: no \"text\" string", path, line))
		}
		docs = append(docs, *rec.Text)
	}
	if err := sc.Err(); err != nil {
		return nil, inputerr.Mark(fmt.Errorf("calibration: %s: %w", path, err))
	}
	if len(docs) == 0 {
		return nil, inputerr.Mark(fmt.Errorf("calibration: %s has no documents", path))
	}
	return docs, nil
}

// npyInts reads an int32 or int64 array's elements.
func npyInts(path string, a *npy.Array) ([]int, error) {
	var order binary.ByteOrder = binary.LittleEndian
	dt := a.DType
	switch {
	case strings.HasPrefix(dt, ">"):
		order = binary.BigEndian
		dt = dt[1:]
	case strings.HasPrefix(dt, "<"), strings.HasPrefix(dt, "="), strings.HasPrefix(dt, "|"):
		dt = dt[1:]
	}
	n := a.Len()
	out := make([]int, n)
	switch dt {
	case "i4":
		if len(a.Data) != 4*n {
			return nil, inputerr.Mark(fmt.Errorf("calibration: %s: %d data bytes for %d int32", path, len(a.Data), n))
		}
		for i := range out {
			out[i] = int(int32(order.Uint32(a.Data[4*i:])))
		}
	case "i8":
		if len(a.Data) != 8*n {
			return nil, inputerr.Mark(fmt.Errorf("calibration: %s: %d data bytes for %d int64", path, len(a.Data), n))
		}
		for i := range out {
			v := int64(order.Uint64(a.Data[8*i:]))
			if v < -1<<31 || v >= 1<<31 {
				return nil, inputerr.Mark(fmt.Errorf("calibration: %s: id %d at %d out of range", path, v, i))
			}
			out[i] = int(v)
		}
	default:
		return nil, inputerr.Mark(fmt.Errorf("calibration: %s: dtype %s; token ids must be int32 or int64", path, a.DType))
	}
	return out, nil
}
