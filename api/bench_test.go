//go:build unix

package api_test

// Benchmarks of POST /v1/events through the gin handler, on a real ledger
// (Badger in b.TempDir(), synced commits). "loopback" sends real HTTP
// requests to an httptest server on 127.0.0.1; "handler" calls ServeHTTP
// directly, so that a CPU profile shows the server's own costs only.
// cpu-µs/event is the process's CPU time per appended event (client
// included for "loopback").
//
//	go test -run '^$' -bench PostEvents -cpuprofile cpu.out ./api
//	go tool pprof -top -nodecount 40 api.test cpu.out

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/ledger"
)

const benchAPIOrigin = "example.com/accessledger/apibench"

// benchAPIServer is an API handler over a fresh ledger, and the submitter
// token that it accepts.
func benchAPIServer(b *testing.B) (http.Handler, string) {
	b.Helper()
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		b.Fatalf("NewED25519SignerVerifier() = %v", err)
	}
	signer, err := ledger.NewNoteSigner(benchAPIOrigin, sv)
	if err != nil {
		b.Fatalf("NewNoteSigner() = %v", err)
	}
	l, err := ledger.Create(context.Background(), ledger.Config{Dir: b.TempDir(), Origin: benchAPIOrigin, Signer: signer})
	if err != nil {
		b.Fatalf("ledger.Create() = %v", err)
	}
	b.Cleanup(func() { l.Close(context.Background()) })
	token, key, err := api.NewAPIKey("bench", api.RoleSubmitter)
	if err != nil {
		b.Fatalf("NewAPIKey() = %v", err)
	}
	keys, err := api.NewKeyring([]api.APIKey{key})
	if err != nil {
		b.Fatalf("NewKeyring() = %v", err)
	}
	srv, err := api.New(api.Config{Ledger: l, Keys: keys})
	if err != nil {
		b.Fatalf("api.New() = %v", err)
	}
	return srv.Handler(), token
}

// benchAPIEvent appends a realistic event (about 375 bytes of JSON) whose
// request_id and actor vary with n; every tenth carries an id.
func benchAPIEvent(b []byte, n int, now time.Time) []byte {
	if n%10 == 0 {
		b = fmt.Appendf(b, `{"id":"bench-%d-%d",`, now.UnixNano(), n)
	} else {
		b = append(b, '{')
	}
	return fmt.Appendf(b, `"time":%q,"service":"billing-api","actor":{"id":"user-%d","type":"user","session":"s-%x"},`+
		`"source":{"ip":"10.%d.%d.%d","port":%d,"user_agent":"okhttp/4.12.0","geo":{"country":"DE"}},`+
		`"action":"read","category":"data_access","outcome":"success","resource":{"type":"invoice","id":"inv-%d"},`+
		`"request_id":"%016x","tenant":"acme"}`,
		now.Format(time.RFC3339Nano), n%5000, n*7919, n>>16&255, n>>8&255, n&255, 1024+n%60000, n%100000, uint64(n)*0x9e3779b97f4a7c15)
}

// benchAPIBodies pre-builds count request bodies of perReq events each (a
// batch object if perReq > 1), so that the client costs little.
func benchAPIBodies(count, perReq int) [][]byte {
	now := time.Now().UTC()
	bodies := make([][]byte, count)
	n := 0
	for i := range bodies {
		var b []byte
		if perReq > 1 {
			b = append(b, `{"events":[`...)
		}
		for j := range perReq {
			if j > 0 {
				b = append(b, ',')
			}
			b = benchAPIEvent(b, n, now)
			n++
		}
		if perReq > 1 {
			b = append(b, "]}"...)
		}
		bodies[i] = b
	}
	return bodies
}

// BenchmarkPostEvents measures POST /v1/events with 100-event batches
// from 16 concurrent clients and single events from 64. One op is one
// request; events/s counts appended events.
func BenchmarkPostEvents(b *testing.B) {
	for _, tc := range []struct {
		name         string
		perReq, conc int
	}{
		{"batch100", 100, 16},
		{"single", 1, 64},
	} {
		for _, transport := range []string{"loopback", "handler"} {
			b.Run(transport+"/"+tc.name, func(b *testing.B) {
				h, token := benchAPIServer(b)
				bodies := benchAPIBodies(512, tc.perReq)
				do := benchHandlerDo(h)
				if transport == "loopback" {
					do = benchLoopbackDo(b, h, tc.conc)
				}
				var next atomic.Int64
				var events atomic.Int64
				b.ReportAllocs()
				b.SetParallelism(max(1, tc.conc/runtime.GOMAXPROCS(0)))
				b.ResetTimer()
				cpu0 := benchCPUTime()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						body := bodies[next.Add(1)%int64(len(bodies))]
						status, err := do(body, token)
						if err != nil || status != http.StatusCreated && status != http.StatusOK {
							b.Errorf("POST /v1/events = %d, %v", status, err)
							return
						}
						events.Add(int64(tc.perReq))
					}
				})
				if s := b.Elapsed().Seconds(); s > 0 {
					b.ReportMetric(float64(events.Load())/s, "events/s")
				}
				if n := events.Load(); n > 0 {
					b.ReportMetric(float64((benchCPUTime()-cpu0).Microseconds())/float64(n), "cpu-µs/event")
				}
			})
		}
	}
}

// benchCPUTime returns the CPU time (user and system) the process has
// used.
func benchCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type benchDoFunc func(body []byte, token string) (int, error)

func benchHandlerDo(h http.Handler) benchDoFunc {
	return func(body []byte, token string) (int, error) {
		req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, nil
	}
}

func benchLoopbackDo(b *testing.B, h http.Handler, conc int) benchDoFunc {
	ts := httptest.NewServer(h)
	b.Cleanup(ts.Close)
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns:        conc,
		MaxIdleConnsPerHost: conc,
		DisableCompression:  true,
	}}
	b.Cleanup(client.CloseIdleConnections)
	url := ts.URL + "/v1/events"
	return func(body []byte, token string) (int, error) {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, err
	}
}
