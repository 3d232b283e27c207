package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/accessledger/accessledger/client/evidence"
	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/respond"
)

// Responses is what the alert feed, lifecycle, incident and responder
// endpoints use: the server's respond service (a *respond.Service). Its
// methods are safe for concurrent use.
type Responses interface {
	AlertsAfter(ctx context.Context, after int64, limit int) ([]respond.FeedAlert, error)
	AlertsChanged() <-chan struct{}
	Alert(ctx context.Context, index uint64) (*respond.FeedAlert, error)
	Respond(ctx context.Context, index uint64, action, by, note string) (*respond.Recorded, error)
	Incident(ctx context.Context, index uint64) (*respond.Incident, error)
	Responders(ctx context.Context) ([]respond.ResponderStatus, error)
	DeadLetters(ctx context.Context, responder string, limit int) ([]respond.DeadLetter, error)
	Redeliver(ctx context.Context, responder string, id uint64) (int, error)
	Enable(ctx context.Context, responder string) error
	Digest(ctx context.Context, day time.Time, by string) (*respond.Recorded, error)
	Status() respond.ServiceStatus
}

// DefaultSSEHeartbeat is how often an idle alert stream gets a comment
// line, so that proxies and clients see it is alive.
const DefaultSSEHeartbeat = 15 * time.Second

// msgNoResponders answers the respond endpoints of a server without a
// respond service.
const msgNoResponders = "responders are off on this server (no respond service in its configuration), so there is no alert feed, lifecycle, incident or responder state"

// Limits of the respond endpoints.
const (
	// maxRespondBody bounds the JSON bodies of POST /v1/alerts/:id/ack
	// and friends: a note of event.MaxResponseNote bytes, even fully
	// escaped, fits.
	maxRespondBody = 32 << 10
	// maxLongPoll bounds wait= of GET /v1/alerts?after=.
	maxLongPoll = 60 * time.Second
	// defaultDeadLetters and maxDeadLetters bound ?limit= of the
	// dead-letter list.
	defaultDeadLetters = 100
	maxDeadLetters     = 1000
)

// respondRoutes registers the alert feed (stream and single alert), the
// alert lifecycle, incidents and the responder admin endpoints.
func (s *Server) respondRoutes(e *gin.Engine) {
	var (
		read      = s.require(false, RoleResponder, RoleAuditor)
		responder = s.require(false, RoleResponder)
		admin     = s.require(false, RoleAdmin)
		on        = s.needResponses
		hub       = newFeedHub(s.cfg.Responses)
	)
	// Alerts hold personal data: their reads are recorded, as those of
	// entries (but not an answer without an alert: nothingRead).
	e.GET("/v1/alerts/stream", s.auditReads(read), on, func(c *gin.Context) { s.streamAlerts(c, hub) })
	e.GET("/v1/alerts/:id", s.auditReads(read), on, s.getAlert)
	e.POST("/v1/alerts/:id/ack", responder, on, s.respondAlert(event.ActionAcknowledged))
	e.POST("/v1/alerts/:id/resolve", responder, on, s.respondAlert(event.ActionResolved))
	// An incident holds its evidence events (personal data): its reads
	// are recorded like those of entries.
	e.GET("/v1/incidents/:id", s.auditReads(read), on, s.getIncident)
	e.GET("/v1/responders", responder, on, s.getResponders)
	e.GET("/v1/responders/:name/dead-letters", admin, on, s.getDeadLetters)
	e.POST("/v1/responders/:name/redeliver", admin, on, s.redeliver)
	e.POST("/v1/responders/:name/enable", admin, on, s.enableResponder)
	e.POST("/v1/admin/digest", s.auditAdmin(admin), on, s.postDigest)
}

// needResponses answers 404 when the server has no respond service.
func (s *Server) needResponses(c *gin.Context) {
	if s.cfg.Responses == nil {
		writeError(c, http.StatusNotFound, msgNoResponders)
	}
}

// failRespond answers an error of the respond service: its own errors
// here, the ledger's (and everything else) through fail. notFound
// phrases respond.ErrNoAlert and respond.ErrNotFound.
func (s *Server) failRespond(c *gin.Context, err error, notFound string) {
	var verr *event.ValidationError
	switch {
	case errors.Is(err, respond.ErrNoAlert), errors.Is(err, respond.ErrNotFound):
		writeError(c, http.StatusNotFound, notFound)
	case errors.As(err, &verr):
		writeError(c, http.StatusBadRequest, verr.Error())
	default:
		s.fail(c, err, notFound)
	}
}

// appendFeedAlert appends the JSON of a feed alert: the shape of an item
// of GET /v1/alerts, plus its status.
//
//	{"index":42,"leaf_hash":"<base64>","received_at":"<RFC 3339>","alert":{...},"status":"open"}
func appendFeedAlert(b []byte, fa *respond.FeedAlert) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, fa.Index, 10)
	b = append(b, `,"leaf_hash":"`...)
	b = base64.StdEncoding.AppendEncode(b, fa.LeafHash)
	b = append(b, `","received_at":"`...)
	b = fa.ReceivedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","alert":`...)
	b = append(b, fa.Alert.Canonical()...)
	b = append(b, `,"status":`...)
	b = strconv.AppendQuote(b, fa.Status) // a plain word: open, acknowledged, resolved
	return append(b, '}')
}

// parseAfter parses a feed position: the index of the last alert
// received, or -1 for the beginning. It must be below the log's size.
// It answers 400 and returns false if it is not.
func (s *Server) parseAfter(c *gin.Context, name, v string) (int64, bool) {
	if v == "-1" {
		return -1, true
	}
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil || len(v) > 19 || leadingZero(v) {
		writeError(c, http.StatusBadRequest, fmt.Sprintf("%s must be the index of the last alert received (a non-negative decimal integer without leading zeros), or -1 for the beginning; got %q", name, truncate(v, 32)))
		return 0, false
	}
	if size, _ := s.cfg.Ledger.Size(); n >= size {
		writeError(c, http.StatusBadRequest, fmt.Sprintf("%s %d is not an index of this log, whose size is %d; give the index of the last alert received, or -1 for the beginning", name, n, size))
		return 0, false
	}
	return int64(n), true
}

// getAlertFeed answers GET /v1/alerts?after=N[&limit=L][&wait=D] from the
// respond feed: the alerts with index above after, oldest first, at most
// limit (default 100, at most 1000), each with its status, and next, the
// index of the last alert returned (after itself if none), to pass as the
// next after. With wait (a duration up to 60s, such as 30s), an empty
// answer is held until an alert arrives or the wait ends; it is then 200
// with no alerts.
func (s *Server) getAlertFeed(c *gin.Context) {
	if s.cfg.Responses == nil {
		writeError(c, http.StatusNotFound, msgNoResponders)
		return
	}
	for _, p := range []string{"cursor", "since", "level", "rule"} {
		if _, ok := c.GetQuery(p); ok {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("after reads the respond feed in log order and cannot be combined with %s; drop %s, or drop after to page through the detector's alerts", p, p))
			return
		}
	}
	after, ok := s.parseAfter(c, "after", c.Query("after"))
	if !ok {
		return
	}
	limit := 100
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to 1000, got %q", truncate(v, 32)))
			return
		}
		limit = n
	}
	var wait time.Duration
	if v, ok := c.GetQuery("wait"); ok {
		d, err := parseWait(v)
		if err != nil {
			writeError(c, http.StatusBadRequest, err.Error())
			return
		}
		wait = d
	}
	var deadline <-chan time.Time
	if wait > 0 {
		// The answer may take up to a minute: the request's read
		// deadline (http.Server.ReadTimeout) must not end it.
		_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Time{})
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	var fas []respond.FeedAlert
	stop := s.shutdowns.of(c)
	for {
		changed := s.cfg.Responses.AlertsChanged() // before reading: nothing added in between is missed
		keysChanged := s.auth.keysChanged()
		if deadline != nil && !s.keyStillValid(c) {
			deadline = nil // revoked while waiting: answer now (401, below)
		}
		var err error
		if fas, err = s.cfg.Responses.AlertsAfter(c, after, limit); err != nil {
			s.failRespond(c, err, "")
			return
		}
		if len(fas) > 0 || deadline == nil {
			break
		}
		select {
		case <-changed:
		case <-keysChanged: // checked above
		case <-deadline:
			deadline = nil // one last read, then answer
		case <-stop:
			// The server shuts down: answer now, so that the client
			// polls again (the next server) instead of losing the
			// connection at the shutdown's deadline.
			deadline, stop = nil, nil
		case <-c.Done():
			return
		}
	}
	if wait > 0 && !s.keyStillValid(c) {
		// The key was revoked (or expired) while the poll waited.
		s.refuseKey(c)
		return
	}
	next := after
	b := make([]byte, 0, 64+len(fas)*768)
	b = append(b, `{"alerts":[`...)
	for i := range fas {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendFeedAlert(b, &fas[i])
		next = int64(fas[i].Index)
	}
	b = append(b, `],"next":`...)
	b = strconv.AppendInt(b, next, 10)
	b = append(b, '}')
	if len(fas) == 0 {
		nothingRead(c)
	}
	c.Header("Cache-Control", "private, no-store")
	c.Data(http.StatusOK, "application/json; charset=utf-8", b)
}

// parseWait parses wait=: a Go duration (30s, 500ms) or a number of
// seconds, from 0 to 60 seconds.
func parseWait(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 64)
		if nerr == nil && n > uint64(maxLongPoll/time.Second) {
			return 0, fmt.Errorf("wait must be from 0 to 60 seconds, got %q", truncate(v, 32))
		}
		if nerr != nil {
			return 0, fmt.Errorf("wait must be a duration such as 30s or 500ms (or a number of seconds), at most 60s; got %q", truncate(v, 32))
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 || d > maxLongPoll {
		return 0, fmt.Errorf("wait must be from 0s to 60s, got %s", d)
	}
	return d, nil
}

// getAlert answers GET /v1/alerts/:id: the alert at that log index with
// its status, in the shape of a feed item. 404 if that index holds no
// alert.
func (s *Server) getAlert(c *gin.Context) {
	id, ok := parseUint(c, "the alert id", c.Param("id"))
	if !ok {
		return
	}
	fa, err := s.cfg.Responses.Alert(c, id)
	if err != nil {
		s.failRespond(c, err, noAlert(id))
		return
	}
	c.Header("Cache-Control", "private, no-cache")
	c.Data(http.StatusOK, "application/json; charset=utf-8", appendFeedAlert(nil, fa))
}

func noAlert(id uint64) string {
	return fmt.Sprintf("there is no alert at log index %d; GET /v1/alerts lists the alerts", id)
}

// recordedJSON is the answer of the endpoints that append a response
// leaf.
type recordedJSON struct {
	Index    uint64  `json:"index"`
	LeafHash string  `json:"leaf_hash"`
	Response rawJSON `json:"response"`
}

// rawJSON is JSON embedded verbatim.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

func newRecordedJSON(r *respond.Recorded) recordedJSON {
	return recordedJSON{Index: r.Index, LeafHash: b64(r.LeafHash), Response: r.Response.Canonical()}
}

// respondAlert answers POST /v1/alerts/:id/ack and /resolve: it records
// the acknowledgement or resolution, by the caller's key, with the note
// of the optional body {"note":"..."}, as a response leaf, and answers
// 201 with that leaf's index, leaf hash and canonical response.
func (s *Server) respondAlert(action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := parseUint(c, "the alert id", c.Param("id"))
		if !ok {
			return
		}
		var body struct {
			Note string `json:"note"`
		}
		if !s.readSmallJSON(c, &body, `{"note":"..."}`) {
			return
		}
		if len(body.Note) > event.MaxResponseNote {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("note is %d bytes long, more than the %d allowed", len(body.Note), event.MaxResponseNote))
			return
		}
		// A note is shown to analysts, in terminals too: line breaks and
		// tabs, but no other control character (an escape sequence would
		// act on the reader's terminal), nor a bidirectional override
		// (which makes "evil\u202egnp.exe" read "evilexe.png").
		if r, ok := controlRune(body.Note); ok {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("note must not contain control characters or bidirectional overrides (found U+%04X); line breaks and tabs are fine", r))
			return
		}
		rec, err := s.cfg.Responses.Respond(c, id, action, c.GetString(ctxKeyName), body.Note)
		if errors.Is(err, respond.ErrConflict) {
			writeError(c, http.StatusConflict, s.conflict(c, id, action))
			return
		}
		if err != nil {
			s.failRespond(c, err, noAlert(id))
			return
		}
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusCreated, newRecordedJSON(rec))
	}
}

// conflict phrases why an alert cannot be acknowledged or resolved.
func (s *Server) conflict(ctx context.Context, id uint64, action string) string {
	status := "acknowledged or resolved"
	if fa, err := s.cfg.Responses.Alert(ctx, id); err == nil {
		status = fa.Status
	}
	switch {
	case action == event.ActionAcknowledged && status == respond.StatusAcknowledged:
		return fmt.Sprintf("alert %d is already acknowledged; resolve it with POST /v1/alerts/%d/resolve", id, id)
	case action == event.ActionAcknowledged:
		return fmt.Sprintf("alert %d is already %s: it cannot be acknowledged", id, status)
	}
	return fmt.Sprintf("alert %d is already resolved", id)
}

// readSmallJSON decodes an optional JSON object body of at most
// maxRespondBody bytes into v, strictly: unknown members, duplicate
// names, wrong types and trailing data are refused. An empty body leaves
// v as it is. It answers the error and returns false if the body is not
// acceptable; shape shows the expected body in messages.
func (s *Server) readSmallJSON(c *gin.Context, v any, shape string) bool {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeError(c, http.StatusUnsupportedMediaType, "Content-Type must be application/json (or absent, for an empty body)")
			return false
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxRespondBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", maxRespondBody))
			return false
		}
		status, msg := bodyReadFailed(err)
		writeError(c, status, msg)
		return false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return true
	}
	err = json.Unmarshal(data, v, json.RejectUnknownMembers(true))
	var serr *json.SemanticError
	switch {
	case err == nil:
		return true
	case errors.As(err, &serr) && errors.Is(err, json.ErrUnknownName):
		name := strings.TrimPrefix(string(serr.JSONPointer), "/")
		writeError(c, http.StatusBadRequest, fmt.Sprintf("the body has an unknown member %q; send %s", truncate(name, 64), shape))
	case errors.As(err, &serr) && serr.JSONPointer != "":
		writeError(c, http.StatusBadRequest, fmt.Sprintf("member %q of the body has the wrong type; send %s", truncate(strings.TrimPrefix(string(serr.JSONPointer), "/"), 64), shape))
	default:
		writeError(c, http.StatusBadRequest, fmt.Sprintf("the body must be one JSON object %s (valid UTF-8, no duplicate members) or empty", shape))
	}
	return false
}

// incidentJSON is the answer of GET /v1/incidents/:id.
type incidentJSON struct {
	// Index and Status are the alert's; Alert is its feed item.
	Index  uint64  `json:"index"`
	Status string  `json:"status"`
	Alert  rawJSON `json:"alert"`
	// Evidence lists the events the alert was raised on (at most
	// event.MaxEvidence of EvidenceCount), Responses the response leaves
	// about it, as far as the respond service has processed the log
	// (Processed, its cursor).
	Evidence      []uint64 `json:"evidence"`
	EvidenceCount int      `json:"evidence_count"`
	Responses     []uint64 `json:"responses"`
	Processed     uint64   `json:"processed"`
	// CheckpointSize is the size of the checkpoint the bundle proves its
	// entries against; Pending lists the entries of the incident beyond
	// it, left out of the bundle until a later checkpoint covers them.
	CheckpointSize uint64   `json:"checkpoint_size"`
	Pending        []uint64 `json:"pending"`
	// Bundle is an evidence bundle (accessledger-evidence/v1, verbatim):
	// the alert, its evidence and its responses below the checkpoint,
	// each with its C2SP tlog-proof against that one checkpoint.
	Bundle string `json:"bundle"`
}

// getIncident answers GET /v1/incidents/:id: the alert at that index, its
// status, the log indexes of its evidence events and of its response
// leaves, and an evidence bundle holding every one of these entries
// (alert included) with an inclusion proof against one signed checkpoint
// (the cosigned one when witnessing is on). Entries beyond that
// checkpoint (a response recorded a moment ago) are not waited for: they
// are listed in pending and left out of the bundle; ask again after the
// next checkpoint.
func (s *Server) getIncident(c *gin.Context) {
	id, ok := parseUint(c, "the alert id", c.Param("id"))
	if !ok {
		return
	}
	inc, err := s.cfg.Responses.Incident(c, id)
	if err != nil {
		s.failRespond(c, err, noAlert(id))
		return
	}
	cpNote, witnesses, cp, err := s.parsedEvidenceCheckpoint(c)
	if err != nil {
		s.fail(c, err, "")
		return
	}
	a := inc.Alert.Alert
	indexes := make([]uint64, 0, len(a.Evidence)+1+len(inc.Responses))
	indexes = append(indexes, a.Evidence...)
	indexes = append(indexes, id)
	indexes = append(indexes, inc.Responses...)
	slices.Sort(indexes)
	indexes = slices.Compact(indexes)
	out := incidentJSON{Index: id, Status: inc.Alert.Status, Alert: appendFeedAlert(nil, &inc.Alert),
		Evidence: a.Evidence, EvidenceCount: a.EvidenceCount, Responses: inc.Responses, Processed: inc.Cursor,
		CheckpointSize: cp.Size, Pending: []uint64{}}
	if out.Evidence == nil {
		out.Evidence = []uint64{}
	}
	var buf bytes.Buffer
	w, err := evidence.NewWriter(&buf, evidence.Header{
		Origin: s.cfg.Ledger.Origin(), VerifierKey: s.cfg.Ledger.VerifierKey(), WitnessKeys: witnesses,
		Checkpoint: cpNote, Query: fmt.Sprintf("incident %d: the alert, its evidence and its responses", id),
		IndexedSize: inc.Cursor, Created: s.cfg.Clock(),
	})
	r := newEntryReader(s.cfg.Ledger, cp.Size)
	proofs := evidence.NewProofBuilder(s.cfg.Ledger, cp.Size)
	for _, i := range indexes {
		if err != nil {
			break
		}
		if i >= cp.Size {
			out.Pending = append(out.Pending, i)
			continue
		}
		var entry []byte
		if entry, err = r.read(c, i); err != nil {
			break
		}
		var hashes [][]byte
		if hashes, err = proofs.Inclusion(c, i); err == nil {
			err = w.Add(i, entry, hashes)
		}
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		s.fail(c, fmt.Errorf("building the bundle of incident %d: %w", id, err), "")
		return
	}
	out.Bundle = buf.String()
	c.Header("Cache-Control", "private, no-store")
	c.JSON(http.StatusOK, out)
}

// getResponders answers GET /v1/responders: every responder's delivery
// state, and the service's (running, how far it followed the log).
func (s *Server) getResponders(c *gin.Context) {
	rs, err := s.cfg.Responses.Responders(c)
	if err != nil {
		s.failRespond(c, err, "")
		return
	}
	c.Header("Cache-Control", "private, no-store")
	st := s.cfg.Responses.Status()
	service := gin.H{"running": st.Running, "cursor": st.Cursor, "log_size": st.LogSize}
	if !st.Running && st.Error != "" {
		service["error"] = "the responders stopped after an error: nothing is delivered or decided until the server restarts; the operator can find the error in the server log"
	}
	c.JSON(http.StatusOK, gin.H{"service": service, "responders": rs})
}

func noResponder(name string) string {
	return fmt.Sprintf("no responder named %q; GET /v1/responders lists them", truncate(name, 64))
}

// getDeadLetters answers GET /v1/responders/:name/dead-letters?limit=N:
// the responder's dead letters, oldest first, at most limit (default
// 100, at most 1000).
func (s *Server) getDeadLetters(c *gin.Context) {
	name := c.Param("name")
	limit := defaultDeadLetters
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDeadLetters {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d, got %q", maxDeadLetters, truncate(v, 32)))
			return
		}
		limit = n
	}
	dl, err := s.cfg.Responses.DeadLetters(c, name, limit)
	if err != nil {
		s.failRespond(c, err, noResponder(name))
		return
	}
	c.Header("Cache-Control", "private, no-store")
	c.JSON(http.StatusOK, gin.H{"responder": name, "dead_letters": dl})
}

// redeliver answers POST /v1/responders/:name/redeliver with the
// optional body {"id":N}: it moves that dead letter, or all of the
// responder's without id, back into its outbox, and answers how many.
func (s *Server) redeliver(c *gin.Context) {
	name := c.Param("name")
	var body struct {
		// Raw, so that "id":null (a script's unset variable) is not
		// taken for an absent id, which redelivers everything.
		ID jsontext.Value `json:"id"`
	}
	if !s.readSmallJSON(c, &body, `{"id":N} (or no body, for all)`) {
		return
	}
	var id uint64
	if body.ID != nil {
		if err := json.Unmarshal(body.ID, &id); err != nil || id == 0 {
			writeError(c, http.StatusBadRequest, "id must be a dead letter's id (1 or more, from GET /v1/responders/"+truncate(name, 64)+"/dead-letters); omit it to redeliver them all")
			return
		}
	}
	n, err := s.cfg.Responses.Redeliver(c, name, id)
	if err != nil {
		msg := noResponder(name)
		if id != 0 && errors.Is(err, respond.ErrNotFound) {
			msg = fmt.Sprintf("no responder named %q, or it has no dead letter %d", truncate(name, 64), id)
		}
		s.failRespond(c, err, msg)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"responder": name, "redelivered": n})
}

// enableResponder answers POST /v1/responders/:name/enable: deliveries
// to a responder disabled after a 410 Gone resume.
func (s *Server) enableResponder(c *gin.Context) {
	name := c.Param("name")
	if err := s.cfg.Responses.Enable(c, name); err != nil {
		s.failRespond(c, err, noResponder(name))
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"responder": name, "enabled": true})
}

// postDigest answers POST /v1/admin/digest?day=YYYY-MM-DD (default: the
// current UTC day): it records the digest of that UTC day as a response
// leaf (once: asking again returns the recorded one) and answers 200 with
// its index, leaf hash and response.
func (s *Server) postDigest(c *gin.Context) {
	// A day's digest is recorded once: only a day that has ended has its
	// final counts. The default is the day just ended, as the schedule's.
	now := s.cfg.Clock().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	day := today.AddDate(0, 0, -1)
	if v, ok := c.GetQuery("day"); ok {
		d, err := time.Parse(time.DateOnly, v)
		if err != nil {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("day must be a date YYYY-MM-DD such as 2026-01-02, got %q", truncate(v, 32)))
			return
		}
		if !d.Before(today) {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("day %s has not ended (today is %s, UTC): a day's digest is recorded once, with its final counts",
				d.Format(time.DateOnly), today.Format(time.DateOnly)))
			return
		}
		day = d
	}
	rec, err := s.cfg.Responses.Digest(c, day, c.GetString(ctxKeyName))
	if err != nil {
		s.failRespond(c, err, "")
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, newRecordedJSON(rec))
}

// Sizes of the alert stream.
const (
	// hubWindow is how many of the newest alerts the hub keeps encoded
	// (between this and twice this).
	hubWindow = 4096
	// hubPage is how many alerts the hub reads from the service at once,
	// and directPage a stream behind the hub's window.
	hubPage    = 1000
	directPage = 100
	// sseWriteTimeout bounds each write of a stream: a client that
	// stops reading for this long is dropped.
	sseWriteTimeout = 30 * time.Second
	// sseRetry is the reconnection delay streams ask of clients, in
	// milliseconds.
	sseRetry = 2000
)

// sseEvent is an alert of the stream, encoded as its event.
type sseEvent struct {
	index uint64
	frame []byte // id: N\nevent: alert\ndata: {...}\n\n
}

func newSSEEvent(fa *respond.FeedAlert) sseEvent {
	b := make([]byte, 0, 1024)
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, fa.Index, 10)
	b = append(b, "\nevent: alert\ndata: "...)
	b = appendFeedAlert(b, fa)
	b = append(b, "\n\n"...)
	return sseEvent{index: fa.Index, frame: b}
}

// feedHub shares the newest alerts of the feed among the alert streams:
// it reads each alert from the respond service once, encodes its event
// once, and keeps a window of the newest ones that every stream writes
// from. A stream behind the window reads the service itself until it
// reaches it. The window is dropped when the last stream ends. Its
// methods are safe for concurrent use.
type feedHub struct {
	src Responses

	// fetch is held by the one stream reading the service for the hub.
	fetch sync.Mutex

	mu      sync.Mutex // guards the fields below
	streams int
	gen     uint64 // counts resets of the window
	ready   bool   // from, to, events, stale and grown are set
	// events holds every alert of the feed with from < index <= to, in
	// index order; an element is never modified once added, so a
	// sub-slice may be read without the lock.
	from, to int64
	events   []sseEvent
	// stale is AlertsChanged as taken before the read that set to: once
	// closed, the feed may hold alerts above to. grown is closed (and
	// replaced) when the window grows.
	stale <-chan struct{}
	grown chan struct{}
}

func newFeedHub(src Responses) *feedHub {
	return &feedHub{src: src}
}

// join counts a stream in.
func (h *feedHub) join() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.streams++
}

// shutdowns gives, for each http.Server serving requests that wait (alert
// streams, long polls), a channel closed when it shuts down: Shutdown
// waits for requests to end, and such a request would not, or would end
// only at the deadline with no answer. Safe for concurrent use.
type shutdowns struct {
	mu sync.Mutex
	ch map[*http.Server]chan struct{}
}

// of returns the channel of the server serving c's request, nil if none.
func (sd *shutdowns) of(c *gin.Context) <-chan struct{} {
	srv, _ := c.Request.Context().Value(http.ServerContextKey).(*http.Server)
	if srv == nil {
		return nil
	}
	sd.mu.Lock()
	defer sd.mu.Unlock()
	ch, ok := sd.ch[srv]
	if !ok {
		if sd.ch == nil {
			sd.ch = make(map[*http.Server]chan struct{})
		}
		ch = make(chan struct{})
		sd.ch[srv] = ch
		srv.RegisterOnShutdown(func() {
			sd.mu.Lock()
			defer sd.mu.Unlock()
			if !closed(ch) { // each call of Shutdown calls this
				close(ch)
			}
		})
	}
	return ch
}

// leave counts a stream out; the last one drops the window, which would
// otherwise have to be read up to date by the next stream however long
// no stream ran.
func (h *feedHub) leave() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.streams--; h.streams == 0 {
		h.ready, h.events, h.stale, h.grown = false, nil, nil, nil
		h.gen++
	}
}

// window returns the events of the window after pos, and the channels to
// wait on when there are none; in is false if the window does not reach
// back to pos (or is not set).
func (h *feedHub) window(pos int64) (evs []sseEvent, in bool, stale <-chan struct{}, grown <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.ready || pos < h.from {
		return nil, false, nil, nil
	}
	i, _ := slices.BinarySearchFunc(h.events, pos, func(e sseEvent, pos int64) int {
		if int64(e.index) <= pos {
			return -1
		}
		return 1
	})
	return h.events[i:len(h.events):len(h.events)], true, h.stale, h.grown
}

// start sets the window at pos, where a stream found the feed to end
// with changed taken before its read, unless the window is set.
func (h *feedHub) start(pos int64, changed <-chan struct{}) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ready {
		return false
	}
	h.ready, h.from, h.to, h.events, h.stale, h.grown = true, pos, pos, nil, changed, make(chan struct{})
	return true
}

// refresh reads the feed above the window into it, if the feed may have
// grown since the window was last read. One stream at a time reads; the
// others wait for it and find the window fresh.
func (h *feedHub) refresh(ctx context.Context) error {
	h.fetch.Lock()
	defer h.fetch.Unlock()
	for {
		h.mu.Lock()
		ready, gen, to, stale := h.ready, h.gen, h.to, h.stale
		h.mu.Unlock()
		if !ready || !closed(stale) {
			return nil
		}
		changed := h.src.AlertsChanged() // before reading: nothing added in between is missed
		fas, err := h.src.AlertsAfter(ctx, to, hubPage)
		if err != nil {
			return err
		}
		evs := make([]sseEvent, len(fas))
		for i := range fas {
			evs[i] = newSSEEvent(&fas[i])
		}
		h.mu.Lock()
		if h.gen != gen {
			h.mu.Unlock()
			return nil
		}
		if len(evs) > 0 {
			if len(h.events)+len(evs) > 2*hubWindow {
				// Keep hubWindow events; as hubPage < hubWindow,
				// only older ones are dropped.
				drop := len(h.events) + len(evs) - hubWindow
				h.from = int64(h.events[drop-1].index)
				h.events = slices.Clone(h.events[drop:])
			}
			h.events = append(h.events, evs...)
			h.to = int64(fas[len(fas)-1].Index)
			close(h.grown)
			h.grown = make(chan struct{})
		}
		more := len(fas) == hubPage
		if !more {
			h.stale = changed
		}
		h.mu.Unlock()
		if !more {
			return nil
		}
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// streamStart reads where a stream starts: after the Last-Event-ID
// header's index, else after the after= parameter's, else (from=now)
// after the log's current end, else at the beginning (-1).
func (s *Server) streamStart(c *gin.Context) (int64, bool) {
	if id := strings.TrimSpace(c.GetHeader("Last-Event-ID")); id != "" {
		return s.parseAfter(c, "Last-Event-ID", id)
	}
	after, hasAfter := c.GetQuery("after")
	from, hasFrom := c.GetQuery("from")
	switch {
	case hasAfter && hasFrom:
		writeError(c, http.StatusBadRequest, "give after=N (resume after alert N) or from=now (only new alerts), not both")
		return 0, false
	case hasAfter:
		return s.parseAfter(c, "after", after)
	case hasFrom && from != "now":
		writeError(c, http.StatusBadRequest, fmt.Sprintf(`from must be "now" (only alerts appended from now on), got %q; use after=N to resume after alert N`, truncate(from, 32)))
		return 0, false
	case hasFrom:
		size, _ := s.cfg.Ledger.Size()
		return int64(size) - 1, true
	}
	return -1, true
}

// streamAlerts answers GET /v1/alerts/stream: the alert feed as
// Server-Sent Events. It first sends "retry: 2000" and, when it starts
// after an index, "id: <index>" (no event: it makes a reconnecting
// client resume from there); then each alert, in log order, as
//
//	id: <alert index>
//	event: alert
//	data: <the alert as an item of GET /v1/alerts, with its status>
//
// and, every SSEHeartbeat, a comment line ": heartbeat". It starts after
// the Last-Event-ID header's index, else after ?after=N, else with
// ?from=now after the alerts already in the log, else at the beginning;
// resuming with the last id received gives every later alert once, in
// order. A status is the alert's when its event was sent: changes are
// not sent again. The stream ends when the client leaves, the server
// shuts down, or the respond service fails (the client reconnects).
func (s *Server) streamAlerts(c *gin.Context, h *feedHub) {
	pos, ok := s.streamStart(c)
	if !ok {
		return
	}
	if !s.alertStreams.take(c) {
		return
	}
	defer s.alertStreams.done(c)
	ctx := c.Request.Context()
	stop := s.shutdowns.of(c)
	h.join()
	defer h.leave()
	sent := 0
	defer func() {
		if sent == 0 {
			nothingRead(c) // heartbeats only: no read to record
		}
	}()

	c.Header("Content-Type", "text/event-stream")
	c.Header("Cache-Control", "no-store")
	c.Header("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	rc := http.NewResponseController(c.Writer)
	// A stream lasts: http.Server's ReadTimeout must not end it, and
	// each write gets its own deadline instead of its WriteTimeout.
	_ = rc.SetReadDeadline(time.Time{})
	defer rc.SetWriteDeadline(time.Time{})
	w := &sseWriter{bw: bufio.NewWriterSize(c.Writer, 32<<10), rc: rc}
	w.begin()
	w.bw.WriteString("retry: " + strconv.Itoa(sseRetry) + "\n")
	if pos >= 0 {
		w.bw.WriteString("id: " + strconv.FormatInt(pos, 10) + "\n")
	}
	w.bw.WriteString("\n")
	err := w.flush()

	every := s.cfg.SSEHeartbeat
	if every <= 0 {
		every = DefaultSSEHeartbeat
	}
	heartbeat := time.NewTicker(every)
	defer heartbeat.Stop()
	for err == nil && !closed(stop) {
		keysChanged := s.auth.keysChanged()
		if !s.keyStillValid(c) {
			// Revoked, expired or no longer allowed since the stream
			// began: it ends, and reconnecting is refused with why.
			return
		}
		evs, in, stale, grown := h.window(pos)
		var changed <-chan struct{}
		if !in {
			// Behind the window: read the service directly.
			changed = s.cfg.Responses.AlertsChanged()
			var fas []respond.FeedAlert
			if fas, err = s.cfg.Responses.AlertsAfter(ctx, pos, directPage); err != nil {
				break
			}
			evs = make([]sseEvent, len(fas))
			for i := range fas {
				evs[i] = newSSEEvent(&fas[i])
			}
			if len(evs) == 0 && h.start(pos, changed) {
				continue
			}
		}
		if len(evs) > 0 {
			evs = evs[:min(len(evs), hubPage)]
			w.begin()
			for _, e := range evs {
				w.bw.Write(e.frame)
			}
			sent += len(evs)
			pos = int64(evs[len(evs)-1].index)
			err = w.flush()
			continue
		}
		select {
		case <-stale:
			err = h.refresh(ctx)
		case <-grown:
		case <-changed:
		case <-keysChanged: // checked at the top: a revoked key's stream ends now
		case <-heartbeat.C:
			w.begin()
			w.bw.WriteString(": heartbeat\n\n")
			err = w.flush()
		case <-ctx.Done():
			return
		case <-stop:
			return
		}
	}
	if ctx.Err() == nil && !errors.Is(err, errClientGone) {
		s.log.WarnContext(ctx, "alert stream ended", "err", err)
	}
}

// errClientGone is a failed write to a stream's client.
var errClientGone = errors.New("the client stopped reading")

// sseWriter writes a stream through a buffer, flushed once per batch.
type sseWriter struct {
	bw *bufio.Writer
	rc *http.ResponseController
}

// begin gives the writes that follow until the next flush their
// deadline.
func (w *sseWriter) begin() { _ = w.rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout)) }

func (w *sseWriter) flush() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("%w: %v", errClientGone, err)
	}
	if err := w.rc.Flush(); err != nil {
		return fmt.Errorf("%w: %v", errClientGone, err)
	}
	return nil
}

// controlRune returns the first control character of s other than a line
// feed, a carriage return or a tab (C0, DEL or C1), or bidirectional
// override (event.IsBidiControl).
func controlRune(s string) (rune, bool) {
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' || event.IsBidiControl(r) {
			return r, true
		}
	}
	return 0, false
}
