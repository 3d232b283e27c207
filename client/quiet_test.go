package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessledger/accessledger/client"
)

// TestFlushReportsDropsAtClose: a Flush waiting when Close gives up
// returns an error, for what was buffered before it was dropped. It
// returned nil, as though every event had been answered.
func TestFlushReportsDropsAtClose(t *testing.T) {
	srv := hangingServer(t)
	s := newSubmitter(t, srv.URL, "k", nil)
	for i := range 5 {
		if err := s.Submit(bg, testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	flushed := make(chan error, 1)
	go func() { flushed <- s.Flush(bg) }()
	time.Sleep(100 * time.Millisecond) // the batch is in flight
	ctx, cancel := context.WithTimeout(bg, 200*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close() = %v, want DeadlineExceeded", err)
	}
	if err := <-flushed; !errors.Is(err, client.ErrDropped) {
		t.Errorf("Flush() = %v once Close dropped the 5 events before it (Stats %+v), want ErrDropped", err, s.Stats())
	}
	if st := s.Stats(); st.Dropped != 5 {
		t.Errorf("Stats() = %+v, want 5 dropped", st)
	}
}

// TestFlushAfterAnsweredIsNil: Flush still returns nil when everything
// before it was answered.
func TestFlushAfterAnsweredIsNil(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(answerOK))
	defer srv.Close()
	s := newSubmitter(t, srv.URL, "k", nil)
	for i := range 5 {
		s.Submit(bg, testEvent(i))
	}
	if err := s.Flush(bg); err != nil {
		t.Errorf("Flush() = %v, want nil", err)
	}
	if err := s.Close(bg); err != nil {
		t.Errorf("Close() = %v", err)
	}
}

// TestTrySubmitLogsDrops: TrySubmit dropping events during an outage says
// so, once in a while, with the count; it said nothing.
func TestTrySubmitLogsDrops(t *testing.T) {
	srv := hangingServer(t)
	logs := &logRecords{}
	s := newSubmitter(t, srv.URL, "k", func(c *client.SubmitterConfig) {
		c.BufferSize, c.BatchSize = 10, 5
		c.Logger = slog.New(logs)
	})
	dropped := 0
	for i := range 1000 {
		if errors.Is(s.TrySubmit(testEvent(i)), client.ErrBufferFull) {
			dropped++
		}
	}
	if dropped == 0 {
		t.Fatal("nothing dropped")
	}
	if n := logs.count(slog.LevelWarn, "dropping events"); n != 1 {
		t.Errorf("%d warnings for %d events dropped within a moment, want 1", n, dropped)
	}
	var total uint64
	logs.mu.Lock()
	for _, r := range logs.records {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "dropped_total" {
				total = a.Value.Uint64()
			}
			return true
		})
	}
	logs.mu.Unlock()
	if total == 0 {
		t.Errorf("the warning does not give the count of events dropped (dropped_total)")
	}
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	s.Close(ctx)
}

// TestSubmitterUnreadableAnswerThrottled: an answer it cannot read is
// logged at warn level at the first attempts and then now and again, as
// an unreachable log is; it was a warning at every attempt.
func TestSubmitterUnreadableAnswerThrottled(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 12 {
			io.ReadAll(r.Body)
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, "<html>captive portal</html>")
			return
		}
		answerOK(w, r)
	}))
	defer srv.Close()
	logs := &logRecords{}
	s := newSubmitter(t, srv.URL, "k", func(c *client.SubmitterConfig) { c.Logger = slog.New(logs) })
	ctx, cancel := context.WithTimeout(bg, 20*time.Second)
	defer cancel()
	if rs, err := s.Send(ctx, testEvent(1)); err != nil || rs[0].Err != nil {
		t.Fatalf("Send() = %+v, %v", rs, err)
	}
	if w, all := logs.count(slog.LevelWarn, "unreadable answer"), logs.count(slog.LevelDebug, "unreadable answer"); w != 4 || all != 12 {
		t.Errorf("12 unreadable answers: %d warnings of %d records, want 4 (attempts 1, 2, 3, 11)", w, all)
	}
}

// hangingServer is a log that never answers: each request waits until
// its client gives up or the test ends.
func hangingServer(t *testing.T) *httptest.Server {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hang) }) // first: lets the handlers return
	return srv
}
