package detect

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

func TestDecodeLeaf(t *testing.T) {
	tests := []struct {
		name string
		over map[string]any
	}{
		{"minimal", map[string]any{"reason": nil, "source": map[string]any{"user_agent": nil}}},
		{"full", map[string]any{"id": "evt-1", "actor": map[string]any{"session": "s1"},
			"source":   map[string]any{"port": 443, "asn": 64500, "geo": map[string]any{"country": "FR", "lat": 48.85, "lon": -2.5}},
			"resource": map[string]any{"type": "audit_log", "id": "x/1"}, "mfa": true, "request_id": "r", "tenant": "acme",
			"attributes": map[string]any{"a": "1", "z.b-c": "two"}}},
		{"escapes and unicode", map[string]any{"actor": map[string]any{"id": "é\"\\\u2028𝄞<>&"}, "reason": "a/b"}},
		{"ipv6", map[string]any{"source": map[string]any{"ip": "2001:db8::1"}}},
		{"geo country only", map[string]any{"source": map[string]any{"geo": map[string]any{"country": "BR"}}}},
		{"nanoseconds", map[string]any{"time": "2026-01-05T10:00:00.123456789Z"}},
		{"time with an offset", map[string]any{"time": "2026-01-05T12:00:00.5+02:00"}},
		{"ipv4-mapped ipv6", map[string]any{"source": map[string]any{"ip": "::ffff:192.0.2.1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := mkEvent(t, tt.over)
			recv := time.Date(2026, 1, 5, 10, 0, 1, 5, time.UTC)
			leaf, err := event.EncodeLeaf(event.KindEvent, recv, ev.Canonical())
			if err != nil {
				t.Fatal(err)
			}
			r, err := DecodeLeaf(7, leaf)
			if err != nil {
				t.Fatalf("DecodeLeaf(%s) = %v", leaf, err)
			}
			if _, err := decodeCanonicalEvent(ev.Canonical()); err != nil {
				t.Errorf("the fast path rejected a canonical event %s", ev.Canonical())
			}
			if r.Index != 7 || !r.ReceivedAt.Equal(recv) || !reflect.DeepEqual(r.Event, ev) {
				t.Errorf("DecodeLeaf(%s) = %+v, want %+v", leaf, r.Event, ev)
			}

			// What the API appends with the leaf (as the detector reads it
			// while the log holds the entry) decodes to the same record.
			// The event parsed from the request is what decoding the leaf
			// gives back: the detector's alerts do not depend on which it
			// read.
			dec := &event.Decoded{ReceivedAt: recv, Event: ev}
			for _, own := range []bool{false, true} {
				f, err := decodeFollowed(ledger.Leaf{Index: 7, Data: leaf, Decoded: dec}, own, &Record{})
				if err != nil {
					t.Fatal(err)
				}
				if f.Index != 7 || f.ReceivedAt != r.ReceivedAt || !reflect.DeepEqual(f.Event, r.Event) {
					t.Errorf("decodeFollowed(own %v) = {%d %v %+v}, want {%d %v %+v} as from the bytes", own, f.Index, f.ReceivedAt, f.Event, r.Index, r.ReceivedAt, r.Event)
				}
				if shared := f.Event == ev; shared == own {
					t.Errorf("decodeFollowed(own %v): record's event shared with the log's followers: %v", own, shared)
				}
			}
		})
	}
}

func TestDecodeLeafOther(t *testing.T) {
	a := &event.Alert{DedupKey: "k", Time: time.Unix(1, 0), Rule: event.AlertRule{ID: "r", Title: "t", Level: "low"},
		Window: event.Window{Start: time.Unix(1, 0), End: time.Unix(1, 0)}, Evidence: []uint64{1}, EvidenceCount: 1, Summary: "s"}
	leaf, err := event.EncodeAlertLeaf(a, time.Unix(2, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeLeaf(0, leaf); !errors.Is(err, ErrNotEvent) {
		t.Errorf("DecodeLeaf(alert) = %v, want ErrNotEvent", err)
	}
	// A leaf that is not canonical (spaces) still decodes, validated.
	ev := mkEvent(t, nil)
	spaced := []byte(`{ "kind": "event", "received_at": "2026-01-05T10:00:00Z", "body": ` + string(ev.Canonical()) + ` }`)
	r, err := DecodeLeaf(1, spaced)
	if err != nil || !reflect.DeepEqual(r.Event, ev) {
		t.Errorf("DecodeLeaf(non-canonical) = %v, %v; want the event", r, err)
	}
	if _, err := DecodeLeaf(2, []byte(`{"kind":"event","received_at":"2026-01-05T10:00:00Z","body":{"time":"x"}}`)); err == nil {
		t.Error("DecodeLeaf(invalid event) = nil error")
	}
}

func BenchmarkDecodeLeaf(b *testing.B) {
	ev := mkEvent(b, map[string]any{"source": map[string]any{"geo": map[string]any{"country": "FR", "lat": 48.85, "lon": 2.35}, "asn": 3215}})
	leaf, _ := event.EncodeLeaf(event.KindEvent, ev.Time, ev.Canonical())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeLeaf(1, leaf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeLeafEnvelope checks that envelopes the fast path does not
// take (escapes, another time format, members in another order) decode
// the same.
func TestDecodeLeafEnvelope(t *testing.T) {
	ev := mkEvent(t, nil)
	body := string(ev.Canonical())
	recv := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	for _, leaf := range []string{
		`{"kind":"event","received_at":"2026-01-05T10:00:00.000000000Z","body":` + body + `}`,
		`{"kind":"\u0065vent","received_at":"2026-01-05T10:00:00.000000000Z","body":` + body + `}`,
		`{"kind":"event","received_at":"2026-01-05T10:00:00Z","body":` + body + `}`,
		`{"kind":"event","received_at":"2026-01-05T11:00:00+01:00","body":` + body + `}`,
		`{"received_at":"2026-01-05T10:00:00.000000000Z","kind":"event","body":` + body + `}`,
	} {
		r, err := DecodeLeaf(3, []byte(leaf))
		if err != nil || !r.ReceivedAt.Equal(recv) || !reflect.DeepEqual(r.Event, ev) {
			t.Errorf("DecodeLeaf(%s) = %+v, %v; want the event received at %v", leaf, r, err, recv)
		}
	}
	for _, leaf := range []string{
		`{"kind":"event","received_at":"2026-01-05T10:00:00.000000000Z","body":` + body,
		`{"kind":"event","received_at":"2026-01-05T10:00:00.000000000Z","body":` + body + `,"x":1}`,
		`{"kind":"event","received_at":"yesterday","body":` + body + `}`,
	} {
		if r, err := DecodeLeaf(3, []byte(leaf)); err == nil {
			t.Errorf("DecodeLeaf(%s) = %+v, want an error", leaf, r)
		}
	}
}

// TestDecodeLeafSubmittedBy: an event leaf that names the API key that
// submitted it decodes to the same record as one without (written
// before submitted_by was recorded), by the fast path, at no more
// allocations; a submitted_by that is no string is refused.
func TestDecodeLeafSubmittedBy(t *testing.T) {
	ev := mkEvent(t, map[string]any{"id": "evt-1"})
	recv := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	_, old, _, err := event.AppendEventLeaf(nil, recv, ev)
	if err != nil {
		t.Fatal(err)
	}
	_, leaf, _, err := event.AppendSubmittedEventLeaf(nil, recv, "billing-svc", ev)
	if err != nil {
		t.Fatal(err)
	}
	body := string(ev.Canonical())
	for _, l := range [][]byte{old, leaf,
		[]byte(`{"kind":"event","received_at":"2026-01-05T10:00:00.000000000Z","submitted_by":"b\u0069lling-svc","body":` + body + `}`),
		[]byte(`{"kind":"event","submitted_by":"billing-svc","received_at":"2026-01-05T10:00:00Z","body":` + body + `}`),
	} {
		r, err := DecodeLeaf(3, l)
		if err != nil || r.Index != 3 || !r.ReceivedAt.Equal(recv) || !reflect.DeepEqual(r.Event, ev) {
			t.Errorf("DecodeLeaf(%s) = %+v, %v; want the event received at %v", l, r, err, recv)
		}
	}
	if _, _, _, err := (&scanner{b: leaf}).envelope(); err != nil {
		t.Errorf("scanner.envelope(%s) = %v: the fast path does not take the leaf the API writes", leaf, err)
	}
	decode := func(l []byte) func() { return func() { DecodeLeaf(3, l) } }
	if with, without := testing.AllocsPerRun(100, decode(leaf)), testing.AllocsPerRun(100, decode(old)); with > without {
		t.Errorf("DecodeLeaf: %v allocations with submitted_by, %v without", with, without)
	}
	for _, l := range []string{
		`{"kind":"event","received_at":"2026-01-05T10:00:00.000000000Z","submitted_by":1,"body":` + body + `}`,
		`{"kind":"event","received_at":"2026-01-05T10:00:00.000000000Z","submitted_by":"x","submitted_at":"y","body":` + body + `}`,
	} {
		if r, err := DecodeLeaf(3, []byte(l)); err == nil {
			t.Errorf("DecodeLeaf(%s) = %+v, want an error", l, r)
		}
	}
}
