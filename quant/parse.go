package quant

import (
	"errors"
	"strconv"
	"strings"
)

// ParseSchemeParts reads a scheme given in the parts a command line names
// it by: typ "int8" or "int4" (signed); granularity "channel", "tensor" or
// "group:N", where "" is the type's usual choice (per channel for int8,
// groups of 128 for int4); and symmetric (zero point 0) or not. An error is a *SchemeError naming
// the part it refuses.
func ParseSchemeParts(typ, granularity string, symmetric bool) (Scheme, error) {
	s := Scheme{Signed: true, Symmetric: symmetric}
	switch typ {
	case "int8":
		s.Bits = 8
	case "int4":
		s.Bits = 4
	default:
		return Scheme{}, &SchemeError{Part: "scheme", Value: typ, Err: errors.New("not int8 or int4")}
	}
	if granularity == "" {
		granularity = "channel"
		if s.Bits == 4 {
			granularity = "group:128"
		}
	}
	switch {
	case granularity == "channel":
		s.Granularity = PerChannel
	case granularity == "tensor":
		s.Granularity = PerTensor
	case strings.HasPrefix(granularity, "group:"):
		n, err := strconv.Atoi(strings.TrimPrefix(granularity, "group:"))
		if err != nil || n < 1 {
			return Scheme{}, &SchemeError{Part: "granularity", Value: granularity, Err: errors.New("the group size must be a positive integer")}
		}
		s.Granularity, s.GroupSize = PerGroup, n
	default:
		return Scheme{}, &SchemeError{Part: "granularity", Value: granularity, Err: errors.New("not channel, tensor or group:N")}
	}
	return s, s.Validate()
}

// A SchemeError is ParseSchemeParts's refusal of one part of a scheme, as
// strconv.NumError is of a number: a command line can name its flag.
type SchemeError struct {
	Part  string // "scheme" (the type) or "granularity"
	Value string // the text refused
	Err   error  // why
}

func (e *SchemeError) Error() string {
	return "quant: " + e.Part + " " + e.Value + ": " + e.Err.Error()
}

func (e *SchemeError) Unwrap() error { return e.Err }
