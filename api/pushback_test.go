package api_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/accessledger/accessledger/api"
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

// padded returns a valid event body of exactly n bytes: an event followed
// by spaces.
func padded(t *testing.T, n int, ev []byte) []byte {
	t.Helper()
	if len(ev) > n {
		t.Fatalf("event of %d bytes is longer than %d", len(ev), n)
	}
	return append(ev, bytes.Repeat([]byte(" "), n-len(ev))...)
}

// TestInflightBodyBytes checks that the bytes of request bodies being read
// at once are bounded: while one slow client holds most of the budget, a
// request whose body does not fit in the rest (by Content-Length, or the
// body limit when the length is unknown) is answered 503 with Retry-After
// within about a second, a small one still goes through, and once the slow
// request is done the large one fits again.
func TestInflightBodyBytes(t *testing.T) {
	const limit, budget = 32 << 10, 48 << 10
	ts := newTestServer(t, withAPI(func(c *api.Config) {
		c.MaxBodyBytes = limit
		c.MaxInflightBodyBytes = budget
	}))

	// A slow client: it declares 30,000 bytes and sends 100. It has a
	// key of its own: the budget is shared among keys, and what is
	// tested here is the whole of it (one key's share is
	// TestOneKeyHoldsAQuarterOfTheBodyBudget's).
	slow := padded(t, 30_000, eventJSON(t, 1))
	conn := startPost(t, ts, ts.admin(), len(slow))
	if _, err := conn.Write(slow[:100]); err != nil {
		t.Fatalf("writing the start of the slow body: %v", err)
	}

	large := padded(t, 20_000, eventJSON(t, 2))
	var busy response
	for deadline := time.Now().Add(10 * time.Second); ; {
		start := time.Now()
		r := ts.post(t, "application/json", large)
		if r.status == http.StatusServiceUnavailable {
			busy = r
			// It waits bodyWait (1s) for room; without that bound it
			// would wait for the slow request, which never ends, until
			// the client gives up (30s). 10s is generous for a loaded
			// machine.
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("POST of 20,000 bytes while 30,000 of %d are held = 503 after %s, want it within about a second", budget, took)
			}
			break
		}
		if r.status != http.StatusCreated {
			t.Fatalf("POST of 20,000 bytes = %v, want 201 (before the slow request holds its share) or 503", r)
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST of 20,000 bytes while 30,000 of %d are held = %v, want 503 within 10s", budget, r)
		}
	}
	eb := wantError(t, "POST of 20,000 bytes while 30,000 are held", busy, http.StatusServiceUnavailable)
	if s, err := strconv.Atoi(busy.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("POST of 20,000 bytes while 30,000 are held: Retry-After = %q, want a positive number of seconds", busy.header.Get("Retry-After"))
	}
	if !strings.Contains(eb.Error, "busy") {
		t.Errorf("POST of 20,000 bytes while 30,000 are held: error = %q, want it to say the server is busy", eb.Error)
	}

	// A body of unknown length reserves the whole body limit.
	req, err := http.NewRequestWithContext(bg, http.MethodPost, ts.srv.URL+"/v1/events", io.MultiReader(bytes.NewReader(eventJSON(t, 3))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ts.submitter())
	req.Header.Set("Content-Type", "application/json")
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("POST chunked: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("POST of unknown length while 30,000 of %d are held = %d, want 503 (it reserves the %d-byte body limit)", budget, resp.StatusCode, limit)
	}
	// A small request fits beside the slow one.
	if r := ts.post(t, "application/json", eventJSON(t, 4)); r.status != http.StatusCreated {
		t.Errorf("POST of %d bytes while 30,000 of %d are held = %v, want 201", len(eventJSON(t, 4)), budget, r)
	}
	// A declared length above the body limit is refused at once.
	if r := ts.post(t, "application/json", padded(t, limit+1, eventJSON(t, 5))); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("POST of %d bytes = %v, want 413", limit+1, r)
	}

	// The slow client finishes: its event is appended, and the budget is
	// free again.
	if _, err := conn.Write(slow[100:]); err != nil {
		t.Fatalf("writing the rest of the slow body: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	sr, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the slow request's answer: %v", err)
	}
	sr.Body.Close()
	if sr.StatusCode != http.StatusCreated {
		t.Errorf("slow POST of 30,000 bytes = %d, want 201", sr.StatusCode)
	}
	if r := ts.post(t, "application/json", large); r.status != http.StatusCreated && r.status != http.StatusOK {
		t.Errorf("POST of 20,000 bytes after the slow request = %v, want 201", r)
	}
}
