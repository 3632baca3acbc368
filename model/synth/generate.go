package synth

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/quantkit/quantkit/internal/half"
)

// The statistics of the values; the package documentation says why.
const (
	embedStd   = 0.02 // Hugging Face's initializer_range
	normNoise  = 0.05 // RMSNorm weights are 1 + normNoise·N(0, 1)
	outlierMin = 5.0  // outlier columns are scaled by U[outlierMin, outlierMax]
	outlierMax = 20.0
)

// outlier is an input channel whose column is multiplied by mul.
type outlier struct {
	col int
	mul float64
}

// generator draws the rows of one Config's tensors.
type generator struct {
	cfg      Config
	specs    []spec
	index    map[string]int
	residual []outlier // channels of the residual stream shared by q k v gate up
}

func newGenerator(c Config) *generator {
	g := &generator{cfg: c, specs: c.specs()}
	g.index = make(map[string]int, len(g.specs))
	for i, s := range g.specs {
		g.index[s.name] = i
	}
	g.residual = outliers(c.Seed, "residual stream", c.Hidden, min(6, 2+c.Hidden/2048))
	return g
}

// splitmix64 is SplitMix64's finaliser, a bijective mixer of 64 bits.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func nameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// seedRow seeds pcg for row of the tensor whose name hashes to h.
func seedRow(pcg *rand.PCG, seed, h uint64, row int) {
	pcg.Seed(splitmix64(seed^splitmix64(h)), splitmix64(h+splitmix64(uint64(row))))
}

// outliers picks n distinct channels of cols, with their factors, from a
// stream of its own keyed by (seed, key).
func outliers(seed uint64, key string, cols, n int) []outlier {
	n = min(n, cols)
	var pcg rand.PCG
	seedRow(&pcg, seed, nameHash("outliers: "+key), 0)
	rng := rand.New(&pcg)
	out := make([]outlier, 0, n)
	taken := map[int]bool{}
	for len(out) < n {
		c := rng.IntN(cols)
		if taken[c] {
			continue
		}
		taken[c] = true
		out = append(out, outlier{c, outlierMin + (outlierMax-outlierMin)*rng.Float64()})
	}
	return out
}

// columnOutliers returns the outlier channels of a tensor's columns.
func (g *generator) columnOutliers(s *spec) []outlier {
	switch s.outliers {
	case "residual":
		return g.residual
	case "own":
		return outliers(g.cfg.Seed, s.name, s.cols(), min(6, 2+s.cols()/8192))
	}
	return nil
}

// studentT6 draws from Student's t with 6 degrees of freedom scaled to unit
// variance (t₆ has variance 6/4): z·√(6/χ²₆)/√1.5 with χ²₆ = −2·ln(u₁u₂u₃),
// which is z·√(2/L) with L = −ln(u₁u₂u₃).
func studentT6(rng *rand.Rand) float64 {
	z := rng.NormFloat64()
	u := (1 - rng.Float64()) * (1 - rng.Float64()) * (1 - rng.Float64()) // in (0, 1]
	l := -math.Log(u)
	if l < 1e-300 { // all three draws were 0: probability 2⁻¹⁵⁹
		l = 1e-300
	}
	return z * math.Sqrt(2/l)
}

// fill writes rows row0, row0+1, … of tensor s to dst, whose length is a
// multiple of the row length, using pcg as scratch.
func (g *generator) fill(s *spec, row0 int, dst []float32, pcg *rand.PCG) {
	cols := s.cols()
	h := nameHash(s.name)
	rng := rand.New(pcg)
	std := embedStd
	if s.kind == kindLinear {
		std = 1 / math.Sqrt(float64(cols))
	}
	outs := g.columnOutliers(s)
	for r := 0; r*cols < len(dst); r++ {
		seedRow(pcg, g.cfg.Seed, h, row0+r)
		row := dst[r*cols : (r+1)*cols]
		switch s.kind {
		case kindNorm:
			for i := range row {
				row[i] = float32(1 + normNoise*rng.NormFloat64())
			}
		default:
			for i := range row {
				row[i] = float32(std * studentT6(rng))
			}
			for _, o := range outs {
				row[o.col] = float32(float64(row[o.col]) * o.mul)
			}
		}
	}
}

// Rows fills dst with rows row0, row0+1, … of the named tensor (a vector
// is one row), as float32 before rounding to c.DType: the values Write
// writes, whatever else is generated and in whatever order. len(dst) must
// be a multiple of the row length (the last dimension) and the rows must
// exist.
func (c Config) Rows(name string, row0 int, dst []float32) error {
	g := newGenerator(c)
	i, ok := g.index[name]
	if !ok {
		return fmt.Errorf("synth: no tensor %q", name)
	}
	s := &g.specs[i]
	cols := s.cols()
	if len(dst)%cols != 0 || row0 < 0 || row0+len(dst)/cols > s.rows() {
		return fmt.Errorf("synth: tensor %q %v: %d values from row %d are not whole rows of it", name, s.shape, len(dst), row0)
	}
	var pcg rand.PCG
	g.fill(s, row0, dst, &pcg)
	return nil
}

// Tensor returns the whole named tensor as float32 (see Rows).
func (c Config) Tensor(name string) ([]float32, error) {
	g := newGenerator(c)
	i, ok := g.index[name]
	if !ok {
		return nil, fmt.Errorf("synth: no tensor %q", name)
	}
	s := &g.specs[i]
	dst := make([]float32, s.len())
	var pcg rand.PCG
	g.fill(s, 0, dst, &pcg)
	return dst, nil
}

// encode writes src to dst as little-endian dtype (F32, F16 or BF16).
func encode(dst []byte, src []float32, dtype string) {
	switch dtype {
	case "F32":
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case "F16":
		half.EncodeFloat16(dst, src, binary.LittleEndian)
	case "BF16":
		half.EncodeBFloat16(dst, src, binary.LittleEndian)
	default:
		panic("synth: encode: dtype " + dtype) // Validate rejects it first
	}
}
