package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/witness"
)

// TestFailMapsLedgerErrors checks the one place where ledger errors become
// HTTP answers: each error the ledger returns, wrapped as the ledger wraps
// it, gets its status, its headers and a sentence of ours; the wrapped text
// (here Badger's) reaches the server log and never the client.
func TestFailMapsLedgerErrors(t *testing.T) {
	const storage = "badger: Txn is too big to fit into one request"
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		retryAfter bool
		want       string
		logged     bool // the error is logged at error level
	}{
		{"failed", fmt.Errorf("%w: committing entries 5-9: %w", ledger.ErrFailed, errors.New(storage)), 503, false,
			"the log stopped accepting events after a storage failure; the operator must restart it", true},
		{"failed and closed", errors.Join(ledger.ErrClosed, fmt.Errorf("%w: %s", ledger.ErrFailed, storage)), 503, false,
			"the log stopped accepting events after a storage failure", true},
		{"halted behind", fmt.Errorf("%w: %w", ledger.ErrHalted, &witness.BehindError{Witness: "w1", Size: 16109, LogSize: 16108}), 503, false,
			"the log is behind a checkpoint its witnesses cosigned (size 16109): it was restored from a backup or lost data", false},
		{"halted inconsistent", fmt.Errorf("%w: %w", ledger.ErrHalted, &witness.BehindError{Witness: "w1", Size: 16109, LogSize: 16110, Inconsistent: true}), 503, false,
			"the log disagrees with a checkpoint its witnesses cosigned (size 16109)", false},
		{"pushback", ledger.ErrPushback, 503, true, "retry after the number of seconds in Retry-After", false},
		{"no space", fmt.Errorf("100 MiB free on the file system of /data/badger, appends need 256 MiB: %w", ledger.ErrNoSpace), 503, true,
			"disk is nearly full: it accepts no events until the operator frees space", false},
		{"closed", fmt.Errorf("reading tile 0/0: %w", ledger.ErrClosed), 503, true, "shutting down", false},
		{"too large", fmt.Errorf("2000 entries in one call, limit 1000: %w", ledger.ErrTooLarge), 413, false, "split the batch into smaller requests", false},
		{"invalid argument", fmt.Errorf("partial width 300 outside 1..255: %w", ledger.ErrInvalidArgument), 400, false, "out of range for this log", false},
		{"not found", fmt.Errorf("entry 9 (tree size 3): %w", ledger.ErrNotFound), 404, false, "entry 9 is not there", false},
		{"id conflict", ledger.ErrIDConflict, 409, false, "reused with different content", false},
		{"corrupt", fmt.Errorf("bundle 3: %s: %w", storage, ledger.ErrCorrupt), 500, false, "internal error", true},
		{"unknown", errors.New(storage), 500, false, "internal error", true},
		{"deadline", fmt.Errorf("appending: %w", context.DeadlineExceeded), 503, false, "took too long", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			s := &Server{cfg: Config{MaxBatchEvents: DefaultMaxBatchEvents}, log: slog.New(slog.NewTextHandler(&logs, nil))}
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			c.Request = httptest.NewRequest(http.MethodGet, "/v1/entries/9", nil)
			s.fail(c, tc.err, "entry 9 is not there")

			var body struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("fail(%v) body %q: %v", tc.err, w.Body, err)
			}
			if w.Code != tc.status || !strings.Contains(body.Error, tc.want) {
				t.Errorf("fail(%v) = %d %q, want %d and a message with %q", tc.err, w.Code, body.Error, tc.status, tc.want)
			}
			if got := w.Header().Get("Retry-After") != ""; got != tc.retryAfter {
				t.Errorf("fail(%v) Retry-After = %q, want one: %v", tc.err, w.Header().Get("Retry-After"), tc.retryAfter)
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("fail(%v) Cache-Control = %q, want no-store", tc.err, cc)
			}
			for _, s := range []string{"ledger:", "badger", "Txn"} {
				if strings.Contains(w.Body.String(), s) {
					t.Errorf("fail(%v) body %s contains %q", tc.err, w.Body, s)
				}
			}
			if tc.logged && (!strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), tc.err.Error()[:10])) {
				t.Errorf("fail(%v) logged %q, want the error at error level", tc.err, logs.String())
			}
			// A full queue or disk is logged by the ledger, once; a halt
			// by whoever halted it.
			if quiet := tc.name == "pushback" || tc.name == "no space" || strings.HasPrefix(tc.name, "halted"); quiet && strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("fail(%v) logged %q at error level, want it at debug level", tc.err, logs.String())
			}
		})
	}
}
