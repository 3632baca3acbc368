package jsonobj

import (
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
