package detect

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/accessledger/accessledger/event"
)

// base is a valid failed login; tests override fields with over.
var baseEvent = map[string]any{
	"time":     "2026-01-05T10:00:00Z",
	"service":  "sso",
	"actor":    map[string]any{"id": "alice", "type": "user"},
	"source":   map[string]any{"ip": "203.0.113.7", "user_agent": "Mozilla/5.0"},
	"action":   "login",
	"category": "authentication",
	"outcome":  "failure",
	"reason":   "invalid_credentials",
}

// mkEvent returns baseEvent overridden by over (deep), parsed.
func mkEvent(t testing.TB, over map[string]any) *event.Event {
	t.Helper()
	m := deepMerge(baseEvent, over)
	for k, v := range over {
		if v == nil {
			delete(m, k)
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := event.Parse(raw, event.ParseOptions{})
	if err != nil {
		t.Fatalf("event %s: %v", raw, err)
	}
	return ev
}

// rec wraps an event as a record at index i, received at its time.
func rec(ev *event.Event, i uint64) *Record {
	return &Record{Index: i, ReceivedAt: ev.Time, Event: ev}
}

// compileYAML loads rules from one YAML text and compiles them.
func compileYAML(t testing.TB, src string, cfg Config) *Engine {
	t.Helper()
	rs, err := LoadRules(fstest.MapFS{"rules/r.yml": {Data: []byte(src)}}, "rules")
	if err != nil {
		t.Fatalf("LoadRules: %v", err)
	}
	e, err := Compile(rs, cfg)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return e
}

// detectionRule wraps a detection section in a minimal rule.
func detectionRule(detection string) string {
	return "title: t\nid: r1\nlogsource: {product: accessledger}\ndetection:\n" + indent(detection, "    ") + "\n"
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pre + l
	}
	return strings.Join(lines, "\n")
}

// at is the base time plus d.
func at(d time.Duration) string {
	return time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC).Add(d).Format(time.RFC3339Nano)
}

// stream feeds events to e and returns the alerts' rule ids and dedup
// keys, in order.
func stream(e *Engine, evs []*event.Event) []*event.Alert {
	var out []*event.Alert
	for i, ev := range evs {
		out = append(out, cloneAlerts(e.Process(rec(ev, uint64(i))))...)
	}
	return out
}

func cloneAlerts(as []*event.Alert) []*event.Alert {
	out := make([]*event.Alert, len(as))
	copy(out, as)
	return out
}

func alertIDs(as []*event.Alert) string {
	var s []string
	for _, a := range as {
		s = append(s, fmt.Sprintf("%s%v", a.Rule.ID, a.Evidence))
	}
	return strings.Join(s, " ")
}

// restarted saves e's whole state and loads it into a new engine of the
// same rules and configuration, as a detector's restart does.
func restarted(t testing.TB, e *Engine, rules string, cfg Config) *Engine {
	t.Helper()
	saved := mapWriter{}
	if err := e.SaveAll(saved); err != nil {
		t.Fatal(err)
	}
	state := map[string][]byte{}
	for k, v := range saved {
		state[k] = []byte(v)
	}
	e2 := compileYAML(t, rules, cfg)
	if err := e2.LoadState(entries(state)); err != nil {
		t.Fatal(err)
	}
	return e2
}
