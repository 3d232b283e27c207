package api

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/accessledger/accessledger/witness"
)

// DefaultWitnessMaxBodyBytes bounds add-checkpoint bodies: an old size
// line, 63 proof lines and a checkpoint with a few dozen signatures fit in
// a fraction of it.
const DefaultWitnessMaxBodyBytes = 64 << 10

// Content types of the tlog-witness protocol.
const (
	// contentTypeTlogSize is the 409 answer's type. Clients compare it
	// byte for byte, so it carries no parameters.
	contentTypeTlogSize = "text/x.tlog.size"
	contentTypeText     = "text/plain; charset=utf-8"
)

// WitnessConfig holds what the witness HTTP server needs. Witness is
// required.
type WitnessConfig struct {
	Witness *witness.Witness
	// Logger receives request and error logs; nil discards them.
	Logger *slog.Logger
	// Gatherer serves /metrics; nil serves the default registry.
	Gatherer prometheus.Gatherer
	// Registerer receives the server's own metrics; nil skips them.
	Registerer prometheus.Registerer
	// Keys are the API keys of the admin endpoints (evidence, metrics).
	Keys *Keyring
	// PublicMetrics serves /metrics without a key.
	PublicMetrics bool
	// MaxBodyBytes bounds add-checkpoint bodies (default 64 KiB); larger
	// ones get 413.
	MaxBodyBytes int64
	// TrustedProxies lists the proxies whose X-Forwarded-For is believed.
	TrustedProxies []string
}

// WitnessServer is the HTTP surface of a C2SP tlog-witness:
//
//	POST /add-checkpoint                 the tlog-witness submission (no key)
//	GET  /<hex sha256(origin)>/checkpoint the monitoring read (no key)
//	GET  /v1/witness                     the witness's key and logs (no key)
//	GET  /v1/witness/evidence            refused, validly signed submissions (admin)
//	GET  /healthz, /readyz, /metrics
//
// The protocol endpoints answer in text, as tlog-witness does; the /v1
// endpoints in JSON. Its Handler is safe for concurrent use.
type WitnessServer struct {
	s   *Server // request logging, panics and API keys, shared with the log's API
	w   *witness.Witness
	cfg WitnessConfig
}

// NewWitness returns the witness HTTP server for cfg.
func NewWitness(cfg WitnessConfig) (*WitnessServer, error) {
	if cfg.Witness == nil {
		return nil, errors.New("api: WitnessConfig.Witness is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultWitnessMaxBodyBytes
	}
	if cfg.Keys == nil {
		cfg.Keys = &Keyring{}
	}
	s := &Server{log: cfg.Logger}
	s.SetKeyring(cfg.Keys)
	s.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "accessledger_http_request_duration_seconds",
		Help:    "HTTP request latency, by route and status code.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"route", "code"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.requests); err != nil {
			return nil, fmt.Errorf("api: registering metrics: %w", err)
		}
	}
	ws := &WitnessServer{s: s, w: cfg.Witness, cfg: cfg}

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	if err := trustProxies(e, cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("api: trusted proxies: %w", err)
	}
	e.Use(s.recoverPanics, s.logRequests)
	e.NoRoute(func(c *gin.Context) {
		writeError(c, http.StatusNotFound, "no such endpoint; a witness serves POST /add-checkpoint and GET /<hex sha256 of origin>/checkpoint")
	})
	e.NoMethod(func(c *gin.Context) {
		writeError(c, http.StatusMethodNotAllowed, "this endpoint does not accept the method "+c.Request.Method)
	})
	admin := s.require(false, RoleAdmin)
	metrics := s.require(cfg.PublicMetrics)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", ws.readyz)
	promHandler := promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})
	e.GET("/metrics", metrics, func(c *gin.Context) {
		c.Header("Cache-Control", "private, no-store")
		promHandler.ServeHTTP(c.Writer, c.Request)
	})
	e.POST("/add-checkpoint", ws.addCheckpoint)
	e.GET("/:originhash/checkpoint", ws.getCheckpoint)
	e.GET("/v1/witness", ws.getWitness)
	e.GET("/v1/witness/evidence", admin, onlyParams("from", "limit"), ws.getEvidence)
	ws.s.engine = e
	return ws, nil
}

// Handler returns the http.Handler serving the witness.
func (ws *WitnessServer) Handler() http.Handler { return headAsGet(ws.s.engine) }

// SetKeyring replaces the API keys, for example on SIGHUP.
func (ws *WitnessServer) SetKeyring(kr *Keyring) { ws.s.SetKeyring(kr) }

// textError answers a protocol error in text: a sentence and a newline.
func textError(c *gin.Context, status int, msg string) {
	c.Header("Cache-Control", "no-store")
	c.Data(status, contentTypeText, []byte(strings.ReplaceAll(msg, "\n", " ")+"\n"))
	c.Abort()
}

// addCheckpoint serves POST /add-checkpoint (c2sp.org/tlog-witness).
func (ws *WitnessServer) addCheckpoint(c *gin.Context) {
	limit := ws.cfg.MaxBodyBytes
	if c.Request.ContentLength > limit {
		textError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes", limit))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			textError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes", limit))
			return
		}
		textError(c, http.StatusBadRequest, "reading the request body failed")
		return
	}
	req, err := witness.ParseAddRequest(body)
	if err == nil {
		var cosig []byte
		cosig, err = ws.w.AddCheckpoint(c, req)
		if err == nil {
			c.Header("Cache-Control", "no-store")
			c.Data(http.StatusOK, contentTypeText, cosig)
			return
		}
	}
	ws.witnessError(c, err)
}

// witnessError is the one place where witness errors become statuses.
func (ws *WitnessServer) witnessError(c *gin.Context, err error) {
	var conflict *witness.ConflictError
	status := http.StatusInternalServerError
	switch {
	case errors.As(err, &conflict):
		// Exactly "<size>\n" as text/x.tlog.size: clients parse both.
		c.Header("Cache-Control", "no-store")
		c.Data(http.StatusConflict, contentTypeTlogSize, append(strconv.AppendUint(nil, conflict.Size, 10), '\n'))
		c.Abort()
		return
	case errors.Is(err, witness.ErrMalformed):
		status = http.StatusBadRequest
	case errors.Is(err, witness.ErrUnknownLog), errors.Is(err, witness.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, witness.ErrBadSignature):
		status = http.StatusForbidden
	case errors.Is(err, witness.ErrInconsistent):
		status = http.StatusUnprocessableEntity
	case errors.Is(err, witness.ErrClosed):
		c.Header("Retry-After", "5")
		status = http.StatusServiceUnavailable
	}
	if status >= 500 {
		ws.s.log.ErrorContext(c, "witness request failed", "route", route(c), "err", err)
		textError(c, status, msgInternal)
		return
	}
	ws.s.log.DebugContext(c, "witness refused", "route", route(c), "status", status, "err", err)
	// The witness's own sentences: they say what is wrong with the
	// request, and hold nothing secret.
	textError(c, status, err.Error())
}

// getCheckpoint serves GET /<hex sha256(origin)>/checkpoint: the latest
// checkpoint the witness cosigned for that log.
func (ws *WitnessServer) getCheckpoint(c *gin.Context) {
	raw, err := hex.DecodeString(c.Param("originhash"))
	if err != nil || len(raw) != 32 || c.Param("originhash") != hex.EncodeToString(raw) {
		textError(c, http.StatusNotFound, "no such log: the path is /<lowercase hex SHA-256 of the log's origin>/checkpoint")
		return
	}
	cp, err := ws.w.Latest(c, [32]byte(raw))
	if errors.Is(err, witness.ErrNotFound) {
		textError(c, http.StatusNotFound, "this witness has not cosigned a checkpoint of that log")
		return
	}
	if err != nil {
		ws.witnessError(c, err)
		return
	}
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, contentTypeCheckpoint, cp)
}

// getWitness answers the witness's key and the state of its logs.
func (ws *WitnessServer) getWitness(c *gin.Context) {
	logs, err := ws.w.Logs(c)
	if err != nil {
		ws.witnessError(c, err)
		return
	}
	c.Header("Cache-Control", "no-cache")
	c.JSON(http.StatusOK, gin.H{"name": ws.w.Name(), "verifier_key": ws.w.VerifierKey(), "logs": logs})
}

// getEvidence lists refused, validly signed submissions, oldest first:
// ?from=ID (default 0), ?limit=N (default 100, at most 1000); next, absent
// on the last page, is the from of the next page.
func (ws *WitnessServer) getEvidence(c *gin.Context) {
	var from uint64
	if v, ok := c.GetQuery("from"); ok {
		if from, ok = parseUint(c, "from", v); !ok {
			return
		}
	}
	limit := uint64(defaultCheckpointsLimit)
	if v, ok := c.GetQuery("limit"); ok {
		if limit, ok = parseUint(c, "limit", v); !ok {
			return
		}
		if limit < 1 || limit > maxCheckpointsLimit {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("limit must be from 1 to %d, got %d", maxCheckpointsLimit, limit))
			return
		}
	}
	evs, next, err := ws.w.Evidence(c, from, int(limit))
	if err != nil {
		ws.s.log.ErrorContext(c, "listing evidence failed", "err", err)
		writeError(c, http.StatusInternalServerError, msgInternal)
		return
	}
	page := struct {
		Evidence []witness.Evidence `json:"evidence"`
		Next     *uint64            `json:"next,omitempty"`
	}{Evidence: evs}
	if next != 0 {
		page.Next = &next
	}
	c.Header("Cache-Control", "private, no-cache")
	c.JSON(http.StatusOK, page)
}

func (ws *WitnessServer) readyz(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	if _, err := ws.w.Logs(c); err != nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "error": "the witness cannot read its storage; the operator can find the details in the server log"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// Witnessing is the log's side of witnessing, as the log's API serves it:
// a *witness.Distributor.
type Witnessing interface {
	// Checkpoint returns the checkpoint to serve, with its cosignatures,
	// or witness.ErrNoQuorum.
	Checkpoint() ([]byte, error)
	// WitnessedSize returns the size of the newest quorum-met checkpoint.
	WitnessedSize() (uint64, bool)
	// Status returns the log's view of each witness.
	Status() []witness.WitnessStatus
}

// getWitnessedCheckpoint serves GET /checkpoint with witnessing: the
// newest checkpoint whose quorum is met (or, fail-open, the latest), its
// cosignature lines appended.
func (s *Server) getWitnessedCheckpoint(c *gin.Context) {
	cp, err := s.cfg.Witnessing.Checkpoint()
	if errors.Is(err, witness.ErrNoQuorum) {
		c.Header("Retry-After", "1")
		writeError(c, http.StatusServiceUnavailable, "no checkpoint has been cosigned by the witness quorum yet; retry in a moment (GET /v1/log shows each witness's state)")
		return
	}
	if err != nil {
		s.fail(c, err, "")
		return
	}
	setCache(c, cacheLatest)
	c.Data(http.StatusOK, contentTypeCheckpoint, cp)
}

// addWitnessing adds the witnessing state to the GET /v1/log answer.
func (s *Server) addWitnessing(body gin.H) {
	if s.cfg.Witnessing == nil {
		return
	}
	if size, ok := s.cfg.Witnessing.WitnessedSize(); ok {
		body["witnessed_size"] = size
	}
	body["witnesses"] = s.cfg.Witnessing.Status()
}
