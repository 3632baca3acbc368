package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/model/synth"
)

var (
	benchCkInputFlag   = &cli.StringFlag{Name: "input", Usage: "checkpoint `DIR` to quantize; default: a synthetic Llama-like one of --params, generated into --workdir and removed after"}
	benchCkParamsFlag  = &cli.StringFlag{Name: "params", Value: "550M", Usage: "size of the synthetic checkpoint (550M: 2.19 GB of F32)"}
	benchCkSchemesFlag = &cli.StringFlag{Name: "schemes", Value: "int8,int4", Usage: "comma-separated schemes, each with quantize's default granularity (int8: per channel, int4: groups of 128)"}
	benchCkFormatFlag  = &cli.StringFlag{Name: "format", Value: string(plan.CompressedTensors), Usage: "output format, as quantize --format"}
	benchCkRoundsFlag  = &cli.IntFlag{Name: "rounds", Value: 3, Usage: "interleaved rounds (baseline, then quantize, for each scheme); medians are reported"}
	benchCkWorkdirFlag = &cli.StringFlag{Name: "workdir", Usage: "`DIR` for the outputs (and the synthetic input): on the disk you mean to measure; default the system's temporary directory"}
	benchCkJSONFlag    = &cli.BoolFlag{Name: "json", Usage: "print the report as JSON"}
)

var benchCheckpointCommand = &cli.Command{
	Name:  "checkpoint",
	Usage: "quantize a checkpoint against just reading it and writing output-sized bytes, in the same run",
	Description: "Each round runs, for every scheme, first the baseline and then `quantize` on the same\n" +
		"input and disk. The baseline reads every input file and, at the same time, writes as\n" +
		"many bytes as that scheme's output and syncs them: the least any quantizer must do.\n" +
		"quantize is the command's own code path (plan, parallel workers, ordered writer,\n" +
		"temporary directory renamed on success), timed from opening the input to the rename.\n" +
		"Peak RSS is measured for each phase alone (VmHWM reset through /proc/self/clear_refs,\n" +
		"else sampled) and compared with the largest tensor, which bounds what streaming can do.",
	Flags: []cli.Flag{benchCkInputFlag, benchCkParamsFlag, benchCkSchemesFlag, benchCkFormatFlag, benchCkRoundsFlag,
		benchCkWorkdirFlag, quantWorkFlag, deviceFlag, benchCkJSONFlag},
	Action: runBenchCheckpoint,
}

// CheckpointBench is the report of bench checkpoint.
type CheckpointBench struct {
	Input         string          `json:"input"`
	Generated     bool            `json:"generated"`
	Params        int64           `json:"params"`
	Tensors       int             `json:"tensors"`
	BytesIn       int64           `json:"bytes_in"`
	LargestTensor int64           `json:"largest_tensor_bytes"`
	Device        string          `json:"device"`
	Workers       int             `json:"workers"`
	Rounds        int             `json:"rounds"`
	Rows          []CheckpointRow `json:"rows"`
}

// CheckpointRow is one scheme: every round's times and the medians.
type CheckpointRow struct {
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
	// RSSOverLargest is QuantizePeakRSS over the largest tensor's bytes.
	RSSOverLargest float64 `json:"rss_over_largest_tensor"`
}

func runBenchCheckpoint(c *cli.Context) error {
	rounds := c.Int(benchCkRoundsFlag.Name)
	if rounds < 1 {
		return badInput(errors.New("bench checkpoint: --rounds must be at least 1"))
	}
	format := plan.Format(c.String(benchCkFormatFlag.Name))
	var jobs []*quantizeJob
	for _, name := range strings.Split(c.String(benchCkSchemesFlag.Name), ",") {
		s, err := parseSchemeFlags(strings.TrimSpace(name), "", false)
		if err != nil {
			return badInput(fmt.Errorf("bench checkpoint: --schemes: %w", err))
		}
		jobs = append(jobs, &quantizeJob{opt: plan.Options{Format: format, Scheme: s}, workers: c.Int(quantWorkFlag.Name), force: true, quiet: true})
	}
	work := c.String(benchCkWorkdirFlag.Name)
	if work == "" {
		work = os.TempDir()
	}
	work, err := os.MkdirTemp(work, "quantkit-bench-")
	if err != nil {
		return fmt.Errorf("bench checkpoint: --workdir: %w", err)
	}
	defer os.RemoveAll(work)
	// Gigabytes of scratch data: removed on Ctrl-C too.
	untrack, err := atomicfile.Track(work)
	if err != nil {
		return fmt.Errorf("bench checkpoint: %w", err)
	}
	defer untrack()

	rep := &CheckpointBench{Input: c.String(benchCkInputFlag.Name), Rounds: rounds}
	if rep.Input == "" {
		if rep.Input, err = benchGenerate(c, work); err != nil {
			return err
		}
		rep.Generated = true
	}
	ck, err := checkpoint.Open(rep.Input)
	if err != nil {
		return badInput(err)
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

	rep.Workers = c.Int(quantWorkFlag.Name)
	if rep.Workers <= 0 {
		rep.Workers = cpu.Threads()
	}
	rows := make([]CheckpointRow, len(jobs))
	for i, j := range jobs {
		j.in, j.out = rep.Input, filepath.Join(work, "out")
		j.dry = true
		plan, err := quantizeCheckpoint(c, j) // sizes only
		if err != nil {
			return err
		}
		j.dry = false
		rows[i] = CheckpointRow{Scheme: plan.Scheme, Format: string(plan.Format), BytesOut: plan.Totals.BytesOut}
	}
	progress, clear := progressLine(!c.Bool(benchCkJSONFlag.Name))
	defer clear()
	steps, step := rounds*len(jobs)*2, 0
	tick := func(what string) {
		if progress != nil {
			progress(step, steps, what)
		}
		step++
	}
	for range rounds {
		for i, j := range jobs {
			r := &rows[i]
			tick(r.Scheme + " read+write")
			var secs float64
			rss := peakRSS(func() { secs, err = readWriteBaseline(files, r.BytesOut, work) })
			if err != nil {
				return fmt.Errorf("bench checkpoint: baseline: %w", err)
			}
			r.BaselineSeconds = append(r.BaselineSeconds, secs)
			r.BaselinePeakRSS = max(r.BaselinePeakRSS, rss)

			tick(r.Scheme + " quantize")
			var q *QuantizeReport
			start := time.Now()
			rss = peakRSS(func() { q, err = quantizeCheckpoint(c, j) })
			if err != nil {
				return fmt.Errorf("bench checkpoint: %w", err)
			}
			r.QuantizeSeconds = append(r.QuantizeSeconds, time.Since(start).Seconds())
			r.QuantizePeakRSS = max(r.QuantizePeakRSS, rss)
			rep.Device = q.Device
			if err := os.RemoveAll(j.out); err != nil {
				return err
			}
		}
	}
	clear()
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
	if c.Bool(benchCkJSONFlag.Name) {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	writeCheckpointBench(c.App.Writer, rep)
	return nil
}

// benchGenerate writes the synthetic checkpoint of --params into work.
func benchGenerate(c *cli.Context, work string) (string, error) {
	params, err := parseCount(c.String(benchCkParamsFlag.Name))
	if err != nil {
		return "", badInput(fmt.Errorf("bench checkpoint: --params: %w", err))
	}
	dir := filepath.Join(work, "input")
	var opts synth.Options
	progress, clear := progressLine(!c.Bool(benchCkJSONFlag.Name))
	if progress != nil {
		opts.Progress = func(written, total int64) { progress(int(written>>20), int(total>>20), "MiB of input generated") }
	}
	_, err = synth.Write(dir, synth.LlamaLike(params), opts)
	clear()
	if err != nil {
		return "", fmt.Errorf("bench checkpoint: generating the input: %w", err)
	}
	return dir, nil
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
	reset := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	var peak int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, procStatus("VmRSS"))
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
		peak = max(peak, procStatus("VmHWM"))
	}
	return peak
}

// procStatus is a "kB" field of /proc/self/status in bytes, 0 where there
// is none.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok && k == field {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return n << 10
			}
		}
	}
	return 0
}

func writeCheckpointBench(w io.Writer, r *CheckpointBench) {
	fmt.Fprintf(w, "input: %s (%s params, %d tensors, %s; largest tensor %s)\n", r.Input, formatCount(r.Params), r.Tensors,
		formatBytes(r.BytesIn), formatBytes(r.LargestTensor))
	fmt.Fprintf(w, "device %s, %d workers, medians of %d interleaved rounds\n\n", r.Device, r.Workers, r.Rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scheme\tformat\toutput\tread+write\tquantize\tspeed vs read+write\tGB/s in\tpeak RSS\t÷ largest tensor\t")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f s\t%.2f s\t%.2f×\t%.2f\t%s\t%.2f\t\n", row.Scheme, row.Format, formatBytes(row.BytesOut),
			row.BaselineMedian, row.QuantizeMedian, row.SpeedVsBaseline, row.QuantizeGBps, formatBytes(row.QuantizePeakRSS), row.RSSOverLargest)
	}
	tw.Flush()
}
