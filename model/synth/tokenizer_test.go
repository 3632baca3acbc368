package synth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/model/checkpoint"
)

// The tokenizer is a valid SentencePiece-style BPE of exactly cfg.Vocab
// distinct tokens: the specials and bytes first, every merge joining two
// tokens into a third, every filler token made by exactly one merge or a
// single character.
func TestTokenizerJSON(t *testing.T) {
	for _, n := range []int{MinTokenizerVocab, 300, MinTokenizerVocab + 95, MinTokenizerVocab + 96, 4096, 32000, 128256} {
		data := TokenizerJSON(Config{Vocab: n})
		var tj struct {
			Added []struct {
				ID      int    `json:"id"`
				Content string `json:"content"`
				Special bool   `json:"special"`
			} `json:"added_tokens"`
			Model struct {
				Type         string         `json:"type"`
				ByteFallback bool           `json:"byte_fallback"`
				Unk          string         `json:"unk_token"`
				Vocab        map[string]int `json:"vocab"`
				Merges       []string       `json:"merges"`
			} `json:"model"`
		}
		if err := json.Unmarshal(data, &tj); err != nil {
			t.Fatalf("vocab %d: %v", n, err)
		}
		m := tj.Model
		if m.Type != "BPE" || !m.ByteFallback || m.Unk != "<unk>" || len(m.Vocab) != n || len(tj.Added) != 3 {
			t.Fatalf("vocab %d: type %q, byte fallback %v, unk %q, %d tokens, %d added", n, m.Type, m.ByteFallback, m.Unk, len(m.Vocab), len(tj.Added))
		}
		byID := make([]string, n)
		for s, id := range m.Vocab {
			if id < 0 || id >= n || byID[id] != "" {
				t.Fatalf("vocab %d: token %q has id %d, out of range or shared", n, s, id)
			}
			byID[id] = s
		}
		for i, want := range []string{"<unk>", "<s>", "</s>"} {
			if byID[i] != want || tj.Added[i].ID != i || tj.Added[i].Content != want || !tj.Added[i].Special {
				t.Errorf("vocab %d: token %d is %q, added %+v", n, i, byID[i], tj.Added[i])
			}
		}
		for b := range 256 {
			if want := fmt.Sprintf("<0x%02X>", b); byID[3+b] != want {
				t.Fatalf("vocab %d: token %d is %q, want %q", n, 3+b, byID[3+b], want)
			}
		}
		made := map[string]bool{}
		for r, mg := range m.Merges {
			a, b, ok := strings.Cut(mg, " ")
			_, okA := m.Vocab[a]
			_, okB := m.Vocab[b]
			id, okAB := m.Vocab[a+b]
			if !ok || !okA || !okB || !okAB || made[a+b] || id != MinTokenizerVocab+r {
				t.Fatalf("vocab %d: merge %d %q: parts in vocab %v %v, result id %d", n, r, mg, okA, okB, id)
			}
			made[a+b] = true
		}
		for i := MinTokenizerVocab + len(m.Merges); i < n; i++ {
			if len([]rune(byID[i])) != 1 {
				t.Fatalf("vocab %d: token %d %q is neither merged nor a character", n, i, byID[i])
			}
		}
		if !bytes.Equal(data, TokenizerJSON(Config{Vocab: n, Seed: 9, DType: "BF16"})) {
			t.Errorf("vocab %d: the tokenizer depends on more than the vocabulary size", n)
		}
	}
	if TokenizerJSON(Config{Vocab: MinTokenizerVocab - 1}) != nil || TokenizerConfigJSON(Config{Vocab: 50}) != nil {
		t.Error("a tokenizer for a vocabulary without room for the byte tokens")
	}
	var tc map[string]any
	if err := json.Unmarshal(TokenizerConfigJSON(Config{Vocab: 4096}), &tc); err != nil || tc["bos_token"] != "<s>" || tc["add_bos_token"] != true {
		t.Errorf("tokenizer_config.json: %v %v", err, tc)
	}
}

// Write adds the tokenizer files when the vocabulary has room, and a
// later run without them removes them.
func TestWriteTokenizer(t *testing.T) {
	dir := t.TempDir()
	cfg := tiny
	cfg.Vocab = 400
	res, err := Write(dir, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{checkpoint.SingleFileName, checkpoint.ConfigFileName, TokenizerFileName, TokenizerConfigFileName}
	if !slices.Equal(res.Files, want) {
		t.Errorf("files %v, want %v", res.Files, want)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{TokenizerFileName, TokenizerJSON(cfg)}, {TokenizerConfigFileName, TokenizerConfigJSON(cfg)}} {
		if got, err := os.ReadFile(filepath.Join(dir, f.name)); err != nil || !bytes.Equal(got, f.data) {
			t.Errorf("%s: %v", f.name, err)
		}
	}
	if _, err := Write(dir, tiny, Options{}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("after a run without a tokenizer the directory holds %d files", len(entries))
	}
}
