package lm

import (
	"os"
	"testing"

	"github.com/quantkit/quantkit/cpu"
)

func BenchmarkZZPrefill1B(b *testing.B) {
	path := os.Getenv("ZZ_MODEL")
	if path == "" {
		b.Skip()
	}
	be := cpu.New()
	var m *Model
	var err error
	if st, _ := os.Stat(path); st.IsDir() {
		m, err = LoadHF(be, path)
	} else {
		m, err = LoadGGUF(be, path)
	}
	if err != nil {
		b.Fatal(err)
	}
	prompt := make([]int, 512)
	for i := range prompt {
		prompt[i] = (i*7919)%m.Config.Vocab + 1
	}
	c := m.NewCache()
	defer c.Close()
	for b.Loop() {
		c.Reset()
		if _, err := m.ForwardLast(c, prompt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*512)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkZZDecodeHead(b *testing.B) {
	path := os.Getenv("ZZ_MODEL")
	if path == "" {
		b.Skip()
	}
	for _, head := range []bool{false, true, false, true} {
		be := cpu.New()
		m, err := LoadHFWith(be, path, LoadOptions{QuantizeHead: head})
		if err != nil {
			b.Fatal(err)
		}
		prompt := make([]int, 16)
		for i := range prompt {
			prompt[i] = (i*7919)%m.Config.Vocab + 1
		}
		c := m.NewCache()
		if _, err := m.ForwardLast(c, prompt); err != nil {
			b.Fatal(err)
		}
		name := "f32head"
		if head {
			name = "int8head"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := m.ForwardLast(c, prompt[3:4]); err != nil {
					b.Fatal(err)
				}
				c.Truncate(16)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
		c.Close()
		m.Close()
	}
}
