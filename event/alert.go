package event

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/go-json-experiment/json"
)

// Alert levels, from the Sigma rules specification.
const (
	LevelInformational = "informational"
	LevelLow           = "low"
	LevelMedium        = "medium"
	LevelHigh          = "high"
	LevelCritical      = "critical"
)

// Levels are the alert levels, lowest first.
var Levels = []string{LevelInformational, LevelLow, LevelMedium, LevelHigh, LevelCritical}

// Limits on an alert, which keep its leaf far below MaxEntrySize.
const (
	// MaxEvidence is the most evidence indexes an alert lists; an alert
	// raised on more events lists the first ones and counts them all in
	// EvidenceCount.
	MaxEvidence = 256
	// MaxAlertText bounds the summary and the title.
	MaxAlertText = 1024
	// MaxAlertTags bounds the rule's tags and MaxAlertGroup the group-by
	// values carried.
	MaxAlertTags  = 64
	MaxAlertGroup = 16
)

// Alert is what a detection rule raised, recorded in the log as a leaf of
// kind "alert" so that an auditor can prove which alert was raised on which
// events:
//
//	{"kind":"alert","received_at":"...","body":{"dedup_key":"...","rule":{...},...}}
//
// Alerts are built by the detectors (package detect); ParseAlert reads one
// back. Canonical encodes it.
type Alert struct {
	// DedupKey identifies the alert: the same rule, group and window give
	// the same key, so a detector that replays the log after a restart
	// never records an alert twice.
	DedupKey string `json:"dedup_key"`
	// Time is the event time at which the rule fired: the time of the
	// event that completed the detection.
	Time time.Time `json:"time"`
	Rule AlertRule `json:"rule"`
	// Group holds the values of the rule's group-by fields, in the
	// rule's order; empty for a rule without grouping.
	Group []GroupValue `json:"group,omitempty"`
	// Window is the span of event time the detection covers.
	Window Window `json:"window"`
	// Evidence lists the log indexes of the events the alert was raised
	// on, ascending, at most MaxEvidence of them; EvidenceCount counts
	// them all.
	Evidence      []uint64 `json:"evidence"`
	EvidenceCount int      `json:"evidence_count"`
	// Summary says in one sentence what was detected.
	Summary string `json:"summary"`
	// Response lists what responders may do about the alert.
	Response []ResponseAction `json:"response,omitempty"`
}

// AlertRule names the rule that raised an alert.
type AlertRule struct {
	ID    string   `json:"id"`
	Title string   `json:"title"`
	Level string   `json:"level"`
	Tags  []string `json:"tags,omitempty"`
}

// GroupValue is one group-by field of an alert and its value.
type GroupValue struct {
	Field string `json:"field"`
	Value string `json:"value"`
}

// Window is a span of event time, both ends included.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// ResponseAction is one thing a responder may do about an alert, for
// instance ban the source IP for four hours.
type ResponseAction struct {
	// Action is what to do (ban, notify, disable_account,
	// revoke_sessions).
	Action string `json:"action"`
	// Target is the event field whose value the action applies to
	// (source.ip, actor.id), and Value that value.
	Target string `json:"target,omitempty"`
	Value  string `json:"value,omitempty"`
	// DurationSeconds is how long the action lasts; 0 for no limit.
	DurationSeconds int64 `json:"duration_seconds,omitzero"`
}

// Canonical returns the canonical JSON encoding of a: fields in a fixed
// order, empty optional fields omitted, times in TimeFormat. Two alerts
// that mean the same thing encode to the same bytes.
func (a *Alert) Canonical() []byte {
	b := make([]byte, 0, 512+len(a.Evidence)*8)
	b = append(b, '{')
	b = appendKey(b, "dedup_key", true)
	b = appendString(b, a.DedupKey)
	b = appendKey(b, "time", false)
	b = appendTime(b, a.Time)

	b = appendKey(b, "rule", false)
	b = append(b, '{')
	b = appendKey(b, "id", true)
	b = appendString(b, a.Rule.ID)
	b = appendKey(b, "title", false)
	b = appendString(b, a.Rule.Title)
	b = appendKey(b, "level", false)
	b = appendString(b, a.Rule.Level)
	if len(a.Rule.Tags) > 0 {
		b = appendKey(b, "tags", false)
		b = append(b, '[')
		for i, t := range a.Rule.Tags {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, t)
		}
		b = append(b, ']')
	}
	b = append(b, '}')

	if len(a.Group) > 0 {
		b = appendKey(b, "group", false)
		b = append(b, '[')
		for i, g := range a.Group {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			b = appendKey(b, "field", true)
			b = appendString(b, g.Field)
			b = appendKey(b, "value", false)
			b = appendString(b, g.Value)
			b = append(b, '}')
		}
		b = append(b, ']')
	}

	b = appendKey(b, "window", false)
	b = append(b, '{')
	b = appendKey(b, "start", true)
	b = appendTime(b, a.Window.Start)
	b = appendKey(b, "end", false)
	b = appendTime(b, a.Window.End)
	b = append(b, '}')

	b = appendKey(b, "evidence", false)
	b = append(b, '[')
	for i, e := range a.Evidence {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, e, 10)
	}
	b = append(b, ']')
	b = appendKey(b, "evidence_count", false)
	b = strconv.AppendInt(b, int64(a.EvidenceCount), 10)
	b = appendKey(b, "summary", false)
	b = appendString(b, a.Summary)

	if len(a.Response) > 0 {
		b = appendKey(b, "response", false)
		b = append(b, '[')
		for i, r := range a.Response {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			b = appendKey(b, "action", true)
			b = appendString(b, r.Action)
			b = appendOptString(b, "target", r.Target)
			b = appendOptString(b, "value", r.Value)
			if r.DurationSeconds != 0 {
				b = appendKey(b, "duration_seconds", false)
				b = strconv.AppendInt(b, r.DurationSeconds, 10)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// MarshalJSON encodes a canonically.
func (a *Alert) MarshalJSON() ([]byte, error) { return a.Canonical(), nil }

// Validate reports the first reason a is not a well-formed alert, naming
// the field; nil if it is.
func (a *Alert) Validate() error {
	bad := func(field, reason string) error {
		return &ValidationError{Fields: []FieldError{{Field: field, Reason: reason}}}
	}
	switch {
	case a.DedupKey == "" || len(a.DedupKey) > 512:
		return bad("dedup_key", "must be 1 to 512 bytes")
	case a.Time.IsZero():
		return bad("time", "required")
	case a.Rule.ID == "" || len(a.Rule.ID) > MaxIDLen:
		return bad("rule.id", fmt.Sprintf("must be 1 to %d bytes", MaxIDLen))
	case a.Rule.Title == "" || len(a.Rule.Title) > MaxAlertText:
		return bad("rule.title", fmt.Sprintf("must be 1 to %d bytes", MaxAlertText))
	case !slices.Contains(Levels, a.Rule.Level):
		return bad("rule.level", "must be one of informational, low, medium, high, critical")
	case len(a.Rule.Tags) > MaxAlertTags:
		return bad("rule.tags", fmt.Sprintf("more than %d tags", MaxAlertTags))
	case len(a.Group) > MaxAlertGroup:
		return bad("group", fmt.Sprintf("more than %d fields", MaxAlertGroup))
	case a.Window.Start.IsZero() || a.Window.End.Before(a.Window.Start):
		return bad("window", "start is required and must not be after end")
	case len(a.Evidence) > MaxEvidence:
		return bad("evidence", fmt.Sprintf("more than %d indexes", MaxEvidence))
	case a.EvidenceCount < len(a.Evidence):
		return bad("evidence_count", "below the number of evidence indexes")
	case len(a.Summary) > MaxAlertText:
		return bad("summary", fmt.Sprintf("longer than %d bytes", MaxAlertText))
	}
	for i := 1; i < len(a.Evidence); i++ {
		if a.Evidence[i] <= a.Evidence[i-1] {
			return bad("evidence", "indexes must be ascending and distinct")
		}
	}
	for _, g := range a.Group {
		if g.Field == "" {
			return bad("group", "a field name is required")
		}
	}
	for _, r := range a.Response {
		if r.Action == "" || r.DurationSeconds < 0 {
			return bad("response", "an action is required and a duration must not be negative")
		}
	}
	return nil
}

// ParseAlert decodes the body of an alert leaf strictly (unknown fields,
// duplicate names and wrongly-typed values are rejected) and validates it.
func ParseAlert(data []byte) (*Alert, error) {
	var a Alert
	if err := json.Unmarshal(data, &a, strict); err != nil {
		return nil, fmt.Errorf("decoding alert: %w", err)
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	a.Time = a.Time.UTC()
	a.Window.Start, a.Window.End = a.Window.Start.UTC(), a.Window.End.UTC()
	if a.Evidence == nil {
		a.Evidence = []uint64{}
	}
	return &a, nil
}

// EncodeAlertLeaf validates a and returns its canonical leaf of kind
// alert.
func EncodeAlertLeaf(a *Alert, receivedAt time.Time) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return EncodeLeaf(KindAlert, receivedAt, a.Canonical())
}

// DecodeAlertLeaf parses a leaf of kind alert and its body.
func DecodeAlertLeaf(data []byte) (*Leaf, *Alert, error) {
	l, err := DecodeLeaf(data)
	if err != nil {
		return nil, nil, err
	}
	if l.Kind != KindAlert {
		return nil, nil, fmt.Errorf("decoding alert leaf: kind %q is not %q", l.Kind, KindAlert)
	}
	a, err := ParseAlert(bytes.TrimSpace(l.Body))
	if err != nil {
		return nil, nil, err
	}
	return l, a, nil
}
