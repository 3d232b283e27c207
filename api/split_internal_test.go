package api

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// checkSplitAgrees fails t if splitBatchFast accepts body, every event it
// found is a JSON object, and the strict splitBatch does not split body
// into the same events.
func checkSplitAgrees(t *testing.T, body []byte) {
	t.Helper()
	const max = 8
	fast, ok := splitBatchFast(body, max)
	if !ok {
		return
	}
	for _, r := range fast {
		if !jsontext.Value(r).IsValid() || r[0] != '{' {
			return // the event's parse fails: the caller splits strictly
		}
	}
	s := &Server{cfg: Config{MaxBatchEvents: max}}
	strict, status, msg := s.splitBatch(body)
	if status != 0 {
		t.Fatalf("splitBatchFast(%q) = %d events; splitBatch: %d %s", body, len(fast), status, msg)
	}
	if !slices.EqualFunc(fast, strict, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Fatalf("splitBatchFast(%q) = %q, splitBatch = %q", body, fast, strict)
	}
}

func TestSplitBatchFast(t *testing.T) {
	ev := `{"service":"a","attributes":{"k":"}]\"{["}}`
	for _, tc := range []struct {
		body string
		n    int // events; 0: declined
	}{
		{`{"events":[` + ev + `]}`, 1},
		{" \n{ \"events\" :\t[ " + ev + " ,\r\n" + ev + " ] } \n", 2},
		{`{"events":[{"a":[1,{"b":"\\\\"}]},{}]}`, 2},
		{`{"events":[]}`, 0},
		{`{"events":[` + ev + `,]}`, 0},
		{`{"events":[` + ev + `]},`, 0},
		{`{"events":[` + ev + `],"events":[]}`, 0},
		{`{"events":[1]}`, 0},
		{`{"events":{}}`, 0},
		{`{"events":[{"a":"b}]}`, 0},
		{`{"events":[` + strings.Repeat(ev+",", 8) + ev + `]}`, 0}, // 9 > max
		{`{"events":[` + strings.TrimSuffix(strings.Repeat(ev+",", 8), ",") + `]}`, 8},
	} {
		raws, ok := splitBatchFast([]byte(tc.body), 8)
		if got := len(raws); ok != (tc.n > 0) || got != tc.n {
			t.Errorf("splitBatchFast(%q) = %d events, %v; want %d", tc.body, got, ok, tc.n)
		}
		checkSplitAgrees(t, []byte(tc.body))
	}
}

// FuzzSplitBatchFast: where the fast splitter accepts a batch of valid
// objects, the strict one splits it alike.
func FuzzSplitBatchFast(f *testing.F) {
	for i := range 4 {
		f.Add([]byte(fmt.Sprintf(`{"events":[%s{"service":"s%d","attributes":{"k":"v\"}"}}]}`, strings.Repeat(`{"a":[1,2,{"b":null}]},`, i), i)))
	}
	f.Add([]byte(` {"events" : [ {} , {"x":"\\"} ] } `))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkSplitAgrees(t, body)
	})
}
