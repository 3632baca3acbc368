package checkpoint

import (
	"github.com/quantkit/quantkit/internal/jsonobj"

	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/model/format"
)

// File names Hugging Face uses.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
	ConfigFileName = "config.json"
)

// MaxIndexLen bounds the size of an index file Open reads.
const MaxIndexLen = 64 << 20

// ShardName is the name of shard i (from 0) of n: model.safetensors when n
// is 1, model-0000{i+1}-of-0000{n}.safetensors otherwise.
func ShardName(i, n int) string {
	if n == 1 {
		return SingleFileName
	}
	return fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, n)
}

// Index is a parsed model.safetensors.index.json.
type Index struct {
	// Metadata is the "metadata" object, total_size among its keys; nil
	// when absent.
	Metadata map[string]json.RawMessage
	// WeightMap maps each tensor name to the name of its shard file,
	// relative to the index's directory.
	WeightMap map[string]string
}

// TotalSize is metadata.total_size, and whether it is present and an
// integer.
func (ix *Index) TotalSize() (int64, bool) {
	raw, ok := ix.Metadata["total_size"]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	return n, err == nil
}

// ReadIndex reads and parses the index file at path. It fails on anything
// but one JSON object, on a duplicate key in it, its metadata or its
// weight_map, on a missing or empty weight_map, and on a weight_map value
// that is not a string. Errors name path.
func ReadIndex(path string) (*Index, error) {
	data, err := format.ReadFile(path, MaxIndexLen)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	ix, err := parseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	return ix, nil
}

func parseIndex(data []byte) (*Index, error) {
	top, err := jsonobj.Members(data)
	if err != nil {
		return nil, err
	}
	ix := &Index{}
	for _, m := range top {
		switch m.Key {
		case "metadata":
			if string(m.Value) == "null" {
				continue
			}
			md, err := jsonobj.Members(m.Value)
			if err != nil {
				return nil, fmt.Errorf("metadata: %w", err)
			}
			ix.Metadata = make(map[string]json.RawMessage, len(md))
			for _, e := range md {
				ix.Metadata[e.Key] = e.Value
			}
		case "weight_map":
			wm, err := jsonobj.Members(m.Value)
			if err != nil {
				return nil, fmt.Errorf("weight_map: %w", err)
			}
			ix.WeightMap = make(map[string]string, len(wm))
			for _, e := range wm {
				var shard string
				if err := json.Unmarshal(e.Value, &shard); err != nil {
					return nil, fmt.Errorf("weight_map: tensor %q: shard %s is not a string", e.Key, e.Value)
				}
				ix.WeightMap[e.Key] = shard
			}
		}
	}
	if ix.WeightMap == nil {
		return nil, errors.New("no weight_map")
	}
	if len(ix.WeightMap) == 0 {
		return nil, errors.New("weight_map is empty")
	}
	return ix, nil
}

// WriteIndex writes dir/model.safetensors.index.json atomically, as
// transformers does: {"metadata": {"total_size": totalSize}, "weight_map":
// {...}} with the tensor names sorted, two-space indentation and a final
// newline.
func WriteIndex(dir string, weightMap map[string]string, totalSize int64) error {
	if err := writeIndex(dir, weightMap, totalSize); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

func writeIndex(dir string, weightMap map[string]string, totalSize int64) error {
	var ix struct {
		Metadata struct {
			TotalSize int64 `json:"total_size"`
		} `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"` // encoding/json sorts the keys
	}
	ix.Metadata.TotalSize = totalSize
	ix.WeightMap = weightMap
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(ix); err != nil {
		return fmt.Errorf("%s: %w", IndexFileName, err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, IndexFileName), b.Bytes(), 0o666)
}
