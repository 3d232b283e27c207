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
