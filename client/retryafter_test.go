package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/accessledger/accessledger/client"
)

// TestSubmitterRetryAfterJitter: clients pushed back with Retry-After: 1
// come back no sooner than a second later, and not all at the same
// instant. The wait was max(Retry-After, backoff), exactly a second for
// every client: a herd returning together to a log that had just said it
// was overloaded.
func TestSubmitterRetryAfterJitter(t *testing.T) {
	const clients = 8
	gaps := make([]time.Duration, clients)
	var wg sync.WaitGroup
	for i := range clients {
		var mu sync.Mutex
		var first time.Time
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			if first.IsZero() {
				first = time.Now()
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte(`{"error":"the log is busy: its append queue is full; retry after the number of seconds in Retry-After"}`))
				return
			}
			if gaps[i] == 0 {
				gaps[i] = time.Since(first)
			}
			answerOK(w, r)
		}))
		defer srv.Close()
		// The backoff bound is a second, as large as Retry-After: the
		// jitter may spread the clients over a second.
		s := newSubmitter(t, srv.URL, "k", func(c *client.SubmitterConfig) { c.MinBackoff, c.MaxBackoff = time.Second, time.Second })
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(bg, 20*time.Second)
			defer cancel()
			if rs, err := s.Send(ctx, testEvent(i)); err != nil || rs[0].Err != nil {
				t.Errorf("Send() = %+v, %v", rs, err)
			}
		})
	}
	wg.Wait()
	t.Logf("gaps: %v", gaps)
	for i, g := range gaps {
		if g < time.Second || g > 5*time.Second {
			t.Errorf("client %d came back after %s, want at least 1s (Retry-After) and about 2s at most (plus its jitter)", i, g)
		}
	}
	if spread := slices.Max(gaps) - slices.Min(gaps); spread < 100*time.Millisecond {
		t.Errorf("the %d clients came back within %s of each other after Retry-After: 1, want them spread over up to a second", clients, spread)
	}
}
