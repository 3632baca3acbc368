package quantize

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/model/ggufmix"
	"github.com/quantkit/quantkit/model/synth"
)

// BenchGGUF runs quantkit and llama.cpp's harness as processes. Here both
// are this test binary, re-executed: with $QUANTKIT_BENCH_GGUF_FAKE set,
// TestMain runs fakeQuantkit (arguments gen or quantize, as quantkit's) or
// fakeLlamaQuantize (the harness's arguments) instead of the tests. Both
// quantize with RunGGUF, so their outputs are the same bytes unless told
// otherwise; each appends its command line to $QUANTKIT_BENCH_GGUF_FAKE_LOG.
const (
	fakeEnv      = "QUANTKIT_BENCH_GGUF_FAKE"     // "1": be a tool
	fakeLogEnv   = "QUANTKIT_BENCH_GGUF_FAKE_LOG" // file each run appends a line to
	fakeLlamaEnv = "QUANTKIT_BENCH_GGUF_FAKE_LLAMA"
	// fakeLlamaRSS is what the fake harness allocates and touches, so that
	// its peak RSS is known to exceed that much while quantkit's stays below.
	fakeLlamaRSS = 256 << 20
)

func TestMain(m *testing.M) {
	if os.Getenv(fakeEnv) == "" {
		os.Exit(m.Run())
	}
	args := os.Args[1:]
	var err error
	if len(args) > 0 && (args[0] == "gen" || args[0] == "quantize") {
		err = fakeQuantkit(args)
	} else {
		err = fakeLlamaQuantize(args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func logFake(line string) error {
	f, err := os.OpenFile(os.Getenv(fakeLogEnv), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o666)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, line)
	return err
}

// fakeQuantkit is `quantkit gen --params N -o DIR` or `quantkit quantize
// IN -o OUT --format gguf --type T [--workers N] [--pure]`.
func fakeQuantkit(args []string) error {
	if err := logFake(fmt.Sprintf("quantkit GOMAXPROCS=%d %s", runtime.GOMAXPROCS(0), strings.Join(args, " "))); err != nil {
		return err
	}
	flags := map[string]string{}
	var pos []string
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--pure":
			flags[a] = "true"
		case strings.HasPrefix(a, "-") && i+1 < len(args):
			flags[a] = args[i+1]
			i++
		default:
			pos = append(pos, a)
		}
	}
	if args[0] == "gen" {
		n, err := strconv.ParseInt(flags["--params"], 10, 64)
		if err != nil {
			return err
		}
		_, err = Generate(context.Background(), GenerateOptions{Output: flags["-o"], Config: synth.LlamaLike(n)})
		return err
	}
	if len(pos) != 1 || flags["--format"] != "gguf" {
		return fmt.Errorf("quantize: unexpected arguments %q", args)
	}
	mix, err := ggufmix.ParseMix(flags["--type"])
	if err != nil {
		return err
	}
	workers, _ := strconv.Atoi(flags["--workers"])
	opt := GGUFOptions{Input: pos[0], Output: flags["-o"], Mix: mix, Pure: flags["--pure"] != "", Workers: workers}
	if fi, err := os.Stat(pos[0]); err == nil && fi.IsDir() {
		src, err := OpenHFSource(pos[0])
		if err != nil {
			return err
		}
		defer src.Close()
		opt.Source = src
	}
	_, err = RunGGUF(context.Background(), opt)
	return err
}

// fakeLlamaQuantize is the harness: [--lib F] [--nthread N] [--pure] IN
// OUT TYPE. $QUANTKIT_BENCH_GGUF_FAKE_LLAMA makes it write other bytes
// ("differ") or fail ("fail").
func fakeLlamaQuantize(args []string) error {
	if err := logFake("llama " + strings.Join(args, " ")); err != nil {
		return err
	}
	if os.Getenv(fakeLlamaEnv) == "fail" {
		return errors.New("llama_model_quantize failed: this is the fake's failure")
	}
	held := make([]byte, fakeLlamaRSS)
	for i := 0; i < len(held); i += 4096 {
		held[i] = 1
	}
	var pure bool
	workers := 0
	for len(args) > 3 && strings.HasPrefix(args[0], "--") {
		switch args[0] {
		case "--pure":
			pure = true
			args = args[1:]
		case "--nthread":
			workers, _ = strconv.Atoi(args[1])
			args = args[2:]
		case "--lib":
			args = args[2:]
		default:
			return fmt.Errorf("unknown flag %s", args[0])
		}
	}
	if len(args) != 3 {
		return fmt.Errorf("usage: [--nthread N] [--pure] IN OUT TYPE, not %q", args)
	}
	mix, err := ggufmix.ParseMix(args[2])
	if err != nil {
		return err
	}
	if _, err := RunGGUF(context.Background(), GGUFOptions{Input: args[0], Output: args[1], Mix: mix, Pure: pure, Workers: workers}); err != nil {
		return err
	}
	runtime.KeepAlive(held)
	if os.Getenv(fakeLlamaEnv) == "differ" {
		f, err := os.OpenFile(args[1], os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if _, err := f.WriteAt([]byte{0xAB}, fi.Size()-1); err != nil {
			return err
		}
	}
	return nil
}

// fakeTools sets the environment for the fakes and returns options that run
// them, with the log file's path.
func fakeTools(t *testing.T, llamaMode string) (BenchGGUFOptions, string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "runs.log")
	t.Setenv(fakeEnv, "1")
	t.Setenv(fakeLogEnv, log)
	t.Setenv(fakeLlamaEnv, llamaMode)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return BenchGGUFOptions{Quantkit: []string{exe}, LlamaQuantize: exe, Workdir: t.TempDir()}, log
}

func readLog(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// TestBenchGGUF: on a generated input, every round runs both tools on
// every type with the thread count, the first to go alternating; the
// report holds each round's measurements, medians of them and the ratios;
// the outputs are found identical; the peak RSS is each child's own (the
// fake harness holds 256 MiB, quantkit far less); nothing is left behind.
func TestBenchGGUF(t *testing.T) {
	opt, log := fakeTools(t, "")
	opt.Params, opt.Types, opt.Threads, opt.Rounds = 1_000_000, []string{"Q8_0", "Q4_K_M"}, 3, 3
	var steps []string
	opt.Progress = func(done, total int, what string) {
		if done != len(steps) || total != 2+2*3*2 {
			t.Errorf("progress %d/%d %q after %d steps", done, total, what, len(steps))
		}
		steps = append(steps, what)
	}
	rep, err := BenchGGUF(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Generated || rep.Params != 1_000_000 || rep.BytesIn < 4_000_000 || rep.Threads != 3 || rep.Rounds != 3 {
		t.Errorf("report header %+v", rep)
	}
	runs := readLog(t, log)
	if len(runs) != 2+3*2*2 || len(steps) != len(runs) {
		t.Fatalf("%d runs logged, %d progress steps; want %d:\n%s", len(runs), len(steps), 2+3*2*2, strings.Join(runs, "\n"))
	}
	if !strings.Contains(runs[0], " gen --params 1000000 -o ") || !strings.Contains(runs[1], " quantize ") || !strings.Contains(runs[1], "--type F32") {
		t.Errorf("the input is not generated with gen and quantize --type F32:\n%s\n%s", runs[0], runs[1])
	}
	k := 2
	for r := range 3 {
		for i, typ := range opt.Types {
			pair := slices.Clone(runs[k : k+2]) // harness, quantkit
			k += 2
			first := "llama "
			if (r+i)%2 == 1 {
				first = "quantkit "
				pair[0], pair[1] = pair[1], pair[0]
			}
			if !strings.HasPrefix(runs[k-2], first) {
				t.Errorf("round %d %s: %q went first, want %s", r, typ, runs[k-2], first)
			}
			wantLlama := fmt.Sprintf("llama --nthread 3 %s ", rep.Input)
			if !strings.HasPrefix(pair[0], wantLlama) || !strings.HasSuffix(pair[0], " "+typ) {
				t.Errorf("round %d: harness run %q, want %q… %s", r, pair[0], wantLlama, typ)
			}
			wantQK := fmt.Sprintf("quantkit GOMAXPROCS=3 quantize %s -o ", rep.Input)
			if !strings.HasPrefix(pair[1], wantQK) || !strings.HasSuffix(pair[1], "--format gguf --type "+typ+" --workers 3") {
				t.Errorf("round %d: quantkit run %q", r, pair[1])
			}
		}
	}
	if len(rep.Rows) != 2 {
		t.Fatalf("%d rows", len(rep.Rows))
	}
	for i, row := range rep.Rows {
		if row.Type != opt.Types[i] || !row.Identical || row.Difference != "" {
			t.Errorf("row %d: type %s, identical %v %q", i, row.Type, row.Identical, row.Difference)
		}
		for _, tool := range []struct {
			name string
			t    BenchGGUFTool
		}{{"quantkit", row.Quantkit}, {"llama-quantize", row.LlamaQuantize}} {
			tt := tool.t
			if len(tt.Seconds) != 3 || len(tt.SyncSeconds) != 3 || len(tt.CPUSeconds) != 3 || len(tt.PeakRSS) != 3 {
				t.Fatalf("%s %s: rounds %+v", row.Type, tool.name, tt)
			}
			if want := bench.Median(slices.Clone(tt.Seconds)); tt.MedianSeconds != want || tt.MedianSeconds <= 0 {
				t.Errorf("%s %s: median %v of %v", row.Type, tool.name, tt.MedianSeconds, tt.Seconds)
			}
			if want := float64(rep.BytesIn) / 1e6 / tt.MedianSeconds; tt.MBPerSecond != want {
				t.Errorf("%s %s: %v MB/s, want %v", row.Type, tool.name, tt.MBPerSecond, want)
			}
			if len(tt.SampledAnon) != 3 || len(tt.SampledFile) != 3 {
				t.Fatalf("%s %s: sampled %v %v", row.Type, tool.name, tt.SampledAnon, tt.SampledFile)
			}
			for k := range 3 { // each part of the resident set is at most its peak
				if tt.SampledAnon[k] > tt.PeakRSS[k] || tt.SampledFile[k] > tt.PeakRSS[k] {
					t.Errorf("%s %s round %d: sampled anon %d, file %d, peak %d", row.Type, tool.name, k,
						tt.SampledAnon[k], tt.SampledFile[k], tt.PeakRSS[k])
				}
			}
			if tt.MaxPeakRSS != slices.Max(tt.PeakRSS) || tt.BytesOut <= 0 {
				t.Errorf("%s %s: peak %d of %v, %d bytes out", row.Type, tool.name, tt.MaxPeakRSS, tt.PeakRSS, tt.BytesOut)
			}
		}
		if row.Quantkit.BytesOut != row.LlamaQuantize.BytesOut {
			t.Errorf("%s: output sizes %d and %d", row.Type, row.Quantkit.BytesOut, row.LlamaQuantize.BytesOut)
		}
		if row.LlamaQuantize.MaxPeakRSS < fakeLlamaRSS || row.Quantkit.MaxPeakRSS >= fakeLlamaRSS {
			t.Errorf("%s: peak RSS quantkit %d, harness %d: the harness holds %d", row.Type, row.Quantkit.MaxPeakRSS,
				row.LlamaQuantize.MaxPeakRSS, fakeLlamaRSS)
		}
		if want := row.Quantkit.MedianSeconds / row.LlamaQuantize.MedianSeconds; row.TimeRatio != want {
			t.Errorf("%s: time ratio %v, want %v", row.Type, row.TimeRatio, want)
		}
		if want := float64(row.Quantkit.MaxPeakRSS) / float64(row.LlamaQuantize.MaxPeakRSS); row.RSSRatio != want {
			t.Errorf("%s: RSS ratio %v, want %v", row.Type, row.RSSRatio, want)
		}
	}
	if rep.RSSFloor <= 0 || rep.RSSFloor >= fakeLlamaRSS {
		t.Errorf("RSS floor %d", rep.RSSFloor)
	}
	if left, _ := os.ReadDir(opt.Workdir); len(left) != 0 {
		t.Errorf("left in the work directory: %v", left)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Q8_0", "Q4_K_M", "llama-quantize", "quantkit ÷ llama", "byte-identical", "load average"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// TestBenchGGUFDifferent: outputs that differ are reported as such, with
// where; --pure reaches both tools; a given input is not removed.
func TestBenchGGUFDifferent(t *testing.T) {
	opt, log := fakeTools(t, "differ")
	opt.Input = filepath.Join("..", "..", "testdata", "llm", "stories260K", "stories260K.gguf")
	opt.Types, opt.Threads, opt.Rounds, opt.Pure = []string{"Q8_0"}, 2, 1, true
	rep, err := BenchGGUF(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	row := rep.Rows[0]
	if row.Identical || !strings.Contains(row.Difference, "round 1: first difference at byte") {
		t.Errorf("identical %v, difference %q", row.Identical, row.Difference)
	}
	if want := fmt.Sprintf("at byte %d ", row.Quantkit.BytesOut-1); !strings.Contains(row.Difference, want) {
		t.Errorf("difference %q, want %q (the fake changes the last byte)", row.Difference, want)
	}
	for _, run := range readLog(t, log) {
		if !strings.Contains(run, "--pure") {
			t.Errorf("run without --pure: %s", run)
		}
	}
	if _, err := os.Stat(opt.Input); err != nil || rep.Generated {
		t.Errorf("input: %v, generated %v", err, rep.Generated)
	}
}

// TestBenchGGUFErrors: options refused before anything runs (marked as the
// user's input), a tool that fails named with what it printed, and nothing
// left in the work directory either way.
func TestBenchGGUFErrors(t *testing.T) {
	stories := filepath.Join("..", "..", "testdata", "llm", "stories260K", "stories260K.gguf")
	for _, c := range []struct {
		name  string
		edit  func(*BenchGGUFOptions)
		wants []string
	}{
		{"no harness", func(o *BenchGGUFOptions) { o.LlamaQuantize = "" }, []string{"no llama-quantize harness", "make integration", "setup-llamacpp.sh"}},
		{"missing harness", func(o *BenchGGUFOptions) { o.LlamaQuantize = "/nonexistent/llama-quantize-harness" },
			[]string{"/nonexistent/llama-quantize-harness", "make integration"}},
		{"no threads", func(o *BenchGGUFOptions) { o.Threads = 0 }, []string{"threads"}},
		{"no rounds", func(o *BenchGGUFOptions) { o.Rounds = 0 }, []string{"rounds"}},
		{"unknown type", func(o *BenchGGUFOptions) { o.Types = []string{"Q8_0", "Q3_X"} }, []string{"Q3_X"}},
		{"type twice", func(o *BenchGGUFOptions) { o.Types = []string{"Q8_0", "q8_0"} }, []string{"twice"}},
		{"not GGUF", func(o *BenchGGUFOptions) {
			o.Input = filepath.Join("..", "..", "testdata", "llm", "stories260K", "hf", "config.json")
		},
			[]string{"config.json", "not a GGUF file"}},
		{"no input", func(o *BenchGGUFOptions) { o.Input = "" }, []string{"no input"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			opt, _ := fakeTools(t, "")
			opt.Input, opt.Types, opt.Threads, opt.Rounds = stories, []string{"Q8_0"}, 2, 1
			c.edit(&opt)
			_, err := BenchGGUF(context.Background(), opt)
			if err == nil || !errors.Is(err, inputerr.ErrInput) {
				t.Fatalf("err %v, want one marked as the input's", err)
			}
			for _, want := range c.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
	t.Run("harness fails", func(t *testing.T) {
		opt, _ := fakeTools(t, "fail")
		opt.Input, opt.Types, opt.Threads, opt.Rounds = stories, []string{"Q8_0"}, 2, 1
		_, err := BenchGGUF(context.Background(), opt)
		if err == nil || !strings.Contains(err.Error(), "this is the fake's failure") || !strings.Contains(err.Error(), "llama-quantize Q8_0") {
			t.Fatalf("err %v", err)
		}
		if left, _ := os.ReadDir(opt.Workdir); len(left) != 0 {
			t.Errorf("left in the work directory: %v", left)
		}
	})
}

// TestCompareFiles against bytes.Equal and a byte-by-byte search, across
// the 1 MiB blocks compareFiles reads.
func TestCompareFiles(t *testing.T) {
	dir := t.TempDir()
	base := make([]byte, 3<<20+5)
	for i := range base {
		base[i] = byte(i * 7)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o666); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a", base)
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"same", base, ""},
		{"empty both", nil, ""},
		{"first byte", flip(base, 0), "first difference at byte 0 "},
		{"block edge", flip(base, 1<<20), fmt.Sprintf("first difference at byte %d ", 1<<20)},
		{"last byte", flip(base, len(base)-1), fmt.Sprintf("first difference at byte %d ", len(base)-1)},
		{"shorter", base[:2<<20], fmt.Sprintf("sizes differ: a has %d bytes, b %d (the same up to byte %d)", len(base), 2<<20, 2<<20)},
		{"longer", append(slices.Clone(base), 0), fmt.Sprintf("sizes differ: a has %d bytes, b %d", len(base), len(base)+1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			aa := a
			if c.b == nil {
				aa = write("a0", nil)
			}
			got, err := compareFiles(aa, write("b", c.b))
			if err != nil {
				t.Fatal(err)
			}
			if (c.want == "") != (got == "") || !strings.HasPrefix(got, c.want) {
				t.Errorf("compareFiles = %q, want %q…", got, c.want)
			}
		})
	}
	if _, err := compareFiles(a, filepath.Join(dir, "absent")); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Errorf("absent file: %v", err)
	}
}

func flip(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i] ^= 0x80
	return c
}
