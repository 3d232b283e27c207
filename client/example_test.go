package client_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/client"
	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// exampleLog starts a log on loopback for the examples and returns its
// URL, an API key (submitter and auditor), its verifier key and a stop
// function. In real use these come from the operator.
func exampleLog() (logURL, apiKey, vkey string, stop func()) {
	dir, err := os.MkdirTemp("", "accessledger-example-")
	if err != nil {
		panic(err)
	}
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		panic(err)
	}
	signer, err := ledger.NewNoteSigner("example.com/log", sv)
	if err != nil {
		panic(err)
	}
	l, err := ledger.Create(context.Background(), ledger.Config{Dir: dir, Origin: "example.com/log", Signer: signer, CheckpointInterval: 10 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	token, key, _ := api.NewAPIKey("example", api.RoleSubmitter, api.RoleAuditor)
	kr, _ := api.NewKeyring([]api.APIKey{key})
	s, err := api.New(api.Config{Ledger: l, Keys: kr})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(s.Handler())
	return srv.URL, token, l.VerifierKey(), func() {
		srv.Close()
		l.Close(context.Background())
		os.RemoveAll(dir)
	}
}

// A service records its accesses in the background: Submit buffers,
// the Submitter batches and retries, Close flushes at shutdown.
func ExampleSubmitter() {
	logURL, apiKey, _, stop := exampleLog()
	defer stop()
	ctx := context.Background()

	s, err := client.NewSubmitter(client.SubmitterConfig{URL: logURL, APIKey: apiKey})
	if err != nil {
		panic(err)
	}
	err = s.Submit(ctx, event.Event{
		Service:  "billing",
		Actor:    event.Actor{ID: "alice", Type: event.ActorUser},
		Source:   event.Source{IP: netip.MustParseAddr("203.0.113.7")},
		Action:   "read",
		Category: event.CategoryDataAccess,
		Outcome:  event.OutcomeSuccess,
		Resource: &event.Resource{Type: "invoice", ID: "inv-42"},
	})
	if err != nil {
		panic(err)
	}
	if err := s.Close(ctx); err != nil { // flushes what is buffered
		panic(err)
	}
	fmt.Println("acknowledged:", s.Stats().Acknowledged)
	// Output: acknowledged: 1
}

// Send appends at once and returns where each event landed.
func ExampleSubmitter_Send() {
	logURL, apiKey, _, stop := exampleLog()
	defer stop()
	ctx := context.Background()
	s, err := client.NewSubmitter(client.SubmitterConfig{URL: logURL, APIKey: apiKey})
	if err != nil {
		panic(err)
	}
	defer s.Close(ctx)
	ev := event.Event{
		ID:      "login-7f3a", // an id makes retries and resubmissions safe
		Time:    time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC),
		Service: "sso", Actor: event.Actor{ID: "bob"}, Source: event.Source{IP: netip.MustParseAddr("2001:db8::1")},
		Action: "login", Category: event.CategoryAuthentication, Outcome: event.OutcomeFailure, Reason: "invalid_credentials",
	}
	rs, err := s.Send(ctx, ev)
	if err != nil {
		panic(err)
	}
	again, err := s.Send(ctx, ev)
	if err != nil {
		panic(err)
	}
	fmt.Println(rs[0].Index, again[0].Index, again[0].Duplicate)
	// Output: 0 0 true
}

// An auditor checks that an entry is in the log, and that the log only
// grew since its last check (kept in a state file).
func ExampleAuditor() {
	logURL, apiKey, vkey, stop := exampleLog()
	defer stop()
	ctx := context.Background()
	s, _ := client.NewSubmitter(client.SubmitterConfig{URL: logURL, APIKey: apiKey})
	s.Send(ctx, event.Event{Service: "sso", Actor: event.Actor{ID: "carol"}, Source: event.Source{IP: netip.MustParseAddr("198.51.100.1")},
		Action: "logout", Category: event.CategoryAuthentication, Outcome: event.OutcomeSuccess})
	s.Close(ctx)

	state, _ := os.MkdirTemp("", "auditor-")
	defer os.RemoveAll(state)
	a, err := client.NewAuditor(client.AuditorConfig{URL: logURL, APIKey: apiKey, VerifierKey: vkey, StateFile: state + "/trusted.json"})
	if err != nil {
		panic(err)
	}
	// An entry is proven against a signed checkpoint that covers it; the
	// log signs one shortly after an append (every 10 ms here).
	for tries := 0; ; tries++ {
		cp, err := a.Update(ctx)
		if err != nil {
			panic(err)
		}
		if cp.Size >= 1 {
			break
		}
		if tries == 1000 {
			panic("no checkpoint covers entry 0")
		}
		time.Sleep(10 * time.Millisecond)
	}
	entry, cp, err := a.Entry(ctx, 0)
	if err != nil {
		panic(err)
	}
	fmt.Printf("entry 0 is in the log of size %d: %.22s…\n", cp.Size, entry)
	// Output: entry 0 is in the log of size 1: {"kind":"event","recei…
}

// The middleware records each request of an application as an access
// event, never making the request wait.
func ExampleMiddleware() {
	logURL, apiKey, _, stop := exampleLog()
	defer stop()
	s, err := client.NewSubmitter(client.SubmitterConfig{URL: logURL, APIKey: apiKey})
	if err != nil {
		panic(err)
	}
	mw, err := client.Middleware(client.RecorderConfig{
		Submitter: s,
		Service:   "shop",
		Actor: func(r *http.Request) event.Actor {
			return event.Actor{ID: r.Header.Get("X-User"), Type: event.ActorUser} // from your session
		},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "order") })
	app := httptest.NewServer(mw(mux))
	defer app.Close()

	req, _ := http.NewRequest("GET", app.URL+"/orders/17", nil)
	req.Header.Set("X-User", "dave")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()

	s.Close(context.Background()) // at shutdown: flush
	fmt.Println("recorded:", s.Stats().Acknowledged, "dropped:", s.Stats().Dropped)
	// Output: recorded: 1 dropped: 0
}

// Authentication middleware between the recorder and the mux tells the
// recorder who is calling with SetActor; RecordRoute around the mux tells
// it the route pattern that matched, which the mux sets on the request
// the authentication middleware derived.
func ExampleSetActor() {
	logURL, apiKey, _, stop := exampleLog()
	defer stop()
	s, err := client.NewSubmitter(client.SubmitterConfig{URL: logURL, APIKey: apiKey})
	if err != nil {
		panic(err)
	}
	mw, err := client.Middleware(client.RecorderConfig{Submitter: s, Service: "clinic"})
	if err != nil {
		panic(err)
	}
	type userKey struct{}
	auth := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user := r.Header.Get("X-User") // your session or token check
			if user == "" {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			client.SetActor(r, event.Actor{ID: user, Type: event.ActorUser})
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
		})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /patients/{id}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "patient") })
	app := httptest.NewServer(mw(auth(client.RecordRoute(mux))))
	defer app.Close()

	req, _ := http.NewRequest("GET", app.URL+"/patients/17", nil)
	req.Header.Set("X-User", "dr-grey")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()

	s.Close(context.Background()) // at shutdown: flush
	fmt.Println("recorded:", s.Stats().Acknowledged)
	// Output: recorded: 1
}
