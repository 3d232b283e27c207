// Package api is accessledger's HTTP surface: routing, limits and the one
// place where errors become HTTP statuses. Handlers stay thin; the ledger
// and the event package do the work.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/semaphore"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/ledger/index"
	"github.com/accessledger/accessledger/witness"
)

// Defaults for Config's optional fields.
const (
	DefaultMaxBodyBytes         = 8 << 20
	DefaultMaxBatchEvents       = 1000
	DefaultMaxInflightBodyBytes = 64 << 20
	DefaultMaxServiceLabels     = 100
)

// bodyWait is how long a request waits for its share of
// MaxInflightBodyBytes before it is answered 503.
const bodyWait = time.Second

// Config holds what the HTTP API needs. Ledger is required.
type Config struct {
	Ledger *ledger.Ledger
	// Logger receives request and error logs; nil discards them.
	Logger *slog.Logger
	// Clock stamps received_at; nil means time.Now.
	Clock func() time.Time
	// Gatherer serves /metrics; nil serves the default registry.
	Gatherer prometheus.Gatherer
	// Registerer receives the API's own metrics; nil skips them.
	Registerer prometheus.Registerer
	// MaxBodyBytes bounds request bodies (default 8 MiB).
	MaxBodyBytes int64
	// MaxInflightBodyBytes bounds the bytes of all request bodies being
	// read or held at once (default 64 MiB, at least MaxBodyBytes), and
	// a quarter of it (at least MaxBodyBytes) those of one API key. A
	// request reserves its bytes as they arrive, 64 KiB ahead; one that
	// cannot within a second (at once, past its key's share) is answered
	// 503 with Retry-After.
	MaxInflightBodyBytes int64
	// MaxServiceLabels bounds the service label values of the
	// per-service append counter (default 100): the first services seen
	// get their own, the rest share "other".
	MaxServiceLabels int
	// MaxBatchEvents bounds events per request (default 1000).
	MaxBatchEvents int
	// MaxFuture bounds how far in the future an event's time may be
	// (default event.DefaultMaxFuture).
	MaxFuture time.Duration
	// Keys are the API keys. Every endpoint but /healthz and /readyz
	// needs one, unless made public below. Ignored with KeyFile.
	Keys *Keyring
	// KeyFile, if set, holds the API keys besides ConfigKeys: New reads
	// it, Run re-reads it when it changes, the admin endpoints change it,
	// and every key created, rotated or revoked is recorded in the log
	// (api/admin.go). Nil: no key administration (404).
	KeyFile *KeyFile
	// ConfigKeys are the keys of the server's configuration, used with
	// KeyFile's; the admin endpoints list them but cannot change them.
	ConfigKeys []APIKey
	// ConfigKeysFrom says where ConfigKeys come from, for errors, such as
	// "the config file /etc/accessledger.yaml" (default: "the server's
	// configuration").
	ConfigKeysFrom string
	// GeneratedKey is the admin key serve generated into KeyFile at this
	// start, if it did: its creation is recorded by "accessledger". Any
	// other key found in the file is recorded as made by "cli", whatever
	// its created_by says.
	GeneratedKey *APIKey
	// KeyPollInterval is how often Run checks KeyFile for changes
	// (default 1s).
	KeyPollInterval time.Duration
	// RateLimit is the per-key rate limit of keys without their own;
	// zero: none. Over it, requests get 429 with Retry-After.
	RateLimit RateLimit
	// ReadAudit records reads of personal data in the log as access
	// events (api/readaudit.go), and refused requests to the admin
	// endpoints (api/adminaudit.go).
	ReadAudit ReadAudit
	// PublicTiles serves /checkpoint, hash tiles and proofs without a key
	// (entry bundles still need one: they hold personal data).
	PublicTiles bool
	// PublicMetrics serves /metrics without a key.
	PublicMetrics bool
	// TrustedProxies lists the proxy addresses or CIDRs whose
	// X-Forwarded-For is believed. Empty: the client IP is the socket's.
	TrustedProxies []string
	// Detections serves GET /v1/alerts and GET /v1/rules; nil when
	// detection is off (they answer 404).
	Detections Detections
	// Witnessing, if set, makes GET /checkpoint serve the checkpoint
	// whose witness quorum is met, with its cosignatures, and GET /v1/log
	// show each witness (api/witness.go).
	Witnessing Witnessing
	// Index serves the queries (GET /v1/events, /v1/events/count,
	// /v1/events/top) and evidence (GET /v1/evidence); nil when indexing
	// is off (they answer 503). See api/query.go.
	Index Searcher
	// CosignedCheckpoint, if set, gives the checkpoint evidence bundles
	// are proved against, with its cosignatures (api/evidence.go); nil
	// uses the latest checkpoint.
	CosignedCheckpoint CosignedCheckpoint
	// Responses serves the alert feed (GET /v1/alerts?after=, GET
	// /v1/alerts/stream), the alert lifecycle, incidents and the
	// responders' state (api/respond.go); nil when responders are off
	// (they answer 404). SSEHeartbeat is how often an idle alert stream
	// gets a heartbeat (default DefaultSSEHeartbeat).
	Responses    Responses
	SSEHeartbeat time.Duration
	// Decisions serves IP decisions to bouncers in the CrowdSec Local
	// API's shape, and their administration (api/decisions.go); nil when
	// decisions are off (they answer 404).
	Decisions DecisionService
}

// Server is the HTTP API. Its Handler is safe for concurrent use.
type Server struct {
	auth   auth
	cfg    Config
	log    *slog.Logger
	engine *gin.Engine
	bodies *bodyBudget // bytes of request bodies in flight (api/budget.go)

	events          *prometheus.CounterVec
	appendedEvents  prometheus.Counter // children of events, resolved once
	duplicateEvents prometheus.Counter
	rejectedEvents  prometheus.Counter
	appended        *prometheus.CounterVec
	services        serviceLabels
	requests        *prometheus.HistogramVec
	// followerPushbacks counts appends answered 503 because a follower
	// of the log is behind, by follower (api/query.go).
	followerPushbacks *prometheus.CounterVec

	admin adminState   // key administration (api/admin.go)
	reads *readAuditor // read auditing, nil when off (api/readaudit.go)
	// shutdowns ends the requests that wait when their server shuts
	// down (api/respond.go).
	shutdowns shutdowns
	// pulls bounds the decision answers built at once (api/decisions.go).
	pulls *semaphore.Weighted
	// exports and alertStreams bound the answers that last (api/limits.go).
	exports, alertStreams *slots
}

// New returns the API server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Ledger == nil {
		return nil, errors.New("api: Config.Ledger is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxBatchEvents <= 0 {
		cfg.MaxBatchEvents = DefaultMaxBatchEvents
	}
	if cfg.MaxFuture <= 0 {
		cfg.MaxFuture = event.DefaultMaxFuture
	}
	if cfg.MaxInflightBodyBytes <= 0 {
		cfg.MaxInflightBodyBytes = max(DefaultMaxInflightBodyBytes, cfg.MaxBodyBytes)
	}
	if cfg.MaxInflightBodyBytes < cfg.MaxBodyBytes {
		return nil, fmt.Errorf("api: MaxInflightBodyBytes %d is below MaxBodyBytes %d: a request of the largest size could never be read", cfg.MaxInflightBodyBytes, cfg.MaxBodyBytes)
	}
	if cfg.MaxServiceLabels <= 0 {
		cfg.MaxServiceLabels = DefaultMaxServiceLabels
	}
	s := &Server{cfg: cfg, log: cfg.Logger, bodies: newBodyBudget(cfg.MaxInflightBodyBytes, cfg.MaxBodyBytes), pulls: newPulls(),
		exports: newSlots("exports", maxExports, maxExportsPerKey), alertStreams: newSlots("alert streams", maxAlertStreams, maxAlertStreamsPerKey)}
	s.services = serviceLabels{max: cfg.MaxServiceLabels, seen: make(map[string]prometheus.Counter)}
	if cfg.Keys == nil {
		cfg.Keys = &Keyring{}
	}
	s.SetKeyring(cfg.Keys)
	if err := s.initAdmin(); err != nil {
		return nil, err
	}
	s.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accessledger_http_events_total",
		Help: "Events received over HTTP, by result (appended, duplicate, rejected).",
	}, []string{"result"})
	s.appended = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accessledger_events_appended_total",
		Help: "Events appended over HTTP, by service (the first services seen get their own label, the rest \"other\").",
	}, []string{"service"})
	s.services.vec = s.appended
	s.appendedEvents = s.events.WithLabelValues("appended")
	s.duplicateEvents = s.events.WithLabelValues("duplicate")
	s.rejectedEvents = s.events.WithLabelValues("rejected")
	s.followerPushbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accessledger_http_follower_pushback_total",
		Help: "Appends answered 503 because a follower of the log (index, detector) lagged it by more than its max_lag.",
	}, []string{"follower"})
	for _, f := range []string{"index", "detector"} {
		s.followerPushbacks.WithLabelValues(f) // at 0 from the start, for rate rules
	}
	s.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "accessledger_http_request_duration_seconds",
		Help:    "HTTP request latency, by route and status code.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"route", "code"})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.events, s.appended, s.requests, s.followerPushbacks} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("api: registering metrics: %w", err)
			}
		}
	}

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	if err := trustProxies(e, cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("api: trusted proxies: %w", err)
	}
	e.Use(s.recoverPanics, s.logRequests, checkQuery)
	e.NoRoute(func(c *gin.Context) {
		writeError(c, http.StatusNotFound, "no such endpoint; see the HTTP API in the README")
	})
	e.NoMethod(func(c *gin.Context) {
		allowHead(c)
		writeError(c, http.StatusMethodNotAllowed, "this endpoint does not accept the method "+c.Request.Method)
	})

	// Who may call what. Hash tiles, checkpoints and proofs carry no event
	// data, so submitters may verify their own entries; entries and entry
	// bundles are personal data, for auditors.
	var (
		submit   = s.require(false, RoleSubmitter)
		verify   = s.require(cfg.PublicTiles, RoleSubmitter, RoleAuditor)
		audit    = s.auditReads(s.require(false, RoleAuditor)) // personal data: reads are recorded
		tiles    = s.require(cfg.PublicTiles, RoleSubmitter, RoleAuditor)
		metrics  = s.require(cfg.PublicMetrics)
		bundles  = s.auditReads(s.require(false, RoleAuditor))
		tileRead = func(c *gin.Context) {
			if strings.HasPrefix(c.Param("path"), "/entries/") {
				bundles(c)
			} else {
				tiles(c)
			}
		}
	)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	promHandler := promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})
	e.GET("/metrics", metrics, func(c *gin.Context) {
		// Metrics are never cached, and never by a shared cache, even
		// with public_metrics.
		c.Header("Cache-Control", "private, no-store")
		promHandler.ServeHTTP(c.Writer, c.Request)
	})

	// A misspelt partial made the batch all or nothing without a word.
	e.POST("/v1/events", submit, onlyParams("partial"), s.followerPushback, s.postEvents)
	e.GET("/v1/log", verify, onlyParams(), s.getLog)
	e.GET("/v1/entries/:index", audit, onlyParams(), s.getEntry)
	e.GET("/v1/proofs/inclusion", verify, onlyParams("index", "leaf_hash", "size"), s.getInclusion)
	e.GET("/v1/proofs/consistency", verify, onlyParams("from", "to"), s.getConsistency)
	e.GET("/v1/checkpoints", verify, onlyParams("from", "limit"), s.getCheckpoints)
	e.GET("/v1/checkpoints/:size", verify, onlyParams(), s.getCheckpointAt)
	s.queryRoutes(e, audit) // queries and evidence (api/query.go, api/evidence.go)

	// Alerts and rules: for responders and auditors (api/alerts.go,
	// api/rules.go).
	detections := s.require(false, RoleResponder, RoleAuditor)
	e.GET("/v1/alerts", s.auditReads(detections), s.getAlerts)
	e.GET("/v1/rules", detections, onlyParams(), s.getRules)

	// IP decisions: pulled by bouncers (CrowdSec Local API), administered
	// by admins (api/decisions.go).
	s.decisionRoutes(e)
	// Alert feed and lifecycle, incidents, responders (api/respond.go).
	s.respondRoutes(e)

	e.GET("/checkpoint", verify, s.getCheckpoint)
	e.GET("/tile/*path", tileRead, s.getTile)
	s.adminRoutes(e) // key administration, admins only (api/admin.go)
	s.engine = e
	return s, nil
}

// checkQuery refuses a query string that does not parse: a bad %-escape or
// a ';' separator. Without it, url.URL.Query drops such pairs without a
// word, and a query whose filter was dropped answers for the whole log.
func checkQuery(c *gin.Context) {
	if _, err := url.ParseQuery(c.Request.URL.RawQuery); err != nil {
		writeError(c, http.StatusBadRequest, "malformed query string: "+strings.TrimPrefix(err.Error(), "invalid ")+
			"; separate parameters with & and escape %, & and ; in values as %25, %26 and %3B")
	}
}

// onlyParams refuses a request with a query parameter other than names,
// or with one of them given twice: a misspelt or repeated parameter is
// otherwise ignored, or taken at its first value, without a word. The C2SP
// resources (/checkpoint, /tile/...) do not use it: like the static files
// they stand for, they ignore query strings, which caches add.
func onlyParams(names ...string) gin.HandlerFunc {
	takes := "takes no parameters"
	if len(names) > 0 {
		takes = "takes " + strings.Join(names, ", ")
	}
	return func(c *gin.Context) { checkParams(c, names, takes) }
}

// checkParams answers 400 and returns false if the request has a query
// parameter other than names, or one of them twice; takes says what the
// endpoint takes, for the message.
func checkParams(c *gin.Context, names []string, takes string) bool {
	for name, values := range c.Request.URL.Query() {
		if !slices.Contains(names, name) {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("unknown parameter %q; this endpoint %s", truncate(name, 32), takes))
			return false
		}
		if len(values) > 1 {
			writeError(c, http.StatusBadRequest, name+" may be given once")
			return false
		}
	}
	return true
}

// Handler returns the http.Handler serving the API.
func (s *Server) Handler() http.Handler { return headAsGet(s.engine) }

// headAsGet answers HEAD as GET (RFC 9110, section 9.3.2: a general-purpose
// server must), except on the routes that have a HEAD handler of their
// own (a bouncer's HEAD must not pull its decisions). net/http sends no
// body for a HEAD request, whatever the handler writes.
func headAsGet(e *gin.Engine) http.Handler {
	own := map[string]bool{}
	for _, r := range e.Routes() {
		if r.Method == http.MethodHead {
			own[r.Path] = true
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && !own[r.URL.Path] {
			r = r.Clone(r.Context())
			r.Method = http.MethodGet
		}
		e.ServeHTTP(w, r)
	})
}

// allowHead adds HEAD to the Allow header gin set for a 405 where it
// lists GET: headAsGet answers HEAD wherever GET is (RFC 9110, section
// 15.5.6: Allow lists the methods the resource supports).
func allowHead(c *gin.Context) {
	h := c.Writer.Header()
	methods := strings.Split(h.Get("Allow"), ", ")
	if slices.Contains(methods, http.MethodGet) && !slices.Contains(methods, http.MethodHead) {
		h.Set("Allow", strings.Join(append(methods, http.MethodHead), ", "))
	}
}

// errorBody is every error response: a message, and for rejected events the
// per-event reasons.
type errorBody struct {
	Error  string       `json:"error"`
	Events []eventError `json:"events,omitempty"`
}

type eventError struct {
	Index  int    `json:"index"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
	// Status is what the event alone would have got: 409 for an id
	// reused with other content, else 400. A batch refused whole gives
	// one status for all its events; a client reports each event's own.
	Status int `json:"status,omitempty"`
	// conflict marks an id reused with other content: the status of a
	// partial answer's rejected event is then 409, else 400.
	conflict bool
}

// writeError answers an error. Errors are never cached.
func writeError(c *gin.Context, status int, msg string) {
	abortJSON(c, status, errorBody{Error: msg})
}

// abortJSON answers an error body and stops the handler chain.
func abortJSON(c *gin.Context, status int, body errorBody) {
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(status, body)
}

// Client-facing messages for ledger errors. They say what happened and
// what to do, never how the ledger or its storage put it.
const (
	msgFailed   = "the log stopped accepting events after a storage failure; the operator must restart it"
	msgClosed   = "the server is shutting down; retry in a moment, against the restarted server"
	msgPushback = "the log is busy: its append queue is full; retry after the number of seconds in Retry-After"
	msgNoSpace  = "the log's disk is nearly full: it accepts no events until the operator frees space; retry after the number of seconds in Retry-After"
	msgInternal = "internal error; the operator can find the details in the server log"
)

// trustProxies makes e take a request's client address from the
// X-Forwarded-For of the proxies listed, and only from that header. gin
// also believed X-Real-IP when X-Forwarded-For was absent, and read
// X-Forwarded-For first: behind a proxy that sets X-Real-IP alone, a
// client's own X-Forwarded-For passed through and chose the address the
// log recorded for its reads (found by review).
func trustProxies(e *gin.Engine, proxies []string) error {
	e.RemoteIPHeaders = []string{"X-Forwarded-For"}
	return e.SetTrustedProxies(proxies)
}

// msgHalted phrases why a halted ledger takes no events: a witness holds
// a checkpoint the log does not contain (see README, Restoring from a
// backup).
func msgHalted(err error) string {
	var be *witness.BehindError
	switch {
	case errors.As(err, &be) && be.Inconsistent:
		return fmt.Sprintf("the log disagrees with a checkpoint its witnesses cosigned (size %d): it was restored from a backup or lost data, and took other events in place of those; it takes no events, which would fork it further; the operator must act (README: Restoring from a backup)", be.Size)
	case be != nil:
		return fmt.Sprintf("the log is behind a checkpoint its witnesses cosigned (size %d): it was restored from a backup or lost data; it takes no events, which would fork it; the operator must act (README: Restoring from a backup)", be.Size)
	}
	return "the log was halted and takes no events; the operator can find why in the server log"
}

// bodyReadFailed returns the status and message for a request body whose
// reading failed with err (other than for its size): 408 if the client
// did not send it within the server's read timeout, 400 otherwise (the
// connection broke, or its chunked framing did). Both ask for the request
// again: nothing is wrong with what was in it, and clients retry a 408.
func bodyReadFailed(err error) (int, string) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return http.StatusRequestTimeout, "the request body did not arrive within the server's read timeout; send the request again"
	}
	return http.StatusBadRequest, "reading the request body failed; send the request again"
}

// fail answers an error from the ledger (or the request's context) with
// its HTTP status and a sentence the caller can act on. It is the only
// place that maps ledger errors to statuses. notFound is the message for
// ErrNotFound, which only the handler can phrase. The error itself is
// logged, never sent: its text is the ledger's and its storage's.
func (s *Server) fail(c *gin.Context, err error, notFound string) {
	var status int
	var msg string
	switch {
	case errors.Is(err, ledger.ErrHalted): // before ErrFailed, which it matches too
		status, msg = http.StatusServiceUnavailable, msgHalted(err)
	case errors.Is(err, ledger.ErrFailed):
		status, msg = http.StatusServiceUnavailable, msgFailed
	case errors.Is(err, ledger.ErrPushback):
		c.Header("Retry-After", "1")
		status, msg = http.StatusServiceUnavailable, msgPushback
	case errors.Is(err, ledger.ErrNoSpace):
		c.Header("Retry-After", "30")
		status, msg = http.StatusServiceUnavailable, msgNoSpace
	case errors.Is(err, ledger.ErrClosed):
		c.Header("Retry-After", "5")
		status, msg = http.StatusServiceUnavailable, msgClosed
	case errors.Is(err, ledger.ErrTooLarge):
		status = http.StatusRequestEntityTooLarge
		msg = fmt.Sprintf("the events of this request are too many or too large to append together (the stored events of one request may total at most %d bytes); split the batch into smaller requests",
			ledger.MaxCallBytes)
	case errors.Is(err, ledger.ErrInvalidArgument):
		status, msg = http.StatusBadRequest, "a parameter is out of range for this log; GET /v1/log gives its current size"
	case errors.Is(err, index.ErrClosed):
		c.Header("Retry-After", "5")
		status, msg = http.StatusServiceUnavailable, msgClosed
	case errors.Is(err, witness.ErrNoQuorum):
		c.Header("Retry-After", "1")
		status, msg = http.StatusServiceUnavailable, "no checkpoint has been cosigned by the witness quorum yet, and evidence is proved only against one (witness_fail_open is off); retry in a moment (GET /v1/log shows each witness's state)"
	case errors.Is(err, ledger.ErrNotFound):
		status, msg = http.StatusNotFound, notFound
		if msg == "" {
			msg = "not found"
		}
	case errors.Is(err, ledger.ErrIDConflict):
		status, msg = http.StatusConflict, "an event id was reused with different content; nothing was appended"
	case errors.Is(err, context.DeadlineExceeded):
		status, msg = http.StatusServiceUnavailable, "the request took too long and was abandoned; retry it"
	case errors.Is(err, context.Canceled):
		status, msg = http.StatusServiceUnavailable, "the request was cancelled before it completed"
	default:
		status, msg = http.StatusInternalServerError, msgInternal
	}
	level := slog.LevelDebug
	if status >= 500 && !errors.Is(err, ledger.ErrPushback) && !errors.Is(err, ledger.ErrNoSpace) && !errors.Is(err, ledger.ErrHalted) {
		// A full queue or disk, or a halt, is a state of the server,
		// which is logged once when it begins and a metric shows: one
		// error line per refused request would bury the rest.
		level = slog.LevelError
	}
	s.log.Log(c, level, "request failed", "method", c.Request.Method, "route", route(c), "status", status, "err", err)
	writeError(c, status, msg)
}

// unavailable phrases why the ledger does not accept appends, for
// /readyz.
func unavailable(err error) string {
	switch {
	case errors.Is(err, ledger.ErrHalted):
		return msgHalted(err)
	case errors.Is(err, ledger.ErrFailed):
		return msgFailed
	case errors.Is(err, ledger.ErrClosed):
		return "the server is shutting down"
	case errors.Is(err, ledger.ErrNoSpace):
		return "the log's disk is nearly full: it accepts no events until the operator frees space (see min_free_disk_mib)"
	case errors.Is(err, ledger.ErrIntegrity):
		return "the integrity self-audit found the stored log does not match its signed checkpoint; the operator can find the bad tile or bundle in the server log"
	}
	return "the log is not healthy (checkpoint signing keeps failing, or storage reported an error); the operator can find the details in the server log"
}

func (s *Server) recoverPanics(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.log.ErrorContext(c, "handler panicked", "method", c.Request.Method, "route", route(c), "panic", r)
			writeError(c, http.StatusInternalServerError, msgInternal)
		}
	}()
	c.Next()
}

// route returns the route pattern of a request (/v1/entries/:index), never
// its path: label values stay few, and logs carry no values from paths.
func route(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// logRequests measures every request and logs one line for it at info
// level (health probes at debug, server errors at warn): method, route
// pattern, status, API key name, duration and client IP. It logs neither
// bodies, nor query strings, nor paths, nor secrets: they carry personal
// data or credentials.
func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	took := time.Since(start)
	status := c.Writer.Status()
	r := route(c)
	s.requests.WithLabelValues(r, strconv.Itoa(status)).Observe(took.Seconds())
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelWarn
	case r == "/healthz" || r == "/readyz":
		level = slog.LevelDebug
	}
	if !s.log.Enabled(c, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", c.Request.Method),
		slog.String("route", r),
		slog.Int("status", status),
	}
	if name := c.GetString(ctxKeyName); name != "" {
		attrs = append(attrs, slog.String("api_key", name))
	}
	attrs = append(attrs,
		slog.Float64("duration_ms", float64(took.Microseconds())/1000),
		slog.String("client_ip", c.ClientIP()))
	s.log.LogAttrs(c, level, "http request", attrs...)
}

func (s *Server) healthz(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func (s *Server) readyz(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	if err := s.cfg.Ledger.Healthy(); err != nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "error": unavailable(err)})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// serviceLabels bounds the label values of the per-service append
// counter: the first max distinct services get their own, every later
// one "other". It is safe for concurrent use.
type serviceLabels struct {
	vec   *prometheus.CounterVec
	mu    sync.Mutex
	max   int
	seen  map[string]prometheus.Counter
	other prometheus.Counter
}

// counter returns the append counter of service: its own for the first
// max services seen, the shared "other" one after that.
func (l *serviceLabels) counter(service string) prometheus.Counter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.seen[service]; ok {
		return c
	}
	if len(l.seen) >= l.max {
		if l.other == nil {
			l.other = l.vec.WithLabelValues("other")
		}
		return l.other
	}
	c := l.vec.WithLabelValues(service)
	l.seen[service] = c
	return c
}
