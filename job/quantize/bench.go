package quantize

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/internal/procmem"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/model/synth"
	"github.com/quantkit/quantkit/quant"
)

// BenchOptions say what Bench measures.
type BenchOptions struct {
	// Input is the checkpoint to quantize; "" generates a synthetic
	// Llama-like one of Params parameters into the work directory (and
	// removes it after).
	Input  string
	Params int64
	// Schemes are quantized in turn, each a row of the report.
	Schemes []quant.Scheme
	Format  plan.Format
	// Rounds is the number of interleaved rounds (baseline, then quantize,
	// for each scheme); the report gives medians.
	Rounds int
	// Workdir is where the outputs (and the generated input) go, in a
	// directory of their own that is removed after: on the disk to
	// measure. "" means the system's temporary directory.
	Workdir string
	// Workers is Options.Workers of every quantize run, MaxMemory its
	// Options.MaxMemory.
	Workers   int
	MaxMemory int64
	// Cold evicts the input's pages from the page cache before each
	// phase (dropCache), so that both read it from the disk.
	Cold bool
	// Progress, if not nil, is called as the bench goes: while the input
	// is generated (done and total in MiB) and at the start of each phase
	// (done of total phases).
	Progress func(done, total int, what string)
	// Tensor, if not nil, is every quantize run's Options.Progress.
	Tensor func(Progress)
}

// BenchReport is the report of Bench.
type BenchReport struct {
	Input         string     `json:"input"`
	Generated     bool       `json:"generated"`
	Params        int64      `json:"params"`
	Tensors       int        `json:"tensors"`
	BytesIn       int64      `json:"bytes_in"`
	LargestTensor int64      `json:"largest_tensor_bytes"`
	Device        string     `json:"device"`
	Workers       int        `json:"workers"`
	MaxMemory     int64      `json:"max_memory"` // 0: plan.DefaultMaxMemory
	Cold          bool       `json:"cold"`
	Rounds        int        `json:"rounds"`
	Rows          []BenchRow `json:"rows"`
}

// BenchRow is one scheme: every round's times and the medians.
type BenchRow struct {
	Scheme          string    `json:"scheme"`
	Format          string    `json:"format"`
	BytesOut        int64     `json:"bytes_out"`
	BaselineSeconds []float64 `json:"baseline_seconds"`
	QuantizeSeconds []float64 `json:"quantize_seconds"`
	BaselineMedian  float64   `json:"baseline_median_seconds"`
	QuantizeMedian  float64   `json:"quantize_median_seconds"`
	// SpeedVsBaseline is the baseline's median time over quantize's: 1
	// means quantizing costs nothing beyond the I/O.
	SpeedVsBaseline float64 `json:"speed_vs_baseline"`
	QuantizeGBps    float64 `json:"quantize_gb_per_s"` // input bytes per second
	BaselinePeakRSS int64   `json:"baseline_peak_rss_bytes"`
	QuantizePeakRSS int64   `json:"quantize_peak_rss_bytes"`
	// PlannedPeak is the quantize run's planned peak (Report.MemoryEstimate).
	PlannedPeak int64 `json:"planned_peak_bytes"`
	// RSSOverLargest is QuantizePeakRSS over the largest tensor's bytes.
	RSSOverLargest float64 `json:"rss_over_largest_tensor"`
}

// Bench quantizes a checkpoint against just reading it and writing
// output-sized bytes, in the same run. Each round runs, for every scheme,
// first the baseline (readWriteBaseline: every input file read while as
// many bytes as that scheme's output are written and synced, the least any
// quantizer must do) and then Run on the same input and disk, timed from
// opening the input to the rename. Peak RSS is measured for each phase
// alone and compared with the largest tensor, which bounds what streaming
// can do.
func Bench(ctx context.Context, opt BenchOptions) (*BenchReport, error) {
	if opt.Rounds < 1 {
		return nil, inputerr.Mark(errors.New("rounds must be at least 1"))
	}
	if len(opt.Schemes) == 0 {
		return nil, inputerr.Mark(errors.New("no schemes"))
	}
	if opt.Input == "" && opt.Params < 1 {
		return nil, inputerr.Mark(fmt.Errorf("no input, and %d parameters to generate", opt.Params))
	}
	work := opt.Workdir
	if work == "" {
		work = os.TempDir()
	}
	work, err := os.MkdirTemp(work, "quantkit-bench-")
	if err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	defer os.RemoveAll(work)
	// Gigabytes of scratch data: removed on Ctrl-C too.
	untrack, err := atomicfile.Track(work)
	if err != nil {
		return nil, err
	}
	defer untrack()

	rep := &BenchReport{Input: opt.Input, Device: Device, Rounds: opt.Rounds, Workers: opt.Workers, MaxMemory: opt.MaxMemory, Cold: opt.Cold}
	if rep.Workers <= 0 {
		rep.Workers = cpu.Threads()
	}
	if rep.Input == "" {
		rep.Input = filepath.Join(work, "input")
		gen := GenerateOptions{Output: rep.Input, Config: synth.LlamaLike(opt.Params)}
		if opt.Progress != nil {
			gen.Progress = func(written, total int64) { opt.Progress(int(written>>20), int(total>>20), "MiB of input generated") }
		}
		if _, err := Generate(ctx, gen); err != nil {
			return nil, fmt.Errorf("generating the input: %w", err)
		}
		rep.Generated = true
	}
	ck, err := checkpoint.Open(rep.Input)
	if err != nil {
		return nil, inputerr.Mark(err)
	}
	files := ck.Files()
	for _, t := range ck.Tensors() {
		rep.Tensors++
		rep.Params += t.Len()
		rep.BytesIn += t.End - t.Begin
		rep.LargestTensor = max(rep.LargestTensor, t.End-t.Begin)
	}
	ck.Close()
	for i := range files {
		files[i] = filepath.Join(rep.Input, files[i])
	}

	jobs := make([]Options, len(opt.Schemes))
	rows := make([]BenchRow, len(opt.Schemes))
	for i, s := range opt.Schemes {
		jobs[i] = Options{Input: rep.Input, Output: filepath.Join(work, "out"), Plan: plan.Options{Format: opt.Format, Scheme: s},
			Workers: opt.Workers, MaxMemory: opt.MaxMemory, Force: true, Progress: opt.Tensor}
		sizes, err := DryRun(jobs[i])
		if err != nil {
			return nil, err
		}
		rows[i] = BenchRow{Scheme: sizes.Scheme, Format: string(sizes.Format), BytesOut: sizes.Totals.BytesOut, PlannedPeak: sizes.MemoryEstimate}
	}
	steps, step := opt.Rounds*len(jobs)*2, 0
	tick := func(what string) {
		if opt.Progress != nil {
			opt.Progress(step, steps, what)
		}
		step++
	}
	for range opt.Rounds {
		for i, j := range jobs {
			r := &rows[i]
			tick(r.Scheme + " read+write")
			if err := evict(opt.Cold, files); err != nil {
				return nil, err
			}
			var secs float64
			rss := peakRSS(func() { secs, err = readWriteBaseline(files, r.BytesOut, work) })
			if err != nil {
				return nil, fmt.Errorf("baseline: %w", err)
			}
			r.BaselineSeconds = append(r.BaselineSeconds, secs)
			r.BaselinePeakRSS = max(r.BaselinePeakRSS, rss)

			tick(r.Scheme + " quantize")
			if err := evict(opt.Cold, files); err != nil {
				return nil, err
			}
			start := time.Now()
			rss = peakRSS(func() { _, err = Run(ctx, j) })
			if err != nil {
				return nil, err
			}
			r.QuantizeSeconds = append(r.QuantizeSeconds, time.Since(start).Seconds())
			r.QuantizePeakRSS = max(r.QuantizePeakRSS, rss)
			if err := os.RemoveAll(j.Output); err != nil {
				return nil, err
			}
		}
	}
	for i := range rows {
		r := &rows[i]
		r.BaselineMedian = bench.Median(r.BaselineSeconds)
		r.QuantizeMedian = bench.Median(r.QuantizeSeconds)
		r.SpeedVsBaseline = r.BaselineMedian / r.QuantizeMedian
		r.QuantizeGBps = float64(rep.BytesIn) / r.QuantizeMedian / 1e9
		if rep.LargestTensor > 0 {
			r.RSSOverLargest = float64(r.QuantizePeakRSS) / float64(rep.LargestTensor)
		}
	}
	rep.Rows = rows
	return rep, nil
}

// evict drops files from the page cache when cold is set.
func evict(cold bool, files []string) error {
	if !cold {
		return nil
	}
	return dropCache(files)
}

// readWriteBaseline reads every file in files to the end and, at the same
// time, writes out bytes of pseudo-random data to a file in dir and syncs
// it: the I/O of quantization without the quantization. It returns the
// seconds until both are done.
func readWriteBaseline(files []string, out int64, dir string) (float64, error) {
	const block = 8 << 20
	start := time.Now()
	var wg sync.WaitGroup
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, block)
		for _, name := range files {
			f, err := os.Open(name)
			if err != nil {
				readErr = err
				return
			}
			_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
			f.Close()
			if err != nil {
				readErr = fmt.Errorf("%s: %w", name, err)
				return
			}
		}
	}()
	writeErr := func() error {
		f, err := os.CreateTemp(dir, "baseline-*")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		buf := make([]byte, block)
		rnd := rand.New(rand.NewPCG(1, 2))
		for i := 0; i+8 <= len(buf); i += 8 {
			v := rnd.Uint64()
			for k := range 8 {
				buf[i+k] = byte(v >> (8 * k))
			}
		}
		for left := out; left > 0; {
			n := int(min(left, block))
			if _, err := f.Write(buf[:n]); err != nil {
				return err
			}
			left -= int64(n)
		}
		return f.Sync()
	}()
	wg.Wait()
	return time.Since(start).Seconds(), errors.Join(readErr, writeErr)
}

// peakRSS runs fn and returns the largest resident set of the process
// while it ran. The Go heap is returned to the system first, so that an
// earlier phase's garbage does not count; the kernel's high-water mark
// (VmHWM) is reset where it can be, and RSS sampled every 5 ms besides.
func peakRSS(fn func()) int64 {
	debug.FreeOSMemory()
	reset := procmem.ResetPeak()
	var peak int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, procmem.Status("VmRSS"))
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	fn()
	close(done)
	wg.Wait()
	if reset {
		peak = max(peak, procmem.Status("VmHWM"))
	}
	return peak
}
