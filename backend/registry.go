package backend

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Opener opens device number index of a kind ("cpu" ignores the index).
type Opener func(index int) (Backend, error)

var (
	mu      sync.Mutex
	openers = map[string]Opener{}
)

// Register makes a kind of backend available to Open; backends call it from
// init. Registering a kind twice panics.
func Register(kind string, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := openers[kind]; dup {
		panic("backend: Register called twice for " + kind)
	}
	openers[kind] = open
}

// Kinds lists the registered kinds, sorted.
func Kinds() []string {
	mu.Lock()
	defer mu.Unlock()
	var ks []string
	for k := range openers {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Spec is a parsed --device value.
type Spec struct {
	Kind  string // "auto", "cpu" or "gpu"
	Index int    // device number for gpu
}

// ParseSpec reads auto, cpu, gpu or gpu:N.
func ParseSpec(s string) (Spec, error) {
	kind, idx, hasIdx := strings.Cut(s, ":")
	sp := Spec{Kind: kind}
	switch kind {
	case "auto", "cpu":
		if hasIdx {
			return Spec{}, fmt.Errorf("device %q: only gpu takes an index", s)
		}
	case "gpu":
		if hasIdx {
			n, err := strconv.Atoi(idx)
			if err != nil || n < 0 {
				return Spec{}, fmt.Errorf("device %q: bad GPU index %q", s, idx)
			}
			sp.Index = n
		}
	default:
		return Spec{}, fmt.Errorf("device %q: want auto, cpu, gpu or gpu:N", s)
	}
	return sp, nil
}

// Open opens the backend a --device value names. With "auto" it opens the
// GPU when one is registered and opens, and the CPU otherwise; the error of
// the GPU attempt, if any, is returned as fellBack so callers can say why.
func Open(device string) (b Backend, fellBack error, err error) {
	sp, err := ParseSpec(device)
	if err != nil {
		return nil, nil, err
	}
	open := func(kind string, idx int) (Backend, error) {
		mu.Lock()
		o, ok := openers[kind]
		mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("no %s backend in this build", kind)
		}
		return o(idx)
	}
	switch sp.Kind {
	case "auto":
		g, gerr := open("gpu", 0)
		if gerr == nil {
			return g, nil, nil
		}
		c, err := open("cpu", 0)
		return c, gerr, err
	default:
		b, err := open(sp.Kind, sp.Index)
		return b, nil, err
	}
}

// ChunkLen is how many of n elements of elemSize bytes to process at once
// on b: all of them, unless b reports (MemoryInfo) less free memory than
// they need with room to spare, in which case a half of what is free.
func ChunkLen(b Backend, n, elemSize int) int {
	mi, ok := b.(MemoryInfo)
	if !ok || n == 0 {
		return max(n, 1)
	}
	free, _, err := mi.MemInfo()
	if err != nil || free == 0 {
		return max(n, 1)
	}
	limit := free / 2 / uint64(elemSize)
	if uint64(n) <= limit {
		return n
	}
	return max(int(limit), 1)
}
