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

// TestPackSeparatesTenants: the per-account rules count an account of
// each tenant apart, and name the tenant; events without a tenant group
// by account alone, as ever.
func TestPackSeparatesTenants(t *testing.T) {
	login := func(i int, tenant, outcome string) *Record {
		over := map[string]any{"time": at(time.Duration(i) * 20 * time.Second), "tenant": tenant, "outcome": outcome,
			"actor": map[string]any{"id": "admin"}, "source": map[string]any{"ip": fmt.Sprintf("45.83.66.%d", i)}}
		if tenant == "" {
			delete(over, "tenant")
		}
		if outcome == "success" {
			over["reason"] = nil
		}
		return rec(mkEvent(t, over), uint64(i))
	}
	attack := func(failing, succeeding string) []*Record {
		var recs []*Record
		for i := range 10 {
			recs = append(recs, login(i, failing, "failure"))
		}
		return append(recs, login(10, succeeding, "success"))
	}
	if as := packAlerts(t, "al-success-after-failures", attack("acme", "globex")); len(as) != 0 {
		t.Errorf("failures in acme, success in globex: alerts %s, want none", alertIDs(as))
	}
	as := packAlerts(t, "al-bruteforce-account", attack("acme", "globex"))
	want := []event.GroupValue{{Field: "tenant", Value: "acme"}, {Field: "actor.id", Value: "admin"}}
	if len(as) != 1 || !slices.Equal(as[0].Group, want) {
		t.Errorf("al-bruteforce-account: alerts %+v, want one for %v", as, want)
	}
	for _, tenant := range []string{"acme", ""} {
		as := packAlerts(t, "al-success-after-failures", attack(tenant, tenant))
		if len(as) != 1 || as[0].Response[0].Value != "admin" {
			t.Errorf("tenant %q: alerts %+v, want one revoking admin's sessions", tenant, as)
		}
		if tenant == "" && len(as) == 1 && !slices.Equal(as[0].Group, want[1:]) {
			t.Errorf("no tenant: group %v, want %v", as[0].Group, want[1:])
		}
	}
}
