package cuda

import (
	"slices"
	"testing"
)

// Every embedded fatbin holds SASS for exactly the architectures of
// fatbin_gen.go and the PTX of ptxArch, as its own headers say.
func TestFatbinImages(t *testing.T) {
	var want []Image
	for _, a := range sassArchs {
		want = append(want, Image{Arch: a})
	}
	want = append(want, Image{PTX: true, Arch: ptxArch})
	for _, name := range Names() {
		fb, err := Fatbin(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Images(fb)
		if err != nil {
			t.Fatalf("fatbin/%s.fatbin: %v", name, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("fatbin/%s.fatbin holds %v, fatbin_gen.go says %v: run make ptx", name, got, want)
		}
	}
}

func TestImagesRejects(t *testing.T) {
	fb, err := Fatbin("gemm_s8")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{nil, []byte("not a fatbin at all"), fb[:40], fb[:len(fb)-1]} {
		if ims, err := Images(bad); err == nil {
			t.Errorf("Images of %d bytes: %v, want an error", len(bad), ims)
		}
	}
}

func TestCode(t *testing.T) {
	if !slices.Equal(sassArchs, []int{80, 86, 89, 90}) || ptxArch != 80 {
		t.Skipf("the cases below are written for SASS sm_80/86/89/90 and PTX compute_80, not %v and %d", sassArchs, ptxArch)
	}
	for _, c := range []struct {
		major, minor int
		want         string
	}{
		{8, 0, "SASS sm_80"},               // A100
		{8, 6, "SASS sm_86"},               // RTX 30
		{8, 7, "SASS sm_86"},               // Orin: 8.6 SASS runs on 8.7
		{8, 9, "SASS sm_89"},               // L4, RTX 40
		{9, 0, "SASS sm_90"},               // H100, H200
		{10, 0, "PTX JIT from compute_80"}, // B200: no SASS of major 10
		{12, 0, "PTX JIT from compute_80"}, // RTX 50
		{7, 5, "no code for compute capability 7.5 (the PTX needs 8.0)"},
	} {
		if got := CodeName(c.major, c.minor); got != c.want {
			t.Errorf("CodeName(%d, %d) = %q, want %q", c.major, c.minor, got, c.want)
		}
	}
}
