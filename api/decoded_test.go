package api_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	evt "github.com/accessledger/accessledger/event"
)

// TestPostedEventsCarryDecoded: the API appends each event with what it
// decoded it from (ledger.Entry.Decoded), for the log's followers, and
// that is exactly what decoding the stored leaf gives: a follower's result
// does not depend on which of the two it read.
func TestPostedEventsCarryDecoded(t *testing.T) {
	ts := newTestServer(t)
	offset := time.Now().Add(-time.Hour).In(time.FixedZone("", 2*3600)).Format(time.RFC3339Nano)
	events := []any{
		event(1),
		edit(event(2), "time", offset),
		edit(edit(event(3), "source.ip", "2001:db8::7"), "resource", map[string]any{"type": "doc", "id": "d/1"}),
		edit(edit(event(4), "attributes", map[string]any{"b": "2", "a": "é\u2028"}), "mfa", true),
	}
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		t.Fatal(err)
	}
	results := batchResults(t, ts.post(t, "application/json", body))
	first := *results[0].Index
	leaves := ts.l.RecentLeaves(nil, first, len(events))
	if len(leaves) != len(events) {
		t.Fatalf("RecentLeaves(%d) = %d entries, want %d", first, len(leaves), len(events))
	}
	for i, lf := range leaves {
		d, ok := lf.Decoded.(*evt.Decoded)
		if !ok {
			t.Fatalf("entry %d: Decoded = %T, want *event.Decoded", lf.Index, lf.Decoded)
		}
		stored, err := evt.DecodeLeaf(lf.Data)
		if err != nil {
			t.Fatal(err)
		}
		want, err := evt.Parse(stored.Body, evt.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.ReceivedAt != stored.ReceivedAt.UTC() || !reflect.DeepEqual(d.Event, want) {
			t.Errorf("event %d: Decoded = {%v %+v}, want what the stored leaf decodes to: {%v %+v}", i, d.ReceivedAt, d.Event, stored.ReceivedAt, want)
		}
	}
}
