package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/energy/monitor"
	"github.com/quantkit/quantkit/job/lmbench"
)

func TestBenchJobRuns(t *testing.T) {
	s := jobSink{job: "bench-gemm", labels: map[string]string{"precision": "ignored", "host": "a"}}
	rep := &bench.Report{Results: []bench.Result{
		{Op: "gemm", Impl: "quantkit", DType: "int8", M: 256, N: 256, K: 512,
			Energy: &bench.EnergyResult{Source: "gpu:0 NVIDIA H100", Method: "counter", WindowSeconds: 2.5, Calls: 400, JoulesPerCall: 0.75}},
		{Op: "gemm", Impl: "gonum", DType: "fp32", M: 256, N: 256, K: 512}, // no energy: not a run
		{Op: "quantize", Impl: "quantkit", DType: "int8", Elements: 1 << 20,
			Energy: &bench.EnergyResult{Source: "cpu package-0 (RAPL) + cpu package-1 (RAPL)", Method: "sampled-power",
				WindowSeconds: 2, Calls: 10, JoulesPerCall: 3}},
	}}
	want := []monitor.JobReport{
		{Job: "bench-gemm", Labels: map[string]string{"precision": "int8", "op": "gemm", "impl": "quantkit", "size": "256x256x512", "host": "a"},
			Seconds: 2.5, Energy: []monitor.SourceEnergy{{Source: "gpu:0", Joules: 300}}},
		{Job: "bench-gemm", Labels: map[string]string{"precision": "int8", "op": "quantize", "impl": "quantkit", "size": "1048576", "host": "a"},
			Seconds: 2, Energy: []monitor.SourceEnergy{{Source: "cpu", Joules: 30}}},
	}
	if got := benchJobRuns(s, rep); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestBenchLMJobRuns(t *testing.T) {
	s := jobSink{job: "bench-lm", labels: map[string]string{}}
	rep := &lmbench.Report{Rows: []lmbench.Row{
		{Model: "/models/llama-1b", Precision: "w8a8", PrefillTokens: 512, DecodeTokens: 128,
			PrefillTokensPerSecond: lmbench.Stat{Median: 1024}, DecodeTokensPerSecond: lmbench.Stat{Median: 64},
			Energy: &lmbench.RowEnergy{Source: "gpu:1 H100", PrefillJPerToken: 0.25, DecodeJPerToken: 2}},
		{Model: "/models/m.gguf", Label: "gguf Q4_0", PrefillTokens: 512, DecodeTokens: 128,
			PrefillTokensPerSecond: lmbench.Stat{Median: 512}, DecodeTokensPerSecond: lmbench.Stat{Median: 32}},
	}}
	got := benchLMJobRuns(s, rep)
	want := []monitor.JobReport{{Job: "bench-lm", Labels: map[string]string{"precision": "w8a8", "model": "llama-1b"},
		Seconds: 0.5 + 2, Energy: []monitor.SourceEnergy{{Source: "gpu:1", Joules: 128 + 256}}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestBenchMonitorNeedsEnergy(t *testing.T) {
	_, err := run(t, "bench", "gemm", "--device", "cpu", "--sizes", "16", "--monitor", "http://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "add --energy") {
		t.Errorf("--monitor without --energy: %v", err)
	}
}
