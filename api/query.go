package api

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/ledger/index"
)

// Searcher is what the query endpoints need from the index
// (*index.Index implements it).
type Searcher interface {
	Size() uint64
	Search(ctx context.Context, q index.Query, from, to uint64, desc bool, fn func(index uint64) bool) (uint64, error)
	Count(ctx context.Context, q index.Query) (uint64, uint64, error)
	Top(ctx context.Context, q index.Query, field string, n int) ([]index.ValueCount, uint64, error)
	// Behind reports whether appends should wait for the index to catch
	// up (it lags more than it may, though it is keeping up).
	Behind() bool
}

// headerIndexedSize carries the indexed size on every query answer, also
// on streams, whose bodies have no room for it.
const headerIndexedSize = "Accessledger-Indexed-Size"

// Paging and limits of the query endpoints.
const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
	defaultTopN      = 10
	maxTopN          = 1000
	maxFilterValue   = 1024
	maxFilterValues  = 100
)

// queryRoutes registers the query and evidence endpoints, for the
// auditor role (and admin).
func (s *Server) queryRoutes(e *gin.Engine, audit gin.HandlerFunc) {
	e.GET("/v1/events", audit, s.getEvents)
	e.GET("/v1/events/count", audit, s.countEvents)
	e.GET("/v1/events/top", audit, s.topEvents)
	e.GET("/v1/evidence", audit, s.getEvidence)
}

// followerPushback answers an append 503 with Retry-After while the
// query index or the detector is further behind the log than it may be
// (index.Config.MaxLag, detect.DetectorConfig.MaxLag), so that under
// sustained load an acknowledged event becomes queryable, and its alerts
// are raised, within a bounded delay. Both follow the log on the same
// cores as the write path; without this, a load the machine cannot both
// append and analyse leaves them further behind by the second.
func (s *Server) followerPushback(c *gin.Context) {
	var follower string
	switch {
	case s.cfg.Index != nil && s.cfg.Index.Behind():
		follower = "index"
	case s.cfg.Detections != nil && s.cfg.Detections.Behind():
		follower = "detector"
	default:
		return
	}
	s.followerPushbacks.WithLabelValues(follower).Inc()
	c.Header("Retry-After", "1")
	writeError(c, http.StatusServiceUnavailable, msgFollowerBehind[follower])
}

var msgFollowerBehind = map[string]string{
	"index":    "the log is busy: its query index is behind; retry after the number of seconds in Retry-After",
	"detector": "the log is busy: its detector is behind; retry after the number of seconds in Retry-After",
}

// filterParams are the query parameters that filter events, by field.
var filterParams = []string{"kind", "service", "actor", "source_ip", "cidr", "action", "category", "outcome",
	"resource_type", "resource_id", "tenant", "submitted_by", "since", "until"}

// filters are a request's parsed filters and their canonical form (which
// binds a cursor to its query).
type filters struct {
	q         index.Query
	canonical string
}

// parseFilters reads the filter parameters, refusing parameters the
// endpoint does not take (a misspelt filter would otherwise widen the
// query silently). It answers 400 and returns false on a bad request.
func (s *Server) parseFilters(c *gin.Context, extra ...string) (filters, bool) {
	var f filters
	if s.cfg.Index == nil {
		writeError(c, http.StatusServiceUnavailable, "queries are not available: this server keeps no index")
		return f, false
	}
	params := c.Request.URL.Query()
	canon := url.Values{}
	for name, values := range params {
		if !slices.Contains(filterParams, name) && !slices.Contains(extra, name) {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("unknown parameter %q; this endpoint takes %s", truncate(name, 32),
				strings.Join(append(slices.Clone(filterParams), extra...), ", ")))
			return f, false
		}
		if !slices.Contains(filterParams, name) {
			// Only filters take several values (OR).
			if len(values) > 1 {
				writeError(c, http.StatusBadRequest, name+" may be given once")
				return f, false
			}
			continue
		}
		if len(values) > maxFilterValues {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("%s is given %d times; at most %d values of one filter", name, len(values), maxFilterValues))
			return f, false
		}
		for _, v := range values {
			if v == "" || len(v) > maxFilterValue {
				writeError(c, http.StatusBadRequest, fmt.Sprintf("%s must be a value of 1 to %d bytes", name, maxFilterValue))
				return f, false
			}
		}
		sorted := slices.Clone(values)
		slices.Sort(sorted)
		canon[name] = slices.Compact(sorted)
	}
	q := &f.q
	q.Service, q.Actor, q.Action = params["service"], params["actor"], params["action"]
	q.ResourceType, q.ResourceID, q.Tenant = params["resource_type"], params["resource_id"], params["tenant"]
	q.SubmittedBy = params["submitted_by"]
	for name, dst := range map[string]*[]string{"category": &q.Category, "outcome": &q.Outcome, "kind": &q.Kind} {
		allowed := map[string][]string{
			"category": {event.CategoryAuthentication, event.CategoryAuthorization, event.CategoryDataAccess, event.CategoryAdmin, event.CategorySystem},
			"outcome":  {event.OutcomeSuccess, event.OutcomeFailure, event.OutcomeUnknown},
			"kind":     {string(event.KindEvent), string(event.KindAlert), string(event.KindResponse), string(event.KindAdmin)},
		}[name]
		for _, v := range params[name] {
			if !slices.Contains(allowed, v) {
				writeError(c, http.StatusBadRequest, fmt.Sprintf("%s must be one of %s, got %q", name, strings.Join(allowed, ", "), truncate(v, 32)))
				return f, false
			}
		}
		*dst = params[name]
	}
	for _, v := range params["source_ip"] {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("source_ip must be an IPv4 or IPv6 address, got %q; use cidr= for a prefix", truncate(v, 64)))
			return f, false
		}
		a = a.Unmap()
		q.SourceIP = append(q.SourceIP, netip.PrefixFrom(a, a.BitLen()))
	}
	for _, v := range params["cidr"] {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("cidr must be an IPv4 or IPv6 prefix such as 203.0.113.0/24 or 2001:db8::/32, got %q", truncate(v, 64)))
			return f, false
		}
		q.SourceIP = append(q.SourceIP, p)
	}
	for _, b := range []struct {
		name  string
		t     *time.Time
		given *bool
	}{{"since", &q.Since, &q.HasSince}, {"until", &q.Until, &q.HasUntil}} {
		name := b.name
		if v := params.Get(name); v != "" {
			if len(params[name]) > 1 {
				writeError(c, http.StatusBadRequest, name+" may be given once")
				return f, false
			}
			// Parsed as event times are (event.ParseTime): time.Parse
			// also takes a ',' before the fraction, cuts digits finer
			// than a nanosecond (since=,1234000001 then matched events
			// at .1234) and takes offsets such as +24:00.
			t, err := event.ParseTime(v)
			if err != nil && fractionDigits(v) > 9 {
				writeError(c, http.StatusBadRequest, fmt.Sprintf("%s %q has more than 9 fractional digits: times are kept to the nanosecond", name, truncate(v, 64)))
				return f, false
			}
			if err != nil {
				writeError(c, http.StatusBadRequest, fmt.Sprintf("%s must be an RFC 3339 time such as 2026-11-24T10:00:00.5Z (a '.' before at most 9 fractional digits; an offset from -23:59 to +23:59), got %q%s",
					name, truncate(v, 64), plusHint(v)))
				return f, false
			}
			// Given, even if it is the zero time (0001-01-01T00:00:00Z),
			// which the index would otherwise take for no bound.
			*b.t, *b.given = t, true
		}
	}
	// since <= time < until: an empty or reversed range is a mistake,
	// not a question whose answer is nothing.
	if q.HasSince && q.HasUntil && !q.Since.Before(q.Until) {
		writeError(c, http.StatusBadRequest, fmt.Sprintf("since (%s) must be before until (%s): the range is since <= time < until",
			q.Since.UTC().Format(time.RFC3339Nano), q.Until.UTC().Format(time.RFC3339Nano)))
		return f, false
	}
	f.canonical = canon.Encode()
	return f, true
}

// fractionDigits returns the digits of an RFC 3339 time's fraction of a
// second, for a message.
func fractionDigits(v string) int {
	_, frac, ok := strings.Cut(v, ".")
	if !ok {
		return 0
	}
	n := 0
	for n < len(frac) && frac[n] >= '0' && frac[n] <= '9' {
		n++
	}
	return n
}

// cursor is where a page ends: the next page starts at next (ascending)
// or ends before it (descending). It is bound to the filters it was made
// for. Encoded: version, order, next, hash of the filters; base64url.
type cursor struct {
	desc   bool
	next   uint64
	filter [8]byte
}

const cursorVersion = 1

func filterHash(canonical string) [8]byte {
	h := sha256.Sum256([]byte(canonical))
	return [8]byte(h[:8])
}

func (cur cursor) String() string {
	b := make([]byte, 2, 18)
	b[0] = cursorVersion
	if cur.desc {
		b[1] = 1
	}
	b = binary.BigEndian.AppendUint64(b, cur.next)
	b = append(b, cur.filter[:]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 18 || b[0] != cursorVersion || b[1] > 1 {
		return cursor{}, errors.New("malformed cursor")
	}
	return cursor{desc: b[1] == 1, next: binary.BigEndian.Uint64(b[2:]), filter: [8]byte(b[10:])}, nil
}

// pageParams are the paging parameters of GET /v1/events.
type pageParams struct {
	desc     bool
	from, to uint64 // the range to search
	limit    int    // 0: no limit (streams)
}

// parsePage reads order, cursor and limit. A stream has no default
// limit.
func parsePage(c *gin.Context, f filters, stream bool) (pageParams, bool) {
	p := pageParams{to: ^uint64(0)}
	switch o := c.Query("order"); o {
	case "", "asc":
	case "desc":
		p.desc = true
	default:
		writeError(c, http.StatusBadRequest, fmt.Sprintf("order must be asc or desc, got %q", truncate(o, 16)))
		return p, false
	}
	if v := c.Query("cursor"); v != "" {
		cur, err := parseCursor(v)
		if err != nil {
			writeError(c, http.StatusBadRequest, "cursor is not one this server gave; pass the next value of the previous page unchanged")
			return p, false
		}
		if cur.filter != filterHash(f.canonical) || cur.desc != p.desc {
			writeError(c, http.StatusBadRequest, "this cursor belongs to another query: a cursor must be used with the filters and order of the page that gave it")
			return p, false
		}
		if p.desc {
			p.to = cur.next
		} else {
			p.from = cur.next
		}
	}
	if !stream {
		p.limit = defaultPageLimit
	}
	if v, ok := c.GetQuery("limit"); ok {
		n, ok := parseUint(c, "limit", v)
		if !ok {
			return p, false
		}
		if n < 1 && stream {
			writeError(c, http.StatusBadRequest, "limit must be 1 or more (a stream has no upper bound; omit limit for every match)")
			return p, false
		}
		if n < 1 || (!stream && n > maxPageLimit) {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("limit must be from 1 to %d (or stream with Accept: application/x-ndjson, without a page limit)", maxPageLimit))
			return p, false
		}
		p.limit = int(min(n, 1<<40))
	}
	return p, true
}

// Formats of GET /v1/events.
const (
	formatJSON   = "json"
	formatNDJSON = "ndjson"
	formatCSV    = "csv"
	formatOCSF   = "ocsf"
)

// getEvents answers GET /v1/events: the matching entries, in log order
// (or reverse), each with its index, leaf hash and entry; a page of JSON,
// or a stream of NDJSON, CSV or OCSF.
func (s *Server) getEvents(c *gin.Context) {
	f, ok := s.parseFilters(c, "limit", "cursor", "order", "format", "csv_raw")
	if !ok {
		return
	}
	format := c.Query("format")
	if format == "" {
		format = formatJSON
		if accepts(c, "application/x-ndjson") {
			format = formatNDJSON
		}
	}
	if !slices.Contains([]string{formatJSON, formatNDJSON, formatCSV, formatOCSF}, format) {
		writeError(c, http.StatusBadRequest, fmt.Sprintf("format must be json, ndjson, csv or ocsf, got %q", truncate(format, 16)))
		return
	}
	csvRaw := false
	if v, ok := c.GetQuery("csv_raw"); ok {
		switch {
		case format != formatCSV:
			writeError(c, http.StatusBadRequest, "csv_raw applies to format=csv only")
			return
		case v == "true":
			csvRaw = true
		case v != "false":
			writeError(c, http.StatusBadRequest, fmt.Sprintf("csv_raw must be true or false, got %q", truncate(v, 16)))
			return
		}
	}
	if format == formatOCSF {
		// OCSF carries events only: the query asks for them alone, so
		// that limit counts what is sent (alerts and admin leaves used
		// it up, and were then left out).
		switch {
		case len(f.q.Kind) == 0:
			f.q.Kind = []string{string(event.KindEvent)}
		case len(f.q.Kind) > 1 || f.q.Kind[0] != string(event.KindEvent):
			writeError(c, http.StatusBadRequest, "format=ocsf carries events only: give kind=event, or no kind")
			return
		}
	}
	p, ok := parsePage(c, f, format != formatJSON)
	if !ok {
		return
	}
	size := s.cfg.Index.Size()
	c.Header(headerIndexedSize, strconv.FormatUint(size, 10))
	c.Header("Cache-Control", "private, no-cache")
	if format == formatJSON {
		s.eventsPage(c, f, p, size)
		return
	}
	s.eventsStream(c, f, p, size, format, csvRaw)
}

// accepts reports whether the request's Accept header names mediaType.
func accepts(c *gin.Context, mediaType string) bool {
	return listAccepts(c.Request.Header.Values("Accept"), mediaType)
}

// maxPageBytes bounds the events of a JSON page: a page stops taking
// events once they fill it, short of its limit, and its next continues
// after the last one it holds. 1000 entries of 64 KiB made a page of
// 64 MiB, built in memory (twice, as its buffer grew) and held until a
// client that stopped reading let it go: twenty such clients took the
// server from 238 MiB to 2.6 GiB.
const maxPageBytes = 4 << 20

// maxEventJSON bounds the encoding of one event of a page: an entry of
// event.MaxEntrySize bytes as entry_base64, its index and its leaf hash.
const maxEventJSON = (event.MaxEntrySize+2)/3*4 + 128

// eventsPage answers one page of JSON:
// {"indexed_size","events":[{"index","leaf_hash","entry"}...],"next"}.
// A page holds up to limit events, fewer once they fill maxPageBytes.
// next is given in ascending order always (a page short of the limit
// may mean no more matches yet, the log grows, or a full page: only an
// empty page says the former) and in descending order when the page
// stopped short of the matches (it is full, by count or by bytes). The
// answer is written with a deadline (timedWriter), so that a client that
// stops reading is dropped and the page freed.
func (s *Server) eventsPage(c *gin.Context, f filters, p pageParams, size uint64) {
	var matches []uint64
	_, err := s.cfg.Index.Search(c, f.q, p.from, min(p.to, size), p.desc, func(i uint64) bool {
		matches = append(matches, i)
		return len(matches) < p.limit
	})
	if err != nil {
		s.fail(c, err, "")
		return
	}
	r := newEntryReader(s.cfg.Ledger, size)
	// The buffer grows to at most maxPageBytes, one event and the
	// trailer, never doubling past that.
	const pageCap = maxPageBytes + maxEventJSON + 256
	b := make([]byte, 0, min(512*len(matches)+256, pageCap))
	b = append(b, `{"indexed_size":`...)
	b = strconv.AppendUint(b, size, 10)
	b = append(b, `,"events":[`...)
	n := 0 // the matches the page holds
	for _, i := range matches {
		if len(b) >= maxPageBytes {
			break
		}
		entry, err := r.read(c, i)
		if err != nil {
			s.fail(c, err, "")
			return
		}
		if cap(b)-len(b) < maxEventJSON+1 {
			nb := make([]byte, len(b), min(2*cap(b)+maxEventJSON, pageCap))
			copy(nb, b)
			b = nb
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = appendEventJSON(b, i, entry)
		n++
	}
	b = append(b, ']')
	next := cursor{desc: p.desc, filter: filterHash(f.canonical)}
	switch {
	case !p.desc && n > 0:
		next.next = matches[n-1] + 1
	case !p.desc:
		next.next = max(p.from, min(size, p.to))
	case n == p.limit || n < len(matches):
		next.next = matches[n-1]
	default:
		next.next = ^uint64(0) // no next page
	}
	if next.next != ^uint64(0) {
		b = append(b, `,"next":"`...)
		b = append(b, next.String()...)
		b = append(b, '"')
	}
	b = append(b, '}')
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Header("Content-Length", strconv.Itoa(len(b)))
	c.Status(http.StatusOK)
	tw := newTimedWriter(c)
	defer tw.end()
	if _, err := tw.Write(b); err != nil {
		// A client that stopped reading (or left): the connection is
		// dropped, not closed as if the page were whole.
		if c.Request.Context().Err() == nil {
			s.log.InfoContext(c, "a client did not read its query page; dropping the connection", "route", route(c), "err", err)
		}
		panic(http.ErrAbortHandler)
	}
}

// appendEventJSON appends {"index","leaf_hash","entry"}: the entry
// embedded verbatim (as entry_base64 if it is not JSON).
func appendEventJSON(b []byte, index uint64, entry []byte) []byte {
	h := leafHash(entry)
	return appendEventJSONHash(b, index, entry, h[:], event.ValidJSON(entry))
}

// leafHash is the RFC 6962 leaf hash of entry: SHA-256(0x00 || entry).
func leafHash(entry []byte) [32]byte {
	var out [32]byte
	h := sha256.New()
	h.Write(leafPrefix[:])
	h.Write(entry)
	h.Sum(out[:0])
	return out
}

// eventsStream streams every match (up to limit, if given) as NDJSON,
// CSV or OCSF NDJSON, reading ahead bundle by bundle (see exporter). A
// failure once the answer has begun aborts the connection, so that a
// client never takes a cut stream for a whole one. csvRaw writes CSV
// cells as recorded, without neutralising formulas.
func (s *Server) eventsStream(c *gin.Context, f filters, p pageParams, size uint64, format string, csvRaw bool) {
	if !s.exports.take(c) {
		return
	}
	defer s.exports.done(c)
	switch format {
	case formatNDJSON, formatOCSF:
		c.Header("Content-Type", "application/x-ndjson")
	case formatCSV:
		c.Header("Content-Type", "text/csv; charset=utf-8")
		c.Header("Content-Disposition", `attachment; filename="events.csv"`)
	}
	c.Status(http.StatusOK)
	tw := newTimedWriter(c)
	defer tw.end()
	w := bufio.NewWriterSize(tw, exportFlushBytes)
	var err error
	if format == formatCSV {
		err = newCSVEncoder(w).flush() // the header: the workers write rows only
	}
	x := exporter{l: s.cfg.Ledger, size: size, limit: p.limit, format: format, origin: s.cfg.Ledger.Origin(), csvRaw: csvRaw}
	search := func(ctx context.Context, fn func(uint64) bool) error {
		_, err := s.cfg.Index.Search(ctx, f.q, p.from, min(p.to, size), p.desc, fn)
		return err
	}
	if err == nil {
		err = x.run(c.Request.Context(), search, func(b []byte) error {
			if !s.keyStillValid(c) {
				return errKeyRevoked
			}
			_, err := w.Write(b)
			return err
		})
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		s.abortAnswer(c, "an export", err)
	}
}

// errKeyRevoked stops an export whose key no longer admits it.
var errKeyRevoked = errors.New("the API key was revoked, expired or lost its role during the export")

// abortAnswer ends an answer that has begun (what: "an export") after
// err, by aborting its connection, so that a client never takes a cut
// answer for a whole one; it logs why, unless the client went away.
func (s *Server) abortAnswer(c *gin.Context, what string, err error) {
	switch {
	case errors.Is(err, errKeyRevoked):
		s.log.WarnContext(c, "the API key of "+what+" was revoked, expired or lost its role; the answer is cut short", "route", route(c), "api_key", c.GetString(ctxKeyName))
	case c.Request.Context().Err() == nil:
		s.log.ErrorContext(c, "writing "+what+" failed; aborting the answer", "route", route(c), "err", err)
	}
	panic(http.ErrAbortHandler)
}

// countEvents answers GET /v1/events/count: {"count","indexed_size"}.
func (s *Server) countEvents(c *gin.Context) {
	f, ok := s.parseFilters(c)
	if !ok {
		return
	}
	n, size, err := s.cfg.Index.Count(c, f.q)
	if err != nil {
		s.fail(c, err, "")
		return
	}
	c.Header(headerIndexedSize, strconv.FormatUint(size, 10))
	c.Header("Cache-Control", "private, no-cache")
	c.JSON(http.StatusOK, gin.H{"count": n, "indexed_size": size})
}

// topEvents answers GET /v1/events/top?field=F&n=N:
// {"field","top":[{"value","count"}...],"indexed_size"}, the N values of F
// most frequent among the matches.
func (s *Server) topEvents(c *gin.Context) {
	f, ok := s.parseFilters(c, "field", "n")
	if !ok {
		return
	}
	field := c.Query("field")
	if !slices.Contains(index.TopFields, field) {
		writeError(c, http.StatusBadRequest, fmt.Sprintf("field must be one of %s, got %q", strings.Join(index.TopFields, ", "), truncate(field, 32)))
		return
	}
	n := uint64(defaultTopN)
	if v, ok := c.GetQuery("n"); ok {
		if n, ok = parseUint(c, "n", v); !ok {
			return
		}
		if n < 1 || n > maxTopN {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("n must be from 1 to %d", maxTopN))
			return
		}
	}
	top, size, err := s.cfg.Index.Top(c, f.q, field, int(n))
	if err != nil {
		s.fail(c, err, "")
		return
	}
	c.Header(headerIndexedSize, strconv.FormatUint(size, 10))
	c.Header("Cache-Control", "private, no-cache")
	c.JSON(http.StatusOK, gin.H{"field": field, "top": top, "indexed_size": size})
}

// entryReader reads entries by index through their entry bundles,
// keeping the last bundle it read: results in log order mostly share
// bundles. It reads nothing at or beyond size.
type entryReader struct {
	l       *ledger.Ledger
	size    uint64
	bundle  uint64
	entries [][]byte
	have    bool
}

func newEntryReader(l *ledger.Ledger, size uint64) *entryReader {
	return &entryReader{l: l, size: size}
}

func (r *entryReader) read(ctx context.Context, i uint64) ([]byte, error) {
	if i >= r.size {
		return nil, fmt.Errorf("entry %d is beyond the indexed size %d: %w", i, r.size, ledger.ErrNotFound)
	}
	b := i / ledger.TileWidth
	if !r.have || r.bundle != b {
		width := 0
		if first := b * ledger.TileWidth; r.size-first < ledger.TileWidth {
			width = int(r.size - first)
		}
		raw, err := r.l.ReadEntryBundle(ctx, b, width)
		if err != nil {
			return nil, err
		}
		r.entries = r.entries[:0]
		for len(raw) >= 2 {
			n := int(binary.BigEndian.Uint16(raw))
			if len(raw) < 2+n {
				break
			}
			r.entries = append(r.entries, raw[2:2+n])
			raw = raw[2+n:]
		}
		if len(raw) != 0 {
			return nil, fmt.Errorf("entry bundle %d is malformed: %w", b, ledger.ErrCorrupt)
		}
		r.bundle, r.have = b, true
	}
	k := i % ledger.TileWidth
	if k >= uint64(len(r.entries)) {
		return nil, fmt.Errorf("entry bundle %d holds %d entries, want entry %d: %w", b, len(r.entries), i, ledger.ErrCorrupt)
	}
	return r.entries[k], nil
}

// plusHint explains a space in a time parameter: a "+" of a UTC offset
// sent unescaped in a query string arrives as a space.
func plusHint(v string) string {
	if strings.Contains(v, " ") {
		return ` (a "+" in a query string means a space: send a UTC offset's "+" as %2B)`
	}
	return ""
}
