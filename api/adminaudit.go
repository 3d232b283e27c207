package api

// Who tried the admin endpoints: with read auditing on, a request to
// /v1/admin/... that a known API key made and was refused (403: the key
// lacks the admin role; 401: it is revoked, expired or a replaced
// secret), and each listing of the keys, are recorded in the log as
// access events of service accessledger, as reads are (api/readaudit.go).
// Refusals are bounded per key, so that a key hammering the admin
// endpoints cannot fill the log.

import (
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/event"
)

// RefusedAdminWindow is how often, at most, a refused request to the admin
// endpoints is recorded for one API key: the first refusal of a window is
// recorded at once, the others of the window together once it ends (one
// event saying how many, from the first to the last).
const RefusedAdminWindow = time.Minute

// adminKind is what the record of a request to an admin endpoint says:
// its action, the resource type, and the route parameter that is the
// resource's id ("" for none).
type adminKind struct {
	action, kind, param string
}

// adminKinds maps the admin endpoints (method and route) to their
// records.
var adminKinds = map[string]adminKind{
	"GET /v1/admin/keys":               {"read", "api_keys", ""},
	"POST /v1/admin/keys":              {"create", "api_key", ""},
	"POST /v1/admin/keys/:name/revoke": {"revoke", "api_key", "name"},
	"POST /v1/admin/keys/:name/rotate": {"rotate", "api_key", "name"},
	"GET /v1/admin/decisions":          {"read", "decisions", ""},
	"GET /v1/admin/decisions/:id":      {"read", "decision", "id"},
	"POST /v1/admin/digest":            {"create", "digest", ""},
}

// auditAdmin wraps require, the access check of an admin endpoint, so
// that a request it refuses to a known key, and a listing of the keys,
// are recorded once answered. Requests without a known key name nobody
// and are not recorded (anyone could send them, and fill the log), nor
// are those refused by the rate limit (429), which bounds them already.
func (s *Server) auditAdmin(require gin.HandlerFunc) gin.HandlerFunc {
	return s.recordAfter(require, s.recordAdminRequest)
}

// recordAdminRequest records the request to an admin endpoint that c
// answered, if auditAdmin records it.
func (s *Server) recordAdminRequest(c *gin.Context, start time.Time) {
	name, status := c.GetString(ctxKeyName), c.Writer.Status()
	refused := false
	switch {
	case status == http.StatusForbidden && name != "":
		refused = true
	case status == http.StatusUnauthorized && c.GetString(ctxRefusedKey) != "":
		name, refused = c.GetString(ctxRefusedKey), true
	case name == "" || status == http.StatusTooManyRequests:
		return
	}
	route := c.Request.Method + " " + c.FullPath()
	if !refused && route != "GET /v1/admin/keys" {
		return // the changes are admin leaves (api/admin.go)
	}
	k := adminKinds[route]
	r := readRecord{
		time: start, key: name, kind: k.kind, action: k.action, category: event.CategoryAdmin,
		status: status, ip: c.ClientIP(), userAgent: c.Request.UserAgent(),
	}
	if r.kind == "" {
		r.action, r.kind = "request", "admin_endpoint" // a route added without its kind
	}
	if k.param != "" {
		r.id = c.Param(k.param)
	} else {
		r.query = c.Request.URL.RawQuery
	}
	if !refused {
		s.reads.enqueue(r, s)
		return
	}
	if first := s.reads.refused.note(r, start); first {
		s.reads.enqueue(r, s)
	}
}

// refusals bounds the records of refused requests to the admin
// endpoints: per key, at most one at once each RefusedAdminWindow, and
// one for the rest of the window once it ends. Its methods are safe for
// concurrent use.
type refusals struct {
	mu   sync.Mutex
	keys map[string]*refusalWindow // by key name: the keys refused in their last window
	// ended holds the records of the rest of windows that ended before
	// flush came.
	ended []readRecord
}

// refusalWindow is a key's window: until when it lasts, and the refusals
// after its first, not recorded yet: the first of them, with attempts
// (how many) and lastTime (the last one's).
type refusalWindow struct {
	until time.Time
	rest  readRecord
}

// note counts r, a refused request made at now, and reports whether it
// is its key's first of a window, to be recorded at once.
func (f *refusals) note(r readRecord, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.keys[r.key]
	if w != nil && now.Before(w.until) {
		if w.rest.attempts == 0 {
			w.rest = r
		}
		w.rest.attempts++
		w.rest.lastTime = r.time
		return false
	}
	if f.keys == nil {
		f.keys = make(map[string]*refusalWindow)
	}
	if w != nil && w.rest.attempts > 0 {
		f.ended = append(f.ended, w.rest)
	}
	f.keys[r.key] = &refusalWindow{until: now.Add(RefusedAdminWindow)}
	return true
}

// flush passes to record the refusals left of the windows that ended by
// now (all of them if every), in one record per key, and forgets those
// windows.
func (f *refusals) flush(now time.Time, every bool, record func(readRecord)) {
	f.mu.Lock()
	out := f.ended
	f.ended = nil
	for name, w := range f.keys {
		if !every && now.Before(w.until) {
			continue
		}
		if w.rest.attempts > 0 {
			out = append(out, w.rest)
		}
		delete(f.keys, name)
	}
	f.mu.Unlock()
	for _, r := range out {
		record(r)
	}
}
