package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/accessledger/accessledger/internal/powerfs"
)

// TestStorageFailureStopsServer makes the disk fail for real under the
// running server, once (the sync of Badger's write-ahead log returns EIO
// from a FUSE file system), and checks what a user sees: the append gets
// 503 with a sentence to act on and no storage text, /readyz turns
// unready, later appends are refused, reads go on; after a restart every
// acknowledged event is there and appends work again.
func TestStorageFailureStopsServer(t *testing.T) {
	h := newPowerLoss(t)
	var acked []postResult
	for i := range 5 {
		acked = append(acked, h.s.mustPost(testEvent("", 100+i))...)
	}
	// The log's own storage, not the followers' (detect/, index/, respond/).
	h.fs.FailNext(powerfs.Fsync, func(p string) bool { return strings.Contains("/"+p, "/badger/") && strings.HasSuffix(p, ".mem") }, syscall.EIO)

	status, _, body, err := h.s.postEvents(t.Context(), "", []json.RawMessage{testEvent("", 200)})
	if err != nil || status != http.StatusServiceUnavailable || !strings.Contains(string(body), "storage failure") ||
		strings.Contains(string(body), "input/output") || strings.Contains(string(body), "ledger:") {
		t.Fatalf("POST /v1/events when the disk fails = %d %s, %v; want 503 saying the log stopped after a storage failure, without internals", status, body, err)
	}
	if status, body, _ := h.s.do(t.Context(), http.MethodGet, "/readyz", "", nil); status != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz after the storage failure = %d %s, want 503", status, body)
	}
	if status, _, body, _ := h.s.postEvents(t.Context(), "", []json.RawMessage{testEvent("", 201)}); status != http.StatusServiceUnavailable {
		t.Errorf("POST /v1/events after the storage failure = %d %s, want 503", status, body)
	}
	if status, body, _ := h.s.do(t.Context(), http.MethodGet, "/v1/entries/0", "", nil); status != http.StatusOK {
		t.Errorf("GET /v1/entries/0 after the storage failure = %d %s, want 200: reads go on", status, body)
	}
	if code := h.s.terminate(20 * time.Second); code == 0 {
		t.Errorf("SIGTERM after a storage failure: exit code 0, want non-zero (the log failed)")
	}

	// The disk is healthy again (the fault was one-shot): restart.
	if err := h.start(false); err != nil {
		t.Fatal(err)
	}
	for _, a := range acked {
		entry, leaf, err := h.s.entry(t.Context(), a.Index)
		if err != nil || leafHash(entry) != leaf || strings.TrimRight(a.LeafHash, "=") == "" {
			t.Fatalf("entry %d after restart: %v", a.Index, err)
		}
		if want := decodeHash(t, "leaf_hash", a.LeafHash); want != leaf {
			t.Errorf("entry %d after restart has leaf hash %x, want %x", a.Index, leaf, want)
		}
	}
	h.s.mustPost(testEvent("", 300))
}
