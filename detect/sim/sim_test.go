package sim

import (
	"testing"
	"time"

	"github.com/accessledger/accessledger/detect"
)

func TestDeterministic(t *testing.T) {
	cfg := Config{Seed: 3, Users: 50, Days: 3, Start: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)}
	a, b := New(cfg), New(cfg)
	for d := 0; d < 3; d++ {
		ea, eb := a.Day(), b.Day()
		if len(ea) != len(eb) || len(ea) == 0 {
			t.Fatalf("day %d: %d and %d events", d, len(ea), len(eb))
		}
		for i := range ea {
			if string(ea[i].Canonical()) != string(eb[i].Canonical()) {
				t.Fatalf("day %d event %d differs: %s vs %s", d, i, ea[i].Canonical(), eb[i].Canonical())
			}
			if i > 0 && ea[i].Time.Before(ea[i-1].Time) {
				t.Fatalf("day %d: events out of time order at %d", d, i)
			}
		}
	}
}

// TestQuality runs the default pack over a simulation: every injected
// scenario must be detected by its rule, and no rule may raise one false
// alert or more per 100,000 benign events (the pack's target).
func TestQuality(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	e, err := detect.LoadDefault(detect.Config{})
	if err != nil {
		t.Fatal(err)
	}
	g := New(Config{Seed: qualitySeed, Users: qualityUsers, Days: 21, Start: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)})
	rep, err := Evaluate(g, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events, %d benign", rep.Events, rep.Benign)
	if rep.Late != 0 {
		t.Errorf("%d events arrived late: the simulation must be in time order", rep.Late)
	}
	for _, s := range rep.Scenarios {
		t.Logf("scenario %-32s %-32s %d/%d", s.Scenario, s.Rule, s.Detected, s.Injected)
		if s.Detected != s.Injected {
			t.Errorf("scenario %s: detected %d of %d by %s", s.Scenario, s.Detected, s.Injected, s.Rule)
		}
	}
	for _, r := range rep.Rules {
		t.Logf("rule %-32s alerts %4d false %4d (%.2f per 100k benign)", r.Rule, r.Alerts, r.False, r.FalsePer1e5)
		// The pack's target: under one false alert per rule per
		// 100,000 benign events.
		if r.FalsePer1e5 >= 1 {
			t.Errorf("rule %s: %d false alerts in %d benign events (%.2f per 100,000), want under 1 per 100,000", r.Rule, r.False, rep.Benign, r.FalsePer1e5)
		}
	}
}

// The quality test's population; BENCHMARKS.md runs larger ones with
// accessledger simulate --evaluate.
var (
	qualitySeed  uint64 = 1
	qualityUsers        = 300
)
