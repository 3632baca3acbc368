package cpu

import (
	"math"

	"github.com/quantkit/quantkit/backend"
)

// ropeF32 is backend.RoPEF32, bit for bit, with the cosine and sine of a
// position's angles computed once for all r.Heads heads instead of once
// per head (they were 4% of a small model's prefill). The operands are
// checked (backend.CheckRoPE).
func ropeF32(dst, x []float32, r *backend.Rotary, pos []int32) {
	d, half := r.Dim, r.Dim/2
	scale := r.Scale
	if scale == 0 {
		scale = 1
	}
	var small [256]float32 // head dimensions up to 256 without an allocation
	var cs []float32
	if 2*len(r.Freqs) <= len(small) {
		cs = small[:2*len(r.Freqs)]
	} else {
		cs = make([]float32, 2*len(r.Freqs))
	}
	cos, sin := cs[:len(r.Freqs)], cs[len(r.Freqs):]
	for t, p := range pos {
		for i, f := range r.Freqs {
			angle := float32(p) * f
			c := float32(math.Cos(float64(angle)))
			s := float32(math.Sin(float64(angle)))
			if scale != 1 {
				c, s = c*scale, s*scale
			}
			cos[i], sin[i] = c, s
		}
		for h := range r.Heads {
			off := (t*r.Heads + h) * d
			xs, ds := x[off:off+d], dst[off:off+d]
			if r.Interleaved {
				for i := range cos {
					a, b := xs[2*i], xs[2*i+1]
					ds[2*i] = float32(a*cos[i]) - float32(b*sin[i])
					ds[2*i+1] = float32(b*cos[i]) + float32(a*sin[i])
				}
				continue
			}
			xa, xb := xs[:half], xs[half:d]
			da, db := ds[:half], ds[half:d]
			for i := range cos {
				a, b := xa[i], xb[i]
				da[i] = float32(a*cos[i]) - float32(b*sin[i])
				db[i] = float32(b*cos[i]) + float32(a*sin[i])
			}
		}
	}
}
