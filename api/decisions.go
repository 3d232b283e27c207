package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/semaphore"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/respond"
)

// DecisionService is what the decision endpoints use: the server's
// decision store (a *respond.Decisions).
type DecisionService interface {
	Stream(ctx context.Context, bouncer respond.Bouncer, startup bool, q respond.DecisionQuery) (respond.StreamAnswer, error)
	Ack(ctx context.Context, bouncer respond.Bouncer, cursor uint64) error
	List(ctx context.Context, q respond.DecisionQuery) (respond.DecisionList, error)
	Get(ctx context.Context, id uint64) (respond.DecisionInfo, error)
	Delete(ctx context.Context, id uint64, by string) (event.Decision, error)
}

// msgNoDecisions answers the decision endpoints of a server without a
// decision store.
const msgNoDecisions = "IP decisions are off on this server: the operator turns them on in its responders configuration"

// maxUsageMetricsBytes bounds the usage metrics a bouncer posts.
const maxUsageMetricsBytes = 256 << 10

// decisionRoutes serves IP decisions to bouncers in the CrowdSec Local
// API's shape (api key in X-Api-Key or as a bearer token), and their
// administration:
//
//	GET|HEAD /v1/decisions/stream   bouncer: the changes since its last pull
//	GET|HEAD /v1/decisions          bouncer: the decisions on an address (live mode)
//	POST     /v1/usage-metrics      bouncer: accepted and discarded (201)
//	DELETE   /v1/decisions/:id      admin: end a decision
//	GET      /v1/admin/decisions    admin: the active decisions
//	GET      /v1/admin/decisions/:id admin: one decision, active or recently ended
func (s *Server) decisionRoutes(e *gin.Engine) {
	bouncer := s.require(false, RoleBouncer)
	admin := s.require(false)
	e.GET("/v1/decisions/stream", bouncer, s.getDecisionStream)
	e.HEAD("/v1/decisions/stream", bouncer, s.headDecisions)
	e.GET("/v1/decisions", bouncer, s.getDecisions)
	e.HEAD("/v1/decisions", bouncer, s.headDecisions)
	e.POST("/v1/usage-metrics", bouncer, s.postUsageMetrics)
	e.DELETE("/v1/decisions/:id", admin, s.deleteDecision)
	e.GET("/v1/admin/decisions", s.auditAdmin(admin), s.listDecisions)
	e.GET("/v1/admin/decisions/:id", s.auditAdmin(admin), s.getDecision)
}

// lapiDecision is a decision as the CrowdSec Local API serves it to
// bouncers (its models.Decision, fields in its order).
type lapiDecision struct {
	// Duration is the time left, a Go duration rounded to the second
	// ("3h59m58s"); negative for a decision that ended.
	Duration  string `json:"duration"`
	ID        uint64 `json:"id"`
	Origin    string `json:"origin"`
	Scenario  string `json:"scenario"`
	Scope     string `json:"scope"`
	Simulated bool   `json:"simulated"`
	Type      string `json:"type"`
	Until     string `json:"until"`
	UUID      string `json:"uuid,omitempty"`
	Value     string `json:"value"`
}

func lapiDecisions(ds []respond.DecisionInfo, now time.Time) []lapiDecision {
	out := make([]lapiDecision, len(ds))
	for i := range ds {
		out[i] = lapiDecisionOf(&ds[i], now)
	}
	return out
}

func lapiDecisionOf(d *respond.DecisionInfo, now time.Time) lapiDecision {
	until := d.Until
	if !d.Active() {
		until = d.Ended // as CrowdSec, which ends a decision by moving its until
	}
	return lapiDecision{
		Duration: until.Sub(now).Round(time.Second).String(),
		ID:       d.ID, Origin: d.Origin, Scenario: d.Scenario, Scope: d.Scope, Type: d.Type,
		Until: until.UTC().Format(time.RFC3339), UUID: d.UUID, Value: d.Value,
	}
}

// writeStream writes the answer of a pull to w, {"new":[...],"deleted":[...]}
// (both lists arrays, empty rather than null, as CrowdSec's streaming
// answer has them), one decision at a time: a startup answer
// holds every active decision (up to max_active, a million, over 200 MB
// as one body), and is not built whole in memory again.
func writeStream(w io.Writer, ans respond.StreamAnswer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	list := func(ds []respond.DecisionInfo) error {
		bw.WriteByte('[')
		for i := range ds {
			if i > 0 {
				bw.WriteByte(',')
			}
			b, err := json.Marshal(lapiDecisionOf(&ds[i], ans.Now))
			if err != nil {
				return err
			}
			if _, err := bw.Write(b); err != nil {
				return err
			}
		}
		return bw.WriteByte(']')
	}
	bw.WriteString(`{"new":`)
	if err := list(ans.New); err != nil {
		return err
	}
	bw.WriteString(`,"deleted":`)
	if err := list(ans.Deleted); err != nil {
		return err
	}
	bw.WriteByte('}')
	return bw.Flush()
}

// maxPulls bounds the decision answers built and written at once: a full
// one holds every active decision in memory while it is written, so a
// fleet of bouncers restarting together (or one key repeating
// startup=true) waits in turn instead of exhausting memory. A pull waits
// at most pullWait for its turn, then gets 503; each write of an answer
// has streamWriteTimeout, so a client that stops reading loses its turn.
const (
	maxPulls = 2
	pullWait = 10 * time.Second
)

func newPulls() *semaphore.Weighted { return semaphore.NewWeighted(maxPulls) }

// getDecisionStream answers a bouncer's pull: with ?startup=true (exactly
// "true", as CrowdSec reads it) every active decision in "new" and the
// recently ended ones in "deleted"; otherwise what changed since this
// bouncer's last pull. A bouncer is a key and the address it pulls from
// (bouncerOf), and its cursor moves once the answer is written.
func (s *Server) getDecisionStream(c *gin.Context) {
	if s.cfg.Decisions == nil {
		writeError(c, http.StatusNotFound, msgNoDecisions)
		return
	}
	vals := c.Request.URL.Query()
	delete(vals, "limit") // CrowdSec ignores it here: a malformed one is no error
	q, ok := decisionQuery(c, vals)
	if !ok {
		return
	}
	startup := len(vals["startup"]) > 0 && vals["startup"][0] == "true"
	// Any pull may be answered in full (a bouncer without a position, or
	// one older than the history), not only startup=true: every answer
	// takes a turn.
	ctx, cancel := context.WithTimeout(c, pullWait)
	err := s.pulls.Acquire(ctx, 1)
	cancel()
	if err != nil {
		if c.Request.Context().Err() == nil {
			c.Header("Retry-After", "5")
			writeError(c, http.StatusServiceUnavailable, fmt.Sprintf("%d decision answers are being written, the most at once: retry after the number of seconds in Retry-After", maxPulls))
		}
		return
	}
	defer s.pulls.Release(1)
	bouncer := bouncerOf(c)
	ans, err := s.cfg.Decisions.Stream(c, bouncer, startup, q)
	if err != nil {
		s.failDecision(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Status(http.StatusOK)
	// A client that stops reading is dropped: it would hold its turn.
	tw := newTimedWriter(c)
	defer tw.end()
	if err := writeStream(tw, ans); err != nil {
		return // not delivered: the next pull sends it again
	}
	if err := http.NewResponseController(c.Writer).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return
	}
	// The answer is out: move the cursor, even if the client hangs up now.
	if err := s.cfg.Decisions.Ack(context.WithoutCancel(c), bouncer, ans.Cursor); err != nil {
		s.log.ErrorContext(c, "saving a bouncer's cursor failed; its next pull repeats this answer",
			"api_key", bouncer.Key, "client_ip", bouncer.IP, "err", err)
	}
}

// bouncerOf names the bouncer calling: its key and its address, as
// CrowdSec makes a bouncer name@ip for each address that pulls with a
// key, each with its own position. The address is gin's ClientIP, as the
// request log and the read audit take it: the socket's, or what a proxy
// listed in trusted_proxies forwarded.
func bouncerOf(c *gin.Context) respond.Bouncer {
	ip := c.ClientIP()
	if a, err := netip.ParseAddr(ip); err == nil {
		ip = a.Unmap().String()
	}
	return respond.Bouncer{Key: c.GetString(ctxKeyName), IP: ip}
}

// headDecisions answers HEAD as CrowdSec does: 200 and no body, without
// moving the cursor.
func (s *Server) headDecisions(c *gin.Context) {
	if s.cfg.Decisions == nil {
		writeError(c, http.StatusNotFound, msgNoDecisions)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)
}

// getDecisions answers the active decisions a query selects, as
// CrowdSec's live mode does: a JSON array, or null when there is none.
// ?ip= or ?range= selects the decisions that cover it (contains=false:
// those inside it).
func (s *Server) getDecisions(c *gin.Context) {
	if s.cfg.Decisions == nil {
		writeError(c, http.StatusNotFound, msgNoDecisions)
		return
	}
	q, ok := decisionQuery(c, c.Request.URL.Query())
	if !ok {
		return
	}
	list, err := s.cfg.Decisions.List(c, q)
	if err != nil {
		s.failDecision(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	if len(list.Decisions) == 0 {
		c.Data(http.StatusOK, "application/json; charset=utf-8", []byte("null"))
		return
	}
	c.JSON(http.StatusOK, lapiDecisions(list.Decisions, list.Now))
}

// postUsageMetrics accepts the usage metrics that recent bouncers post
// every half hour, and discards them.
func (s *Server) postUsageMetrics(c *gin.Context) {
	if s.cfg.Decisions == nil {
		writeError(c, http.StatusNotFound, msgNoDecisions)
		return
	}
	body := http.MaxBytesReader(c.Writer, c.Request.Body, maxUsageMetricsBytes)
	data, err := io.ReadAll(body)
	if maxErr := (*http.MaxBytesError)(nil); errors.As(err, &maxErr) {
		writeError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("usage metrics larger than %d bytes", maxUsageMetricsBytes))
		return
	} else if err != nil {
		status, msg := bodyReadFailed(err)
		writeError(c, status, msg)
		return
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); !json.Valid(data) || len(t) == 0 || t[0] != '{' {
		writeError(c, http.StatusBadRequest, "usage metrics must be a JSON object")
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusCreated)
}

// adminDecision is a decision as the admin endpoints show it.
type adminDecision struct {
	ID        uint64     `json:"id"`
	UUID      string     `json:"uuid"`
	Origin    string     `json:"origin"`
	Type      string     `json:"type"`
	Scope     string     `json:"scope"`
	Value     string     `json:"value"`
	Scenario  string     `json:"scenario"`
	Until     time.Time  `json:"until"`
	Duration  string     `json:"duration"`
	CreatedAt time.Time  `json:"created_at"`
	Alert     uint64     `json:"alert"`
	DedupKey  string     `json:"dedup_key,omitempty"`
	Key       string     `json:"key"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	DeletedBy string     `json:"deleted_by,omitempty"`
}

func adminDecisionJSON(d respond.DecisionInfo, now time.Time) adminDecision {
	a := adminDecision{ID: d.ID, UUID: d.UUID, Origin: d.Origin, Type: d.Type, Scope: d.Scope, Value: d.Value,
		Scenario: d.Scenario, Until: d.Until.UTC(), CreatedAt: d.Created.UTC(), Alert: d.AlertIndex,
		DedupKey: d.DedupKey, Key: d.Key, DeletedBy: d.DeletedBy}
	if d.Active() {
		a.Duration = d.Until.Sub(now).Round(time.Second).String()
	} else {
		ended := d.Ended.UTC()
		a.EndedAt, a.Duration = &ended, "0s"
	}
	return a
}

// listDecisions answers the active decisions, in id order, with the
// parameters of GET /v1/decisions: {"decisions":[...]}.
func (s *Server) listDecisions(c *gin.Context) {
	if s.cfg.Decisions == nil {
		writeError(c, http.StatusNotFound, msgNoDecisions)
		return
	}
	q, ok := decisionQuery(c, c.Request.URL.Query())
	if !ok {
		return
	}
	list, err := s.cfg.Decisions.List(c, q)
	if err != nil {
		s.failDecision(c, err)
		return
	}
	out := make([]adminDecision, len(list.Decisions))
	for i, d := range list.Decisions {
		out[i] = adminDecisionJSON(d, list.Now)
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"decisions": out})
}

// getDecision answers one decision, active or ended within the kept
// history.
func (s *Server) getDecision(c *gin.Context) {
	if s.cfg.Decisions == nil {
		writeError(c, http.StatusNotFound, msgNoDecisions)
		return
	}
	id, ok := parseUint(c, "decision id", c.Param("id"))
	if !ok {
		return
	}
	d, err := s.cfg.Decisions.Get(c, id)
	if err != nil {
		s.failDecision(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, adminDecisionJSON(d, s.cfg.Clock()))
}

// deleteDecision ends an active decision: bouncers see it in "deleted" on
// their next pull. It answers the decision, as deleted.
func (s *Server) deleteDecision(c *gin.Context) {
	if s.cfg.Decisions == nil {
		writeError(c, http.StatusNotFound, msgNoDecisions)
		return
	}
	id, ok := parseUint(c, "decision id", c.Param("id"))
	if !ok {
		return
	}
	by := c.GetString(ctxKeyName)
	d, err := s.cfg.Decisions.Delete(c, id, by)
	if err != nil {
		s.failDecision(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	info, err := s.cfg.Decisions.Get(c, id)
	if err != nil {
		// Deleted, then gone from the history at once: answer what
		// Delete returned.
		info = respond.DecisionInfo{Decision: d, DeletedBy: by, Ended: s.cfg.Clock()}
	}
	c.JSON(http.StatusOK, adminDecisionJSON(info, s.cfg.Clock()))
}

// failDecision answers an error of the decision store.
func (s *Server) failDecision(c *gin.Context, err error) {
	var input *respond.DecisionInputError
	switch {
	case errors.Is(err, respond.ErrNotFound):
		writeError(c, http.StatusNotFound, "no such decision, or it already ended; GET /v1/admin/decisions lists the active ones")
	case errors.As(err, &input):
		writeError(c, http.StatusBadRequest, input.Error())
	default:
		s.fail(c, err, "")
	}
}

// decisionQuery reads the CrowdSec Local API's decision parameters, as
// CrowdSec does: the first value of each; comma-separated lists for
// scopes (or scope), origins and scenarios_(not_)containing; ip or range
// with contains (default true); value; type; limit (GET /v1/decisions;
// the stream drops it before, as CrowdSec does).
// Other parameters (startup, dedup, simulated, offset, id_gt,
// community_pull, additional_pull, anything unknown) select nothing. It
// answers 400 and returns false if a value is malformed.
func decisionQuery(c *gin.Context, vals url.Values) (respond.DecisionQuery, bool) {
	var q respond.DecisionQuery
	first := func(name string) (string, bool) {
		if v := vals[name]; len(v) > 0 {
			return v[0], true
		}
		return "", false
	}
	list := func(name string) []string {
		if v, ok := first(name); ok {
			return strings.Split(v, ",")
		}
		return nil
	}
	q.Scopes = list("scopes")
	if q.Scopes == nil {
		q.Scopes = list("scope")
	}
	q.Origins = list("origins")
	q.ScenariosContaining = list("scenarios_containing")
	q.ScenariosNotContaining = list("scenarios_not_containing")
	q.Value, _ = first("value")
	q.Type, _ = first("type")
	for _, name := range []string{"ip", "range"} {
		v, ok := first(name)
		if !ok {
			continue
		}
		p, err := parseIPOrRange(v)
		if err != nil {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("%s must be an IP address or a CIDR range, got %q", name, truncate(v, 64)))
			return q, false
		}
		q.Range = p
	}
	if v, ok := first("contains"); ok {
		contains, err := strconv.ParseBool(v)
		if err != nil {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("contains must be true or false, got %q", truncate(v, 32)))
			return q, false
		}
		q.Within = !contains
	}
	if v, ok := first("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("limit must be a non-negative integer, got %q", truncate(v, 32)))
			return q, false
		}
		q.Limit = n
	}
	return q, true
}

func parseIPOrRange(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		return netip.ParsePrefix(v)
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errors.New("an address with a zone")
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
