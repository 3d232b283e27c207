package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
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

// dedupKey is the ledger's idempotency key of an event: ids are unique per
// service, so the key is the namespace, the service's length (two bytes,
// big-endian), the service and the id. The length makes the encoding
// unambiguous (service "a" with id "bc" differs from "ab" with "c"), and
// its first byte, zero for any service of up to 255 bytes, tells these
// keys apart from those written before ids were scoped by service
// (namespace and id, ids being printable ASCII).
func dedupKey(service, id string) []byte {
	k := make([]byte, 0, len(dedupNamespace)+2+len(service)+len(id))
	k = append(k, dedupNamespace...)
	k = binary.BigEndian.AppendUint16(k, uint16(len(service)))
	k = append(k, service...)
	return append(k, id...)
}

// eventResult is the answer for one event of a partially accepted batch:
// where it was appended, or why it was not.
type eventResult struct {
	*appendResult
	// Status is what a request of the event alone would have got: 400
	// for an invalid event, 409 for an id reused with other content.
	Status int          `json:"status,omitempty"`
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
	body, status, msg := s.readBody(c)
	if status != 0 {
		s.rejectedEvents.Inc()
		if status == http.StatusServiceUnavailable {
			c.Header("Retry-After", "1")
		}
		writeError(c, status, msg)
		return
	}
	defer s.bodies.release(c.GetString(ctxKeyName), body.reserved)
	raws, single, fast, status, msg := s.splitEvents(body.data, body.ndjson)
	if status != 0 {
		s.rejectedEvents.Inc()
		writeError(c, status, msg)
		return
	}
	entries, services, bad := s.prepare(raws, c.GetString(ctxKeyName))
	if len(bad) > 0 && fast {
		// The fast split certified only the envelope: a batch with a
		// bad event is judged by the strict one, which may find the
		// whole batch malformed.
		if _, status, msg := s.splitBatch(body.data); status != 0 {
			s.rejectedEvents.Inc()
			writeError(c, status, msg)
			return
		}
	}
	if len(bad) > 0 && (!partial || single || len(bad) == len(raws)) {
		s.rejectedEvents.Add(float64(len(raws)))
		msg := "invalid event; nothing was appended"
		if !single {
			msg = fmt.Sprintf("%d of %d events are invalid; nothing was appended", len(bad), len(raws))
		}
		abortJSON(c, http.StatusBadRequest, errorBody{Error: msg, Events: flatten(bad)})
		return
	}

	// With partial acceptance, append the valid events; an id conflict
	// (which appends nothing) moves the conflicting events to the rejected
	// ones and the rest is tried once more.
	for attempt := 0; ; attempt++ {
		// The entries to append, and their positions in raws: all of
		// them, in order (the common case), or the valid ones.
		pos, valid := identity(len(entries)), entries
		if len(bad) > 0 {
			pos, valid = nil, nil
			for i := range entries {
				if bad[i] == nil {
					pos = append(pos, i)
					valid = append(valid, entries[i])
				}
			}
		}
		if len(valid) == 0 {
			s.rejectedEvents.Add(float64(len(raws)))
			abortJSON(c, http.StatusConflict, errorBody{Error: "no event could be appended", Events: flatten(bad)})
			return
		}
		results, err := s.cfg.Ledger.Append(c, valid...)
		if errors.Is(err, ledger.ErrIDConflict) {
			for k, r := range results {
				switch {
				case r.Err == nil:
				case r.Duplicate:
					bad[pos[k]] = []eventError{{Index: pos[k], Field: "id", conflict: true,
						Reason: fmt.Sprintf("already used by entry %d of the same service with different content", r.Index)}}
				default:
					bad[pos[k]] = []eventError{{Index: pos[k], Field: "id", conflict: true,
						Reason: "repeats the id of an earlier event of the same service in this request with different content"}}
				}
			}
			if partial && !single && attempt == 0 {
				continue
			}
			s.rejectedEvents.Add(float64(len(raws)))
			abortJSON(c, http.StatusConflict, errorBody{Error: "an event id was reused with different content; nothing was appended", Events: flatten(bad)})
			return
		}
		if err != nil {
			s.fail(c, err, "")
			return
		}
		s.answer(c, raws, single, pos, results, services, bad)
		return
	}
}

// answer writes the results of a successful append.
func (s *Server) answer(c *gin.Context, raws [][]byte, single bool, pos []int, results []ledger.Result, services []string, bad map[int][]eventError) {
	c.Header("Cache-Control", "private, no-store")
	status := http.StatusOK
	appended, duplicates := 0, 0
	svc, svcN := "", 0 // a run of events of one service, counted at once
	for k, r := range results {
		if r.Duplicate {
			duplicates++
			continue
		}
		status = http.StatusCreated
		appended++
		if name := services[pos[k]]; name != svc || svcN == 0 {
			if svcN > 0 {
				s.services.counter(svc).Add(float64(svcN))
			}
			svc, svcN = name, 0
		}
		svcN++
	}
	if svcN > 0 {
		s.services.counter(svc).Add(float64(svcN))
	}
	s.appendedEvents.Add(float64(appended))
	s.duplicateEvents.Add(float64(duplicates))
	if len(results) == len(raws) {
		// Every event appended (the common case): write the answer
		// directly, without reflection.
		b := make([]byte, 0, 16+len(results)*80)
		if !single {
			b = append(b, `{"results":[`...)
		}
		for k, r := range results {
			if k > 0 {
				b = append(b, ',')
			}
			b = appendResultJSON(b, r)
		}
		if !single {
			b = append(b, "]}"...)
		}
		c.Data(status, "application/json; charset=utf-8", b)
		return
	}
	out := make([]eventResult, len(raws))
	for k, r := range results {
		out[pos[k]].appendResult = &appendResult{Index: r.Index, LeafHash: base64.StdEncoding.EncodeToString(r.LeafHash[:]), Duplicate: r.Duplicate}
	}
	for i, errs := range bad {
		if errs != nil {
			out[i].Errors = errs
			out[i].Status = http.StatusBadRequest
			if errs[0].conflict {
				out[i].Status = http.StatusConflict
			}
			s.rejectedEvents.Inc()
		}
	}
	c.JSON(status, gin.H{"results": out, "rejected": len(raws) - len(results)})
}

// appendResultJSON appends the JSON of one appended event's answer,
// exactly as encoding appendResult would.
func appendResultJSON(b []byte, r ledger.Result) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, r.Index, 10)
	b = append(b, `,"leaf_hash":"`...)
	b = base64.StdEncoding.AppendEncode(b, r.LeafHash[:])
	b = append(b, '"')
	if r.Duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	return append(b, '}')
}

// prepare validates and encodes each raw event, submitted with the API
// key named keyName, which each leaf records (submitted_by). It returns
// the entries, the service of each, and bad, which maps the position of
// every invalid event to its errors.
func (s *Server) prepare(raws [][]byte, keyName string) ([]ledger.Entry, []string, map[int][]eventError) {
	now := s.cfg.Clock().UTC()
	entries := make([]ledger.Entry, len(raws))
	services := make([]string, len(raws))
	decoded := make([]event.Decoded, len(raws)) // one allocation, not one per event
	bad := make(map[int][]eventError)
	// The leaves, one after the other in one buffer: a leaf is about its
	// event's bytes plus the envelope (kind, received_at, submitted_by).
	n := 0
	envelope := leafEnvelope
	if keyName != "" {
		envelope += len(`,"submitted_by":""`) + len(keyName)
	}
	for _, raw := range raws {
		n += len(raw) + envelope
	}
	buf := make([]byte, 0, n)
	for i, raw := range raws {
		ev, err := event.Parse(raw, event.ParseOptions{Now: now, MaxFuture: s.cfg.MaxFuture, Receiving: true})
		if err != nil {
			var verr *event.ValidationError
			if !errors.As(err, &verr) {
				bad[i] = []eventError{{Index: i, Reason: "invalid event"}}
				continue
			}
			for _, f := range verr.Fields {
				bad[i] = append(bad[i], eventError{Index: i, Field: f.Field, Reason: f.Reason})
			}
			continue
		}
		if reservedService(ev.Service) {
			bad[i] = []eventError{{Index: i, Field: "service", Reason: fmt.Sprintf(
				"%q is reserved for the records the server writes itself (who read the log, who tried its admin endpoints), which a submitted event could pass for; name your service otherwise", ev.Service)}}
			continue
		}
		var leaf, body []byte
		buf, leaf, body, err = event.AppendSubmittedEventLeaf(buf, now, keyName, ev)
		if err != nil {
			reason := "the event cannot be stored"
			if errors.Is(err, event.ErrEntryTooLarge) {
				reason = fmt.Sprintf("the stored event would exceed %d bytes; move data out of attributes or shorten the longest fields", event.MaxEntrySize)
			}
			bad[i] = []eventError{{Index: i, Reason: reason}}
			continue
		}
		entries[i].Data = leaf
		// Parse returns times in UTC, as decoding the leaf would.
		decoded[i] = event.Decoded{ReceivedAt: now, SubmittedBy: keyName, Event: ev}
		entries[i].Decoded = &decoded[i]
		services[i] = ev.Service
		if ev.ID != "" {
			entries[i].DedupKey = dedupKey(ev.Service, ev.ID)
			entries[i].Fingerprint = sha256.Sum256(body)
			if legacy := ev.NegativeZeroCanonical(); legacy != nil {
				// Stored by a version that wrote -0 as -0: the same event.
				fp := sha256.Sum256(legacy)
				entries[i].LegacyFingerprint = &fp
			}
		}
	}
	return entries, services, bad
}

// reservedService reports whether service is the log's own
// (ReadAuditService), in any case, with any spaces around it and any
// invisible format characters in it (a zero-width space, a soft hyphen, a
// word joiner: found by review): events of that service are written by
// the server alone (api/readaudit.go), and one submitted through the API
// could pass for them.
func reservedService(service string) bool {
	if len(service) < len(ReadAuditService) {
		return false
	}
	visible := service
	for i := 0; i < len(service); i++ {
		if service[i] >= utf8.RuneSelf {
			visible = withoutFormatChars(service)
			break
		}
	}
	return strings.EqualFold(strings.TrimSpace(visible), ReadAuditService)
}

// withoutFormatChars returns s without its invisible format characters
// (Unicode category Cf).
func withoutFormatChars(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
}

// identityPositions is 0, 1, 2, ...: the positions of a request's
// entries when all of them are appended.
var identityPositions = positions(DefaultMaxBatchEvents)

// identity returns the positions 0..n-1, shared: callers only read them.
func identity(n int) []int {
	if n <= len(identityPositions) {
		return identityPositions[:n:n]
	}
	return positions(n)
}

// positions returns a new slice of 0..n-1.
func positions(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// leafEnvelope is about what a leaf adds to its event's bytes.
const leafEnvelope = 72

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
		for _, e := range bad[i] {
			e.Status = http.StatusBadRequest
			if e.conflict {
				e.Status = http.StatusConflict
			}
			out = append(out, e)
		}
	}
	return out
}

// requestBody is a request body read within the server's bound on bodies
// in flight; reserved bytes must be released once the body is no longer
// held.
type requestBody struct {
	data     []byte
	ndjson   bool
	reserved int64
}

// readBody checks the Content-Type, reserves the body's share of
// MaxInflightBodyBytes (its Content-Length, or MaxBodyBytes if unknown)
// and reads it. It returns a non-zero status and a message if the body
// cannot be read; nothing is then left reserved.
func (s *Server) readBody(c *gin.Context) (requestBody, int, string) {
	var b requestBody
	ct := c.GetHeader("Content-Type")
	mediaType := "application/json"
	if ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			return b, http.StatusUnsupportedMediaType, "malformed Content-Type; send application/json or application/x-ndjson"
		}
		mediaType = mt
		// JSON is UTF-8 (RFC 8259); a body labelled otherwise was read
		// as UTF-8 all the same.
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return b, http.StatusUnsupportedMediaType, fmt.Sprintf("charset %q: events are UTF-8 JSON; send charset=utf-8 or none", truncate(cs, 32))
		}
	}
	if mediaType != "application/json" && mediaType != "application/x-ndjson" {
		return b, http.StatusUnsupportedMediaType, "Content-Type must be application/json or application/x-ndjson"
	}
	// A gzip body was parsed as JSON ("invalid character '\x1f'"), and one
	// labelled br was taken as it was.
	for _, ce := range c.Request.Header.Values("Content-Encoding") {
		for _, enc := range strings.Split(ce, ",") {
			if enc = strings.TrimSpace(enc); enc != "" && !strings.EqualFold(enc, "identity") {
				return b, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Encoding %q is not supported: send the body uncompressed", truncate(enc, 32))
			}
		}
	}
	b.ndjson = mediaType == "application/x-ndjson"
	tooLarge := func() string {
		return fmt.Sprintf("request body larger than %d bytes; split the batch into smaller requests", s.cfg.MaxBodyBytes)
	}
	const busy = "the server is busy reading other requests; retry after the number of seconds in Retry-After"
	n := c.Request.ContentLength
	if n > s.cfg.MaxBodyBytes {
		return b, http.StatusRequestEntityTooLarge, tooLarge()
	}
	body := http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
	data, reserved, refused, err := s.readReserving(c, body, n)
	switch {
	case errors.Is(refused, errKeyShare):
		return b, http.StatusServiceUnavailable, fmt.Sprintf("API key %q already has its share of the server's request-body budget in flight "+
			"(requests still being sent); retry after the number of seconds in Retry-After", c.GetString(ctxKeyName))
	case refused != nil:
		return b, http.StatusServiceUnavailable, busy
	}
	if err != nil {
		s.bodies.release(c.GetString(ctxKeyName), reserved)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return b, http.StatusRequestEntityTooLarge, tooLarge()
		}
		status, msg := bodyReadFailed(err)
		return b, status, msg
	}
	b.data, b.reserved = data, reserved
	return b, 0, ""
}

// reserveBody reserves n bytes of MaxInflightBodyBytes for the caller's
// key (bodyBudget), waiting at most bodyWait.
func (s *Server) reserveBody(c *gin.Context, n int64) error {
	return s.bodies.reserve(c, c.GetString(ctxKeyName), n, bodyWait)
}

// bodyChunk is how much of a body is reserved ahead of what has arrived.
const bodyChunk = 64 << 10

// readReserving reads a body of length n (-1: unknown, chunked),
// reserving MaxInflightBodyBytes as its bytes arrive, a chunk ahead,
// rather than its whole length at once: nine clients declaring
// max_body_bytes (or sending chunked bodies) and sending slowly held the
// whole budget, and every other request got 503 until the read timeout. It
// returns the bytes and how many are reserved; refused says why the budget
// could not be had (nothing is left reserved then).
func (s *Server) readReserving(c *gin.Context, body io.Reader, n int64) (data []byte, reserved int64, refused, err error) {
	limit := s.cfg.MaxBodyBytes
	if n >= 0 {
		limit = n
		if n <= bodyChunk {
			data = make([]byte, 0, n) // the usual request: one allocation
		}
	}
	if data == nil {
		data = make([]byte, 0, bodyChunk)
	}
	for {
		if n >= 0 && int64(len(data)) == n {
			return data, reserved, nil, nil
		}
		if int64(len(data)) == s.cfg.MaxBodyBytes {
			// Full: one more byte is too many (body is a
			// MaxBytesReader, which says so), EOF is the end.
			var one [1]byte
			k, rerr := body.Read(one[:])
			switch {
			case rerr == io.EOF && k == 0:
				return data, reserved, nil, nil
			case rerr == nil && k == 0:
				continue
			case rerr == nil:
				rerr = &http.MaxBytesError{Limit: s.cfg.MaxBodyBytes}
			}
			return data, reserved, nil, rerr
		}
		if want := min(int64(len(data))+bodyChunk, limit); want > reserved {
			if err := s.reserveBody(c, want-reserved); err != nil {
				s.bodies.release(c.GetString(ctxKeyName), reserved)
				return nil, 0, err, nil
			}
			reserved = want
		}
		if len(data) == cap(data) {
			data = slices.Grow(data, int(reserved)-len(data))
		}
		k, rerr := body.Read(data[len(data):min(int64(cap(data)), reserved)])
		data = data[:len(data)+k]
		if rerr == io.EOF {
			if n >= 0 && int64(len(data)) < n {
				rerr = io.ErrUnexpectedEOF // shorter than it said
			} else {
				return data, reserved, nil, nil
			}
		}
		if rerr != nil {
			return data, reserved, nil, rerr
		}
	}
}

// splitEvents splits a request body into raw events: one event, a batch
// {"events":[...]}, or NDJSON. It returns a non-zero status and a message
// if the body as a whole is unacceptable.
//
// A batch of the usual shape is split by a fast scanner (fast is then
// true): it certifies the envelope and finds each event's bounds, and the
// events are checked when parsed; if one of them is bad, the caller runs
// the strict splitBatch to judge the batch as a whole.
func (s *Server) splitEvents(body []byte, ndjson bool) (raws [][]byte, single, fast bool, status int, msg string) {
	if ndjson {
		raws, status, msg = s.splitNDJSON(body)
		return raws, false, false, status, msg
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, false, false, http.StatusBadRequest, "empty request body; send one event, {\"events\":[...]} or NDJSON"
	}
	if !isBatch(trimmed) {
		return [][]byte{body}, true, false, 0, ""
	}
	if raws, ok := splitBatchFast(body, s.cfg.MaxBatchEvents); ok {
		return raws, false, true, 0, ""
	}
	raws, status, msg = s.splitBatch(body)
	return raws, false, false, status, msg
}

// splitBatchFast splits {"events":[{...}, ...]} (1 to max objects, white
// space anywhere JSON allows it) by finding each object's end, without
// validating the objects: it reports false on any other shape, for
// splitBatch to judge. Where both accept a body whose events are valid
// JSON, they split it alike (FuzzSplitBatchFast).
func splitBatchFast(body []byte, max int) ([][]byte, bool) {
	i := skipWS(body, 0)
	for _, want := range []string{"{", `"events"`, ":", "["} {
		if !bytes.HasPrefix(body[i:], []byte(want)) {
			return nil, false
		}
		i = skipWS(body, i+len(want))
	}
	raws := make([][]byte, 0, 128)
	for {
		if len(raws) == max {
			return nil, false
		}
		end, ok := skipObject(body, i)
		if !ok {
			return nil, false
		}
		raws = append(raws, body[i:end])
		i = skipWS(body, end)
		if i == len(body) {
			return nil, false
		}
		if body[i] == ']' {
			break
		}
		if body[i] != ',' {
			return nil, false
		}
		i = skipWS(body, i+1)
	}
	i = skipWS(body, i+1)
	if i == len(body) || body[i] != '}' || skipWS(body, i+1) != len(body) {
		return nil, false
	}
	return raws, true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipObject returns the index just past the object that starts at b[i],
// following strings (and their escapes) and nesting; false if b[i] is not
// '{' or the object does not end.
func skipObject(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, true
			}
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		}
	}
	return 0, false
}

// batchUsage ends the messages about a malformed batch.
const batchUsage = `a batch is {"events":[event, ...]} with 1 to %d events and nothing else`

// splitBatch splits {"events":[...]} into its events. The envelope is read
// as strictly as the events: exact member names, no duplicates, nothing
// unknown, nothing after it. It stops reading at the first event beyond
// the limit.
func (s *Server) splitBatch(body []byte) ([][]byte, int, string) {
	usage := fmt.Sprintf(batchUsage, s.cfg.MaxBatchEvents)
	malformed := func(err error) ([][]byte, int, string) {
		var syn *jsontext.SyntacticError
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			return nil, http.StatusBadRequest, "malformed batch: the JSON ends early; " + usage
		case errors.As(err, &syn) && errors.Is(syn.Err, jsontext.ErrDuplicateName):
			return nil, http.StatusBadRequest, `malformed batch: "events" appears twice; ` + usage
		case errors.As(err, &syn):
			return nil, http.StatusBadRequest, fmt.Sprintf("malformed batch: invalid JSON at byte %d; %s", syn.ByteOffset, usage)
		}
		return nil, http.StatusBadRequest, "malformed batch; " + usage
	}
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	if _, err := dec.ReadToken(); err != nil { // '{', as isBatch saw
		return malformed(err)
	}
	var raws [][]byte
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			return malformed(err)
		}
		if name := tok.String(); name != "events" {
			return nil, http.StatusBadRequest, fmt.Sprintf("malformed batch: unknown member %q; %s", truncate(name, 32), usage)
		}
		if dec.PeekKind() != '[' {
			if _, err := dec.ReadValue(); err != nil {
				return malformed(err)
			}
			return nil, http.StatusBadRequest, `malformed batch: "events" must be an array; ` + usage
		}
		if _, err := dec.ReadToken(); err != nil {
			return malformed(err)
		}
		for dec.PeekKind() != ']' {
			if len(raws) == s.cfg.MaxBatchEvents {
				return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("more than %d events in one request; split the batch into smaller requests", s.cfg.MaxBatchEvents)
			}
			v, err := dec.ReadValue()
			if err != nil {
				return malformed(err)
			}
			// v is only valid until the next read: keep the same bytes
			// of the body instead.
			end := dec.InputOffset()
			raws = append(raws, body[end-int64(len(v)):end])
		}
		if _, err := dec.ReadToken(); err != nil {
			return malformed(err)
		}
	}
	if _, err := dec.ReadToken(); err != nil { // '}'
		return malformed(err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		if err == nil {
			return nil, http.StatusBadRequest, "malformed batch: data after the batch; " + usage
		}
		return malformed(err)
	}
	if len(raws) == 0 {
		return nil, http.StatusBadRequest, `"events" must be a non-empty array; ` + usage
	}
	return raws, 0, ""
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
			return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("more than %d events in one request; split the batch into smaller requests", s.cfg.MaxBatchEvents)
		}
		raws = append(raws, line)
	}
	if len(raws) == 0 {
		return nil, http.StatusBadRequest, "no events in the NDJSON body; send one event per line"
	}
	return raws, 0, ""
}
