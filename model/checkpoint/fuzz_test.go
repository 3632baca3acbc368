package checkpoint

import (
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/alloctest"
)

// FuzzParseIndex: an index never makes the reader panic or allocate more
// than a small multiple of its size.
func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"metadata":{"total_size":8},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}`))
	f.Add([]byte(`{"weight_map":{"a":"x","a":"y"}}`))
	f.Add([]byte(`{"weight_map":{"a":1}}`))
	f.Add([]byte(`{"weight_map":{` + strings.Repeat(`"k":"v",`, 50) + `"z":"v"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ix *Index
		var err error
		if aerr := alloctest.Check("parseIndex", len(data), 64, 64<<10, func() { ix, err = parseIndex(data) }); aerr != nil {
			t.Fatal(aerr)
		}
		if err == nil && len(ix.WeightMap) == 0 {
			t.Fatal("accepted an index without tensors")
		}
	})
}
