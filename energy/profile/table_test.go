package profile

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/energy"
)

func TestWriteTable(t *testing.T) {
	idle, net := 40.0, 420.0
	var out bytes.Buffer
	err := Report{Command: []string{"python", "train.py", "a b"}, ExitCode: 137,
		Signal: "SIGKILL", Seconds: 2, Sources: []SourceReport{
			{Name: "gpu:0 H100", Method: energy.Counter, Seconds: 2, EnergyJ: 500, EnergyWh: 500.0 / 3600,
				IdleW: &idle, NetEnergyJ: &net, AvgPowerW: 250, PeakPowerW: 300, PeakMemoryBytes: 3 << 30,
				MeanUtilPct: 80, Samples: 21},
			{Name: "cpu package-0 (RAPL)", Method: MethodNone, Samples: 2, Note: "no energy counter"},
		}}.WriteTable(&out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"profile: python train.py 'a b': killed by SIGKILL (exit status 137) after 2.000 s\n",
		"500.0 J (0.1389 Wh)", "250.0/300.0 W", "40.0 W", "420.0 J", "3.00 GiB", "80 %",
		"cpu package-0 (RAPL)  none", "\n  cpu package-0 (RAPL): no energy counter\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestWriteTableNoSources(t *testing.T) {
	var out bytes.Buffer
	if err := (Report{Command: []string{"true"}, Seconds: 0.5}).WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	if want := "profile: true: exit status 0 after 0.500 s\nprofile: no energy source measured\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, errors.New("disk full")
}

// The table is written in one call, whose error is returned.
func TestWriteTableError(t *testing.T) {
	w := &failWriter{}
	err := Report{Command: []string{"x"}, Sources: []SourceReport{{Name: "a", Note: "n"}}}.WriteTable(w)
	if err == nil || err.Error() != "disk full" || w.n != 1 {
		t.Errorf("error %v after %d writes, want disk full after 1", err, w.n)
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"python", "train.py", "--lr=3e-4", "a b", "it's", ""})
	if want := `python train.py --lr=3e-4 'a b' 'it'\''s' ''`; got != want {
		t.Errorf("%s, want %s", got, want)
	}
}
