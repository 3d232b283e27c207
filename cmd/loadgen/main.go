// Command loadgen drives a running accessledger server with access events
// over real HTTP and reports throughput, request latency, errors by status
// and, given the server's PID, its peak memory.
//
//	loadgen -mode batch -batch 100 -c 16 -duration 15s -warmup 2s -pid 1234
//	loadgen -mode single -c 64 -duration 15s
//	loadgen -mode batch -batch 1000 -c 4 -n 1000000 -pid 1234
//
//	loadgen -target tessera -url http://127.0.0.1:2025 -mode single -c 256 -prepare 400000
//	loadgen -mode single -c 64 -rate 8000 -duration 10m -window 10s -json-out run.json
//
// With -target tessera it drives Tessera's POSIX conformance server
// (POST /add, the event as the entry) with the same events, for
// side-by-side comparisons. -prepare generates the request bodies before
// the clock starts. -rate paces the requests: request i of each client is
// due at its time, and is sent then, or when the client's previous request
// returns if that is later; the latency is then also reported from the
// time each request was due, which counts that wait (as wrk2 does).
// -window adds throughput and latency per time window to the summary.
//
// It talks to loopback addresses only, unless -allow-remote is given: it is
// a benchmark tool and must never load someone else's server by accident.
// Only 2xx answers count as successes, and the latency percentiles are
// those of 2xx requests. 503 answers (pushback: nothing was appended) are
// counted apart and, unless -retry-503=false, the same request is sent
// again after a short pause. Other failures are counted, not retried.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/accessledger/accessledger/client"
	"github.com/accessledger/accessledger/internal/procstat"
)

type config struct {
	url         string
	key         string
	mode        string
	batch       int
	conc        int
	duration    time.Duration
	n           int64
	warmup      time.Duration
	pid         int
	jsonOut     bool
	jsonFile    string
	allowRemote bool
	idFrac      float64
	ids         string
	pad         int
	target      string
	prepare     int
	rate        float64
	window      time.Duration
	timeout     time.Duration
	wait        time.Duration
	retry503    bool
	bodiesOut   string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 2
	}
	if cfg.bodiesOut != "" {
		if err := writeBodies(cfg); err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	client := newClient(cfg)
	base := strings.TrimRight(cfg.url, "/")
	if cfg.wait > 0 {
		if err := waitHealthy(ctx, client, base, cfg.wait); err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return 1
		}
	}
	runID := randomHex(4)
	if cfg.warmup > 0 {
		w := cfg
		w.n, w.duration = 0, cfg.warmup
		runPhase(ctx, w, client, base, runID+"w")
	}
	var rss *rssSampler
	if cfg.pid > 0 {
		rss = startRSSSampler(cfg.pid)
	}
	sum := runPhase(ctx, cfg, client, base, runID)
	if rss != nil {
		sum.Server = rss.stop()
	}
	sum.CheckpointSize = checkpointSize(client, base, cfg.key)

	if cfg.jsonFile != "" {
		if err := writeJSONFile(cfg.jsonFile, sum); err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return 1
		}
	}
	if cfg.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(sum)
	} else {
		sum.print(stdout)
	}
	if sum.OK == 0 {
		return 1
	}
	return 0
}

// writeBodies writes cfg.prepare single-event bodies to cfg.bodiesOut, one
// JSON object per line, made as the workers make theirs.
func writeBodies(cfg config) error {
	f, err := os.OpenFile(cfg.bodiesOut, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	g := newGenerator(randomHex(4), 0, cfg.idFrac, cfg.pad)
	g.ids = cfg.ids
	var b []byte
	for range cfg.prepare {
		b = append(g.body(b[:0], "single", 1), '\n')
		w.Write(b)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.url, "url", "http://127.0.0.1:8080", "server base URL (loopback only unless -allow-remote)")
	fs.StringVar(&cfg.key, "key", os.Getenv("ACCESSLEDGER_API_KEY"), "API key, sent as Authorization: Bearer (env ACCESSLEDGER_API_KEY)")
	fs.StringVar(&cfg.mode, "mode", "batch", "single (one event per request), batch ({\"events\":[...]}) or ndjson")
	fs.IntVar(&cfg.batch, "batch", 100, "events per request in batch and ndjson modes")
	fs.IntVar(&cfg.conc, "c", 64, "concurrent requests")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to run (ignored with -n)")
	fs.Int64Var(&cfg.n, "n", 0, "total events to submit successfully, instead of -duration")
	fs.DurationVar(&cfg.warmup, "warmup", 0, "unmeasured load before the measured run")
	fs.IntVar(&cfg.pid, "pid", 0, "server PID: report its peak RSS (VmHWM) and RSS from /proc/<pid>/status")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print a JSON summary instead of text")
	fs.StringVar(&cfg.jsonFile, "json-out", "", "also write the JSON summary to this file")
	fs.BoolVar(&cfg.allowRemote, "allow-remote", false, "allow a non-loopback target")
	fs.Float64Var(&cfg.idFrac, "id-fraction", 0.1, "fraction of events carrying an idempotency \"id\"")
	fs.StringVar(&cfg.ids, "ids", "counter", "what ids look like: counter (run, worker and a counter), random (128 random bits, as clients that make their own often send), time (the Go client's: time-ordered, UUIDv7 layout)")
	fs.IntVar(&cfg.pad, "pad", 0, "add about this many bytes of random attributes to each event (at most 60000: a stored event is at most 64 KiB)")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.DurationVar(&cfg.wait, "wait", 0, "first wait up to this long for GET /healthz to answer 200")
	fs.BoolVar(&cfg.retry503, "retry-503", true, "retry a request answered 503 after a short pause")
	fs.StringVar(&cfg.target, "target", "accessledger", "accessledger (POST /v1/events) or tessera (POST /add, Tessera's conformance server; single mode only)")
	fs.IntVar(&cfg.prepare, "prepare", 0, "generate this many request bodies before the clock starts (then generate more only if they run out)")
	fs.Float64Var(&cfg.rate, "rate", 0, "requests per second in all, paced (0: as fast as the clients go)")
	fs.DurationVar(&cfg.window, "window", 0, "also report throughput and latency per window of this length")
	fs.StringVar(&cfg.bodiesOut, "bodies-out", "", "write -prepare single-event bodies to this file, one per line, and exit (for other load generators, such as wrk)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg.key = strings.TrimSpace(cfg.key)
	switch cfg.mode {
	case "single":
		cfg.batch = 1
	case "batch", "ndjson":
		if cfg.batch < 1 {
			return cfg, errors.New("-batch must be at least 1")
		}
	default:
		return cfg, fmt.Errorf("-mode %q: want single, batch or ndjson", cfg.mode)
	}
	switch {
	case cfg.conc < 1:
		return cfg, errors.New("-c must be at least 1")
	case cfg.n < 0:
		return cfg, errors.New("-n must not be negative")
	case cfg.n == 0 && cfg.duration <= 0:
		return cfg, errors.New("give a positive -duration or -n")
	case cfg.ids != "counter" && cfg.ids != "random" && cfg.ids != "time":
		return cfg, fmt.Errorf("-ids %q: want counter, random or time", cfg.ids)
	case cfg.idFrac < 0 || cfg.idFrac > 1:
		return cfg, errors.New("-id-fraction must be between 0 and 1")
	case cfg.pad < 0 || cfg.pad > 60000:
		return cfg, errors.New("-pad must be between 0 and 60000")
	case cfg.target != "accessledger" && cfg.target != "tessera":
		return cfg, fmt.Errorf("-target %q: want accessledger or tessera", cfg.target)
	case cfg.target == "tessera" && cfg.mode != "single":
		return cfg, errors.New("-target tessera takes one entry per request: use -mode single")
	case cfg.prepare < 0 || cfg.rate < 0 || cfg.window < 0:
		return cfg, errors.New("-prepare, -rate and -window must not be negative")
	case cfg.bodiesOut != "" && (cfg.mode != "single" || cfg.prepare < 1):
		return cfg, errors.New("-bodies-out writes single events: use -mode single and -prepare N")
	}
	u, err := url.Parse(cfg.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("-url %q: want http://host:port", cfg.url)
	}
	if !cfg.allowRemote && !isLoopbackHost(u.Hostname()) {
		return cfg, fmt.Errorf("-url %q is not a loopback address; pass -allow-remote to load a remote server", cfg.url)
	}
	return cfg, nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true // the dialer checks what it resolves to
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// newClient returns an HTTP client tuned for many concurrent requests to
// one host. It never uses a proxy, and unless remote targets are allowed
// its dialer refuses any address that is not loopback.
func newClient(cfg config) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !cfg.allowRemote {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !ap.Addr().IsLoopback() {
				return fmt.Errorf("refusing to connect to non-loopback address %s", address)
			}
			return nil
		}
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          cfg.conc,
		MaxIdleConnsPerHost:   cfg.conc,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        16 << 10,
	}
	return &http.Client{Transport: tr, Timeout: cfg.timeout}
}

func waitHealthy(ctx context.Context, c *http.Client, base string, max time.Duration) error {
	deadline := time.Now().Add(max)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/healthz not healthy after %s (last error: %v)", base, max, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// workerStats is what one worker measured. Only that worker writes it.
type workerStats struct {
	latencies  []time.Duration // of 2xx requests
	ends       []time.Duration // when each of them was answered, since the start
	fromDue    []time.Duration // with -rate: each of them from the time it was due
	status     map[int]int64
	transport  int64
	okEvents   int64
	lastErr    string
	pushbacks  int64
	okRequests int64
}

// runPhase runs cfg.conc workers until cfg.duration has passed or cfg.n
// events have been accepted, then returns the summary.
func runPhase(ctx context.Context, cfg config, client *http.Client, base, runID string) *summary {
	var (
		claimed  atomic.Int64 // events handed out, with -n
		deadline time.Time
	)
	start := time.Now()
	if cfg.n == 0 {
		deadline = start.Add(cfg.duration)
	}
	done := func() bool {
		return ctx.Err() != nil || (!deadline.IsZero() && !time.Now().Before(deadline))
	}
	contentType := "application/json"
	if cfg.mode == "ndjson" {
		contentType = "application/x-ndjson"
	}
	path := "/v1/events"
	if cfg.target == "tessera" {
		path = "/add"
	}
	stats := make([]*workerStats, cfg.conc)
	gens := make([]*generator, cfg.conc)
	prepared := make([][][]byte, cfg.conc)
	for w := range cfg.conc {
		gens[w] = newGenerator(runID, w, cfg.idFrac, cfg.pad)
		gens[w].ids = cfg.ids
		for range (cfg.prepare + cfg.conc - 1) / cfg.conc {
			prepared[w] = append(prepared[w], gens[w].body(nil, cfg.mode, cfg.batch))
		}
	}
	// With -rate, request i of worker w is due at start + (i*conc + w)/rate.
	var interval time.Duration
	if cfg.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.conc) / cfg.rate)
	}
	start = time.Now()
	if cfg.n == 0 {
		deadline = start.Add(cfg.duration)
	}
	var sampler *serverSampler
	if cfg.window > 0 && cfg.target != "tessera" {
		sampler = startServerSampler(client, base, cfg.key, cfg.pid, cfg.window, start)
	}
	var wg sync.WaitGroup
	for w := range cfg.conc {
		st := &workerStats{status: map[int]int64{}}
		stats[w] = st
		g := gens[w]
		pool := prepared[w]
		wg.Go(func() {
			var body []byte
			for i := 0; !done(); i++ {
				var due time.Time
				if interval > 0 {
					due = start.Add(time.Duration(i)*interval + time.Duration(w)*interval/time.Duration(cfg.conc))
					if d := time.Until(due); d > 0 {
						pause(ctx, d)
						if done() {
							return
						}
					}
				}
				k := int64(cfg.batch)
				if cfg.n > 0 {
					c := claimed.Add(k)
					if c-k >= cfg.n {
						return
					}
					k = min(k, cfg.n-(c-k))
				}
				if i < len(pool) && int(k) == cfg.batch {
					body = pool[i]
				} else {
					body = g.body(body[:0], cfg.mode, int(k))
				}
				for attempt := 0; ; attempt++ {
					t0 := time.Now()
					status, err := post(ctx, client, base+path, cfg.key, contentType, body)
					if ctx.Err() != nil {
						return // interrupted: the request was cancelled, not answered
					}
					lat := time.Since(t0)
					switch {
					case err != nil:
						st.transport++
						st.lastErr = err.Error()
					case status >= 200 && status < 300:
						st.latencies = append(st.latencies, lat)
						st.ends = append(st.ends, time.Since(start))
						if interval > 0 {
							st.fromDue = append(st.fromDue, time.Since(due))
						}
						st.okRequests++
						st.okEvents += k
					case status == http.StatusServiceUnavailable:
						st.pushbacks++
					}
					if err == nil {
						st.status[status]++
					}
					if status == http.StatusServiceUnavailable && cfg.retry503 && !done() {
						pause(ctx, time.Duration(min(attempt+1, 20))*5*time.Millisecond)
						continue
					}
					break
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	sum := summarize(cfg, stats, elapsed)
	if sampler != nil {
		samples, err := sampler.stop()
		attach(sum.Windows, samples, cfg.window)
		if err != nil {
			sum.ServerSampleError = err.Error()
		}
	}
	return sum
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// post sends one request to url and drains the answer, so that the
// connection is reused. It returns the status code.
func post(ctx context.Context, c *http.Client, url, key, contentType string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", contentType)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// generator makes realistic, varied access events for one worker: a
// population of actors with mostly stable home addresses, a few services
// and tenants, mostly successful reads, some failed logins, some events
// carrying an idempotency id unique to this run.
type generator struct {
	rng    *mrand.Rand
	prefix string // id prefix: run and worker
	seq    uint64
	idFrac float64
	ids    string // counter, random or time (see -ids)
	pad    int    // attribute bytes added to each event
}

func newGenerator(runID string, worker int, idFrac float64, pad int) *generator {
	seed := uint64(time.Now().UnixNano()) ^ uint64(worker)*0x9e3779b97f4a7c15
	return &generator{
		rng:    mrand.New(mrand.NewPCG(seed, uint64(worker))),
		prefix: "lg-" + runID + "-" + strconv.Itoa(worker) + "-",
		idFrac: idFrac,
		pad:    pad,
	}
}

// padding is random text that -event-bytes attributes are cut from, so
// that large events do not compress to nothing.
var padding = func() []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	b := make([]byte, 128<<10)
	r := mrand.New(mrand.NewPCG(1, 2))
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return b
}()

// maxAttrValue is the event schema's limit on one attribute value.
const maxAttrValue = 1024

// appendPadding appends about n bytes of attributes.
func (g *generator) appendPadding(b []byte, n int) []byte {
	b = append(b, `,"attributes":{`...)
	for i := 0; n > 0; i++ {
		v := min(n, maxAttrValue)
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `"pad`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `":"`...)
		off := g.rng.IntN(len(padding) - v)
		b = append(b, padding[off:off+v]...)
		b = append(b, '"')
		n -= v + 12
	}
	return append(b, '}')
}

var (
	services   = []string{"billing-api", "auth-service", "customer-portal", "admin-console", "payments", "reporting", "storage-gateway", "hr-system"}
	tenants    = []string{"acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell", "cyberdyne"}
	userAgents = []string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
		"okhttp/4.12.0",
		"python-requests/2.32.3",
		"Go-http-client/1.1",
	}
	countries = []string{"US", "DE", "FR", "GB", "NL", "JP", "BR", "IN", "CA", "AU"}
	resources = []string{"invoice", "customer", "document", "bucket", "report", "payroll"}
)

// event kinds, with their category and weight out of 100.
var kinds = []struct {
	action, category string
	weight           int
}{
	{"read", "data_access", 55},
	{"login", "authentication", 15},
	{"update", "data_access", 10},
	{"create", "data_access", 7},
	{"delete", "data_access", 3},
	{"logout", "authentication", 5},
	{"grant", "authorization", 2},
	{"revoke", "authorization", 1},
	{"configure", "admin", 2},
}

// body builds a request body of k events in the given mode.
func (g *generator) body(b []byte, mode string, k int) []byte {
	now := time.Now().UTC()
	switch mode {
	case "single":
		b = g.event(b, now)
	case "ndjson":
		for range k {
			b = g.event(b, now)
			b = append(b, '\n')
		}
	default:
		b = append(b, `{"events":[`...)
		for i := range k {
			if i > 0 {
				b = append(b, ',')
			}
			b = g.event(b, now)
		}
		b = append(b, "]}"...)
	}
	return b
}

// event appends one event as JSON.
func (g *generator) event(b []byte, now time.Time) []byte {
	r := g.rng
	g.seq++
	// Actors: a skewed population of 20,000 (a few are very active).
	actor := int(r.ExpFloat64()*2000) % 20000
	service := actor % len(services)
	if r.IntN(4) == 0 {
		service = r.IntN(len(services))
	}
	w := r.IntN(100)
	k := 0
	for ; w >= kinds[k].weight; k++ {
		w -= kinds[k].weight
	}
	kind := kinds[k]
	b = append(b, '{')
	if r.Float64() < g.idFrac {
		b = append(b, `"id":"`...)
		switch g.ids {
		case "random":
			var id [16]byte
			rand.Read(id[:])
			b = hex.AppendEncode(b, id[:])
		case "time":
			b = append(b, client.NewEventID()...)
		default:
			b = append(b, g.prefix...)
			b = strconv.AppendUint(b, g.seq, 10)
		}
		b = append(b, `",`...)
	}
	b = append(b, `"time":"`...)
	b = now.Add(-time.Duration(r.IntN(2000))*time.Millisecond).AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","service":"`...)
	b = append(b, services[service]...)
	b = append(b, `","actor":{"id":"`...)
	if actor < 50 {
		b = append(b, "svc-"...)
	} else {
		b = append(b, "user-"...)
	}
	b = strconv.AppendInt(b, int64(actor), 10)
	b = append(b, `","type":"`...)
	if actor < 50 {
		b = append(b, "service"...)
	} else if actor < 80 {
		b = append(b, "admin"...)
	} else {
		b = append(b, "user"...)
	}
	b = append(b, `","session":"s`...)
	b = strconv.AppendUint(b, uint64(actor)*7919+uint64(now.Unix()/3600), 36)
	b = append(b, `"},"source":{"ip":"`...)
	b = g.appendIP(b, actor)
	b = append(b, `","port":`...)
	b = strconv.AppendInt(b, int64(1024+r.IntN(64511)), 10)
	b = append(b, `,"user_agent":"`...)
	b = append(b, userAgents[actor%len(userAgents)]...)
	b = append(b, '"')
	if r.IntN(2) == 0 {
		b = append(b, `,"geo":{"country":"`...)
		b = append(b, countries[actor%len(countries)]...)
		b = append(b, `"}`...)
	}
	b = append(b, `},"action":"`...)
	b = append(b, kind.action...)
	b = append(b, `","category":"`...)
	b = append(b, kind.category...)
	b = append(b, `","outcome":"`...)
	switch {
	case kind.action == "login" && r.IntN(10) == 0:
		b = append(b, `failure","reason":"invalid_credentials"`...)
	case r.IntN(50) == 0:
		b = append(b, `failure","reason":"forbidden"`...)
	default:
		b = append(b, `success"`...)
	}
	if kind.category == "data_access" {
		b = append(b, `,"resource":{"type":"`...)
		res := resources[r.IntN(len(resources))]
		b = append(b, res...)
		b = append(b, `","id":"`...)
		b = append(b, res[:3]...)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(r.IntN(1_000_000)), 10)
		b = append(b, `"}`...)
	}
	if kind.action == "login" {
		b = append(b, `,"mfa":`...)
		b = strconv.AppendBool(b, r.IntN(5) != 0)
	}
	b = append(b, `,"request_id":"`...)
	b = strconv.AppendUint(b, r.Uint64(), 16)
	b = append(b, `","tenant":"`...)
	b = append(b, tenants[actor%len(tenants)]...)
	b = append(b, '"')
	if g.pad > 0 {
		b = g.appendPadding(b, g.pad)
	}
	b = append(b, '}')
	return b
}

// appendIP appends the source address: usually the actor's stable home
// address, sometimes a random public one, now and then IPv6.
func (g *generator) appendIP(b []byte, actor int) []byte {
	r := g.rng
	switch n := r.IntN(100); {
	case n < 3: // roaming: a random documentation-range public address
		return netip.AddrFrom4([4]byte{198, 51, 100, byte(r.IntN(256))}).AppendTo(b)
	case n < 8:
		a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(actor >> 8), 0, byte(actor)}
		a[15] = byte(r.IntN(256))
		return netip.AddrFrom16(a).AppendTo(b)
	default:
		return netip.AddrFrom4([4]byte{10, byte(actor >> 16), byte(actor >> 8), byte(actor)}).AppendTo(b)
	}
}

// rssSampler samples a process's RSS while the load runs.
type rssSampler struct {
	pid  int
	cpu0 time.Duration // the server's CPU time when sampling started
	quit chan struct{}
	done chan struct{}
	// maxRSS and maxAnon (KiB) are owned by the sampling goroutine until
	// done is closed.
	maxRSS, maxAnon int64
}

func startRSSSampler(pid int) *rssSampler {
	s := &rssSampler{pid: pid, quit: make(chan struct{}), done: make(chan struct{})}
	s.cpu0, _ = procCPUTime(pid)
	go func() {
		defer close(s.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := procstat.Status(pid); err == nil {
				s.maxRSS = max(s.maxRSS, m["VmRSS"])
				s.maxAnon = max(s.maxAnon, m["RssAnon"])
			}
			select {
			case <-s.quit:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// serverMem is the server's memory as reported by /proc/<pid>/status, in
// MiB.
type serverMem struct {
	PID int `json:"pid"`
	// PeakRSSMiB is VmHWM: the highest RSS since the process started.
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// RSSMiB is VmRSS at the end of the run, split into anonymous memory
	// (Go heap, caches) and file-backed pages (mmapped storage files,
	// reclaimable by the kernel but counted in RSS).
	RSSMiB     float64 `json:"rss_mib"`
	RSSAnonMiB float64 `json:"rss_anon_mib"`
	RSSFileMiB float64 `json:"rss_file_mib"`
	// MaxSampledRSSMiB and MaxSampledAnonMiB are the highest VmRSS and
	// RssAnon sampled (every 200ms) during the measured run.
	MaxSampledRSSMiB  float64 `json:"max_sampled_rss_mib"`
	MaxSampledAnonMiB float64 `json:"max_sampled_rss_anon_mib"`
	// CPUSeconds is the CPU time (user and system) the server used during
	// the measured run; the summary divides it by the events and requests
	// answered. On a shared machine it moves less than the throughput.
	CPUSeconds float64 `json:"cpu_s"`
	Error      string  `json:"error,omitempty"`
}

func (s *rssSampler) stop() *serverMem {
	close(s.quit)
	<-s.done
	const mib = 1024
	m, err := procstat.Status(s.pid)
	out := &serverMem{PID: s.pid, MaxSampledRSSMiB: float64(s.maxRSS) / mib, MaxSampledAnonMiB: float64(s.maxAnon) / mib}
	if cpu, cerr := procCPUTime(s.pid); cerr == nil {
		out.CPUSeconds = (cpu - s.cpu0).Seconds()
	}
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.PeakRSSMiB = float64(m["VmHWM"]) / mib
	out.RSSMiB = float64(m["VmRSS"]) / mib
	out.RSSAnonMiB = float64(m["RssAnon"]) / mib
	out.RSSFileMiB = float64(m["RssFile"]) / mib
	out.MaxSampledRSSMiB = max(out.MaxSampledRSSMiB, out.RSSMiB)
	out.MaxSampledAnonMiB = max(out.MaxSampledAnonMiB, out.RSSAnonMiB)
	return out
}

// procCPUTime returns the CPU time (user and system) of process pid, from
// /proc/<pid>/stat, in clock ticks of 10 ms.
func procCPUTime(pid int) (time.Duration, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted after its closing parenthesis (state is field 3).
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/<pid>/stat")
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed /proc/<pid>/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed /proc/<pid>/stat")
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// checkpointSize asks the server for its latest checkpoint size, or
// returns -1 if it cannot.
func checkpointSize(c *http.Client, base, key string) int64 {
	req, err := http.NewRequest(http.MethodGet, base+"/v1/log", nil)
	if err != nil {
		return -1
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var v struct {
		Size *int64 `json:"size"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil || v.Size == nil {
		return -1
	}
	return *v.Size
}

// summary is the result of a run, printed as text or JSON.
type summary struct {
	Mode           string           `json:"mode"`
	URL            string           `json:"url"`
	Concurrency    int              `json:"concurrency"`
	BatchSize      int              `json:"batch_size"`
	ElapsedSeconds float64          `json:"elapsed_s"`
	Requests       int64            `json:"requests"`
	OK             int64            `json:"ok_requests"`
	OKEvents       int64            `json:"ok_events"`
	Pushbacks      int64            `json:"pushback_503"`
	OtherErrors    int64            `json:"other_http_errors"`
	TransportErrs  int64            `json:"transport_errors"`
	LastTransport  string           `json:"last_transport_error,omitempty"`
	RequestsPerSec float64          `json:"requests_per_s"`
	OKRequestsPS   float64          `json:"ok_requests_per_s"`
	EventsPerSec   float64          `json:"events_per_s"`
	Status         map[string]int64 `json:"status"`
	LatencyMs      latencies        `json:"latency_ms"` // of 2xx requests
	// LatencyFromDueMs is, with -rate, the latency of 2xx requests from
	// the time each was due rather than sent: a client whose last request
	// took long sends its next one late, and the wait counts too
	// ("coordinated omission").
	LatencyFromDueMs *latencies `json:"latency_from_due_ms,omitempty"`
	Server           *serverMem `json:"server,omitempty"`
	CheckpointSize   int64      `json:"server_checkpoint_size"`
	Target           string     `json:"target"`
	Rate             float64    `json:"rate,omitempty"`
	Windows          []window   `json:"windows,omitempty"`
	// ServerSampleError is the last failure to read the server's
	// /metrics for the windows (an API key without the admin role, say).
	ServerSampleError string `json:"server_sample_error,omitempty"`
}

// window is what was answered (2xx) within one -window of the run.
type window struct {
	StartSeconds float64 `json:"start_s"`
	OKPerSec     float64 `json:"ok_requests_per_s"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	// P99FromDueMs is, with -rate, the p99 from the time each request
	// was due (see summary.LatencyFromDueMs).
	P99FromDueMs float64 `json:"p99_from_due_ms,omitempty"`
	// ServerCPUCores is the server's CPU time in the window, in cores
	// (with -pid).
	ServerCPUCores float64 `json:"server_cpu_cores,omitempty"`
	// TablesWritten is, by database, the tables the server's Badger wrote
	// in the window: memtable flushes and compaction outputs (from its
	// /metrics; needs an admin -key).
	TablesWritten map[string]float64 `json:"tables_written,omitempty"`
	// ServerWork is the server's other work in the window that can take
	// its CPU: "gc_cycles" (the Go collector's), "detector_snapshots"
	// and "detector_snapshot_seconds" (the detector's whole-state saves,
	// which grow with its state). Also from /metrics.
	ServerWork map[string]float64 `json:"server_work,omitempty"`
}

type latencies struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func summarize(cfg config, stats []*workerStats, elapsed time.Duration) *summary {
	s := &summary{
		Mode: cfg.mode, URL: cfg.url, Concurrency: cfg.conc, BatchSize: cfg.batch,
		ElapsedSeconds: elapsed.Seconds(), Status: map[string]int64{},
		Target: cfg.target, Rate: cfg.rate,
	}
	if cfg.window > 0 {
		s.Windows = windows(stats, cfg.window, elapsed)
	}
	var all, fromDue []time.Duration
	for _, st := range stats {
		all = append(all, st.latencies...)
		fromDue = append(fromDue, st.fromDue...)
		s.OK += st.okRequests
		s.OKEvents += st.okEvents
		s.Pushbacks += st.pushbacks
		s.TransportErrs += st.transport
		if st.lastErr != "" {
			s.LastTransport = st.lastErr
		}
		for code, n := range st.status {
			s.Status[strconv.Itoa(code)] += n
			s.Requests += n
		}
	}
	s.Requests += s.TransportErrs
	s.OtherErrors = s.Requests - s.OK - s.Pushbacks - s.TransportErrs
	sec := elapsed.Seconds()
	s.RequestsPerSec = float64(s.Requests) / sec
	s.OKRequestsPS = float64(s.OK) / sec
	s.EventsPerSec = float64(s.OKEvents) / sec
	s.LatencyMs = percentiles(all)
	if cfg.rate > 0 {
		l := percentiles(fromDue)
		s.LatencyFromDueMs = &l
	}
	return s
}

// percentiles sorts ds and returns their percentiles in milliseconds.
func percentiles(ds []time.Duration) latencies {
	slices.Sort(ds)
	pct := func(p float64) float64 {
		if len(ds) == 0 {
			return 0
		}
		i := int(p*float64(len(ds))+0.999999) - 1
		i = max(0, min(i, len(ds)-1))
		return float64(ds[i].Microseconds()) / 1000
	}
	return latencies{P50: pct(0.50), P90: pct(0.90), P99: pct(0.99), Max: pct(1)}
}

// windows splits the answered requests by the window they ended in.
func windows(stats []*workerStats, size, elapsed time.Duration) []window {
	n := int(elapsed / size)
	lat := make([][]time.Duration, n)
	due := make([][]time.Duration, n)
	for _, st := range stats {
		for i, end := range st.ends {
			if k := int(end / size); k < n {
				lat[k] = append(lat[k], st.latencies[i])
				if i < len(st.fromDue) {
					due[k] = append(due[k], st.fromDue[i])
				}
			}
		}
	}
	p99 := func(l []time.Duration) float64 { return float64(l[min(len(l)-1, len(l)*99/100)]) / 1e6 }
	out := make([]window, n)
	for k, l := range lat {
		slices.Sort(l)
		out[k] = window{StartSeconds: (time.Duration(k) * size).Seconds(), OKPerSec: float64(len(l)) / size.Seconds()}
		if len(l) > 0 {
			out[k].P50Ms = float64(l[len(l)/2]) / 1e6
			out[k].P99Ms = p99(l)
		}
		if d := due[k]; len(d) > 0 {
			slices.Sort(d)
			out[k].P99FromDueMs = p99(d)
		}
	}
	return out
}

func (s *summary) print(w io.Writer) {
	fmt.Fprintf(w, "loadgen: target=%s mode=%s batch=%d c=%d url=%s elapsed=%.2fs\n", s.Target, s.Mode, s.BatchSize, s.Concurrency, s.URL, s.ElapsedSeconds)
	fmt.Fprintf(w, "requests:   %d total, %d ok (2xx), %d pushback (503), %d other HTTP errors, %d transport errors\n",
		s.Requests, s.OK, s.Pushbacks, s.OtherErrors, s.TransportErrs)
	if s.LastTransport != "" {
		fmt.Fprintf(w, "            last transport error: %s\n", s.LastTransport)
	}
	fmt.Fprintf(w, "throughput: %.0f requests/s (%.0f ok/s), %.0f events/s (2xx only)\n", s.RequestsPerSec, s.OKRequestsPS, s.EventsPerSec)
	fmt.Fprintf(w, "latency:    (2xx) p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms\n", s.LatencyMs.P50, s.LatencyMs.P90, s.LatencyMs.P99, s.LatencyMs.Max)
	if l := s.LatencyFromDueMs; l != nil {
		fmt.Fprintf(w, "from due:   (2xx, from the time each was due) p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms\n", l.P50, l.P90, l.P99, l.Max)
	}
	codes := make([]string, 0, len(s.Status))
	for c := range s.Status {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%s=%d", c, s.Status[c])
	}
	fmt.Fprintf(w, "status:     %s\n", strings.Join(parts, " "))
	if m := s.Server; m != nil {
		if m.Error != "" {
			fmt.Fprintf(w, "server:     pid %d: %s\n", m.PID, m.Error)
		} else {
			fmt.Fprintf(w, "server:     pid %d peak RSS (VmHWM) %.1f MiB; now RSS %.1f MiB = anon %.1f + file-backed %.1f; max sampled during run: RSS %.1f, anon %.1f MiB\n",
				m.PID, m.PeakRSSMiB, m.RSSMiB, m.RSSAnonMiB, m.RSSFileMiB, m.MaxSampledRSSMiB, m.MaxSampledAnonMiB)
			if s.OK > 0 {
				fmt.Fprintf(w, "server cpu: %.1f s in the run: %.1f cpu-µs per request, %.1f per event\n",
					m.CPUSeconds, m.CPUSeconds*1e6/float64(s.OK), m.CPUSeconds*1e6/float64(max(1, s.OKEvents)))
			}
		}
	}
	if s.CheckpointSize >= 0 {
		fmt.Fprintf(w, "log:        latest checkpoint size %d\n", s.CheckpointSize)
	}
	for _, win := range s.Windows {
		fmt.Fprintf(w, "window:     %6.0fs %8.0f ok/s  p50 %.2fms  p99 %.2fms", win.StartSeconds, win.OKPerSec, win.P50Ms, win.P99Ms)
		if win.P99FromDueMs > 0 {
			fmt.Fprintf(w, " (from due %.2fms)", win.P99FromDueMs)
		}
		if win.ServerCPUCores > 0 {
			fmt.Fprintf(w, "  server %.2f cores", win.ServerCPUCores)
		}
		if len(win.TablesWritten) > 0 {
			dbs := slices.Sorted(maps.Keys(win.TablesWritten))
			parts := make([]string, len(dbs))
			for i, db := range dbs {
				parts[i] = fmt.Sprintf("%s %.0f", db, win.TablesWritten[db])
			}
			fmt.Fprintf(w, "  tables written: %s", strings.Join(parts, ", "))
		}
		if n, ok := win.ServerWork[gcCycles]; ok {
			fmt.Fprintf(w, "; gc %.0f", n)
		}
		if n := win.ServerWork[detectorSnapshots]; n > 0 {
			fmt.Fprintf(w, "; detector snapshots %.0f (%.2f s)", n, win.ServerWork[detectorSnapSecs])
		}
		if n := win.ServerWork[commits]; n > 0 {
			fmt.Fprintf(w, "; commits %.0f (mean %.2fms)", n, 1000*win.ServerWork[commitSecs]/n)
		}
		fmt.Fprintln(w)
	}
	if s.ServerSampleError != "" {
		fmt.Fprintf(w, "windows:    the server's metrics could not be read: %s\n", s.ServerSampleError)
	}
}

func writeJSONFile(path string, s *summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
