package lmbench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/internal/inputerr"
)

// Options say what Run measures.
type Options struct {
	// Models are the inputs, rows of one report: Hugging Face folders,
	// GGUF files, llama2.c checkpoints.
	Models []string
	// Precisions are those of Precisions to run a float checkpoint at;
	// nil: all. An already quantized input runs as it is when nil, else
	// as each of these it holds (and is refused when it holds none).
	Precisions []string
	// GroupSize is w4a16's group (0: DefaultGroupSize).
	GroupSize int
	// QuantizeHead quantizes the lm_head (the embedding when tied) too,
	// with the precision's scheme, at w8a16, w4a16 and w8a8 of a float
	// checkpoint, and as int8 per channel in an already quantized
	// checkpoint whose head is float (lm.LoadOptions.QuantizeHead): as
	// llama.cpp's Q8_0 and Q4_0 files hold it (Q8_0, Q6_K). Without it the
	// head stays float32, as llm-compressor leaves it.
	QuantizeHead bool
	// PromptLen is the synthetic prompt's length (Prompt, seeded by
	// Seed); Gen the tokens decoded after it; Batch the sequences decoded
	// together (1: batch 1 only).
	PromptLen, Gen, Batch int
	Seed                  uint64
	// Rounds: each round measures every precision once, in a rotated
	// order, so that drift hits them alike; the report gives medians.
	Rounds int
	// Threads is the CPU kernels' threads and GOMAXPROCS (0: as is).
	Threads int
	// Device is the backend: "cpu" (default), "gpu" or "gpu:N".
	Device string
	// Energy, when set, measures joules per token.
	Energy *EnergySetup
	// InProcess measures in this process instead of a child process per
	// precision and round; peak RSS is then the high-water mark reset
	// through /proc/self/clear_refs (0 where that is not allowed).
	InProcess bool
	// Executable runs the children (default /proc/self/exe: this very
	// program, whose main hands over to ChildMain).
	Executable string
	// Progress, when set, is called before each measurement with those
	// done and the total.
	Progress func(done, total int, what string)
}

// EnergySetup is how Run measures energy.
type EnergySetup struct {
	// Window is energy.Measure's: each phase (the prefill of the prompt,
	// the decode of Gen tokens) repeated over at least Window.MinWindow
	// between two readings of the counter.
	Window energy.Options
	// Idle is how long to measure the idle power before the run (0: not;
	// IdleW is taken as it is).
	Idle  time.Duration
	IdleW float64
	// Log is told of the idle measurement (nil: not).
	Log io.Writer
	// Source, when set, is measured instead of the device's counter
	// (tests: energy.FakeSource); it implies InProcess, as a child cannot
	// be handed it.
	Source energy.Source
}

// Check reports what Run would refuse in o before it loads anything that
// needs no file: no model, an unknown precision, sizes out of range.
// Its errors match inputerr.ErrInput.
func (o *Options) Check() error {
	bad := func(format string, args ...any) error { return inputerr.Mark(fmt.Errorf(format, args...)) }
	switch {
	case len(o.Models) == 0:
		return bad("no model")
	case o.PromptLen < 1:
		return bad("prompt length %d must be at least 1", o.PromptLen)
	case o.Gen < 1:
		return bad("%d tokens to generate: want at least 1", o.Gen)
	case o.Batch < 1:
		return bad("batch %d must be at least 1", o.Batch)
	case o.Rounds < 1:
		return bad("rounds %d must be at least 1", o.Rounds)
	case o.GroupSize < 0 || o.GroupSize%2 != 0:
		return bad("group size %d must be positive and even", o.GroupSize)
	case o.Threads < 0:
		return bad("threads %d must not be negative", o.Threads)
	}
	if o.Precisions != nil && len(o.Precisions) == 0 {
		return bad("no precision")
	}
	for i, p := range o.Precisions {
		if !slices.Contains(Precisions, p) {
			return bad("unknown precision %q (want some of %s)", p, strings.Join(Precisions, ","))
		}
		if slices.Contains(o.Precisions[:i], p) {
			return bad("precision %s given twice", p)
		}
	}
	if d := o.device(); d != "cpu" && d != "gpu" && !strings.HasPrefix(d, "gpu:") {
		return bad("device %q: want cpu, gpu or gpu:N", d)
	}
	return nil
}

func (o *Options) device() string {
	if o.Device == "" {
		return "cpu"
	}
	return o.Device
}

// Run measures every precision of every model in o, on one device, and
// returns the report. Inputs and precisions are checked before any model
// is loaded (Options.Check, each input's header, the prompt and the
// generated tokens against its context length). Cancelling ctx stops it
// (a child process is killed) with ctx's error.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	group := o.GroupSize
	if group == 0 {
		group = DefaultGroupSize
	}
	var all []precisionCase
	for _, path := range o.Models {
		in, err := probeInput(path)
		if err != nil {
			return nil, err
		}
		if n := o.PromptLen + o.Gen; in.Context > 0 && n > in.Context {
			return nil, inputerr.Mark(fmt.Errorf("%s: a prompt of %d tokens and %d generated take %d positions, past the model's context of %d",
				path, o.PromptLen, o.Gen, n, in.Context))
		}
		cs, err := cases(in, o.Precisions, group, o.QuantizeHead)
		if err != nil {
			return nil, err
		}
		all = append(all, cs...)
	}

	rep := &Report{Date: time.Now().UTC(), Machine: bench.ThisMachine(), Device: o.device(), PromptLen: o.PromptLen,
		Gen: o.Gen, Batch: o.Batch, Rounds: o.Rounds, Seed: o.Seed, Threads: o.Threads,
		Prompt: fmt.Sprintf("%d token ids drawn uniformly from the vocabulary by PCG(%d, sequence)", o.PromptLen, o.Seed)}
	if o.Batch > 1 {
		rep.BatchDecode = BatchDecode
	}
	if o.Threads > 0 {
		rep.Machine.Threads = o.Threads
	}
	var src energy.Source
	idleW, withEnergy := 0.0, false
	inProcess := o.InProcess
	if e := o.Energy; e != nil {
		src, idleW = e.Source, e.IdleW
		if src != nil {
			inProcess = true
			if why := unreadable(src); why != "" {
				rep.EnergyNote, src = why, nil
			} else if e.Idle > 0 {
				eo, note := bench.NewEnergy(src, e.Window, e.Idle, e.Log)
				idleW, rep.EnergyNote = eo.IdleW, note
			}
			withEnergy = src != nil
		} else {
			eo, note, closeSrc := bench.OpenEnergy(o.device(), e.Window, e.Idle, e.Log)
			defer closeSrc()
			if eo == nil {
				rep.EnergyNote = note
			} else {
				withEnergy, rep.EnergyNote = true, note
				if e.Idle > 0 {
					idleW = eo.IdleW
				}
				if inProcess {
					src = eo.Source
				}
			}
		}
	}
	if inProcess {
		rep.Isolation = "in-process: peak RSS is the high-water mark reset through /proc/self/clear_refs before each load"
	} else {
		rep.Isolation = "a child process per precision and round: peak RSS is the child's (wait4's ru_maxrss), load included"
	}
	exe := o.Executable
	if exe == "" {
		exe = "/proc/self/exe"
	}

	samples := make([][]*sample, len(all))
	total := o.Rounds * len(all)
	for r := range o.Rounds {
		for k := range all {
			i := (k + r) % len(all) // rotated each round
			c := all[i]
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("lmbench: %w", err)
			}
			if o.Progress != nil {
				o.Progress(r*len(all)+k, total, fmt.Sprintf("round %d/%d: %s %s", r+1, o.Rounds, c.in.Path, c.Label))
			}
			j := &job{Path: c.in.Path, Format: c.in.Format, Float: c.in.float(), Precision: c.Precision, GroupSize: group, QuantizeHead: o.QuantizeHead,
				PromptLen: o.PromptLen, Gen: o.Gen, Batch: o.Batch, Seed: o.Seed, Threads: o.Threads, Device: o.device(),
				Energy: withEnergy, IdleW: idleW}
			if e := o.Energy; e != nil {
				j.Window = e.Window
				j.Window.KeepSamples = false
			}
			var s *sample
			var err error
			if inProcess {
				var src1 energy.Source
				if withEnergy {
					src1 = src
				}
				rss, ok := inProcessRSS(func() { s, err = measure(ctx, j, src1) })
				if err == nil && ok {
					s.PeakRSS = rss
				}
			} else {
				s, err = runChild(ctx, exe, j)
			}
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", c.in.Path, c.Label, err)
			}
			samples[i] = append(samples[i], s)
		}
	}
	if o.Progress != nil {
		o.Progress(total, total, "done")
	}
	for i, c := range all {
		rep.Rows = append(rep.Rows, summarize(c, samples[i], o))
	}
	rep.ratios()
	if withEnergy {
		for _, row := range rep.Rows {
			if row.Energy == nil && row.EnergyNote != "" && rep.EnergyNote == "" {
				rep.EnergyNote = row.EnergyNote
			}
		}
	}
	return rep, nil
}
