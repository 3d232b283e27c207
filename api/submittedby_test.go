package api_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/accessledger/accessledger/api"
	evpkg "github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/ledger/index"
)

// submitterServer is a query server with two submitter keys, billing-svc
// and crm-svc, and an auditor key, soc; its clock is fixed.
type submitterServer struct {
	*queryServer
	billing, crm string // the submitters' tokens
}

var submitterClock = time.Date(2026, 11, 24, 10, 0, 0, 123456789, time.UTC)

func newSubmitterServer(t *testing.T) *submitterServer {
	t.Helper()
	var keys []api.APIKey
	tokens := map[string]string{}
	for _, k := range []struct {
		name string
		role api.Role
	}{{"billing-svc", api.RoleSubmitter}, {"crm-svc", api.RoleSubmitter}, {"soc", api.RoleAuditor}} {
		tok, key, err := api.NewAPIKey(k.name, k.role)
		if err != nil {
			t.Fatal(err)
		}
		tokens[k.name] = tok
		keys = append(keys, key)
	}
	kr, err := api.NewKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	qs := newQueryServerAPI(t, func(c *api.Config) {
		c.Keys = kr
		c.Clock = func() time.Time { return submitterClock }
	})
	qs.tokens = map[api.Role]string{api.RoleAuditor: tokens["soc"]}
	return &submitterServer{queryServer: qs, billing: tokens["billing-svc"], crm: tokens["crm-svc"]}
}

// postAs posts body with token and returns the answer's results.
func (ss *submitterServer) postAs(t *testing.T, token string, wantStatus int, body []byte) []appendResult {
	t.Helper()
	r := call(t, ss.srv.URL, "POST", "/v1/events", token, "application/json", body)
	if r.status != wantStatus {
		t.Fatalf("POST /v1/events = %v, want %d", r, wantStatus)
	}
	var res []appendResult
	if bytes.HasPrefix(r.body, []byte(`{"results"`)) {
		res = batchResults(t, r)
	} else {
		res = []appendResult{singleResult(t, r)}
	}
	return res
}

// waitIndexed waits until the index has every entry of the log.
func (ss *submitterServer) waitIndexed(t *testing.T) {
	t.Helper()
	size, _ := ss.l.Size()
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if err := ss.x.Wait(ctx, size); err != nil {
		t.Fatalf("Index.Wait(%d) = %v", size, err)
	}
}

// TestEventLeafNamesItsKey: the leaf of an event appended over the API
// records the name of the API key that submitted it, in submitted_by
// after received_at (never the secret), for each key of a batch alike.
func TestEventLeafNamesItsKey(t *testing.T) {
	ss := newSubmitterServer(t)
	ev := mustJSON(t, edit(event(1), "id", "ev-1"))
	res := ss.postAs(t, ss.billing, http.StatusCreated, ev)
	parsed, err := evpkg.Parse(ev, evpkg.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"event","received_at":"2026-11-24T10:00:00.123456789Z","submitted_by":"billing-svc","body":` + string(parsed.Canonical()) + `}`
	e := ss.getEntry(t, *res[0].Index)
	if string(e.Entry) != want {
		t.Fatalf("entry %d = %s\nwant %s", *res[0].Index, e.Entry, want)
	}
	if bytes.Contains(e.Entry, []byte(ss.billing)) {
		t.Fatalf("entry %d holds the key's secret: %s", *res[0].Index, e.Entry)
	}
	batch := ss.postAs(t, ss.crm, http.StatusCreated, batchJSON(eventJSON(t, 2), eventJSON(t, 3)))
	for _, r := range batch {
		l, err := evpkg.DecodeLeaf(ss.getEntry(t, *r.Index).Entry)
		if err != nil || l.SubmittedBy != "crm-svc" {
			t.Errorf("entry %d: DecodeLeaf = %+v, %v; want submitted_by crm-svc", *r.Index, l, err)
		}
	}
}

// TestDuplicateFromAnotherKey: an event resubmitted (same service and
// id) with another key is a duplicate, answered with the original index
// and leaf: the leaf keeps naming the key that submitted it first.
func TestDuplicateFromAnotherKey(t *testing.T) {
	ss := newSubmitterServer(t)
	ev := mustJSON(t, edit(event(1), "id", "ev-1"))
	first := ss.postAs(t, ss.billing, http.StatusCreated, ev)[0]
	again := ss.postAs(t, ss.crm, http.StatusOK, ev)[0]
	if *again.Index != *first.Index || again.LeafHash != first.LeafHash || !again.Duplicate {
		t.Fatalf("resubmitted with another key = %+v, want the original %+v, duplicate", again, first)
	}
	if size, _ := ss.l.Size(); size != 1 {
		t.Fatalf("log size = %d, want 1", size)
	}
	l, err := evpkg.DecodeLeaf(ss.getEntry(t, *first.Index).Entry)
	if err != nil || l.SubmittedBy != "billing-svc" {
		t.Fatalf("DecodeLeaf = %+v, %v; want submitted_by billing-svc", l, err)
	}
	// In a batch with a new event of the same key, the same.
	res := ss.postAs(t, ss.crm, http.StatusCreated, batchJSON(ev, mustJSON(t, edit(event(2), "id", "ev-2"))))
	if *res[0].Index != *first.Index || res[0].LeafHash != first.LeafHash || *res[1].Index != 1 {
		t.Fatalf("batch = %+v, want the original %+v and a new entry 1", res, first)
	}
}

// TestQuerySubmittedBy: submitted_by filters events by the key that
// submitted them (repeated, any of them), in pages, counts, top, CSV and
// OCSF; entries written before submitted_by was recorded have none: they
// are found by every other query and exported with it empty.
func TestQuerySubmittedBy(t *testing.T) {
	ss := newSubmitterServer(t)
	// An event as an earlier version wrote it: no submitted_by.
	old, err := evpkg.EncodeLeaf(evpkg.KindEvent, submitterClock.Add(-time.Hour), mustCanonical(t, event(0)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.l.Append(bg, ledger.Entry{Data: old}); err != nil {
		t.Fatal(err)
	}
	var billing, crm []uint64
	for i := 1; i <= 6; i++ {
		token, dst := ss.billing, &billing
		if i%3 == 0 {
			token, dst = ss.crm, &crm
		}
		*dst = append(*dst, *ss.postAs(t, token, http.StatusCreated, eventJSON(t, i))[0].Index)
	}
	ss.waitIndexed(t)

	indexes := func(query string) []uint64 {
		var got []uint64
		for _, e := range ss.page(t, query).Events {
			got = append(got, e.Index)
		}
		return got
	}
	all := []uint64{0, 1, 2, 3, 4, 5, 6}
	for _, tc := range []struct {
		query string
		want  []uint64
	}{
		{"submitted_by=billing-svc", billing},
		{"submitted_by=crm-svc", crm},
		{"submitted_by=crm-svc&submitted_by=billing-svc", all[1:]},
		{"submitted_by=soc", nil},
		{"submitted_by=crm-svc&service=billing&actor=user-3", crm[:1]},
		{"service=billing", all},
		{"submitted_by=billing-svc&order=desc", []uint64{5, 4, 2, 1}},
	} {
		if got := indexes(tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("GET /v1/events?%s = %v, want %v", tc.query, got, tc.want)
		}
	}
	r := ss.get(t, "/v1/events/count?submitted_by=billing-svc", ss.auditor())
	var count struct {
		Count       uint64 `json:"count"`
		IndexedSize uint64 `json:"indexed_size"`
	}
	decodeStrict(t, "count", r.body, &count)
	if count.Count != uint64(len(billing)) {
		t.Errorf("count?submitted_by=billing-svc = %v, want %d", r, len(billing))
	}
	r = ss.get(t, "/v1/events/top?field=submitted_by", ss.auditor())
	var top struct {
		Field       string             `json:"field"`
		Top         []index.ValueCount `json:"top"`
		IndexedSize uint64             `json:"indexed_size"`
	}
	decodeStrict(t, "top", r.body, &top)
	if want := []index.ValueCount{{Value: "billing-svc", Count: 4}, {Value: "crm-svc", Count: 2}}; !slices.Equal(top.Top, want) {
		t.Errorf("top?field=submitted_by = %v, want %v", r, want)
	}

	// CSV: submitted_by is the last column; the others keep their places.
	r = ss.get(t, "/v1/events?format=csv", ss.auditor())
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || len(rows) != 8 {
		t.Fatalf("CSV = %v, %v; want a header and 7 rows", r, err)
	}
	before := []string{"index", "leaf_hash", "kind", "received_at", "id", "time", "service",
		"actor_id", "actor_type", "actor_session", "source_ip", "source_port", "user_agent", "country", "asn",
		"action", "category", "outcome", "reason", "resource_type", "resource_id", "mfa", "request_id", "tenant", "attributes"}
	if !slices.Equal(rows[0], append(before, "submitted_by")) {
		t.Fatalf("CSV header = %v, want %v and submitted_by", rows[0], before)
	}
	for i, row := range rows[1:] {
		want := "billing-svc"
		switch {
		case i == 0:
			want = ""
		case slices.Contains(crm, uint64(i)):
			want = "crm-svc"
		}
		if row[25] != want || row[2] != "event" || row[7] != fmt.Sprintf("user-%d", i) {
			t.Errorf("CSV row %d = %v, want actor user-%d, submitted_by %q", i, row, i, want)
		}
	}

	// OCSF: unmapped.submitted_by, absent for the old entry.
	r = ss.get(t, "/v1/events?format=ocsf", ss.auditor())
	lines := bytes.Split(bytes.TrimSpace(r.body), []byte("\n"))
	if len(lines) != 7 {
		t.Fatalf("OCSF = %v, want 7 lines", r)
	}
	for i, line := range lines {
		var o struct {
			Unmapped map[string]json.RawMessage `json:"unmapped"`
		}
		if err := json.Unmarshal(line, &o); err != nil {
			t.Fatalf("OCSF line %d: %v", i, err)
		}
		got, ok := o.Unmapped["submitted_by"]
		switch {
		case i == 0 && ok:
			t.Errorf("OCSF line 0 (written before submitted_by) = %s, want no unmapped.submitted_by", line)
		case i > 0 && slices.Contains(crm, uint64(i)) && string(got) != `"crm-svc"`,
			i > 0 && !slices.Contains(crm, uint64(i)) && string(got) != `"billing-svc"`:
			t.Errorf("OCSF line %d = %s, want its unmapped.submitted_by", i, line)
		}
	}
}

func mustCanonical(t *testing.T, ev map[string]any) []byte {
	t.Helper()
	e, err := evpkg.Parse(mustJSON(t, ev), evpkg.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e.Canonical()
}

// TestQuerySubmittedByBadValues: submitted_by is refused empty or too
// long, as the other filters are.
func TestQuerySubmittedByBadValues(t *testing.T) {
	ss := newSubmitterServer(t)
	for _, q := range []string{"submitted_by=", "submitted_by=" + strings.Repeat("k", 2000)} {
		if r := ss.get(t, "/v1/events?"+q, ss.auditor()); r.status != http.StatusBadRequest {
			t.Errorf("GET /v1/events?%.40s = %v, want 400", q, r)
		}
	}
}
