package quant

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/alloctest"
)

// Bound on what ReadHistograms may allocate: a small multiple of the file
// (a count takes at least two bytes of JSON and eight of memory, and the
// decoder holds the text of one histogram while it parses it; seen: 8×
// for a million counts of "0,", 6× for 20000 small histograms) plus slack
// for the decoder's buffers and the maps.
const (
	readHistAllocFactor = 16
	readHistAllocSlack  = 64 << 10
)

// TestReadHistogramsAllocation holds ReadHistograms to the fuzz target's
// bound on inputs too large for the fuzzer: a million counts, many small
// histograms, and histograms that declare far more than they hold.
func TestReadHistogramsAllocation(t *testing.T) {
	many := make([]string, 20000)
	for i := range many {
		many[i] = fmt.Sprintf(`"t%d": {"bins":1,"width":0,"max":0,"counts":[],"non_finite":0}`, i)
	}
	inputs := map[string]string{
		"1M counts":             histFile(`"a": {"bins":8,"width":1,"max":1048575,"counts":[` + strings.Repeat("0,", 1<<20-1) + `1],"non_finite":0}`),
		"1M commas in a string": histFile(`"a": {"bins":8,"width":1,"max":1,"counts":["` + strings.Repeat(",", 1<<20-2) + `"],"non_finite":0}`),
		"20000 histograms":      histFile(many...),
		"1e12 bins":             histFile(`"a": {"bins":1000000000000,"width":1,"max":1.5,"counts":[2,3],"non_finite":0}`),
		"max far past the bins": histFile(`"a": {"bins":8,"width":1.1754943508222875e-38,"max":3e38,"counts":[1],"non_finite":0}`),
		"a long name":           histFile(`"` + strings.Repeat("n", 1<<20) + `": ` + goodHist),
	}
	for what, in := range inputs {
		if err := alloctest.Check("ReadHistograms", len(in), readHistAllocFactor, readHistAllocSlack, func() {
			ReadHistograms(strings.NewReader(in))
		}); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
}

// FuzzReadHistograms checks that ReadHistograms never panics, that what it
// accepts is a set of histograms the calibrators and Merge take, that
// writing them and reading them back gives the same histograms, and that it
// allocates no more than a small multiple of its input whatever the input
// declares (bins, widths, counts). The seed corpus is below and in
// testdata/fuzz/FuzzReadHistograms.
func FuzzReadHistograms(f *testing.F) {
	for _, s := range []string{
		histFile(`"act": ` + goodHist),
		histFile(`"a": `+goodHist, `"b": {"bins":2048,"width":0,"max":0,"counts":[7],"non_finite":0}`),
		histFile(`"nan": {"bins":16,"width":0,"max":0,"counts":[],"non_finite":5}`),
		histFile(`"a": {"bins":1e12,"width":1,"max":1.5,"counts":[2,3],"non_finite":0}`),
		histFile(`"a": {"bins":1048576,"width":1.1754943508222875e-38,"max":1e-38,"counts":[0,0,0,0,0,0,0,0,1],"non_finite":0}`),
		histFile(`"a": `+goodHist, `"a": `+goodHist),
		`{}`, `[]`, `null`, ``,
		histFile(`"a": {"bins":8,"width":1,"max":1.5,"counts":[2,-3],"non_finite":0}`),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var names []string
		var hs map[string]*Histogram
		var err error
		if aerr := alloctest.Check("ReadHistograms", len(data), readHistAllocFactor, readHistAllocSlack, func() {
			names, hs, err = ReadHistograms(bytes.NewReader(data))
		}); aerr != nil {
			t.Fatal(aerr)
		}
		if err != nil {
			if names != nil || hs != nil {
				t.Fatal("ReadHistograms returned histograms and an error")
			}
			if !strings.HasPrefix(err.Error(), "quant: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		if len(names) == 0 || len(names) != len(hs) {
			t.Fatalf("%d names, %d histograms", len(names), len(hs))
		}
		merged := NewHistogram(0)
		for _, n := range names {
			h := hs[n]
			if h == nil {
				t.Fatalf("tensor %q: nil histogram", n)
			}
			if h.Total() != sum64(h.Counts()) || h.Bins() > MaxBins {
				t.Fatalf("tensor %q: total %d of %d bins", n, h.Total(), h.Bins())
			}
			if h.Total() > 0 && h.Bins() <= 4096 { // the searches are O(Bins²)
				for _, m := range CalibratorNames() {
					c, _ := NewCalibrator(m, CalibOptions{})
					a, err := c.Amax(h)
					if err != nil || !(a >= 0) || a > h.Max() {
						t.Fatalf("tensor %q: %s amax %g, %v (max %g)", n, m, a, err, h.Max())
					}
				}
			}
			if err := merged.Merge(h); err != nil && !strings.Contains(err.Error(), "overflow") {
				t.Fatalf("tensor %q: merge: %v", n, err)
			}
		}
		out, err := json.Marshal(hs)
		if err != nil {
			t.Fatal(err)
		}
		_, back, err := ReadHistograms(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("reading what was written: %v\n%s", err, out)
		}
		for _, n := range names {
			if !sameHistogram(hs[n], back[n]) {
				t.Fatalf("tensor %q: round trip changed the histogram", n)
			}
		}
	})
}

// TestReadHistogramsSeedCorpus checks what the committed seed corpus says
// by its file names: valid_* files must read and invalid_* files must not.
func TestReadHistogramsSeedCorpus(t *testing.T) {
	dir := "testdata/fuzz/FuzzReadHistograms"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		text, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(text)), "\n")
		arg, ok := strings.CutPrefix(lines[len(lines)-1], "[]byte(")
		if !ok || len(lines) != 2 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a corpus file of one []byte", e.Name())
		}
		data, err := strconv.Unquote(strings.TrimSuffix(arg, ")"))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		_, _, err = ReadHistograms(strings.NewReader(data))
		switch {
		case strings.HasPrefix(e.Name(), "valid_") && err != nil:
			t.Errorf("%s: %v", e.Name(), err)
		case strings.HasPrefix(e.Name(), "invalid_") && err == nil:
			t.Errorf("%s: read without error", e.Name())
		}
	}
}
