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
