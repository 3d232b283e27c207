package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// Defaults of ReadAudit's optional fields.
const (
	DefaultReadAuditQueue    = 10000
	DefaultReadAuditBatch    = 500
	DefaultReadAuditInterval = time.Second
)

// ReadAuditService is the service of the access events that record reads
// of the log's personal data. Only the server writes events of it: POST
// /v1/events refuses them (reservedService).
const ReadAuditService = "accessledger"

// ReadAudit configures the auditing of reads of personal data (PCI DSS
// 10.2.1.3: access to the audit logs is itself logged). With it on, every
// authenticated request for entries, entry bundles, queries and evidence
// is recorded in the log as an access event: service "accessledger", the
// API key's name as the actor, action "read", category data_access, the
// route's kind as the resource type, success or failure. So are the
// requests to the admin endpoints that a known key made and was refused,
// and the listings of the keys (api/adminaudit.go).
//
// Reads of entries and entry bundles by one key, from one client, with
// one status, in one batch are recorded by one event that says how many
// reads it records and which was the last (attributes "reads", "last_id",
// "last_time"), so that an auditor downloading the log does not grow it
// by one entry per bundle.
//
// Reads never wait for their record: the request queues it and a single
// goroutine (Server.Run) appends the queue in batches, every Interval or
// MaxBatch reads. When the queue is full, a read is served unrecorded;
// accessledger_read_audit_events_total{result="dropped"} counts those and
// the server logs a warning.
type ReadAudit struct {
	// Enabled turns read auditing on.
	Enabled bool
	// QueueSize bounds the records waiting to be appended (default
	// 10000).
	QueueSize int
	// MaxBatch bounds the records of one append (default 500, at most
	// Config.MaxBatchEvents).
	MaxBatch int
	// Interval is the longest a record waits before its batch is
	// appended (default 1s).
	Interval time.Duration
}

// readRecord is one read, as the request queues it. The batcher turns it
// into an event.
type readRecord struct {
	time      time.Time
	key       string // the API key's name
	kind      string // resource type: entry, entry_bundle, events_query, ...
	id        string // resource id: the entry index, the bundle's path
	query     string // the raw query string of queries and evidence
	status    int
	ip        string
	userAgent string
	// action and category, if set, replace read and data_access: the
	// records of the admin endpoints (api/adminaudit.go).
	action, category string
	// attempts, if more than 1, is how many refused requests the record
	// stands for: this one, the first, and more until lastTime
	// (api/adminaudit.go).
	attempts int
	lastTime time.Time
}

// readAuditor queues reads and appends them. The queue is its only shared
// state; everything else belongs to the goroutine of run.
type readAuditor struct {
	cfg      ReadAudit
	ledger   *ledger.Ledger
	q        chan readRecord
	appended prometheus.Counter
	dropped  prometheus.Counter
	// unwarned counts the drops not yet reported in the log; lastWarn is
	// when the last report was made (Unix nanoseconds).
	unwarned atomic.Int64
	lastWarn atomic.Int64
	// refused bounds the records of refused requests to the admin
	// endpoints (api/adminaudit.go); run flushes it.
	refused refusals
}

// readKinds maps the routes holding personal data to the resource type
// their reads are recorded under.
var readKinds = map[string]string{
	"/v1/entries/:index": "entry",
	"/tile/*path":        "entry_bundle",
	"/v1/events":         "events_query",
	"/v1/events/count":   "events_count",
	"/v1/events/top":     "events_top",
	"/v1/evidence":       "evidence",
	"/v1/incidents/:id":  "incident",
	// Alerts name accounts and addresses (group values, summary,
	// response targets).
	"/v1/alerts":        "alerts",
	"/v1/alerts/:id":    "alert",
	"/v1/alerts/stream": "alerts_stream",
}

// ctxNothingRead marks an answer that gave no personal data (an empty
// page of alerts, a long poll or a stream that ended without one): its
// read is not recorded, or every responder's polling would fill the log.
const ctxNothingRead = "accessledger.nothing_read"

// nothingRead marks c's answer as holding no personal data (ctxNothingRead).
func nothingRead(c *gin.Context) { c.Set(ctxNothingRead, true) }

// newReadAuditor returns the auditor of cfg, or nil if it is off.
func newReadAuditor(cfg ReadAudit, maxBatch int, l *ledger.Ledger) *readAuditor {
	if !cfg.Enabled {
		return nil
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultReadAuditQueue
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultReadAuditBatch
	}
	cfg.MaxBatch = min(cfg.MaxBatch, maxBatch)
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultReadAuditInterval
	}
	return &readAuditor{cfg: cfg, ledger: l, q: make(chan readRecord, cfg.QueueSize)}
}

// metrics returns the auditor's counters, to register.
func (a *readAuditor) metrics() prometheus.Collector {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accessledger_read_audit_events_total",
		Help: "Reads of personal data recorded in the log (appended), or served unrecorded because the queue was full or the append failed (dropped).",
	}, []string{"result"})
	a.appended = vec.WithLabelValues("appended")
	a.dropped = vec.WithLabelValues("dropped")
	return vec
}

// auditReads wraps require, the access check of a route holding personal
// data, so that each read it lets through or refuses for want of a role
// is recorded once answered. Requests without a valid key name nobody and
// are not recorded (unknown keys must not be able to fill the log), nor
// are those refused by the rate limit.
func (s *Server) auditReads(require gin.HandlerFunc) gin.HandlerFunc {
	return s.recordAfter(require, s.recordRead)
}

// recordAfter wraps require, an endpoint's access check, so that record
// is called with the request's start once the request is answered,
// refused or served; without read auditing it is require alone.
func (s *Server) recordAfter(require gin.HandlerFunc, record func(*gin.Context, time.Time)) gin.HandlerFunc {
	if s.reads == nil {
		return require
	}
	return func(c *gin.Context) {
		start := s.cfg.Clock()
		require(c)
		// Deferred: a stream the client cut short ends its handler with
		// panic(http.ErrAbortHandler), and what it read is still a read.
		defer record(c, start)
		if !c.IsAborted() {
			c.Next()
		}
	}
}

// recordRead queues the record of the read c served (or refused), if a
// key made it.
func (s *Server) recordRead(c *gin.Context, start time.Time) {
	name := c.GetString(ctxKeyName)
	status := c.Writer.Status()
	if name == "" || status == 429 || status < 300 && c.GetBool(ctxNothingRead) {
		return
	}
	r := readRecord{
		time:      start,
		key:       name,
		kind:      readKinds[c.FullPath()],
		status:    status,
		ip:        c.ClientIP(),
		userAgent: c.Request.UserAgent(),
	}
	switch r.kind {
	case "entry":
		r.id = c.Param("index")
	case "entry_bundle":
		r.id = strings.TrimPrefix(c.Param("path"), "/")
	case "incident", "alert":
		r.id = c.Param("id")
	default:
		r.query = c.Request.URL.RawQuery
	}
	s.reads.enqueue(r, s)
}

// enqueue queues r without ever blocking; when the queue is full, r is
// dropped, counted, and reported in the log at most once a second.
func (a *readAuditor) enqueue(r readRecord, s *Server) {
	select {
	case a.q <- r:
		return
	default:
	}
	a.dropped.Inc()
	n := a.unwarned.Add(1)
	now := time.Now().UnixNano()
	last := a.lastWarn.Load()
	if now-last >= int64(time.Second) && a.lastWarn.CompareAndSwap(last, now) {
		a.unwarned.Add(-n)
		s.log.Warn("read auditing is behind: reads served without being recorded in the log", "dropped", n, "queue_size", a.cfg.QueueSize)
	}
}

// run appends the queued reads in batches until ctx ends, then appends
// what is still queued (bounded by a few seconds) and returns an error if
// some could not be.
func (a *readAuditor) run(ctx context.Context, s *Server) error {
	// An append under way completes even if ctx ends meanwhile: the
	// ledger is still open (see Run).
	actx := context.WithoutCancel(ctx)
	batch := make([]readRecord, 0, a.cfg.MaxBatch)
	tick := time.NewTicker(a.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case r := <-a.q:
			batch = append(batch, r)
			if len(batch) >= a.cfg.MaxBatch {
				a.flush(actx, s, batch)
				batch = batch[:0]
			}
		case <-tick.C:
			a.refused.flush(s.cfg.Clock(), false, func(r readRecord) { a.enqueue(r, s) })
			if len(batch) > 0 {
				a.flush(actx, s, batch)
				batch = batch[:0]
			}
		case <-ctx.Done():
			// The HTTP server has stopped (see Run): drain what is left,
			// the refusals not recorded yet included.
			a.refused.flush(s.cfg.Clock(), true, func(r readRecord) { a.enqueue(r, s) })
			fctx, cancel := context.WithTimeout(actx, 10*time.Second)
			defer cancel()
			lost := 0
			for {
				select {
				case r := <-a.q:
					batch = append(batch, r)
					if len(batch) < a.cfg.MaxBatch {
						continue
					}
				default:
				}
				if len(batch) == 0 {
					break
				}
				lost += a.flush(fctx, s, batch)
				batch = batch[:0]
			}
			if lost > 0 {
				return fmt.Errorf("read auditing: %d reads could not be recorded at shutdown", lost)
			}
			return nil
		}
	}
}

// flush appends the events of batch and returns how many reads were
// dropped. It retries while the log pushes back, for up to a few seconds;
// reads keep queueing meanwhile, and are dropped if the queue fills.
func (a *readAuditor) flush(ctx context.Context, s *Server, batch []readRecord) int {
	now := s.cfg.Clock().UTC()
	groups := coalesceReads(batch)
	entries := make([]ledger.Entry, 0, len(groups))
	recorded := 0
	for _, g := range groups {
		leaf, err := g.leaf(now)
		if err != nil {
			// A bug: readEvent builds only valid events.
			s.log.Error("read auditing built an invalid event; it is not recorded", "kind", g.first.kind, "err", err)
			a.dropped.Add(float64(g.reads))
			continue
		}
		entries = append(entries, ledger.Entry{Data: leaf})
		recorded += g.reads
	}
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		_, err := a.ledger.Append(ctx, entries...)
		if err == nil {
			a.appended.Add(float64(recorded))
			return len(batch) - recorded
		}
		if errors.Is(err, ledger.ErrPushback) && attempt < 6 && ctx.Err() == nil {
			select {
			case <-time.After(backoff):
				backoff *= 2
				continue
			case <-ctx.Done():
			}
		}
		a.dropped.Add(float64(recorded))
		s.log.Warn("read auditing: appending recorded reads failed; they are dropped", "reads", recorded, "err", err)
		return len(batch)
	}
}

// readGroup is the reads one event records: first, and reads-1 more of
// the same kind by the same key from the same client with the same
// status, the last of them last.
type readGroup struct {
	first, last readRecord
	reads       int
}

// coalesceReads groups the reads of entries and entry bundles that share
// key, kind, status, address and user agent, in the order of their first
// read; every other read (queries, evidence, incidents) is a group of its
// own. An auditor downloading the whole log reads thousands of bundles a
// second: one event per bundle made the log grow by one entry per 256
// it served, and cost the server about 15 % of its CPU during a full
// audit. The event of a group says how many reads it records and the
// last one (see readGroup.event).
func coalesceReads(batch []readRecord) []readGroup {
	type groupKey struct {
		key, kind, ip, userAgent string
		status                   int
	}
	groups := make([]readGroup, 0, len(batch))
	var at map[groupKey]int
	for _, r := range batch {
		if r.kind != "entry" && r.kind != "entry_bundle" {
			groups = append(groups, readGroup{first: r, last: r, reads: 1})
			continue
		}
		k := groupKey{r.key, r.kind, r.ip, r.userAgent, r.status}
		if i, ok := at[k]; ok {
			groups[i].last = r
			groups[i].reads++
			continue
		}
		if at == nil {
			at = make(map[groupKey]int)
		}
		at[k] = len(groups)
		groups = append(groups, readGroup{first: r, last: r, reads: 1})
	}
	return groups
}

// leaf returns the leaf of the access event recording g.
func (g readGroup) leaf(receivedAt time.Time) ([]byte, error) {
	body := g.event().Canonical()
	// Check the event as any submitted one is checked: a leaf of kind
	// event must parse.
	if _, err := event.Parse(body, event.ParseOptions{}); err != nil {
		return nil, err
	}
	return event.EncodeLeaf(event.KindEvent, receivedAt, body)
}

// event returns the access event recording g: that of its first read,
// with, for a group of several, the attributes "reads" (how many),
// "last_id" (the resource of the last) and "last_time" (when it was
// made).
func (g readGroup) event() *event.Event {
	ev := g.first.event()
	if g.reads > 1 {
		ev.Attributes["reads"] = strconv.Itoa(g.reads)
		ev.Attributes["last_id"] = event.FitText(g.last.id, event.MaxAttrValueLen)
		ev.Attributes["last_time"] = g.last.time.UTC().Format(time.RFC3339Nano)
	}
	return ev
}

// event returns the access event recording r.
func (r readRecord) event() *event.Event {
	ip, err := netip.ParseAddr(r.ip)
	if err != nil {
		ip = netip.IPv6Unspecified()
	}
	ev := &event.Event{
		Time:     r.time.UTC(),
		Service:  ReadAuditService,
		Actor:    event.Actor{ID: event.FitText(r.key, event.MaxActorIDLen), Type: event.ActorService},
		Source:   event.Source{IP: ip.Unmap().WithZone(""), UserAgent: event.FitText(r.userAgent, event.MaxUserAgentLen)},
		Action:   cmp.Or(r.action, "read"),
		Category: cmp.Or(r.category, event.CategoryDataAccess),
		Outcome:  event.OutcomeSuccess,
		Resource: &event.Resource{Type: r.kind, ID: event.FitText(r.id, event.MaxResourceLen)},
		Attributes: map[string]string{
			"status": strconv.Itoa(r.status),
		},
	}
	if r.status >= 400 {
		ev.Outcome = event.OutcomeFailure
		ev.Reason = fmt.Sprintf("answered %d", r.status)
	}
	if ev.Actor.ID == "" {
		ev.Actor.ID = "unnamed"
	}
	if r.query != "" {
		ev.Attributes["query"] = event.FitText(r.query, event.MaxAttrValueLen)
	}
	if r.attempts > 1 {
		ev.Attributes["attempts"] = strconv.Itoa(r.attempts)
		ev.Attributes["last_time"] = r.lastTime.UTC().Format(time.RFC3339Nano)
	}
	return ev
}
