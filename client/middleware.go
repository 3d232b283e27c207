package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/accessledger/accessledger/event"
)

// RecorderConfig says how HTTP requests become access events. Submitter
// and Service are required.
type RecorderConfig struct {
	// Submitter sends the events. The application closes it at shutdown
	// (Submitter.Close flushes what is buffered).
	Submitter *Submitter
	// Service is the event's service: the application's name.
	Service string
	// Actor returns who made the request (from the session, a token, ...);
	// nil, or an empty id, records "anonymous". An actor set with SetActor
	// takes precedence. It is called once the request is answered, with
	// the innermost request the middleware knows of: the one RecordRoute
	// saw, whose context holds what middleware in between added (the
	// middleware's own request carries none of it).
	Actor func(*http.Request) event.Actor
	// Action returns the event's action; nil maps the method: GET and
	// HEAD read, POST create, PUT and PATCH update, DELETE delete, others
	// the method in lower case.
	Action func(*http.Request) string
	// Category is the event's category (default data_access).
	Category string
	// ClientIP returns the source address; nil takes the connection's
	// (set it when the application is behind a proxy it trusts).
	ClientIP func(*http.Request) netip.Addr
	// Tenant, if set, returns the event's tenant.
	Tenant func(*http.Request) string
	// RecordRawPaths records the request's path (without the query) as
	// the resource id when no route pattern is known (no ServeMux
	// pattern, nothing set with SetRoute, no gin route matched). By
	// default such a request is recorded on the route "unmatched"
	// (UnmatchedRoute): a path can hold personal data
	// (/patients/123-45-6789), and what the log records cannot be erased.
	RecordRawPaths bool
}

// UnmatchedRoute is the resource id of a request whose route pattern is
// not known, unless RecorderConfig.RecordRawPaths is set.
const UnmatchedRoute = "unmatched"

// recording is what the handlers of a request being recorded tell the
// recorder: it travels in the request's context, from the middleware
// down to the handlers, and each layer may fill it in.
type recording struct {
	mu        sync.Mutex
	actor     event.Actor   // set with SetActor
	route     string        // set with SetRoute
	innermost *http.Request // the request RecordRoute passed on
}

type recordingKey struct{}

func recordingOf(r *http.Request) *recording {
	rec, _ := r.Context().Value(recordingKey{}).(*recording)
	return rec
}

// SetActor tells the recording middleware who made request r: an
// authentication middleware or a handler calls it once it knows, on the
// request it was given or any request derived from it. It takes
// precedence over RecorderConfig.Actor. It reports whether r is being
// recorded (Middleware, ginmw, or Recorder.Track upstream); if not, it
// does nothing.
func SetActor(r *http.Request, actor event.Actor) bool {
	rec := recordingOf(r)
	if rec == nil {
		return false
	}
	rec.mu.Lock()
	rec.actor = actor
	rec.mu.Unlock()
	return true
}

// SetRoute tells the recording middleware the route pattern that
// request r matched (such as /users/{id}), for routers other than
// http.ServeMux; it takes precedence over any pattern the middleware
// finds. It reports whether r is being recorded; if not, it does nothing.
func SetRoute(r *http.Request, pattern string) bool {
	rec := recordingOf(r)
	if rec == nil {
		return false
	}
	rec.mu.Lock()
	rec.route = pattern
	rec.mu.Unlock()
	return true
}

// RecordRoute wraps the handler that routes requests (an http.ServeMux)
// so that the recording middleware learns the route pattern it matched,
// and sees the request as the middleware in between derived it.
// ServeMux sets Request.Pattern on the request it is given: behind a
// middleware that derives a request (r.WithContext, as authentication
// does), that is not the recording middleware's request, which then knew
// neither the pattern nor the context. Use it as
// client.Middleware(cfg)(auth(client.RecordRoute(mux))). It is not
// needed when the middleware wraps the mux directly.
func RecordRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec := recordingOf(r); rec != nil {
			rec.mu.Lock()
			rec.innermost = r
			rec.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// Recorder turns finished HTTP requests into access events and submits
// them without ever waiting: with the Submitter's buffer full, the event
// is dropped and counted (Stats.Dropped). It is safe for concurrent use.
type Recorder struct {
	cfg RecorderConfig
}

// NewRecorder checks cfg and returns a Recorder.
func NewRecorder(cfg RecorderConfig) (*Recorder, error) {
	if cfg.Submitter == nil || cfg.Service == "" {
		return nil, errors.New("client: RecorderConfig.Submitter and Service are required")
	}
	if cfg.Category == "" {
		cfg.Category = event.CategoryDataAccess
	}
	return &Recorder{cfg: cfg}, nil
}

// Track returns a shallow copy of r whose context carries what SetActor,
// SetRoute and RecordRoute fill in; pass it down the handler chain, and
// to Record once the request is answered. Middleware and ginmw do this.
func (rc *Recorder) Track(r *http.Request) *http.Request {
	if recordingOf(r) != nil {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), recordingKey{}, &recording{}))
}

// Record submits the access event of a request answered with status, on
// route (the route pattern, such as /users/{id}). The outcome is success
// below 400, failure from 400 on (reason http_<status>). If r was
// tracked (Track), what the handlers said takes precedence: the actor
// set with SetActor, the route set with SetRoute, else the pattern of
// the request RecordRoute saw. With no route known, the resource id is
// UnmatchedRoute, or the path if RecorderConfig.RecordRawPaths is set.
func (rc *Recorder) Record(r *http.Request, status int, route string, start time.Time) {
	outer := r
	var actor event.Actor
	if rec := recordingOf(r); rec != nil {
		rec.mu.Lock()
		actor = rec.actor
		if rec.innermost != nil {
			r = rec.innermost
			if r.Pattern != "" {
				route = r.Pattern
			}
		}
		if rec.route != "" {
			route = rec.route
		}
		rec.mu.Unlock()
	}
	ev := event.Event{
		Time:     start,
		Service:  rc.cfg.Service,
		Action:   methodAction(r.Method),
		Category: rc.cfg.Category,
		Outcome:  event.OutcomeSuccess,
		Resource: &event.Resource{Type: "http_route", ID: route},
	}
	if rc.cfg.Action != nil {
		ev.Action = rc.cfg.Action(r)
	}
	ev.Actor = actor
	if ev.Actor.ID == "" && rc.cfg.Actor != nil {
		ev.Actor = rc.cfg.Actor(r)
	}
	if ev.Actor.ID == "" {
		ev.Actor.ID = "anonymous"
	}
	if route == "" {
		ev.Resource.ID = UnmatchedRoute
		if rc.cfg.RecordRawPaths {
			ev.Resource.ID = outer.URL.Path
		}
	}
	// What the caller chose (its path, user agent, request id) is fitted
	// to the log's limits: one it refuses would leave the request
	// unrecorded, which any caller could then arrange.
	ev.Actor.ID = event.FitText(ev.Actor.ID, event.MaxActorIDLen)
	ev.Resource.ID = event.FitText(ev.Resource.ID, event.MaxResourceLen)
	if status >= 400 {
		ev.Outcome, ev.Reason = event.OutcomeFailure, "http_"+strconv.Itoa(status)
	}
	if rc.cfg.ClientIP != nil {
		ev.Source.IP = rc.cfg.ClientIP(r)
	} else if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ev.Source.IP, _ = netip.ParseAddr(host)
		if p, err := strconv.ParseUint(port, 10, 16); err == nil {
			ev.Source.Port = uint16(p)
		}
	}
	ev.Source.IP = ev.Source.IP.Unmap().WithZone("")
	if ua := r.UserAgent(); ua != "" {
		ev.Source.UserAgent = event.FitText(ua, event.MaxUserAgentLen)
	}
	if id := r.Header.Get("X-Request-Id"); id != "" {
		ev.RequestID = event.FitText(id, event.MaxRequestIDLen)
	}
	if rc.cfg.Tenant != nil {
		ev.Tenant = event.FitText(rc.cfg.Tenant(r), event.MaxTenantLen)
	}
	rc.cfg.Submitter.TrySubmit(ev)
}

func methodAction(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead:
		return "read"
	case http.MethodPost:
		return "create"
	case http.MethodPut, http.MethodPatch:
		return "update"
	case http.MethodDelete:
		return "delete"
	}
	b := []byte(m)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		} else if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] < 'a' || b[0] > 'z' {
		return "other"
	}
	return string(b)
}

// Middleware returns net/http middleware recording each request as an
// access event once the wrapped handler has answered. The actor is the
// one set with SetActor, else RecorderConfig.Actor's. The route is the
// one set with SetRoute, else the ServeMux pattern that matched
// (Request.Pattern; behind middleware that derives the request, wrap the
// mux with RecordRoute), else UnmatchedRoute (or the path, with
// RecorderConfig.RecordRawPaths).
func Middleware(cfg RecorderConfig) (func(http.Handler) http.Handler, error) {
	rc, err := NewRecorder(cfg)
	if err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			r = rc.Track(r)
			sw := &statusWriter{ResponseWriter: w}
			defer func() {
				status := sw.status
				if status == 0 {
					status = http.StatusOK
				}
				if p := recover(); p != nil {
					rc.Record(r, http.StatusInternalServerError, r.Pattern, start)
					panic(p)
				}
				rc.Record(r, status, r.Pattern, start)
			}()
			next.ServeHTTP(passThrough(sw, w), r)
		})
	}, nil
}

// passThrough returns sw with the optional interfaces of w that handlers
// test for by type assertion: streaming (http.Flusher) and WebSockets
// (http.Hijacker) failed behind sw, which only offered Unwrap.
func passThrough(sw *statusWriter, w http.ResponseWriter) http.ResponseWriter {
	f, flusher := w.(http.Flusher)
	h, hijacker := w.(http.Hijacker)
	switch {
	case flusher && hijacker:
		return struct {
			*statusWriter
			http.Flusher
			http.Hijacker
		}{sw, flushWriter{sw, f}, h}
	case flusher:
		return struct {
			*statusWriter
			http.Flusher
		}{sw, flushWriter{sw, f}}
	case hijacker:
		return struct {
			*statusWriter
			http.Hijacker
		}{sw, h}
	}
	return sw
}

// flushWriter flushes w, counting a flush before any write as a 200, as
// net/http does.
type flushWriter struct {
	sw *statusWriter
	f  http.Flusher
}

func (w flushWriter) Flush() {
	if w.sw.status == 0 {
		w.sw.status = http.StatusOK
	}
	w.f.Flush()
}

// statusWriter records the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the first final status. An informational one (103
// Early Hints, 100 Continue) precedes the answer and is not it: a 103 then
// a 500 was recorded as a success. 101 Switching Protocols is final.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer
// (Flush, Hijack, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
