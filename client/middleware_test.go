package client_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/client"
	"github.com/accessledger/accessledger/client/ginmw"
	"github.com/accessledger/accessledger/event"
)

// actorFromHeader is the application's idea of who is calling.
func actorFromHeader(r *http.Request) event.Actor {
	return event.Actor{ID: r.Header.Get("X-User"), Type: event.ActorUser}
}

// app is a small application: its routes and what they answer.
func appMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "user") })
	mux.HandleFunc("POST /users", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	mux.HandleFunc("DELETE /admin/{what}", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusForbidden) })
	return mux
}

// appGin is the same application on gin, with middleware mw (gin applies
// middleware to the routes added after it).
func appGin(mw gin.HandlerFunc) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.Use(mw)
	e.GET("/users/:id", func(c *gin.Context) { c.String(200, "user") })
	e.POST("/users", func(c *gin.Context) { c.Status(http.StatusCreated) })
	e.DELETE("/admin/:what", func(c *gin.Context) { c.String(http.StatusForbidden, "no") })
	return e
}

// callApp makes the three requests of the test.
func callApp(t *testing.T, base string) {
	t.Helper()
	for _, r := range []struct{ method, path, user string }{
		{"GET", "/users/42", "alice"},
		{"POST", "/users", "bob"},
		{"DELETE", "/admin/everything", ""},
	} {
		req, _ := http.NewRequest(r.method, base+r.path, nil)
		if r.user != "" {
			req.Header.Set("X-User", r.user)
		}
		req.Header.Set("User-Agent", "test-agent/1")
		req.Header.Set("X-Request-Id", "req-"+r.path)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}

func TestMiddlewareRecordsRequests(t *testing.T) {
	for _, tc := range []struct {
		name   string
		routes []string
		serve  func(rc client.RecorderConfig) http.Handler
	}{
		{"net/http", []string{"GET /users/{id}", "POST /users", "DELETE /admin/{what}"}, func(rc client.RecorderConfig) http.Handler {
			mw, err := client.Middleware(rc)
			if err != nil {
				t.Fatal(err)
			}
			return mw(appMux())
		}},
		{"gin", []string{"/users/:id", "/users", "/admin/:what"}, func(rc client.RecorderConfig) http.Handler {
			mw, err := ginmw.Middleware(rc)
			if err != nil {
				t.Fatal(err)
			}
			return appGin(mw)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTestLog(t, nil, nil)
			s := newSubmitter(t, tl.srv.URL, tl.token, nil)
			app := httptest.NewServer(tc.serve(client.RecorderConfig{Submitter: s, Service: "shop", Actor: actorFromHeader}))
			defer app.Close()
			callApp(t, app.URL)
			if err := s.Flush(bg); err != nil {
				t.Fatal(err)
			}
			got := tl.entries(t)
			if len(got) != 3 {
				t.Fatalf("%d events in the log, want 3", len(got))
			}
			want := []struct{ actor, action, outcome, reason string }{
				{"alice", "read", "success", ""},
				{"bob", "create", "success", ""},
				{"anonymous", "delete", "failure", "http_403"},
			}
			for i, lf := range got {
				ev := lf.Body
				w := want[i]
				if ev.Service != "shop" || ev.Actor.ID != w.actor || ev.Action != w.action || ev.Outcome != w.outcome || ev.Reason != w.reason ||
					ev.Resource == nil || ev.Resource.Type != "http_route" || ev.Resource.ID != tc.routes[i] ||
					ev.Source.IP.String() != "127.0.0.1" || ev.Source.UserAgent != "test-agent/1" || ev.RequestID == "" || ev.ID == "" {
					t.Errorf("event %d = %+v, want %+v on route %s", i, ev, w, tc.routes[i])
				}
			}
		})
	}
}

// TestMiddlewareWhenLogUnreachable: with a log that never answers, the
// application still answers every request; events are dropped once the
// buffer is full, and counted. A middleware that waited for the log would
// hold a request until the submitter's own request timed out (30 s): each
// request here must answer within 10 s. (Latency itself is not compared:
// on a loaded machine a few slow requests say nothing about the
// middleware.)
func TestMiddlewareWhenLogUnreachable(t *testing.T) {
	hang := make(chan struct{})
	var once sync.Once
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer stuck.Close()
	defer once.Do(func() { close(hang) })
	s := newSubmitter(t, stuck.URL, "key", func(c *client.SubmitterConfig) { c.BufferSize = 50; c.BatchSize = 10 })
	mw, err := client.Middleware(client.RecorderConfig{Submitter: s, Service: "shop", Actor: actorFromHeader})
	if err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(mw(appMux()))
	defer app.Close()
	hc := &http.Client{Timeout: 10 * time.Second}
	for i := range 300 {
		resp, err := hc.Get(app.URL + "/users/1")
		if err != nil {
			t.Fatalf("request %d with the log unreachable: %v (the application waited for the log)", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d with the log unreachable: status %d, want 200", i, resp.StatusCode)
		}
	}
	if st := s.Stats(); st.Dropped == 0 || st.Submitted > 60+10 {
		t.Errorf("Stats() = %+v, want drops once the buffer of 50 is full", st)
	}
	once.Do(func() { close(hang) })
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	s.Close(ctx)
}

// TestMiddlewareRecordsWhatCallersChoose: a caller chooses its path, user
// agent and request id. Each of these was copied into the event as sent,
// the log refused the event, and the request went unrecorded: an X-Request-Id
// of 200 bytes, a tab in the user agent or the request id, an unmatched
// path of 600 bytes, or with a newline or NUL in it. A handler that
// panics is recorded too (gin's was not).
func TestMiddlewareRecordsWhatCallersChoose(t *testing.T) {
	panicky := func(mux *http.ServeMux) *http.ServeMux {
		mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
		return mux
	}
	for _, tc := range []struct {
		name  string
		serve func(rc client.RecorderConfig) http.Handler
	}{
		{"net/http", func(rc client.RecorderConfig) http.Handler {
			mw, err := client.Middleware(rc)
			if err != nil {
				t.Fatal(err)
			}
			return mw(panicky(appMux()))
		}},
		{"gin", func(rc client.RecorderConfig) http.Handler {
			mw, err := ginmw.Middleware(rc)
			if err != nil {
				t.Fatal(err)
			}
			gin.SetMode(gin.ReleaseMode)
			e := gin.New()
			e.Use(gin.CustomRecovery(func(c *gin.Context, _ any) { c.AbortWithStatus(http.StatusInternalServerError) }), mw)
			e.GET("/users/:id", func(c *gin.Context) { c.String(200, "user") })
			e.GET("/panic", func(*gin.Context) { panic("boom") })
			return e
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTestLog(t, nil, nil)
			var rejected atomic.Int32
			s := newSubmitter(t, tl.srv.URL, tl.token, func(c *client.SubmitterConfig) {
				c.OnRejected = func(ev event.Event, err error) { rejected.Add(1); t.Logf("rejected: %v", err) }
			})
			// With the paths of unmatched requests recorded, to check
			// that they are fitted to the log's limits.
			app := httptest.NewServer(tc.serve(client.RecorderConfig{Submitter: s, Service: "shop", RecordRawPaths: true}))
			defer app.Close()
			for _, r := range []struct{ path, ua, id string }{
				{"/users/1", "agent", strings.Repeat("r", 200)},
				{"/users/2", "agent\twith a tab", "id"},
				{"/users/3", "agent", "id\twith a tab"},
				{"/" + strings.Repeat("a", 600), "agent", "id"},
				{"/x%0Ay%00z", "agent", "id"},
				{"/panic", "agent", "id"},
			} {
				req, _ := http.NewRequest("GET", app.URL+r.path, nil)
				req.Header.Set("User-Agent", r.ua)
				req.Header.Set("X-Request-Id", r.id)
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
				}
			}
			if err := s.Flush(bg); err != nil {
				t.Fatal(err)
			}
			got := tl.entries(t)
			if len(got) != 6 || rejected.Load() != 0 {
				t.Fatalf("%d events in the log, %d rejected; want all 6 requests recorded", len(got), rejected.Load())
			}
			if last := got[5].Body; last.Reason != "http_500" {
				t.Errorf("the panicking request was recorded as %+v, want http_500", last)
			}
		})
	}
}

// TestMiddlewareKeepsStreaming: behind the middleware a handler still
// finds http.Flusher and http.Hijacker on its writer (server-sent events,
// WebSockets); the middleware offered neither.
func TestMiddlewareKeepsStreaming(t *testing.T) {
	tl := newTestLog(t, nil, nil)
	s := newSubmitter(t, tl.srv.URL, tl.token, nil)
	mw, err := client.Middleware(client.RecorderConfig{Submitter: s, Service: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, flusher := w.(http.Flusher)
		_, hijacker := w.(http.Hijacker)
		fmt.Fprintf(w, "%v %v", flusher, hijacker)
		w.(http.Flusher).Flush()
	})))
	defer app.Close()
	resp, err := http.Get(app.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "true true" {
		t.Errorf("the handler saw Flusher, Hijacker = %s, want true true", body)
	}
}
