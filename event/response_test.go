package event

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestResponseValidate checks what each action needs: an alert for an
// acknowledgement or a resolution, a responder and a message for a
// delivery outcome (a digest's has no alert), a decision, a digest.
func TestResponseValidate(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	alert := uint64(7)
	for _, tc := range []struct {
		name  string
		r     Response
		field string // "" if valid
	}{
		{"ack", Response{Action: ActionAcknowledged, Time: now, By: "alice", Alert: &alert}, ""},
		{"ack without alert", Response{Action: ActionAcknowledged, Time: now, By: "alice"}, "alert"},
		{"resolved without alert", Response{Action: ActionResolved, Time: now, By: "alice"}, "alert"},
		{"alert delivered", Response{Action: ActionDelivered, Time: now, By: "hook", Responder: "hook", Message: "7", Alert: &alert}, ""},
		{"digest delivered", Response{Action: ActionDelivered, Time: now, By: "hook", Responder: "hook", Message: "digest.9"}, ""},
		{"digest dead-lettered", Response{Action: ActionDeadLettered, Time: now, By: "hook", Responder: "hook", Message: "digest.9", Attempts: 3}, ""},
		{"delivered without message", Response{Action: ActionDelivered, Time: now, By: "hook", Responder: "hook", Alert: &alert}, "message"},
		{"delivered without responder", Response{Action: ActionDelivered, Time: now, By: "hook", Message: "7", Alert: &alert}, "message"},
		{"decision without decision", Response{Action: ActionDecisionAdded, Time: now, By: "accessledger"}, "decision"},
		{"digest without digest", Response{Action: ActionDigest, Time: now, By: "accessledger"}, "digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Validate()
			var ve *ValidationError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.field != "" && (!errors.As(err, &ve) || ve.Fields[0].Field != tc.field):
				t.Fatalf("Validate() = %v, want an error on %s", err, tc.field)
			}
		})
	}
}

// TestValidationErrorsBounded: an event with many problems lists at most
// MaxFieldErrors, the last saying there are more. 700,000 unknown members
// made a 400 answer of 38 MB.
func TestValidationErrorsBounded(t *testing.T) {
	var b []byte
	b = append(b, `{"time":"2026-11-29T10:00:00Z","service":"s","actor":{"id":"a"},"source":{"ip":"192.0.2.1"},"action":"login","category":"authentication","outcome":"success"`...)
	for i := range 1000 {
		b = fmt.Appendf(b, `,"u%d":1`, i)
	}
	b = append(b, '}')
	_, err := Parse(b, ParseOptions{Now: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)})
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) != MaxFieldErrors || !strings.Contains(ve.Fields[MaxFieldErrors-1].Reason, "and more") {
		t.Fatalf("Parse(1000 unknown members) = %d problems (%v), want %d, the last saying there are more", len(ve.Fields), err, MaxFieldErrors)
	}
}
