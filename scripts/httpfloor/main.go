// Command httpfloor is the floor under a single-event request: a gin
// server that reads each POST /v1/events body and answers 201 with a
// response of the size accessledger's has, doing nothing else. Driven by
// the same load as the server (scripts/bench-vs-tessera.sh's wrk round,
// or loadgen), its CPU per request is what net/http and gin cost on this
// machine, the part of a request no change to accessledger's own code
// can remove (BENCHMARKS.md).
//
//	go run ./scripts/httpfloor -listen 127.0.0.1:18090
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"

	"github.com/gin-gonic/gin"
)

// answer is as long as accessledger's answer to one event.
const answer = `{"index":1234567,"leaf_hash":"rTq47Gw8TUiF1e2wAjNFwVOIZzdKpT3m9aYOcQALg40="}`

func main() {
	listen := flag.String("listen", "127.0.0.1:18090", "loopback address to listen on")
	flag.Parse()
	host, _, err := net.SplitHostPort(*listen)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(os.Stderr, "httpfloor: -listen %q: want a loopback host:port\n", *listen)
		os.Exit(2)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.POST("/v1/events", func(c *gin.Context) {
		if _, err := io.Copy(io.Discard, c.Request.Body); err != nil {
			c.Status(http.StatusBadRequest)
			return
		}
		c.Data(http.StatusCreated, "application/json", []byte(answer))
	})
	if err := http.ListenAndServe(*listen, r); err != nil {
		fmt.Fprintln(os.Stderr, "httpfloor:", err)
		os.Exit(1)
	}
}
