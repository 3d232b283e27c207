package respond

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkAlertToWebhook measures the whole path of an alert through the
// service: the alert leaf is appended to a real ledger, the service
// follows it, queues it in its durable outbox, signs it and POSTs it to a
// webhook receiver on loopback, records the delivery in the log. It
// reports deliveries/s and the p50/p99 latency from the alert's append to
// its arrival at the receiver.
//
//	go test ./respond -run '^$' -bench AlertToWebhook -benchtime 2000x
func BenchmarkAlertToWebhook(b *testing.B) {
	l := newTestLedger(b)
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	appended := map[string]time.Time{}
	done := make(chan struct{}, b.N)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		id := r.Header.Get("webhook-id")
		mu.Lock()
		if _, ok := arrived[id]; !ok {
			arrived[id] = time.Now()
			done <- struct{}{}
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	secret := "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	_, stop := runService(b, Config{Log: l, Dir: b.TempDir(), Delivery: fastDelivery(),
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook, URL: rcv.URL, Secret: secret}}})
	defer stop()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		a := testAlert("r1", "high", "203.0.113."+strconv.Itoa(i%250), i)
		t0 := time.Now()
		idx := appendAlerts(b, l, a)[0]
		appended[strconv.FormatUint(idx, 10)] = t0
		if i%100 == 99 {
			time.Sleep(50 * time.Millisecond) // bursts, not one long queue
		}
	}
	for range b.N {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			mu.Lock()
			n := len(arrived)
			mu.Unlock()
			b.Fatalf("deliveries stalled: %d of %d arrived", n, b.N)
		}
	}
	took := time.Since(start)
	b.StopTimer()
	var lat []time.Duration
	mu.Lock()
	for id, t0 := range appended {
		lat = append(lat, arrived[id].Sub(t0))
	}
	mu.Unlock()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/took.Seconds(), "deliveries/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
