// Command querybench measures the query API of a running accessledger
// server: query latencies (p50, p99), NDJSON and evidence export rates,
// and, with -probe, how long an acknowledged event takes to become
// queryable while other load runs. See BENCHMARKS.md and
// scripts/bench-query.sh.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

var (
	base   = flag.String("url", "http://127.0.0.1:8080", "server URL")
	key    = flag.String("key", "", "admin or auditor API key")
	runs   = flag.Int("n", 50, "runs per query")
	probe  = flag.Duration("probe", 0, "instead: for this long, post one probe event every 50ms and measure ack-to-queryable")
	only   = flag.String("only", "", `"export": run only the NDJSON exports (-export-runs of each kind)`)
	xruns  = flag.Int("export-runs", 2, "runs of each NDJSON export")
	client = &http.Client{Timeout: 5 * time.Minute}
)

func main() {
	flag.Parse()
	if *probe > 0 {
		probeLatency(*probe)
		return
	}
	waitIndexed()
	switch *only {
	case "":
		queries()
	case "export":
		exportNDJSON()
	default:
		fail(fmt.Errorf("-only %q: want export", *only))
	}
}

func get(path string) ([]byte, time.Duration) {
	start := time.Now()
	req, _ := http.NewRequest("GET", *base+path, nil)
	req.Header.Set("Authorization", "Bearer "+*key)
	resp, err := client.Do(req)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		fail(err)
	}
	if resp.StatusCode != 200 {
		fail(fmt.Errorf("GET %s = %d %s", path, resp.StatusCode, b))
	}
	return b, time.Since(start)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "querybench:", err)
	os.Exit(1)
}

func getJSON(path string, v any) {
	b, _ := get(path)
	if err := json.Unmarshal(b, v); err != nil {
		fail(fmt.Errorf("GET %s: %v", path, err))
	}
}

// waitIndexed waits until the index reaches the log's size.
func waitIndexed() {
	for {
		var l struct{ Size uint64 }
		getJSON("/v1/log", &l)
		var c struct {
			IndexedSize uint64 `json:"indexed_size"`
		}
		getJSON("/v1/events/count", &c)
		if c.IndexedSize >= l.Size {
			fmt.Printf("log size %d, indexed size %d\n", l.Size, c.IndexedSize)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func pct(ds []time.Duration, p int) float64 {
	slices.Sort(ds)
	return float64(ds[(len(ds)-1)*p/100].Microseconds()) / 1000
}

// latency runs a query n times (after 3 unmeasured runs) and prints its
// p50 and p99.
func latency(name, path string) {
	for range 3 {
		get(path)
	}
	var ds []time.Duration
	var body []byte
	for range *runs {
		b, d := get(path)
		ds = append(ds, d)
		body = b
	}
	what := ""
	var page struct {
		Events []json.RawMessage `json:"events"`
		Count  *uint64           `json:"count"`
		Top    []json.RawMessage `json:"top"`
	}
	if json.Unmarshal(body, &page) == nil {
		switch {
		case page.Count != nil:
			what = fmt.Sprintf("count %d", *page.Count)
		case page.Top != nil:
			what = fmt.Sprintf("%d values", len(page.Top))
		default:
			what = fmt.Sprintf("%d events", len(page.Events))
		}
	}
	fmt.Printf("%-44s p50 %7.2f ms  p99 %7.2f ms  (%s; %s)\n", name, pct(ds, 50), pct(ds, 99), what, path)
}

func queries() {
	var top struct {
		Top []struct {
			Value string
			Count uint64
		}
	}
	getJSON("/v1/events/top?field=actor.id&n=200", &top)
	actor := top.Top[len(top.Top)-1] // an actor of middling activity
	busy := top.Top[0]
	fmt.Printf("actor %s: %d events; busiest %s: %d events\n", actor.Value, actor.Count, busy.Value, busy.Count)
	latency("first page (100) of one actor", "/v1/events?limit=100&actor="+url.QueryEscape(actor.Value))
	latency("first page (100) of the busiest actor", "/v1/events?limit=100&actor="+url.QueryEscape(busy.Value))
	latency("newest page (100) of one actor", "/v1/events?limit=100&order=desc&actor="+url.QueryEscape(actor.Value))

	getJSON("/v1/events/top?field=source.ip&n=1", &top)
	a := netip.MustParseAddr(top.Top[0].Value)
	p24, _ := a.Prefix(24)
	latency("first page (100) of a /24", "/v1/events?limit=100&cidr="+url.QueryEscape(p24.String()))
	latency("count of a /24", "/v1/events/count?cidr="+url.QueryEscape(p24.String()))
	p16, _ := a.Prefix(16)
	latency("count of a /16", "/v1/events/count?cidr="+url.QueryEscape(p16.String()))

	// The hour from the first event's time on.
	var first struct {
		Events []struct {
			Entry struct{ Body struct{ Time time.Time } }
		}
	}
	getJSON("/v1/events?limit=1", &first)
	t0 := first.Events[0].Entry.Body.Time.Truncate(time.Minute)
	win := "&since=" + url.QueryEscape(t0.Format(time.RFC3339)) + "&until=" + url.QueryEscape(t0.Add(time.Hour).Format(time.RFC3339))
	latency("count of failed logins in 1 hour", "/v1/events/count?action=login&outcome=failure"+win)
	latency("count of failed logins in 1 minute", "/v1/events/count?action=login&outcome=failure&since="+
		url.QueryEscape(t0.Add(time.Minute).Format(time.RFC3339))+"&until="+url.QueryEscape(t0.Add(2*time.Minute).Format(time.RFC3339)))
	latency("top 10 source IPs of failed logins", "/v1/events/top?field=source.ip&action=login&outcome=failure")

	// An export of 100,000 matches.
	best := exportNDJSON()
	path := "/v1/events?format=csv&limit=100000&action=" + url.QueryEscape(best)
	b, d := get(path)
	n := bytes.Count(b, []byte("\n")) - 1
	fmt.Printf("CSV export: %d events in %s: %.0f events/s\n", n, d.Round(time.Millisecond), float64(n)/d.Seconds())
	path = "/v1/events?format=ocsf&limit=100000&action=" + url.QueryEscape(best)
	b, d = get(path)
	n = bytes.Count(b, []byte("\n"))
	fmt.Printf("OCSF export: %d events in %s: %.0f events/s\n", n, d.Round(time.Millisecond), float64(n)/d.Seconds())

	// Evidence bundles.
	for _, q := range []string{"actor=" + url.QueryEscape(busy.Value), "action=login&outcome=failure"} {
		b, d := get("/v1/evidence?limit=100000&" + q)
		n := bytes.Count(b, []byte(`{"index":`))
		fmt.Printf("evidence bundle: %d entries (%s) in %s: %.0f entries/s, %.1f MB\n", n, q, d.Round(time.Millisecond), float64(n)/d.Seconds(), float64(len(b))/1e6)
	}
}

// exportNDJSON exports 100,000 matches (the action with the fewest
// matches above that) as NDJSON, -export-runs times each way: read whole
// (format=ndjson, the body read into memory, as a script would) and
// streamed (Accept: application/x-ndjson, the lines counted as they
// arrive and dropped, as a consumer that processes them would). It
// returns the action.
func exportNDJSON() string {
	var acts struct {
		Top []struct {
			Value string
			Count uint64
		}
	}
	getJSON("/v1/events/top?field=action&n=20", &acts)
	best := acts.Top[0]
	for _, v := range acts.Top {
		if v.Count >= 100_000 && v.Count < best.Count {
			best = v
		}
	}
	path := "/v1/events?format=ndjson&limit=100000&action=" + url.QueryEscape(best.Value)
	for range *xruns {
		b, d := get(path)
		n := bytes.Count(b, []byte("\n"))
		fmt.Printf("NDJSON export: %d events (action=%s) in %s: %.0f events/s, %.1f MB/s\n", n, best.Value, d.Round(time.Millisecond), float64(n)/d.Seconds(), float64(len(b))/d.Seconds()/1e6)
	}
	path = "/v1/events?limit=100000&action=" + url.QueryEscape(best.Value)
	for range *xruns {
		n, size, d := stream(path)
		fmt.Printf("NDJSON export, streamed: %d events (action=%s) in %s: %.0f events/s, %.1f MB/s\n", n, best.Value, d.Round(time.Millisecond), float64(n)/d.Seconds(), float64(size)/d.Seconds()/1e6)
	}
	return best.Value
}

// stream GETs path with Accept: application/x-ndjson and counts the lines
// as they arrive, keeping none; it returns the lines, the bytes and the
// time from the request to the end of the body.
func stream(path string) (lines, size int, d time.Duration) {
	start := time.Now()
	req, _ := http.NewRequest("GET", *base+path, nil)
	req.Header.Set("Authorization", "Bearer "+*key)
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := client.Do(req)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		fail(fmt.Errorf("GET %s = %d %s", path, resp.StatusCode, b))
	}
	buf := make([]byte, 256<<10)
	for {
		k, err := resp.Body.Read(buf)
		lines += bytes.Count(buf[:k], []byte("\n"))
		size += k
		if err == io.EOF {
			break
		}
		if err != nil {
			fail(err)
		}
	}
	return lines, size, time.Since(start)
}

// probeLatency posts a probe event every 50ms and polls until a query
// finds it: the time from the POST's answer to the first answer that
// holds it.
func probeLatency(dur time.Duration) {
	var ds []time.Duration
	deadline := time.Now().Add(dur)
	for i := 0; time.Now().Before(deadline); i++ {
		actor := fmt.Sprintf("probe-%d-%d", time.Now().UnixNano(), i)
		ev := fmt.Sprintf(`{"time":%q,"service":"probe","actor":{"id":%q},"source":{"ip":"192.0.2.1"},"action":"read","category":"data_access","outcome":"success"}`,
			time.Now().UTC().Format(time.RFC3339Nano), actor)
		req, _ := http.NewRequest("POST", *base+"/v1/events", strings.NewReader(ev))
		req.Header.Set("Authorization", "Bearer "+*key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			fail(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		acked := time.Now()
		for {
			var c struct{ Count uint64 }
			getJSON("/v1/events/count?actor="+url.QueryEscape(actor), &c)
			if c.Count == 1 {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		ds = append(ds, time.Since(acked))
		time.Sleep(50 * time.Millisecond)
	}
	if len(ds) == 0 {
		fail(fmt.Errorf("no probe was acknowledged"))
	}
	fmt.Printf("ack-to-queryable over %d probes: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", len(ds), pct(ds, 50), pct(ds, 99), pct(ds, 100))
}
