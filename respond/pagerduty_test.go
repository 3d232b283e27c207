package respond

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/accessledger/accessledger/event"
)

// testRoutingKey is a well-formed (32 character) integration key.
const testRoutingKey = "R0UT1NGKEY0123456789abcdefABCDEF"

// pdEvent is an Events API v2 event as the fake decodes it.
type pdEvent struct {
	RoutingKey  string `json:"routing_key"`
	EventAction string `json:"event_action"`
	DedupKey    string `json:"dedup_key"`
	Client      string `json:"client"`
	Payload     *struct {
		Summary       string         `json:"summary"`
		Source        string         `json:"source"`
		Severity      string         `json:"severity"`
		Timestamp     string         `json:"timestamp"`
		Component     string         `json:"component"`
		Group         string         `json:"group"`
		Class         string         `json:"class"`
		CustomDetails map[string]any `json:"custom_details"`
	} `json:"payload"`
}

// checkPagerDutyShape reports why body is not an event the Events API v2
// accepts, as its documentation describes it.
func checkPagerDutyShape(r *http.Request, body []byte) []string {
	var errs []string
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		errs = append(errs, "Content-Type must be application/json")
	}
	var ev pdEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return append(errs, "Event object is not valid JSON")
	}
	if ev.RoutingKey == "" {
		errs = append(errs, "'routing_key' is missing or blank")
	} else if len(ev.RoutingKey) != 32 {
		errs = append(errs, "Length of 'routing_key' is incorrect (should be 32 characters)")
	}
	if !slices.Contains([]string{"trigger", "acknowledge", "resolve"}, ev.EventAction) {
		errs = append(errs, "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
	}
	if n := len(ev.DedupKey); n > 255 {
		errs = append(errs, "'dedup_key' is too long (max 255 characters)")
	} else if n == 0 && ev.EventAction != "trigger" {
		errs = append(errs, "'dedup_key' is required to acknowledge or resolve")
	}
	if ev.EventAction != "trigger" {
		return errs
	}
	p := ev.Payload
	if p == nil {
		return append(errs, "'payload' is missing")
	}
	if n := utf8.RuneCountInString(p.Summary); n < 1 || n > 1024 {
		errs = append(errs, "'payload.summary' must be 1 to 1024 characters")
	}
	if p.Source == "" {
		errs = append(errs, "'payload.source' is missing or blank")
	}
	if !slices.Contains([]string{"critical", "error", "warning", "info"}, p.Severity) {
		errs = append(errs, "'payload.severity' is invalid (must be one of: critical, error, warning, info)")
	}
	if p.Timestamp != "" {
		if _, err := time.Parse(time.RFC3339Nano, p.Timestamp); err != nil {
			errs = append(errs, "'payload.timestamp' is not a valid ISO 8601 timestamp")
		}
	}
	return errs
}

// fakePagerDuty is the Events API v2 on loopback: it checks each event
// as PagerDuty does and answers 202 with its documented body, or what the
// test sets.
type fakePagerDuty struct {
	*httptest.Server
	events chan pdEvent
	hits   atomic.Int32
	answer func(w http.ResponseWriter) bool // true if it answered
}

func newFakePagerDuty(t *testing.T) *fakePagerDuty {
	f := &fakePagerDuty{events: make(chan pdEvent, 16), answer: func(http.ResponseWriter) bool { return false }}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		if r.Method != http.MethodPost || r.URL.Path != "/v2/enqueue" {
			http.NotFound(w, r)
			return
		}
		if f.answer(w) {
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		if errs := checkPagerDutyShape(r, body); len(errs) > 0 {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]any{"status": "invalid event", "message": "Event object is invalid", "errors": errs})
			return
		}
		var ev pdEvent
		json.Unmarshal(body, &ev)
		f.events <- ev
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(map[string]string{"status": "success", "message": "Event processed", "dedup_key": ev.DedupKey})
	}))
	t.Cleanup(f.Close)
	return f
}

func newTestPagerDutySender(t *testing.T, f *fakePagerDuty, key string) *pagerDutySender {
	t.Helper()
	s, err := NewSender(ResponderConfig{Name: "pd", Type: TypePagerDuty, RoutingKey: testRoutingKey, URL: f.URL + "/v2/enqueue"}, DefaultDelivery(), nil)
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	ps := s.(*pagerDutySender)
	ps.routingKey = key // a test may send a key PagerDuty refuses
	return ps
}

// pdSend sends m and returns the event the fake accepted.
func pdSend(t *testing.T, f *fakePagerDuty, m *Message) pdEvent {
	t.Helper()
	o := newTestPagerDutySender(t, f, testRoutingKey).Send(context.Background(), m)
	if o.Err != nil || o.Status != http.StatusAccepted {
		t.Fatalf("Send(%s) = %+v, want delivered with 202", m.Type, o)
	}
	return <-f.events
}

func TestPagerDutyLifecycleSharesDedupKey(t *testing.T) {
	f := newFakePagerDuty(t)
	a := senderTestAlert(t)
	trigger := pdSend(t, f, senderTestMessage(t, TypeAlertRaised, a))
	ack := pdSend(t, f, senderTestMessage(t, TypeAlertAcknowledged, a))
	resolve := pdSend(t, f, senderTestMessage(t, TypeAlertResolved, a))

	for _, ev := range []pdEvent{trigger, ack, resolve} {
		if ev.DedupKey != a.DedupKey || ev.RoutingKey != testRoutingKey {
			t.Errorf("%s: dedup_key, routing_key = %q, %q, want %q, the configured key", ev.EventAction, ev.DedupKey, ev.RoutingKey, a.DedupKey)
		}
	}
	if got := []string{trigger.EventAction, ack.EventAction, resolve.EventAction}; !slices.Equal(got, []string{"trigger", "acknowledge", "resolve"}) {
		t.Errorf("event actions = %v, want trigger, acknowledge, resolve", got)
	}
	if ack.Payload != nil || resolve.Payload != nil || ack.Client != "" {
		t.Errorf("acknowledge/resolve carry more than routing_key, event_action and dedup_key: %+v %+v", ack, resolve)
	}
	p := trigger.Payload
	if trigger.Client != "accessledger" {
		t.Errorf("client = %q, want accessledger", trigger.Client)
	}
	want := fmt.Sprintf("%+v", struct{ Summary, Source, Severity, Timestamp, Component, Group, Class string }{
		"[high] Brute force against one account: 12 failed logins for alice in 5 minutes", "accessledger", "error",
		"2026-11-27T06:00:00.000Z", "brute-force-single-account", "alice", "attack.credential_access"})
	got := fmt.Sprintf("%+v", struct{ Summary, Source, Severity, Timestamp, Component, Group, Class string }{
		p.Summary, p.Source, p.Severity, p.Timestamp, p.Component, p.Group, p.Class})
	if got != want {
		t.Errorf("payload =\n%s\nwant\n%s", got, want)
	}
	d := p.CustomDetails
	if d["alert_id"] != "42" || d["rule"] != a.Rule.ID || d["level"] != "high" || d["evidence_count"] != 3.0 || d["count"] != 1.0 {
		t.Errorf("custom_details = %v, want alert_id 42, the rule, level high, evidence_count 3, count 1", d)
	}
	if g, _ := d["group"].(map[string]any); g["source.ip"] != "203.0.113.7" {
		t.Errorf("custom_details.group = %v, want the group values", d["group"])
	}
}

func TestPagerDutySeverityAndClass(t *testing.T) {
	f := newFakePagerDuty(t)
	tests := []struct {
		level, severity string
		tags            []string
		class           string
	}{
		{event.LevelCritical, "critical", []string{"attack.impact"}, "attack.impact"},
		{event.LevelHigh, "error", nil, "brute-force-single-account"},
		{event.LevelMedium, "warning", []string{"detection.emerging_threats"}, "brute-force-single-account"},
		{event.LevelLow, "info", nil, "brute-force-single-account"},
		{event.LevelInformational, "info", nil, "brute-force-single-account"},
	}
	for _, tt := range tests {
		a := senderTestAlert(t)
		a.Rule.Level, a.Rule.Tags, a.Group = tt.level, tt.tags, nil
		ev := pdSend(t, f, senderTestMessage(t, TypeAlertRaised, a))
		if ev.Payload.Severity != tt.severity || ev.Payload.Class != tt.class || ev.Payload.Group != "" {
			t.Errorf("level %s: severity, class, group = %q, %q, %q, want %q, %q, \"\"",
				tt.level, ev.Payload.Severity, ev.Payload.Class, ev.Payload.Group, tt.severity, tt.class)
		}
	}
}

func TestPagerDutyLongDedupKeyAndSummary(t *testing.T) {
	f := newFakePagerDuty(t)
	a := senderTestAlert(t)
	a.DedupKey = strings.Repeat("k", 400)
	a.Summary = strings.Repeat("ü", 512) // 1024 bytes, 512 characters
	a.Rule.Title = strings.Repeat("t", 1000)
	m := senderTestMessage(t, TypeAlertRaised, a)
	m.Count = 3
	trigger := pdSend(t, f, m)
	resolve := pdSend(t, f, senderTestMessage(t, TypeAlertResolved, a))
	sum := sha256.Sum256([]byte(a.DedupKey))
	want := hex.EncodeToString(sum[:])
	if trigger.DedupKey != want || resolve.DedupKey != want || PagerDutyDedupKey(a) != want {
		t.Errorf("dedup keys = %q, %q, want the hex SHA-256 of the alert's key %q", trigger.DedupKey, resolve.DedupKey, want)
	}
	if n := utf8.RuneCountInString(trigger.Payload.Summary); n != 1024 || !strings.HasSuffix(trigger.Payload.Summary, "…") {
		t.Errorf("summary of %d characters, want 1024 ending with …", n)
	}
	if trigger.Payload.CustomDetails["count"] != 3.0 {
		t.Errorf("custom_details.count = %v, want 3", trigger.Payload.CustomDetails["count"])
	}
}

func TestPagerDutyDigestNotSent(t *testing.T) {
	f := newFakePagerDuty(t)
	o := newTestPagerDutySender(t, f, testRoutingKey).Send(context.Background(), senderTestMessage(t, TypeDigest, nil))
	if o != (Outcome{}) || f.hits.Load() != 0 {
		t.Errorf("Send(digest) = %+v after %d requests, want Outcome{} and none", o, f.hits.Load())
	}
}

func TestPagerDutyOutcomes(t *testing.T) {
	tests := []struct {
		name       string
		key        string
		answer     func(w http.ResponseWriter) bool
		status     int
		permanent  bool
		retryAfter time.Duration
		errHas     string
	}{
		{name: "InvalidEvent", key: "short", status: 400, permanent: true,
			errHas: "Event object is invalid (Length of 'routing_key' is incorrect (should be 32 characters))"},
		{name: "ThrottledRetryAfter", key: testRoutingKey, answer: func(w http.ResponseWriter) bool {
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(429)
			return true
		}, status: 429, retryAfter: 5 * time.Second, errHas: "429"},
		{name: "Throttled", key: testRoutingKey, answer: func(w http.ResponseWriter) bool {
			w.WriteHeader(429)
			return true
		}, status: 429, errHas: "429"},
		{name: "ServerError", key: testRoutingKey, answer: func(w http.ResponseWriter) bool {
			w.WriteHeader(502)
			io.WriteString(w, "<html>bad gateway</html>")
			return true
		}, status: 502, errHas: "502 Bad Gateway: <html>bad gateway</html>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakePagerDuty(t)
			if tt.answer != nil {
				f.answer = tt.answer
			}
			o := newTestPagerDutySender(t, f, tt.key).Send(context.Background(), senderTestMessage(t, TypeAlertRaised, senderTestAlert(t)))
			if o.Err == nil || o.Status != tt.status || o.Permanent != tt.permanent || o.RetryAfter != tt.retryAfter || o.Gone {
				t.Fatalf("Send = %+v, want an error with status %d, permanent %v, retry after %v", o, tt.status, tt.permanent, tt.retryAfter)
			}
			if !strings.Contains(o.Err.Error(), tt.errHas) {
				t.Errorf("Send error = %q, want it to contain %q", o.Err, tt.errHas)
			}
			if strings.Contains(o.Err.Error(), tt.key) {
				t.Errorf("Send error = %q quotes the routing key", o.Err)
			}
		})
	}
}
