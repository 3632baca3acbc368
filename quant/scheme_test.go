package quant

import (
	"fmt"
	"strings"
	"testing"
)

// allSchemes lists every bits × signedness × symmetry × granularity
// combination, with a few axes and group sizes.
func allSchemes() []Scheme {
	grans := []Scheme{
		{Granularity: PerTensor},
		{Granularity: PerChannel, Axis: 0},
		{Granularity: PerChannel, Axis: 1},
		{Granularity: PerChannel, Axis: 3},
		{Granularity: PerGroup, GroupSize: 32},
		{Granularity: PerGroup, GroupSize: 64},
		{Granularity: PerGroup, GroupSize: 128},
		{Granularity: PerGroup, GroupSize: 3},
	}
	var out []Scheme
	for _, bits := range []int{8, 4} {
		for _, signed := range []bool{true, false} {
			for _, sym := range []bool{true, false} {
				for _, g := range grans {
					g.Bits, g.Signed, g.Symmetric = bits, signed, sym
					out = append(out, g)
				}
			}
		}
	}
	return out
}

func TestSchemeStringRoundTrip(t *testing.T) {
	for _, s := range allSchemes() {
		text := s.String()
		got, err := ParseScheme(text)
		if err != nil {
			t.Errorf("ParseScheme(%q): %v", text, err)
			continue
		}
		if got != s {
			t.Errorf("ParseScheme(%q) = %+v, want %+v", text, got, s)
		}
	}
	for _, c := range []struct {
		s    Scheme
		text string
	}{
		{Int8PerTensor, "int8-sym-tensor"},
		{Int8PerChannel, "int8-sym-channel"},
		{Int4PerGroup128, "int4-sym-group128"},
		{Scheme{Bits: 8, Symmetric: false, Granularity: PerTensor}, "uint8-asym-tensor"},
		{Scheme{Bits: 4, Signed: true, Granularity: PerChannel, Axis: 2}, "int4-asym-channel2"},
	} {
		if got := c.s.String(); got != c.text {
			t.Errorf("%+v.String() = %q, want %q", c.s, got, c.text)
		}
	}
}

func TestParseSchemeErrors(t *testing.T) {
	for _, text := range []string{
		"", "int8", "int8-sym", "int8-sym-tensor-x", "int16-sym-tensor", "uuint8-sym-tensor",
		"int8-symmetric-tensor", "int8-sym-row", "int8-sym-channelx", "int8-sym-group",
		"int8-sym-group0", "int8-sym-group-4", "int8-sym-groupx",
	} {
		s, err := ParseScheme(text)
		if err == nil {
			t.Errorf("ParseScheme(%q) = %+v, want an error", text, s)
			continue
		}
		if !strings.Contains(err.Error(), "quant:") {
			t.Errorf("ParseScheme(%q): error %q lacks the package prefix", text, err)
		}
	}
}

func TestQMinQMax(t *testing.T) {
	for _, c := range []struct {
		text       string
		qmin, qmax int32
	}{
		{"int8-sym-tensor", -127, 127},
		{"int8-asym-tensor", -128, 127},
		{"uint8-sym-tensor", 0, 255},
		{"uint8-asym-tensor", 0, 255},
		{"int4-sym-tensor", -7, 7},
		{"int4-asym-tensor", -8, 7},
		{"uint4-sym-tensor", 0, 15},
		{"uint4-asym-tensor", 0, 15},
	} {
		s, err := ParseScheme(c.text)
		if err != nil {
			t.Fatal(err)
		}
		if s.QMin() != c.qmin || s.QMax() != c.qmax {
			t.Errorf("%s: [QMin, QMax] = [%d, %d], want [%d, %d]", c.text, s.QMin(), s.QMax(), c.qmin, c.qmax)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		s  Scheme
		ok bool
	}{
		{Int8PerTensor, true},
		{Int4PerGroup128, true},
		{Scheme{Bits: 2}, false},
		{Scheme{Bits: 16}, false},
		{Scheme{Bits: 8, Granularity: PerChannel, Axis: -1}, false},
		{Scheme{Bits: 8, Granularity: PerGroup}, false},
		{Scheme{Bits: 8, Granularity: 7}, false},
	} {
		if err := c.s.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v.Validate() = %v, want ok %v", c.s, err, c.ok)
		}
	}
}

func TestPackedLen(t *testing.T) {
	for n := range 6 {
		if got := Int8PerTensor.PackedLen(n); got != n {
			t.Errorf("int8 PackedLen(%d) = %d", n, got)
		}
		if got, want := Int4PerGroup128.PackedLen(n), (n+1)/2; got != want {
			t.Errorf("int4 PackedLen(%d) = %d, want %d", n, got, want)
		}
	}
}

func ExampleParseScheme() {
	s, err := ParseScheme("int4-sym-group128")
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Bits, s.QMin(), s.QMax(), s.GroupSize, s)
	// Output: 4 -7 7 128 int4-sym-group128
}
