package strictyaml

import (
	"strings"
	"testing"
)

type doc struct {
	A int    `yaml:"a"`
	B string `yaml:"b"`
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     doc
		err      string
	}{
		{"One", "a: 1\nb: x\n", doc{1, "x"}, ""},
		{"Empty", "", doc{}, ""},
		{"CommentsOnly", "# nothing\n", doc{}, ""},
		{"LeadingMarker", "---\na: 2\n", doc{A: 2}, ""},
		{"TrailingMarker", "a: 2\n---\n", doc{A: 2}, ""},
		{"SecondDocument", "a: 1\n---\nb: y\n", doc{}, "second YAML document"},
		{"BrokenSecondDocument", "a: 1\n---\nb: [\n", doc{}, "yaml:"},
		{"UnknownKey", "a: 1\nc: 2\n", doc{}, "field c not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got doc
			err := Decode([]byte(tc.in), &got)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("Decode(%q) = %v", tc.in, err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("Decode(%q) = %v, want an error with %q", tc.in, err, tc.err)
			case tc.err == "" && got != tc.want:
				t.Fatalf("Decode(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}
