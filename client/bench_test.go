package client_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/client"
	"github.com/accessledger/accessledger/client/ginmw"
)

// benchmarkOverhead serves b.N requests through h and through bare, in
// process, and reports the middleware's added latency at p50 and p99
// (each percentile of the wrapped handler minus the bare one's).
func benchmarkOverhead(b *testing.B, bare, h http.Handler) {
	req := httptest.NewRequest("GET", "/users/42", nil)
	req.Header.Set("X-User", "alice")
	req.RemoteAddr = "203.0.113.7:4242"
	run := func(h http.Handler, n int) []time.Duration {
		ds := make([]time.Duration, n)
		for i := range ds {
			w := httptest.NewRecorder()
			start := time.Now()
			h.ServeHTTP(w, req)
			ds[i] = time.Since(start)
		}
		slices.Sort(ds)
		return ds
	}
	run(bare, 1000)
	base := run(bare, max(b.N, 100))
	b.ResetTimer()
	with := run(h, max(b.N, 100))
	b.StopTimer()
	pct := func(ds []time.Duration, p int) time.Duration { return ds[(len(ds)-1)*p/100] }
	b.ReportMetric(float64(pct(with, 50)-pct(base, 50))/1e3, "p50-overhead-µs")
	b.ReportMetric(float64(pct(with, 99)-pct(base, 99))/1e3, "p99-overhead-µs")
}

// BenchmarkMiddleware measures what the middleware adds to a request,
// with a Submitter sending to a real log on loopback (whose appends run
// at the same time, on the same cores).
//
//	go test ./client -run '^$' -bench Middleware -benchtime 200000x
func BenchmarkMiddleware(b *testing.B) {
	tl := newTestLog(b, nil, nil)
	s := newSubmitter(b, tl.srv.URL, tl.token, func(c *client.SubmitterConfig) { c.BatchSize = 1000 })
	rc := client.RecorderConfig{Submitter: s, Service: "shop", Actor: actorFromHeader}
	b.Run("net/http", func(b *testing.B) {
		mw, err := client.Middleware(rc)
		if err != nil {
			b.Fatal(err)
		}
		benchmarkOverhead(b, appMux(), mw(appMux()))
	})
	b.Run("gin", func(b *testing.B) {
		mw, err := ginmw.Middleware(rc)
		if err != nil {
			b.Fatal(err)
		}
		noop := func(*gin.Context) {}
		benchmarkOverhead(b, appGin(noop), appGin(mw))
	})
	b.Logf("%+v", s.Stats())
}
