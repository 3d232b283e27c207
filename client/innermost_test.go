package client_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/client"
	"github.com/accessledger/accessledger/client/ginmw"
	"github.com/accessledger/accessledger/event"
)

// TestMiddlewareLearnsFromInnerHandlers: the actor and the route come
// from the handlers inside, however many middlewares derive requests in
// between. With an authentication middleware between the recorder and
// the mux, GET /patients/{ssn} was recorded as anonymous on the raw path:
// the recorder has the outer request, the mux set the pattern on the
// derived one and the user is in the derived one's context. gin
// applications keep the user in c.Keys, which RecorderConfig.Actor cannot
// read.
func TestMiddlewareLearnsFromInnerHandlers(t *testing.T) {
	type userKey struct{}
	ctxActor := func(r *http.Request) event.Actor {
		u, _ := r.Context().Value(userKey{}).(string)
		return event.Actor{ID: u, Type: event.ActorUser}
	}
	// withUser is authentication that puts the user in the context.
	withUser := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, r.Header.Get("X-User"))))
		})
	}
	// setActor is authentication that tells the recorder.
	setActor := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u := r.Header.Get("X-User"); u != "" {
				client.SetActor(r, event.Actor{ID: u, Type: event.ActorUser})
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, "someone else")))
		})
	}
	mux := func() *http.ServeMux {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /patients/{ssn}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
		mux.HandleFunc("GET /custom/", func(w http.ResponseWriter, r *http.Request) {
			client.SetRoute(r, "/custom/{rest...}")
			io.WriteString(w, "ok")
		})
		return mux
	}
	netHTTP := func(cfg client.RecorderConfig, wrap func(http.Handler) http.Handler) http.Handler {
		mw, err := client.Middleware(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return mw(wrap(mux()))
	}
	ginApp := func(auth gin.HandlerFunc, mw gin.HandlerFunc) http.Handler {
		gin.SetMode(gin.ReleaseMode)
		e := gin.New()
		e.Use(mw, auth)
		e.GET("/patients/:ssn", func(c *gin.Context) { c.String(200, "ok") })
		e.GET("/custom/*rest", func(c *gin.Context) {
			client.SetRoute(c.Request, "/custom/{rest...}")
			c.String(200, "ok")
		})
		return e
	}
	for _, tc := range []struct {
		name   string
		routes []string
		serve  func(s *client.Submitter) http.Handler
	}{
		{"net/http, actor from the context, RecordRoute", []string{"GET /patients/{ssn}", "/custom/{rest...}"}, func(s *client.Submitter) http.Handler {
			return netHTTP(client.RecorderConfig{Submitter: s, Service: "clinic", Actor: ctxActor}, func(h http.Handler) http.Handler {
				return withUser(client.RecordRoute(h))
			})
		}},
		{"net/http, SetActor, RecordRoute", []string{"GET /patients/{ssn}", "/custom/{rest...}"}, func(s *client.Submitter) http.Handler {
			return netHTTP(client.RecorderConfig{Submitter: s, Service: "clinic", Actor: ctxActor}, func(h http.Handler) http.Handler {
				return setActor(client.RecordRoute(h))
			})
		}},
		{"net/http, SetActor, no RecordRoute", []string{client.UnmatchedRoute, "/custom/{rest...}"}, func(s *client.Submitter) http.Handler {
			return netHTTP(client.RecorderConfig{Submitter: s, Service: "clinic"}, setActor)
		}},
		{"gin, ContextActor from c.Keys", []string{"/patients/:ssn", "/custom/{rest...}"}, func(s *client.Submitter) http.Handler {
			mw, err := ginmw.New(ginmw.Config{
				RecorderConfig: client.RecorderConfig{Submitter: s, Service: "clinic", Actor: ctxActor},
				ContextActor:   func(c *gin.Context) event.Actor { return event.Actor{ID: c.GetString("user"), Type: event.ActorUser} },
			})
			if err != nil {
				t.Fatal(err)
			}
			return ginApp(func(c *gin.Context) { c.Set("user", c.GetHeader("X-User")) }, mw)
		}},
		{"gin, SetActor", []string{"/patients/:ssn", "/custom/{rest...}"}, func(s *client.Submitter) http.Handler {
			mw, err := ginmw.Middleware(client.RecorderConfig{Submitter: s, Service: "clinic"})
			if err != nil {
				t.Fatal(err)
			}
			return ginApp(func(c *gin.Context) {
				client.SetActor(c.Request, event.Actor{ID: c.GetHeader("X-User"), Type: event.ActorUser})
			}, mw)
		}},
		{"gin, actor from the derived request's context", []string{"/patients/:ssn", "/custom/{rest...}"}, func(s *client.Submitter) http.Handler {
			mw, err := ginmw.Middleware(client.RecorderConfig{Submitter: s, Service: "clinic", Actor: ctxActor})
			if err != nil {
				t.Fatal(err)
			}
			return ginApp(func(c *gin.Context) {
				c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), userKey{}, c.GetHeader("X-User")))
			}, mw)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTestLog(t, nil, nil)
			s := newSubmitter(t, tl.srv.URL, tl.token, nil)
			app := httptest.NewServer(tc.serve(s))
			defer app.Close()
			for _, p := range []string{"/patients/123-45-6789", "/custom/a/b"} {
				req, _ := http.NewRequest("GET", app.URL+p, nil)
				req.Header.Set("X-User", "alice")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			if err := s.Flush(bg); err != nil {
				t.Fatal(err)
			}
			got := tl.entries(t)
			if len(got) != 2 {
				t.Fatalf("%d events, want 2", len(got))
			}
			for i, lf := range got {
				ev := lf.Body
				if ev.Actor.ID != "alice" || ev.Resource == nil || ev.Resource.ID != tc.routes[i] {
					t.Errorf("recorded actor %q on %+v, want alice on %q", ev.Actor.ID, ev.Resource, tc.routes[i])
				}
			}
		})
	}
	// Outside a recorded request, SetActor and SetRoute say so.
	r := httptest.NewRequest("GET", "/", nil)
	if client.SetActor(r, event.Actor{ID: "x"}) || client.SetRoute(r, "/") {
		t.Errorf("SetActor, SetRoute on a request nothing records = true, want false")
	}
}
