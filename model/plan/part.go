package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/quantkit/quantkit/internal/jsonobj"
	modelformat "github.com/quantkit/quantkit/model/format"
)

// PartFileName is the name of a part's description, part.json, in the
// directory a `quantize --shard I/N` run writes.
const PartFileName = "part.json"

// Limits on what ReadPart accepts: part.json is written by quantkit, but
// merge reads it from directories a user points it at.
const (
	MaxPartFileLen = 64 << 20 // bytes of part.json
	MaxParts       = 1 << 16  // parts of one plan
	maxNameLen     = 1 << 16  // bytes of one tensor name
)

// Part is part.json: which part of which plan a directory holds, and what
// the whole plan writes.
type Part struct {
	PlanHash string `json:"plan_hash"`
	Index    int    `json:"index"`
	Count    int    `json:"count"`
	Format   Format `json:"format"`
	// ShardSize is the run's --shard-size, which merge uses unless told.
	ShardSize int64    `json:"shard_size"`
	Tensors   []string `json:"tensors"` // every output tensor of the whole plan, in order
	// Files are the part directory's files (HashPartFiles), which merge
	// checks (CheckPartFiles) before it reads them.
	Files []PartFile `json:"files"`
}

// NewPart describes part index of count of p, whose output files are
// split at shardSize bytes; the caller fills in Files.
func NewPart(p *Plan, index, count int, shardSize int64) *Part {
	part := &Part{PlanHash: p.Hash(), Index: index, Count: count, Format: p.Format, ShardSize: shardSize}
	for _, t := range p.SafetensorsInfos(p.All()) {
		part.Tensors = append(part.Tensors, t.Name)
	}
	return part
}

// Marshal encodes the part as part.json's bytes.
func (p *Part) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(p, "", "  ")
	return append(b, '\n'), err
}

// ParsePart decodes and checks part.json: an object with exactly the
// fields of Part, each once, index in [0, count), count in [1, MaxParts],
// a known format, a non-negative shard size, tensor names that are
// non-empty, unique and at most 64 KiB each, and files as
// ValidatePartFileList wants them.
func ParsePart(data []byte) (*Part, error) {
	members, err := jsonobj.Members(data)
	if err != nil {
		return nil, err
	}
	known := []string{"plan_hash", "index", "count", "format", "shard_size", "tensors", "files"}
	if err := CheckPartFields(members, known); err != nil {
		return nil, err
	}
	if len(members) != len(known) {
		return nil, fmt.Errorf("%d of the fields %s present, want all", len(members), strings.Join(known, ", "))
	}
	var p Part
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, err
	}
	switch {
	case p.PlanHash == "" || len(p.PlanHash) > 64 || strings.ContainsFunc(p.PlanHash, func(r rune) bool { return !strings.ContainsRune("0123456789abcdef", r) }):
		return nil, fmt.Errorf("plan_hash %q is not a hexadecimal hash", p.PlanHash)
	case p.Count < 1 || p.Count > MaxParts:
		return nil, fmt.Errorf("count %d is not in [1, %d]", p.Count, MaxParts)
	case p.Index < 0 || p.Index >= p.Count:
		return nil, fmt.Errorf("index %d is not in [0, count %d)", p.Index, p.Count)
	case p.ShardSize < 0:
		return nil, fmt.Errorf("shard_size %d is negative", p.ShardSize)
	case len(p.Tensors) == 0:
		return nil, errors.New("tensors is empty")
	}
	if _, err := lookupFormat(p.Format); err != nil || IsGGUF(p.Format) {
		return nil, fmt.Errorf("format %q is not one a part is written in", p.Format)
	}
	seen := make(map[string]bool, len(p.Tensors))
	for _, name := range p.Tensors {
		switch {
		case name == "" || len(name) > maxNameLen:
			return nil, fmt.Errorf("tensor name of %d bytes", len(name))
		case seen[name]:
			return nil, fmt.Errorf("tensor %q listed twice", name)
		}
		seen[name] = true
	}
	if err := ValidatePartFileList(p.Files); err != nil {
		return nil, err
	}
	return &p, nil
}

// CheckPartFields says what is wrong with the fields of a part.json whose
// known fields are known: a field it does not know, or no "files" (a part
// written before parts recorded their files, which merge cannot check).
func CheckPartFields(members []jsonobj.Member, known []string) error {
	for _, m := range members {
		if !slices.Contains(known, m.Key) {
			return fmt.Errorf("unknown field %q", m.Key)
		}
	}
	if !slices.ContainsFunc(members, func(m jsonobj.Member) bool { return m.Key == "files" }) {
		return errors.New(`no "files" (the part's files, sizes and SHA-256 sums, which merge checks): ` +
			"written by a quantkit older than that check; quantize this part again")
	}
	return nil
}

// ReadPart reads and checks dir's part.json (ParsePart); errors name the
// file.
func ReadPart(dir string) (*Part, error) {
	path := filepath.Join(dir, PartFileName)
	data, err := modelformat.ReadFile(path, MaxPartFileLen)
	if err != nil {
		return nil, err
	}
	p, err := ParsePart(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}
