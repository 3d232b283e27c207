package event

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// canonicalBodies are event bodies as the encoder writes them: every
// optional member present and absent, attributes with escapes and
// non-ASCII text.
func canonicalBodies(t testing.TB) [][]byte {
	t.Helper()
	full, err := Parse([]byte(fullInput), ParseOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	minimal, err := Parse([]byte(`{"time":"2026-01-02T15:04:05Z","service":"s","actor":{"id":"a"},"source":{"ip":"192.0.2.1"},"action":"login","category":"authentication","outcome":"failure"}`), ParseOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	out := [][]byte{full.Canonical(), minimal.Canonical()}
	for i := range 40 {
		e := *full
		src := full.Source
		e.Source = src
		if i%2 == 0 {
			e.ID, e.Reason, e.Tenant = "", "", ""
		}
		if i%3 == 0 {
			e.Resource, e.MFA, e.Source.Geo = nil, nil, nil
		}
		if i%5 == 0 {
			e.Source.Port, e.Source.ASN = 0, 0
		}
		e.Attributes = map[string]string{}
		for k := range i % 7 {
			e.Attributes[fmt.Sprintf("k%d.%s", k, strings.Repeat("z", k))] = strings.Repeat("é\"\\/\n日", i%4)
		}
		e.Actor.ID = fmt.Sprintf("user-%d\t%s", i, strings.Repeat("😀", i%3))
		out = append(out, e.Canonical())
	}
	return out
}

// TestCanonicalEventLayout: every body the encoder writes is certified by
// the layout check itself (the auditor's common case).
func TestCanonicalEventLayout(t *testing.T) {
	for _, b := range canonicalBodies(t) {
		if !canonicalEvent(b) {
			t.Errorf("canonicalEvent(%s) = false, want true: the encoder's layout", b)
		}
	}
}

// eventCases are bodies the layout check must not certify, though some
// are valid JSON (which ValidEvent must then still accept).
var eventCases = []string{
	`{"time":"a","time":"b"}`,                 // a repeated member
	`{"service":"a","time":"b"}`,              // out of order
	`{"time":"a","color":"b"}`,                // unknown
	`{"actor":{"id":"a","id":"b"}}`,           // repeated within a nested object
	`{"actor":{"type":"a","id":"b"}}`,         // out of order within it
	`{"attributes":{"b":"1","a":"2"}}`,        // attributes not sorted
	`{"attributes":{"a":"1","a":"2"}}`,        // a repeated attribute
	`{"attributes":{"a":"1","b":2}}`,          // an attribute that is not a string
	`{"attributes":{"a\"":"1"}}`,              // an escaped name
	`{"time":"\u0041"}`,                       // a \u escape
	`{"ti\u006de":"a"}`,                       // an escaped member name (a repeat in disguise below)
	`{"time":"a","ti\u006de":"b"}`,            //
	`{"time": "a"}`,                           // whitespace
	`{"time":"a"} `,                           //
	`{"time":"a"}x`,                           // trailing bytes
	`{"time":"a",}`,                           //
	`{"time":"a"`,                             // cut
	`{"time":"a`,                              //
	`{"source":{"port":"443"}}`,               // a string where a number goes
	`{"source":{"port":01}}`,                  // an invalid number
	`{"mfa":"true"}`,                          //
	`{"mfa":tru}`,                             //
	`{"source":{"geo":{"lat":1,"lat":2}}}`,    //
	"{\"time\":\"\xff\"}",                     // invalid UTF-8
	"{\"time\":\"a\tb\"}",                     // a raw control character
	`{"time":"a\x"}`,                          // an invalid escape
	`["time"]`,                                // not an object
	``,                                        //
	`{"actor":{"id":"a"},"actor":{"id":"a"}}`, //
	`{"id":"x","time":"t","service":"s","tenant":"t","request_id":"r"}`, // request_id after tenant
}

// TestValidEvent: ValidEvent agrees with jsontext on every case, and the
// layout check certifies none of the cases above that it must not.
func TestValidEvent(t *testing.T) {
	var sc JSONValidator
	check := func(b []byte) {
		t.Helper()
		want := jsontext.Value(b).IsValid()
		if got := sc.ValidEvent(b); got != want {
			t.Errorf("ValidEvent(%.80q) = %v, jsontext says %v", b, got, want)
		}
	}
	for _, c := range eventCases {
		if canonicalEvent([]byte(c)) {
			t.Errorf("canonicalEvent(%q) = true, want false", c)
		}
		check([]byte(c))
	}
	for _, tc := range jsonCases {
		check([]byte(tc.in))
	}
	for _, b := range canonicalBodies(t) {
		check(b)
		// Every shorter prefix is invalid; every one-byte change is judged
		// as jsontext judges it.
		for i := range b {
			check(b[:i])
			for _, c := range []byte{'"', '\\', '{', '}', ',', ':', 'x', 0x01, 0xff} {
				m := bytes.Clone(b)
				m[i] = c
				check(m)
			}
		}
	}
}

// FuzzValidEvent: the layout check never certifies what jsontext rejects,
// and ValidEvent always agrees with jsontext.
//
//	go test ./event -run '^$' -fuzz FuzzValidEvent -fuzztime 60s
func FuzzValidEvent(f *testing.F) {
	for _, b := range canonicalBodies(f) {
		f.Add(b)
	}
	for _, c := range eventCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		want := jsontext.Value(b).IsValid()
		if canonicalEvent(b) && !want {
			t.Fatalf("canonicalEvent(%q) = true, jsontext says invalid", b)
		}
		var sc JSONValidator
		if got := sc.ValidEvent(b); got != want {
			t.Fatalf("ValidEvent(%q) = %v, jsontext says %v", b, got, want)
		}
		if !bytes.Equal(in, b) {
			t.Fatalf("the input was modified")
		}
	})
}

// BenchmarkValidEvent compares the layout check of a canonical event body
// with the generic fast check.
//
//	go test ./event -run '^$' -bench ValidEvent
func BenchmarkValidEvent(b *testing.B) {
	bodies := canonicalBodies(b)
	size := 0
	for _, e := range bodies {
		size += len(e)
	}
	var sc JSONValidator
	for _, bc := range []struct {
		name  string
		check func([]byte) bool
	}{{"layout", canonicalEvent}, {"generic", sc.fast}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(size / len(bodies)))
			i := 0
			for b.Loop() {
				if !bc.check(bodies[i%len(bodies)]) {
					b.Fatal("not certified")
				}
				i++
			}
		})
	}
}
