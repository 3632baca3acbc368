package tokenizer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/quantkit/quantkit/internal/testenv"
)

// The real-text corpus: some megabytes of text that every machine with Go
// has, assembled at test time (nothing of it is committed): English prose
// (Newton's Opticks, the Go specification in HTML), digits (e and pi to
// 100,000 places), Go source (code whitespace: tabs, indentation, blank
// lines, comments), and multilingual text (Candide in French, Rashomon in
// Japanese, Sun Tzu in Chinese, Unsu joh-eun nal in Korean, and the lines
// of golang.org/x/text's CLDR display-name tables, which hold language
// names in their own scripts: Latin with combining marks, Cyrillic, Greek,
// Arabic, Hebrew, Devanagari, Thai, Ethiopic, CJK ...).

// corpusFile is one file of the corpus.
type corpusFile struct {
	name string // path, for messages
	text string
}

const minCorpus = 4 << 20 // bytes

var (
	corpusOnce  sync.Once
	corpusFiles []corpusFile
	corpusErr   error
)

// realCorpus is the corpus's files, at least minCorpus bytes, or the test
// ends through testenv.Missing when they are not on this machine.
func realCorpus(t testing.TB) []corpusFile {
	t.Helper()
	corpusOnce.Do(func() { corpusFiles, corpusErr = findCorpus() })
	if corpusErr != nil {
		testenv.Missing(t, "real-text corpus: %v", corpusErr)
	}
	return corpusFiles
}

func findCorpus() ([]corpusFile, error) {
	out, err := exec.Command("go", "env", "GOROOT", "GOMODCACHE").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOROOT GOMODCACHE: %v", err)
	}
	env := strings.Fields(string(out))
	if len(env) != 2 {
		return nil, fmt.Errorf("go env GOROOT GOMODCACHE printed %q", out)
	}
	goroot, modcache := env[0], env[1]
	// golang.org/x/text is in this module's go.mod (indirect), so its
	// source is in the module cache wherever the module builds; the newest
	// version there is taken.
	xtexts, _ := filepath.Glob(filepath.Join(modcache, "golang.org", "x", "text@v*"))
	if len(xtexts) == 0 {
		return nil, fmt.Errorf("no golang.org/x/text in the module cache %s (go mod download golang.org/x/text)", modcache)
	}
	slices.SortFunc(xtexts, compareVersionDirs)
	xtext := xtexts[len(xtexts)-1]

	var files []corpusFile
	add := func(p string, text string) {
		files = append(files, corpusFile{p, text})
	}
	read := func(ps ...string) error {
		for _, p := range ps {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !utf8.Valid(b) {
				return fmt.Errorf("%s is not UTF-8", p)
			}
			add(p, string(b))
		}
		return nil
	}
	glob := func(pattern string) []string {
		ps, _ := filepath.Glob(pattern)
		ps = slices.DeleteFunc(ps, func(p string) bool { return strings.HasSuffix(p, "_test.go") })
		slices.Sort(ps)
		return ps
	}
	steps := []func() error{
		// English prose and documents.
		func() error {
			return read(filepath.Join(goroot, "src", "testdata", "Isaac.Newton-Opticks.txt"),
				filepath.Join(goroot, "doc", "go_spec.html"),
				filepath.Join(goroot, "src", "compress", "testdata", "gettysburg.txt"))
		},
		// Digits.
		func() error {
			return read(filepath.Join(goroot, "src", "compress", "testdata", "e.txt"),
				filepath.Join(goroot, "src", "compress", "testdata", "pi.txt"))
		},
		// Go source.
		func() error {
			var ps []string
			for _, d := range []string{"net/http", "go/types", "encoding/json", "fmt", "strings", "unicode/utf8"} {
				ps = append(ps, glob(filepath.Join(goroot, "src", filepath.FromSlash(d), "*.go"))...)
			}
			if len(ps) < 100 {
				return fmt.Errorf("only %d Go files in %s/src", len(ps), goroot)
			}
			return read(ps...)
		},
		// Multilingual literature.
		func() error {
			ps := glob(filepath.Join(xtext, "encoding", "testdata", "*-utf-8.txt"))
			if len(ps) < 4 {
				return fmt.Errorf("only %d *-utf-8.txt texts in %s/encoding/testdata", len(ps), xtext)
			}
			return read(ps...)
		},
		// Language names in their own scripts: the lines with non-ASCII
		// text of the display tables (the rest is hex).
		func() error {
			p := filepath.Join(xtext, "language", "display", "tables.go")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			var sb strings.Builder
			for line := range strings.Lines(string(b)) {
				if !isASCII(line) {
					sb.WriteString(line)
				}
			}
			add(p+" (its non-ASCII lines)", sb.String())
			return nil
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	total := 0
	for _, f := range files {
		total += len(f.text)
	}
	if total < minCorpus {
		return nil, fmt.Errorf("found %d bytes, want at least %d", total, minCorpus)
	}
	return files, nil
}

// compareVersionDirs orders "text@v0.9.0" before "text@v0.28.0".
func compareVersionDirs(a, b string) int {
	na, nb := versionNumbers(a), versionNumbers(b)
	return slices.Compare(na, nb)
}

func versionNumbers(dir string) []int {
	_, v, _ := strings.Cut(filepath.Base(dir), "@v")
	var ns []int
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r < '0' || r > '9' }) {
		n := 0
		fmt.Sscan(f, &n)
		ns = append(ns, n)
	}
	return ns
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// logCorpus lists the corpus's files and sizes.
func logCorpus(t testing.TB, files []corpusFile) {
	t.Helper()
	var sb strings.Builder
	total := 0
	for _, f := range files {
		total += len(f.text)
	}
	fmt.Fprintf(&sb, "real-text corpus: %d files, %d bytes:", len(files), total)
	// The Go source files are many: they are summed by folder.
	byDir := map[string]int{}
	var order []string
	for _, f := range files {
		key := f.name
		if strings.HasSuffix(f.name, ".go") {
			key = filepath.Dir(f.name) + "/*.go"
		}
		if _, ok := byDir[key]; !ok {
			order = append(order, key)
		}
		byDir[key] += len(f.text)
	}
	for _, k := range order {
		fmt.Fprintf(&sb, "\n  %9d  %s", byDir[k], k)
	}
	t.Log(sb.String())
}

// head is the first 40 ids, for messages.
func head(ids []int) []int {
	if len(ids) > 40 {
		return ids[:40]
	}
	return ids
}
