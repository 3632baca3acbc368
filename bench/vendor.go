package bench

import (
	"fmt"
	"math"
	"slices"

	"github.com/quantkit/quantkit/backend"
)

// VendorTolerance is the largest relative error ‖C − C_ref‖ / ‖C_ref‖
// (Frobenius norms, float64) that a vendor GEMM of each precision may
// show against quantkit's result of the same input type on the bench's
// Gaussian operands: fp32 against quantkit's FP32 (only the summation
// order differs: about u·√(K/2) ≈ 4e-6 at K = 8192 for u = 2⁻²⁴, and TF32
// rounding, about 4e-4, must fail); tf32 and fp16 round each input to 11
// significant bits (relative error about 0.8·2⁻¹¹ ≈ 4e-4); bf16 to 8
// (about 0.8·2⁻⁸ ≈ 3e-3); about a factor of four of margin on each. INT8
// must equal quantkit's int32 accumulators exactly.
var VendorTolerance = map[string]float64{"fp32": 2e-5, "tf32": 2e-3, "fp16": 2e-3, "bf16": 1.5e-2, "int8": 0}

// Agreement is a vendor GEMM's result compared with quantkit's.
type Agreement struct {
	// Against is the result compared with: "quantkit fp32".
	Against string `json:"against"`
	// Exact says the comparison asked for equality (int8): Mismatches
	// counts the values that differ.
	Exact      bool `json:"exact"`
	Mismatches int  `json:"mismatches"`
	// NonFinite counts NaN and ±Inf values in the result (float only).
	NonFinite int `json:"non_finite,omitempty"`
	// RelError is ‖C − C_ref‖ / ‖C_ref‖ in Frobenius norms; MaxAbsError
	// the largest |C − C_ref|.
	RelError    float64 `json:"rel_error"`
	MaxAbsError float64 `json:"max_abs_error"`
	// Tolerance is VendorTolerance for the precision.
	Tolerance float64 `json:"tolerance"`
	OK        bool    `json:"ok"`
}

// CompareF32 compares got with want (same length) under tol. Values of
// got that are NaN or ±Inf count in NonFinite and fail the comparison;
// the errors are over the others (finite, so the JSON holds them).
func CompareF32(got, want []float32, against string, tol float64) *Agreement {
	a := &Agreement{Against: against, Tolerance: tol}
	var num, den float64
	for i, w := range want {
		g := float64(got[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			a.NonFinite++
			continue
		}
		d := g - float64(w)
		num += d * d
		den += float64(w) * float64(w)
		a.MaxAbsError = max(a.MaxAbsError, math.Abs(d))
		if d != 0 {
			a.Mismatches++
		}
	}
	a.RelError = relError(num, den)
	a.OK = len(got) == len(want) && a.NonFinite == 0 && a.RelError <= tol
	return a
}

// CompareS32 compares got with want exactly.
func CompareS32(got, want []int32, against string) *Agreement {
	a := &Agreement{Against: against, Exact: true}
	var num, den float64
	for i, w := range want {
		d := float64(got[i]) - float64(w)
		if d != 0 {
			a.Mismatches++
		}
		num += d * d
		den += float64(w) * float64(w)
		a.MaxAbsError = max(a.MaxAbsError, math.Abs(d))
	}
	a.RelError = relError(num, den)
	a.OK = len(got) == len(want) && a.Mismatches == 0
	return a
}

// relError is √(num/den), and 1 (all wrong) where the reference is all
// zeros and the result is not.
func relError(num, den float64) float64 {
	switch {
	case num == 0:
		return 0
	case den == 0:
		return 1
	}
	return math.Sqrt(num / den)
}

// vendorKinds are the vendor GEMMs b runs, when asked for and b has any;
// the note of what is missing goes to rep.VendorNote.
func vendorKinds(b backend.Backend, want bool, rep *Report) (backend.VendorGemmer, []backend.VendorGemmKind) {
	if !want {
		return nil, nil
	}
	vg, ok := b.(backend.VendorGemmer)
	if !ok {
		return nil, nil
	}
	kinds, note := vg.VendorGemms()
	rep.VendorNote = note
	if len(kinds) == 0 {
		return nil, nil
	}
	return vg, kinds
}

// kindsFor are the kinds that take the input type of quantkit's dtype.
func kindsFor(kinds []backend.VendorGemmKind, dtype string) []backend.VendorGemmKind {
	in := backend.F32
	if dtype == "int8" {
		in = backend.S8
	}
	var out []backend.VendorGemmKind
	for _, k := range kinds {
		if k.Input() == in {
			out = append(out, k)
		}
	}
	return out
}

// gemmCases is the number of measurements of the gemm suite.
func gemmCases(sizes []int, dtypes []string, baseline bool, kinds []backend.VendorGemmKind) int {
	per := len(dtypes)
	for _, dt := range dtypes {
		per += len(kindsFor(kinds, dt))
	}
	if baseline {
		per++
	}
	return len(sizes) * per
}

// vendorGemms measures each vendor kind that reads env's input type on
// env's operands, and checks its result against quantkit's (in env.c,
// which quantkit's timing runs left there). A kind that cannot run at
// this size, or fails, is a row with Error set: it never stops the
// benchmark (the error returned is a cancellation, or quantkit's result
// that could not be read).
func vendorGemms(b backend.Backend, vg backend.VendorGemmer, kinds []backend.VendorGemmKind, env *gemmEnv, opt GemmOptions,
	step func(string) error) (rows []Result, err error) {
	n := env.n
	flops := 2 * float64(n) * float64(n) * float64(n)
	ks := kindsFor(kinds, env.dtype)
	if len(ks) == 0 {
		return nil, nil
	}
	ref, err := download(b, env.c)
	if err != nil {
		return nil, fmt.Errorf("bench: quantkit %s GEMM %d³ on %s: reading the result: %w", env.dtype, n, b.Name(), err)
	}
	for _, k := range ks {
		if err := step(fmt.Sprintf("%s %s %d³", k.Impl, k.Precision, n)); err != nil {
			return rows, err
		}
		r := Result{Op: "gemm", Impl: k.Impl, Device: b.Name(), DType: k.Precision, M: n, N: n, K: n, Describe: k.Describe}
		if err := vendorOne(b, vg, k, env, opt, flops, ref, &r); err != nil {
			r.Error = err.Error()
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// vendorOne prepares, times and checks one vendor kind, filling r.
func vendorOne(b backend.Backend, vg backend.VendorGemmer, k backend.VendorGemmKind, env *gemmEnv, opt GemmOptions,
	flops float64, ref any, r *Result) error {
	c, err := b.Alloc(k.Output(), env.n*env.n)
	if err != nil {
		return err
	}
	defer b.Free(c)
	g, err := vg.PrepareVendorGemm(k.Name, env.n, env.n, env.n, env.a, env.bt, c)
	if err != nil {
		return err
	}
	defer g.Close()
	sec, reps, e, err := measureKernel(b, opt.Timing, opt.Energy, g.Run, flops)
	if err != nil {
		return err
	}
	r.Seconds, r.Reps, r.OpsPerSecond, r.Energy = sec, reps, flops/sec, e
	got, err := download(b, c)
	if err != nil {
		return err
	}
	against := "quantkit " + env.dtype
	switch want := ref.(type) {
	case []float32:
		r.Agreement = CompareF32(got.([]float32), want, against, VendorTolerance[k.Precision])
	case []int32:
		r.Agreement = CompareS32(got.([]int32), want, against)
	}
	return nil
}

// download copies a F32 or S32 buffer to the host.
func download(b backend.Backend, x backend.Buffer) (any, error) {
	switch x.DType() {
	case backend.F32:
		h := make([]float32, x.Len())
		return h, b.Download(h, x)
	case backend.S32:
		h := make([]int32, x.Len())
		return h, b.Download(h, x)
	}
	return nil, fmt.Errorf("bench: download of a %v buffer", x.DType())
}

// relateToVendors sets VsVendor of every GEMM row: its rate over the best
// vendor rate of the same precision at the same size (vendor rows
// included, the best at 1).
func relateToVendors(rs []Result) {
	type key struct {
		dtype   string
		m, n, k int
	}
	best := map[key]float64{}
	for _, r := range rs {
		if r.Op == "gemm" && IsVendor(r.Impl) && r.Error == "" {
			kk := key{r.DType, r.M, r.N, r.K}
			best[kk] = max(best[kk], r.OpsPerSecond)
		}
	}
	for i := range rs {
		r := &rs[i]
		if b := best[key{r.DType, r.M, r.N, r.K}]; r.Op == "gemm" && b > 0 && r.OpsPerSecond > 0 {
			r.VsVendor = r.OpsPerSecond / b
		}
	}
}

// VendorImpls are the Impl names of vendor libraries' rows.
var VendorImpls = []string{"cublas", "cublaslt"}

// IsVendor says whether impl is a vendor library's.
func IsVendor(impl string) bool { return slices.Contains(VendorImpls, impl) }

// relateToCopy sets VsCopy of every memory-bound row: its rate over the
// device copy's at the same size.
func relateToCopy(rs []Result) {
	copyRate := map[int]float64{}
	for _, r := range rs {
		if r.Op == CopyOp && r.Error == "" {
			copyRate[r.Elements] = r.BytesPerSecond
		}
	}
	for i := range rs {
		r := &rs[i]
		if c := copyRate[r.Elements]; r.Elements > 0 && r.Op != CopyOp && c > 0 {
			r.VsCopy = r.BytesPerSecond / c
		}
	}
}
