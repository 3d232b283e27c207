package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// appendResult is the answer for one appended event.
type appendResult struct {
	Index     uint64 `json:"index"`
	LeafHash  string `json:"leaf_hash"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// dedupNamespace prefixes event ids in the ledger's dedup records, leaving
// room for other kinds of leaves to carry their own keys.
const dedupNamespace = "event\x00"

// postEvents accepts one event object, {"events":[...]}, or NDJSON. Every
// event is validated before anything is appended; one bad event rejects the
// request and nothing is written. It answers 201 once the events are
// durable, or 200 if every event was already in the log (same id).
func (s *Server) postEvents(c *gin.Context) {
	raws, single, status, msg := s.readEvents(c)
	if status != 0 {
		s.events.WithLabelValues("rejected").Inc()
		writeError(c, status, msg)
		return
	}
	now := s.cfg.Clock().UTC()
	entries := make([]ledger.Entry, len(raws))
	var bad []eventError
	for i, raw := range raws {
		ev, err := event.Parse(raw, event.ParseOptions{Now: now, MaxFuture: s.cfg.MaxFuture})
		if err != nil {
			var verr *event.ValidationError
			if !errors.As(err, &verr) {
				bad = append(bad, eventError{Index: i, Reason: err.Error()})
				continue
			}
			for _, f := range verr.Fields {
				bad = append(bad, eventError{Index: i, Field: f.Field, Reason: f.Reason})
			}
			continue
		}
		body := ev.Canonical()
		leaf, err := event.EncodeLeaf(event.KindEvent, now, body)
		if err != nil {
			bad = append(bad, eventError{Index: i, Reason: err.Error()})
			continue
		}
		entries[i].Data = leaf
		if ev.ID != "" {
			entries[i].DedupKey = []byte(dedupNamespace + ev.ID)
			entries[i].Fingerprint = sha256.Sum256(body)
		}
	}
	if len(bad) > 0 {
		s.events.WithLabelValues("rejected").Add(float64(len(raws)))
		msg := "invalid event; nothing was appended"
		if !single {
			msg = fmt.Sprintf("%d of %d events are invalid; nothing was appended", countEvents(bad), len(raws))
		}
		c.AbortWithStatusJSON(http.StatusBadRequest, errorBody{Error: msg, Events: bad})
		return
	}

	results, err := s.cfg.Ledger.Append(c, entries...)
	if errors.Is(err, ledger.ErrIDConflict) {
		for i, r := range results {
			switch {
			case r.Err == nil:
			case r.Duplicate:
				bad = append(bad, eventError{Index: i, Field: "id",
					Reason: fmt.Sprintf("already used by entry %d with different content", r.Index)})
			default:
				bad = append(bad, eventError{Index: i, Field: "id",
					Reason: "repeats the id of an earlier event in this request with different content"})
			}
		}
		s.events.WithLabelValues("rejected").Add(float64(len(raws)))
		c.AbortWithStatusJSON(http.StatusConflict, errorBody{Error: "an event id was reused with different content; nothing was appended", Events: bad})
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]appendResult, len(results))
	status = http.StatusOK
	for i, r := range results {
		out[i] = appendResult{Index: r.Index, LeafHash: base64.StdEncoding.EncodeToString(r.LeafHash[:]), Duplicate: r.Duplicate}
		if !r.Duplicate {
			status = http.StatusCreated
			s.events.WithLabelValues("appended").Inc()
		} else {
			s.events.WithLabelValues("duplicate").Inc()
		}
	}
	if single {
		c.JSON(status, out[0])
		return
	}
	c.JSON(status, gin.H{"results": out})
}

func countEvents(errs []eventError) int {
	n, last := 0, -1
	for _, e := range errs {
		if e.Index != last {
			n++
			last = e.Index
		}
	}
	return n
}

// readEvents reads the request body and splits it into raw events. It
// returns a non-zero status and a message if the body as a whole is
// unacceptable.
func (s *Server) readEvents(c *gin.Context) (raws [][]byte, single bool, status int, msg string) {
	ct := c.GetHeader("Content-Type")
	mediaType := "application/json"
	if ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return nil, false, http.StatusUnsupportedMediaType, "malformed Content-Type"
		}
		mediaType = mt
	}
	if mediaType != "application/json" && mediaType != "application/x-ndjson" {
		return nil, false, http.StatusUnsupportedMediaType, "Content-Type must be application/json or application/x-ndjson"
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, false, http.StatusRequestEntityTooLarge, "request body larger than " + strconv.FormatInt(s.cfg.MaxBodyBytes, 10) + " bytes"
		}
		return nil, false, http.StatusBadRequest, "reading request body failed"
	}
	if mediaType == "application/x-ndjson" {
		raws, status, msg = s.splitNDJSON(body)
		return raws, false, status, msg
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, false, http.StatusBadRequest, "empty request body"
	}
	if !isBatch(trimmed) {
		return [][]byte{body}, true, 0, ""
	}
	// The envelope is decoded as strictly as the events: exact member
	// names, no duplicates, nothing unknown.
	var batch struct {
		Events []jsontext.Value `json:"events"`
	}
	if err := json.Unmarshal(body, &batch, json.RejectUnknownMembers(true)); err != nil {
		return nil, false, http.StatusBadRequest, "malformed batch: " + strings.TrimPrefix(err.Error(), "json: ")
	}
	if len(batch.Events) == 0 {
		return nil, false, http.StatusBadRequest, `"events" must be a non-empty array`
	}
	if len(batch.Events) > s.cfg.MaxBatchEvents {
		return nil, false, http.StatusRequestEntityTooLarge, fmt.Sprintf("%d events in one request, limit %d", len(batch.Events), s.cfg.MaxBatchEvents)
	}
	raws = make([][]byte, len(batch.Events))
	for i, r := range batch.Events {
		raws[i] = r
	}
	return raws, false, 0, ""
}

// isBatch reports whether a JSON body is a batch: an object whose first key
// is "events". An event has no such field, so anything else is one event.
func isBatch(b []byte) bool {
	if b[0] != '{' {
		return false
	}
	b = bytes.TrimLeft(b[1:], " \t\r\n")
	return bytes.HasPrefix(b, []byte(`"events"`))
}

func (s *Server) splitNDJSON(body []byte) ([][]byte, int, string) {
	var raws [][]byte
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if len(raws) == s.cfg.MaxBatchEvents {
			return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("more than %d events in one request", s.cfg.MaxBatchEvents)
		}
		raws = append(raws, line)
	}
	if len(raws) == 0 {
		return nil, http.StatusBadRequest, "no events in NDJSON body"
	}
	return raws, 0, ""
}
