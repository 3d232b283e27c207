package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/transparency-dev/merkle/rfc6962"
)

// oldValidLeaf is validLeaf before its fast paths: the reference that
// validLeaf must agree with on every input.
func oldValidLeaf(e []byte) bool {
	rest, ok := strings.CutPrefix(string(e), `{"kind":"`)
	if !ok {
		return false
	}
	i := 0
	for i < len(rest) && (rest[i] >= 'a' && rest[i] <= 'z' || rest[i] == '_') {
		i++
	}
	if i == 0 {
		return false
	}
	isEvent := rest[:i] == "event"
	rest, ok = strings.CutPrefix(rest[i:], `","received_at":"`)
	if !ok || len(rest) < 30 {
		return false
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000000000Z", rest[:30]); err != nil {
		return false
	}
	rest = rest[30:]
	// An event may name the key that submitted it: a non-empty string.
	if by, ok := strings.CutPrefix(rest, `","submitted_by":`); ok && isEvent {
		dec := jsontext.NewDecoder(strings.NewReader(by))
		tok, err := dec.ReadToken()
		if err != nil || tok.Kind() != '"' || tok.String() == "" {
			return false
		}
		rest = by[dec.InputOffset()-1:]
	}
	body, ok := strings.CutPrefix(rest, `","body":`)
	if !ok || len(body) < 3 || body[0] != '{' || body[len(body)-1] != '}' {
		return false
	}
	return jsontext.Value(body[:len(body)-1]).IsValid()
}

const leafHead = `{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","body":`

// leafCases are bodies (or, starting with '!', whole entries) that
// validLeaf must judge as the reference does.
var leafCases = []string{
	`{}`, `{"a":1}`, `{"a":1} `, `{ "a" : 1 , "b" : [ 1 , 2 ] }`, "{\t\"a\"\n:\r1}",
	`{"a":1,"a":2}`, `{"a":{"b":1,"b":2}}`, `{"a":{"b":1},"b":{"a":1}}`, `{"a":[{"x":1},{"x":1}]}`,
	`{"a":"\u0061","\u0061":1}`, `{"a":1,"\u0061":2}`, `{"\"":1,"\"":2}`, `{"a\\":1,"a\\":1}`,
	`{"a":"\ud800"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\udc00\ud800"}`, `{"a":"\uZZZZ"}`, `{"a":"\x"}`,
	`{"a":"\n\t\"\\\/\b\f\r"}`, "{\"a\":\"\x01\"}", "{\"a\":\"\x7f\"}", "{\"a\":\"\xff\"}", "{\"a\":\"\xed\xa0\x80\"}",
	"{\"a\":\"é€😀\"}", "{\"é\":1,\"é\":2}",
	`{"a":0}`, `{"a":-0}`, `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":1.5e}`, `{"a":1e+}`, `{"a":1E-7}`,
	`{"a":+1}`, `{"a":1.5e10}`, `{"a":-12.34E+56}`, `{"a":1true}`, `{"a":NaN}`, `{"a":Infinity}`,
	`{"a":true}`, `{"a":tru}`, `{"a":false}`, `{"a":null}`, `{"a":nul}`, `{"a":True}`,
	`{"a":[]}`, `{"a":[,]}`, `{"a":[1,]}`, `{"a":[1 2]}`, `{"a":{}}`, `{"a":{,}}`, `{"a":1,}`, `{,"a":1}`,
	`{"a"}`, `{"a":}`, `{a:1}`, `{'a':1}`, `{"a":1}}`, `{"a":1}{}`, `{"a":1} x`, `{"a":[1}`, `{"a":{]}`,
	`{"a":"b`, `{"a`, `{"a":1`, `{"a":[`, `{`, `{"":1,"":2}`, `{"":1}`,
	`{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
	`{"a":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat("}", 40) + `}`,
	`{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 39) + `}`,
	`{` + manyMembers(200, false) + `}`, `{` + manyMembers(200, true) + `}`,
	`{` + manyMembers(127, true) + `}`, `{` + manyMembers(129, false) + `}`,
	`!{"kind":"","received_at":"2026-11-27T07:00:00.123456789Z","body":{}}`,
	`!{"kind":"Event","received_at":"2026-11-27T07:00:00.123456789Z","body":{}}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789","body":{}}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","body":[]}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","body":{}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","body":{}} `,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","body":1}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z" ,"body":{}}`,
	`!{"kind":"event","body":{},"received_at":"2026-11-27T07:00:00.123456789Z"}`,
	`! {"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","body":{}}`,
	`!`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","submitted_by":"billing-svc","body":{}}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","submitted_by":"a.B-9_x@eu","body":{"a":1}}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","submitted_by":"a\"b\\c\u00e9","body":{}}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","submitted_by":"é","body":{}}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","submitted_by":"","body":{}}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","submitted_by":1,"body":{}}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","submitted_by":null,"body":{}}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","submitted_by":"x","body":{}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","submitted_by":"x,"body":{}}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","submitted_by":"x\","body":{}}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","submitted_by":"x\q","body":{}}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","submitted_by":"x\ud800","body":{}}`,
	"!{\"kind\":\"event\",\"received_at\":\"2026-11-27T07:00:00.123456789Z\",\"submitted_by\":\"x\x01\",\"body\":{}}",
	"!{\"kind\":\"event\",\"received_at\":\"2026-11-27T07:00:00.123456789Z\",\"submitted_by\":\"x\xff\",\"body\":{}}",
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","submitted_by":"x","submitted_by":"y","body":{}}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z","body":{},"submitted_by":"x"}`,
	`!{"kind":"event","submitted_by":"x","received_at":"2026-11-27T07:00:00.123456789Z","body":{}}`,
	`!{"kind":"alert","received_at":"2026-11-27T07:00:00.123456789Z","submitted_by":"x","body":{}}`,
	`!{"kind":"event","received_at":"2026-11-27T07:00:00.123456789Z", "submitted_by":"x","body":{}}`,
}

func manyMembers(n int, dup bool) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		k := i
		if dup && i == n-1 {
			k = 0
		}
		b.WriteString(`"k` + strings.Repeat("x", k%7) + string(rune('a'+k/7%26)) + string(rune('a'+k/182)) + `":1`)
	}
	return b.String()
}

// timeCases are received_at values: valid, out of range, malformed.
var timeCases = []string{
	"2026-11-27T07:00:00.123456789Z", "0000-01-01T00:00:00.000000000Z", "9999-12-31T23:59:59.999999999Z",
	"2024-02-29T00:00:00.000000000Z", "2023-02-29T00:00:00.000000000Z", "2000-02-29T00:00:00.000000000Z",
	"1900-02-29T00:00:00.000000000Z", "2100-02-29T00:00:00.000000000Z", "2026-02-28T00:00:00.000000000Z",
	"2026-04-31T00:00:00.000000000Z", "2026-04-30T00:00:00.000000000Z", "2026-12-32T00:00:00.000000000Z",
	"2026-13-01T00:00:00.000000000Z", "2026-00-01T00:00:00.000000000Z", "2026-01-00T00:00:00.000000000Z",
	"2026-01-01T24:00:00.000000000Z", "2026-01-01T23:60:00.000000000Z", "2026-01-01T23:59:60.000000000Z",
	"2026-01-01T23:59:59.00000000xZ", "2026-01-01 23:59:59.000000000Z", "2026-01-01T23:59:59,000000000Z",
	"2026-01-01T23:59:59.000000000z", "+026-01-01T23:59:59.000000000Z", "2026-1-01T23:59:59.0000000000Z",
	"2026-01-01T23:59:5 .000000000Z", "2026-01-01T-3:59:59.000000000Z", "２026-01-01T23:59:59.000000000Z",
}

// leafJSON is the JSON checker the leaf tests share, as the auditor's
// workers do: a state left by one leaf must not change the next verdict.
var leafJSON event.JSONValidator

func checkLeaf(t *testing.T, e string) {
	t.Helper()
	got, want := validLeaf(&leafJSON, []byte(e)) == nil, oldValidLeaf([]byte(e))
	if got != want {
		t.Errorf("validLeaf(%q) = %v, want %v (as jsontext and time.Parse judge it)", e, got, want)
	}
}

// TestValidLeaf: the fast leaf check accepts exactly what the check with
// encoding of jsontext and time.Parse accepts.
func TestValidLeaf(t *testing.T) {
	for _, c := range leafCases {
		if e, ok := strings.CutPrefix(c, "!"); ok {
			checkLeaf(t, e)
			continue
		}
		checkLeaf(t, leafHead+c+"}")
	}
	for _, ts := range timeCases {
		checkLeaf(t, `{"kind":"event","received_at":"`+ts+`","body":{"a":1}}`)
	}
	// Every canonical event the tests post is valid.
	for i := range 50 {
		body := testEvent("", i)
		checkLeaf(t, leafHead+string(body)+"}")
	}
	if !validTimestamp([]byte("2026-11-27T07:00:00.123456789Z")) {
		t.Errorf("validTimestamp(2026-11-27T07:00:00.123456789Z) = false, want true")
	}
	// Random timestamps near the edges of every field.
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		ts := []byte("2026-11-27T07:00:00.123456789Z")
		for _, f := range [][2]int{{0, 4}, {5, 2}, {8, 2}, {11, 2}, {14, 2}, {17, 2}} {
			for j := f[0]; j < f[0]+f[1]; j++ {
				ts[j] = byte('0' + r.IntN(10))
			}
		}
		if r.IntN(20) == 0 {
			ts[r.IntN(len(ts))] = byte(r.IntN(128))
		}
		if got, want := validTimestamp(ts), timeValid(ts); got && !want {
			t.Fatalf("validTimestamp(%q) = true, but time.Parse rejects it", ts)
		} else if got != want {
			t.Fatalf("validTimestamp(%q) = %v, want %v", ts, got, want)
		}
	}
	// Random mutations of valid bodies: never accepted when jsontext
	// rejects them.
	seeds := []string{`{"a":[1,{"b":"c\n"},true,null,-1.5e3],"d":{"e":{}},"f":"é"}`, string(testEvent("x", 3))}
	alphabet := []byte(`{}[]":,.-+eE0123456789 \tntrufalsbx` + "\\\x00\x7f\xc3\xa9\xff")
	for _, seed := range seeds {
		for range 30000 {
			b := []byte(seed)
			for range 1 + r.IntN(3) {
				switch i := r.IntN(len(b)); r.IntN(3) {
				case 0:
					b[i] = alphabet[r.IntN(len(alphabet))]
				case 1:
					b = append(b[:i], b[i+1:]...)
				default:
					b = append(b[:i], append([]byte{alphabet[r.IntN(len(alphabet))]}, b[i:]...)...)
				}
				if len(b) == 0 {
					b = []byte("{")
				}
			}
			if b[0] != '{' {
				continue
			}
			if got, want := event.ValidJSON(b), jsontext.Value(b).IsValid(); got != want {
				t.Fatalf("event.ValidJSON(%q) = %v, jsontext says %v", b, got, want)
			}
			checkLeaf(t, leafHead+string(b)+"}")
		}
	}
}

// TestValidLeafSubmittedBy: the auditor takes the leaves the API writes,
// which name the key that submitted an event, and those written before,
// which do not.
func TestValidLeafSubmittedBy(t *testing.T) {
	at := time.Date(2026, 11, 27, 7, 0, 0, 123456789, time.UTC)
	for i, by := range []string{"", "billing-svc", "a.B-9_x@eu", "crm.sync@eu-1"} {
		ev, err := event.Parse(testEvent(fmt.Sprint("e", i), i), event.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, leaf, _, err := event.AppendSubmittedEventLeaf(nil, at, by, ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := validLeaf(&leafJSON, leaf); err != nil {
			t.Errorf("validLeaf(%s) = %v, want nil", leaf, err)
		}
	}
}

func timeValid(ts []byte) bool {
	_, err := time.Parse("2006-01-02T15:04:05.000000000Z", string(ts))
	return err == nil
}

// FuzzValidLeaf: go test -run X -fuzz ValidLeaf ./cmd/accessledger
func FuzzValidLeaf(f *testing.F) {
	for _, c := range leafCases {
		f.Add(leafHead + c + "}")
	}
	f.Fuzz(func(t *testing.T, e string) { checkLeaf(t, e) })
}

// TestHashBundle: hashBundle's leaf hashes are RFC 6962's, SHA-256(0x00
// || leaf), and the bundle's bytes are as they were (it borrows the byte
// before each leaf for the prefix).
func TestHashBundle(t *testing.T) {
	var raw []byte
	var leaves [][]byte
	for i := range 256 {
		leaf := []byte(leafHead + string(testEvent("", i)) + "}")
		leaves = append(leaves, leaf)
		raw = binary.BigEndian.AppendUint16(raw, uint16(len(leaf)))
		raw = append(raw, leaf...)
	}
	orig := bytes.Clone(raw)
	w := &bundleWorker{}
	if _, err := w.hashBundle(raw, 3, 256, "tile/entries/003"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, orig) {
		t.Fatal("hashBundle changed the bundle's bytes")
	}
	for i, leaf := range leaves {
		if want := rfc6962.DefaultHasher.HashLeaf(leaf); !bytes.Equal(w.hashes[i][:], want) {
			t.Fatalf("leaf %d: hash %x, want %x", i, w.hashes[i], want)
		}
	}
}
