package client_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessledger/accessledger/client"
	"github.com/accessledger/accessledger/event"
)

// testEvent is event n, marked with attribute n so that the test can
// count it in the log. It has no id: the Submitter gives it one.
func testEvent(n int) event.Event {
	return event.Event{
		Time:       time.Date(2026, 11, 24, 10, 0, 0, n, time.UTC),
		Service:    "client-test",
		Actor:      event.Actor{ID: fmt.Sprintf("user-%d", n%10)},
		Source:     event.Source{IP: netip.MustParseAddr("203.0.113.7")},
		Action:     "read",
		Category:   event.CategoryDataAccess,
		Outcome:    event.OutcomeSuccess,
		Attributes: map[string]string{"n": strconv.Itoa(n)},
	}
}

// faults answers the first POSTs of a log badly, in turn: 503 with
// Retry-After, a connection dropped before the request reaches the log, a
// connection dropped after the log appended the events (the answer is
// lost), 429, and a normal answer.
type faults struct {
	n, until atomic.Int64
	kinds    [5]atomic.Int64
}

func (f *faults) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			h.ServeHTTP(w, r)
			return
		}
		i := f.n.Add(1) - 1
		if i >= f.until.Load() {
			h.ServeHTTP(w, r)
			return
		}
		k := i % 5
		f.kinds[k].Add(1)
		switch k {
		case 0:
			if i < 10 {
				w.Header().Set("Retry-After", "1")
			}
			http.Error(w, `{"error":"busy"}`, http.StatusServiceUnavailable)
		case 1:
			drop(w)
		case 2:
			h.ServeHTTP(httptest.NewRecorder(), r) // appended, answer lost
			drop(w)
		case 3:
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"error":"slow down"}`, http.StatusTooManyRequests)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.(*net.TCPConn).SetLinger(0)
	conn.Close()
}

func newSubmitter(t testing.TB, url, token string, adjust func(*client.SubmitterConfig)) *client.Submitter {
	t.Helper()
	cfg := client.SubmitterConfig{URL: url, APIKey: token, BatchSize: 50, FlushInterval: 5 * time.Millisecond,
		MinBackoff: 2 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	if adjust != nil {
		adjust(&cfg)
	}
	s, err := client.NewSubmitter(cfg)
	if err != nil {
		t.Fatalf("client.NewSubmitter() = %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(bg, 5*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

// countMarks counts each attribute n in the log.
func countMarks(t *testing.T, tl *testLog) map[string]int {
	counts := map[string]int{}
	for _, lf := range tl.entries(t) {
		counts[lf.Body.Attributes["n"]]++
	}
	return counts
}

// TestSubmitterExactlyOnce: against a log that answers 503 (with
// Retry-After) and 429, and drops connections before and after appending,
// every event submitted lands in the log exactly once.
// TestSubmitterKeepsEventsOnA401: a log that refuses the key (revoked,
// expired, past its rotation's grace) is refusing the key, not the
// events: they are kept and sent once it takes it again. Every buffered
// and later event was counted rejected and dropped.
func TestSubmitterKeepsEventsOnA401(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	tl := newTestLog(t, nil, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && refuse.Load() {
				http.Error(w, `{"error":"API key \"sub\" was revoked"}`, http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	s := newSubmitter(t, tl.srv.URL, tl.token, nil)
	for i := range 20 {
		if err := s.Submit(bg, testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // a few refused attempts
	if st := s.Stats(); st.Rejected != 0 {
		t.Fatalf("Stats() while the key is refused = %+v, want nothing rejected", st)
	}
	refuse.Store(false)
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	if st := s.Stats(); st.Acknowledged != 20 || st.Rejected != 0 || st.Retries == 0 {
		t.Errorf("Stats() = %+v, want 20 acknowledged after retries, none rejected", st)
	}
}

// TestSubmitterKeyFromAFile: a key read from a file with its newline is
// used without it; one with spaces inside is refused. With the newline,
// every request failed in the HTTP client, reported as a log it could not
// reach, and Close dropped everything.
func TestSubmitterKeyFromAFile(t *testing.T) {
	tl := newTestLog(t, nil, nil)
	s := newSubmitter(t, tl.srv.URL, tl.token+"\n", nil)
	if err := s.Submit(bg, testEvent(1)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil || s.Stats().Acknowledged != 1 {
		t.Fatalf("Flush() = %v, Stats() = %+v; want the event acknowledged", err, s.Stats())
	}
	if _, err := client.NewSubmitter(client.SubmitterConfig{URL: tl.srv.URL, APIKey: "al_abc def"}); err == nil || !strings.Contains(err.Error(), "not an API key") {
		t.Errorf("NewSubmitter(key with a space) = %v, want an error", err)
	}
}

func TestSubmitterExactlyOnce(t *testing.T) {
	var f faults
	f.until.Store(60)
	tl := newTestLog(t, nil, f.wrap)
	s := newSubmitter(t, tl.srv.URL, tl.token, nil)
	const n = 3000
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				if err := s.Submit(bg, testEvent(i)); err != nil {
					t.Errorf("Submit(%d) = %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(bg, 60*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	counts := countMarks(t, tl)
	for i := range n {
		if c := counts[strconv.Itoa(i)]; c != 1 {
			t.Errorf("event %d is in the log %d times, want once", i, c)
		}
	}
	st := s.Stats()
	if st.Submitted != n || st.Acknowledged != n || st.Rejected != 0 || st.Dropped != 0 || st.Retries == 0 || st.Duplicates == 0 {
		t.Errorf("Stats() = %+v, want %d submitted and acknowledged, retries and duplicates (answers lost after appending)", st, n)
	}
	for k := range f.kinds {
		if f.kinds[k].Load() == 0 {
			t.Errorf("fault %d never happened", k)
		}
	}
}

// TestSubmitterRejects: an invalid event is reported, the valid events of
// its batch land.
func TestSubmitterRejects(t *testing.T) {
	tl := newTestLog(t, nil, nil)
	var mu sync.Mutex
	var rejected []event.Event
	s := newSubmitter(t, tl.srv.URL, tl.token, func(c *client.SubmitterConfig) {
		c.OnRejected = func(ev event.Event, err error) {
			mu.Lock()
			defer mu.Unlock()
			if !errors.Is(err, client.ErrRejected) {
				t.Errorf("OnRejected(%v), want ErrRejected", err)
			}
			rejected = append(rejected, ev)
		}
	})
	for i := range 10 {
		ev := testEvent(i)
		if i == 4 {
			ev.Category = "nonsense"
		}
		s.Submit(bg, ev)
	}
	if err := s.Flush(bg); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rejected) != 1 || rejected[0].Attributes["n"] != "4" {
		t.Errorf("rejected = %v, want event 4", rejected)
	}
	if counts := countMarks(t, tl); len(counts) != 9 || counts["4"] != 0 {
		t.Errorf("log holds %v, want the 9 valid events", counts)
	}
	// Send returns the indexes, and a rejection per event.
	rs, err := s.Send(bg, testEvent(100), event.Event{Service: "x"})
	if err != nil || len(rs) != 2 || rs[0].Err != nil || rs[0].Index != 9 || !errors.Is(rs[1].Err, client.ErrRejected) {
		t.Errorf("Send() = %+v, %v; want index 9 and a rejection", rs, err)
	}
	// The same event (same id) sent again is a duplicate.
	ev := testEvent(200)
	ev.ID = "fixed-id"
	if rs, err := s.Send(bg, ev, ev); err != nil || rs[0].Err != nil || rs[0].Index != rs[1].Index {
		t.Errorf("Send(same event twice) = %+v, %v", rs, err)
	}
}

// TestSubmitterCloseGivesUp: with the log unreachable, Close returns when
// its context ends, counting the events it could not send. The bound on
// how long Close takes is generous for a loaded machine: a Close that
// ignored its context would retry without end, or wait out a request
// (the HTTP client's 30 s timeout).
func TestSubmitterCloseGivesUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s := newSubmitter(t, "http://"+addr, "key", func(c *client.SubmitterConfig) { c.BufferSize = 100 })
	for i := range 150 {
		s.TrySubmit(testEvent(i))
	}
	ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close() = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Close() took %s, want about its context's 300ms", d)
	}
	st := s.Stats()
	if st.Dropped < 50 || st.Acknowledged != 0 || st.Dropped+st.Submitted < 150 {
		t.Errorf("Stats() = %+v, want every event dropped", st)
	}
	if err := s.Submit(bg, testEvent(1)); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Submit after Close = %v, want ErrClosed", err)
	}
}

// TestNewEventIDTimeOrdered: ids are "c-" and a UUIDv7 in hex (version 7,
// RFC 9562 variant, the current Unix millisecond), distinct, and an id made
// later sorts after one made earlier, so the server's idempotency records
// are written in order.
func TestNewEventIDTimeOrdered(t *testing.T) {
	before := time.Now().UnixMilli()
	a := client.NewEventID()
	time.Sleep(2 * time.Millisecond)
	b := client.NewEventID()
	after := time.Now().UnixMilli()
	for _, id := range []string{a, b} {
		raw, err := hex.DecodeString(strings.TrimPrefix(id, "c-"))
		if !strings.HasPrefix(id, "c-") || err != nil || len(raw) != 16 {
			t.Fatalf("NewEventID() = %q, want c- and 32 hex digits", id)
		}
		if raw[6]>>4 != 7 || raw[8]>>6 != 2 {
			t.Errorf("NewEventID() = %q: version %d, variant %b; want a UUIDv7 (7, 10)", id, raw[6]>>4, raw[8]>>6)
		}
		ms := int64(raw[0])<<40 | int64(raw[1])<<32 | int64(raw[2])<<24 | int64(raw[3])<<16 | int64(raw[4])<<8 | int64(raw[5])
		if ms < before || ms > after {
			t.Errorf("NewEventID() = %q: timestamp %d, want between %d and %d", id, ms, before, after)
		}
	}
	if a >= b {
		t.Errorf("NewEventID() = %q, then %q 2ms later: want the later one to sort after", a, b)
	}
	seen := map[string]bool{}
	for range 10000 {
		id := client.NewEventID()
		if seen[id] {
			t.Fatalf("NewEventID() repeated %q", id)
		}
		seen[id] = true
	}
}
