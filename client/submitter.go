// Package client is the Go SDK of accessledger: a Submitter that records
// access events (batching, retrying, never duplicating), an Auditor that
// verifies the log's checkpoints and proofs and remembers what it trusted,
// and HTTP middleware (net/http and gin) that records each request as an
// access event without slowing it down.
package client

import (
	"bytes"
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/event"
)

// Errors callers branch on.
var (
	// ErrClosed means the Submitter is closed.
	ErrClosed = errors.New("client: submitter closed")
	// ErrBufferFull means TrySubmit found the buffer full; the event was
	// dropped.
	ErrBufferFull = errors.New("client: buffer full")
	// ErrRejected means the server refused an event for good (invalid,
	// an id reused with other content, a key without the submitter role);
	// RejectedError says why.
	ErrRejected = errors.New("client: event rejected")
	// ErrDropped means buffered events were dropped, neither acknowledged
	// nor rejected: Flush returns it (wrapped) when Close gave up before
	// the events buffered ahead of it were answered. They may or may not
	// be in the log.
	ErrDropped = errors.New("client: events dropped")
)

// RejectedError is an event the server refused for good.
type RejectedError struct {
	// Status is the HTTP status of the refusal.
	Status int
	// Reason is the server's message (and the offending fields).
	Reason string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("client: event rejected (%d): %s", e.Status, e.Reason)
}

func (e *RejectedError) Unwrap() error { return ErrRejected }

// Result is what the log answered for one event.
type Result struct {
	// Index is the event's position in the log.
	Index uint64
	// LeafHash is the RFC 6962 hash of the stored leaf.
	LeafHash []byte
	// Duplicate is true if the event (same service and id) was already in
	// the log: a retry of something that had landed.
	Duplicate bool
	// Err is a *RejectedError if the server refused this event.
	Err error
}

// SubmitterConfig configures a Submitter. URL and APIKey are required.
type SubmitterConfig struct {
	// URL is the server's base URL (http://host:port).
	URL string
	// APIKey is a key with the submitter role.
	APIKey string
	// HTTPClient sends the requests (default: a client with a 30s
	// timeout).
	HTTPClient *http.Client
	// BatchSize is the most events sent in one request (default 500, at
	// most 1000).
	BatchSize int
	// BufferSize bounds the events waiting to be sent (default 10,000):
	// beyond it Submit waits and TrySubmit drops.
	BufferSize int
	// FlushInterval is the longest an event waits for its batch to fill
	// (default 200ms).
	FlushInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait between retries (default
	// 100ms and 10s). Before retry n (from 0) the bound is
	// min(MinBackoff·2^n, MaxBackoff) and the wait is drawn uniformly
	// from (0, bound] (full jitter); when the server sent Retry-After, the
	// wait is Retry-After plus a jitter drawn from (0, min(Retry-After,
	// bound)]: never sooner than asked, and spread.
	MinBackoff, MaxBackoff time.Duration
	// OnRejected, if set, is called (from the sending goroutine) with each
	// event the server refused for good.
	OnRejected func(ev event.Event, err error)
	// Logger receives what the Submitter does; nil discards it.
	Logger *slog.Logger
	// Registerer, if set, receives the Submitter's counters as Prometheus
	// metrics (accessledger_client_events_total{result=...}, with
	// result="dropped" for events dropped under back-pressure).
	Registerer prometheus.Registerer
}

// Stats counts what a Submitter did since it started.
type Stats struct {
	Submitted    uint64 // accepted into the buffer
	Acknowledged uint64 // answered with an index (duplicates included)
	Duplicates   uint64 // already in the log: a retry of an event that had landed
	Rejected     uint64 // refused by the server for good
	Dropped      uint64 // refused by TrySubmit (buffer full) or lost at Close
	Retries      uint64 // requests sent again
}

// Submitter sends events to the log in batches from a bounded buffer, in
// the background, retrying on 429, 503, other 5xx and network errors, on
// 401 (a key revoked, expired or past its rotation's grace: the events
// are kept until the key is fixed), and on any answer that is not the
// log's own (an ingress's or a proxy's error page, a 404 or 405 from a
// wrong URL, the log's "send the request again"), which it logs at error
// level now and again. Events are rejected only by the log's own JSON
// refusal (400, 403, 409, 413, 415).
// Each event without an id gets one (NewEventID) when it is submitted, so
// a retry never appends it twice. Its methods are safe for concurrent use.
//
// Submit and TrySubmit return once the event is buffered, not when it is
// durable: Flush waits for that, and Close flushes and stops. Send sends
// and returns the events' indexes.
type Submitter struct {
	cfg   SubmitterConfig
	log   *slog.Logger
	queue chan item
	space chan struct{} // signalled when the sender takes from the queue
	// closing is closed by Close; then no more events are accepted.
	closing   chan struct{}
	drain     chan struct{} // closed once no enqueue can be in progress
	closeOnce sync.Once
	stopped   chan struct{} // closed when the sending goroutine ends
	// sendCtx is the background sender's; Close cancels it when its own
	// context ends, abandoning requests in flight and retries.
	sendCtx    context.Context
	cancelSend context.CancelFunc
	// mu is held shared by an enqueue (never while it waits), and
	// exclusively by Close once closing is closed.
	mu sync.RWMutex

	submitted, acknowledged, duplicates, rejected, dropped, retries atomic.Uint64
	// lastDropWarn is when TrySubmit last logged a drop (Unix ns).
	lastDropWarn atomic.Int64
}

// dropWarnEvery is how often, at most, TrySubmit logs that it drops
// events.
const dropWarnEvery = 10 * time.Second

// item is an event waiting to be sent, or a flush marker.
type item struct {
	ev event.Event
	// flush makes the item a marker: it is sent, once everything before
	// it is answered, nil or an ErrDropped (it has room for one).
	flush chan error
}

// NewSubmitter starts a Submitter. Close stops it.
func NewSubmitter(cfg SubmitterConfig) (*Submitter, error) {
	// A key read from a file keeps its newline, which no HTTP header
	// may carry: every request then failed in the HTTP client, reported
	// as a log it could not reach.
	cfg.APIKey = strings.TrimSpace(cfg.APIKey)
	if cfg.URL == "" || cfg.APIKey == "" {
		return nil, errors.New("client: SubmitterConfig.URL and APIKey are required")
	}
	if strings.ContainsFunc(cfg.APIKey, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, errors.New("client: SubmitterConfig.APIKey holds spaces or control characters: it is not an API key")
	}
	cfg.URL = strings.TrimSuffix(cfg.URL, "/")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	cfg.BatchSize = min(cfg.BatchSize, 1000)
	if cfg.BufferSize <= 0 {
		cfg.BufferSize = 10_000
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 200 * time.Millisecond
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(10*time.Second, cfg.MinBackoff)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Submitter{
		cfg:     cfg,
		log:     cfg.Logger,
		queue:   make(chan item, cfg.BufferSize),
		space:   make(chan struct{}, 1),
		closing: make(chan struct{}),
		drain:   make(chan struct{}),
		stopped: make(chan struct{}),
	}
	s.sendCtx, s.cancelSend = context.WithCancel(context.Background())
	if cfg.Registerer != nil {
		for result, c := range map[string]*atomic.Uint64{"submitted": &s.submitted, "acknowledged": &s.acknowledged,
			"duplicate": &s.duplicates, "rejected": &s.rejected, "dropped": &s.dropped} {
			err := cfg.Registerer.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "accessledger_client_events_total",
				Help:        "Events handled by the accessledger client, by result (submitted, acknowledged, duplicate, rejected, dropped).",
				ConstLabels: prometheus.Labels{"result": result},
			}, func() float64 { return float64(c.Load()) }))
			if err != nil {
				return nil, fmt.Errorf("client: registering metrics: %w", err)
			}
		}
		err := cfg.Registerer.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "accessledger_client_retries_total",
			Help: "Requests the accessledger client sent again after a 429, a 5xx or a network error.",
		}, func() float64 { return float64(s.retries.Load()) }))
		if err != nil {
			return nil, fmt.Errorf("client: registering metrics: %w", err)
		}
	}
	go s.run()
	return s, nil
}

// prepare gives an event an id (if it has none) and a time (now, if
// zero).
func prepare(ev event.Event) event.Event {
	if ev.ID == "" {
		ev.ID = NewEventID()
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	return ev
}

// NewEventID returns a new idempotency id: resubmitting an event with the
// same id (and service) never appends it twice. It is "c-" and 32 hex
// digits: 16 bytes laid out as a UUIDv7 (RFC 9562), a Unix millisecond
// timestamp, the fraction of the millisecond in 12 bits (method 3), then
// 62 random bits. Ids made later sort later, so the server writes its
// idempotency records in order; random ids cost it about a fifth more
// CPU per event (BENCHMARKS.md).
func NewEventID() string {
	var b [16]byte
	crand.Read(b[6:])
	ns := time.Now().UnixNano()
	ms, frac := uint64(ns/1e6), uint64(ns%1e6)*4096/1e6
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	b[6], b[7] = 0x70|byte(frac>>8), byte(frac)
	b[8] = b[8]&0x3f | 0x80
	return "c-" + hex.EncodeToString(b[:])
}

// Submit buffers ev for sending, waiting while the buffer is full until
// ctx ends. An event without an id gets one now.
func (s *Submitter) Submit(ctx context.Context, ev event.Event) error {
	it := item{ev: prepare(ev)}
	for {
		ok, err := s.enqueue(it)
		if ok || err != nil {
			return err
		}
		select {
		case <-s.space:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closing:
			return ErrClosed
		}
	}
}

// enqueue adds it to the buffer if there is room, without waiting.
func (s *Submitter) enqueue(it item) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	select {
	case <-s.closing:
		return false, ErrClosed
	default:
	}
	select {
	case s.queue <- it:
		if it.flush == nil {
			s.submitted.Add(1)
		}
		return true, nil
	default:
		return false, nil
	}
}

// TrySubmit buffers ev if there is room, and never waits: with the buffer
// full it drops the event, counts it in Stats.Dropped and returns
// ErrBufferFull. Drops are logged at warn level, at most every ten
// seconds, with the count so far.
func (s *Submitter) TrySubmit(ev event.Event) error {
	ok, err := s.enqueue(item{ev: prepare(ev)})
	switch {
	case err != nil:
		s.drop(err)
		return err
	case !ok:
		s.drop(ErrBufferFull)
		return ErrBufferFull
	}
	return nil
}

// drop counts an event TrySubmit dropped, and says so now and again: an
// outage dropped events without a word.
func (s *Submitter) drop(why error) {
	n := s.dropped.Add(1)
	now := time.Now().UnixNano()
	last := s.lastDropWarn.Load()
	if (last == 0 || now-last >= int64(dropWarnEvery)) && s.lastDropWarn.CompareAndSwap(last, now) {
		msg := "accessledger: dropping events: the buffer is full (the log is slow or unreachable)"
		if errors.Is(why, ErrClosed) {
			msg = "accessledger: dropping events: the submitter is closed"
		}
		s.log.Warn(msg, "dropped_total", n, "buffer_size", s.cfg.BufferSize)
	}
}

// Flush returns once every event buffered before it was called has been
// answered by the server (acknowledged or rejected), or when ctx ends. If
// Close gave up and dropped events buffered before it, it returns an
// error wrapping ErrDropped.
func (s *Submitter) Flush(ctx context.Context) error {
	done := make(chan error, 1)
	for {
		ok, err := s.enqueue(item{flush: done})
		if err != nil {
			return err
		}
		if ok {
			break
		}
		select {
		case <-s.space:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closing:
			return ErrClosed
		}
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		select {
		case err := <-done:
			return err
		default:
			return ErrClosed
		}
	}
}

// Close stops accepting events, sends everything buffered, and stops. If
// ctx ends first it gives up: what was not sent is counted as dropped and
// Close returns ctx's error.
func (s *Submitter) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		close(s.closing)
		// A barrier: wait for enqueues in progress; none can start now.
		s.mu.Lock()
		//lint:ignore SA2001 the empty critical section is the barrier
		s.mu.Unlock()
		close(s.drain)
	})
	select {
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		s.cancelSend()
		<-s.stopped
		return ctx.Err()
	}
}

// Stats returns the counters.
func (s *Submitter) Stats() Stats {
	return Stats{
		Submitted: s.submitted.Load(), Acknowledged: s.acknowledged.Load(), Duplicates: s.duplicates.Load(),
		Rejected: s.rejected.Load(), Dropped: s.dropped.Load(), Retries: s.retries.Load(),
	}
}

// run is the sending goroutine: it batches the buffer's events and sends
// each batch until it is answered.
func (s *Submitter) run() {
	defer close(s.stopped)
	defer s.cancelSend()
	var batch []event.Event
	var lost int // events dropped when Close gave up
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	send := func() {
		if len(batch) > 0 {
			if !s.deliver(batch) {
				lost += len(batch)
			}
			batch = batch[:0]
		}
		timer.Stop()
	}
	handle := func(it item) {
		if it.flush != nil {
			send()
			// Drops happen only once Close gave up, and from then on
			// every batch is dropped: a marker after one has events
			// before it that were dropped.
			if lost > 0 {
				it.flush <- fmt.Errorf("%w: Close gave up before %d buffered events were answered; they may or may not be in the log", ErrDropped, lost)
			} else {
				it.flush <- nil
			}
			return
		}
		if len(batch) == 0 {
			timer.Reset(s.cfg.FlushInterval)
		}
		batch = append(batch, it.ev)
		if len(batch) >= s.cfg.BatchSize {
			send()
		}
	}
	for {
		select {
		case it := <-s.queue:
			select {
			case s.space <- struct{}{}:
			default:
			}
			handle(it)
		case <-timer.C:
			send()
		case <-s.drain:
			for {
				select {
				case it := <-s.queue:
					handle(it)
					continue
				default:
				}
				break
			}
			send()
			return
		}
	}
}

// deliver sends a batch until every event is answered, or Close gives
// up; it reports whether the events were answered.
func (s *Submitter) deliver(batch []event.Event) bool {
	results, err := s.send(s.sendCtx, batch)
	if err != nil {
		// Close gave up: these events may or may not be in the log.
		s.dropped.Add(uint64(len(batch)))
		s.log.Warn("accessledger: gave up sending events at close", "events", len(batch), "err", err)
		return false
	}
	for i, r := range results {
		s.count(batch[i], r)
	}
	return true
}

func (s *Submitter) count(ev event.Event, r Result) {
	if r.Err != nil {
		s.rejected.Add(1)
		s.log.Warn("accessledger: event rejected", "id", ev.ID, "err", r.Err)
		if s.cfg.OnRejected != nil {
			s.cfg.OnRejected(ev, r.Err)
		}
		return
	}
	s.acknowledged.Add(1)
	if r.Duplicate {
		s.duplicates.Add(1)
	}
}

// Send sends events now (in requests of at most BatchSize), retrying as
// the background sender does, and returns one Result for each, in order.
// Events without an id get one first, so that retries are safe; events
// without a time get the current one (so sending the same event value
// twice is idempotent only if it has both an id and a time). It fails
// only if ctx ends (the events may then be in the log or not).
func (s *Submitter) Send(ctx context.Context, evs ...event.Event) ([]Result, error) {
	out := make([]Result, 0, len(evs))
	batch := make([]event.Event, len(evs))
	for i, ev := range evs {
		batch[i] = prepare(ev)
	}
	for len(batch) > 0 {
		n := min(len(batch), s.cfg.BatchSize)
		rs, err := s.send(ctx, batch[:n])
		if err != nil {
			return out, err
		}
		for _, r := range rs {
			if r.Err == nil {
				s.acknowledged.Add(1)
				if r.Duplicate {
					s.duplicates.Add(1)
				}
			} else {
				s.rejected.Add(1)
			}
		}
		out = append(out, rs...)
		batch = batch[n:]
	}
	return out, nil
}

// send posts a batch, retrying until every event is answered; a 413
// splits it. It returns early only when ctx ends.
func (s *Submitter) send(ctx context.Context, batch []event.Event) ([]Result, error) {
	body := encodeBatch(batch)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.retries.Add(1)
		}
		status, header, resp, err := s.post(ctx, body)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// Said at the first failures and then now and again, so that
			// an unreachable log is seen, not retried in silence.
			lvl := slog.LevelDebug
			if attempt < 3 || attempt%10 == 0 {
				lvl = slog.LevelWarn
			}
			s.log.Log(ctx, lvl, "accessledger: cannot reach the log; retrying", "err", err, "attempt", attempt+1)
		case status == http.StatusOK || status == http.StatusCreated:
			rs, perr := parseResults(resp, len(batch), status)
			if perr == nil {
				return rs, nil
			}
			// An answer we cannot read: retrying is safe (ids). Said
			// at the first ones and then now and again, as for a log
			// that cannot be reached.
			lvl := slog.LevelDebug
			if attempt < 3 || attempt%10 == 0 {
				lvl = slog.LevelWarn
			}
			s.log.Log(ctx, lvl, "accessledger: unreadable answer; retrying", "status", status, "err", perr, "attempt", attempt+1)
		case status == http.StatusRequestEntityTooLarge && len(batch) > 1:
			half := len(batch) / 2
			a, err := s.send(ctx, batch[:half])
			if err != nil {
				return nil, err
			}
			b, err := s.send(ctx, batch[half:])
			if err != nil {
				return nil, err
			}
			return append(a, b...), nil
		case retryable(status):
			wait = retryAfter(header)
			s.log.Debug("accessledger: server busy; retrying", "status", status, "retry_after", wait)
		case isRefusal(status, header, resp):
			return rejectedResults(resp, len(batch), status), nil
		case status == http.StatusRequestEntityTooLarge:
			// One event, too large for the log or for a proxy in front
			// of it (nginx's client_max_body_size): sent again, it
			// would be refused again, and hold up every event after it.
			return rejectedResults(resp, len(batch), status), nil
		case status == http.StatusUnauthorized:
			// The key, not the events: revoked, expired, or past its
			// rotation's grace. The events are kept and retried until
			// the key is fixed (they were all rejected, for good).
			lvl := slog.LevelDebug
			if attempt < 3 || attempt%10 == 0 {
				lvl = slog.LevelError
			}
			s.log.Log(ctx, lvl, "accessledger: the log refuses the API key; events are kept and retried until it is fixed",
				"status", status, "reason", truncateReason(resp), "attempt", attempt+1)
		default:
			// Not the log's refusal: an ingress's default backend during
			// a deploy, a proxy's error page, a wrong URL, or the log's
			// "send the request again". The events were refused by no
			// one; they are kept and the batch is sent again, loudly,
			// for someone must look at what answers in the log's place.
			wait = retryAfter(header)
			lvl := slog.LevelDebug
			if attempt < 3 || attempt%10 == 0 {
				lvl = slog.LevelError
			}
			s.log.Log(ctx, lvl, "accessledger: unexpected answer (not the log's own; a proxy, an ingress or a wrong URL?); events are kept and retried",
				"status", status, "content_type", header.Get("Content-Type"), "body", truncateReason(resp),
				"url", s.cfg.URL, "attempt", attempt+1)
		}
		if err := sleep(ctx, s.backoff(attempt, wait)); err != nil {
			return nil, err
		}
	}
}

// backoff is the wait before retry attempt+1. Its bound b is exponential,
// MinBackoff·2^attempt capped at MaxBackoff, and the wait is drawn
// uniformly from (0, b] (full jitter). When the server asked for
// retryAfter (> 0), the wait is retryAfter plus a jitter drawn uniformly
// from (0, min(retryAfter, b)]: never sooner than asked, and the clients
// it pushed back do not all return at the same instant, as they did when
// the wait was retryAfter exactly.
func (s *Submitter) backoff(attempt int, retryAfter time.Duration) time.Duration {
	b := s.cfg.MinBackoff << min(attempt, 20)
	if b <= 0 || b > s.cfg.MaxBackoff {
		b = s.cfg.MaxBackoff
	}
	if retryAfter > 0 {
		return retryAfter + time.Duration(rand.Int64N(int64(min(retryAfter, b)))+1)
	}
	return time.Duration(rand.Int64N(int64(b)) + 1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryable reports whether a status means "try again later".
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || (status >= 500 && status != http.StatusNotImplemented)
}

// retryAfter reads Retry-After (seconds or an HTTP date), capped at a
// minute.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return min(time.Duration(n)*time.Second, time.Minute)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), time.Minute)
	}
	return 0
}

func (s *Submitter) post(ctx context.Context, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL+"/v1/events?partial=true", bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}

// encodeBatch is {"events":[...]} with each event in canonical form.
func encodeBatch(batch []event.Event) []byte {
	b := make([]byte, 0, 64+400*len(batch))
	b = append(b, `{"events":[`...)
	for i := range batch {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, batch[i].Canonical()...)
	}
	return append(b, "]}"...)
}

// wireResult is one element of the server's answer.
type wireResult struct {
	Index     *uint64 `json:"index"`
	LeafHash  string  `json:"leaf_hash"`
	Duplicate bool    `json:"duplicate"`
	Status    int     `json:"status"`
	Errors    []struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"errors"`
}

func parseResults(body []byte, n, status int) ([]Result, error) {
	var r struct {
		Results []wireResult `json:"results"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	if len(r.Results) != n {
		return nil, fmt.Errorf("%d results for %d events", len(r.Results), n)
	}
	out := make([]Result, n)
	for i, w := range r.Results {
		if w.Index == nil {
			var reasons []string
			for _, e := range w.Errors {
				reasons = append(reasons, strings.TrimSpace(e.Field+": "+e.Reason))
			}
			st := w.Status
			if st == 0 {
				st = http.StatusBadRequest // a server before the per-event status
			}
			out[i].Err = &RejectedError{Status: st, Reason: strings.Join(reasons, "; ")}
			continue
		}
		h, err := base64.StdEncoding.DecodeString(w.LeafHash)
		if err != nil {
			return nil, fmt.Errorf("leaf hash: %w", err)
		}
		out[i] = Result{Index: *w.Index, LeafHash: h, Duplicate: w.Duplicate}
	}
	return out, nil
}

// truncateReason returns the server's message in an error answer: its
// "error" member, else the start of the body.
func truncateReason(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.ToValidUTF8(strings.TrimSpace(string(body[:min(len(body), 200)])), "?")
}

// errorAnswer is the log's error answer (api.errorBody): a message and,
// for rejected events, the reasons for each.
type errorAnswer struct {
	Error  *string `json:"error"`
	Events []struct {
		Index  *int   `json:"index"`
		Field  string `json:"field"`
		Reason string `json:"reason"`
		Status int    `json:"status"` // since the log gives each event's own
	} `json:"events"`
}

// isRefusal reports whether an answer is the log refusing the batch for
// good: a status the log refuses events with (400 invalid or malformed,
// 403 a key without the submitter role, 409 an id reused with other
// content, 413 an event too large, 415), with the log's own JSON error
// body: a JSON Content-Type, an object of an "error" message and, for
// rejected events, "events" (always there for a 409), and nothing else.
// Anything else (an HTML 404 of an ingress, a proxy's 403, a 405, a 421,
// someone else's JSON) did not come from the log, and neither refused nor
// accepted the events. The log's 400 "reading the request body failed;
// send the request again" asks for a retry.
func isRefusal(status int, header http.Header, body []byte) bool {
	switch status {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusConflict,
		http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
	default:
		return false
	}
	if mt, _, err := mime.ParseMediaType(header.Get("Content-Type")); err != nil || mt != "application/json" {
		return false
	}
	var e errorAnswer
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || dec.More() || e.Error == nil || strings.TrimSpace(*e.Error) == "" {
		return false
	}
	for _, ev := range e.Events {
		if ev.Index == nil || ev.Reason == "" {
			return false
		}
	}
	switch status {
	case http.StatusBadRequest:
		// The log could not read the body (a client too slow, a
		// connection cut): nothing is wrong with the events.
		return !strings.Contains(*e.Error, "send the request again")
	case http.StatusConflict:
		return len(e.Events) > 0
	}
	return true
}

// rejectedResults turns a refusal of the whole batch into one result per
// event, with the reasons the server gave for each.
func rejectedResults(body []byte, n, status int) []Result {
	var e struct {
		Error  string `json:"error"`
		Events []struct {
			Index  int    `json:"index"`
			Field  string `json:"field"`
			Reason string `json:"reason"`
			Status int    `json:"status"`
		} `json:"events"`
	}
	json.Unmarshal(body, &e)
	if e.Error == "" {
		e.Error = strings.TrimSpace(string(body[:min(len(body), 200)]))
	}
	reasons := make([][]string, n)
	statuses := make([]int, n)
	for _, ev := range e.Events {
		if ev.Index >= 0 && ev.Index < n {
			r := ev.Reason
			if ev.Field != "" {
				r = ev.Field + ": " + r
			}
			reasons[ev.Index] = append(reasons[ev.Index], strings.TrimSpace(r))
			if ev.Status >= 400 && ev.Status < 500 {
				// The event's own status (400 invalid, 409 an id
				// reused), where the answer's is the batch's.
				statuses[ev.Index] = ev.Status
			}
		}
	}
	out := make([]Result, n)
	for i := range out {
		msg := e.Error
		if len(reasons[i]) > 0 {
			msg += " (" + strings.Join(reasons[i], "; ") + ")"
		}
		out[i].Err = &RejectedError{Status: cmp.Or(statuses[i], status), Reason: msg}
	}
	return out
}
