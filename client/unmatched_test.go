package client_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/client"
	"github.com/accessledger/accessledger/client/ginmw"
)

// TestMiddlewareRecordsNoRawPath: a request whose route the middleware
// does not know is recorded on the route "unmatched", never on its path,
// which can hold personal data in a log that cannot forget it. With an
// authentication middleware between the recorder and the mux (which sets
// the pattern on the request the middleware derived), and for paths no
// route matches, the path /patients/123-45-6789 went into the log.
func TestMiddlewareRecordsNoRawPath(t *testing.T) {
	type userKey struct{}
	for _, tc := range []struct {
		name  string
		serve func(rc client.RecorderConfig) http.Handler
	}{
		{"net/http behind auth", func(rc client.RecorderConfig) http.Handler {
			mw, err := client.Middleware(rc)
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			mux.HandleFunc("GET /patients/{ssn}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
			auth := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, "alice")))
				})
			}
			return mw(auth(mux))
		}},
		{"gin, no route", func(rc client.RecorderConfig) http.Handler {
			mw, err := ginmw.Middleware(rc)
			if err != nil {
				t.Fatal(err)
			}
			gin.SetMode(gin.ReleaseMode)
			e := gin.New()
			e.Use(mw)
			e.GET("/orders/:id", func(c *gin.Context) { c.String(200, "order") })
			return e
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTestLog(t, nil, nil)
			s := newSubmitter(t, tl.srv.URL, tl.token, nil)
			for _, raw := range []bool{false, true} {
				app := httptest.NewServer(tc.serve(client.RecorderConfig{Submitter: s, Service: "clinic", RecordRawPaths: raw}))
				resp, err := http.Get(app.URL + "/patients/123-45-6789?x=1")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				app.Close()
			}
			if err := s.Flush(bg); err != nil {
				t.Fatal(err)
			}
			got := tl.entries(t)
			if len(got) != 2 {
				t.Fatalf("%d events, want 2", len(got))
			}
			if r := got[0].Body.Resource; r == nil || r.ID != client.UnmatchedRoute {
				t.Errorf("recorded resource %+v, want the route %q and not the path", r, client.UnmatchedRoute)
			}
			if r := got[1].Body.Resource; r == nil || r.ID != "/patients/123-45-6789" {
				t.Errorf("with RecordRawPaths: recorded resource %+v, want the path", r)
			}
			for _, lf := range got {
				if strings.Contains(lf.Body.Resource.ID, "x=1") {
					t.Errorf("the query was recorded: %+v", lf.Body.Resource)
				}
			}
		})
	}
}
