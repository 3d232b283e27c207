package api

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/internal/bound"
)

// Bounds of the answers that last: an export holds up to
// exportInflightBytes of read-ahead and its workers until the client has
// read it; an alert stream holds a connection, goroutines and buffers for
// as long as the client keeps it. Without them one key could open
// hundreds, each megabytes, and the server ran out of memory.
const (
	maxExports            = 8 // exports and evidence bundles at once
	maxExportsPerKey      = 4 // of one API key
	maxAlertStreams       = 1024
	maxAlertStreamsPerKey = 64
)

// streamWriteTimeout bounds each write of an export: a client that stops
// reading is dropped, freeing what its answer holds, as an alert stream's
// is (sseWriteTimeout). Tests shorten it.
var streamWriteTimeout = 30 * time.Second

// slots counts the answers of one kind in progress, in all and by API
// key. It is safe for concurrent use.
type slots struct {
	what          string // "exports", "alert streams"
	total, perKey int
	count         *bound.Counter[string]
}

func newSlots(what string, total, perKey int) *slots {
	return &slots{what: what, total: total, perKey: perKey, count: bound.New[string](total, perKey)}
}

// take takes a slot for c's key, or answers 503 with Retry-After and
// returns false. The caller calls done once the answer has ended.
func (s *slots) take(c *gin.Context) bool {
	key := c.GetString(ctxKeyName)
	ok, n, nk := s.count.Take(key)
	if ok {
		return true
	}
	msg := fmt.Sprintf("the server has %d %s in progress, the most it serves at once: retry later", n, s.what)
	if nk >= s.perKey {
		msg = fmt.Sprintf("API key %q has %d %s in progress, the most one key may: retry once one has ended", key, nk, s.what)
	}
	c.Header("Retry-After", "5")
	writeError(c, http.StatusServiceUnavailable, msg)
	return false
}

func (s *slots) done(c *gin.Context) { s.count.Done(c.GetString(ctxKeyName)) }

// timedWriter writes to a response with a deadline for each write
// (streamWriteTimeout), so that a client that stops reading is dropped.
type timedWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func newTimedWriter(c *gin.Context) timedWriter {
	return timedWriter{w: c.Writer, rc: http.NewResponseController(c.Writer)}
}

func (t timedWriter) Write(p []byte) (int, error) {
	_ = t.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	return t.w.Write(p)
}

// end clears the deadline, for the connection's next request.
func (t timedWriter) end() { _ = t.rc.SetWriteDeadline(time.Time{}) }
