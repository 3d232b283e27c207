package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
)

// detectStream is a deterministic stream: benign reads and logins, and a
// fast brute force from a new address every 50 events.
func detectStream(base time.Time, n int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		ev := map[string]any{
			"id":      fmt.Sprintf("d-%d", i),
			"time":    base.Add(time.Duration(i) * 2 * time.Second).Format(time.RFC3339Nano),
			"service": "sso",
			"actor":   map[string]any{"id": fmt.Sprintf("user%d", i%40)},
			"source":  map[string]any{"ip": fmt.Sprintf("10.1.%d.%d", i%7, i%40)},
		}
		switch k := i % 50; {
		case k >= 40 && k < 47:
			ev["source"] = map[string]any{"ip": fmt.Sprintf("45.83.%d.%d", i/50%250, 1+i/12500)}
			ev["action"], ev["category"], ev["outcome"], ev["reason"] = "login", "authentication", "failure", "invalid_credentials"
		case k%3 == 0:
			ev["action"], ev["category"], ev["outcome"] = "login", "authentication", "success"
		default:
			ev["action"], ev["category"], ev["outcome"] = "read", "data_access", "success"
			ev["resource"] = map[string]any{"type": "doc", "id": fmt.Sprint(i)}
		}
		b, _ := json.Marshal(ev)
		out[i] = b
	}
	return out
}

// caughtUp waits until the detector has processed the whole log.
func (s *server) caughtUp(timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	stable := 0
	for time.Now().Before(deadline) {
		var r struct {
			Detector struct {
				Cursor  uint64 `json:"cursor"`
				LogSize uint64 `json:"log_size"`
			} `json:"detector"`
		}
		s.get("/v1/rules", &r)
		if r.Detector.Cursor == r.Detector.LogSize {
			if stable++; stable == 3 {
				return
			}
		} else {
			stable = 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("detector did not catch up with the log within %s", timeout)
}

// alertKeys returns the dedup keys of every alert the server lists, with
// repetitions, sorted.
func (s *server) alertKeys() []string {
	s.t.Helper()
	var keys []string
	cursor := uint64(0)
	for {
		var page struct {
			Alerts []struct {
				Index uint64          `json:"index"`
				Alert json.RawMessage `json:"alert"`
			} `json:"alerts"`
			Next *uint64 `json:"next"`
		}
		s.get(fmt.Sprintf("/v1/alerts?limit=1000&cursor=%d", cursor), &page)
		for _, a := range page.Alerts {
			al, err := event.ParseAlert(a.Alert)
			if err != nil {
				s.t.Fatalf("alert %d: %v", a.Index, err)
			}
			keys = append(keys, al.DedupKey)
		}
		if page.Next == nil {
			break
		}
		cursor = *page.Next
	}
	slices.Sort(keys)
	return keys
}

// TestDetectionSurvivesSIGKILL runs the same stream through a server that
// is never interrupted and through one SIGKILLed several times while its
// detector is behind: both logs must hold the same alerts (by dedup key),
// each exactly once.
func TestDetectionSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	base := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	stream := detectStream(base, 3000)
	post := func(s *server, batch []json.RawMessage) {
		t.Helper()
		status, _, body, err := s.postEvents(t.Context(), "", batch)
		if err != nil || status/100 != 2 {
			t.Fatalf("POST /v1/events = %d %s, %v", status, body, err)
		}
	}
	const batch = 100

	ref := startServer(t, t.TempDir())
	for i := 0; i < len(stream); i += batch {
		post(ref, stream[i:min(i+batch, len(stream))])
	}
	ref.caughtUp(60 * time.Second)
	want := ref.alertKeys()
	if len(want) < 50 {
		t.Fatalf("uninterrupted run: %d alerts, want one per brute force (60)", len(want))
	}
	if got := slices.Compact(slices.Clone(want)); len(got) != len(want) {
		t.Fatalf("uninterrupted run lists %d alerts of %d keys", len(want), len(got))
	}
	ref.terminate(30 * time.Second)

	dir := t.TempDir()
	s := startServer(t, dir)
	kills := 0
	for i := 0; i < len(stream); i += batch {
		post(s, stream[i:min(i+batch, len(stream))])
		if i/batch%7 == 6 {
			// Right after an acknowledged batch: the detector is
			// mid-stream, with alerts pending or state unsaved.
			s.kill()
			kills++
			s = startServer(t, dir)
		}
	}
	s.caughtUp(60 * time.Second)
	got := s.alertKeys()
	if !slices.Equal(got, want) {
		t.Errorf("after %d SIGKILLs: %d alerts, want the uninterrupted run's %d\ngot  %v\nwant %v", kills, len(got), len(want), got, want)
	}
	t.Logf("%d alerts, identical after %d SIGKILLs", len(got), kills)
	var rules struct {
		Rules []struct {
			ID     string `json:"id"`
			Alerts int    `json:"alerts"`
		} `json:"rules"`
	}
	s.get("/v1/rules", &rules)
	if len(rules.Rules) == 0 {
		t.Error("GET /v1/rules lists no rules")
	}
	if code := s.terminate(30 * time.Second); code != 0 {
		t.Errorf("server exit code %d after SIGTERM, want 0", code)
	}
}

// TestDetectorLagHoldsAppendsBack runs the real server with a tiny
// detect max_lag under concurrent batches: appends that arrive while the
// detector lags more than that get 503 naming it, every acknowledged
// event is in the log, the pushbacks are counted, and the detector
// catches up with all of it.
func TestDetectorLagHoldsAppendsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	s := startServer(t, t.TempDir(), "--detect-max-lag", "1", "--log-level", "warn")
	s.mustPost(testEvent("warm-up", 0))
	s.caughtUp(30 * time.Second) // a detector held to its bound has caught up once

	const clients, batch = 4, 500
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var (
		mu       sync.Mutex
		acked    int
		pushback string // the first 503 answer naming the detector
		other503 string // the last other 503 (a full queue, the index)
	)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				events := make([]json.RawMessage, batch)
				for i := range events {
					events[i] = testEvent(fmt.Sprintf("c%d-%d-%d", c, n, i), n*batch+i)
				}
				status, res, body, err := s.postEvents(ctx, "", events)
				mu.Lock()
				switch {
				case err != nil && ctx.Err() != nil:
				case err != nil:
					t.Errorf("POST /v1/events: %v", err)
					cancel()
				case status == http.StatusCreated:
					acked += len(res)
				case status == http.StatusServiceUnavailable && strings.Contains(string(body), "detector is behind"):
					if pushback == "" {
						pushback = string(body)
						cancel() // seen: stop the load
					}
				case status == http.StatusServiceUnavailable:
					other503 = string(body)
				default:
					t.Errorf("POST /v1/events = %d %s", status, body)
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if pushback == "" {
		t.Fatalf("no append was held back for the detector in 20 s of batches (%d acknowledged); other 503: %q", acked, other503)
	}
	s.caughtUp(60 * time.Second)
	var st struct {
		Detector struct {
			LogSize uint64 `json:"log_size"`
		} `json:"detector"`
	}
	s.get("/v1/rules", &st)
	if want := uint64(acked + 1); st.Detector.LogSize < want {
		t.Errorf("log size %d, want at least the %d acknowledged events", st.Detector.LogSize, want)
	}
	metrics := string(s.get("/metrics", nil))
	if !strings.Contains(metrics, `accessledger_http_follower_pushback_total{follower="detector"}`) {
		t.Errorf("/metrics has no accessledger_http_follower_pushback_total{follower=\"detector\"}")
	}
}

// TestAlertReadsAudited: alerts name accounts and addresses, so their
// reads are recorded in the log like those of entries (a list, one
// alert, a stream); an answer without an alert (an empty page) is not,
// or every responder's polling would fill the log. Alert reads went
// unrecorded.
func TestAlertReadsAudited(t *testing.T) {
	s := startServer(t, t.TempDir())
	var evs []json.RawMessage
	for i := range 6 {
		evs = append(evs, json.RawMessage(fmt.Sprintf(`{"time":%q,"service":"sso","actor":{"id":"u%d"},"source":{"ip":"45.83.64.10"},"action":"login","category":"authentication","outcome":"failure","reason":"invalid_credentials"}`,
			time.Now().UTC().Format(time.RFC3339Nano), i)))
	}
	s.mustPost(evs...)
	var page struct {
		Alerts []struct {
			Index uint64 `json:"index"`
		} `json:"alerts"`
	}
	for deadline := time.Now().Add(20 * time.Second); len(page.Alerts) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no alert after 20s")
		}
		s.get("/v1/alerts?rule=al-bruteforce-fast", &page)
	}
	id := strconv.FormatUint(page.Alerts[0].Index, 10)
	s.get("/v1/alerts/"+id, nil)
	s.get("/v1/alerts?rule=no-such-rule", nil) // empty: not recorded
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/v1/alerts/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "data:") {
	}
	cancel()
	resp.Body.Close()

	want := map[string]string{"alerts": "rule=al-bruteforce-fast", "alert": id, "alerts_stream": ""}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := map[string]string{}
		empty := false
		entries := s.queryEntries("service=accessledger&action=read")
		for _, raw := range entries {
			var leaf struct {
				Body struct {
					Resource   struct{ Type, ID string } `json:"resource"`
					Attributes map[string]string         `json:"attributes"`
				} `json:"body"`
			}
			if err := json.Unmarshal(raw, &leaf); err != nil {
				t.Fatal(err)
			}
			ev := leaf.Body
			switch q := ev.Attributes["query"]; ev.Resource.Type {
			case "alerts":
				if q == "rule=no-such-rule" {
					empty = true
				}
				if q == want["alerts"] {
					got["alerts"] = q
				}
			case "alert":
				got["alert"] = ev.Resource.ID
			case "alerts_stream":
				got["alerts_stream"] = q
			}
		}
		if empty {
			t.Fatal("an empty page of alerts was recorded as a read")
		}
		if len(got) == len(want) && got["alert"] == want["alert"] && got["alerts_stream"] == want["alerts_stream"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert reads recorded: %v, want %v (in %d read events)", got, want, len(entries))
		}
	}
}
