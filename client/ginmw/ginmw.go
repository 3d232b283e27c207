// Package ginmw is the gin middleware of the accessledger client: it
// records each request a gin engine answers as an access event, through a
// client.Recorder, without ever making the request wait. It is a package
// of its own so that the client does not depend on gin.
package ginmw

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/client"
)

// Middleware returns gin middleware recording each request once the
// handlers have answered; the route is the matched pattern
// (Context.FullPath, such as /users/:id), else the path.
func Middleware(cfg client.RecorderConfig) (gin.HandlerFunc, error) {
	rc, err := client.NewRecorder(cfg)
	if err != nil {
		return nil, err
	}
	return func(c *gin.Context) {
		start := time.Now()
		defer func() {
			// A handler that panicked is recorded as a 500 (gin's
			// Recovery, registered before this, answers it), then the
			// panic goes on: without the defer it went unrecorded.
			if p := recover(); p != nil {
				rc.Record(c.Request, http.StatusInternalServerError, c.FullPath(), start)
				panic(p)
			}
			rc.Record(c.Request, c.Writer.Status(), c.FullPath(), start)
		}()
		c.Next()
	}, nil
}
