package lmeval

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/lm"
)

// OpenOptions change how OpenWith loads a model.
type OpenOptions struct {
	// Tokenizer, when not empty, overrides the model's tokenizer: a
	// folder with tokenizer.json, a tokenizer.json file or a llama2.c
	// tokenizer.bin.
	Tokenizer string
	// W8A8 says whether the int8 projections of a quantized checkpoint run
	// as W8A8; the zero value keeps quantized weights packed in memory and
	// runs them weight-only (activations in float32), as Open does.
	W8A8 W8A8Mode
	// Float32 widens every weight to float32 at load (lm.LoadOptions):
	// the float model on the dequantized weights, with float32 memory
	// and GEMMs. It does not combine with W8A8.
	Float32 bool
}

// W8A8Mode says when OpenWith runs a model's projections as W8A8: the
// projections (q, k, v, o, gate, up, down) of a Hugging Face checkpoint
// quantized int8 symmetric per channel (what `quantkit quantize --scheme
// int8` writes, compressed-tensors or quantkit safetensors) stay int8 on
// the backend, each token's activations are quantized to int8 with one
// scale (max|x|/127) and the products are integer GEMMs with int32
// accumulators (lm.LoadOptions.Int8, lm.Int8Layer). Only int8 per-channel
// weights can run so: a float or int4 checkpoint, a GGUF file (whose Q8_0
// has a scale per block of 32, not per channel) and a llama2.c checkpoint
// have none.
type W8A8Mode int

const (
	// W8A8Off runs quantized weights weight-only, kept packed (Open's
	// way), except a checkpoint whose config declares dynamic per-token
	// int8 activations (llm-compressor's W8A8), which runs as W8A8.
	W8A8Off W8A8Mode = iota
	// W8A8Required runs the int8 projections as W8A8 and refuses a model
	// that has none with an error that wraps ErrNoInt8 and names it.
	W8A8Required
	// W8A8WhereInt8 runs the int8 projections as W8A8 where the model has
	// some and opens any other model as W8A8Off does (Loaded.W8A8 says
	// which happened): for several models evaluated side by side, the
	// original and its quantizations.
	W8A8WhereInt8
)

// ErrNoInt8 is wrapped by the error of OpenWith with W8A8Required for a
// model that has no int8 per-channel weights.
var ErrNoInt8 = errors.New("no int8 per-channel weights to run as W8A8")

// refuse is the error W8A8Required gives, before reading any weight, for
// a GGUF or llama2.c model at path (dir false); nil for anything else,
// which OpenWith loads or refuses on its own.
func (w W8A8Mode) refuse(path string, dir bool) error {
	if w != W8A8Required || dir {
		return nil
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".gguf":
		return noInt8(path, "a GGUF file (Q8_0 has a scale per block of 32 values, not per channel)")
	case ".bin":
		return noInt8(path, "a llama2.c checkpoint (float32)")
	}
	return nil
}

func noInt8(path, what string) error {
	return inputerr.Mark(fmt.Errorf("%s: %w: it is %s; W8A8 runs the int8 per-channel checkpoints `quantkit quantize --scheme int8` writes", path, ErrNoInt8, what))
}

// loadHF loads the Hugging Face checkpoint at path, its int8 per-channel
// projections kept int8 unless w is W8A8Off; w8a8 says whether some are.
func (w W8A8Mode) loadHF(b backend.Backend, path string, float32 bool) (m *lm.Model, w8a8 bool, err error) {
	if w == W8A8Off {
		// A checkpoint whose config declares dynamic per-token int8
		// activations (llm-compressor's W8A8) runs as W8A8 anyway.
		if m, err = lm.LoadHFWith(b, path, lm.LoadOptions{Float32: float32}); err != nil {
			return nil, false, err
		}
		return m, hasInt8(m), nil
	}
	// LoadHFWith with Int8 loads a checkpoint without int8 per-channel
	// weights as LoadHF does: nothing to load again.
	if m, err = lm.LoadHFWith(b, path, lm.LoadOptions{Int8: true}); err != nil {
		return nil, false, err
	}
	if hasInt8(m) {
		return m, true, nil
	}
	if w == W8A8Required {
		return nil, false, errors.Join(noInt8(path, "a checkpoint whose weights are float or quantized otherwise than int8 per channel"), m.Close())
	}
	return m, false, nil
}

// hasInt8 reports whether some projection of m is int8 (lm.Layer.Int8).
func hasInt8(m *lm.Model) bool {
	for _, l := range m.Weights.Layers {
		if l.Int8 != nil {
			return true
		}
	}
	return false
}
