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
	"slices"
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

// eventResult is the answer for one event of a partially accepted batch:
// where it was appended, or why it was not.
type eventResult struct {
	*appendResult
	Errors []eventError `json:"errors,omitempty"`
}

// postEvents accepts one event object, {"events":[...]}, or NDJSON. Every
// event is validated before anything is appended; one bad event rejects the
// request and nothing is written, unless the caller asks for partial
// acceptance (?partial=true), in which case the valid events are appended
// (all or none of them) and the invalid ones reported. It answers 201 once
// the events are durable, or 200 if every event was already in the log
// (same id).
func (s *Server) postEvents(c *gin.Context) {
	partial := false
	if v, ok := c.GetQuery("partial"); ok {
		p, err := strconv.ParseBool(v)
		if err != nil {
			writeError(c, http.StatusBadRequest, "partial must be true or false")
			return
		}
		partial = p
	}
	raws, single, status, msg := s.readEvents(c)
	if status != 0 {
		s.events.WithLabelValues("rejected").Inc()
		writeError(c, status, msg)
		return
	}
	entries, bad := s.prepare(raws)
	if len(bad) > 0 && (!partial || single || len(bad) == len(raws)) {
		s.events.WithLabelValues("rejected").Add(float64(len(raws)))
		msg := "invalid event; nothing was appended"
		if !single {
			msg = fmt.Sprintf("%d of %d events are invalid; nothing was appended", len(bad), len(raws))
		}
		c.AbortWithStatusJSON(http.StatusBadRequest, errorBody{Error: msg, Events: flatten(bad)})
		return
	}

	// With partial acceptance, append the valid events; an id conflict
	// (which appends nothing) moves the conflicting events to the rejected
	// ones and the rest is tried once more.
	for attempt := 0; ; attempt++ {
		var pos []int // positions in raws of the entries appended
		var valid []ledger.Entry
		for i := range entries {
			if bad[i] == nil {
				pos = append(pos, i)
				valid = append(valid, entries[i])
			}
		}
		if len(valid) == 0 {
			s.events.WithLabelValues("rejected").Add(float64(len(raws)))
			c.AbortWithStatusJSON(http.StatusConflict, errorBody{Error: "no event could be appended", Events: flatten(bad)})
			return
		}
		results, err := s.cfg.Ledger.Append(c, valid...)
		if errors.Is(err, ledger.ErrIDConflict) {
			for k, r := range results {
				switch {
				case r.Err == nil:
				case r.Duplicate:
					bad[pos[k]] = []eventError{{Index: pos[k], Field: "id",
						Reason: fmt.Sprintf("already used by entry %d with different content", r.Index)}}
				default:
					bad[pos[k]] = []eventError{{Index: pos[k], Field: "id",
						Reason: "repeats the id of an earlier event in this request with different content"}}
				}
			}
			if partial && !single && attempt == 0 {
				continue
			}
			s.events.WithLabelValues("rejected").Add(float64(len(raws)))
			c.AbortWithStatusJSON(http.StatusConflict, errorBody{Error: "an event id was reused with different content; nothing was appended", Events: flatten(bad)})
			return
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		s.answer(c, raws, single, pos, results, bad)
		return
	}
}

// answer writes the results of a successful append.
func (s *Server) answer(c *gin.Context, raws [][]byte, single bool, pos []int, results []ledger.Result, bad map[int][]eventError) {
	out := make([]eventResult, len(raws))
	status := http.StatusOK
	for k, r := range results {
		out[pos[k]].appendResult = &appendResult{Index: r.Index, LeafHash: base64.StdEncoding.EncodeToString(r.LeafHash[:]), Duplicate: r.Duplicate}
		if !r.Duplicate {
			status = http.StatusCreated
			s.events.WithLabelValues("appended").Inc()
		} else {
			s.events.WithLabelValues("duplicate").Inc()
		}
	}
	if single {
		c.JSON(status, out[0].appendResult)
		return
	}
	for i, errs := range bad {
		if errs != nil {
			out[i].Errors = errs
			s.events.WithLabelValues("rejected").Inc()
		}
	}
	if len(results) == len(raws) {
		c.JSON(status, gin.H{"results": out})
		return
	}
	c.JSON(status, gin.H{"results": out, "rejected": len(raws) - len(results)})
}

// prepare validates and encodes each raw event. bad maps the position of
// every invalid event to its errors.
func (s *Server) prepare(raws [][]byte) ([]ledger.Entry, map[int][]eventError) {
	now := s.cfg.Clock().UTC()
	entries := make([]ledger.Entry, len(raws))
	bad := make(map[int][]eventError)
	for i, raw := range raws {
		ev, err := event.Parse(raw, event.ParseOptions{Now: now, MaxFuture: s.cfg.MaxFuture})
		if err != nil {
			var verr *event.ValidationError
			if !errors.As(err, &verr) {
				bad[i] = []eventError{{Index: i, Reason: err.Error()}}
				continue
			}
			for _, f := range verr.Fields {
				bad[i] = append(bad[i], eventError{Index: i, Field: f.Field, Reason: f.Reason})
			}
			continue
		}
		body := ev.Canonical()
		leaf, err := event.EncodeLeaf(event.KindEvent, now, body)
		if err != nil {
			bad[i] = []eventError{{Index: i, Reason: err.Error()}}
			continue
		}
		entries[i].Data = leaf
		if ev.ID != "" {
			entries[i].DedupKey = []byte(dedupNamespace + ev.ID)
			entries[i].Fingerprint = sha256.Sum256(body)
		}
	}
	return entries, bad
}

// flatten lists per-event errors in event order.
func flatten(bad map[int][]eventError) []eventError {
	idx := make([]int, 0, len(bad))
	for i, errs := range bad {
		if errs != nil {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	var out []eventError
	for _, i := range idx {
		out = append(out, bad[i]...)
	}
	return out
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
