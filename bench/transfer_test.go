package bench

import (
	"context"
	"testing"
	"time"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
)

// pinnedCPU is the cpu backend with a backend.PinnedAllocator whose
// memory is ordinary, counting what it hands out and frees.
type pinnedCPU struct {
	*cpu.Backend
	allocs, frees int
}

func (p *pinnedCPU) AllocPinned(dt backend.DType, n int) (any, func() error, error) {
	p.allocs++
	return make([]float32, n), func() error { p.frees++; return nil }, nil
}

// The transfer suite has a pageable row per op and size, and a pinned row
// beside it where the backend has page-locked memory, which it frees.
func TestTransferSuite(t *testing.T) {
	quick := Timing{MinTime: time.Millisecond, MinReps: 2, MaxReps: 5}
	o := Options{Suites: []string{"transfer"}, Elements: []int{100, 3000}, Timing: quick}
	rep, err := Run(context.Background(), cpu.New(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 4 {
		t.Fatalf("cpu: %d rows, want 4: %+v", len(rep.Results), rep.Results)
	}
	pb := &pinnedCPU{Backend: cpu.New()}
	if rep, err = Run(context.Background(), pb, o); err != nil {
		t.Fatal(err)
	}
	var impls []string
	for _, r := range rep.Results {
		impls = append(impls, r.Op+"/"+r.Impl)
		if r.BytesPerSecond <= 0 || r.Seconds <= 0 || r.BytesPerSecond*r.Seconds < 4*float64(r.Elements)*0.999 {
			t.Errorf("%+v", r)
		}
	}
	want := []string{"upload/quantkit", "upload/quantkit-pinned", "download/quantkit", "download/quantkit-pinned"}
	if len(impls) != 8 || impls[0] != want[0] || impls[1] != want[1] || impls[2] != want[2] || impls[3] != want[3] {
		t.Errorf("rows %v, want %v per size", impls, want)
	}
	if pb.allocs != 2 || pb.frees != 2 {
		t.Errorf("%d pinned allocations, %d frees; want one of each per size", pb.allocs, pb.frees)
	}
}
