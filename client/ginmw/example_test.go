package ginmw_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/client"
	"github.com/accessledger/accessledger/client/ginmw"
	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// exampleLog starts a log on loopback for the example; in real use its
// URL and key come from the operator.
func exampleLog() (logURL, apiKey string, stop func()) {
	dir, _ := os.MkdirTemp("", "accessledger-example-")
	sv, _, _ := signature.NewED25519SignerVerifier(rand.Reader)
	signer, _ := ledger.NewNoteSigner("example.com/log", sv)
	l, err := ledger.Create(context.Background(), ledger.Config{Dir: dir, Origin: "example.com/log", Signer: signer, CheckpointInterval: time.Hour})
	if err != nil {
		panic(err)
	}
	token, key, _ := api.NewAPIKey("example", api.RoleSubmitter)
	kr, _ := api.NewKeyring([]api.APIKey{key})
	s, _ := api.New(api.Config{Ledger: l, Keys: kr})
	srv := httptest.NewServer(s.Handler())
	return srv.URL, token, func() { srv.Close(); l.Close(context.Background()); os.RemoveAll(dir) }
}

// A gin application records every request as an access event.
func ExampleMiddleware() {
	logURL, apiKey, stop := exampleLog()
	defer stop()
	s, err := client.NewSubmitter(client.SubmitterConfig{URL: logURL, APIKey: apiKey})
	if err != nil {
		panic(err)
	}
	mw, err := ginmw.Middleware(client.RecorderConfig{
		Submitter: s,
		Service:   "shop",
		Actor:     func(r *http.Request) event.Actor { return event.Actor{ID: r.Header.Get("X-User")} },
	})
	if err != nil {
		panic(err)
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.Use(mw) // before the routes it applies to
	e.GET("/orders/:id", func(c *gin.Context) { c.String(http.StatusOK, "order") })

	w := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/orders/17", nil)
	req.Header.Set("X-User", "erin")
	e.ServeHTTP(w, req)

	s.Close(context.Background()) // at shutdown: flush
	fmt.Println(w.Code, "recorded:", s.Stats().Acknowledged)
	// Output: 200 recorded: 1
}

// A gin application whose authentication middleware keeps the user in the
// context's keys: ContextActor reads it from there once the handlers have
// answered.
func ExampleNew() {
	logURL, apiKey, stop := exampleLog()
	defer stop()
	s, err := client.NewSubmitter(client.SubmitterConfig{URL: logURL, APIKey: apiKey})
	if err != nil {
		panic(err)
	}
	mw, err := ginmw.New(ginmw.Config{
		RecorderConfig: client.RecorderConfig{Submitter: s, Service: "shop"},
		ContextActor: func(c *gin.Context) event.Actor {
			return event.Actor{ID: c.GetString("user"), Type: event.ActorUser}
		},
	})
	if err != nil {
		panic(err)
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.Use(mw, func(c *gin.Context) { c.Set("user", c.GetHeader("X-User")) }) // your authentication
	e.GET("/orders/:id", func(c *gin.Context) { c.String(http.StatusOK, "order") })

	w := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/orders/17", nil)
	req.Header.Set("X-User", "erin")
	e.ServeHTTP(w, req)

	s.Close(context.Background()) // at shutdown: flush
	fmt.Println(w.Code, "recorded:", s.Stats().Acknowledged)
	// Output: 200 recorded: 1
}
