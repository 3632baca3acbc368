package backend

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	good := map[string]Spec{"auto": {Kind: "auto"}, "cpu": {Kind: "cpu"}, "gpu": {Kind: "gpu"}, "gpu:3": {Kind: "gpu", Index: 3}}
	for in, want := range good {
		if got, err := ParseSpec(in); err != nil || got != want {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "tpu", "cpu:1", "gpu:", "gpu:-1", "gpu:x", "auto:0"} {
		if _, err := ParseSpec(in); err == nil {
			t.Errorf("ParseSpec(%q) accepted", in)
		}
	}
}

// fake is a Backend that only has a name; Open never calls anything else.
type fake struct {
	Backend
	name string
}

func (f fake) Name() string { return f.name }

func TestOpenFallsBack(t *testing.T) {
	saved := openers
	defer func() { openers = saved }()
	openers = map[string]Opener{}

	if _, _, err := Open("cpu"); err == nil || !strings.Contains(err.Error(), "no cpu backend") {
		t.Fatalf("Open(cpu) with nothing registered: %v", err)
	}
	Register("cpu", func(int) (Backend, error) { return fake{name: "cpu"}, nil })
	b, fellBack, err := Open("auto")
	if err != nil || b.Name() != "cpu" || fellBack == nil || !strings.Contains(fellBack.Error(), "no gpu backend") {
		t.Fatalf("auto without gpu: %v, %v, %v", b, fellBack, err)
	}
	if _, _, err := Open("gpu"); err == nil {
		t.Fatal("Open(gpu) without a gpu backend succeeded")
	}

	broken := errors.New("CUDA_ERROR_NO_DEVICE")
	var asked int
	Register("gpu", func(i int) (Backend, error) {
		asked = i
		if i > 0 {
			return nil, broken
		}
		return fake{name: "gpu:0"}, nil
	})
	if b, fb, err := Open("auto"); err != nil || fb != nil || b.Name() != "gpu:0" {
		t.Fatalf("auto with a gpu: %v, %v, %v", b, fb, err)
	}
	if _, _, err := Open("gpu:2"); !errors.Is(err, broken) || asked != 2 {
		t.Fatalf("gpu:2: %v (asked for %d)", err, asked)
	}
	defer func() {
		if recover() == nil {
			t.Error("second Register of cpu did not panic")
		}
	}()
	Register("cpu", nil)
}

func TestEpilogueCheck(t *testing.T) {
	var nilEp *Epilogue
	if err := nilEp.Check(3, 4); err != nil {
		t.Fatal(err)
	}
	ok := []Epilogue{{}, {RowScale: []float32{1}, ColScale: []float32{1}}, {RowScale: make([]float32, 3), ColScale: make([]float32, 4), Bias: make([]float32, 4), ColOffset: make([]int32, 4)}}
	for _, e := range ok {
		if err := e.Check(3, 4); err != nil {
			t.Errorf("%+v: %v", e, err)
		}
	}
	bad := []Epilogue{{RowScale: make([]float32, 4)}, {ColScale: make([]float32, 3)}, {Bias: []float32{1}}, {ColOffset: []int32{1}}}
	for _, e := range bad {
		if err := e.Check(3, 4); err == nil {
			t.Errorf("%+v accepted for 3×4", e)
		}
	}
}
