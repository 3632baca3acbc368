package cpu_test

import (
	"testing"

	"github.com/quantkit/quantkit/cpu"
)

// BenchmarkElemPaths runs the streaming kernels on 16M float32s with the
// assembly and with the generic Go loops, beside a copy of the same bytes,
// so that one run gives both speeds and the memory bandwidth they are
// measured against (MB/s counts the float32 bytes read, as for the copy
// the bytes copied).
func BenchmarkElemPaths(b *testing.B) {
	x, y := benchF32(elemBench), make([]float32, elemBench)
	codes := make([]byte, elemBench)
	counts := make([]int64, 2048)
	type op struct {
		name string
		fn   func() error
	}
	ops := []op{{"copy", func() error { copy(y, x); return nil }}}
	for _, name := range []string{"int8-sym-tensor", "int4-sym-group128"} {
		p := benchParams(b, name, x)
		c := codes[:p.Scheme.PackedLen(elemBench)]
		ops = append(ops,
			op{"quantize/" + name, func() error { return cpu.Quantize(c, x, p) }},
			op{"dequantize/" + name, func() error { return cpu.Dequantize(y, c, p) }})
	}
	ops = append(ops,
		op{"absmax", func() error { cpu.AbsMax(x); return nil }},
		op{"histogram", func() error { cpu.HistogramAbs(x, 0x1p-8, counts); return nil }})
	for _, o := range ops {
		for _, generic := range []bool{false, true} {
			path := "asm"
			if generic {
				path = "generic"
			}
			if o.name == "copy" && generic {
				continue
			}
			b.Run(o.name+"/"+path, func(b *testing.B) {
				defer cpu.ForceGeneric(generic)()
				if err := o.fn(); err != nil { // fault the pages in before timing
					b.Fatal(err)
				}
				b.SetBytes(4 * elemBench)
				for b.Loop() {
					if err := o.fn(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
