package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/accessledger/accessledger/witness"
)

// TestHaltedLedgerRefusesEvents: a ledger halted because a witness holds
// a checkpoint it does not contain refuses events with 503 and a sentence
// naming the size and what to do, /readyz says the same, and reads go on.
func TestHaltedLedgerRefusesEvents(t *testing.T) {
	ts := newTestServer(t)
	ts.post(t, "application/json", eventJSON(t, 0))
	ts.l.Halt(&witness.BehindError{Witness: "w1", Size: 2, LogSize: 1})
	const want = "the log is behind a checkpoint its witnesses cosigned (size 2): it was restored from a backup or lost data; it takes no events, which would fork it; the operator must act (README: Restoring from a backup)"
	r := call(t, ts.srv.URL, "POST", "/v1/events", ts.submitter(), "application/json", eventJSON(t, 1))
	if eb := wantError(t, "POST /v1/events after a halt", r, http.StatusServiceUnavailable); eb.Error != want {
		t.Errorf("POST /v1/events after a halt = %q, want %q", eb.Error, want)
	}
	r = ts.get(t, "/readyz", "")
	wantNoInternals(t, "GET /readyz after a halt", r)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "(size 2)") {
		t.Errorf("GET /readyz after a halt = %v, want 503 naming the witnessed size", r)
	}
	if r := ts.get(t, "/v1/entries/0", ts.auditor()); r.status != http.StatusOK {
		t.Errorf("GET /v1/entries/0 after a halt = %v, want 200", r)
	}
}
