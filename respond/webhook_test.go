package respond

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/accessledger/accessledger/event"
)

// senderTestTime is when the test alerts fired.
var senderTestTime = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

// senderTestAlert returns a well-formed alert (it passes Validate).
func senderTestAlert(t testing.TB) *event.Alert {
	t.Helper()
	a := &event.Alert{
		DedupKey: "brute-force-single-account/actor.id=alice/2026-11-27T05:55",
		Time:     senderTestTime,
		Rule: event.AlertRule{ID: "brute-force-single-account", Title: "Brute force against one account",
			Level: event.LevelHigh, Tags: []string{"detection.threat", "attack.credential_access", "attack.t1110"}},
		Group:         []event.GroupValue{{Field: "actor.id", Value: "alice"}, {Field: "source.ip", Value: "203.0.113.7"}},
		Window:        event.Window{Start: senderTestTime.Add(-5 * time.Minute), End: senderTestTime},
		Evidence:      []uint64{3, 5, 8},
		EvidenceCount: 3,
		Summary:       "12 failed logins for alice in 5 minutes",
		Response:      []event.ResponseAction{{Action: "ban", Target: "source.ip", Value: "203.0.113.7", DurationSeconds: 14400}},
	}
	if err := a.Validate(); err != nil {
		t.Fatalf("test alert: %v", err)
	}
	return a
}

// senderTestMessage returns a message of type typ about a (or a digest).
func senderTestMessage(t testing.TB, typ string, a *event.Alert) *Message {
	t.Helper()
	m := &Message{ID: "42", Type: typ, Time: senderTestTime.Add(time.Second), AlertIndex: 42, Alert: a, Count: 1}
	switch typ {
	case TypeAlertAcknowledged:
		m.ID, m.By, m.Note = "42_57", "alice-oncall", "looking into it"
	case TypeAlertResolved:
		m.ID, m.By, m.Note = "42_61", "alice-oncall", "password reset, IP banned"
	case TypeDigest:
		m.ID, m.AlertIndex, m.Alert, m.Count = "digest_99", 0, nil, 0
		m.Digest = &event.Digest{
			Start: senderTestTime.Add(-24 * time.Hour).Truncate(24 * time.Hour), End: senderTestTime.Truncate(24 * time.Hour),
			Events: 1000, Alerts: 7,
			AlertsByRule:  map[string]uint64{"brute-force-single-account": 5, "impossible-travel": 2},
			AlertsByLevel: map[string]uint64{"high": 5, "medium": 2},
			OpenAlerts:    3, Acknowledged: 1, DeliveryFailures: 2, DeadLettered: 0,
		}
	}
	return m
}

// newTestSecret returns a fresh Standard Webhooks secret.
func newTestSecret(t testing.TB) string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}

// newTestWebhookSender returns a webhook sender posting to url.
func newTestWebhookSender(t testing.TB, url, secret string) *webhookSender {
	t.Helper()
	s, err := NewSender(ResponderConfig{Name: "soc", Type: TypeWebhook, URL: url, Secret: secret}, DefaultDelivery(), nil)
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	return s.(*webhookSender)
}

// webhookBody is the payload as a receiver decodes it.
type webhookBody struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      struct {
		AlertID    string          `json:"alert_id"`
		AlertIndex *uint64         `json:"alert_index"`
		Count      int             `json:"count"`
		Alert      json.RawMessage `json:"alert"`
		By         string          `json:"by"`
		Note       string          `json:"note"`
		Digest     *event.Digest   `json:"digest"`
	} `json:"data"`
}

func TestWebhookSignatureVerifiesWithStandardWebhooks(t *testing.T) {
	secret := newTestSecret(t)
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	other, err := standardwebhooks.NewWebhook(newTestSecret(t))
	if err != nil {
		t.Fatal(err)
	}
	type received struct {
		header http.Header
		body   []byte
	}
	got := make(chan received, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// What a Standard Webhooks receiver does: verify, then act.
		if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("reference library: Verify = %v, want nil", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		// The check can fail: another secret, or a changed body, must
		// not verify.
		if err := other.Verify(body, r.Header); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
			t.Errorf("Verify with another secret = %v, want ErrNoMatchingSignature", err)
		}
		tampered := bytes.Replace(body, []byte(`"type":"`), []byte(`"type":"x`), 1)
		if err := wh.Verify(tampered, r.Header); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
			t.Errorf("Verify of a changed body = %v, want ErrNoMatchingSignature", err)
		}
		got <- received{r.Header.Clone(), body}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := newTestWebhookSender(t, srv.URL, secret)

	a := senderTestAlert(t)
	for _, typ := range []string{TypeAlertRaised, TypeAlertAcknowledged, TypeAlertResolved, TypeDigest} {
		t.Run(typ, func(t *testing.T) {
			m := senderTestMessage(t, typ, a)
			before := time.Now().Unix()
			o := s.Send(context.Background(), m)
			if o.Err != nil || o.Status != http.StatusNoContent {
				t.Fatalf("Send = %+v, want delivered with 204", o)
			}
			r := <-got
			if ct, _, _ := mime.ParseMediaType(r.header.Get("Content-Type")); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", r.header.Get("Content-Type"))
			}
			if ua := r.header.Get("User-Agent"); !strings.HasPrefix(ua, "accessledger/") {
				t.Errorf("User-Agent = %q, want accessledger/…", ua)
			}
			if id := r.header.Get("webhook-id"); id != m.ID {
				t.Errorf("webhook-id = %q, want %q", id, m.ID)
			}
			if ts, err := strconv.ParseInt(r.header.Get("webhook-timestamp"), 10, 64); err != nil || ts < before || ts > time.Now().Unix() {
				t.Errorf("webhook-timestamp = %q, want the send time around %d", r.header.Get("webhook-timestamp"), before)
			}
			var p webhookBody
			if err := json.Unmarshal(r.body, &p); err != nil {
				t.Fatalf("payload is not JSON: %v\n%s", err, r.body)
			}
			if p.Type != typ {
				t.Errorf("type = %q, want %q", p.Type, typ)
			}
			if ts, err := time.Parse(time.RFC3339Nano, p.Timestamp); err != nil || !ts.Equal(m.Time) {
				t.Errorf("timestamp = %q, want %v in RFC 3339", p.Timestamp, m.Time)
			}
			if typ == TypeDigest {
				if p.Data.Digest == nil || p.Data.Digest.Events != 1000 || p.Data.Digest.AlertsByRule["impossible-travel"] != 2 {
					t.Errorf("digest = %+v, want the message's", p.Data.Digest)
				}
				if p.Data.Alert != nil || p.Data.AlertIndex != nil {
					t.Errorf("digest payload carries an alert: %s", r.body)
				}
				return
			}
			if p.Data.AlertID != "42" || p.Data.AlertIndex == nil || *p.Data.AlertIndex != 42 || p.Data.Count != 1 {
				t.Errorf("data = %s, want alert_id 42, alert_index 42, count 1", r.body)
			}
			if !bytes.Equal(p.Data.Alert, a.Canonical()) {
				t.Errorf("data.alert = %s, want the canonical alert %s", p.Data.Alert, a.Canonical())
			}
			if p.Data.By != m.By || p.Data.Note != m.Note {
				t.Errorf("by, note = %q, %q, want %q, %q", p.Data.By, p.Data.Note, m.By, m.Note)
			}
			if _, err := event.ParseAlert(p.Data.Alert); err != nil {
				t.Errorf("event.ParseAlert(data.alert) = %v", err)
			}
		})
	}
}

// TestWebhookSpecTestVector reproduces the signature of the Standard
// Webhooks test vector (libraries/go/webhook_test.go, TestWebhookSign)
// byte for byte.
func TestWebhookSpecTestVector(t *testing.T) {
	const (
		secret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		msgID   = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		ts      = "1614265330"
		payload = `{"test": 2432232314}`
		want    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	key, err := decodeWebhookSecret(secret)
	if err != nil {
		t.Fatalf("decodeWebhookSecret(%q) = %v", secret, err)
	}
	if got := webhookSignature(key, msgID, ts, []byte(payload)); got != want {
		t.Errorf("webhookSignature(test vector) = %s, want %s", got, want)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := wh.Sign(msgID, time.Unix(1614265330, 0), []byte(payload))
	if err != nil || ref != want {
		t.Errorf("reference Sign = %s, %v, want %s", ref, err, want)
	}
}

func TestWebhookOutcomes(t *testing.T) {
	now := time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)
	redirected := new(atomic.Int32)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
	}))
	defer elsewhere.Close()
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		status     int
		ok         bool
		gone       bool
		retryAfter time.Duration
		errHas     string
	}{
		{name: "OK", handler: func(w http.ResponseWriter, r *http.Request) {}, status: 200, ok: true},
		{name: "Accepted", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(202) }, status: 202, ok: true},
		{name: "Gone", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(410) }, status: 410, gone: true, errHas: "410"},
		{name: "TooManyRetryAfterSeconds", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(429)
		}, status: 429, retryAfter: 7 * time.Second, errHas: "429"},
		{name: "UnavailableRetryAfterDate", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat))
			w.WriteHeader(503)
		}, status: 503, retryAfter: 90 * time.Second, errHas: "503"},
		{name: "TooManyWithoutRetryAfter", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(429) }, status: 429, errHas: "429"},
		{name: "ServerError", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "database\nis down", 500)
		}, status: 500, errHas: "500 Internal Server Error: database is down"},
		{name: "HugeErrorBody", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(502)
			w.Write(bytes.Repeat([]byte("x"), 1<<20))
		}, status: 502, errHas: "502"},
		{name: "RedirectNotFollowed", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
		}, status: 307, errHas: "307"},
	}
	secret := newTestSecret(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			s := newTestWebhookSender(t, srv.URL, secret)
			s.target.now = func() time.Time { return now }
			o := s.Send(context.Background(), senderTestMessage(t, TypeAlertRaised, senderTestAlert(t)))
			if o.Status != tt.status || (o.Err == nil) != tt.ok || o.Gone != tt.gone || o.RetryAfter != tt.retryAfter || o.Permanent {
				t.Fatalf("Send = %+v, want status %d, delivered %v, gone %v, retry after %v, not permanent",
					o, tt.status, tt.ok, tt.gone, tt.retryAfter)
			}
			if o.Err != nil {
				msg := o.Err.Error()
				if !strings.Contains(msg, tt.errHas) {
					t.Errorf("Send error = %q, want it to contain %q", msg, tt.errHas)
				}
				if len(msg) > 400 {
					t.Errorf("Send error is %d bytes long, want a short one", len(msg))
				}
				if strings.Contains(msg, strings.TrimPrefix(secret, "whsec_")) {
					t.Errorf("Send error %q contains the secret", msg)
				}
			}
		})
	}
	if n := redirected.Load(); n != 0 {
		t.Errorf("the redirect was followed %d times, want 0", n)
	}
}

func TestWebhookConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	secret := newTestSecret(t)
	s := newTestWebhookSender(t, "http://"+addr+"/hook?token=x", secret)
	o := s.Send(context.Background(), senderTestMessage(t, TypeAlertRaised, senderTestAlert(t)))
	if o.Err == nil || o.Status != 0 || o.Gone || o.Permanent {
		t.Fatalf("Send to a closed port = %+v, want a retryable error with status 0", o)
	}
	if msg := o.Err.Error(); !strings.Contains(msg, addr) || strings.Contains(msg, "token") || strings.Contains(msg, secret[6:]) {
		t.Errorf("Send error = %q, want the host and neither the URL's path nor the secret", msg)
	}
}

// TestWebhookTimeout checks that the responder's own timeout (100ms)
// bounds an attempt, not the delivery's (1 min). The bound on how long
// Send takes is generous for a loaded machine and still well short of
// the minute a Send that fell back to the delivery's timeout would take.
func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	s, err := NewSender(ResponderConfig{Name: "soc", Type: TypeWebhook, URL: srv.URL, Secret: newTestSecret(t), Timeout: 100 * time.Millisecond},
		DeliveryConfig{Timeout: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	o := s.Send(context.Background(), senderTestMessage(t, TypeAlertRaised, senderTestAlert(t)))
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Send took %v, want about the 100ms timeout (not the delivery's minute)", d)
	}
	if o.Err == nil || o.Status != 0 || !strings.Contains(o.Err.Error(), "timed out after 100ms") {
		t.Errorf("Send to a stalled receiver = %+v, want \"timed out after 100ms\" with status 0", o)
	}
}

func TestWebhookBadMessageIsPermanent(t *testing.T) {
	hits := new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	s := newTestWebhookSender(t, srv.URL, newTestSecret(t))
	for _, m := range []*Message{
		{ID: "", Type: TypeAlertRaised, Alert: senderTestAlert(t)},
		{ID: "1", Type: TypeAlertRaised},
		{ID: "1", Type: TypeDigest},
		{ID: "1", Type: "alert.exploded", Alert: senderTestAlert(t)},
	} {
		if o := s.Send(context.Background(), m); o.Err == nil || !o.Permanent {
			t.Errorf("Send(%+v) = %+v, want a permanent error", m, o)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("%d malformed messages were posted, want 0", hits.Load())
	}
}

func TestSenderRetryAfterDelay(t *testing.T) {
	now := time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{now.Add(time.Hour).Format(http.TimeFormat), time.Hour},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(30 * time.Second).Format(time.RFC850), 30 * time.Second},
	}
	for _, tt := range tests {
		if got := retryAfterDelay(tt.in, now); got != tt.want {
			t.Errorf("retryAfterDelay(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSenderEncodePayloadShape(t *testing.T) {
	a := senderTestAlert(t)
	m := senderTestMessage(t, TypeAlertRaised, a)
	b, err := EncodePayload(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"alert.raised","timestamp":"2026-11-27T06:00:01.000000000Z","data":{"alert_id":"42","alert_index":42,"count":1,"alert":` +
		string(a.Canonical()) + `}}`
	if string(b) != want {
		t.Errorf("EncodePayload(raised) =\n%s\nwant\n%s", b, want)
	}
	m.Count = 0 // a message from before counting: one alert
	if b2, _ := EncodePayload(m); !bytes.Equal(b2, b) {
		t.Errorf("EncodePayload with count 0 = %s, want count 1", b2)
	}
}

func TestNewSenderValidates(t *testing.T) {
	secret := newTestSecret(t)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("  "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badSecretFile := filepath.Join(dir, "bad")
	if err := os.WriteFile(badSecretFile, []byte("whsec_c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b64 := func(n int) string { return "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, n)) }
	key32 := strings.Repeat("0123456789abcdef", 2)
	tests := []struct {
		name  string
		cfg   ResponderConfig
		field string
		has   string
	}{
		{"NoName", ResponderConfig{Type: TypeSlack, URL: "https://hooks.slack.com/x"}, "name", `responder "": a name is required`},
		{"LongName", ResponderConfig{Name: strings.Repeat("L", 200), Type: TypeSlack, URL: "https://hooks.slack.com/x"}, "name", "want 1 to 64 characters"},
		{"NameWithSlash", ResponderConfig{Name: "soc/hook", Type: TypeSlack, URL: "https://hooks.slack.com/x"}, "name", "want 1 to 64 characters"},
		{"NameWithNUL", ResponderConfig{Name: "soc\x00", Type: TypeSlack, URL: "https://hooks.slack.com/x"}, "name", "want 1 to 64 characters"},
		{"UnknownLevel", ResponderConfig{Name: "chat", Type: TypeSlack, URL: "https://hooks.slack.com/x", Filter: Filter{Levels: []string{"hgih"}}}, "filter.levels", `unknown level "hgih"`},
		{"NegativeThrottle", ResponderConfig{Name: "chat", Type: TypeSlack, URL: "https://hooks.slack.com/x", Throttle: -10 * time.Minute}, "throttle", "must not be negative"},
		{"UnknownType", ResponderConfig{Name: "soc", Type: "email"}, "type", `responder "soc": unknown type "email" (valid types: webhook, slack, pagerduty, exec)`},
		{"WebhookNoURL", ResponderConfig{Name: "soc", Type: TypeWebhook, Secret: secret}, "url", `responder "soc": type webhook needs a url`},
		{"WebhookFTP", ResponderConfig{Name: "soc", Type: TypeWebhook, URL: "ftp://example.com/x", Secret: secret}, "url", `url must be http or https, not "ftp"`},
		{"WebhookNoHost", ResponderConfig{Name: "soc", Type: TypeWebhook, URL: "https:///x", Secret: secret}, "url", "url has no host"},
		{"WebhookNoSecret", ResponderConfig{Name: "soc", Type: TypeWebhook, URL: "https://example.com"}, "secret", "type webhook needs a secret or secret_file"},
		{"WebhookSecretNoPrefix", ResponderConfig{Name: "soc", Type: TypeWebhook, URL: "https://example.com", Secret: secret[6:]}, "secret", `secret must start with "whsec_"`},
		{"WebhookSecretNotBase64", ResponderConfig{Name: "soc", Type: TypeWebhook, URL: "https://example.com", Secret: "whsec_not*base64!"}, "secret", "not standard base64"},
		{"WebhookSecretShort", ResponderConfig{Name: "soc", Type: TypeWebhook, URL: "https://example.com", Secret: b64(23)}, "secret", "24 to 64 bytes, not 23"},
		{"WebhookSecretLong", ResponderConfig{Name: "soc", Type: TypeWebhook, URL: "https://example.com", Secret: b64(65)}, "secret", "24 to 64 bytes, not 65"},
		{"WebhookSecretAndFile", ResponderConfig{Name: "soc", Type: TypeWebhook, URL: "https://example.com", Secret: secret, SecretFile: secretFile}, "secret", "not both"},
		{"WebhookSecretFileMissing", ResponderConfig{Name: "soc", Type: TypeWebhook, URL: "https://example.com", SecretFile: filepath.Join(dir, "nope")}, "secret_file", "reading secret_file"},
		{"WebhookSecretFileBad", ResponderConfig{Name: "soc", Type: TypeWebhook, URL: "https://example.com", SecretFile: badSecretFile}, "secret_file", "not 5"},
		{"NegativeTimeout", ResponderConfig{Name: "soc", Type: TypeWebhook, URL: "https://example.com", Secret: secret, Timeout: -time.Second}, "timeout", "must not be negative"},
		{"SlackNoURL", ResponderConfig{Name: "chat", Type: TypeSlack}, "url", `responder "chat": type slack needs a url`},
		{"SlackWithSecret", ResponderConfig{Name: "chat", Type: TypeSlack, URL: "https://hooks.slack.com/x", Secret: secret}, "secret", "type slack takes no secret"},
		{"PagerDutyNoKey", ResponderConfig{Name: "pd", Type: TypePagerDuty}, "routing_key", `responder "pd": type pagerduty needs a routing_key`},
		{"PagerDutyShortKey", ResponderConfig{Name: "pd", Type: TypePagerDuty, RoutingKey: "abc"}, "routing_key", "32 characters, not 3"},
		{"PagerDutyBadURL", ResponderConfig{Name: "pd", Type: TypePagerDuty, RoutingKey: key32, URL: "events.pagerduty.com"}, "url", "http or https"},
		{"ExecNoCommand", ResponderConfig{Name: "ban", Type: TypeExec}, "command", `responder "ban": type exec needs a command`},
		{"ExecEmptyProgram", ResponderConfig{Name: "ban", Type: TypeExec, Command: []string{""}}, "command", "needs a command"},
		{"ExecMissingProgram", ResponderConfig{Name: "ban", Type: TypeExec, Command: []string{"accessledger-no-such-program"}}, "command", `looking up the command's program: exec: "accessledger-no-such-program": executable file not found`},
		{"ExecWithURL", ResponderConfig{Name: "ban", Type: TypeExec, Command: []string{"true"}, URL: "https://example.com"}, "url", "takes no url"},
		{"WebhookWithCommand", ResponderConfig{Name: "soc", Type: TypeWebhook, URL: "https://example.com", Secret: secret, Command: []string{"true"}}, "command", "takes no command"},
		{"TimeoutTooShort", ResponderConfig{Name: "soc", Type: TypeWebhook, URL: "https://example.com", Secret: secret, Timeout: time.Nanosecond}, "timeout", "at least 100ms"},
		{"PagerDutyDigest", ResponderConfig{Name: "pd", Type: TypePagerDuty, RoutingKey: key32, Digest: true}, "digest", "takes no digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSender(tt.cfg, DefaultDelivery(), nil)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field || !strings.Contains(err.Error(), tt.has) {
				t.Fatalf("NewSender(%s) = %v, want a *ConfigError on %s containing %q", tt.name, err, tt.field, tt.has)
			}
			if verr := ValidateResponder(tt.cfg); verr == nil || verr.Error() != err.Error() {
				t.Errorf("ValidateResponder = %v, want %v", verr, err)
			}
			if strings.Contains(err.Error(), secret[6:]) {
				t.Errorf("error %q quotes the secret", err)
			}
		})
	}

	valid := []ResponderConfig{
		{Name: "soc", Type: TypeWebhook, URL: "https://example.com/hook", Secret: secret},
		{Name: "soc-file", Type: TypeWebhook, URL: "http://127.0.0.1:9/hook", SecretFile: secretFile},
		{Name: "soc-min", Type: TypeWebhook, URL: "https://example.com/hook", Secret: b64(24)},
		{Name: "soc-max", Type: TypeWebhook, URL: "https://example.com/hook", Secret: b64(64)},
		{Name: "chat", Type: TypeSlack, URL: "https://hooks.slack.com/services/T0/B0/x"},
		{Name: "pd", Type: TypePagerDuty, RoutingKey: key32},
		{Name: "ban", Type: TypeExec, Command: []string{"sh", "-c", "cat"}},
	}
	for _, cfg := range valid {
		if err := ValidateResponder(cfg); err != nil {
			t.Errorf("ValidateResponder(%s) = %v, want nil", cfg.Name, err)
		}
	}
}

// TestWebhookSecretRotation: while a secret is rotated out, each message
// carries one signature per secret, space-delimited in one header, as
// Standard Webhooks specifies: a receiver holding the new secret and one
// still holding the old both verify it with the reference library, and
// one holding neither does not. previous_secrets, or a secret_file's
// lines after the first, give the secrets being rotated out.
func TestWebhookSecretRotation(t *testing.T) {
	current, previous, unrelated := newTestSecret(t), newTestSecret(t), newTestSecret(t)
	verifiers := map[string]string{"current": current, "previous": previous, "unrelated": unrelated}
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secrets")
	if err := os.WriteFile(secretFile, []byte(current+"\n"+previous+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  ResponderConfig
	}{
		{"previous_secrets", ResponderConfig{Secret: current, PreviousSecrets: []string{previous}}},
		{"secret_file lines", ResponderConfig{SecretFile: secretFile}},
	} {
		got := make(chan *http.Request, 1)
		bodies := make(chan []byte, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got <- r
			bodies <- b
			w.WriteHeader(http.StatusNoContent)
		}))
		cfg := tc.cfg
		cfg.Name, cfg.Type, cfg.URL = "soc", TypeWebhook, srv.URL
		s, err := NewSender(cfg, DefaultDelivery(), nil)
		if err != nil {
			t.Fatalf("%s: NewSender = %v", tc.name, err)
		}
		if o := s.Send(context.Background(), senderTestMessage(t, TypeAlertRaised, senderTestAlert(t))); o.Err != nil {
			t.Fatalf("%s: Send = %+v", tc.name, o)
		}
		r, body := <-got, <-bodies
		srv.Close()
		if sigs := strings.Fields(r.Header.Get(headerWebhookSignature)); len(sigs) != 2 {
			t.Errorf("%s: webhook-signature %q, want two signatures", tc.name, r.Header.Get(headerWebhookSignature))
		}
		for who, secret := range verifiers {
			wh, err := standardwebhooks.NewWebhook(secret)
			if err != nil {
				t.Fatal(err)
			}
			err = wh.Verify(body, r.Header)
			if ok := err == nil; ok != (who != "unrelated") {
				t.Errorf("%s: a receiver holding the %s secret: Verify = %v", tc.name, who, err)
			}
		}
	}
	for _, tc := range []struct {
		cfg  ResponderConfig
		want string
	}{
		{ResponderConfig{Secret: current, PreviousSecrets: []string{"whsec_%%%"}}, "previous_secrets[0]"},
		{ResponderConfig{Secret: current, PreviousSecrets: []string{previous, previous, previous, previous}}, "at most 4"},
		{ResponderConfig{SecretFile: secretFile, PreviousSecrets: []string{previous}}, "lines after the current one"},
		{ResponderConfig{Type: TypeSlack, URL: "https://hooks.slack.com/x", PreviousSecrets: []string{previous}}, "takes no secret"},
	} {
		cfg := tc.cfg
		cfg.Name = "soc"
		if cfg.Type == "" {
			cfg.Type, cfg.URL = TypeWebhook, "https://example.com"
		}
		if err := ValidateResponder(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidateResponder(%+v) = %v, want an error with %q", cfg.PreviousSecrets, err, tc.want)
		}
	}
}

func TestNewSenderDefaults(t *testing.T) {
	secret := newTestSecret(t)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := NewSender(ResponderConfig{Name: "soc", Type: TypeWebhook, URL: "https://example.com", SecretFile: secretFile},
		DeliveryConfig{Timeout: 3 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws := s.(*webhookSender)
	key, _ := decodeWebhookSecret(secret)
	if len(ws.keys) != 1 || !bytes.Equal(ws.keys[0], key) {
		t.Errorf("key from secret_file differs from the secret's")
	}
	if ws.target.timeout != 3*time.Second {
		t.Errorf("timeout = %v, want delivery.timeout 3s", ws.target.timeout)
	}
	if ws.target.client.CheckRedirect == nil {
		t.Errorf("the default client follows redirects")
	}

	s, err = NewSender(ResponderConfig{Name: "pd", Type: TypePagerDuty, RoutingKey: strings.Repeat("k", 32), Timeout: time.Second},
		DeliveryConfig{Timeout: 3 * time.Second}, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	ps := s.(*pagerDutySender)
	if ps.target.url != DefaultPagerDutyURL || ps.target.timeout != time.Second || ps.target.client != http.DefaultClient {
		t.Errorf("pagerduty sender = %s, %v, want %s, 1s and the given client", ps.target.url, ps.target.timeout, DefaultPagerDutyURL)
	}
}
