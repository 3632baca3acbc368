package quantize

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/cpuinfo"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/internal/procmem"
	"github.com/quantkit/quantkit/internal/units"
	"github.com/quantkit/quantkit/model/ggufmix"
)

// LlamaQuantizeHint says where the llama_model_quantize harness that
// BenchGGUF runs comes from.
const LlamaQuantizeHint = "it is scripts/integration/quantize.c built against llama.cpp's prebuilt library " +
	"(node-llama-cpp@3.21.1): in a quantkit clone run `make integration`, or " +
	"`eval \"$(scripts/integration/setup-llamacpp.sh)\"`, which installs it into ~/.cache/quantkit " +
	"and exports QUANTKIT_LLAMACPP_QUANTIZE (and QUANTKIT_LLAMACPP_LIB_DIR, where it finds libllama)"

// BenchGGUFOptions say what BenchGGUF measures.
type BenchGGUFOptions struct {
	// Input is the F32, F16 or BF16 GGUF file to quantize; "" generates an
	// F32 one of Params parameters into the work directory (Quantkit's
	// `gen`, then `quantize --format gguf --type F32`) and removes it after.
	Input  string
	Params int64
	// Types are llama-quantize's type names (Q4_K_M, Q8_0, ...): a row of
	// the report each.
	Types []string
	// Pure is llama-quantize's --pure, for both tools.
	Pure bool
	// Threads is llama_model_quantize's nthread, and quantkit's --workers
	// and GOMAXPROCS: both tools run at most that many threads at once.
	Threads int
	// Rounds is the number of interleaved rounds; the report gives medians.
	Rounds int
	// Workdir is where the outputs (and the generated input) go, in a
	// directory of their own that is removed after: on the disk to
	// measure. "" means the system's temporary directory.
	Workdir string
	// Quantkit is the command line that runs quantkit: its executable
	// and any arguments before the subcommand.
	Quantkit []string
	// QuantkitVersion and LlamaVersion name the two builds in the report.
	QuantkitVersion, LlamaVersion string
	// LlamaQuantize is the llama_model_quantize harness
	// (scripts/integration/quantize.c, see LlamaQuantizeHint); LlamaLib,
	// if not "", is its --lib (else it finds libllama through
	// $QUANTKIT_LLAMACPP_LIB_DIR).
	LlamaQuantize, LlamaLib string
	// Progress, if not nil, is called before each step: done of total
	// steps (generating the input, then every run).
	Progress func(done, total int, what string)
}

// BenchGGUFReport is the report of BenchGGUF; its JSON is bench gguf's
// --json output.
type BenchGGUFReport struct {
	Input     string `json:"input"`
	Generated bool   `json:"generated"`
	Params    int64  `json:"params,omitempty"` // of the generated input
	BytesIn   int64  `json:"bytes_in"`
	Threads   int    `json:"threads"`
	Rounds    int    `json:"rounds"`
	Pure      bool   `json:"pure"`
	// Quantkit and LlamaQuantize are the command lines run (before their
	// arguments), with the builds' versions.
	Quantkit        string `json:"quantkit"`
	QuantkitVersion string `json:"quantkit_version,omitempty"`
	LlamaQuantize   string `json:"llama_quantize"`
	LlamaVersion    string `json:"llama_version,omitempty"`
	// The machine: processor, logical CPUs, and the load average (1, 5
	// and 15 minutes) before the first run and after the last, as other
	// work on it skews the times.
	CPU        string     `json:"cpu"`
	CPUs       int        `json:"cpus"`
	LoadBefore [3]float64 `json:"load_before"`
	LoadAfter  [3]float64 `json:"load_after"`
	// RSSFloor is this process's largest peak resident set when it started
	// a tool (its high-water mark is reset before each): Linux starts a
	// child's ru_maxrss at its parent's peak, as the child begins as a copy
	// of it, so a peak at or below the floor is the floor, not the tool's.
	RSSFloor int64          `json:"rss_floor_bytes"`
	Rows     []BenchGGUFRow `json:"rows"`
}

// BenchGGUFRow is one type: both tools, every round.
type BenchGGUFRow struct {
	Type          string        `json:"type"`
	Quantkit      BenchGGUFTool `json:"quantkit"`
	LlamaQuantize BenchGGUFTool `json:"llama_quantize"`
	// TimeRatio is quantkit's median seconds over llama-quantize's (below
	// 1: quantkit is faster); SyncedTimeRatio the same until the output is
	// on disk; RSSRatio quantkit's largest peak RSS over llama-quantize's.
	TimeRatio       float64 `json:"time_ratio"`
	SyncedTimeRatio float64 `json:"synced_time_ratio"`
	RSSRatio        float64 `json:"rss_ratio"`
	// Identical is whether the two outputs were the same bytes in every
	// round; Difference describes the first round's difference otherwise.
	Identical  bool   `json:"identical"`
	Difference string `json:"difference,omitempty"`
}

// BenchGGUFTool is one tool's runs of one type.
type BenchGGUFTool struct {
	BytesOut int64 `json:"bytes_out"`
	// Per round: the process's wall time, from start to exit; the time
	// an fsync of its output took after it exited (quantkit syncs before
	// it renames, llama-quantize leaves its output to the page cache);
	// its user+system CPU time; its peak RSS (wait4's ru_maxrss).
	Seconds     []float64 `json:"seconds"`
	SyncSeconds []float64 `json:"sync_seconds"`
	CPUSeconds  []float64 `json:"cpu_seconds"`
	PeakRSS     []int64   `json:"peak_rss_bytes"`
	// Per round, the largest anonymous (heap, stacks) and file-backed
	// (mapped files: the input, when a tool maps it) parts of the resident
	// set seen in /proc/PID/status, sampled every 10 ms: what the peak is
	// made of. Zero where there is no /proc.
	SampledAnon []int64 `json:"sampled_peak_anon_bytes"`
	SampledFile []int64 `json:"sampled_peak_file_bytes"`
	// Medians over the rounds (SyncedSeconds: of Seconds+SyncSeconds), the
	// input's MB (1e6 bytes) per median second, and the largest peak RSS.
	MedianSeconds       float64 `json:"median_seconds"`
	MedianSyncedSeconds float64 `json:"median_synced_seconds"`
	MedianCPUSeconds    float64 `json:"median_cpu_seconds"`
	MBPerSecond         float64 `json:"mb_per_s"`
	MaxPeakRSS          int64   `json:"max_peak_rss_bytes"`
	MaxSampledAnon      int64   `json:"max_sampled_anon_bytes"`
	MaxSampledFile      int64   `json:"max_sampled_file_bytes"`
}

// BenchGGUF quantizes one GGUF with quantkit and with llama.cpp's
// llama_model_quantize, each type, each round, each tool as a process of
// its own with the same number of threads, and compares the outputs byte
// for byte. Within a round the tool that goes first alternates from one
// type and round to the next; the input is read once before, so every run
// finds it in the page cache.
func BenchGGUF(ctx context.Context, opt BenchGGUFOptions) (*BenchGGUFReport, error) {
	if err := opt.check(); err != nil {
		return nil, inputerr.Mark(err)
	}
	llama, err := exec.LookPath(opt.LlamaQuantize)
	if err != nil {
		return nil, inputerr.Mark(fmt.Errorf("llama-quantize harness %s: %w (%s)", opt.LlamaQuantize, err, LlamaQuantizeHint))
	}
	if opt.Input != "" {
		if err := checkGGUFInput(opt.Input); err != nil {
			return nil, inputerr.Mark(err)
		}
	}
	work := opt.Workdir
	if work == "" {
		work = os.TempDir()
	}
	work, err = os.MkdirTemp(work, "quantkit-bench-gguf-")
	if err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	defer os.RemoveAll(work)
	untrack, err := atomicfile.Track(work) // gigabytes: removed on Ctrl-C too
	if err != nil {
		return nil, err
	}
	defer untrack()

	rep := &BenchGGUFReport{Input: opt.Input, Threads: opt.Threads, Rounds: opt.Rounds, Pure: opt.Pure,
		Quantkit: strings.Join(opt.Quantkit, " "), QuantkitVersion: opt.QuantkitVersion,
		LlamaQuantize: llama, LlamaVersion: opt.LlamaVersion, CPU: cpuinfo.Read().Model, CPUs: runtime.NumCPU()}
	steps, step := 2*opt.Rounds*len(opt.Types), 0
	if opt.Input == "" {
		steps += 2
	}
	tick := func(what string) {
		if opt.Progress != nil {
			opt.Progress(step, steps, what)
		}
		step++
	}
	// quantkit at most Threads threads at once, as llama-quantize.
	qkEnv := append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(opt.Threads))
	if rep.Input == "" {
		if rep.Input, err = generateGGUF(ctx, opt, work, qkEnv, tick); err != nil {
			return nil, err
		}
		rep.Generated, rep.Params = true, opt.Params
	}
	if rep.BytesIn, err = readThrough(rep.Input); err != nil {
		return nil, err
	}

	rep.LoadBefore = loadAverage()
	rep.Rows = make([]BenchGGUFRow, len(opt.Types))
	for r := range opt.Rounds {
		for i, typ := range opt.Types {
			row := &rep.Rows[i]
			row.Type = typ
			qkOut := filepath.Join(work, "quantkit-"+typ+".gguf")
			llOut := filepath.Join(work, "llama-quantize-"+typ+".gguf")
			qkArgs := append(append([]string(nil), opt.Quantkit...), "quantize", rep.Input, "-o", qkOut,
				"--format", "gguf", "--type", typ, "--workers", strconv.Itoa(opt.Threads))
			llArgs := []string{llama, "--nthread", strconv.Itoa(opt.Threads)}
			if opt.LlamaLib != "" {
				llArgs = append(llArgs, "--lib", opt.LlamaLib)
			}
			if opt.Pure {
				qkArgs = append(qkArgs, "--pure")
				llArgs = append(llArgs, "--pure")
			}
			llArgs = append(llArgs, rep.Input, llOut, typ)
			runs := []struct {
				name string
				tool *BenchGGUFTool
				args []string
				env  []string
				out  string
			}{{"llama-quantize", &row.LlamaQuantize, llArgs, os.Environ(), llOut}, {"quantkit", &row.Quantkit, qkArgs, qkEnv, qkOut}}
			if (r+i)%2 == 1 {
				runs[0], runs[1] = runs[1], runs[0]
			}
			for _, run := range runs {
				tick(fmt.Sprintf("round %d/%d: %s %s", r+1, opt.Rounds, run.name, typ))
				res, err := runMeasured(ctx, run.args, run.env, run.out)
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", run.name, typ, err)
				}
				rep.RSSFloor = max(rep.RSSFloor, res.floor)
				t := run.tool
				t.BytesOut = res.bytesOut
				t.Seconds = append(t.Seconds, res.seconds)
				t.SyncSeconds = append(t.SyncSeconds, res.syncSeconds)
				t.CPUSeconds = append(t.CPUSeconds, res.cpuSeconds)
				t.PeakRSS = append(t.PeakRSS, res.peakRSS)
				t.SampledAnon = append(t.SampledAnon, res.anon)
				t.SampledFile = append(t.SampledFile, res.file)
			}
			diff, err := compareFiles(llOut, qkOut)
			if err != nil {
				return nil, err
			}
			if diff != "" && row.Difference == "" {
				row.Difference = fmt.Sprintf("round %d: %s", r+1, diff)
			}
			for _, p := range []string{llOut, qkOut} {
				if err := os.Remove(p); err != nil {
					return nil, err
				}
			}
		}
	}
	rep.LoadAfter = loadAverage()
	for i := range rep.Rows {
		row := &rep.Rows[i]
		row.Quantkit.summarize(rep.BytesIn)
		row.LlamaQuantize.summarize(rep.BytesIn)
		row.Identical = row.Difference == ""
		row.TimeRatio = row.Quantkit.MedianSeconds / row.LlamaQuantize.MedianSeconds
		row.SyncedTimeRatio = row.Quantkit.MedianSyncedSeconds / row.LlamaQuantize.MedianSyncedSeconds
		if row.LlamaQuantize.MaxPeakRSS > 0 {
			row.RSSRatio = float64(row.Quantkit.MaxPeakRSS) / float64(row.LlamaQuantize.MaxPeakRSS)
		}
	}
	return rep, nil
}

func (opt *BenchGGUFOptions) check() error {
	switch {
	case opt.LlamaQuantize == "":
		return errors.New("no llama-quantize harness given: " + LlamaQuantizeHint)
	case len(opt.Quantkit) == 0 || opt.Quantkit[0] == "":
		return errors.New("no quantkit command to run")
	case opt.Threads < 1:
		return fmt.Errorf("threads must be at least 1, not %d", opt.Threads)
	case opt.Rounds < 1:
		return fmt.Errorf("rounds must be at least 1, not %d", opt.Rounds)
	case len(opt.Types) == 0:
		return errors.New("no types")
	case opt.Input == "" && opt.Params < 1:
		return fmt.Errorf("no input, and %d parameters to generate", opt.Params)
	}
	seen := map[string]bool{}
	for _, t := range opt.Types {
		m, err := ggufmix.ParseMix(t)
		if err != nil {
			return err
		}
		if seen[m.String()] {
			return fmt.Errorf("type %s given twice", t)
		}
		seen[m.String()] = true
	}
	return nil
}

// checkGGUFInput refuses an input that is not a GGUF file before any tool
// runs.
func checkGGUFInput(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || string(magic[:]) != "GGUF" {
		return fmt.Errorf("%s: not a GGUF file (no GGUF magic)", path)
	}
	return nil
}

// generateGGUF writes an F32 GGUF of opt.Params parameters into work as a
// user would, with quantkit's gen and quantize, as processes of their own:
// this process stays small, so that its peak RSS, which every child's
// ru_maxrss starts from, stays below the tools'.
func generateGGUF(ctx context.Context, opt BenchGGUFOptions, work string, env []string, tick func(string)) (string, error) {
	hf, in := filepath.Join(work, "hf"), filepath.Join(work, "input.gguf")
	params := strconv.FormatInt(opt.Params, 10)
	tick("generating a checkpoint of " + params + " parameters")
	if _, err := runChild(ctx, append(append([]string(nil), opt.Quantkit...), "gen", "--params", params, "-o", hf), env); err != nil {
		return "", fmt.Errorf("generating the input: %w", err)
	}
	tick("converting it to an F32 GGUF")
	if _, err := runChild(ctx, append(append([]string(nil), opt.Quantkit...), "quantize", hf, "-o", in, "--format", "gguf", "--type", "F32"), env); err != nil {
		return "", fmt.Errorf("generating the input: %w", err)
	}
	return in, os.RemoveAll(hf)
}

// measuredRun is one tool's run.
type measuredRun struct {
	seconds, syncSeconds, cpuSeconds float64
	peakRSS, bytesOut                int64
	floor                            int64 // this process's peak when it started the tool
	anon, file                       int64 // sampled peaks of RssAnon and RssFile
}

// runMeasured runs args with env, which writes out, then syncs out.
func runMeasured(ctx context.Context, args, env []string, out string) (measuredRun, error) {
	var m measuredRun
	if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return m, err
	}
	// The child's ru_maxrss starts at this process's peak: bring that down
	// to what is resident now (clear_refs 5 resets the high-water mark).
	procmem.ResetPeak()
	m.floor = procmem.Status("VmHWM")
	st, err := runChild(ctx, args, env)
	if err != nil {
		return m, err
	}
	m.seconds = st.seconds
	m.cpuSeconds = (st.state.UserTime() + st.state.SystemTime()).Seconds()
	m.peakRSS = maxRSS(st.state)
	m.anon, m.file = st.anon, st.file
	start := time.Now()
	f, err := os.Open(out)
	if err != nil {
		return m, fmt.Errorf("its output: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return m, fmt.Errorf("syncing its output: %w", err)
	}
	m.syncSeconds = time.Since(start).Seconds()
	fi, err := f.Stat()
	if err != nil {
		return m, err
	}
	m.bytesOut = fi.Size()
	return m, nil
}

type childStatus struct {
	seconds    float64
	state      *os.ProcessState
	anon, file int64 // the largest RssAnon and RssFile sampled
}

// runChild runs args with env and waits for it: its wall time and its
// state; a failure is an error with the command line and the end of what
// it printed.
func runChild(ctx context.Context, args, env []string) (childStatus, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = env
	tail := &tailWriter{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = tail, tail
	start := time.Now()
	err := cmd.Start()
	var st childStatus
	if err == nil {
		done := make(chan struct{})
		sampled := make(chan struct{})
		go func() { // until Wait reaps it, the pid is the child's (a zombie at worst)
			defer close(sampled)
			status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				anon, file := rssParts(status)
				st.anon, st.file = max(st.anon, anon), max(st.file, file)
				select {
				case <-done:
					return
				case <-tick.C:
				}
			}
		}()
		err = cmd.Wait()
		close(done)
		<-sampled
	}
	st.seconds, st.state = time.Since(start).Seconds(), cmd.ProcessState
	if err != nil {
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		msg := fmt.Sprintf("%s: %v", strings.Join(args, " "), err)
		if out := strings.TrimSpace(tail.String()); out != "" {
			msg += "; it printed:\n" + out
		}
		return st, errors.New(msg)
	}
	return st, nil
}

// rssParts reads RssAnon and RssFile, in bytes, from a /proc/PID/status
// file; zeros where it cannot.
func rssParts(path string) (anon, file int64) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "RssAnon" && k != "RssFile") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		if k == "RssAnon" {
			anon = n << 10
		} else {
			file = n << 10
		}
	}
	return anon, file
}

// maxRSS is a finished process's peak resident set in bytes (ru_maxrss:
// kilobytes on Linux).
func maxRSS(st *os.ProcessState) int64 {
	ru, ok := st.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) << 10
}

// tailWriter keeps the last max bytes written to it (about: whole writes).
type tailWriter struct {
	max int
	buf []byte
	cut bool
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	if n := len(w.buf); n > 2*w.max {
		w.buf = append(w.buf[:0], w.buf[n-w.max:]...)
		w.cut = true
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	b := w.buf
	if len(b) > w.max {
		b, w.cut = b[len(b)-w.max:], true
	}
	if w.cut {
		return "[…]" + string(b)
	}
	return string(b)
}

// readThrough reads the file at path to its end and returns its size:
// it is in the page cache after, for every tool alike.
func readThrough(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, make([]byte, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// compareFiles returns "" when the files at a and b hold the same bytes,
// else where they first differ. It reads a MiB of each at a time.
func compareFiles(a, b string) (string, error) {
	fa, err := os.Open(a)
	if err != nil {
		return "", err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return "", err
	}
	defer fb.Close()
	const block = 1 << 20
	ba, bb := make([]byte, block), make([]byte, block)
	var off int64
	for {
		na, erra := io.ReadFull(fa, ba)
		nb, errb := io.ReadFull(fb, bb)
		for _, e := range []struct {
			name string
			err  error
		}{{a, erra}, {b, errb}} {
			if e.err != nil && e.err != io.EOF && e.err != io.ErrUnexpectedEOF {
				return "", fmt.Errorf("%s: %w", e.name, e.err)
			}
		}
		n := min(na, nb)
		if i := firstDifference(ba[:n], bb[:n]); i >= 0 {
			return fmt.Sprintf("first difference at byte %d (%s has %#02x, %s %#02x)", off+int64(i),
				filepath.Base(a), ba[i], filepath.Base(b), bb[i]), nil
		}
		off += int64(n)
		if na != nb {
			sa, _ := fa.Seek(0, io.SeekEnd)
			sb, _ := fb.Seek(0, io.SeekEnd)
			return fmt.Sprintf("sizes differ: %s has %d bytes, %s %d (the same up to byte %d)",
				filepath.Base(a), sa, filepath.Base(b), sb, off), nil
		}
		if na < block {
			return "", nil
		}
	}
}

// firstDifference is the index of the first byte where a and b (of one
// length) differ, -1 where none does.
func firstDifference(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// summarize fills t's medians from its rounds.
func (t *BenchGGUFTool) summarize(bytesIn int64) {
	median := func(xs []float64) float64 { return bench.Median(append([]float64(nil), xs...)) } // keeps the rounds' order
	t.MedianSeconds = median(t.Seconds)
	synced := make([]float64, len(t.Seconds))
	for i := range synced {
		synced[i] = t.Seconds[i] + t.SyncSeconds[i]
	}
	t.MedianSyncedSeconds = median(synced)
	t.MedianCPUSeconds = median(t.CPUSeconds)
	if t.MedianSeconds > 0 {
		t.MBPerSecond = float64(bytesIn) / 1e6 / t.MedianSeconds
	}
	t.MaxPeakRSS = slices.Max(append(t.PeakRSS, 0))
	t.MaxSampledAnon = slices.Max(append(t.SampledAnon, 0))
	t.MaxSampledFile = slices.Max(append(t.SampledFile, 0))
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute load averages; zeros
// where there is none.
func loadAverage() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	for i, f := range strings.Fields(string(b)) {
		if i == 3 {
			break
		}
		l[i], _ = strconv.ParseFloat(f, 64)
	}
	return l
}

// WriteTable writes r for people: the input, the machine and its load,
// then per type a line per tool and their ratios.
func (r *BenchGGUFReport) WriteTable(out io.Writer) error {
	w := &errWriter{w: out}
	in := units.FormatBytes(r.BytesIn)
	if r.Generated {
		in += fmt.Sprintf(", generated: %s parameters, F32", units.FormatCount(r.Params))
	}
	fmt.Fprintf(w, "input: %s (%s)\n", r.Input, in)
	fmt.Fprintf(w, "quantkit: %s%s, --workers %d, GOMAXPROCS=%d\n", r.Quantkit, paren(r.QuantkitVersion), r.Threads, r.Threads)
	fmt.Fprintf(w, "llama.cpp: %s%s, nthread %d\n", r.LlamaQuantize, paren(r.LlamaVersion), r.Threads)
	pure := ""
	if r.Pure {
		pure = ", --pure"
	}
	fmt.Fprintf(w, "each a process of its own, %d interleaved rounds, medians%s\n", r.Rounds, pure)
	fmt.Fprintf(w, "machine: %s, %d CPUs; load average %.2f %.2f %.2f before, %.2f %.2f %.2f after\n\n", r.CPU, r.CPUs,
		r.LoadBefore[0], r.LoadBefore[1], r.LoadBefore[2], r.LoadAfter[0], r.LoadAfter[1], r.LoadAfter[2])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "type\ttool\tseconds\tevery round\t+ fsync\tMB/s in\tCPU s\tpeak RSS\tanon / mapped file\toutput\t")
	for _, row := range r.Rows {
		for i, t := range []struct {
			name string
			t    *BenchGGUFTool
		}{{"quantkit", &row.Quantkit}, {"llama-quantize", &row.LlamaQuantize}} {
			typ := row.Type
			if i > 0 {
				typ = ""
			}
			rounds := make([]string, len(t.t.Seconds))
			for k, s := range t.t.Seconds {
				rounds[k] = fmt.Sprintf("%.2f", s)
			}
			rss := units.FormatBytes(t.t.MaxPeakRSS)
			if t.t.MaxPeakRSS <= r.RSSFloor {
				rss = "≤ " + rss + " (floor)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s\t%.2f\t%.1f\t%.2f\t%s\t%s / %s\t%s\t\n", typ, t.name, t.t.MedianSeconds, strings.Join(rounds, " "),
				t.t.MedianSyncedSeconds, t.t.MBPerSecond, t.t.MedianCPUSeconds, rss, units.FormatBytes(t.t.MaxSampledAnon),
				units.FormatBytes(t.t.MaxSampledFile), units.FormatBytes(t.t.BytesOut))
		}
		same := "byte-identical"
		if !row.Identical {
			same = "DIFFERENT: " + row.Difference
		}
		fmt.Fprintf(tw, "\tquantkit ÷ llama\t%.2f×\t\t%.2f×\t\t\t%.2f×\t\t%s\t\n", row.TimeRatio, row.SyncedTimeRatio, row.RSSRatio, same)
	}
	tw.Flush()
	fmt.Fprintf(w, "\npeak RSS: wait4's ru_maxrss of each process, the largest of its rounds; a child's starts at\n"+
		"its parent's peak, here at most %s (the floor). anon / mapped file: the largest RssAnon and\n"+
		"RssFile seen, sampled every 10 ms (mapped file pages are the page cache's, shared and reclaimable)\n", units.FormatBytes(r.RSSFloor))
	return w.err
}

// paren is " (s)", or "" for "".
func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}
