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

// TestParseTimeStrictly: the time is RFC 3339's date-time: lower-case t and
// z are fine (RFC 3339 5.6), a comma before the fraction, offsets past
// 23:59 and more than 9 fractional digits are not. time.Parse took +23:60
// and stored the event a day early.
func TestParseTimeStrictly(t *testing.T) {
	ev := func(ts string) []byte {
		return fmt.Appendf(nil, `{"time":%q,"service":"s","actor":{"id":"a"},"source":{"ip":"192.0.2.1"},"action":"login","category":"authentication","outcome":"success"}`, ts)
	}
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for ts, want := range map[string]string{
		"2026-11-29T10:00:00Z":                "2026-11-29T10:00:00Z",
		"2026-11-29t10:00:00z":                "2026-11-29T10:00:00Z",
		"2026-11-29T10:00:00.123456789+02:00": "2026-11-29T08:00:00.123456789Z",
		"2026-11-29T10:00:00-23:59":           "2026-11-30T09:59:00Z",
	} {
		e, err := Parse(ev(ts), ParseOptions{Now: now.Add(48 * time.Hour)})
		if err != nil || e.Time.Format(time.RFC3339Nano) != want {
			t.Errorf("Parse(time %q) = %v, %v; want %s", ts, e, err, want)
		}
	}
	for _, ts := range []string{
		"2026-11-29T10:00:00+24:00", "2026-11-29T10:00:00+23:60", "2026-11-29T10:00:00,5Z",
		"2026-11-29T10:00:00.1234567891Z", "2026-11-29T10:00:00.Z", "2026-11-29 10:00:00Z", "2026-11-29T10:00:00",
		"2026-11-29T10:00:00+0200", "2026-11-29T10:00:00UTC",
	} {
		if _, err := Parse(ev(ts), ParseOptions{Now: now}); err == nil {
			t.Errorf("Parse(time %q) = nil, want an error", ts)
		}
	}
}

// TestReceivingRefusesFormatControls: an event being received may not hold
// C1 controls or bidirectional overrides in a text field (they reached
// analysts' terminals raw); one already stored, parsed without Receiving,
// still parses, since earlier versions stored such text.
func TestReceivingRefusesFormatControls(t *testing.T) {
	for _, actor := range []string{"evil\u009b2J", "evil\u202egnp.exe", "a\u2066b"} {
		data := fmt.Appendf(nil, `{"time":"2026-11-29T10:00:00Z","service":"s","actor":{"id":%q},"source":{"ip":"192.0.2.1"},"action":"login","category":"authentication","outcome":"success"}`, actor)
		var ve *ValidationError
		if _, err := Parse(data, ParseOptions{Receiving: true}); !errors.As(err, &ve) || ve.Fields[0].Field != "actor.id" || !strings.Contains(err.Error(), "bidirectional") {
			t.Errorf("Parse(actor %q, Receiving) = %v, want an error on actor.id", actor, err)
		}
		if _, err := Parse(data, ParseOptions{}); err != nil {
			t.Errorf("Parse(actor %q) of a stored leaf = %v, want it parsed", actor, err)
		}
	}
	// Other scripts and symbols are fine.
	if _, err := Parse([]byte(`{"time":"2026-11-29T10:00:00Z","service":"s","actor":{"id":"Élodie עברית 日本"},"source":{"ip":"192.0.2.1"},"action":"login","category":"authentication","outcome":"success"}`), ParseOptions{Receiving: true}); err != nil {
		t.Errorf("Parse(accented, Hebrew and Japanese actor) = %v", err)
	}
}
