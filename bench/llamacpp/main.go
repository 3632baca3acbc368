// Command llamacpp runs the same Llama-shaped model at the same precisions
// through llama.cpp and through quantkit's lm package on this machine, on
// the same number of threads, and prints the two side by side: prefill and
// decode tokens per second (medians over interleaved rounds), quantkit's
// ratio to llama.cpp (above 1: quantkit is faster), the peak RSS of each
// side's process and how far their greedy tokens agree. It is the
// comparison with the peer of issue 17, not the product's benchmark
// (quantkit bench lm), and not part of make test; run it with
//
//	make bench-llamacpp                                  # 1B, 512/128, 2 threads
//	make bench-llamacpp LLAMACPP_FLAGS='-params 150M -prompt 128 -gen 32'
//
// which builds build/quantkit and llama.cpp (scripts/integration/
// build-llamacpp-bench.sh: natively for this CPU, CPU backend only, cached
// outside the clone in ${QUANTKIT_CACHE:-~/.cache/quantkit}; LLAMACPP_BUILD=
// prebuilt links node-llama-cpp's prebuilt libraries instead), or by hand:
//
//	eval "$(scripts/integration/build-llamacpp-bench.sh)"
//	go run ./bench/llamacpp -quantkit build/quantkit -params 150M -prompt 128 -gen 32
//
// The model: `quantkit gen --like llama --params P` (random weights with a
// real model's shapes; or -model DIR, a Hugging Face Llama checkpoint with
// its tokenizer), converted by `quantkit quantize --format gguf --type T` to
// F32, Q8_0 and Q4_0 GGUF files (llama-quantize's mixes: in Q4_0 the output
// matrix is Q6_K), and quantized by `quantkit quantize --scheme int8` (per
// channel) and `--scheme int4` (groups of 128) to quantkit's own
// checkpoints, which keep the embedding and lm_head in float32 (quantkit
// loads their lm_head as int8 per channel unless -quantize-head=false, as
// llama.cpp's files hold a quantized output matrix). All of it is made
// once into -work and reused.
//
// Each row pairs llama.cpp on a GGUF file with one way quantkit runs the
// same weights:
//
//	F32   GGUF file            lm.LoadGGUF of the F32 file
//	Q8_0  GGUF file            lm.LoadGGUF of the Q8_0 file (its blocks, packed)
//	      int8 checkpoint      lm.LoadHFWith of the int8 checkpoint (weight-only, lm_head int8)
//	      int8 checkpoint W8A8 the same with LoadOptions.Int8 (int8 activations)
//	Q4_0  GGUF file            lm.LoadGGUF of the Q4_0 file
//	      int4 checkpoint      lm.LoadHFWith of the int4 checkpoint (g128)
//
// The checkpoints are quantkit's own quantization of the float weights, not
// llama.cpp's blocks: the same model at the same bit width, the lm_head
// int8 per channel (8 bits, more than the Q4_0 file's Q6_K; float32 with
// -quantize-head=false, which for a large vocabulary weighs on decode).
//
// Both engines are timed the same way, in a child process each (so each
// has its own peak RSS, from getrusage): llama.cpp by scripts/integration/
// llamabench.c, which times as llama-bench does (n_batch 2048, n_ubatch 512,
// batch 1, flash attention off, KV cache F16 by default, a warm-up of each
// test first), quantkit by this command re-run as a child (-child): after a
// warm-up, a prefill of the -prompt tokens on an empty cache, then -gen
// single-token decodes from BOS on an emptied cache, each token the greedy
// pick of the one before. The prompt is the same -prompt token ids for
// both (BOS and seeded random ids). After the first prefill each side
// generates -agree tokens greedily; "greedy agree" is the length of their
// common prefix: it should be most of it for the same weights (random
// weights make near-ties, and llama.cpp quantizes activations to 8 bits for
// Q8_0/Q4_0, so an early difference is not an error; it is not asserted).
//
// -rounds rounds are run, the engines alternating which goes first, and
// medians are reported (with -best, also each side's fastest round). The machine line gives the CPU, threads, Go
// version, quantkit's kernels, llama.cpp's version, build and features,
// and the load average before and after: on a shared machine, numbers
// taken under load are noisy and say so there.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/cpuinfo"
	"github.com/quantkit/quantkit/lm"
)

type options struct {
	quantkit, llamabench, backends string
	model, params, work            string
	seed                           int
	threads, prompt, gen, agree    int
	rounds, poll                   int
	kv, precisions                 string
	checkpoints, best, head        bool
}

func main() {
	var o options
	var child childArgs
	isChild := flag.Bool("child", false, "internal: measure quantkit in this process (the parent runs it)")
	flag.StringVar(&child.load, "load", "", "internal, with -child: gguf, hf, hf-w8a8 or gguf-f32 (the GGUF dequantized to float32 at load)")
	flag.StringVar(&child.path, "path", "", "internal, with -child: the model file or checkpoint")
	flag.StringVar(&child.promptFile, "prompt-file", "", "internal, with -child: the prompt's token ids")

	flag.StringVar(&o.quantkit, "quantkit", "build/quantkit", "the quantkit command, for gen and quantize")
	flag.StringVar(&o.llamabench, "llamabench", os.Getenv("QUANTKIT_LLAMACPP_BENCH"), "llama.cpp's timing harness (scripts/integration/build-llamacpp-bench.sh builds it and prints it as QUANTKIT_LLAMACPP_BENCH)")
	flag.StringVar(&o.backends, "backends", os.Getenv("QUANTKIT_LLAMACPP_BENCH_BACKENDS"), "the directory of llama.cpp's ggml backends when they are shared objects (the prebuilt libraries)")
	flag.StringVar(&o.model, "model", "", "a Hugging Face Llama checkpoint (float, with tokenizer.json); default: quantkit gen --like llama --params P")
	flag.StringVar(&o.params, "params", "1B", "with no -model: the size of the generated model (150M for a quick run)")
	flag.IntVar(&o.seed, "seed", 0, "with no -model: the seed of the generated weights")
	flag.StringVar(&o.work, "work", "", "where the model and its conversions are made once and kept (default: $QUANTKIT_CACHE/bench-llamacpp/...)")
	flag.IntVar(&o.threads, "threads", 2, "threads of both engines")
	flag.IntVar(&o.prompt, "prompt", 512, "prefill tokens")
	flag.IntVar(&o.gen, "gen", 128, "decode tokens")
	flag.IntVar(&o.agree, "agree", 16, "greedy tokens compared after the prompt")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; medians are reported")
	flag.IntVar(&o.poll, "poll", 50, "llama.cpp's threadpool busy-wait level, 0-100, as llama-bench --poll (default 50, llama-bench's)")
	flag.StringVar(&o.kv, "kv", "f16", "llama.cpp's KV cache type: f16 (llama-bench's default) or f32 (quantkit's)")
	flag.StringVar(&o.precisions, "precisions", "f32,q8_0,q4_0", "llama.cpp types to compare: f32, q8_0, q4_0")
	flag.BoolVar(&o.best, "best", false, "also print the table of each side's fastest round (on a shared machine, the least disturbed)")
	flag.BoolVar(&o.checkpoints, "checkpoints", true, "also run quantkit's own int8/int4 checkpoints beside the GGUF files")
	flag.BoolVar(&o.head, "quantize-head", true, "load the checkpoints' float32 lm_head as int8 per channel (lm.LoadOptions.QuantizeHead), as llama.cpp's Q8_0 and Q4_0 files hold their output matrix quantized (Q8_0, Q6_K); false keeps it float32")
	flag.Parse()
	child.threads, child.prompt, child.gen, child.agree = o.threads, o.prompt, o.gen, o.agree

	var err error
	if *isChild {
		err = runChild(child)
	} else {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/llamacpp:", err)
		os.Exit(1)
	}
}

// variant is one way quantkit runs a precision's weights.
type variant struct {
	name, load, path string
}

// plan is one precision: llama.cpp's GGUF file and quantkit's variants.
type plan struct {
	precision, gguf string
	variants        []variant
}

func (o options) check() error {
	switch {
	case o.threads < 1:
		return fmt.Errorf("-threads %d: want at least 1", o.threads)
	case o.prompt < 1 || o.gen < 1 || o.agree < 0:
		return fmt.Errorf("-prompt %d -gen %d -agree %d: want positive lengths", o.prompt, o.gen, o.agree)
	case o.rounds < 1:
		return fmt.Errorf("-rounds %d: want at least 1", o.rounds)
	case o.poll < 0 || o.poll > 100:
		return fmt.Errorf("-poll %d: want 0 to 100", o.poll)
	case o.kv != "f16" && o.kv != "f32":
		return fmt.Errorf("-kv %q: want f16 or f32", o.kv)
	case o.llamabench == "":
		return errors.New("no llama.cpp harness: pass -llamabench or eval \"$(scripts/integration/build-llamacpp-bench.sh)\" first (make bench-llamacpp does)")
	}
	return nil
}

// plans lists the precisions asked for, in the order asked.
func (o options) plans(work string) ([]plan, error) {
	var ps []plan
	for _, p := range strings.Split(o.precisions, ",") {
		switch strings.ToLower(strings.TrimSpace(p)) {
		case "f32":
			ps = append(ps, plan{"F32", filepath.Join(work, "F32.gguf"),
				[]variant{{"GGUF file", loadGGUF, filepath.Join(work, "F32.gguf")}}})
		case "q8_0":
			q := plan{"Q8_0", filepath.Join(work, "Q8_0.gguf"), []variant{{"GGUF file", loadGGUF, filepath.Join(work, "Q8_0.gguf")}}}
			if o.checkpoints {
				hf, w8a8, head := loadHF, loadHFW8A8, ""
				if o.head {
					hf, w8a8, head = loadHFHead, loadHFW8A8Head, ", lm_head int8"
				}
				q.variants = append(q.variants,
					variant{"int8 checkpoint" + head, hf, filepath.Join(work, "int8")},
					variant{"int8 checkpoint, W8A8" + head, w8a8, filepath.Join(work, "int8")})
			}
			ps = append(ps, q)
		case "q4_0":
			q := plan{"Q4_0", filepath.Join(work, "Q4_0.gguf"), []variant{{"GGUF file", loadGGUF, filepath.Join(work, "Q4_0.gguf")}}}
			if o.checkpoints {
				v := variant{"int4 checkpoint (g128)", loadHF, filepath.Join(work, "int4")}
				if o.head {
					v.name, v.load = v.name+", lm_head int8", loadHFHead
				}
				q.variants = append(q.variants, v)
			}
			ps = append(ps, q)
		default:
			return nil, fmt.Errorf("-precisions: %q is not f32, q8_0 or q4_0", p)
		}
	}
	if len(ps) == 0 {
		return nil, errors.New("-precisions: none given")
	}
	return ps, nil
}

func run(o options) error {
	if err := o.check(); err != nil {
		return err
	}
	loadBefore := loadavg()
	work, hf, err := o.prepareModel()
	if err != nil {
		return err
	}
	ps, err := o.plans(work)
	if err != nil {
		return err
	}
	if err := o.prepareFiles(hf, work, ps); err != nil {
		return err
	}
	cfg, _, err := lm.ReadHFConfig(hf)
	if err != nil {
		return err
	}
	if o.prompt+max(o.gen, o.agree) > 1<<20 {
		return fmt.Errorf("-prompt %d -gen %d: too long", o.prompt, o.gen)
	}
	promptFile := filepath.Join(work, fmt.Sprintf("prompt-%d.txt", o.prompt))
	if err := writePrompt(promptFile, makePrompt(o.prompt, cfg.Vocab, max(cfg.BOS, 0), 1)); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	var rows []row
	for _, p := range ps {
		for _, v := range p.variants {
			rows = append(rows, row{precision: p.precision, quantkit: v.name})
		}
	}
	var llamaInfo sample
	for r := range o.rounds {
		i := 0
		for _, p := range ps {
			// llama.cpp first in even rounds, quantkit first in odd ones.
			var ls sample
			runLlama := func() error {
				var err error
				ls, err = o.runLlama(p, promptFile)
				if err == nil && llamaInfo.SystemInfo == "" {
					llamaInfo = ls
				}
				progress(r, o.rounds, p.precision, "llama.cpp", ls)
				return err
			}
			if r%2 == 0 {
				if err := runLlama(); err != nil {
					return err
				}
			}
			qs := make([]sample, len(p.variants))
			for j, v := range p.variants {
				s, err := o.runQuantkit(self, v, promptFile)
				if err != nil {
					return err
				}
				progress(r, o.rounds, p.precision, "quantkit "+v.name, s)
				qs[j] = s
			}
			if r%2 == 1 {
				if err := runLlama(); err != nil {
					return err
				}
			}
			for j := range p.variants {
				rows[i+j].llama = append(rows[i+j].llama, ls)
				rows[i+j].qk = append(rows[i+j].qk, qs[j])
			}
			i += len(p.variants)
		}
	}

	host, _ := os.Hostname()
	ci := cpuinfo.Read()
	fmt.Printf("machine: %s, %s (%d cores, %d CPUs), %d threads each; %s, quantkit kernels %s\n",
		host, ci.Model, ci.Cores, runtime.NumCPU(), o.threads, runtime.Version(), cpu.Features())
	fmt.Printf("llama.cpp: %s, %s; %s\n", os.Getenv("QUANTKIT_LLAMACPP_VERSION"),
		firstNonEmpty(os.Getenv("QUANTKIT_LLAMACPP_BENCH_BUILD"), o.llamabench), strings.TrimSpace(llamaInfo.SystemInfo))
	fmt.Printf("model: %s (%d layers, hidden %d, vocab %d), %s; prompt %d tokens, %d decoded, batch 1, llama.cpp KV %s, flash attention off\n",
		hf, cfg.Layers, cfg.Hidden, cfg.Vocab, llamaInfo.ModelDesc, o.prompt, o.gen, o.kv)
	fmt.Printf("load average before %s, after %s; medians of %d interleaved rounds\n\n", loadBefore, loadavg(), o.rounds)
	writeTable(os.Stdout, rows, o.prompt, o.gen, median)
	if o.best {
		fmt.Printf("\nfastest of %d rounds:\n\n", o.rounds)
		writeTable(os.Stdout, rows, o.prompt, o.gen, best)
	}
	return nil
}

// prepareModel returns the work directory and the float Hugging Face
// checkpoint, generating it with quantkit gen when -model is not given.
func (o options) prepareModel() (work, hf string, err error) {
	work = o.work
	if work == "" {
		cache := os.Getenv("QUANTKIT_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", "", err
			}
			cache = filepath.Join(home, ".cache", "quantkit")
		}
		name := fmt.Sprintf("llama-%s-seed%d", o.params, o.seed)
		if o.model != "" {
			abs, err := filepath.Abs(o.model)
			if err != nil {
				return "", "", err
			}
			name = strings.ReplaceAll(strings.Trim(abs, "/"), "/", "_")
		}
		work = filepath.Join(cache, "bench-llamacpp", name)
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", "", err
	}
	if o.model != "" {
		return work, o.model, nil
	}
	hf = filepath.Join(work, "hf")
	if _, err := os.Stat(hf); err == nil {
		return work, hf, nil
	}
	return work, hf, o.quantkitRun("gen", "--like", "llama", "--params", o.params, "--seed", fmt.Sprint(o.seed), "-o", hf)
}

// prepareFiles makes the GGUF files and checkpoints the plans need that
// are not in work yet (quantize writes atomically: what exists is whole).
func (o options) prepareFiles(hf, work string, ps []plan) error {
	ensure := func(out string, args ...string) error {
		if _, err := os.Stat(out); err == nil {
			return nil
		}
		return o.quantkitRun(append([]string{"quantize", hf, "-o", out}, args...)...)
	}
	for _, p := range ps {
		if err := ensure(p.gguf, "--format", "gguf", "--type", p.precision); err != nil {
			return err
		}
		for _, v := range p.variants {
			var err error
			switch filepath.Base(v.path) {
			case "int8":
				err = ensure(v.path, "--scheme", "int8")
			case "int4":
				err = ensure(v.path, "--scheme", "int4")
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (o options) quantkitRun(args ...string) error {
	fmt.Fprintf(os.Stderr, "bench/llamacpp: %s %s\n", o.quantkit, strings.Join(args, " "))
	cmd := exec.Command(o.quantkit, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w (make build builds build/quantkit)", o.quantkit, args[0], err)
	}
	return nil
}

// runLlama runs the llama.cpp harness once on p's GGUF file.
func (o options) runLlama(p plan, promptFile string) (sample, error) {
	args := []string{"-m", p.gguf, "-t", fmt.Sprint(o.threads), "-p", fmt.Sprint(o.prompt), "-n", fmt.Sprint(o.gen),
		"-g", fmt.Sprint(o.agree), "-kv", o.kv, "-f", promptFile, "-r", "1", "-poll", fmt.Sprint(o.poll)}
	if o.backends != "" {
		args = append(args, "-backends", o.backends)
	}
	return runJSON(exec.Command(o.llamabench, args...), "llama.cpp on "+p.gguf)
}

// runQuantkit runs this command as a quantkit child on v.
func (o options) runQuantkit(self string, v variant, promptFile string) (sample, error) {
	cmd := exec.Command(self, "-child", "-load", v.load, "-path", v.path, "-prompt-file", promptFile,
		"-threads", fmt.Sprint(o.threads), "-prompt", fmt.Sprint(o.prompt), "-gen", fmt.Sprint(o.gen),
		"-agree", fmt.Sprint(o.agree))
	return runJSON(cmd, "quantkit on "+v.path)
}

// runJSON runs cmd, decodes the sample it prints and adds its peak RSS.
func runJSON(cmd *exec.Cmd, what string) (sample, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return sample{}, fmt.Errorf("%s: %w", what, err)
	}
	var s sample
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		return sample{}, fmt.Errorf("%s: output is not a sample: %w (%q)", what, err, out.String())
	}
	if len(s.PrefillNS) == 0 || len(s.DecodeNS) == 0 {
		return sample{}, fmt.Errorf("%s: no timings in %q", what, out.String())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.MaxRSS = ru.Maxrss * 1024 // kilobytes on Linux
	}
	return s, nil
}

func progress(r, rounds int, precision, who string, s sample) {
	if len(s.PrefillNS) == 0 || len(s.DecodeNS) == 0 {
		return
	}
	fmt.Fprintf(os.Stderr, "round %d/%d %-5s %-34s prefill %.2f s, decode %.2f s, RSS %s MiB\n", r+1, rounds, precision, who,
		time.Duration(s.PrefillNS[0]).Seconds(), time.Duration(s.DecodeNS[0]).Seconds(), mib(s.MaxRSS))
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
