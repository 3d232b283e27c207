package event

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
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

// TestZeroNumbersOmitted: the comments and README say empty optional
// members are left out, but go-json-experiment's omitempty omits only
// what encodes as "", null, [] or {}: every response leaf carried
// "attempts":0,"status":0. They are omitzero now, in every struct of this
// package that the library encodes by its tags; numbers that a leaf
// always carries (a digest's counts) stay.
func TestZeroNumbersOmitted(t *testing.T) {
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	alert := uint64(42)
	enc := func(v any) string {
		b, err := json.Marshal(v, canonicalOpts)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct{ name, got, want string }{
		{"acknowledgement", string((&Response{Action: ActionAcknowledged, Time: at, Alert: &alert, DedupKey: "k", By: "alice"}).Canonical()),
			`{"action":"acknowledged","time":"2026-11-29T10:00:00Z","alert":42,"dedup_key":"k","by":"alice"}`},
		{"delivery refused", string((&Response{Action: ActionDeadLettered, Time: at, Alert: &alert, By: "hook", Responder: "hook", Message: "m", Attempts: 5, Error: "connection refused"}).Canonical()),
			`{"action":"dead_lettered","time":"2026-11-29T10:00:00Z","alert":42,"by":"hook","responder":"hook","message":"m","attempts":5,"error":"connection refused"}`},
		{"delivery answered", string((&Response{Action: ActionDelivered, Time: at, Alert: &alert, By: "hook", Responder: "hook", Message: "m", Attempts: 1, Status: 200}).Canonical()),
			`{"action":"delivered","time":"2026-11-29T10:00:00Z","alert":42,"by":"hook","responder":"hook","message":"m","attempts":1,"status":200}`},
		{"alert 0 is an alert", string((&Response{Action: ActionResolved, Time: at, Alert: new(uint64), By: "alice"}).Canonical()),
			`{"action":"resolved","time":"2026-11-29T10:00:00Z","alert":0,"by":"alice"}`},
		{"empty digest", string((&Response{Action: ActionDigest, Time: at, By: "accessledger", Digest: &Digest{Start: at, End: at}}).Canonical()),
			`{"action":"digest","time":"2026-11-29T10:00:00Z","by":"accessledger","digest":{"start":"2026-11-29T10:00:00Z","end":"2026-11-29T10:00:00Z",` +
				`"events":0,"alerts":0,"open_alerts":0,"acknowledged_alerts":0,"delivery_failures":0,"dead_lettered":0}}`},
		{"response action without duration", enc(ResponseAction{Action: "notify"}), `{"action":"notify"}`},
		{"source without port or asn", enc(Source{IP: netip.MustParseAddr("192.0.2.1")}), `{"ip":"192.0.2.1"}`},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: encoded %s, want %s", tc.name, tc.got, tc.want)
		}
	}
}

// TestResponseWithZerosStillParses: leaves written before the zeros were
// omitted carry "attempts":0,"status":0; they parse, as the same response.
func TestResponseWithZerosStillParses(t *testing.T) {
	old := `{"action":"acknowledged","time":"2026-11-29T10:00:00Z","alert":42,"dedup_key":"k","by":"alice","note":"seen","attempts":0,"status":0}`
	r, err := ParseResponse([]byte(old))
	if err != nil {
		t.Fatalf("ParseResponse(%s) = %v", old, err)
	}
	if got, want := string(r.Canonical()), `{"action":"acknowledged","time":"2026-11-29T10:00:00Z","alert":42,"dedup_key":"k","by":"alice","note":"seen"}`; got != want {
		t.Errorf("ParseResponse(%s).Canonical() = %s, want %s", old, got, want)
	}
}

// TestREADMELeaves: the leaves README.md shows are what Canonical writes,
// member for member (a "…" or "..." time stands for any). Its response
// example showed no zeros while every leaf had "attempts":0,"status":0.
func TestREADMELeaves(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// Leaves in ```json blocks, a continuation line starting with a space.
	var leaves []string
	inJSON := false
	for _, line := range strings.Split(string(readme), "\n") {
		switch {
		case strings.HasPrefix(line, "```"):
			inJSON = line == "```json"
		case inJSON && strings.HasPrefix(line, `{"kind":"`):
			leaves = append(leaves, line)
		case inJSON && strings.HasPrefix(line, " ") && len(leaves) > 0:
			leaves[len(leaves)-1] += strings.TrimPrefix(line, " ")
		}
	}
	placeholder := regexp.MustCompile(`"(received_at|time)":"(…|\.\.\.)"`)
	envelope := regexp.MustCompile(`^\{"kind":"(\w+)","received_at":"[^"]*"(,"submitted_by":"[^"]*")?,"body":(.*)\}$`)
	seen := map[string]int{}
	for _, leaf := range leaves {
		leaf = placeholder.ReplaceAllString(leaf, `"$1":"2026-01-05T10:01:00Z"`)
		m := envelope.FindStringSubmatch(leaf)
		if m == nil {
			t.Errorf("README leaf %s: not {kind, received_at, [submitted_by,] body}", leaf)
			continue
		}
		kind, body := m[1], m[3]
		if m[2] != "" {
			// Only an event names the key that submitted it.
			if Kind(kind) != KindEvent {
				t.Errorf("README %s leaf %s has submitted_by", kind, leaf)
			}
			seen["submitted_by"]++
		}
		var canonical []byte
		switch Kind(kind) {
		case KindResponse:
			r, err := ParseResponse([]byte(body))
			if err != nil {
				t.Errorf("README response %s: %v", body, err)
				continue
			}
			canonical = r.Canonical()
		case KindAlert:
			a, err := ParseAlert([]byte(body))
			if err != nil {
				t.Errorf("README alert %s: %v", body, err)
				continue
			}
			canonical = a.Canonical()
		case KindAdmin:
			a, err := ParseAdmin([]byte(body))
			if err != nil {
				t.Errorf("README admin action %s: %v", body, err)
				continue
			}
			canonical = a.Canonical()
		default:
			continue
		}
		seen[kind]++
		if string(canonical) != body {
			t.Errorf("README %s leaf body\n %s\nis written\n %s", kind, body, canonical)
		}
	}
	if seen["response"] < 2 || seen["alert"] < 1 || seen["admin"] < 1 || seen["submitted_by"] < 1 {
		t.Errorf("README leaves checked: %v, want its responses (2), alert and admin action, and an event naming its key", seen)
	}
}
