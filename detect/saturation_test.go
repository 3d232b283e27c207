package detect

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
)

// TestSaturationWatch: a correlation that evicts as many groups as it
// holds within ten minutes raises one alert an hour; one that evicts
// slowly, as a busy log with more accounts than max_groups does, none.
func TestSaturationWatch(t *testing.T) {
	w := newSaturationWatch(100)
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	stats := func(evicted uint64) *Stats {
		return &Stats{Rules: []RuleStatus{{ID: "flooded", Evicted: evicted}, {ID: "quiet"}}}
	}
	if as := w.check(stats(0), t0); len(as) != 0 {
		t.Fatalf("at start: %d alerts", len(as))
	}
	// Slow: 60 groups per ten minutes, for an hour.
	for i := 1; i <= 6; i++ {
		if as := w.check(stats(uint64(60*i)), t0.Add(time.Duration(i)*saturationWindow)); len(as) != 0 {
			t.Fatalf("evicting 60 groups per ten minutes raised %d alerts at step %d", len(as), i)
		}
	}
	// A flood: the whole state within a minute.
	t1 := t0.Add(61 * time.Minute)
	as := w.check(stats(360+150), t1)
	if len(as) != 1 || as[0].Rule.ID != SaturatedRuleID || as[0].Group[0].Value != "flooded" {
		t.Fatalf("a flood evicting 150 of 100 groups: alerts %+v, want one for rule flooded", as)
	}
	if err := as[0].Validate(); err != nil {
		t.Errorf("the alert does not validate: %v", err)
	}
	// Another at once: quiet for an hour.
	if as := w.check(stats(360+300), t1.Add(time.Minute)); len(as) != 0 {
		t.Errorf("a second flood within the hour raised %d alerts, want none", len(as))
	}
	if as := w.check(stats(360+300+200), t1.Add(saturationQuiet+time.Minute)); len(as) != 1 {
		t.Errorf("a flood an hour later raised %d alerts, want one", len(as))
	}
}

// TestDetectorReportsSaturation: a flood of distinct source addresses
// that turns a correlation's state over is recorded in the log as an
// alert of SaturatedRuleID.
func TestDetectorReportsSaturation(t *testing.T) {
	l := newTestLedger(t)
	rules := failedLogin + `title: brute force
id: bf
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 1h
  condition: {gte: 1000}
`
	e := compileYAML(t, rules, Config{MaxGroups: 50})
	_, stop := runDetectorWith(t, DetectorConfig{Log: l, Engine: e, Dir: t.TempDir()})
	defer stop()
	now := time.Now().UTC()
	var evs []*event.Event
	for i := range 200 {
		evs = append(evs, mkEvent(t, map[string]any{"time": now.Format(time.RFC3339Nano),
			"source": map[string]any{"ip": fmt.Sprintf("198.51.100.%d", i%250)}, "actor": map[string]any{"id": fmt.Sprintf("u%d", i)}}))
	}
	appendEvents(t, l, evs)
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, key := range alertLeaves(t, l) {
			if strings.HasPrefix(key, SaturatedRuleID+"|bf|") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s alert 10s after 200 addresses went through 50 groups; alerts: %d", SaturatedRuleID, len(alertLeaves(t, l)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
