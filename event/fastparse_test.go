package event

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
)

// checkFastAgrees fails t if decodeFast accepts data and the strict
// decoder does not decode it to the same wireEvent.
func checkFastAgrees(t *testing.T, data []byte) (accepted bool) {
	t.Helper()
	fast, _, ok := decodeFast(data)
	if !ok {
		return false
	}
	var strictW wireEvent
	if err := json.Unmarshal(data, &strictW, strict); err != nil {
		t.Fatalf("decodeFast accepted %q, the strict decoder says: %v", data, err)
	}
	if !reflect.DeepEqual(*fast, strictW) {
		t.Fatalf("decodeFast(%q) =\n%+v\nthe strict decoder:\n%+v", data, *fast, strictW)
	}
	return true
}

// TestDecodeFastAgrees: on the shapes events come in, and on near misses
// the fast decoder must leave to the strict one, the fast decoder either
// declines or decodes exactly what the strict decoder does.
func TestDecodeFastAgrees(t *testing.T) {
	accepted := []string{
		fullInput,
		fullCanonical,
		`{"time":"2026-01-02T15:04:05Z","service":"sso","actor":{"id":"alice"},"source":{"ip":"192.0.2.1"},"action":"login","category":"authentication","outcome":"success"}`,
		" \t\r\n{ \"service\" : \"a\" , \"attributes\" : { } , \"resource\" : { } } \n",
		`{"source":{"port":65535,"asn":4294967295,"geo":{"lat":-0.5e-3,"lon":180,"country":"FR"}},"mfa":false}`,
		`{"source":{"geo":{"lat":-0,"lon":1E+2}},"mfa":true}`,
		"{\"actor\":{\"id\":\"é\",\"type\":\"user\",\"session\":\"s\"},\"reason\":\"\x7f\",\"attributes\":{\"k\":\"✓\"}}",
		`{}`,
	}
	for _, s := range accepted {
		if !checkFastAgrees(t, []byte(s)) {
			t.Errorf("decodeFast declined %q, which it should decode", s)
		}
	}
	declined := []string{
		`{"service":"a\"b"}`,            // escape
		`{"service":"a\u0041"}`,         // escape
		`{"service":null}`,              // null
		`{"service":"a","service":"a"}`, // repeated member
		`{"Service":"a"}`,               // unknown (case)
		`{"extra":1}`,                   // unknown
		`{"source":{"port":80.0}}`,      // integer with a fraction
		`{"source":{"port":1e2}}`,       // integer with an exponent
		`{"source":{"port":-1}}`,        // sign
		`{"source":{"port":080}}`,       // leading zero
		`{"source":{"port":65536}}`,     // out of range
		`{"source":{"asn":4294967296}}`,
		`{"source":{"geo":{"lat":1e400}}}`, // overflows
		`{"source":{"geo":{"lat":.5}}}`,
		`{"source":{"geo":{"lat":01}}}`,
		`{"source":{"geo":{"lat":1.}}}`,
		`{"source":{"geo":{"lat":"1"}}}`,
		`{"mfa":"true"}`,
		`{"mfa":truex}`,
		"{\"service\":\"a\xff\"}", // bad UTF-8
		"{\"service\":\"a\tb\"}",  // control character
		`{"attributes":{"k":"v","k":"w"}}`,
		`{"attributes":{"k":1}}`,
		`{"service":"a"} x`,
		`{"service":"a",}`,
		`{"service":"a"`,
		`[]`,
		`null`,
		``,
	}
	for _, s := range declined {
		if checkFastAgrees(t, []byte(s)) {
			t.Errorf("decodeFast accepted %q, which it should leave to the strict decoder", s)
		}
	}
}

// FuzzDecodeFast: whatever the fast decoder accepts, the strict decoder
// decodes to the same wireEvent, so Parse's answer never depends on which
// one decoded.
func FuzzDecodeFast(f *testing.F) {
	f.Add([]byte(fullInput))
	f.Add([]byte(fullCanonical))
	f.Add([]byte(`{"source":{"port":65535,"asn":4294967295,"geo":{"lat":-0.5e-3,"lon":180}},"mfa":false,"attributes":{"a":"b"}}`))
	f.Add([]byte(`{"source":{"geo":{"lat":1e-400}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastAgrees(t, data)
	})
}

// BenchmarkParse measures Parse on a typical event (fast decoder) and on
// the same event with one escape in it (strict decoder).
//
//	go test ./event -run '^$' -bench Parse -benchmem
func BenchmarkParse(b *testing.B) {
	typical := []byte(`{"id":"evt-000123","time":"2026-11-27T08:00:00.123Z","service":"sso","actor":{"id":"user-01234","type":"user","session":"s-9f8e7d"},"source":{"ip":"198.51.100.23","port":51234,"user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36","geo":{"country":"FR","lat":48.85,"lon":2.35},"asn":3215},"action":"login","category":"authentication","outcome":"failure","reason":"invalid_credentials","resource":{"type":"application","id":"crm"},"mfa":false,"request_id":"req-77","attributes":{"tenant_region":"eu-west"}}`)
	escaped := []byte(string(typical[:len(typical)-3]) + `\u0041"}}`)
	for _, tc := range []struct {
		name string
		data []byte
	}{{"fast", typical}, {"strict", escaped}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(tc.data, ParseOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestEncodeEventLeaf: the one-allocation leaf is byte for byte the leaf
// of the canonical body, and body is that body.
func TestEncodeEventLeaf(t *testing.T) {
	e, err := Parse([]byte(fullInput), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 8, 0, 0, 123, time.UTC)
	want, err := EncodeLeaf(KindEvent, at, e.Canonical())
	if err != nil {
		t.Fatal(err)
	}
	leaf, body, err := EncodeEventLeaf(at, e)
	if err != nil || !bytes.Equal(leaf, want) || !bytes.Equal(body, e.Canonical()) {
		t.Fatalf("EncodeEventLeaf = %s, %s, %v\nwant %s", leaf, body, err, want)
	}
	e.Attributes = map[string]string{"big": strings.Repeat("x", MaxEntrySize)}
	if _, _, err := EncodeEventLeaf(at, e); !errors.Is(err, ErrEntryTooLarge) {
		t.Fatalf("EncodeEventLeaf(too large) = %v, want ErrEntryTooLarge", err)
	}
}

// TestAppendEventLeaf: leaves appended one after the other into one
// buffer are each the leaf EncodeEventLeaf returns, stay so as the buffer
// grows past them (capped slices), and a leaf too large leaves the buffer
// as it was.
func TestAppendEventLeaf(t *testing.T) {
	e, err := Parse([]byte(fullInput), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 8, 0, 0, 123, time.UTC)
	want, wantBody, err := EncodeEventLeaf(at, e)
	if err != nil {
		t.Fatal(err)
	}
	big := *e
	big.Attributes = map[string]string{"big": strings.Repeat("x", MaxEntrySize)}
	buf := make([]byte, 0, len(want)+10) // the second leaf grows it
	var leaves, bodies [][]byte
	for i := range 3 {
		var leaf, body []byte
		buf, leaf, body, err = AppendEventLeaf(buf, at, e)
		if err != nil {
			t.Fatalf("AppendEventLeaf(%d) = %v", i, err)
		}
		leaves, bodies = append(leaves, leaf), append(bodies, body)
		n := len(buf)
		if buf, _, _, err = AppendEventLeaf(buf, at, &big); !errors.Is(err, ErrEntryTooLarge) || len(buf) != n {
			t.Fatalf("AppendEventLeaf(too large) = %d bytes, %v; want the buffer unchanged (%d bytes), ErrEntryTooLarge", len(buf), err, n)
		}
	}
	for i := range leaves {
		if !bytes.Equal(leaves[i], want) || !bytes.Equal(bodies[i], wantBody) {
			t.Fatalf("leaf %d = %s, body %s; want %s, %s", i, leaves[i], bodies[i], want, wantBody)
		}
		if cap(leaves[i]) != len(leaves[i]) || cap(bodies[i]) != len(bodies[i]) {
			t.Fatalf("leaf %d is not capped: appending to it would write into the next", i)
		}
	}
}

// BenchmarkEncodeEventLeaf measures encoding a parsed event as its leaf,
// as the server does for every event it appends.
//
//	go test ./event -run '^$' -bench EncodeEventLeaf -benchmem
func BenchmarkEncodeEventLeaf(b *testing.B) {
	e, err := Parse([]byte(fullInput), ParseOptions{Now: now})
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 23, 0, 0, 123456789, time.UTC)
	for b.Loop() {
		if _, _, err := EncodeEventLeaf(at, e); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAppendAddr: an address's JSON text in a leaf is appendString of its
// String, for every form an address takes.
func TestAppendAddr(t *testing.T) {
	for _, s := range []string{"203.0.113.7", "0.0.0.0", "2001:db8::1", "::ffff:192.0.2.1", "::", "fe80::1%eth0", "fe80::1%a\"b"} {
		a := netip.MustParseAddr(s)
		if got, want := appendAddr(nil, a), appendString(nil, a.String()); !bytes.Equal(got, want) {
			t.Errorf("appendAddr(%s) = %s, want %s", s, got, want)
		}
	}
	if got, want := appendAddr(nil, netip.Addr{}), appendString(nil, netip.Addr{}.String()); !bytes.Equal(got, want) {
		t.Errorf("appendAddr(zero) = %s, want %s", got, want)
	}
}

// TestLeafKind: the kind of a leaf, known or not, read without decoding
// it, and none for what is not a leaf.
func TestLeafKind(t *testing.T) {
	for leaf, want := range map[string]Kind{
		`{"kind":"event","received_at":"2026-11-28T00:00:00Z","body":{}}`: KindEvent,
		`{"kind":"alert","received_at":"2026-11-28T00:00:00Z","body":{}}`: KindAlert,
		`{"kind":"response","body":{}}`:                                   KindResponse,
		`{"kind":"admin","body":{}}`:                                      KindAdmin,
		`{"kind":"future","body":{}}`:                                     "future",
		`{"kind":"","body":{}}`:                                           "",
		`{"kind":"event`:                                                  "",
		`{"body":{}}`:                                                     "",
	} {
		if got := LeafKind([]byte(leaf)); got != want {
			t.Errorf("LeafKind(%s) = %q, want %q", leaf, got, want)
		}
	}
	leaf := []byte(`{"kind":"event","received_at":"2026-11-28T00:00:00Z"}`)
	if n := testing.AllocsPerRun(100, func() { LeafKind(leaf) }); n != 0 {
		t.Errorf("LeafKind of an event leaf allocates %v times, want 0", n)
	}
}

// TestSubmittedEventLeaf: an event submitted over the API names the API
// key in submitted_by, after received_at and before the body, and the
// leaf decodes with it; without a key the leaf is the one written before
// submitted_by was recorded, and such leaves decode as they did.
func TestSubmittedEventLeaf(t *testing.T) {
	e, err := Parse([]byte(`{"time":"2026-11-24T10:00:00Z","service":"billing","actor":{"id":"alice"},"source":{"ip":"203.0.113.7"},"action":"read","category":"data_access","outcome":"success"}`), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 24, 10, 0, 0, 123456789, time.UTC)
	const body = `{"time":"2026-11-24T10:00:00.000000000Z","service":"billing","actor":{"id":"alice"},"source":{"ip":"203.0.113.7"},"action":"read","category":"data_access","outcome":"success"}`
	tests := []struct {
		name, key, want string
	}{
		{"Key", "billing-svc", `{"kind":"event","received_at":"2026-11-24T10:00:00.123456789Z","submitted_by":"billing-svc","body":` + body + `}`},
		{"KeyOfEveryCharacter", "a.B-9_x@eu", `{"kind":"event","received_at":"2026-11-24T10:00:00.123456789Z","submitted_by":"a.B-9_x@eu","body":` + body + `}`},
		{"NoKey", "", `{"kind":"event","received_at":"2026-11-24T10:00:00.123456789Z","body":` + body + `}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, leaf, gotBody, err := AppendSubmittedEventLeaf(nil, at, tc.key, e)
			if err != nil || string(leaf) != tc.want || string(gotBody) != body {
				t.Fatalf("AppendSubmittedEventLeaf(%q) = %s, %s, %v\nwant %s", tc.key, leaf, gotBody, err, tc.want)
			}
			l, err := DecodeLeaf(leaf)
			if err != nil || l.Kind != KindEvent || !l.ReceivedAt.Equal(at) || l.SubmittedBy != tc.key || string(l.Body) != body {
				t.Fatalf("DecodeLeaf(%s) = %+v, %v; want submitted_by %q", leaf, l, err, tc.key)
			}
		})
	}
	// Without a key, the leaf is what AppendEventLeaf and EncodeLeaf write.
	old, err := EncodeLeaf(KindEvent, at, e.Canonical())
	if err != nil {
		t.Fatal(err)
	}
	if _, leaf, _, _ := AppendEventLeaf(nil, at, e); !bytes.Equal(leaf, old) || string(old) != tests[2].want {
		t.Errorf("AppendEventLeaf = %s, EncodeLeaf = %s; want both %s", leaf, old, tests[2].want)
	}
	// The key's name costs no allocation: the buffer holds it.
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { AppendSubmittedEventLeaf(buf, at, "billing-svc", e) }); n != 0 {
		t.Errorf("AppendSubmittedEventLeaf into a large enough buffer: %v allocations, want 0", n)
	}
	// The member is counted in the leaf's size.
	big := *e
	big.Attributes = map[string]string{"a": ""}
	_, leaf, _, err := AppendSubmittedEventLeaf(nil, at, "", &big)
	if err != nil {
		t.Fatal(err)
	}
	big.Attributes["a"] = strings.Repeat("x", MaxEntrySize-len(leaf)-len(`,"submitted_by":"k"`)+1)
	if _, _, _, err := AppendSubmittedEventLeaf(nil, at, "", &big); err != nil {
		t.Fatalf("AppendSubmittedEventLeaf(no key, %d bytes) = %v", MaxEntrySize, err)
	}
	if _, _, _, err := AppendSubmittedEventLeaf(nil, at, "k", &big); !errors.Is(err, ErrEntryTooLarge) {
		t.Fatalf("AppendSubmittedEventLeaf(key making it %d bytes) = %v, want ErrEntryTooLarge", MaxEntrySize+1, err)
	}
}
