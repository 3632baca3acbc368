package telemetry

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// PCIBusIDReader is a Device that reports its PCI bus id
// ("00000000:1B:00.0", as nvidia-smi prints it). NVML devices and FakeDevice
// implement it; callers check with a type assertion.
type PCIBusIDReader interface {
	PCIBusID() (string, error)
}

// InstantPowerReader is a Device that reports its instantaneous power
// (NVML's field FI_DEV_POWER_INSTANT, drivers 535 and later) beside
// PowerDraw, which is a one-second average on Ampere and later. A device
// or driver without the field gives ErrNotSupported.
type InstantPowerReader interface {
	PowerInstant() (watts float64, err error)
}

// MillijoulesToJoules converts NVML's total-energy counter (millijoules,
// 64 bits) to joules. float64 holds every count below 2⁵³ mJ (9·10⁹ kJ)
// exactly.
func MillijoulesToJoules(mj uint64) float64 { return float64(mj) / 1e3 }

func (x nvmlDevice) PCIBusID() (string, error) {
	p, ret := x.d.GetPciInfo()
	if err := check(ret); err != nil {
		return "", err
	}
	return cString(p.BusId[:]), nil
}

func (x nvmlDevice) PowerInstant() (float64, error) {
	v := []nvml.FieldValue{{FieldId: nvml.FI_DEV_POWER_INSTANT}}
	if err := check(x.d.GetFieldValues(v)); err != nil {
		return 0, err
	}
	if err := check(nvml.Return(v[0].NvmlReturn)); err != nil {
		return 0, err
	}
	mw, err := fieldValue(v[0])
	return mw / 1e3, err
}

// fieldValue decodes an NVML field value of any numeric type.
func fieldValue(f nvml.FieldValue) (float64, error) {
	b := f.Value[:]
	switch nvml.ValueType(f.ValueType) {
	case nvml.VALUE_TYPE_DOUBLE:
		return math.Float64frombits(binary.NativeEndian.Uint64(b)), nil
	case nvml.VALUE_TYPE_UNSIGNED_INT:
		return float64(binary.NativeEndian.Uint32(b)), nil
	case nvml.VALUE_TYPE_UNSIGNED_LONG, nvml.VALUE_TYPE_UNSIGNED_LONG_LONG:
		return float64(binary.NativeEndian.Uint64(b)), nil
	case nvml.VALUE_TYPE_SIGNED_LONG_LONG:
		return float64(int64(binary.NativeEndian.Uint64(b))), nil
	case nvml.VALUE_TYPE_SIGNED_INT:
		return float64(int32(binary.NativeEndian.Uint32(b))), nil
	case nvml.VALUE_TYPE_UNSIGNED_SHORT:
		return float64(binary.NativeEndian.Uint16(b)), nil
	}
	return 0, fmt.Errorf("NVML: field %d: unknown value type %d", f.FieldId, f.ValueType)
}

// cString is a NUL-terminated C char array as a string.
func cString(c []int8) string {
	b := make([]byte, 0, len(c))
	for _, v := range c {
		if v == 0 {
			break
		}
		b = append(b, byte(v))
	}
	return string(b)
}

func (d *FakeDevice) PCIBusID() (string, error) {
	if err := d.Errs["pci_bus_id"]; err != nil {
		return "", err
	}
	if d.PCIBusIDV == "" {
		return "", ErrNotSupported
	}
	return d.PCIBusIDV, nil
}

func (d *FakeDevice) PowerInstant() (float64, error) {
	return d.call("power_instant", d.PowerInstantFn)
}
