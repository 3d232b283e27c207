package api_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/accessledger/accessledger/ledger"
)

// TestPushback fills a small append queue that the sequencer drains only
// every 2 s: the requests that do not fit get 503 with Retry-After, and
// every request answered 201 is in the log. Each request carries two
// events into a queue (and batch) of five, so the queue holds four and
// refuses more without reaching the batch size that would commit early.
func TestPushback(t *testing.T) {
	t.Parallel() // mostly waiting for the batch age
	const queue, clients = 5, 12
	ts := newTestServer(t, withLedger(func(c *ledger.Config) {
		c.QueueSize = queue
		c.MaxBatchSize = queue
		c.MaxBatchAge = 2 * time.Second
	}))

	bodies := make([][]byte, clients)
	for i := range bodies {
		bodies[i] = batchJSON(events(t, 2*i, 2)...)
	}
	rs := ts.postConcurrently(t, bodies)

	created := map[uint64]int{} // index → client
	pushed := 0
	for i, r := range rs {
		switch r.status {
		case http.StatusCreated:
			for k, res := range batchResults(t, r) {
				if j, dup := created[*res.Index]; dup {
					t.Errorf("clients %d and %d both got index %d", j/2, i, *res.Index)
				}
				created[*res.Index] = 2*i + k // the event's number
			}
		case http.StatusServiceUnavailable:
			pushed++
			wantError(t, "POST /v1/events to a full queue", r, http.StatusServiceUnavailable)
			if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
				t.Errorf("POST /v1/events to a full queue: Retry-After = %q, want a positive number of seconds", r.header.Get("Retry-After"))
			}
		default:
			t.Errorf("POST %d = %v, want 201 or 503", i, r)
		}
	}
	if pushed == 0 || len(created) == 0 || len(created) != 2*(clients-pushed) {
		t.Errorf("%d concurrent POSTs to a queue of %d = %d events created, %d requests pushed back; want some of each", clients, queue, len(created), pushed)
	}
	// Nothing acknowledged was lost, and nothing else was written.
	if got := size(ts.l); got != uint64(len(created)) {
		t.Errorf("Size() = %d, want %d (the acknowledged events)", got, len(created))
	}
	for index, n := range created {
		body := leafBody(t, ts.getEntry(t, index).Entry)
		actor, _ := body["actor"].(map[string]any)
		if want := "user-" + strconv.Itoa(n); actor["id"] != want {
			t.Errorf("entry %d actor.id = %v, want %s (event %d)", index, actor["id"], want, n)
		}
	}
}

// TestPostBatchLargerThanQueue checks that a batch that can never be
// appended (more events than the ledger's batch size and queue) is refused
// as too large, not as a pushback that invites the client to retry
// forever.
func TestPostBatchLargerThanQueue(t *testing.T) {
	ts := newTestServer(t, withLedger(func(c *ledger.Config) { c.QueueSize, c.MaxBatchSize = 4, 4 }))
	r := ts.post(t, "application/json", batchJSON(events(t, 0, 5)...))
	wantError(t, "POST 5 events to a ledger with a queue of 4", r, http.StatusRequestEntityTooLarge)
	if ra := r.header.Get("Retry-After"); ra != "" {
		t.Errorf("POST 5 events to a ledger with a queue of 4: Retry-After = %q, want none (retrying cannot help)", ra)
	}
	if got := size(ts.l); got != 0 {
		t.Errorf("Size() = %d, want 0", got)
	}
	// A batch that fits is accepted.
	if r := ts.post(t, "application/json", batchJSON(events(t, 0, 4)...)); r.status != http.StatusCreated {
		t.Errorf("POST 4 events to a ledger with a queue of 4 = %v, want 201", r)
	}
}
