package quant

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSchemeParts(t *testing.T) {
	for _, tc := range []struct {
		typ, gran string
		sym       bool
		want      Scheme
		text      string // String's form, which quantize reports
	}{
		{"int8", "", true, Scheme{Bits: 8, Signed: true, Symmetric: true, Granularity: PerChannel}, "int8-sym-channel"},
		{"int4", "", true, Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: PerGroup, GroupSize: 128}, "int4-sym-group128"},
		{"int4", "group:32", false, Scheme{Bits: 4, Signed: true, Granularity: PerGroup, GroupSize: 32}, "int4-asym-group32"},
		{"int8", "tensor", false, Scheme{Bits: 8, Signed: true, Granularity: PerTensor}, "int8-asym-tensor"},
		{"int4", "channel", true, Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: PerChannel}, "int4-sym-channel"},
		{"int8", "group:1", true, Scheme{Bits: 8, Signed: true, Symmetric: true, Granularity: PerGroup, GroupSize: 1}, "int8-sym-group1"},
	} {
		s, err := ParseSchemeParts(tc.typ, tc.gran, tc.sym)
		if err != nil || s != tc.want || s.String() != tc.text {
			t.Errorf("ParseSchemeParts(%q, %q, %v) = %+v (%s), %v; want %+v (%s)", tc.typ, tc.gran, tc.sym, s, s, err, tc.want, tc.text)
		}
	}
	for _, tc := range []struct {
		typ, gran   string
		part, value string
		why         string
	}{
		{"int3", "", "scheme", "int3", "not int8 or int4"},
		{"uint8", "channel", "scheme", "uint8", "not int8 or int4"},
		{"", "", "scheme", "", "not int8 or int4"},
		{"int8", "group:0", "granularity", "group:0", "positive integer"},
		{"int4", "group:-4", "granularity", "group:-4", "positive integer"},
		{"int4", "group:x", "granularity", "group:x", "positive integer"},
		{"int4", "group", "granularity", "group", "not channel, tensor or group:N"},
		{"int8", "row", "granularity", "row", "not channel, tensor or group:N"},
	} {
		_, err := ParseSchemeParts(tc.typ, tc.gran, true)
		var se *SchemeError
		if !errors.As(err, &se) || se.Part != tc.part || se.Value != tc.value || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("ParseSchemeParts(%q, %q): %v, want a SchemeError of the %s %q saying %q", tc.typ, tc.gran, err, tc.part, tc.value, tc.why)
		}
	}
}
