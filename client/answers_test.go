package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessledger/accessledger/client"
	"github.com/accessledger/accessledger/event"
)

// answerOK answers a batch as the log does: 201 and one result per event.
func answerOK(w http.ResponseWriter, r *http.Request) {
	var b struct{ Events []json.RawMessage }
	body, _ := io.ReadAll(r.Body)
	json.Unmarshal(body, &b)
	var sb strings.Builder
	sb.WriteString(`{"results":[`)
	for i := range b.Events {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"index":%d,"leaf_hash":"AAAA"}`, i)
	}
	sb.WriteString("]}")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, sb.String())
}

// logRecords is a slog.Handler that keeps what it is given.
type logRecords struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecords) WithGroup(string) slog.Handler      { return h }

// count counts the records at level lvl or above whose message has msg.
func (h *logRecords) count(lvl slog.Level, msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.records {
		if r.Level >= lvl && strings.Contains(r.Message, msg) {
			n++
		}
	}
	return n
}

// TestSubmitterRetriesAnswersNotFromTheLog: an answer that is not the
// log's own refusal is retried and logged, never taken as a rejection.
// Every status but 2xx, 401, 413, 429 and 5xx rejected the whole batch
// for good: an HTML 404 of an ingress's default backend during a deploy
// threw away every buffered event, and so did the log's own 400 asking
// to send the request again.
func TestSubmitterRetriesAnswersNotFromTheLog(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      int
		contentType string
		body        string
	}{
		{"ingress HTML 404", 404, "text/html", "<html><body>default backend - 404</body></html>"},
		{"log's JSON 404 (wrong URL prefix)", 404, "application/json; charset=utf-8", `{"error":"no such endpoint; see the HTTP API in the README"}`},
		{"proxy 403 page", 403, "text/html", "<h1>Forbidden</h1>"},
		{"gateway JSON 403", 403, "application/json", `{"message":"Forbidden"}`},
		{"405", 405, "text/plain; charset=utf-8", "Method Not Allowed"},
		{"421", 421, "text/plain", "Misdirected Request"},
		{"400 without a body", 400, "", ""},
		{"proxy 400 in JSON of its own", 400, "application/json", `{"error":"bad request","code":400}`},
		{"400 in JSON, labelled text", 400, "text/plain", `{"error":"invalid event; nothing was appended"}`},
		{"log's 400 to send again", 400, "application/json; charset=utf-8", `{"error":"reading the request body failed; send the request again"}`},
		{"409 without events", 409, "application/json", `{"error":"conflict"}`},
		{"501", 501, "text/plain", "Not Implemented"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					io.ReadAll(r.Body)
					if tc.contentType != "" {
						w.Header().Set("Content-Type", tc.contentType)
					}
					w.WriteHeader(tc.status)
					io.WriteString(w, tc.body)
					return
				}
				answerOK(w, r)
			}))
			defer srv.Close()
			logs := &logRecords{}
			var rejected atomic.Int64
			s := newSubmitter(t, srv.URL, "k", func(c *client.SubmitterConfig) {
				c.BatchSize = 100
				c.Logger = slog.New(logs)
				c.OnRejected = func(event.Event, error) { rejected.Add(1) }
			})
			for i := range 300 {
				if err := s.Submit(bg, testEvent(i)); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(bg, 20*time.Second)
			defer cancel()
			if err := s.Flush(ctx); err != nil {
				t.Fatalf("Flush() = %v", err)
			}
			if st := s.Stats(); st.Acknowledged != 300 || st.Rejected != 0 || rejected.Load() != 0 || st.Retries == 0 {
				t.Errorf("after a %d %q then 201s: Stats() = %+v, OnRejected %d times; want all 300 acknowledged after a retry, none rejected",
					tc.status, tc.body, st, rejected.Load())
			}
			if logs.count(slog.LevelError, "unexpected answer") == 0 {
				t.Errorf("the unexpected answer was not logged at error level")
			}
			// Send too.
			rs, err := s.Send(ctx, testEvent(1000))
			if err != nil || len(rs) != 1 || rs[0].Err != nil {
				t.Errorf("Send() = %+v, %v", rs, err)
			}
		})
	}
}

// TestSubmitterRejectsTheLogsRefusals: what the log itself refuses is
// still rejected, once, without a retry: an invalid event, an id reused
// with other content, a key without the submitter role.
func TestSubmitterRejectsTheLogsRefusals(t *testing.T) {
	tl := newTestLog(t, nil, nil)
	s := newSubmitter(t, tl.srv.URL, tl.token, nil)
	ctx, cancel := context.WithTimeout(bg, 20*time.Second)
	defer cancel()

	// The real log: a batch of one invalid event is a JSON 400.
	bad := testEvent(1)
	bad.Category = "nonsense"
	rs, err := s.Send(ctx, bad)
	var re *client.RejectedError
	if err != nil || len(rs) != 1 || !errors.As(rs[0].Err, &re) || re.Status != http.StatusBadRequest || !strings.Contains(re.Reason, "category") {
		t.Errorf("Send(invalid event) = %+v, %v; want a 400 rejection naming the category", rs, err)
	}
	// An id reused with other content: a JSON 409.
	a := testEvent(2)
	a.ID = "fixed-1"
	if _, err := s.Send(ctx, a); err != nil {
		t.Fatal(err)
	}
	a.Action = "update"
	rs, err = s.Send(ctx, a)
	if err != nil || len(rs) != 1 || !errors.As(rs[0].Err, &re) || re.Status != http.StatusConflict {
		t.Errorf("Send(id reused) = %+v, %v; want a 409 rejection", rs, err)
	}
	if st := s.Stats(); st.Retries != 0 || st.Rejected != 2 {
		t.Errorf("Stats() = %+v, want 2 rejected, no retry", st)
	}

	// The log's answers, as it sends them, from a fake.
	for _, tc := range []struct {
		status int
		body   string
	}{
		{400, `{"error":"2 of 2 events are invalid; nothing was appended","events":[{"index":0,"field":"outcome","reason":"must be success or failure"},{"index":1,"field":"action","reason":"is required"}]}`},
		{400, `{"error":"malformed batch; send {\"events\":[event, ...]}"}`},
		{403, `{"error":"API key \"app\" may not use this endpoint: it needs the submitter role"}`},
		{409, `{"error":"no event could be appended","events":[{"index":0,"field":"id","reason":"already used"},{"index":1,"field":"id","reason":"already used"}]}`},
		{415, `{"error":"Content-Type must be application/json or application/x-ndjson"}`},
	} {
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(tc.status)
			io.WriteString(w, tc.body)
		}))
		fs := newSubmitter(t, srv.URL, "k", nil)
		rs, err := fs.Send(ctx, testEvent(1), testEvent(2))
		if err != nil || len(rs) != 2 || !errors.As(rs[0].Err, &re) || re.Status != tc.status || !errors.Is(rs[1].Err, client.ErrRejected) || n.Load() != 1 {
			t.Errorf("the log answering %d %s: Send() = %+v, %v after %d requests; want both rejected at once", tc.status, tc.body, rs, err, n.Load())
		}
		srv.Close()
	}
}

// TestSubmitterRejectsAProxys413: a 413 is about the size, whoever sends
// it: a proxy in front of the log (nginx's client_max_body_size) that
// refuses one event refuses it again at every retry. The batch is split
// down to single events, and an event still refused is rejected rather
// than retried for ever, holding up every event after it.
func TestSubmitterRejectsAProxys413(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, "<html><body><h1>413 Request Entity Too Large</h1><hr>nginx</body></html>")
	}))
	defer srv.Close()
	var rejected atomic.Int64
	s := newSubmitter(t, srv.URL, "k", func(c *client.SubmitterConfig) {
		c.BatchSize = 4
		c.OnRejected = func(event.Event, error) { rejected.Add(1) }
	})
	for i := range 4 {
		if err := s.Submit(bg, testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush() = %v: the events were retried for ever", err)
	}
	if st := s.Stats(); st.Rejected != 4 || rejected.Load() != 4 {
		t.Errorf("Stats() = %+v, OnRejected %d times; want the 4 events rejected", st, rejected.Load())
	}
}

// TestRejectedStatusIsTheEvents: a batch the log refuses whole (an
// invalid event and an event reusing an id with other content, nothing
// left to append) gets one 409; each event's RejectedError.Status is
// still its own, 400 for the invalid one and 409 for the reused id, as
// the README says, from the statuses the log now gives per event. The
// invalid event's status was the batch's 409.
func TestRejectedStatusIsTheEvents(t *testing.T) {
	tl := newTestLog(t, nil, nil)
	s := newSubmitter(t, tl.srv.URL, tl.token, nil)
	a := testEvent(1)
	a.ID = "fixed-1"
	if _, err := s.Send(bg, a); err != nil {
		t.Fatal(err)
	}
	reused := a
	reused.Action = "update" // the same id, other content
	invalid := testEvent(2)
	invalid.Outcome = "bogus"
	rs, err := s.Send(bg, invalid, reused)
	if len(rs) != 2 {
		t.Fatalf("Send() = %+v, %v; want two results", rs, err)
	}
	for i, want := range []int{400, 409} {
		var re *client.RejectedError
		if !errors.As(rs[i].Err, &re) || re.Status != want {
			t.Errorf("event %d: %v, want rejected with status %d", i, rs[i].Err, want)
		}
		if re != nil && strings.Contains(re.Reason, "(: ") {
			t.Errorf("event %d: reason %q begins a reason without a field with \": \"", i, re.Reason)
		}
	}
}
