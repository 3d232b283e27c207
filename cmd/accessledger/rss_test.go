package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessledger/accessledger/internal/procstat"
)

// TestLargeEventsHoldRSSBound streams ~60 KiB events from 64 clients into
// a server with the default configuration until half a gigabyte of them
// is acknowledged, and checks that the server's peak RSS stayed under
// 512 MiB (the bound `make bench` holds its 64 KiB-event phase to). Badger
// maps its value log, where these events go, and never unmaps it: without
// trimming, RSS grows by every byte written.
func TestLargeEventsHoldRSSBound(t *testing.T) {
	if testing.Short() {
		t.Skip("streams half a gigabyte of events")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skipf("no /proc/<pid>/status to read the peak RSS from: %v", err)
	}
	const (
		bound    = 512 << 20
		clients  = 64
		padBytes = 60000
		want     = 8192 // events of ~60 KiB: ~480 MiB
	)
	s := startServer(t, t.TempDir())
	s.client.Transport.(*http.Transport).MaxIdleConnsPerHost = clients
	var acked, next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	// A bound on a stuck run, not a throughput target: it takes about
	// 10 s on an idle machine.
	deadline := time.Now().Add(10 * time.Minute)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for next.Add(1) <= want {
				if time.Now().After(deadline) {
					errs <- fmt.Errorf("%d of %d events acknowledged in 10 minutes", acked.Load(), want)
					return
				}
				status, body, err := s.do(t.Context(), http.MethodPost, "/v1/events", "", largeEvent(rng, padBytes))
				if err != nil || status != http.StatusCreated {
					errs <- fmt.Errorf("POST /v1/events = %d %.200s, %v; want 201", status, body, err)
					return
				}
				acked.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	mem, err := procstat.Status(s.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	peak := mem["VmHWM"] << 10
	t.Logf("%d events of ~%d KiB acknowledged; the server's peak RSS %d MiB", acked.Load(), padBytes>>10, peak>>20)
	if peak >= bound {
		t.Errorf("the server's peak RSS was %d MiB, want under %d MiB", peak>>20, bound>>20)
	}
}

// largeEvent returns a valid event with about pad bytes of random
// attributes (random so that its bundle does not compress to nothing).
func largeEvent(rng *rand.Rand, pad int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"time":%q,"service":"rss","actor":{"id":"user-%d","type":"user"},"source":{"ip":"10.1.2.3"},"action":"read","category":"data_access","outcome":"success","attributes":{`,
		time.Now().UTC().Format(time.RFC3339Nano), rng.IntN(100))
	for i := 0; pad > 0; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		n := min(pad, 1000) // the schema's limit is 1024 bytes a value
		b.WriteString(`"pad` + strconv.Itoa(i) + `":"`)
		for range n {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		b.WriteByte('"')
		pad -= n + 12
	}
	b.WriteString("}}")
	return b.Bytes()
}
