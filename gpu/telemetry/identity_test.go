package telemetry

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// NVML's field values decode by their declared type (FI_DEV_POWER_INSTANT
// is an unsigned int of milliwatts on current drivers).
func TestFieldValue(t *testing.T) {
	put := func(vt nvml.ValueType, fill func(b []byte)) nvml.FieldValue {
		f := nvml.FieldValue{FieldId: nvml.FI_DEV_POWER_INSTANT, ValueType: uint32(vt)}
		fill(f.Value[:])
		return f
	}
	for _, c := range []struct {
		f    nvml.FieldValue
		want float64
	}{
		{put(nvml.VALUE_TYPE_UNSIGNED_INT, func(b []byte) { binary.NativeEndian.PutUint32(b, 412345) }), 412345},
		{put(nvml.VALUE_TYPE_UNSIGNED_LONG_LONG, func(b []byte) { binary.NativeEndian.PutUint64(b, 1<<40) }), 1 << 40},
		{put(nvml.VALUE_TYPE_SIGNED_LONG_LONG, func(b []byte) { binary.NativeEndian.PutUint64(b, uint64(1<<64-7)) }), -7},
		{put(nvml.VALUE_TYPE_SIGNED_INT, func(b []byte) { binary.NativeEndian.PutUint32(b, uint32(1<<32-3)) }), -3},
		{put(nvml.VALUE_TYPE_UNSIGNED_SHORT, func(b []byte) { binary.NativeEndian.PutUint16(b, 65535) }), 65535},
		{put(nvml.VALUE_TYPE_DOUBLE, func(b []byte) { binary.NativeEndian.PutUint64(b, math.Float64bits(301.25)) }), 301.25},
	} {
		if got, err := fieldValue(c.f); err != nil || got != c.want {
			t.Errorf("type %d: %v, %v; want %v", c.f.ValueType, got, err, c.want)
		}
	}
	if _, err := fieldValue(nvml.FieldValue{ValueType: 99}); err == nil {
		t.Error("an unknown value type decoded")
	}
}

func TestCString(t *testing.T) {
	b := make([]int8, 32)
	for i, c := range "00000000:1B:00.0" {
		b[i] = int8(c)
	}
	if got := cString(b); got != "00000000:1B:00.0" {
		t.Errorf("%q", got)
	}
	if got := cString([]int8{'a', 'b'}); got != "ab" { // no terminator
		t.Errorf("%q", got)
	}
}
