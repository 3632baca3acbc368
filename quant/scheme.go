package quant

import (
	"fmt"
	"strconv"
	"strings"
)

// Granularity says how many (scale, zero point) pairs a tensor has.
type Granularity int

const (
	PerTensor  Granularity = iota // one pair for the whole tensor
	PerChannel                    // one pair per index of Scheme.Axis
	PerGroup                      // one pair per GroupSize run of the last axis
)

func (g Granularity) String() string {
	switch g {
	case PerTensor:
		return "tensor"
	case PerChannel:
		return "channel"
	case PerGroup:
		return "group"
	}
	return fmt.Sprintf("Granularity(%d)", int(g))
}

// Scheme describes how real values map to integer codes.
type Scheme struct {
	Bits        int  // 8 or 4
	Signed      bool // int8/int4 when true, uint8/uint4 otherwise
	Symmetric   bool // zero point fixed at 0 when true
	Granularity Granularity
	Axis        int // channel axis for PerChannel
	GroupSize   int // elements per group along the last axis for PerGroup
}

// Common schemes.
var (
	Int8PerTensor   = Scheme{Bits: 8, Signed: true, Symmetric: true, Granularity: PerTensor}
	Int8PerChannel  = Scheme{Bits: 8, Signed: true, Symmetric: true, Granularity: PerChannel}
	Int4PerGroup128 = Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: PerGroup, GroupSize: 128}
)

// Validate reports whether s is a scheme quant can apply.
func (s Scheme) Validate() error {
	if s.Bits != 8 && s.Bits != 4 {
		return fmt.Errorf("quant: %d bits not supported (8 or 4)", s.Bits)
	}
	switch s.Granularity {
	case PerTensor:
	case PerChannel:
		if s.Axis < 0 {
			return fmt.Errorf("quant: negative channel axis %d", s.Axis)
		}
	case PerGroup:
		if s.GroupSize <= 0 {
			return fmt.Errorf("quant: group size %d must be positive", s.GroupSize)
		}
	default:
		return fmt.Errorf("quant: unknown granularity %d", int(s.Granularity))
	}
	return nil
}

// QMin is the smallest code.
func (s Scheme) QMin() int32 {
	switch {
	case !s.Signed:
		return 0
	case s.Symmetric:
		return -s.QMax()
	default:
		return -(1 << (s.Bits - 1))
	}
}

// QMax is the largest code.
func (s Scheme) QMax() int32 {
	if s.Signed {
		return 1<<(s.Bits-1) - 1
	}
	return 1<<s.Bits - 1
}

// PackedLen is the number of bytes that n codes occupy.
func (s Scheme) PackedLen(n int) int {
	if s.Bits == 4 {
		return (n + 1) / 2
	}
	return n
}

// String gives the scheme in the form ParseScheme reads, such as
// "int8-sym-channel", "uint8-asym-tensor" or "int4-sym-group128".
func (s Scheme) String() string {
	var b strings.Builder
	if !s.Signed {
		b.WriteByte('u')
	}
	fmt.Fprintf(&b, "int%d-", s.Bits)
	if s.Symmetric {
		b.WriteString("sym-")
	} else {
		b.WriteString("asym-")
	}
	switch s.Granularity {
	case PerChannel:
		b.WriteString("channel")
		if s.Axis != 0 {
			fmt.Fprintf(&b, "%d", s.Axis)
		}
	case PerGroup:
		fmt.Fprintf(&b, "group%d", s.GroupSize)
	default:
		b.WriteString(s.Granularity.String())
	}
	return b.String()
}

// ParseScheme reads the form String writes: [u]int{8,4}-{sym,asym}-
// {tensor,channel[AXIS],groupN}.
func ParseScheme(text string) (Scheme, error) {
	parts := strings.Split(text, "-")
	if len(parts) != 3 {
		return Scheme{}, fmt.Errorf("quant: scheme %q: want TYPE-SYMMETRY-GRANULARITY, e.g. int8-sym-channel", text)
	}
	var s Scheme
	typ := parts[0]
	s.Signed = !strings.HasPrefix(typ, "u")
	typ = strings.TrimPrefix(typ, "u")
	switch typ {
	case "int8":
		s.Bits = 8
	case "int4":
		s.Bits = 4
	default:
		return Scheme{}, fmt.Errorf("quant: scheme %q: type %q is not int8, uint8, int4 or uint4", text, parts[0])
	}
	switch parts[1] {
	case "sym":
		s.Symmetric = true
	case "asym":
	default:
		return Scheme{}, fmt.Errorf("quant: scheme %q: %q is not sym or asym", text, parts[1])
	}
	g := parts[2]
	switch {
	case g == "tensor":
		s.Granularity = PerTensor
	case strings.HasPrefix(g, "channel"):
		s.Granularity = PerChannel
		if rest := strings.TrimPrefix(g, "channel"); rest != "" {
			axis, err := strconv.Atoi(rest)
			if err != nil {
				return Scheme{}, fmt.Errorf("quant: scheme %q: bad channel axis %q", text, rest)
			}
			s.Axis = axis
		}
	case strings.HasPrefix(g, "group"):
		s.Granularity = PerGroup
		n, err := strconv.Atoi(strings.TrimPrefix(g, "group"))
		if err != nil {
			return Scheme{}, fmt.Errorf("quant: scheme %q: bad group size in %q", text, g)
		}
		s.GroupSize = n
	default:
		return Scheme{}, fmt.Errorf("quant: scheme %q: granularity %q is not tensor, channel or groupN", text, g)
	}
	return s, s.Validate()
}
