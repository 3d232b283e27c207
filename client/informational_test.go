package client_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/client"
	"github.com/accessledger/accessledger/client/ginmw"
)

// TestMiddlewareIgnoresInformationalStatus: a handler that sends 103
// Early Hints and then fails is recorded with the status the client got,
// a failure. The first status written was kept, 103, recorded as a
// success.
func TestMiddlewareIgnoresInformationalStatus(t *testing.T) {
	early := func(w http.ResponseWriter) {
		w.Header().Set("Link", "</app.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
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
			mux := http.NewServeMux()
			mux.HandleFunc("GET /early", func(w http.ResponseWriter, r *http.Request) {
				early(w)
				http.Error(w, "boom", http.StatusInternalServerError)
			})
			mux.HandleFunc("GET /early-ok", func(w http.ResponseWriter, r *http.Request) {
				early(w)
				w.Write([]byte("ok"))
			})
			mux.HandleFunc("GET /continue", func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusContinue)
				w.WriteHeader(http.StatusNotFound)
			})
			return mw(mux)
		}},
		{"gin", func(rc client.RecorderConfig) http.Handler {
			mw, err := ginmw.Middleware(rc)
			if err != nil {
				t.Fatal(err)
			}
			gin.SetMode(gin.ReleaseMode)
			e := gin.New()
			e.Use(mw)
			e.GET("/early", func(c *gin.Context) {
				early(c.Writer)
				c.String(http.StatusInternalServerError, "boom")
			})
			e.GET("/early-ok", func(c *gin.Context) {
				early(c.Writer)
				c.Writer.WriteHeaderNow() // the 103 goes out; gin then ignores later statuses
				c.String(http.StatusInternalServerError, "boom")
			})
			e.GET("/continue", func(c *gin.Context) {
				c.Writer.WriteHeader(http.StatusContinue)
				c.Status(http.StatusNotFound)
			})
			return e
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTestLog(t, nil, nil)
			s := newSubmitter(t, tl.srv.URL, tl.token, nil)
			app := httptest.NewServer(tc.serve(client.RecorderConfig{Submitter: s, Service: "shop"}))
			defer app.Close()
			var got []int
			for _, p := range []string{"/early", "/early-ok", "/continue"} {
				resp, err := http.Get(app.URL + p)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				got = append(got, resp.StatusCode)
			}
			if err := s.Flush(bg); err != nil {
				t.Fatal(err)
			}
			entries := tl.entries(t)
			if len(entries) != len(got) {
				t.Fatalf("%d events for %d requests", len(entries), len(got))
			}
			for i, lf := range entries {
				want := ""
				if got[i] >= 400 {
					want = "http_" + strconv.Itoa(got[i])
				}
				if lf.Body.Reason != want || (want == "") != (lf.Body.Outcome == "success") {
					t.Errorf("request %d answered %d, recorded %s %q; want %q", i, got[i], lf.Body.Outcome, lf.Body.Reason, want)
				}
			}
		})
	}
}
