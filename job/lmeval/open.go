package lmeval

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/lm"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/tokenizer"
)

// Loaded is a model opened by Open.
type Loaded struct {
	Path   string
	Format string // "hf", "gguf" or "llama2.c"
	Model  *lm.Model
	// Tokenizer is nil when none was found (a llama2.c checkpoint without
	// a tokenizer path).
	Tokenizer *tokenizer.Tokenizer
	// Context is the longest sequence the model was trained on
	// (max_position_embeddings, llama.context_length, llama2.c's seq_len),
	// 0 where the file does not say.
	Context int
	// W8A8 is set when the model's int8 projections run as W8A8 (see
	// W8A8Mode).
	W8A8 bool
}

// Close frees the model.
func (l *Loaded) Close() error { return l.Model.Close() }

// Open loads the model at path on b: a Hugging Face folder (config.json and
// safetensors; tokenizer.json beside them), a GGUF file (.gguf; the
// tokenizer from its tokenizer.ggml.* metadata, see GGUFTokenizer) or a
// llama2.c checkpoint (.bin; no tokenizer of its own). tokenizerPath, when
// not empty, overrides the tokenizer: a folder with tokenizer.json, a
// tokenizer.json file or a llama2.c tokenizer.bin.
func Open(b backend.Backend, path, tokenizerPath string) (*Loaded, error) {
	return OpenWith(b, path, OpenOptions{Tokenizer: tokenizerPath})
}

// OpenWith is Open with options: opt.Tokenizer is Open's tokenizerPath,
// opt.W8A8 says whether int8 projections run as W8A8 (see W8A8Mode),
// opt.Float32 whether weights are widened to float32 at load (by default
// quantized and 16-bit weights stay packed, lm.LoadOptions).
func OpenWith(b backend.Backend, path string, opt OpenOptions) (*Loaded, error) {
	tokenizerPath := opt.Tokenizer
	l := &Loaded{Path: path}
	st, err := os.Stat(path)
	if err != nil {
		return nil, inputerr.Mark(err)
	}
	if err := opt.W8A8.refuse(path, st.IsDir()); err != nil {
		return nil, err
	}
	if opt.Float32 && opt.W8A8 != W8A8Off {
		return nil, inputerr.Mark(fmt.Errorf("%s: float32 weights and W8A8 exclude each other", path))
	}
	switch {
	case st.IsDir():
		l.Format = "hf"
		if l.Model, l.W8A8, err = opt.W8A8.loadHF(b, path, opt.Float32); err != nil {
			return nil, err
		}
		l.Context = hfContext(path)
		if tokenizerPath == "" {
			if _, err := os.Stat(filepath.Join(path, "tokenizer.json")); err == nil {
				if l.Tokenizer, err = tokenizer.Load(path); err != nil {
					l.Model.Close()
					return nil, err
				}
			}
		}
	case strings.EqualFold(filepath.Ext(path), ".gguf"):
		l.Format = "gguf"
		if l.Model, err = lm.LoadGGUFWith(b, path, lm.LoadOptions{Float32: opt.Float32}); err != nil {
			return nil, err
		}
		var terr error
		l.Context, terr = ggufContext(path)
		if terr == nil && tokenizerPath == "" {
			l.Tokenizer, terr = GGUFTokenizer(path)
		}
		if terr != nil {
			l.Model.Close()
			return nil, terr
		}
	case strings.EqualFold(filepath.Ext(path), ".bin"):
		l.Format = "llama2.c"
		if l.Model, err = lm.LoadLlama2C(b, path); err != nil {
			return nil, err
		}
		l.Context = llama2cContext(path)
	default:
		return nil, inputerr.Mark(fmt.Errorf("%s: unknown model format: want a Hugging Face folder, a .gguf file or a llama2.c .bin checkpoint", path))
	}
	if tokenizerPath != "" {
		if l.Tokenizer, err = LoadTokenizer(tokenizerPath); err != nil {
			l.Model.Close()
			return nil, err
		}
	}
	if l.Tokenizer != nil && l.Tokenizer.VocabSize() > l.Model.Config.Vocab {
		l.Model.Close()
		return nil, inputerr.Mark(fmt.Errorf("%s: the tokenizer has %d tokens, the model %d", path, l.Tokenizer.VocabSize(), l.Model.Config.Vocab))
	}
	return l, nil
}

// Probe checks, without reading any weight, what Open would refuse of the
// model at path before it loads one (its format, a config lm runs, a GGUF
// architecture, a tokenizer), and returns the tokenizer Open would use
// (tokenizerPath overriding, as in Open) and the context length (0 where
// the file does not say). A caller checks this before it spends work on a
// model it will then evaluate.
func Probe(path, tokenizerPath string) (*tokenizer.Tokenizer, int, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, 0, inputerr.Mark(err)
	}
	var tok *tokenizer.Tokenizer
	context := 0
	switch {
	case st.IsDir():
		if _, context, err = lm.ReadHFConfig(path); err != nil {
			return nil, 0, inputerr.Mark(fmt.Errorf("lm runs Llama-family checkpoints: %w", err))
		}
		if tokenizerPath == "" {
			if _, err := os.Stat(filepath.Join(path, "tokenizer.json")); err != nil {
				return nil, 0, inputerr.Mark(fmt.Errorf("%s: no tokenizer.json to read the text with", path))
			}
			tokenizerPath = path
		}
	case strings.EqualFold(filepath.Ext(path), ".gguf"):
		f, err := gguf.Open(path)
		if err != nil {
			return nil, 0, inputerr.Mark(err)
		}
		arch, _ := f.String("general.architecture")
		f.Close()
		if arch != "llama" {
			return nil, 0, inputerr.Mark(fmt.Errorf("%s: architecture %q: lm runs llama GGUF files", path, arch))
		}
		if context, err = ggufContext(path); err != nil {
			return nil, 0, inputerr.Mark(err)
		}
		if tokenizerPath == "" {
			if tok, err = GGUFTokenizer(path); err != nil {
				return nil, 0, err
			}
		}
	case strings.EqualFold(filepath.Ext(path), ".bin"):
		context = llama2cContext(path)
		if tokenizerPath == "" {
			return nil, 0, inputerr.Mark(fmt.Errorf("%s: a llama2.c checkpoint has no tokenizer of its own: give its tokenizer.bin", path))
		}
	default:
		return nil, 0, inputerr.Mark(fmt.Errorf("%s: unknown model format: want a Hugging Face folder, a .gguf file or a llama2.c .bin checkpoint", path))
	}
	if tokenizerPath != "" {
		if tok, err = LoadTokenizer(tokenizerPath); err != nil {
			return nil, 0, err
		}
	}
	return tok, context, nil
}

// LoadTokenizer reads a tokenizer: a folder with tokenizer.json (and
// tokenizer_config.json), a tokenizer.json file, or llama2.c's
// tokenizer.bin (any other file).
func LoadTokenizer(path string) (*tokenizer.Tokenizer, error) {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return nil, inputerr.Mark(err)
	case st.IsDir():
		return tokenizer.Load(path)
	case strings.EqualFold(filepath.Ext(path), ".json"):
		return tokenizer.LoadFile(path)
	}
	return tokenizer.LoadLlama2C(path)
}

func hfContext(dir string) int {
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return 0
	}
	var c struct {
		N int `json:"max_position_embeddings"`
	}
	json.Unmarshal(data, &c)
	return c.N
}

func ggufContext(path string) (int, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	arch, _ := f.String("general.architecture")
	n, _ := f.Int(arch + ".context_length")
	return int(n), nil
}

func llama2cContext(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var hd [7]int32
	if binary.Read(f, binary.LittleEndian, &hd) != nil || hd[6] < 0 {
		return 0
	}
	return int(hd[6])
}

// GGUFTokenizer builds the tokenizer of a GGUF file from its
// tokenizer.ggml.* metadata with tokenizer.FromGGUF: SentencePiece
// ("llama") and byte-level BPE ("gpt2" with a pre-tokenizer it knows).
// Other vocabularies are refused with an error that says to pass the
// tokenizer's folder.
func GGUFTokenizer(path string) (*tokenizer.Tokenizer, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := tokenizer.FromGGUF(path, f.Metadata())
	if err != nil {
		return nil, inputerr.Mark(fmt.Errorf("%w; pass the model's tokenizer (a folder with tokenizer.json) with --tokenizer", err))
	}
	return t, nil
}
