package api_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	alertevent "github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// BenchmarkAlertStreamFanout streams alerts appended at 1,000 a second
// to 100 SSE subscribers on loopback, each alert an op; the subscribers,
// the respond service and the ledger share the process's CPUs. It
// reports the events delivered per second (all subscribers together:
// keeping up is 100,000) and the delay from append to receipt, by the
// subscribers and (feed-*) by a reader of the respond service itself:
// the difference is the stream's.
//
//	go test ./api -run '^$' -bench AlertStreamFanout -benchtime 5000x -cpu 2
func BenchmarkAlertStreamFanout(b *testing.B) {
	const subscribers, rate, tick = 100, 1000, 10 * time.Millisecond
	ts, svc := respondServer(b, nil)
	n := b.N
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: subscribers, MaxConnsPerHost: 0}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	type result struct {
		got     int
		lat     []time.Duration
		err     error
		ordered bool
	}
	results := make([]result, subscribers)
	var ready, done sync.WaitGroup
	for i := range subscribers {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			res := &results[i]
			res.ordered = true
			res.lat = make([]time.Duration, 0, n)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.srv.URL+"/v1/alerts/stream", nil)
			req.Header.Set("Authorization", "Bearer "+ts.responder())
			resp, err := hc.Do(req)
			if err != nil {
				res.err = err
				ready.Done()
				return
			}
			defer resp.Body.Close()
			ready.Done()
			br := bufio.NewReaderSize(resp.Body, 64<<10)
			last := int64(-1)
			for res.got < n {
				line, err := br.ReadSlice('\n')
				if err != nil {
					res.err = err
					return
				}
				id, ok := bytes.CutPrefix(line, []byte("id: "))
				if !ok {
					continue
				}
				// Only alerts are appended: they are at every index.
				k, err := strconv.ParseInt(string(bytes.TrimSpace(id)), 10, 64)
				if err != nil || k != last+1 {
					res.ordered = false
				}
				last = k
				// The alerts' leaves are stamped when appended.
				line, err = br.ReadSlice('\n') // event: alert
				if err == nil {
					line, err = br.ReadSlice('\n') // data: {...}
				}
				if err != nil {
					res.err = err
					return
				}
				_, at, _ := bytes.Cut(line, []byte(`"received_at":"`))
				at, _, _ = bytes.Cut(at, []byte(`"`))
				appended, err := time.Parse(time.RFC3339Nano, string(at))
				if err != nil {
					res.err = fmt.Errorf("event %d: received_at %q: %v", k, at, err)
					return
				}
				res.got++
				res.lat = append(res.lat, time.Since(appended))
			}
		}()
	}
	// The feed's own delay, without HTTP: a reader of the service.
	var feedLat []time.Duration
	done.Add(1)
	go func() {
		defer done.Done()
		after := int64(-1)
		for len(feedLat) < n {
			changed := svc.AlertsChanged()
			fas, err := svc.AlertsAfter(ctx, after, 1000)
			if err != nil {
				return
			}
			for _, fa := range fas {
				feedLat = append(feedLat, time.Since(fa.ReceivedAt))
				after = int64(fa.Index)
			}
			if len(fas) == 0 {
				select {
				case <-changed:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	ready.Wait()
	time.Sleep(50 * time.Millisecond) // the streams are served

	b.ResetTimer()
	start := time.Now()
	t := time.NewTicker(tick)
	per := rate * int(tick) / int(time.Second)
	var appends sync.WaitGroup
	var appendErr atomic.Pointer[error]
	for next := 0; next < n; {
		<-t.C
		// Appends wait for durability (an fsync, often longer than a
		// tick): each tick's batch is appended on its own goroutine, so
		// that the rate holds.
		k := min(per, n-next)
		entries := make([]ledger.Entry, k)
		for j := range entries {
			leaf, err := alertevent.EncodeAlertLeaf(testAlert(next+j), time.Now())
			if err != nil {
				b.Fatal(err)
			}
			entries[j] = ledger.Entry{Data: leaf}
		}
		appends.Go(func() {
			if _, err := ts.l.Append(bg, entries...); err != nil {
				appendErr.Store(&err)
			}
		})
		next += k
	}
	t.Stop()
	offered := time.Since(start)
	appends.Wait()
	if err := appendErr.Load(); err != nil {
		b.Fatal(*err)
	}
	waitDone := make(chan struct{})
	go func() { done.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case <-time.After(30 * time.Second):
		cancel()
		<-waitDone
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()

	var delivered int
	var lat []time.Duration
	for i, r := range results {
		delivered += r.got
		lat = append(lat, r.lat...)
		if r.got != n || !r.ordered {
			b.Errorf("subscriber %d: %d of %d events (in order: %v): %v", i, r.got, n, r.ordered, r.err)
		}
	}
	slices.Sort(lat)
	slices.Sort(feedLat)
	pctOf := func(lat []time.Duration, p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	pct := func(p float64) float64 { return pctOf(lat, p) }
	b.ReportMetric(float64(n)/offered.Seconds(), "alerts/s")
	b.ReportMetric(float64(delivered)/elapsed.Seconds(), "events/s")
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(pctOf(feedLat, 0.5), "feed-p50-ms")
	b.ReportMetric(pctOf(feedLat, 0.99), "feed-p99-ms")
}
