package plan

import (
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/alloctest"
)

const goodPart = `{"plan_hash":"0123abcd","index":1,"count":2,"format":"compressed-tensors","shard_size":5000000000,"tensors":["a.weight","b.weight"],` +
	`"files":[{"name":"config.json","size":2,"sha256":"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},` +
	`{"name":"model.safetensors","size":1000,"sha256":"abababababababababababababababababababababababababababababababab"}]}`

func TestParsePart(t *testing.T) {
	p, err := ParsePart([]byte(goodPart))
	if err != nil || p.Index != 1 || p.Count != 2 || len(p.Tensors) != 2 || p.ShardSize != 5e9 || len(p.Files) != 2 || p.Files[1].Size != 1000 {
		t.Fatalf("ParsePart = %+v, %v", p, err)
	}
	b, _ := p.Marshal()
	if q, err := ParsePart(b); err != nil || q.PlanHash != p.PlanHash || strings.Join(q.Tensors, ",") != "a.weight,b.weight" {
		t.Fatalf("round trip: %+v, %v", q, err)
	}
	for _, tc := range []struct{ old, new, want string }{
		{`"index":1`, `"index":2`, "index 2"},
		{`"index":1`, `"index":-1`, "index -1"},
		{`"count":2`, `"count":0`, "count 0"},
		{`"count":2`, `"count":1000000000`, "count 1000000000"},
		{`"format":"compressed-tensors"`, `"format":"gguf-q8_0"`, "format"},
		{`"format":"compressed-tensors"`, `"format":"zip"`, "format"},
		{`"shard_size":5000000000`, `"shard_size":-1`, "shard_size"},
		{`["a.weight","b.weight"]`, `["a.weight","a.weight"]`, `tensor "a.weight" listed twice`},
		{`["a.weight","b.weight"]`, `[]`, "tensors is empty"},
		{`["a.weight","b.weight"]`, `["a.weight",""]`, "tensor name of 0 bytes"},
		{`"plan_hash":"0123abcd"`, `"plan_hash":"../x"`, "plan_hash"},
		{`"plan_hash":"0123abcd",`, `"plan_hash":"0123abcd","plan_hash":"0123abcd",`, "appears twice"},
		{`"plan_hash":"0123abcd",`, `"plan_hash":"0123abcd","extra":1,`, `unknown field "extra"`},
		{`"shard_size":5000000000,`, ``, "present, want all"},
		{`}]}`, `}]}{}`, "data after"},
		{`,"files":[`, `,"nofiles":[`, `unknown field "nofiles"`},
		{`,"files":[{"name":"config.json",`, `,"x":[{"name":"config.json",`, `unknown field "x"`},
		{`"name":"config.json"`, `"name":"part.json"`, "not that of a file"},
		{`"name":"config.json"`, `"name":"../config.json"`, "not that of a file"},
		{`"name":"config.json"`, `"name":".hidden"`, "not that of a file"},
		{`"name":"config.json"`, `"name":"model.safetensors"`, "listed twice"},
		{`"name":"config.json"`, `"name":"z.json"`, "not sorted"},
		{`"size":2`, `"size":-2`, "size -2 is negative"},
		{`"sha256":"4413`, `"sha256":"4A13`, "not 64 lower-case"},
		{`"sha256":"4413`, `"sha256":"413`, "not 64 lower-case"},
	} {
		bad := strings.Replace(goodPart, tc.old, tc.new, 1)
		if _, err := ParsePart([]byte(bad)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePart(%s) error %v, want one mentioning %q", bad, err, tc.want)
		}
	}
}

// FuzzParsePart: part.json from a directory merge is pointed at never
// panics, allocates in proportion to its size, and what it accepts
// encodes back to the same part.
func FuzzParsePart(f *testing.F) {
	f.Add([]byte(goodPart))
	f.Add([]byte(`{"plan_hash":"ff","index":0,"count":1,"format":"safetensors","shard_size":0,"tensors":["x"],"files":[]}`))
	f.Add([]byte(`{"tensors":[` + strings.Repeat(`"x",`, 100) + `"y"]}`))
	f.Add([]byte(`{"count":99999999999999999999}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p *Part
		var err error
		if aerr := alloctest.Check("ParsePart", len(data), 64, 64<<10, func() { p, err = ParsePart(data) }); aerr != nil {
			t.Fatal(aerr)
		}
		if err != nil {
			return
		}
		b, merr := p.Marshal()
		if merr != nil {
			t.Fatal(merr)
		}
		q, err := ParsePart(b)
		if err != nil || q.PlanHash != p.PlanHash || q.Index != p.Index || q.Count != p.Count || q.Format != p.Format ||
			q.ShardSize != p.ShardSize || strings.Join(q.Tensors, "\x00") != strings.Join(p.Tensors, "\x00") || !slices.Equal(q.Files, p.Files) {
			t.Fatalf("round trip of %q: %+v, %v", data, q, err)
		}
	})
}
