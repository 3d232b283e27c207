package event

import (
	"bytes"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
)

// Response actions: what a response leaf records.
const (
	// ActionAcknowledged and ActionResolved record a person (an API
	// key) taking an alert in hand and closing it. An alert's status is
	// the latest of these in the log, never a field edited in place.
	ActionAcknowledged = "acknowledged"
	ActionResolved     = "resolved"
	// ActionDelivered and ActionDeadLettered record the final outcome of
	// delivering a notification to a responder.
	ActionDelivered    = "delivered"
	ActionDeadLettered = "dead_lettered"
	// ActionDecisionAdded and ActionDecisionDeleted record an IP decision
	// (a ban served to bouncers) made for an alert, and its removal.
	ActionDecisionAdded   = "decision_added"
	ActionDecisionDeleted = "decision_deleted"
	// ActionDigest records a periodic digest.
	ActionDigest = "digest"
)

// Limits on a response.
const (
	MaxResponseNote   = 4096
	MaxResponseOutput = 4096
)

// Response is something done about an alert, recorded in the log as a
// leaf of kind "response" so that an auditor can replay and prove a
// whole incident:
//
//	{"kind":"response","received_at":"...","body":{"action":"acknowledged","alert":42,...}}
//
// Canonical encodes it; ParseResponse reads one back.
type Response struct {
	// Action is one of the Action constants.
	Action string `json:"action"`
	// Time is when it was done.
	Time time.Time `json:"time"`
	// Alert is the log index of the alert leaf it is about (absent for
	// a digest), and DedupKey that alert's dedup key.
	Alert    *uint64 `json:"alert,omitempty"`
	DedupKey string  `json:"dedup_key,omitempty"`
	// By names who did it: the API key's name for an acknowledgement,
	// the responder for a delivery, "accessledger" for the server.
	By string `json:"by"`
	// Note is the free text given with an acknowledgement or a
	// resolution.
	Note string `json:"note,omitempty"`
	// Responder, Message, Attempts, Status, Error and Output describe a
	// delivery: to which responder, which message (its id), after how
	// many attempts, the last HTTP status (or exit status of a command;
	// absent, as 0, when there was none or the command exited 0), the
	// last error, and a command's captured output.
	//
	// Numbers are omitzero: this package's json omits with omitempty
	// only what encodes as "", null, [] or {}, never a 0.
	Responder string `json:"responder,omitempty"`
	Message   string `json:"message,omitempty"`
	Attempts  int    `json:"attempts,omitzero"`
	Status    int    `json:"status,omitzero"`
	Error     string `json:"error,omitempty"`
	Output    string `json:"output,omitempty"`
	// Decision is the decision added or deleted.
	Decision *Decision `json:"decision,omitempty"`
	// Digest is the digest's content.
	Digest *Digest `json:"digest,omitempty"`
}

// Decision is an IP decision as bouncers receive it (CrowdSec's Local API
// decision fields).
type Decision struct {
	ID       uint64    `json:"id"`
	Origin   string    `json:"origin"`
	Type     string    `json:"type"`  // ban
	Scope    string    `json:"scope"` // Ip or Range
	Value    string    `json:"value"`
	Scenario string    `json:"scenario"`
	Until    time.Time `json:"until"`
}

// Digest summarises a period: what was recorded, what was raised, what is
// still open and what could not be delivered.
type Digest struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Events uint64    `json:"events"`
	Alerts uint64    `json:"alerts"`
	// AlertsByRule counts the period's alerts per rule id, and
	// AlertsByLevel per level.
	AlertsByRule  map[string]uint64 `json:"alerts_by_rule,omitempty"`
	AlertsByLevel map[string]uint64 `json:"alerts_by_level,omitempty"`
	// OpenAlerts counts alerts neither resolved nor acknowledged when the
	// digest was made (the response's Time: a scheduled digest is made
	// just after the period's end); Acknowledged those acknowledged, not
	// resolved.
	OpenAlerts   uint64 `json:"open_alerts"`
	Acknowledged uint64 `json:"acknowledged_alerts"`
	// DeliveryFailures counts failed delivery attempts in the period,
	// and DeadLettered the notifications given up on.
	DeliveryFailures uint64 `json:"delivery_failures"`
	DeadLettered     uint64 `json:"dead_lettered"`
}

var responseActions = []string{ActionAcknowledged, ActionResolved, ActionDelivered, ActionDeadLettered,
	ActionDecisionAdded, ActionDecisionDeleted, ActionDigest}

// canonicalOpts encode responses the same way every time: struct fields
// in declaration order, map keys sorted.
var canonicalOpts = json.Deterministic(true)

// Canonical returns the canonical JSON encoding of r: fields in a fixed
// order, empty optional fields omitted, map keys sorted, times in UTC.
func (r *Response) Canonical() []byte {
	c := *r
	c.Time = c.Time.UTC()
	if c.Decision != nil {
		d := *c.Decision
		d.Until = d.Until.UTC()
		c.Decision = &d
	}
	if c.Digest != nil {
		d := *c.Digest
		d.Start, d.End = d.Start.UTC(), d.End.UTC()
		c.Digest = &d
	}
	b, err := json.Marshal(&c, canonicalOpts)
	if err != nil {
		// Every field is a plain value; Marshal cannot fail on them.
		panic(fmt.Sprintf("event: encoding response: %v", err))
	}
	return b
}

// Validate reports the first reason r is not a well-formed response,
// naming the field; nil if it is.
func (r *Response) Validate() error {
	bad := func(field, reason string) error {
		return &ValidationError{Fields: []FieldError{{Field: field, Reason: reason}}}
	}
	switch {
	case !slices.Contains(responseActions, r.Action):
		return bad("action", "must be one of acknowledged, resolved, delivered, dead_lettered, decision_added, decision_deleted, digest")
	case r.Time.IsZero():
		return bad("time", "required")
	case r.By == "" || len(r.By) > MaxIDLen:
		return bad("by", fmt.Sprintf("must be 1 to %d bytes", MaxIDLen))
	case len(r.Note) > MaxResponseNote:
		return bad("note", fmt.Sprintf("longer than %d bytes", MaxResponseNote))
	case len(r.Output) > MaxResponseOutput:
		return bad("output", fmt.Sprintf("longer than %d bytes", MaxResponseOutput))
	case len(r.Error) > MaxResponseOutput:
		return bad("error", fmt.Sprintf("longer than %d bytes", MaxResponseOutput))
	case (r.Action == ActionAcknowledged || r.Action == ActionResolved) && r.Alert == nil:
		return bad("alert", "required for this action")
	case (r.Action == ActionDelivered || r.Action == ActionDeadLettered) && (r.Responder == "" || r.Message == ""):
		// A delivery is of a message (an alert's, or a digest's,
		// which has no alert) to a responder.
		return bad("message", "a delivery outcome names its responder and message")
	case (r.Action == ActionDecisionAdded || r.Action == ActionDecisionDeleted) && r.Decision == nil:
		return bad("decision", "required for this action")
	case r.Action == ActionDigest && r.Digest == nil:
		return bad("digest", "required for this action")
	}
	if !utf8Valid(r.Note, r.Output, r.Error, r.By, r.Responder, r.Message) {
		return bad("note", "text must be valid UTF-8")
	}
	return nil
}

// ParseResponse decodes the body of a response leaf strictly and validates
// it.
func ParseResponse(data []byte) (*Response, error) {
	var r Response
	if err := json.Unmarshal(data, &r, strict); err != nil {
		return nil, fmt.Errorf("decoding response: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	r.Time = r.Time.UTC()
	return &r, nil
}

// EncodeResponseLeaf validates r and returns its canonical leaf of kind
// response.
func EncodeResponseLeaf(r *Response, receivedAt time.Time) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return EncodeLeaf(KindResponse, receivedAt, r.Canonical())
}

// DecodeResponseLeaf parses a leaf of kind response and its body.
func DecodeResponseLeaf(data []byte) (*Leaf, *Response, error) {
	l, err := DecodeLeaf(data)
	if err != nil {
		return nil, nil, err
	}
	if l.Kind != KindResponse {
		return nil, nil, fmt.Errorf("decoding response leaf: kind %q is not %q", l.Kind, KindResponse)
	}
	r, err := ParseResponse(bytes.TrimSpace(l.Body))
	if err != nil {
		return nil, nil, err
	}
	return l, r, nil
}

// LeafKind returns the kind of a canonical leaf from its first bytes,
// without decoding it: every leaf the log writes starts {"kind":"<kind>".
// It returns "" for anything else.
func LeafKind(leaf []byte) Kind {
	const prefix = `{"kind":"`
	if !bytes.HasPrefix(leaf, []byte(prefix)) {
		return ""
	}
	rest := leaf[len(prefix):]
	end := bytes.IndexByte(rest, '"')
	if end <= 0 || end > 16 {
		return ""
	}
	// The known kinds without allocating: followers ask this of every
	// leaf.
	switch k := rest[:end]; string(k) {
	case string(KindEvent):
		return KindEvent
	case string(KindAlert):
		return KindAlert
	case string(KindResponse):
		return KindResponse
	case string(KindAdmin):
		return KindAdmin
	default:
		return Kind(k)
	}
}

// utf8Valid reports whether every string is valid UTF-8.
func utf8Valid(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}
