package cpu_test

import (
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/backend/backendtest"
	"github.com/quantkit/quantkit/cpu"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, cpu.New())
}

func TestRegistered(t *testing.T) {
	b, fellBack, err := backend.Open("cpu")
	if err != nil || fellBack != nil {
		t.Fatalf("Open(cpu): %v, %v", err, fellBack)
	}
	if b.Name() != "cpu" {
		t.Errorf("Name() = %q", b.Name())
	}
	if d := b.Describe(); d == "" {
		t.Errorf("empty Describe")
	} else {
		t.Log(d)
	}
}
