package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// bouncerRequest is a request the bouncer made, and our answer's status.
type bouncerRequest struct {
	method, path, query, userAgent string
	apiKey                         bool
	status                         int
}

// bouncerRequestLog records the requests a handler serves.
type bouncerRequestLog struct {
	mu   sync.Mutex
	reqs []bouncerRequest
}

func (l *bouncerRequestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &bouncerStatusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.reqs = append(l.reqs, bouncerRequest{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery,
			userAgent: r.UserAgent(), apiKey: r.Header.Get("X-Api-Key") != "", status: sw.status})
	})
}

func (l *bouncerRequestLog) requests() []bouncerRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bouncerRequest(nil), l.reqs...)
}

type bouncerStatusWriter struct {
	http.ResponseWriter
	status int
}

func (w *bouncerStatusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *bouncerStatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestCrowdsecBouncerReceivesBan runs CrowdSec's custom bouncer (the
// Debian package crowdsec-custom-bouncer) against the API: a ban made by
// the responders reaches its script as "add", and deleting it through the
// admin endpoint as "del".
func TestCrowdsecBouncerReceivesBan(t *testing.T) {
	bin, err := exec.LookPath("crowdsec-custom-bouncer")
	if err != nil {
		t.Skip("crowdsec-custom-bouncer not installed: apt-get install crowdsec-custom-bouncer (.ci/run installs it)")
	}
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()

	ds := newDecisionServer(t, nil)
	var log bouncerRequestLog
	srv := httptest.NewServer(log.wrap(ds.api.Handler()))
	defer srv.Close()

	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	script := filepath.Join(dir, "ban.sh")
	// The bouncer runs it as: <script> add|del <value> <seconds> <scenario> <decision JSON>.
	err = os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\t' \"$@\" >> '"+calls+"'\nprintf '\\n' >> '"+calls+"'\n"), 0o700)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "crowdsec-custom-bouncer.yaml")
	err = os.WriteFile(config, fmt.Appendf(nil, `bin_path: %s
feed_via_stdin: false
update_frequency: 200ms
cache_retention_duration: 10s
daemonize: false
log_mode: stdout
log_level: info
api_url: %s/
api_key: %s
prometheus:
  enabled: false
`, script, srv.URL, ds.bouncers["fw-1"]), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-c", config)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	defer stop()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				stop()
				t.Fatalf("timed out waiting for %s; bouncer requests %+v; bouncer output:\n%s", what, log.requests(), out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("the bouncer's startup pull", func() bool { return len(log.requests()) > 0 })

	d := ds.ban(t, 12, "192.0.2.44", 4*time.Hour)
	var add []string
	waitFor("the script to get the ban", func() bool {
		add = bouncerScriptCall(calls, "add")
		return add != nil
	})
	if len(add) != 5 || add[1] != "192.0.2.44" || add[3] != "brute-force" {
		t.Errorf("script got %q, want add 192.0.2.44 <seconds> brute-force <json>", add)
	} else {
		if secs, err := strconv.Atoi(add[2]); err != nil || secs < 4*3600-60 || secs > 4*3600 {
			t.Errorf("script got %s seconds, want about 4h (14400)", add[2])
		}
		var dec struct {
			ID    uint64 `json:"id"`
			Value string `json:"value"`
			Scope string `json:"scope"`
			Type  string `json:"type"`
		}
		if err := json.Unmarshal([]byte(add[4]), &dec); err != nil || dec.ID != d.ID || dec.Scope != "Ip" || dec.Type != "ban" {
			t.Errorf("script got decision %s (%v), want id %d, scope Ip, type ban", add[4], err, d.ID)
		}
	}

	r := call(t, ds.srv.URL, http.MethodDelete, fmt.Sprintf("/v1/decisions/%d", d.ID), ds.admin(), "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("DELETE /v1/decisions/%d = %v, want 200", d.ID, r)
	}
	var del []string
	waitFor("the script to get the deletion", func() bool {
		del = bouncerScriptCall(calls, "del")
		return del != nil
	})
	if len(del) != 5 || del[1] != "192.0.2.44" {
		t.Errorf("script got %q, want del 192.0.2.44 ...", del)
	}
	stop()

	reqs := log.requests()
	for i, r := range reqs {
		if r.method != http.MethodGet || r.path != "/v1/decisions/stream" || !r.apiKey || r.status != http.StatusOK {
			t.Errorf("bouncer request %d: %+v, want GET /v1/decisions/stream with X-Api-Key answered 200", i, r)
		}
		if wantStartup := i == 0; strings.Contains(r.query, "startup=true") != wantStartup {
			t.Errorf("bouncer request %d: query %q, want startup=true on the first request only", i, r.query)
		}
	}
	if len(reqs) > 0 {
		t.Logf("the bouncer made %d requests; the first: %+v; the last: %+v", len(reqs), reqs[0], reqs[len(reqs)-1])
	}
	if n := strings.Count(readBouncerFile(calls), "\n"); n != 2 {
		t.Errorf("script ran %d times, want 2 (one add, one del):\n%s", n, readBouncerFile(calls))
	}
}

// bouncerScriptCall returns the arguments of the script's first call with the
// given action, nil if none.
func bouncerScriptCall(file, action string) []string {
	for line := range strings.Lines(readBouncerFile(file)) {
		args := strings.Split(strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\t"), "\t")
		if args[0] == action {
			return args
		}
	}
	return nil
}

func readBouncerFile(name string) string {
	b, _ := os.ReadFile(name)
	return string(b)
}
