package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/quantkit/quantkit/backend"
)

// GemmOptions selects what Gemm measures.
type GemmOptions struct {
	Sizes  []int    // M = N = K for each
	DTypes []string // "fp32", "int8"
	Timing Timing
	// Baseline adds gonum's blas32 Sgemm (C = A·Bᵀ, the same layout) at
	// each size, run on the host in the same process.
	Baseline bool
	// Vendor adds the device vendor's GEMMs (cuBLAS, cuBLASLt) at each
	// size where the backend has them (backend.VendorGemmer).
	Vendor bool
	// Energy, when set, measures each kernel's energy too.
	Energy *EnergyOptions
	// Progress, when set, is called before each measurement.
	Progress func(done, total int, what string)
}

// GemmDTypes are the element types Gemm knows: fp32 is float32 in and
// out; int8 is int8 in with exact int32 accumulators out.
var GemmDTypes = []string{"fp32", "int8"}

// Gemm measures C[n×n] = A[n×n]·B[n×n]ᵀ on b for each size and dtype, and
// gonum's Sgemm beside it when asked. With opt.Vendor and a backend that
// has vendor GEMMs (backend.VendorGemmer: cuBLAS, cuBLASLt), each of
// those runs on the same operands right after quantkit's kernel of the
// same input type, its result checked against quantkit's (see
// VendorTolerance). Cancelling ctx stops it before the next measurement,
// with ctx's error.
func Gemm(ctx context.Context, b backend.Backend, opt GemmOptions) (*Report, error) {
	for _, dt := range opt.DTypes {
		if dt != "fp32" && dt != "int8" {
			return nil, fmt.Errorf("bench: unknown GEMM dtype %q (want fp32 or int8)", dt)
		}
	}
	rep := &Report{Date: time.Now().UTC(), Machine: ThisMachine(), Device: b.Describe()}
	vendor, kinds := vendorKinds(b, opt.Vendor, rep)
	total := gemmCases(opt.Sizes, opt.DTypes, opt.Baseline, kinds)
	done := 0
	step := func(what string) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if opt.Progress != nil {
			opt.Progress(done, total, what)
		}
		done++
		return nil
	}
	for _, n := range opt.Sizes {
		if n <= 0 {
			return nil, fmt.Errorf("bench: GEMM size %d must be positive", n)
		}
		flops := 2 * float64(n) * float64(n) * float64(n)
		var fp32Rate, baseRate float64
		var rows []Result
		if opt.Baseline {
			if err := step(fmt.Sprintf("gonum fp32 %d³", n)); err != nil {
				return nil, err
			}
			sec, reps := gonumSgemm(n, opt.Timing)
			baseRate = flops / sec
			rows = append(rows, Result{Op: "gemm", Impl: "gonum", Device: "cpu", DType: "fp32", M: n, N: n, K: n, Seconds: sec, Reps: reps, OpsPerSecond: baseRate})
		}
		for _, dt := range opt.DTypes {
			if err := step(fmt.Sprintf("quantkit %s %d³", dt, n)); err != nil {
				return nil, err
			}
			env, err := newGemmEnv(b, dt, n)
			if err != nil {
				return nil, fmt.Errorf("bench: %s GEMM %d³ on %s: %w", dt, n, b.Name(), err)
			}
			sec, reps, e, err := measureKernel(b, opt.Timing, opt.Energy, env.run, flops)
			if err != nil {
				env.free()
				return nil, fmt.Errorf("bench: %s GEMM %d³ on %s: %w", dt, n, b.Name(), err)
			}
			r := Result{Op: "gemm", Impl: "quantkit", Device: b.Name(), DType: dt, M: n, N: n, K: n, Seconds: sec, Reps: reps, OpsPerSecond: flops / sec, Energy: e}
			if dt == "fp32" {
				fp32Rate = r.OpsPerSecond
			}
			rows = append(rows, r)
			if vendor != nil {
				vr, err := vendorGemms(b, vendor, kinds, env, opt, step)
				rows = append(rows, vr...)
				if err != nil {
					env.free()
					return nil, err
				}
			}
			env.free()
		}
		var fp32Energy *EnergyResult
		for _, r := range rows {
			if r.Impl == "quantkit" && r.DType == "fp32" {
				fp32Energy = r.Energy
			}
		}
		for i := range rows {
			r := &rows[i]
			if r.Impl != "quantkit" {
				continue
			}
			if r.DType == "int8" && fp32Rate > 0 {
				r.SpeedupOverFP32 = r.OpsPerSecond / fp32Rate
			}
			if r.DType == "int8" && r.Energy != nil && fp32Energy != nil && fp32Energy.JoulesPerCall > 0 {
				r.Energy.EnergyRatioVsFP32 = r.Energy.JoulesPerCall / fp32Energy.JoulesPerCall
			}
			if baseRate > 0 {
				r.VsBaseline = r.OpsPerSecond / baseRate
			}
		}
		rep.Results = append(rep.Results, rows...)
	}
	relateToVendors(rep.Results)
	return rep, nil
}

// gemmEnv is one size's operands of one dtype on the device, quantkit's
// output, and the call of quantkit's kernel.
type gemmEnv struct {
	b     backend.Backend
	dtype string
	n     int
	a, bt backend.Buffer
	c     backend.Buffer
	run   func() error
	bufs  []backend.Buffer
}

func newGemmEnv(b backend.Backend, dtype string, n int) (_ *gemmEnv, err error) {
	env := &gemmEnv{b: b, dtype: dtype, n: n}
	defer func() {
		if err != nil {
			env.free()
		}
	}()
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	alloc := func(dt backend.DType, host any) (backend.Buffer, error) {
		buf, err := b.Alloc(dt, n*n)
		if err != nil {
			return nil, err
		}
		env.bufs = append(env.bufs, buf)
		if host != nil {
			err = b.Upload(buf, host)
		}
		return buf, err
	}
	in, out := backend.F32, backend.F32
	var ha, hb any
	switch dtype {
	case "fp32":
		ha, hb = randF32(rng, n*n), randF32(rng, n*n)
	case "int8":
		in, out = backend.S8, backend.S32
		ha, hb = randS8(rng, n*n), randS8(rng, n*n)
	default:
		return nil, fmt.Errorf("bench: GEMM dtype %q", dtype)
	}
	var err1, err2, err3 error
	env.a, err1 = alloc(in, ha)
	env.bt, err2 = alloc(in, hb)
	env.c, err3 = alloc(out, nil)
	if err := firstErr(err1, err2, err3); err != nil {
		return nil, err
	}
	if dtype == "fp32" {
		env.run = func() error { return b.GemmF32(n, n, n, env.a, env.bt, env.c) }
	} else {
		env.run = func() error { return b.GemmS8(n, n, n, env.a, env.bt, env.c, nil) }
	}
	return env, nil
}

func (env *gemmEnv) free() {
	for _, buf := range env.bufs {
		env.b.Free(buf)
	}
	env.bufs = nil
}

// measureOn times run (which queues work on b) with the device's own
// timer when b has one (CUDA events), and otherwise with the host clock
// around run and a synchronize.
func measureOn(b backend.Backend, t Timing, run func() error) (sec float64, reps int, err error) {
	if dt, ok := b.(backend.DeviceTimer); ok {
		return t.MeasureTimed(func() (float64, error) { return dt.Elapsed(run) })
	}
	return t.Measure(func() error {
		if err := run(); err != nil {
			return err
		}
		return b.Synchronize()
	})
}

func gonumSgemm(n int, t Timing) (sec float64, reps int) {
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	a := blas32.General{Rows: n, Cols: n, Stride: n, Data: randF32(rng, n*n)}
	b := blas32.General{Rows: n, Cols: n, Stride: n, Data: randF32(rng, n*n)}
	c := blas32.General{Rows: n, Cols: n, Stride: n, Data: make([]float32, n*n)}
	sec, reps, _ = t.Measure(func() error {
		blas32.Gemm(blas.NoTrans, blas.Trans, 1, a, b, 0, c)
		return nil
	})
	return sec, reps
}

func randF32(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func randS8(rng *rand.Rand, n int) []int8 {
	x := make([]int8, n)
	for i := range x {
		x[i] = int8(rng.IntN(256) - 128)
	}
	return x
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
