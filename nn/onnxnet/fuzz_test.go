package onnxnet

import (
	"os"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/internal/nntest"
)

// FuzzLower lowers whatever the ONNX reader accepts: Lower must
// never panic, and a net it returns must run (on one zero sample, when
// small) without error.
func FuzzLower(f *testing.F) {
	if b, err := os.ReadFile(nntest.MNISTONNX); err == nil {
		f.Add(b)
	}
	for _, bits := range []int{8, 4} {
		if m, err := ExportQDQ(quantized(bits)); err == nil {
			if b, err := onnx.Encode(m); err == nil {
				f.Add(b)
			}
		}
	}
	be := cpu.New()
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := onnx.Decode(data)
		if err != nil {
			return
		}
		net, err := Lower(m)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error")
			}
			return
		}
		e, err := float.New(be, net)
		if err != nil {
			t.Fatalf("Lower gave a net the engine refuses: %v", err)
		}
		defer e.Close()
		if e.InLen() > 1<<16 || e.OutLen() > 1<<16 {
			return
		}
		if err := e.Forward(make([]float32, e.InLen()), 1, make([]float32, e.OutLen())); err != nil {
			t.Fatal(err)
		}
	})
}
