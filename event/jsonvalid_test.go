package event

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// jsonCases are entries the validator must judge as jsontext does; fast
// says whether fastValidJSON must vouch for it itself (the canonical
// encoder's forms).
var jsonCases = []struct {
	in   string
	fast bool
}{
	{`{"kind":"event","received_at":"2026-11-24T10:00:00.123456789Z","body":{"time":"2026-11-24T10:00:00Z","service":"sso","actor":{"id":"alice","type":"user"},"source":{"ip":"203.0.113.7","port":443,"user_agent":"curl/8","geo":{"country":"FR","lat":48.85,"lon":-2.35e-1}},"action":"login","category":"authentication","outcome":"failure","mfa":false,"attributes":{"a":"x\"y\\z\/\b\f\n\r\t"}}}`, true},
	{`{"kind":"admin","body":{"roles":["admin","auditor"],"n":null,"t":true,"e":[],"o":{},"z":0,"m":-0,"f":1.5E+10}}`, true},
	{`{"kind":"utf8","s":"é日本😀","é":1}`, true},
	{`"just a string"`, true},
	{`12`, true},
	{`[]`, true},
	{`{}`, true},
	{`{"a":{"a":{"a":1}},"b":{"a":2}}`, true}, // the same name in different objects
	{``, false},
	{` `, false},
	{`not json`, false},
	{`{"kind": "spaced"}`, false},
	{` {"kind":"ws"} `, false},
	{"{\"kind\":\"ws\"}\n", false},
	{`{"a":1,"a":2}`, false},
	{`{"a":1,"b":{"c":1},"a":2}`, false},
	{`{"a":1,"\u0061":2}`, false},
	{`{"a\"b":1}`, false},
	{`{"s":"\u00e9"}`, false},
	{`{"s":"\ud800"}`, false},
	{`{"s":"\ud83d\ude00"}`, false},
	{"{\"s\":\"\xff\"}", false},
	{"{\"s\":\"\xed\xa0\x80\"}", false}, // a surrogate in UTF-8
	{"{\"\xff\":1}", false},
	{"{\"s\":\"a\tb\"}", false},
	{`{"s":"\x"}`, false},
	{`{"s":"abc`, false},
	{`{"s":"abc\`, false},
	{`{"a":01}`, false},
	{`{"a":1.}`, false},
	{`{"a":.5}`, false},
	{`{"a":1e}`, false},
	{`{"a":-}`, false},
	{`{"a":+1}`, false},
	{`{"a":1e999}`, true},
	{`{"a":tru}`, false},
	{`{"a":nul}`, false},
	{`{"a":falsey}`, false},
	{`{"a":1,}`, false},
	{`[1,]`, false},
	{`[1 2]`, false},
	{`{"a"1}`, false},
	{`{"a":1}}`, false},
	{`{"a":1}x`, false},
	{`{"a":[1}`, false},
	{`{"a":{1:2}}`, false},
	{`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`, false}, // 40 levels
	{strings.Repeat("[", 32) + strings.Repeat("]", 32), true},
	{strings.Repeat("[", 33) + strings.Repeat("]", 33), false},
	{strings.Repeat("[", 20000) + strings.Repeat("]", 20000), false}, // beyond jsontext's depth limit
	{manyMembers(fastJSONNames), true},
	{manyMembers(fastJSONNames + 1), false},
}

func manyMembers(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	b.WriteByte('}')
	return b.String()
}

func TestValidJSON(t *testing.T) {
	for _, tc := range jsonCases {
		want := jsontext.Value(tc.in).IsValid()
		if got := ValidJSON([]byte(tc.in)); got != want {
			t.Errorf("ValidJSON(%.60q) = %v, jsontext says %v", tc.in, got, want)
		}
		if got := fastValidJSON([]byte(tc.in)); got != tc.fast {
			t.Errorf("fastValidJSON(%.60q) = %v, want %v", tc.in, got, tc.fast)
		}
	}
}

// FuzzValidJSON: fastValidJSON never vouches for what jsontext rejects,
// and ValidJSON always agrees with jsontext.
//
//	go test ./api -run '^$' -fuzz FuzzValidJSON -fuzztime 60s
func FuzzValidJSON(f *testing.F) {
	for _, tc := range jsonCases {
		if len(tc.in) < 4096 {
			f.Add([]byte(tc.in))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		want := jsontext.Value(b).IsValid()
		if fastValidJSON(b) && !want {
			t.Fatalf("fastValidJSON(%q) = true, jsontext says invalid", b)
		}
		if got := ValidJSON(b); got != want {
			t.Fatalf("ValidJSON(%q) = %v, jsontext says %v", b, got, want)
		}
		if !bytes.Equal(in, b) {
			t.Fatalf("the input was modified")
		}
	})
}

// BenchmarkValidJSON compares the validity check of a typical stored
// event (about 420 bytes) with jsontext's.
func BenchmarkValidJSON(b *testing.B) {
	entry := []byte(jsonCases[0].in)
	b.Run("fast", func(b *testing.B) {
		var sc JSONValidator
		b.SetBytes(int64(len(entry)))
		for b.Loop() {
			if !sc.fast(entry) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("jsontext", func(b *testing.B) {
		b.SetBytes(int64(len(entry)))
		for b.Loop() {
			if !jsontext.Value(entry).IsValid() {
				b.Fatal("invalid")
			}
		}
	})
}

// TestCanonicalTakesFastPath: what our encoder writes (events, their
// leaves) is vouched for by the fast scanner itself, the auditor's and
// the export's common case. (This assertion was the auditor's own, before
// it shared this validator.)
func TestCanonicalTakesFastPath(t *testing.T) {
	e, err := Parse([]byte(fullInput), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		e.Service = fmt.Sprintf("svc-%d", i)
		e.Attributes = map[string]string{"k": strings.Repeat("é\"\\", i)}
		leaf, body, err := EncodeEventLeaf(e.Time, e)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range [][]byte{body, leaf} {
			if !fastValidJSON(b) {
				t.Fatalf("fastValidJSON(%s) = false, want true: canonical JSON takes the fast path", b)
			}
		}
	}
}
