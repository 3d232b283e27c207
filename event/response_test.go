package event

import (
	"errors"
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
