package testenv

import (
	"fmt"
	"testing"
)

type recorder struct{ fatal, skip string }

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }
func (r *recorder) Skipf(format string, args ...any)  { r.skip = fmt.Sprintf(format, args...) }

func TestMissing(t *testing.T) {
	for _, c := range []struct {
		env   string
		fails bool
	}{{"", false}, {"false", false}, {"0", false}, {"true", true}, {"1", true}} {
		t.Setenv("CI", c.env)
		var r recorder
		Missing(&r, "MNIST: %s", "offline")
		if got := r.fatal != ""; got != c.fails {
			t.Errorf("CI=%q: failed %v (fatal %q, skip %q), want failed %v", c.env, got, r.fatal, r.skip, c.fails)
		}
		if r.fatal+r.skip == "" || (c.fails && r.skip != "") {
			t.Errorf("CI=%q: fatal %q, skip %q", c.env, r.fatal, r.skip)
		}
	}
}
