package quantize

import (
	"context"
	"testing"

	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/quant"
)

func TestBench(t *testing.T) {
	in := synthModel(t)
	work := t.TempDir()
	schemes := []quant.Scheme{quant.Int8PerChannel, quant.Int4PerGroup128}
	tensors := 0
	r, err := Bench(context.Background(), BenchOptions{Input: in, Schemes: schemes, Format: plan.CompressedTensors, Rounds: 2, Workdir: work,
		Tensor: func(Progress) { tensors++ }})
	if err != nil {
		t.Fatal(err)
	}
	if r.Generated || r.Input != in || r.Rounds != 2 || len(r.Rows) != 2 || r.Tensors != 75 || r.Params != 1016896 ||
		r.BytesIn != 4*1016896 || r.LargestTensor != 4*4096*64 || r.Device != "cpu" {
		t.Fatalf("report %+v", r)
	}
	if tensors != 2*2*75 {
		t.Errorf("%d tensors written in all, want 300", tensors)
	}
	// The output sizes are a quantize run's own.
	for i, s := range schemes {
		row := r.Rows[i]
		q, err := DryRun(Options{Input: in, Output: "unused", Plan: plan.Options{Format: plan.CompressedTensors, Scheme: s}})
		if err != nil {
			t.Fatal(err)
		}
		if row.BytesOut != q.Totals.BytesOut || row.Scheme != s.String() || row.Format != string(plan.CompressedTensors) {
			t.Errorf("%s: row %+v, quantize writes %d bytes", s, row, q.Totals.BytesOut)
		}
		if len(row.BaselineSeconds) != 2 || len(row.QuantizeSeconds) != 2 || row.SpeedVsBaseline <= 0 || row.QuantizePeakRSS <= 0 ||
			row.QuantizeGBps != float64(r.BytesIn)/row.QuantizeMedian/1e9 {
			t.Errorf("%s: row %+v", s, row)
		}
	}
	if got := entries(t, work); len(got) != 0 {
		t.Errorf("left %v in the work directory", got)
	}
	// Generated input, removed after; cold, within a budget.
	r, err = Bench(context.Background(), BenchOptions{Params: 1e6, Schemes: schemes[:1], Format: plan.CompressedTensors, Rounds: 1, Workdir: work,
		Cold: true, MaxMemory: 64 << 20})
	if err != nil || !r.Generated || r.Params != 1016896 || len(r.Rows) != 1 || !r.Cold || r.MaxMemory != 64<<20 ||
		r.Rows[0].PlannedPeak <= 0 || r.Rows[0].PlannedPeak > 64<<20 {
		t.Fatalf("generated: %v %+v", err, r)
	}
	if got := entries(t, work); len(got) != 0 {
		t.Errorf("left %v in the work directory", got)
	}
}
