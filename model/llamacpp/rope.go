package llamacpp

import "math"

// Llama3RopeFactors computes rope_freqs.weight, the per-frequency divisors
// of Llama 3.1's "llama3" RoPE scaling that convert_hf_to_gguf.py stores
// (LlamaModel.generate_extra_tensors): for each of the HeadDim/2
// frequencies f = 1/θ^(2i/d), with wavelength w = 2π/f, the factor is 1
// when w < orig/high, factor when w > orig/low, and otherwise
// 1/((1-s)/factor + s) with s = (orig/w - low)/(high - low). Like convert,
// which works on float32 tensors, every step is rounded to float32; the
// power is computed in float64 and rounded, so a factor in the smooth band
// may differ from torch's in the last bit.
func Llama3RopeFactors(h *Hyper) []float32 {
	r := h.Rope
	d := h.HeadDim
	factor := float32(r.Factor)
	low := float32(r.LowFreqFactor)
	orig := float64(r.OrigContext)
	lowWavelen := float32(orig / r.LowFreqFactor)
	highWavelen := float32(orig / r.HighFreqFactor)
	span := float32(r.HighFreqFactor - r.LowFreqFactor)
	twoPi := float32(2 * math.Pi)
	out := make([]float32, d/2)
	for i := range out {
		e := float32(2*i) / float32(d)
		freq := 1 / float32(math.Pow(float64(float32(h.RopeTheta)), float64(e)))
		wavelen := twoPi / freq
		switch {
		case wavelen < highWavelen:
			out[i] = 1
		case wavelen > lowWavelen:
			out[i] = factor
		default:
			smooth := (float32(orig)/wavelen - low) / span
			out[i] = 1 / ((1-smooth)/factor + smooth)
		}
	}
	return out
}
