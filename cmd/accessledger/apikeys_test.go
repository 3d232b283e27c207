package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
)

// queryEntries returns the raw entries GET /v1/events?query answers
// (first page).
func (s *server) queryEntries(query string) [][]byte {
	s.t.Helper()
	var page struct {
		Events []struct {
			Entry json.RawMessage `json:"entry"`
		} `json:"events"`
	}
	s.get("/v1/events?"+query+"&limit=1000", &page)
	out := make([][]byte, len(page.Events))
	for i, e := range page.Events {
		out[i] = e.Entry
	}
	return out
}

// adminActions returns "action key by" for each admin leaf of the log,
// oldest first, waiting until want is among them.
func (s *server) adminActions(want ...string) []string {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []string
		for _, e := range s.queryEntries("kind=admin") {
			_, a, err := event.DecodeAdminLeaf(e)
			if err != nil {
				s.t.Fatalf("admin leaf %s: %v", e, err)
			}
			got = append(got, a.Action+" "+a.Key+" "+a.By)
		}
		missing := ""
		for _, w := range want {
			if !containsString(got, w) {
				missing = w
			}
		}
		if missing == "" {
			return got
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("admin leaves %q after 10s, want %q among them", got, missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// waitKey waits until GET path with token answers status. How long the
// server takes to see a change of the keys file is not asserted: its
// one-second poll is late on a loaded machine, and only the effect
// matters.
func (s *server) waitKey(token, path string, status int, within time.Duration) {
	s.t.Helper()
	start := time.Now()
	for {
		got, body, err := s.do(s.t.Context(), http.MethodGet, path, token, nil)
		if err != nil {
			s.t.Fatalf("GET %s: %v", path, err)
		}
		if got == status {
			return
		}
		if time.Since(start) > within {
			s.t.Fatalf("GET %s = %d %s for %s, want %d", path, got, body, within, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAPIKeyCommandsWhileServing runs apikey add, list, rotate and revoke
// against a running server: it sees each change without a signal, refuses
// a revoked key once it has seen the revocation, and the log records
// every change, naming the key and never its secret.
func TestAPIKeyCommandsWhileServing(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	s.mustPost(testEvent("", 1))
	cli := func(args ...string) (string, string) {
		t.Helper()
		code, stdout, stderr := runCLI(t, nil, append(append([]string{"apikey"}, args...), "--data", dir)...)
		if code != 0 {
			t.Fatalf("apikey %v = exit %d, stderr %q", args, code, stderr)
		}
		return strings.TrimSpace(stdout), stderr
	}

	token, _ := cli("add", "--name", "reader", "--role", "auditor", "--expires", "90d")
	if !strings.HasPrefix(token, "al_") {
		t.Fatalf("apikey add printed %q, want a secret", token)
	}
	s.waitKey(token, "/v1/entries/0", http.StatusOK, 20*time.Second)

	// Rotation with a grace period: both secrets work for now.
	newToken, msg := cli("rotate", "--name", "reader", "--grace", "1h")
	if newToken == token || !strings.Contains(msg, "stays valid until") {
		t.Fatalf("apikey rotate = %q, %q", newToken, msg)
	}
	s.waitKey(newToken, "/v1/entries/0", http.StatusOK, 20*time.Second)
	s.waitKey(token, "/v1/entries/0", http.StatusOK, time.Second)

	list, _ := cli("list")
	if !strings.Contains(list, "reader\t[auditor]\tactive\tcreated ") || !strings.Contains(list, "admin\t[admin]\tactive\tcreated ") ||
		strings.Contains(list, token) || strings.Contains(list, newToken) {
		t.Errorf("apikey list = %q, want reader and admin, active, and no secret", list)
	}

	// Revocation, without a signal: refused once the server has polled
	// the keys file.
	if _, msg := cli("revoke", "--name", "reader"); !strings.Contains(msg, "revoked") {
		t.Errorf("apikey revoke said %q", msg)
	}
	s.waitKey(newToken, "/v1/entries/0", http.StatusUnauthorized, 20*time.Second)
	s.waitKey(token, "/v1/entries/0", http.StatusUnauthorized, time.Second)
	list, _ = cli("list")
	if !strings.Contains(list, "reader\t[auditor]\trevoked ") {
		t.Errorf("apikey list = %q, want reader revoked", list)
	}

	// Refusals name the problem.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"revoke", "--name", "reader"}, "already revoked"},
		{[]string{"revoke", "--name", "nobody"}, `no API key named "nobody"`},
		{[]string{"revoke", "--name", "admin"}, "last active admin key"},
		{[]string{"rotate", "--name", "reader"}, "cannot be rotated"},
		{[]string{"rotate", "--name", "admin", "--grace", "31d"}, "grace"},
		{[]string{"add", "--name", "reader", "--role", "auditor"}, "not reused"},
		{[]string{"add", "--name", "x", "--role", "auditor", "--expires", "yesterday"}, "RFC 3339"},
		{[]string{"revoke"}, "--name is required"},
	} {
		code, stdout, stderr := runCLI(t, nil, append(append([]string{"apikey"}, tc.args...), "--data", dir)...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("apikey %v = exit %d, stdout %q, stderr %q; want 1, nothing, %q", tc.args, code, stdout, stderr, tc.want)
		}
	}

	// Every change is in the log: the generated admin key, by the server;
	// reader's by the command. No entry holds a secret or its hash.
	got := s.adminActions("key_created admin accessledger", "key_created reader cli", "key_rotated reader cli", "key_revoked reader cli")
	if len(got) != 4 {
		t.Errorf("admin leaves %q, want exactly 4", got)
	}
	for _, e := range s.queryEntries("kind=admin") {
		for _, secret := range []string{token, newToken, s.token} {
			if bytes.Contains(e, []byte(secret)) || bytes.Contains(e, []byte(hashHex(secret))) {
				t.Errorf("admin leaf %s holds a secret or its hash", e)
			}
		}
	}

	// The keys file stays private.
	if fi, err := os.Stat(filepath.Join(dir, "api_keys.yaml")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("api_keys.yaml mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

// TestAdminAPIWhileServing administers keys over HTTP: the changes take
// effect at once, and the log names the acting admin key.
func TestAdminAPIWhileServing(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	s.mustPost(testEvent("", 1))
	status, body, err := s.do(t.Context(), http.MethodPost, "/v1/admin/keys", "", []byte(`{"name":"ops","roles":["admin"]}`))
	if err != nil || status != http.StatusCreated {
		t.Fatalf("POST /v1/admin/keys = %d %s, %v", status, body, err)
	}
	var created struct {
		Secret   string `json:"secret"`
		LogIndex uint64 `json:"log_index"`
	}
	if err := json.Unmarshal(body, &created); err != nil || created.Secret == "" {
		t.Fatalf("POST /v1/admin/keys = %s", body)
	}
	// The new admin revokes the generated one; refused at once.
	status, body, _ = s.do(t.Context(), http.MethodPost, "/v1/admin/keys/admin/revoke", created.Secret, nil)
	if status != http.StatusOK {
		t.Fatalf("POST /v1/admin/keys/admin/revoke = %d %s", status, body)
	}
	if status, body, _ := s.do(t.Context(), http.MethodGet, "/v1/log", s.token, nil); status != http.StatusUnauthorized || !strings.Contains(string(body), "revoked") {
		t.Errorf("GET /v1/log with the revoked admin key = %d %s, want 401 saying it was revoked", status, body)
	}
	s.token = created.Secret
	s.adminActions("key_created ops admin", "key_revoked admin ops")
	// The entry at log_index is the creation, provable like any entry.
	data, leaf, err := s.entry(t.Context(), created.LogIndex)
	if err != nil {
		t.Fatal(err)
	}
	if _, a, err := event.DecodeAdminLeaf(data); err != nil || a.Key != "ops" || a.By != "admin" {
		t.Errorf("entry %d = %s (%v), want ops created by admin", created.LogIndex, data, err)
	}
	s.checkInclusion(s.waitCheckpoint(created.LogIndex+1, 10*time.Second), created.LogIndex, leaf)
}

// TestReadAuditing: reads of personal data are recorded in the log as
// access events naming the key; with audit_reads off, they are not.
func TestReadAuditing(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run("audit_reads="+strconv.FormatBool(on), func(t *testing.T) {
			dir := t.TempDir()
			s := startServer(t, dir, "--audit-reads="+strconv.FormatBool(on))
			s.mustPost(testEvent("", 1))
			if _, _, err := s.entry(t.Context(), 0); err != nil {
				t.Fatal(err)
			}
			s.get("/v1/events?actor=user-1", nil)
			if !on {
				time.Sleep(2 * time.Second)
				if got := s.queryEntries("service=accessledger"); len(got) != 0 {
					t.Errorf("read events with audit_reads off: %s", got)
				}
				return
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				var kinds []string
				for _, e := range s.queryEntries("service=accessledger&actor=admin") {
					l, err := event.DecodeLeaf(e)
					if err != nil {
						t.Fatal(err)
					}
					ev, err := event.Parse(l.Body, event.ParseOptions{})
					if err != nil {
						t.Fatalf("read event %s: %v", e, err)
					}
					if ev.Action != "read" || ev.Category != "data_access" || ev.Source.IP.String() != "127.0.0.1" {
						t.Errorf("read event = %s", e)
					}
					kinds = append(kinds, ev.Resource.Type+":"+ev.Resource.ID+ev.Attributes["query"])
				}
				if containsString(kinds, "entry:0") && containsString(kinds, "events_query:actor=user-1") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("read events %q after 10s, want the entry read and the query", kinds)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestRateLimitServe: a rate_limit in the config file limits each key;
// beyond it, 429 with Retry-After.
func TestRateLimitServe(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(t.TempDir(), "accessledger.yaml")
	if err := os.WriteFile(conf, []byte("rate_limit: {per_second: 0.5, burst: 3}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, dir, "--config", conf)
	var last int
	var hdr string
	for range 6 {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.base+"/v1/log", nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		last, hdr = resp.StatusCode, resp.Header.Get("Retry-After")
	}
	if ra, err := strconv.Atoi(hdr); last != http.StatusTooManyRequests || err != nil || ra < 1 || ra > 2 {
		t.Errorf("the 6th GET /v1/log in a row = %d, Retry-After %q; want 429 and 1 or 2", last, hdr)
	}
}

// TestAPIKeyExpiry: a key added with --expires works until it expires,
// and is refused once it has.
func TestAPIKeyExpiry(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	s.mustPost(testEvent("", 1))
	// Far enough ahead that the command, and the server's poll of the
	// keys file, fit before the expiry on a loaded machine (RFC 3339
	// drops the fraction of a second).
	expires := time.Now().Add(20 * time.Second).UTC().Format(time.RFC3339)
	expiresAt, err := time.Parse(time.RFC3339, expires)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, nil, "apikey", "add", "--data", dir, "--name", "brief", "--role", "auditor", "--expires", expires)
	if code != 0 {
		t.Fatalf("apikey add --expires = %d %s", code, stderr)
	}
	token := strings.TrimSpace(stdout)
	// It works before its expiry...
	s.waitKey(token, "/v1/entries/0", http.StatusOK, time.Until(expiresAt))
	// ...and is refused after it, not before.
	s.waitKey(token, "/v1/entries/0", http.StatusUnauthorized, 30*time.Second)
	if now := time.Now(); now.Before(expiresAt) {
		t.Errorf("the key was refused at %s, before its expiry at %s", now.Format(time.RFC3339Nano), expires)
	}
	_, body, _ := s.do(t.Context(), http.MethodGet, "/v1/entries/0", token, nil)
	if !strings.Contains(string(body), "expired at "+expires) {
		t.Errorf("GET with an expired key = %s, want it to say when it expired", body)
	}
	_, list, _ := runCLI(t, nil, "apikey", "list", "--data", dir)
	if !strings.Contains(list, "brief\t[auditor]\texpired\t") || !strings.Contains(list, "expires "+expires) {
		t.Errorf("apikey list = %q, want brief expired", list)
	}
}

// hashHex is the stored form of a secret, computed here.
func hashHex(secret string) string {
	return fmt.Sprintf("%x", sha256.Sum256([]byte(secret)))
}

// TestAPIKeyListWhereNone: listing a directory that holds no keys file
// says where it looked and fails, rather than printing nothing as a
// server without keys would.
func TestAPIKeyListWhereNone(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nonexistent")
	code, stdout, stderr := runCLI(t, nil, "apikey", "list", "--data", missing)
	if code == 0 || stdout != "" || !strings.Contains(stderr, "no keys file at "+filepath.Join(missing, "api_keys.yaml")) {
		t.Errorf("apikey list --data %s = exit %d, %q %q; want a failure naming the file", missing, code, stdout, stderr)
	}
}

// TestAPIKeyAddWhereNoServer: adding a key in a data directory that does
// not exist (a mistyped --data) fails, instead of making a keys file that
// no server reads and printing a secret that works nowhere.
func TestAPIKeyAddWhereNoServer(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nonexistent")
	code, stdout, stderr := runCLI(t, nil, "apikey", "add", "--data", missing, "--name", "k", "--role", "auditor")
	if code == 0 || stdout != "" || !strings.Contains(stderr, "does not exist") {
		t.Errorf("apikey add --data %s = exit %d, %q %q; want a failure", missing, code, stdout, stderr)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("apikey add created %s", missing)
	}
}

// TestAPIKeyNameInConfigAndFile: a key named like one of the config
// file's api_keys, added without --config, made the server refuse the
// keys file with only "two keys have this name". The error names both
// files now; with the config file (--config or ACCESSLEDGER_CONFIG) the
// command refuses the name, and without it, it says it did not check.
func TestAPIKeyNameInConfigAndFile(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "api_keys.yaml")
	conf := writeConfig(t, "data: "+dir+"\napi_keys:\n  - name: ops\n    sha256: "+hashHex("al_ops")+"\n    roles: [admin]\n")
	for _, env := range [][]string{nil, {"ACCESSLEDGER_CONFIG=" + conf}} {
		args := []string{"apikey", "add", "--name", "ops", "--role", "admin"}
		if env == nil {
			args = append(args, "--config", conf)
		}
		code, stdout, stderr := runCLI(t, env, args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "config") {
			t.Errorf("accessledger %q (env %q) = exit %d, %q %q; want 1 and a message naming the configuration", args, env, code, stdout, stderr)
		}
	}
	code, _, stderr := runCLI(t, nil, "apikey", "add", "--data", dir, "--name", "ops", "--role", "admin")
	if code != 0 {
		t.Fatalf("apikey add --data (no config) = exit %d, %q", code, stderr)
	}
	if !strings.Contains(stderr, "Without --config") {
		t.Errorf("apikey add --data (no config): %q, want a warning that the config's names were not checked", stderr)
	}
	code, _, stderr = runCLI(t, nil, "serve", "--config", conf, "--listen", freeAddr(t))
	if code != 1 || !strings.Contains(stderr, `"ops" is defined twice`) || !strings.Contains(stderr, conf) || !strings.Contains(stderr, keys) {
		t.Errorf("serve with ops in %s and %s = exit %d, %q; want 1 and an error naming both files", conf, keys, code, stderr)
	}
}
