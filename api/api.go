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
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// Defaults for Config's optional fields.
const (
	DefaultMaxBodyBytes   = 8 << 20
	DefaultMaxBatchEvents = 1000
)

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
	// MaxBatchEvents bounds events per request (default 1000).
	MaxBatchEvents int
	// MaxFuture bounds how far in the future an event's time may be
	// (default event.DefaultMaxFuture).
	MaxFuture time.Duration
	// Keys are the API keys. Every endpoint but /healthz and /readyz
	// needs one, unless made public below.
	Keys *Keyring
	// PublicTiles serves /checkpoint, hash tiles and proofs without a key
	// (entry bundles still need one: they hold personal data).
	PublicTiles bool
	// PublicMetrics serves /metrics without a key.
	PublicMetrics bool
	// TrustedProxies lists the proxy addresses or CIDRs whose
	// X-Forwarded-For is believed. Empty: the client IP is the socket's.
	TrustedProxies []string
}

// Server is the HTTP API. Its Handler is safe for concurrent use.
type Server struct {
	auth   auth
	cfg    Config
	log    *slog.Logger
	engine *gin.Engine

	events   *prometheus.CounterVec
	requests *prometheus.HistogramVec
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
	s := &Server{cfg: cfg, log: cfg.Logger}
	if cfg.Keys == nil {
		cfg.Keys = &Keyring{}
	}
	s.SetKeyring(cfg.Keys)
	s.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accessledger_http_events_total",
		Help: "Events received over HTTP, by result (appended, duplicate, rejected).",
	}, []string{"result"})
	s.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "accessledger_http_request_duration_seconds",
		Help:    "HTTP request latency, by route and status code.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"route", "code"})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.events, s.requests} {
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
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("api: trusted proxies: %w", err)
	}
	e.Use(s.recoverPanics, s.logRequests)
	e.NoRoute(func(c *gin.Context) { writeError(c, http.StatusNotFound, "no such endpoint") })
	e.NoMethod(func(c *gin.Context) { writeError(c, http.StatusMethodNotAllowed, "method not allowed") })

	// Who may call what. Hash tiles, checkpoints and proofs carry no event
	// data, so submitters may verify their own entries; entries and entry
	// bundles are personal data, for auditors.
	var (
		submit   = s.require(false, RoleSubmitter)
		verify   = s.require(cfg.PublicTiles, RoleSubmitter, RoleAuditor)
		audit    = s.require(false, RoleAuditor)
		tiles    = s.require(cfg.PublicTiles, RoleSubmitter, RoleAuditor)
		metrics  = s.require(cfg.PublicMetrics)
		bundles  = s.require(false, RoleAuditor)
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
	e.GET("/metrics", metrics, gin.WrapH(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})))

	e.POST("/v1/events", submit, s.postEvents)
	e.GET("/v1/log", verify, s.getLog)
	e.GET("/v1/entries/:index", audit, s.getEntry)
	e.GET("/v1/proofs/inclusion", verify, s.getInclusion)
	e.GET("/v1/proofs/consistency", verify, s.getConsistency)
	e.GET("/v1/checkpoints/:size", verify, s.getCheckpointAt)

	e.GET("/checkpoint", verify, s.getCheckpoint)
	e.GET("/tile/*path", tileRead, s.getTile)
	s.engine = e
	return s, nil
}

// Handler returns the http.Handler serving the API.
func (s *Server) Handler() http.Handler { return s.engine }

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
}

func writeError(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, errorBody{Error: msg})
}

// fail maps an error from the ledger to its HTTP status. It is the only
// place that does so.
func (s *Server) fail(c *gin.Context, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ledger.ErrInvalidArgument):
		status = http.StatusBadRequest
	case errors.Is(err, ledger.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ledger.ErrIDConflict):
		status = http.StatusConflict
	case errors.Is(err, ledger.ErrTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, ledger.ErrPushback):
		c.Header("Retry-After", "1")
		status = http.StatusServiceUnavailable
	case errors.Is(err, ledger.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		s.log.ErrorContext(c, "request failed", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
		msg = "internal error"
	}
	writeError(c, status, msg)
}

func (s *Server) recoverPanics(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.log.ErrorContext(c, "handler panicked", "method", c.Request.Method, "path", c.Request.URL.Path, "panic", r)
			writeError(c, http.StatusInternalServerError, "internal error")
		}
	}()
	c.Next()
}

// logRequests measures every request, logs it at debug level and server
// errors at warn level. It logs neither bodies nor query strings: they
// carry personal data.
func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	status := c.Writer.Status()
	route := c.FullPath() // the route pattern, so label values stay few
	if route == "" {
		route = "unmatched"
	}
	s.requests.WithLabelValues(route, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
	level := slog.LevelDebug
	if status >= 500 {
		level = slog.LevelWarn
	}
	if !s.log.Enabled(c, level) {
		return
	}
	s.log.LogAttrs(c, level, "http request",
		slog.String("method", c.Request.Method),
		slog.String("path", c.Request.URL.Path),
		slog.Int("status", status),
		slog.Duration("took", time.Since(start)),
		slog.String("remote", c.ClientIP()))
}

func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func (s *Server) readyz(c *gin.Context) {
	if err := s.cfg.Ledger.Healthy(); err != nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "error": err.Error()})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
