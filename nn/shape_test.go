package nn

import "testing"

func TestSizeWithin(t *testing.T) {
	for _, c := range []struct {
		s    Shape
		want bool
	}{{Shape{8, 28, 28}, true}, {Shape{1 << 26, 1, 1}, true}, {Shape{1<<26 + 1, 1, 1}, false},
		{Shape{1 << 28, 1 << 26, 1 << 26}, false}, {Shape{1 << 40, 1 << 40, 1}, false}, {Shape{0, 1, 1}, false}} {
		if got := sizeWithin(c.s, MaxSampleSize); got != c.want {
			t.Errorf("sizeWithin(%v) = %v", c.s, got)
		}
	}
}
