package jsonobj

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestMembers(t *testing.T) {
	ms, err := Members([]byte(` {"b": 1, "a": {"x": [1, 2]}, "c": null} `))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Key+"="+string(m.Value))
	}
	if want := `b=1 a={"x": [1, 2]} c=null`; strings.Join(got, " ") != want {
		t.Errorf("members %q, want %q", strings.Join(got, " "), want)
	}
	for in, want := range map[string]string{
		`{"a": 1, "a": 2}`: "appears twice",
		`[1]`:              "not a JSON object",
		`{"a": 1} {}`:      "data after",
		`{"a": }`:          "not valid JSON",
		``:                 "not valid JSON",
	} {
		if _, err := Members([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Members(%q) = %v, want an error saying %q", in, err, want)
		}
	}
}

// The walk agrees with encoding/json on what it reads, escapes included,
// and allocates only what it returns.
func TestWalkMatchesEncodingJSON(t *testing.T) {
	in := []byte(` { "a\u0062" : [1, {"x": "]}\""}, 2.5e3] , "c": "\u00e9\n", "d": {} } `)
	var want map[string]json.RawMessage
	if err := json.Unmarshal(in, &want); err != nil {
		t.Fatal(err)
	}
	ms, err := Members(in)
	if err != nil || len(ms) != len(want) {
		t.Fatalf("Members = %v, %v", ms, err)
	}
	for _, m := range ms {
		if string(m.Value) != string(want[m.Key]) {
			t.Errorf("member %q = %s, want %s", m.Key, m.Value, want[m.Key])
		}
	}
	var elems []string
	EachElement(ms[0].Value, func(v []byte) error { elems = append(elems, string(v)); return nil })
	if got := strings.Join(elems, " | "); got != `1 | {"x": "]}\""} | 2.5e3` {
		t.Errorf("elements %s", got)
	}
	if d := Depth(in); d != 3 {
		t.Errorf("Depth = %d, want 3", d)
	}
	big := []byte(`{` + `"a":[` + strings.Repeat(`1,`, 10000) + `1]}`)
	if got := testing.AllocsPerRun(10, func() { Members(big) }); got > 5 {
		t.Errorf("Members of one key and a 10001-element array made %v allocations", got)
	}
}
