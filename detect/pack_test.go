package detect

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
)

// TestDefaultPack loads the default pack and runs every inline test.
func TestDefaultPack(t *testing.T) {
	rs, err := LoadRules(DefaultRules(), ".")
	if err != nil {
		t.Fatalf("LoadRules(default pack) = %v", err)
	}
	if _, err := Compile(rs, Config{Lists: DefaultLists()}); err != nil {
		t.Fatalf("Compile(default pack) = %v", err)
	}
	for _, r := range rs.Rules {
		if len(r.Tests) == 0 {
			t.Errorf("rule %s (%s:%d) has no inline test", r.ID, r.File, r.Line)
		}
		if r.Level == "informational" {
			continue
		}
		pos, neg := false, false
		for _, tt := range r.Tests {
			pos = pos || tt.Alerts > 0
			neg = neg || tt.Alerts == 0
		}
		if !pos || !neg {
			t.Errorf("rule %s lacks a positive or a negative test", r.ID)
		}
	}
	for _, res := range rs.RunTests(Config{Lists: DefaultLists()}) {
		if !res.Passed() {
			t.Errorf("%s:%d: rule %s, test %q: %d alerts, want %d (%v)", res.Rule.File, res.Line, res.Rule.ID, res.Test, res.Got, res.Want, res.Err)
		}
	}
}

// packAlerts feeds recs to a fresh default pack and returns the alerts of
// rule id.
func packAlerts(t *testing.T, id string, recs []*Record) []*event.Alert {
	t.Helper()
	e, err := LoadDefault(Config{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*event.Alert
	for _, r := range recs {
		for _, a := range e.Process(r) {
			if a.Rule.ID == id {
				out = append(out, a)
			}
		}
	}
	return out
}

// TestFutureFiringConsumesOnlyItsWindow: a burst from a service whose
// clock is 5h fast fires, and must not silence the address's real burst,
// dated now, from another service; the future firing's window stays
// consumed.
func TestFutureFiringConsumesOnlyItsWindow(t *testing.T) {
	now := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	failure := func(i int, service string, d time.Duration) *Record {
		ev := mkEvent(t, map[string]any{"time": now.Add(d).Format(time.RFC3339Nano), "service": service,
			"source": map[string]any{"ip": "45.89.1.1"}, "actor": map[string]any{"id": fmt.Sprintf("u%d", i)}})
		return &Record{Index: uint64(i), ReceivedAt: now.Add(time.Duration(i) * time.Second), Event: ev}
	}
	var recs []*Record
	burst := func(service string, start time.Duration, n int) {
		for i := range n {
			recs = append(recs, failure(len(recs), service, start+time.Duration(i)*time.Second))
		}
	}
	burst("vpn", 5*time.Hour, 6)
	burst("sso", 0, 12) // the second six fire again, suppressed (1h)
	burst("vpn", 5*time.Hour+10*time.Second, 6)
	as := packAlerts(t, "al-bruteforce-fast", recs)
	if len(as) != 2 {
		t.Fatalf("alerts %s, want two: the future burst's and the real one's", alertIDs(as))
	}
	if !as[1].Window.Start.Equal(now) || !slices.Equal(as[1].Evidence, []uint64{6, 7, 8, 9, 10, 11}) {
		t.Errorf("second alert: window %v, evidence %v; want the real burst from %v", as[1].Window, as[1].Evidence, now)
	}
}
