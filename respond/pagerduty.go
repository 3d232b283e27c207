package respond

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-json-experiment/json"

	"github.com/accessledger/accessledger/event"
)

// PagerDuty Events API v2 limits.
const (
	pagerDutyDedupMax   = 255
	pagerDutySummaryMax = 1024
	pagerDutySource     = "accessledger"
	// pagerDutyTimeFormat is RFC 3339 in UTC with milliseconds, the
	// precision of PagerDuty's own examples.
	pagerDutyTimeFormat = "2006-01-02T15:04:05.000Z07:00"
)

// pagerDutySender sends messages to the PagerDuty Events API v2: an
// alert.raised triggers an incident, alert.acknowledged acknowledges it
// and alert.resolved resolves it, all three under the alert's dedup key
// (see PagerDutyDedupKey). Digests are not sent. It is safe for
// concurrent use.
type pagerDutySender struct {
	target     httpTarget
	routingKey string
}

// pagerDutyEvent is an Events API v2 event.
type pagerDutyEvent struct {
	RoutingKey  string            `json:"routing_key"`
	EventAction string            `json:"event_action"`
	DedupKey    string            `json:"dedup_key"`
	Payload     *pagerDutyPayload `json:"payload,omitzero"`
	Client      string            `json:"client,omitzero"`
}

type pagerDutyPayload struct {
	Summary       string                 `json:"summary"`
	Source        string                 `json:"source"`
	Severity      string                 `json:"severity"`
	Timestamp     string                 `json:"timestamp,omitzero"`
	Component     string                 `json:"component,omitzero"`
	Group         string                 `json:"group,omitzero"`
	Class         string                 `json:"class,omitzero"`
	CustomDetails pagerDutyCustomDetails `json:"custom_details"`
}

type pagerDutyCustomDetails struct {
	AlertID       string            `json:"alert_id"`
	Rule          string            `json:"rule"`
	RuleTitle     string            `json:"rule_title"`
	Level         string            `json:"level"`
	Group         map[string]string `json:"group,omitzero"`
	EvidenceCount int               `json:"evidence_count"`
	Count         int               `json:"count"`
	WindowStart   string            `json:"window_start"`
	WindowEnd     string            `json:"window_end"`
	Tags          []string          `json:"tags,omitzero"`
	DedupKey      string            `json:"alert_dedup_key"`
}

// pagerDutyAnswer is what the Events API answers.
type pagerDutyAnswer struct {
	Status  string   `json:"status"`
	Message string   `json:"message"`
	Errors  []string `json:"errors"`
}

// PagerDutyDedupKey returns the PagerDuty dedup key of an alert: its
// dedup key, or, when that is longer than the 255 characters PagerDuty
// accepts, the hex SHA-256 of it (64 characters). The trigger, the
// acknowledgement and the resolution of an alert carry the same key.
func PagerDutyDedupKey(a *event.Alert) string {
	if len(a.DedupKey) <= pagerDutyDedupMax {
		return a.DedupKey
	}
	sum := sha256.Sum256([]byte(a.DedupKey))
	return hex.EncodeToString(sum[:])
}

// pagerDutySeverity maps an alert level to a PagerDuty severity.
func pagerDutySeverity(level string) string {
	switch level {
	case event.LevelCritical:
		return "critical"
	case event.LevelHigh:
		return "error"
	case event.LevelMedium:
		return "warning"
	default:
		return "info"
	}
}

// Send sends m once. A digest is not sent: Send returns a delivered
// Outcome without a request. PagerDuty answers 202; 400 (an invalid
// event) is permanent; 429 is retried after its Retry-After, if any;
// 5xx, anything else, or no answer, is a failure to retry.
func (s *pagerDutySender) Send(ctx context.Context, m *Message) Outcome {
	if m.Type == TypeDigest {
		return Outcome{}
	}
	ev, err := s.event(m)
	if err != nil {
		return Outcome{Err: err, Permanent: true}
	}
	body, err := json.Marshal(ev, json.Deterministic(true))
	if err != nil {
		return Outcome{Err: fmt.Errorf("message %s: encoding the PagerDuty event: %w", m.ID, err), Permanent: true}
	}
	now := s.target.now()
	a, err := s.target.post(ctx, body, nil)
	if err != nil {
		return Outcome{Err: err}
	}
	o := a.outcome(now)
	if o.Err == nil {
		return o
	}
	if a.status == http.StatusBadRequest {
		o.Permanent = true
	}
	// PagerDuty explains a refusal in its JSON answer: prefer that to
	// the raw body.
	var ans pagerDutyAnswer
	if json.Unmarshal(a.body, &ans) == nil && (ans.Message != "" || len(ans.Errors) > 0) {
		msg := fmt.Sprintf("answered %d %s: %s", a.status, http.StatusText(a.status), cmp.Or(ans.Message, ans.Status))
		if len(ans.Errors) > 0 {
			msg += " (" + strings.Join(ans.Errors, "; ") + ")"
		}
		o.Err = errors.New(answerSnippet([]byte(msg)))
	}
	return o
}

// event builds the Events API event of m.
func (s *pagerDutySender) event(m *Message) (*pagerDutyEvent, error) {
	if err := checkMessage(m); err != nil {
		return nil, err
	}
	a := m.Alert
	ev := &pagerDutyEvent{RoutingKey: s.routingKey, DedupKey: PagerDutyDedupKey(a)}
	switch m.Type {
	case TypeAlertAcknowledged:
		ev.EventAction = "acknowledge"
		return ev, nil
	case TypeAlertResolved:
		ev.EventAction = "resolve"
		return ev, nil
	}
	ev.EventAction = "trigger"
	ev.Client = pagerDutySource
	summary := fmt.Sprintf("[%s] %s: %s", a.Rule.Level, a.Rule.Title, cmp.Or(a.Summary, a.Rule.Title))
	if m.Count > 1 {
		summary = fmt.Sprintf("%s (%d alerts)", summary, m.Count)
	}
	class := a.Rule.ID
	for _, t := range a.Rule.Tags {
		if strings.HasPrefix(t, "attack.") {
			class = t
			break
		}
	}
	details := pagerDutyCustomDetails{
		AlertID:       AlertID(m.AlertIndex),
		Rule:          a.Rule.ID,
		RuleTitle:     a.Rule.Title,
		Level:         a.Rule.Level,
		EvidenceCount: a.EvidenceCount,
		Count:         max(m.Count, 1),
		WindowStart:   a.Window.Start.UTC().Format(pagerDutyTimeFormat),
		WindowEnd:     a.Window.End.UTC().Format(pagerDutyTimeFormat),
		Tags:          a.Rule.Tags,
		DedupKey:      a.DedupKey,
	}
	var group string
	if len(a.Group) > 0 {
		group = a.Group[0].Value
		details.Group = make(map[string]string, len(a.Group))
		for _, g := range a.Group {
			details.Group[g.Field] = g.Value
		}
	}
	ev.Payload = &pagerDutyPayload{
		Summary:       pagerDutyClip(oneLineText(summary), pagerDutySummaryMax),
		Source:        pagerDutySource,
		Severity:      pagerDutySeverity(a.Rule.Level),
		Timestamp:     a.Time.UTC().Format(pagerDutyTimeFormat),
		Component:     a.Rule.ID,
		Group:         group,
		Class:         class,
		CustomDetails: details,
	}
	return ev, nil
}

// pagerDutyClip cuts s to at most max characters (UTF-16 code units) at a
// rune boundary, ending it with "…" when cut.
func pagerDutyClip(s string, max int) string {
	if lenUTF16(s) <= max {
		return s
	}
	return clipUTF16(s, max-1) + "…"
}
