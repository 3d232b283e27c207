package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	tesseraapi "github.com/transparency-dev/tessera/api"

	"github.com/accessledger/accessledger/api"
)

const ndjson = "application/x-ndjson"

// TestPostSingleEventStoresCanonicalLeaf checks the whole write path of
// one event: the answer, the stored bytes (exactly, with a fixed clock),
// and the leaf hash recomputed from those bytes.
func TestPostSingleEventStoresCanonicalLeaf(t *testing.T) {
	received := time.Date(2026, 3, 1, 12, 0, 0, 123, time.UTC)
	ts := newTestServer(t, withAPI(func(c *api.Config) { c.Clock = func() time.Time { return received } }))

	for i, tc := range []struct {
		name      string
		body      string
		canonical string
	}{
		{
			name:      "minimal",
			body:      `{"time":"2026-01-02T15:04:05Z","service":"billing","actor":{"id":"alice"},"source":{"ip":"192.0.2.1"},"action":"login","category":"authentication","outcome":"success"}`,
			canonical: `{"time":"2026-01-02T15:04:05.000000000Z","service":"billing","actor":{"id":"alice"},"source":{"ip":"192.0.2.1"},"action":"login","category":"authentication","outcome":"success"}`,
		},
		{
			name: "normalised",
			// Fields out of order, a time offset, a mapped and an upper-case
			// IPv6 address, unsorted attributes: all made canonical.
			body:      `{"outcome":"failure","reason":"invalid_credentials","category":"authentication","action":"login","source":{"user_agent":"curl/8","port":8443,"ip":"::ffff:198.51.100.7"},"actor":{"session":"s1","type":"user","id":"bob"},"service":"sso","time":"2026-01-02T16:04:05.5+01:00","id":"evt-n1","attributes":{"z":"1","a":"2"},"mfa":false,"resource":{"id":"42","type":"invoice"}}`,
			canonical: `{"id":"evt-n1","time":"2026-01-02T15:04:05.500000000Z","service":"sso","actor":{"id":"bob","type":"user","session":"s1"},"source":{"ip":"198.51.100.7","port":8443,"user_agent":"curl/8"},"action":"login","category":"authentication","outcome":"failure","reason":"invalid_credentials","resource":{"type":"invoice","id":"42"},"mfa":false,"attributes":{"a":"2","z":"1"}}`,
		},
		{
			name:      "ipv6 and escapes",
			body:      `{"time":"2026-01-02T15:04:05.000000001Z","service":"q\"s\\","actor":{"id":"\u00e9ve"},"source":{"ip":"2001:DB8::1"},"action":"read","category":"data_access","outcome":"unknown"}`,
			canonical: `{"time":"2026-01-02T15:04:05.000000001Z","service":"q\"s\\","actor":{"id":"éve"},"source":{"ip":"2001:db8::1"},"action":"read","category":"data_access","outcome":"unknown"}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.post(t, "application/json", []byte(tc.body))
			if r.status != http.StatusCreated {
				t.Fatalf("POST /v1/events = %v, want 201", r)
			}
			wantJSON(t, "POST /v1/events", r)
			res := singleResult(t, r)
			if *res.Index != uint64(i) || res.Duplicate {
				t.Errorf("POST /v1/events = index %d duplicate %v, want index %d duplicate false", *res.Index, res.Duplicate, i)
			}
			e := ts.getEntry(t, *res.Index)
			want := `{"kind":"event","received_at":"2026-03-01T12:00:00.000000123Z","submitted_by":"test-submitter","body":` + tc.canonical + `}`
			if string(e.Entry) != want {
				t.Errorf("GET /v1/entries/%d entry =\n%s\nwant\n%s", i, e.Entry, want)
			}
			h := leafHash([]byte(want))
			if res.LeafHash != b64(h[:]) {
				t.Errorf("POST /v1/events leaf_hash = %s, want %s (SHA-256 of 0x00||entry)", res.LeafHash, b64(h[:]))
			}
			if got := size(ts.l); got != uint64(i+1) {
				t.Errorf("Size() = %d, want %d", got, i+1)
			}
		})
	}
}

func TestPostBatchAndNDJSON(t *testing.T) {
	ts := newTestServer(t)
	evs := events(t, 0, 5)
	for _, tc := range []struct {
		name, contentType string
		body              []byte
		want              int // events
	}{
		{"batch of one", "application/json", batchJSON(evs[0]), 1},
		{"batch", "application/json; charset=utf-8", batchJSON(evs[1:4]...), 3},
		{"batch without content type", "", []byte(" \n{ \"events\" : [" + string(evs[4]) + "] }\n"), 1},
		{"ndjson", ndjson, bytes.Join(events(t, 10, 3), []byte("\n")), 3},
		{"ndjson trailing newline", ndjson, append(bytes.Join(events(t, 20, 2), []byte("\n")), '\n'), 2},
		{"ndjson crlf and blank lines", ndjson + "; charset=utf-8",
			[]byte("\r\n" + string(eventJSON(t, 30)) + "\r\n\r\n   \n\t\r\n" + string(eventJSON(t, 31)) + "\r\n\n"), 2},
		{"ndjson one line", ndjson, eventJSON(t, 40), 1},
		{"ndjson 1000 lines", ndjson, bytes.Join(events(t, 1000, 1000), []byte("\n")), 1000},
		{"batch of 1000", "application/json", batchJSON(events(t, 3000, 1000)...), 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := size(ts.l)
			r := ts.post(t, tc.contentType, tc.body)
			if r.status != http.StatusCreated {
				t.Fatalf("POST /v1/events (%s) = %v, want 201", tc.name, r)
			}
			wantJSON(t, "POST /v1/events", r)
			res := batchResults(t, r)
			if len(res) != tc.want {
				t.Fatalf("POST /v1/events (%s) = %d results, want %d", tc.name, len(res), tc.want)
			}
			for i, x := range res {
				if *x.Index != before+uint64(i) || x.Duplicate {
					t.Errorf("result %d = index %d duplicate %v, want index %d duplicate false", i, *x.Index, x.Duplicate, before+uint64(i))
				}
			}
			if got := size(ts.l); got != before+uint64(tc.want) {
				t.Errorf("Size() = %d, want %d", got, before+uint64(tc.want))
			}
			// Spot-check stored entries: leaf hash and content.
			for _, i := range []int{0, len(res) - 1} {
				e := ts.getEntry(t, *res[i].Index)
				h := leafHash(e.Entry)
				if res[i].LeafHash != b64(h[:]) {
					t.Errorf("result %d leaf_hash = %s, want %s", i, res[i].LeafHash, b64(h[:]))
				}
				if body := leafBody(t, e.Entry); body["service"] != "billing" {
					t.Errorf("entry %d body service = %v, want billing", *res[i].Index, body["service"])
				}
			}
		})
	}
}

// withID returns test event n with an id, as JSON, after optional edits.
func withID(t testing.TB, n int, id string, edits ...func(map[string]any)) []byte {
	ev := edit(event(n), "id", id)
	for _, e := range edits {
		e(ev)
	}
	return mustJSON(t, ev)
}

func TestPostDuplicateIDs(t *testing.T) {
	ts := newTestServer(t)
	failure := func(ev map[string]any) { ev["outcome"] = "failure" }
	sameInstant := func(ev map[string]any) { ev["time"] = "2026-01-02T16:04:05.000+01:00" }

	r := ts.post(t, "application/json", withID(t, 1, "evt-1"))
	if r.status != http.StatusCreated {
		t.Fatalf("POST evt-1 = %v, want 201", r)
	}
	first := singleResult(t, r)

	type want struct {
		index     uint64
		duplicate bool
	}
	for _, tc := range []struct {
		name        string
		contentType string
		body        []byte
		status      int
		added       uint64
		results     []want // nil for a single-event answer checked against single
		single      *want
		conflicts   []int  // event indexes listed in a 409
		reason      string // what the 409 reasons must say
		notReason   string // what they must not say
	}{
		{name: "same event again", body: withID(t, 1, "evt-1"), status: 200, single: &want{*first.Index, true}},
		{name: "same instant other offset", body: withID(t, 1, "evt-1", sameInstant), status: 200, single: &want{*first.Index, true}},
		{name: "same id other content", body: withID(t, 1, "evt-1", failure), status: 409, conflicts: []int{0}, reason: "entry 0"},
		{name: "same id other actor", body: withID(t, 2, "evt-1"), status: 409, conflicts: []int{0}},
		{name: "batch new and duplicate", body: batchJSON(withID(t, 2, "evt-2"), withID(t, 1, "evt-1")), status: 201, added: 1,
			results: []want{{1, false}, {0, true}}},
		{name: "batch all duplicates", body: batchJSON(withID(t, 1, "evt-1"), withID(t, 2, "evt-2")), status: 200,
			results: []want{{0, true}, {1, true}}},
		{name: "ndjson all duplicates", contentType: ndjson, body: []byte(string(withID(t, 2, "evt-2")) + "\n" + string(withID(t, 1, "evt-1"))), status: 200,
			results: []want{{1, true}, {0, true}}},
		{name: "batch new and conflict", body: batchJSON(withID(t, 3, "evt-3"), eventJSON(t, 4), withID(t, 1, "evt-1", failure)), status: 409,
			conflicts: []int{2}, reason: "entry 0"},
		// evt-5 is in no entry: the reason must not name entry 0 (evt-1)
		// as its holder.
		{name: "batch conflict within", body: batchJSON(withID(t, 5, "evt-5"), withID(t, 5, "evt-5", failure)), status: 409,
			conflicts: []int{1}, notReason: "entry 0"},
		{name: "batch repeat within", body: batchJSON(withID(t, 6, "evt-6"), withID(t, 6, "evt-6")), status: 201, added: 1,
			results: []want{{2, false}, {2, true}}},
		// evt-3 was in the rejected batch: it must not have been written.
		{name: "event of rejected batch is new", body: withID(t, 3, "evt-3"), status: 201, added: 1, single: &want{3, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := size(ts.l)
			ct := tc.contentType
			if ct == "" {
				ct = "application/json"
			}
			r := ts.post(t, ct, tc.body)
			if r.status != tc.status {
				t.Fatalf("POST /v1/events (%s) = %v, want %d", tc.name, r, tc.status)
			}
			if got := size(ts.l); got != before+tc.added {
				t.Errorf("Size() = %d, want %d", got, before+tc.added)
			}
			switch {
			case tc.status == http.StatusConflict:
				eb := wantError(t, "POST /v1/events", r, http.StatusConflict)
				var got []int
				for _, e := range eb.Events {
					got = append(got, e.Index)
					if e.Field != "id" || e.Reason == "" {
						t.Errorf("409 event error %+v, want field id and a reason", e)
					}
					if !strings.Contains(e.Reason, tc.reason) {
						t.Errorf("409 event %d reason = %q, want it to name %q, the entry holding the id", e.Index, e.Reason, tc.reason)
					}
					if tc.notReason != "" && strings.Contains(e.Reason, tc.notReason) {
						t.Errorf("409 event %d reason = %q, want it not to name %q, which does not hold the id", e.Index, e.Reason, tc.notReason)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.conflicts) {
					t.Errorf("409 lists events %v, want %v", got, tc.conflicts)
				}
			case tc.single != nil:
				res := singleResult(t, r)
				if *res.Index != tc.single.index || res.Duplicate != tc.single.duplicate {
					t.Errorf("POST = index %d duplicate %v, want index %d duplicate %v", *res.Index, res.Duplicate, tc.single.index, tc.single.duplicate)
				}
				e := ts.getEntry(t, *res.Index)
				if h := leafHash(e.Entry); res.LeafHash != b64(h[:]) {
					t.Errorf("POST leaf_hash = %s, want %s", res.LeafHash, b64(h[:]))
				}
			default:
				res := batchResults(t, r)
				if len(res) != len(tc.results) {
					t.Fatalf("POST = %d results, want %d", len(res), len(tc.results))
				}
				for i, w := range tc.results {
					if *res[i].Index != w.index || res[i].Duplicate != w.duplicate {
						t.Errorf("result %d = index %d duplicate %v, want index %d duplicate %v", i, *res[i].Index, res[i].Duplicate, w.index, w.duplicate)
					}
					e := ts.getEntry(t, *res[i].Index)
					if h := leafHash(e.Entry); res[i].LeafHash != b64(h[:]) {
						t.Errorf("result %d leaf_hash = %s, want %s", i, res[i].LeafHash, b64(h[:]))
					}
				}
			}
		})
	}
	// The original event is untouched by the conflicting submissions.
	if body := leafBody(t, ts.getEntry(t, *first.Index).Entry); body["outcome"] != "success" {
		t.Errorf("entry %d outcome = %v, want success", *first.Index, body["outcome"])
	}
}

// TestPostSameIDConcurrently checks that concurrent submissions of one id
// append it once and all get its index.
func TestPostSameIDConcurrently(t *testing.T) {
	ts := newTestServer(t)
	const n = 8
	body := withID(t, 1, "evt-concurrent")
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = body
	}
	rs := ts.postConcurrently(t, bodies)
	created := 0
	var index *uint64
	for i, r := range rs {
		switch r.status {
		case http.StatusCreated:
			created++
		case http.StatusOK:
		default:
			t.Fatalf("POST %d = %v, want 200 or 201", i, r)
		}
		res := singleResult(t, r)
		if res.Duplicate != (r.status == http.StatusOK) {
			t.Errorf("POST %d = status %d duplicate %v, want duplicate only with 200", i, r.status, res.Duplicate)
		}
		if index != nil && *res.Index != *index {
			t.Errorf("POST %d = index %d, want %d like the others", i, *res.Index, *index)
		}
		index = res.Index
	}
	if created != 1 {
		t.Errorf("%d concurrent POSTs of one id = %d created, want 1", n, created)
	}
	if got := size(ts.l); got != 1 {
		t.Errorf("Size() = %d, want 1", got)
	}
}

// wantEventErr is one per-event error a 400 must list.
type wantEventErr struct {
	index int
	field string
}

func TestPostEventsBadInput(t *testing.T) {
	ts := newTestServer(t)
	small := newTestServer(t, withAPI(func(c *api.Config) { c.MaxBodyBytes = 4096 }))
	// Some valid events, so that "unchanged" is measured on a non-empty log.
	if r := ts.post(t, "application/json", batchJSON(events(t, 0, 3)...)); r.status != http.StatusCreated {
		t.Fatalf("POST 3 events = %v, want 201", r)
	}

	good, good2 := eventJSON(t, 100), eventJSON(t, 101)
	ev := func(path string, v any) []byte { return mustJSON(t, edit(event(7), path, v)) }
	future := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)

	manyAttrs := func(n, keyLen, valLen int) map[string]any {
		m := map[string]any{}
		for i := range n {
			k := fmt.Sprintf("k%02d", i)
			m[k+strings.Repeat("_", keyLen-len(k))] = strings.Repeat("v", valLen)
		}
		return m
	}
	// 64 attributes of 64-byte keys and 1024-byte values are each within
	// the field limits, but their canonical leaf exceeds 65,535 bytes.
	tooLarge := mustJSON(t, edit(edit(event(8), "attributes", manyAttrs(64, 64, 1024)), "source.user_agent", strings.Repeat("u", 1024)))

	invalidUTF8 := bytes.Replace(eventJSON(t, 9), []byte(`"billing"`), []byte("\"bill\xffing\""), 1)
	if bytes.Equal(invalidUTF8, eventJSON(t, 9)) {
		t.Fatal("building the invalid UTF-8 body failed")
	}

	lines := func(n int) []byte { return bytes.Join(events(t, 200, n), []byte("\n")) }
	nineMiB := append(eventJSON(t, 10), bytes.Repeat([]byte(" "), 9<<20)...)

	for _, tc := range []struct {
		name        string
		small       bool // send to the server with a 4 KiB body limit
		contentType string
		body        []byte
		status      int
		errs        []wantEventErr // per-event errors that must be listed
	}{
		// Not JSON, or not one JSON object.
		{name: "malformed JSON", body: []byte(`{"time":`), status: 400, errs: []wantEventErr{{0, ""}}},
		{name: "malformed JSON garbage", body: []byte(`{time: 1}`), status: 400},
		{name: "trailing data after event", body: append(eventJSON(t, 11), `{}`...), status: 400},
		{name: "two events without NDJSON", body: append(append(eventJSON(t, 11), '\n'), eventJSON(t, 12)...), status: 400},
		{name: "array", body: []byte(`[]`), status: 400},
		{name: "array of event", body: append(append([]byte("["), good...), ']'), status: 400},
		{name: "string", body: []byte(`"event"`), status: 400},
		{name: "number", body: []byte(`42`), status: 400},
		{name: "null", body: []byte(`null`), status: 400},
		{name: "boolean", body: []byte(`true`), status: 400},
		{name: "empty object", body: []byte(`{}`), status: 400, errs: []wantEventErr{{0, "time"}, {0, "service"}, {0, "actor"}, {0, "source"}, {0, "action"}, {0, "category"}, {0, "outcome"}}},
		{name: "empty body", body: []byte{}, status: 400},
		{name: "whitespace body", body: []byte(" \r\n\t \n"), status: 400},

		// Wrong types.
		{name: "service is a number", body: ev("service", 5), status: 400, errs: []wantEventErr{{0, "service"}}},
		{name: "actor is a string", body: ev("actor", "alice"), status: 400, errs: []wantEventErr{{0, "actor"}}},
		{name: "actor.id is a number", body: ev("actor.id", 5), status: 400, errs: []wantEventErr{{0, "actor.id"}}},
		{name: "port is a string", body: ev("source.port", "443"), status: 400, errs: []wantEventErr{{0, "source.port"}}},
		{name: "port is fractional", body: ev("source.port", 80.5), status: 400, errs: []wantEventErr{{0, "source.port"}}},
		{name: "asn is a string", body: ev("source.asn", "64500"), status: 400, errs: []wantEventErr{{0, "source.asn"}}},
		{name: "lat is a string", body: ev("source.geo", map[string]any{"lat": "1.5", "lon": 2}), status: 400, errs: []wantEventErr{{0, "source.geo.lat"}}},
		{name: "mfa is a string", body: ev("mfa", "yes"), status: 400, errs: []wantEventErr{{0, "mfa"}}},
		{name: "time is a number", body: ev("time", 1767366245), status: 400, errs: []wantEventErr{{0, "time"}}},
		{name: "attribute value is a number", body: ev("attributes", map[string]any{"k": 1}), status: 400},
		{name: "resource is an array", body: ev("resource", []any{"x"}), status: 400, errs: []wantEventErr{{0, "resource"}}},

		// Missing or empty required fields.
		{name: "missing time", body: ev("time", del{}), status: 400, errs: []wantEventErr{{0, "time"}}},
		{name: "missing service", body: ev("service", del{}), status: 400, errs: []wantEventErr{{0, "service"}}},
		{name: "missing actor", body: ev("actor", del{}), status: 400, errs: []wantEventErr{{0, "actor"}}},
		{name: "missing actor.id", body: ev("actor.id", del{}), status: 400, errs: []wantEventErr{{0, "actor.id"}}},
		{name: "missing source", body: ev("source", del{}), status: 400, errs: []wantEventErr{{0, "source"}}},
		{name: "missing source.ip", body: ev("source.ip", del{}), status: 400, errs: []wantEventErr{{0, "source.ip"}}},
		{name: "missing action", body: ev("action", del{}), status: 400, errs: []wantEventErr{{0, "action"}}},
		{name: "missing category", body: ev("category", del{}), status: 400, errs: []wantEventErr{{0, "category"}}},
		{name: "missing outcome", body: ev("outcome", del{}), status: 400, errs: []wantEventErr{{0, "outcome"}}},
		{name: "empty service", body: ev("service", ""), status: 400, errs: []wantEventErr{{0, "service"}}},
		{name: "null service", body: ev("service", nil), status: 400, errs: []wantEventErr{{0, "service"}}},
		{name: "empty actor.id", body: ev("actor.id", ""), status: 400, errs: []wantEventErr{{0, "actor.id"}}},

		// Unknown fields.
		{name: "unknown field", body: ev("user", "alice"), status: 400, errs: []wantEventErr{{0, "user"}}},
		{name: "unknown nested field", body: ev("actor.name", "Alice"), status: 400},
		{name: "received_at from client", body: ev("received_at", testTime), status: 400, errs: []wantEventErr{{0, "received_at"}}},

		// Bad values.
		{name: "invalid IP", body: ev("source.ip", "999.0.0.1"), status: 400, errs: []wantEventErr{{0, "source.ip"}}},
		{name: "IP is a host name", body: ev("source.ip", "example.com"), status: 400, errs: []wantEventErr{{0, "source.ip"}}},
		{name: "IP with zone", body: ev("source.ip", "fe80::1%eth0"), status: 400, errs: []wantEventErr{{0, "source.ip"}}},
		{name: "IP is empty", body: ev("source.ip", ""), status: 400, errs: []wantEventErr{{0, "source.ip"}}},
		{name: "bad category", body: ev("category", "login"), status: 400, errs: []wantEventErr{{0, "category"}}},
		{name: "bad outcome", body: ev("outcome", "ok"), status: 400, errs: []wantEventErr{{0, "outcome"}}},
		{name: "bad actor.type", body: ev("actor.type", "robot"), status: 400, errs: []wantEventErr{{0, "actor.type"}}},
		{name: "upper-case action", body: ev("action", "Login"), status: 400, errs: []wantEventErr{{0, "action"}}},
		{name: "future time", body: ev("time", future), status: 400, errs: []wantEventErr{{0, "time"}}},
		{name: "time before 1970", body: ev("time", "1969-12-31T23:59:59Z"), status: 400, errs: []wantEventErr{{0, "time"}}},
		{name: "time not RFC 3339", body: ev("time", "2026-01-02 15:04:05"), status: 400, errs: []wantEventErr{{0, "time"}}},
		{name: "port zero", body: ev("source.port", 0), status: 400, errs: []wantEventErr{{0, "source.port"}}},
		{name: "port too large", body: ev("source.port", 65536), status: 400, errs: []wantEventErr{{0, "source.port"}}},
		{name: "empty id", body: ev("id", ""), status: 400, errs: []wantEventErr{{0, "id"}}},
		{name: "id with space", body: ev("id", "a b"), status: 400, errs: []wantEventErr{{0, "id"}}},
		{name: "id too long", body: ev("id", strings.Repeat("i", 129)), status: 400, errs: []wantEventErr{{0, "id"}}},
		{name: "service too long", body: ev("service", strings.Repeat("s", 129)), status: 400, errs: []wantEventErr{{0, "service"}}},
		{name: "control character", body: ev("service", "bill\u0001ing"), status: 400, errs: []wantEventErr{{0, "service"}}},
		{name: "65 attributes", body: ev("attributes", manyAttrs(65, 4, 1)), status: 400, errs: []wantEventErr{{0, "attributes"}}},
		{name: "attribute key with space", body: ev("attributes", map[string]any{"a b": "c"}), status: 400, errs: []wantEventErr{{0, "attributes"}}},
		{name: "attribute value too long", body: ev("attributes", map[string]any{"k": strings.Repeat("v", 1025)}), status: 400, errs: []wantEventErr{{0, "attributes.k"}}},
		{name: "lat without lon", body: ev("source.geo", map[string]any{"lat": 1.5}), status: 400, errs: []wantEventErr{{0, "source.geo"}}},
		{name: "lowercase country", body: ev("source.geo", map[string]any{"country": "de"}), status: 400, errs: []wantEventErr{{0, "source.geo.country"}}},
		{name: "empty resource", body: ev("resource", map[string]any{}), status: 400, errs: []wantEventErr{{0, "resource"}}},
		{name: "leaf over 65535 bytes", body: tooLarge, status: 400, errs: []wantEventErr{{0, ""}}},
		{name: "invalid UTF-8", body: invalidUTF8, status: 400, errs: []wantEventErr{{0, ""}}},
		{name: "lone surrogate escape", body: bytes.Replace(good, []byte(`"billing"`), []byte(`"bill\ud800ing"`), 1), status: 400},
		{name: "duplicate field", body: bytes.Replace(good, []byte(`"service":"billing"`), []byte(`"service":"billing","service":"payroll"`), 1), status: 400,
			errs: []wantEventErr{{0, "service"}}},
		{name: "field name in other case", body: bytes.Replace(good, []byte(`"service":`), []byte(`"Service":`), 1), status: 400},

		// Batches.
		{name: "batch with one bad event", body: batchJSON(good, ev("source.ip", "nope"), good2), status: 400,
			errs: []wantEventErr{{1, "source.ip"}}},
		{name: "batch with two bad events", body: batchJSON(ev("service", ""), good, ev("category", "x"), good2), status: 400,
			errs: []wantEventErr{{0, "service"}, {2, "category"}}},
		{name: "batch with non-object event", body: batchJSON(good, []byte(`7`)), status: 400, errs: []wantEventErr{{1, ""}}},
		{name: "batch with too large event", body: batchJSON(good, tooLarge), status: 400, errs: []wantEventErr{{1, ""}}},
		{name: "batch with future event", body: batchJSON(good, ev("time", future), good2), status: 400, errs: []wantEventErr{{1, "time"}}},
		{name: "empty events array", body: []byte(`{"events":[]}`), status: 400},
		{name: "events null", body: []byte(`{"events":null}`), status: 400},
		{name: "events an object", body: []byte(`{"events":{}}`), status: 400},
		{name: "events a string", body: []byte(`{"events":"x"}`), status: 400},
		{name: "batch with unknown field", body: []byte(`{"events":[` + string(good) + `],"partial":true}`), status: 400},
		{name: "batch with duplicate events member", body: []byte(`{"events":[` + string(good) + `],"events":[` + string(good2) + `]}`), status: 400},
		{name: "batch with trailing data", body: append(batchJSON(good), `{}`...), status: 400},
		{name: "batch truncated", body: batchJSON(good)[:40], status: 400},
		{name: "1001 events", body: batchJSON(events(t, 200, 1001)...), status: 413},

		// NDJSON.
		{name: "ndjson bad line", contentType: ndjson, body: []byte(string(good) + "\n" + string(ev("source.ip", "x")) + "\n" + string(good2)), status: 400,
			errs: []wantEventErr{{1, "source.ip"}}},
		{name: "ndjson malformed line", contentType: ndjson, body: []byte(string(good) + "\n{\n" + string(good2)), status: 400, errs: []wantEventErr{{1, ""}}},
		{name: "ndjson two events on a line", contentType: ndjson, body: append(append(eventJSON(t, 11), ' '), eventJSON(t, 12)...), status: 400},
		{name: "ndjson batch line", contentType: ndjson, body: batchJSON(good), status: 400},
		{name: "ndjson 1001 lines", contentType: ndjson, body: lines(1001), status: 413},
		{name: "ndjson empty", contentType: ndjson, body: []byte{}, status: 400},
		{name: "ndjson blank lines only", contentType: ndjson, body: []byte("\n\r\n  \n\t\n"), status: 400},

		// Content types.
		{name: "text/plain", contentType: "text/plain", body: good, status: 415},
		{name: "form", contentType: "application/x-www-form-urlencoded", body: good, status: 415},
		{name: "malformed content type", contentType: "application/json; =utf-8", body: good, status: 415},
		{name: "content type without subtype", contentType: "application/", body: good, status: 415},
		{name: "latin-1 charset", contentType: "application/json; charset=iso-8859-1", body: good, status: 415},

		// Size limits.
		{name: "body over small limit", small: true, body: batchJSON(events(t, 300, 30)...), status: 413},
		{name: "ndjson over small limit", small: true, contentType: ndjson, body: lines(30), status: 413},
		{name: "9 MiB body over default limit", body: nineMiB, status: 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := ts
			if tc.small {
				srv = small
			}
			ct := tc.contentType
			if ct == "" {
				ct = "application/json"
			}
			before := size(srv.l)
			r := srv.post(t, ct, tc.body)
			eb := wantError(t, "POST /v1/events", r, tc.status)
			if got := size(srv.l); got != before {
				t.Errorf("Size() after rejected POST = %d, want %d (unchanged)", got, before)
			}
			for _, w := range tc.errs {
				found := false
				for _, e := range eb.Events {
					if e.Index == w.index && e.Field == w.field && e.Reason != "" {
						found = true
					}
				}
				if !found {
					t.Errorf("POST /v1/events (%s) errors = %+v, want one for event %d field %q with a reason", tc.name, eb.Events, w.index, w.field)
				}
			}
		})
	}
	// The too-large event is rejected for its size, and says so.
	eb := wantError(t, "POST too-large event", ts.post(t, "application/json", tooLarge), http.StatusBadRequest)
	if len(eb.Events) != 1 || !strings.Contains(eb.Events[0].Reason, "65535") {
		t.Errorf("POST too-large event errors = %+v, want one saying the limit, 65535 bytes", eb.Events)
	}

	// Nothing reached the log across all the rejections.
	if got := size(ts.l); got != 3 {
		t.Errorf("Size() after all rejections = %d, want 3", got)
	}
	if got := size(small.l); got != 0 {
		t.Errorf("Size() of the small-limit log = %d, want 0", got)
	}
}

// TestPostEventsBatchErrorMessage checks that a rejected batch's message counts
// invalid events, not errors.
func TestPostEventsBatchErrorMessage(t *testing.T) {
	ts := newTestServer(t)
	body := batchJSON(mustJSON(t, edit(edit(event(1), "service", ""), "outcome", "x")), eventJSON(t, 2), mustJSON(t, edit(event(3), "action", "X")))
	r := ts.post(t, "application/json", body)
	eb := wantError(t, "POST /v1/events", r, http.StatusBadRequest)
	if !strings.HasPrefix(eb.Error, "2 of 3 events") {
		t.Errorf("POST /v1/events error = %q, want it to start with %q", eb.Error, "2 of 3 events")
	}
	if len(eb.Events) != 3 {
		t.Errorf("POST /v1/events listed %d errors, want 3: %+v", len(eb.Events), eb.Events)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &raw); err != nil || len(raw) != 2 {
		t.Errorf("POST /v1/events error body %s, want exactly \"error\" and \"events\"", r.body)
	}
}

// TestPostEventAtEntrySizeLimit checks the boundary of the C2SP entry size:
// a leaf of exactly 65,535 bytes is accepted and served intact (its uint16
// length prefix has the high bit set), one byte more is refused.
func TestPostEventAtEntrySizeLimit(t *testing.T) {
	received := time.Date(2026, 3, 1, 12, 0, 0, 123, time.UTC)
	ts := newTestServer(t, withAPI(func(c *api.Config) { c.Clock = func() time.Time { return received } }))
	attrs := map[string]any{}
	for i := range 60 {
		k := fmt.Sprintf("k%02d", i)
		attrs[k+strings.Repeat("_", 64-len(k))] = strings.Repeat("v", 1010)
	}
	withUA := func(n int) []byte {
		return mustJSON(t, edit(edit(event(1), "attributes", attrs), "source.user_agent", strings.Repeat("u", n)))
	}

	// Probe the leaf size for a 1-byte user agent; it grows one byte per
	// user-agent byte.
	r := ts.post(t, "application/json", withUA(1))
	if r.status != http.StatusCreated {
		t.Fatalf("POST probe event = %v, want 201", r)
	}
	probe := len(ts.getEntry(t, *singleResult(t, r).Index).Entry)
	n := 1 + 65535 - probe
	if n < 1 || n+1 > 1024 {
		t.Fatalf("probe leaf is %d bytes: cannot reach 65535 with a user agent of %d bytes", probe, n)
	}

	r = ts.post(t, "application/json", withUA(n))
	if r.status != http.StatusCreated {
		t.Fatalf("POST event with a 65535-byte leaf = %v, want 201", r)
	}
	index := *singleResult(t, r).Index
	e := ts.getEntry(t, index)
	if len(e.Entry) != 65535 {
		t.Fatalf("entry %d is %d bytes, want 65535", index, len(e.Entry))
	}
	path := fmt.Sprintf("/tile/entries/000.p/%d", index+1)
	b := ts.get(t, path, ts.auditor())
	var bundle tesseraapi.EntryBundle
	if err := bundle.UnmarshalText(b.body); err != nil || len(bundle.Entries) != int(index+1) {
		t.Fatalf("GET %s = %v, parsed as %d entries (%v), want %d", path, b, len(bundle.Entries), err, index+1)
	}
	if !bytes.Equal(bundle.Entries[index], e.Entry) {
		t.Errorf("GET %s entry %d differs from GET /v1/entries/%d", path, index, index)
	}

	before := size(ts.l)
	wantError(t, "POST event with a 65536-byte leaf", ts.post(t, "application/json", withUA(n+1)), http.StatusBadRequest)
	if got := size(ts.l); got != before {
		t.Errorf("Size() = %d, want %d (unchanged)", got, before)
	}
}

// TestIDsAreScopedPerService checks that an id is unique per service: two
// services may use the same id, each replay answers its own service's
// entry, and a conflict names only the entry of the same service.
func TestIDsAreScopedPerService(t *testing.T) {
	ts := newTestServer(t)
	svc := func(service string) func(map[string]any) {
		return func(ev map[string]any) { ev["service"] = service }
	}
	failure := func(ev map[string]any) { ev["outcome"] = "failure" }
	type want struct {
		status    int
		index     uint64
		duplicate bool
		reason    string // for a 409: what the reason must say
	}
	for _, tc := range []struct {
		name string
		body []byte
		want want
	}{
		{"sso evt-0001", withID(t, 1, "evt-0001", svc("sso")), want{201, 0, false, ""}},
		{"billing evt-0001", withID(t, 1, "evt-0001", svc("billing")), want{201, 1, false, ""}},
		{"sso replay", withID(t, 1, "evt-0001", svc("sso")), want{200, 0, true, ""}},
		{"billing replay", withID(t, 1, "evt-0001", svc("billing")), want{200, 1, true, ""}},
		{"billing conflict", withID(t, 1, "evt-0001", svc("billing"), failure), want{409, 0, false, "entry 1 "}},
		{"sso conflict", withID(t, 1, "evt-0001", svc("sso"), failure), want{409, 0, false, "entry 0 "}},
		// Service and id are encoded unambiguously: "ab" + "c" is not
		// "a" + "bc".
		{"ab c", withID(t, 2, "c", svc("ab")), want{201, 2, false, ""}},
		{"a bc", withID(t, 2, "bc", svc("a")), want{201, 3, false, ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.post(t, "application/json", tc.body)
			if r.status != tc.want.status {
				t.Fatalf("POST %s = %v, want %d", tc.name, r, tc.want.status)
			}
			if r.status == http.StatusConflict {
				eb := wantError(t, "POST "+tc.name, r, http.StatusConflict)
				if len(eb.Events) != 1 || !strings.Contains(eb.Events[0].Reason, tc.want.reason) {
					t.Errorf("POST %s errors = %+v, want one naming %q, the entry of the same service", tc.name, eb.Events, tc.want.reason)
				}
				return
			}
			res := singleResult(t, r)
			if *res.Index != tc.want.index || res.Duplicate != tc.want.duplicate {
				t.Errorf("POST %s = index %d duplicate %v, want index %d duplicate %v", tc.name, *res.Index, res.Duplicate, tc.want.index, tc.want.duplicate)
			}
		})
	}
	// One batch with the same id in two services appends both.
	r := ts.post(t, "application/json", batchJSON(withID(t, 3, "evt-b", svc("sso")), withID(t, 3, "evt-b", svc("hr"))))
	if r.status != http.StatusCreated {
		t.Fatalf("POST batch with evt-b for sso and hr = %v, want 201", r)
	}
	if res := batchResults(t, r); len(res) != 2 || *res[0].Index != 4 || *res[1].Index != 5 || res[0].Duplicate || res[1].Duplicate {
		t.Errorf("POST batch with evt-b for sso and hr = %s, want indexes 4 and 5, neither a duplicate", r.body)
	}
	if got := size(ts.l); got != 6 {
		t.Errorf("Size() = %d, want 6", got)
	}
}

// eventsRequest is a POST /v1/events of body as JSON, by the submitter
// key. A body that is not a *bytes.Reader (a pipe, a NopCloser) is sent
// chunked, without a Content-Length.
func eventsRequest(ts *testServer, body io.Reader) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, ts.srv.URL+"/v1/events", body)
	req.Header.Set("Authorization", "Bearer "+ts.submitter())
	req.Header.Set("Content-Type", "application/json")
	return req
}

// TestContentEncodingRefused: a compressed body is refused with a 415
// naming the encoding; a gzip body was parsed as JSON ("invalid character
// '\x1f'"), and a body labelled br was taken as it was. charset=UTF-8 is
// fine, in any case.
func TestContentEncodingRefused(t *testing.T) {
	ts := newTestServer(t)
	for _, enc := range []string{"gzip", "br", "identity, gzip"} {
		req := eventsRequest(ts, bytes.NewReader(eventJSON(t, 1)))
		req.Header.Set("Content-Encoding", enc)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(string(body), "Content-Encoding") {
			t.Errorf("POST with Content-Encoding %q = %d %s, want 415 naming the encoding", enc, resp.StatusCode, body)
		}
	}
	if r := ts.post(t, "application/json; charset=UTF-8", eventJSON(t, 2)); r.status != http.StatusCreated {
		t.Errorf("POST with charset=UTF-8 = %v, want 201", r)
	}
}

// TestPostEventsParameters: POST /v1/events takes partial, once; a
// misspelt or repeated one is a 400 (parital=true made the batch all or
// nothing without a word, partial=true&partial=false took the first).
func TestPostEventsParameters(t *testing.T) {
	ts := newTestServer(t)
	for _, q := range []string{"?parital=true", "?partial=true&partial=false", "?partial=maybe"} {
		r := call(t, ts.srv.URL, http.MethodPost, "/v1/events"+q, ts.submitter(), "application/json", eventJSON(t, 1))
		wantError(t, "POST /v1/events"+q, r, http.StatusBadRequest)
	}
	if r := call(t, ts.srv.URL, http.MethodPost, "/v1/events?partial=true", ts.submitter(), "application/json", eventJSON(t, 1)); r.status != http.StatusCreated {
		t.Errorf("POST /v1/events?partial=true = %v, want 201", r)
	}
}

// TestSlowBodyHoldsLittle: a body reserves the in-flight budget as its
// bytes arrive. One declaring max_body_bytes reserved all of it at once
// (chunked bodies too, before), so a few slow senders held the whole
// budget and every other request got 503.
func TestSlowBodyHoldsLittle(t *testing.T) {
	ts := newTestServer(t, withAPI(func(c *api.Config) {
		c.MaxBodyBytes = 1 << 20
		c.MaxInflightBodyBytes = 1 << 20
	}))
	conn := startPost(t, ts, ts.submitter(), 1<<20)
	conn.Write([]byte("{"))
	time.Sleep(100 * time.Millisecond)
	if r := ts.post(t, "application/json", eventJSON(t, 2)); r.status != http.StatusCreated {
		t.Errorf("POST beside a slow body declaring max_body_bytes = %v, want 201", r)
	}
	// A body shorter than its length (the client went away) is refused,
	// and its reservation returned.
	conn.Close()
	for i := range 3 {
		if r := ts.post(t, "application/json", eventJSON(t, 3+i)); r.status != http.StatusCreated {
			t.Errorf("POST after a body cut short = %v, want 201", r)
		}
	}
}

// TestOneKeyHoldsAQuarterOfTheBodyBudget: bodies reserve 64 KiB before
// their first byte, so a thousand connections of one submitter key that
// send headers and nothing else held the whole in-flight budget, and
// every other client got 503. One key now holds at most a quarter of it.
func TestOneKeyHoldsAQuarterOfTheBodyBudget(t *testing.T) {
	ts := newTestServer(t, withAPI(func(c *api.Config) {
		c.MaxBodyBytes = 128 << 10
		c.MaxInflightBodyBytes = 1 << 20 // a key's share: 256 KiB, four stalled bodies
	}))
	for range 20 { // more than the whole budget holds (16)
		startPost(t, ts, ts.submitter(), 100<<10)
	}
	time.Sleep(200 * time.Millisecond)
	if r := ts.post(t, "application/json", eventJSON(t, 1)); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "its share") {
		t.Errorf("POST with the key that holds its share = %v, want 503 saying so", r)
	}
	if r := call(t, ts.srv.URL, http.MethodPost, "/v1/events", ts.admin(), "application/json", eventJSON(t, 2)); r.status != http.StatusCreated {
		t.Errorf("POST with another key = %v, want 201", r)
	}
}

// TestSlowChunkedBodyHoldsLittle: a body sent without a Content-Length
// (chunked) reserves the in-flight budget as its bytes arrive. It
// reserved the whole max_body_bytes at once, so a few slow senders held
// all of it and every other request got 503.
func TestSlowChunkedBodyHoldsLittle(t *testing.T) {
	ts := newTestServer(t, withAPI(func(c *api.Config) {
		c.MaxBodyBytes = 1 << 20
		c.MaxInflightBodyBytes = 1 << 20
	}))
	ev := eventJSON(t, 1)
	pr, pw := io.Pipe()
	req := eventsRequest(ts, pr)
	slow := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
		}
		slow <- resp
	}()
	if _, err := pw.Write(ev[:10]); err != nil { // and then nothing, for now
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if r := ts.post(t, "application/json", eventJSON(t, 2)); r.status != http.StatusCreated {
		t.Errorf("POST beside a slow chunked body = %v, want 201", r)
	}
	pw.Write(ev[10:])
	pw.Close()
	if resp := <-slow; resp == nil || resp.StatusCode != http.StatusCreated {
		t.Errorf("the slow chunked POST = %v, want 201", resp)
	} else {
		resp.Body.Close()
	}
	// A chunked body over the limit is a 413, and leaves the budget free.
	for range 3 {
		req := eventsRequest(ts, io.NopCloser(bytes.NewReader(bytes.Repeat([]byte(" "), 3<<19))))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if req.ContentLength != 0 || resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked POST of 1.5 MiB = %d (length %d), want 413 for a chunked body", resp.StatusCode, req.ContentLength)
		}
	}
	if r := ts.post(t, "application/json", eventJSON(t, 3)); r.status != http.StatusCreated {
		t.Errorf("POST after chunked bodies over the limit = %v, want 201", r)
	}
}

// TestPostRefusesFormatControls: C1 controls and bidirectional overrides
// in a text field are refused when an event is received.
func TestPostRefusesFormatControls(t *testing.T) {
	ts := newTestServer(t)
	for _, actor := range []string{"evil\u009b2J", "evil\u202egnp.exe"} {
		body := fmt.Appendf(nil, `{"time":"2026-01-02T15:04:05Z","service":"s","actor":{"id":%q},"source":{"ip":"192.0.2.1"},"action":"login","category":"authentication","outcome":"success"}`, actor)
		eb := wantError(t, "POST actor "+actor, ts.post(t, "application/json", body), http.StatusBadRequest)
		if len(eb.Events) != 1 || eb.Events[0].Field != "actor.id" {
			t.Errorf("POST actor %q: errors %+v, want one on actor.id", actor, eb.Events)
		}
	}
}

// TestBodyReadTimeoutIs408: a body that does not arrive within the
// server's read timeout is answered 408 Request Timeout, which clients
// retry; it was a 400, which the client library could only tell from a
// refusal by its text, and nothing is appended.
func TestBodyReadTimeoutIs408(t *testing.T) {
	ts := newTestServer(t, withKeyFile(t, newKeyFile(t)))
	srv := httptest.NewUnstartedServer(ts.api.Handler())
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	before := size(ts.l)

	// The admin API's bodies too: it answered 400 "must be one JSON
	// object" (found by review).
	postStalled(t, srv, "/v1/events", "Authorization: Bearer "+ts.submitter(), eventJSON(t, 1))
	postStalled(t, srv, "/v1/admin/keys", "Authorization: Bearer "+ts.admin(), []byte(`{"name":"svc","roles":["submitter"]}`))
	if got := size(ts.l); got != before {
		t.Errorf("log size %d after stalled bodies, want %d", got, before)
	}
}

// postStalled POSTs to path on srv (whose ReadTimeout is short) the first
// 10 bytes of body, with its whole length declared, and the header line
// auth; it wants 408 asking for the request again.
func postStalled(t *testing.T, srv *httptest.Server, path, auth string, body []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\n%s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, auth, len(body))
	conn.Write(body[:10]) // and no more
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("POST %s: reading the answer to a stalled body: %v", path, err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := response{status: resp.StatusCode, header: resp.Header, body: answer}
	eb := wantError(t, "POST "+path+" with a stalled body", r, http.StatusRequestTimeout)
	if !strings.Contains(eb.Error, "send the request again") {
		t.Errorf("POST %s: 408 message %q does not ask for the request again", path, eb.Error)
	}
}

// TestPostRefusesReservedService: any submitter could append an event of
// exactly the shape of the server's own records of who read the log
// (service "accessledger", actor type service, action read), and so
// forge them. Such an event is refused, naming the field and why; the
// server's own records are still written (TestReadAuditRecordsReads).
func TestPostRefusesReservedService(t *testing.T) {
	ts := newTestServer(t)
	forged := func(service string) []byte {
		return fmt.Appendf(nil, `{"time":"2026-01-02T15:04:05Z","service":%q,"actor":{"id":"test-auditor","type":"service"},"source":{"ip":"192.0.2.1"},"action":"read","category":"data_access","outcome":"success","resource":{"type":"entry","id":"0"},"attributes":{"status":"200"}}`, service)
	}
	before := size(ts.l)
	for _, service := range []string{api.ReadAuditService, "AccessLedger", " accessledger",
		"access\u200bledger", "accessledger\u00ad", "accessledger\u2060"} {
		eb := wantError(t, "POST service "+service, ts.post(t, "application/json", forged(service)), http.StatusBadRequest)
		if len(eb.Events) != 1 || eb.Events[0].Field != "service" || !strings.Contains(eb.Events[0].Reason, "reserved") {
			t.Errorf("POST service %q: errors %+v, want one on service saying it is reserved", service, eb.Events)
		}
	}
	if got := size(ts.l); got != before {
		t.Errorf("Size() = %d after forged reads, want %d", got, before)
	}
	// With partial acceptance the others are appended, the forged one
	// reported.
	r := call(t, ts.srv.URL, "POST", "/v1/events?partial=true", ts.submitter(), "application/json",
		batchJSON(eventJSON(t, 1), forged(api.ReadAuditService)))
	var ans struct {
		Results []struct {
			Index    *uint64 `json:"index"`
			LeafHash string  `json:"leaf_hash"`
			Status   int     `json:"status"`
			Errors   []struct {
				Index  int    `json:"index"`
				Field  string `json:"field"`
				Reason string `json:"reason"`
			} `json:"errors"`
		} `json:"results"`
		Rejected int `json:"rejected"`
	}
	if r.status != http.StatusCreated {
		t.Fatalf("POST ?partial=true with a forged read = %v, want 201", r)
	}
	decodeStrict(t, "partial answer", r.body, &ans)
	if ans.Rejected != 1 || len(ans.Results) != 2 || ans.Results[0].Index == nil || ans.Results[1].Status != http.StatusBadRequest ||
		len(ans.Results[1].Errors) != 1 || ans.Results[1].Errors[0].Field != "service" {
		t.Errorf("POST ?partial=true with a forged read = %s, want the first appended, the second refused on service", r.body)
	}
	// Another service whose name merely contains it is anyone's.
	if r := ts.post(t, "application/json", forged("accessledger-proxy")); r.status != http.StatusCreated {
		t.Errorf("POST service accessledger-proxy = %v, want 201", r)
	}
}
