// Package ginmw is the gin middleware of the accessledger client: it
// records each request a gin engine answers as an access event, through a
// client.Recorder, without ever making the request wait. It is a package
// of its own so that the client does not depend on gin.
package ginmw

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/client"
	"github.com/accessledger/accessledger/event"
)

// Config configures New: the recorder's settings, and what only a gin
// application knows.
type Config struct {
	client.RecorderConfig
	// ContextActor, if set, returns who made the request from its gin
	// context, once the handlers have answered: gin applications keep the
	// user where their authentication middleware put it, in the context's
	// keys (c.Set("user", ...)), which RecorderConfig.Actor, given only the
	// *http.Request, cannot read. An empty id falls back to
	// RecorderConfig.Actor; an actor set with client.SetActor takes
	// precedence over both.
	ContextActor func(*gin.Context) event.Actor
}

type ginContextKey struct{}

// Middleware returns gin middleware recording each request once the
// handlers have answered; the route is the matched pattern
// (Context.FullPath, such as /users/:id), else client.UnmatchedRoute (or
// the path, with RecorderConfig.RecordRawPaths). It is New with cfg
// alone.
func Middleware(cfg client.RecorderConfig) (gin.HandlerFunc, error) {
	return New(Config{RecorderConfig: cfg})
}

// New returns gin middleware recording each request once the handlers
// have answered. The actor is the one set with client.SetActor (on
// c.Request), else ContextActor's, else RecorderConfig.Actor's (given
// c.Request as the handlers left it). The route is the one set with
// client.SetRoute, else the matched pattern (Context.FullPath, such as
// /users/:id), else client.UnmatchedRoute (or the path, with
// RecorderConfig.RecordRawPaths). Register it before the routes it
// applies to.
func New(cfg Config) (gin.HandlerFunc, error) {
	rcfg := cfg.RecorderConfig
	if cfg.ContextActor != nil {
		actor, contextActor := rcfg.Actor, cfg.ContextActor
		rcfg.Actor = func(r *http.Request) event.Actor {
			if c, ok := r.Context().Value(ginContextKey{}).(*gin.Context); ok {
				if a := contextActor(c); a.ID != "" {
					return a
				}
			}
			if actor != nil {
				return actor(r)
			}
			return event.Actor{}
		}
	}
	rc, err := client.NewRecorder(rcfg)
	if err != nil {
		return nil, err
	}
	return func(c *gin.Context) {
		start := time.Now()
		c.Request = rc.Track(c.Request)
		if cfg.ContextActor != nil {
			c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), ginContextKey{}, c))
		}
		defer func() {
			// A handler that panicked is recorded as a 500 (gin's
			// Recovery, registered before this, answers it), then the
			// panic goes on: without the defer it went unrecorded.
			// c.Request is the request as the handlers left it.
			if p := recover(); p != nil {
				rc.Record(c.Request, http.StatusInternalServerError, c.FullPath(), start)
				panic(p)
			}
			rc.Record(c.Request, finalStatus(c.Writer.Status()), c.FullPath(), start)
		}()
		c.Next()
	}, nil
}

// finalStatus is the status the client got. gin's writer keeps the last
// status set before it writes, so a 103 then a 500 is a 500; but once a
// handler forced the 103 out (WriteHeaderNow), gin ignores later statuses
// and net/http ends the answer with a 200.
func finalStatus(status int) int {
	if status < 200 && status != http.StatusSwitchingProtocols {
		return http.StatusOK
	}
	return status
}
