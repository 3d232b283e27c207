package detect

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/accessledger/accessledger/event"
)

// DefaultTestStart is when a rule test's events start unless it says
// otherwise: a Monday, 10:00 UTC.
var DefaultTestStart = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// maxTestEvents bounds the events one inline test renders.
const maxTestEvents = 100_000

type testEvent struct {
	ev   *event.Event
	line int
}

// parseTests parses a rule's inline tests:
//
//	tests:
//	  - name: twelve failures from one address
//	    base: {service: sso, action: login, ...}   # merged into every event
//	    start: 2026-01-05T10:00:00Z                # default DefaultTestStart
//	    events:
//	      - {time: +0s, actor: {id: alice}}         # time: RFC 3339, or +duration from start
//	      - repeat: 12                              # the event 12 times, every 5s
//	        every: 5s
//	        event: {actor: {id: "user{i}"}}         # {i} is the repetition, from 0
//	    alerts: 1                                   # alerts the rule must raise
func parseTests(el *errList, n *yaml.Node) []RuleTest {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		el.at(n, "tests must be a list of {name, events, alerts}")
		return nil
	}
	var out []RuleTest
	for _, tn := range n.Content {
		t := RuleTest{Line: tn.Line, Alerts: -1}
		var base map[string]any
		start := DefaultTestStart
		var evNode *yaml.Node
		mapping(el, tn, "test", func(key string, k, v *yaml.Node) {
			switch key {
			case "name":
				t.Name, _ = scalarString(el, v, "test name")
			case "base":
				if err := v.Decode(&base); err != nil {
					el.at(v, "test base must be a mapping of event fields: %v", err)
				}
			case "start":
				s, _ := scalarString(el, v, "test start")
				ts, err := time.Parse(time.RFC3339, s)
				if err != nil {
					el.at(v, "test start %q must be an RFC 3339 time", s)
				}
				start = ts
			case "events":
				evNode = v
			case "alerts":
				f, ok := parseNumber(el, v, "test alerts")
				if ok && f >= 0 && f == float64(int(f)) {
					t.Alerts = int(f)
				} else if ok {
					el.at(v, "test alerts must be a count")
				}
			default:
				unknownKey(el, k, "test", []string{"name", "base", "start", "events", "alerts"})
			}
		})
		if t.Name == "" {
			el.at(tn, "a test needs a name")
		}
		if t.Alerts < 0 {
			el.at(tn, "test %q needs alerts: the number of alerts the rule must raise", t.Name)
		}
		if evNode == nil {
			el.at(tn, "test %q needs events", t.Name)
			continue
		}
		name, node := t.Name, resolve(evNode)
		t.render = func(el *errList) []testEvent { return renderTestEvents(el, name, node, base, start) }
		out = append(out, t)
	}
	return out
}

func renderTestEvents(el *errList, name string, n *yaml.Node, base map[string]any, start time.Time) []testEvent {
	if n.Kind != yaml.SequenceNode {
		el.at(n, "test %q: events must be a list", name)
		return nil
	}
	var out []testEvent
	prev := start
	for _, en := range n.Content {
		en = resolve(en)
		var fields map[string]any
		repeat, every := 1, time.Duration(0)
		isRepeat := false
		for i := 0; i+1 < len(en.Content); i += 2 {
			if k := en.Content[i].Value; k == "repeat" || k == "every" || k == "event" {
				isRepeat = true
			}
		}
		if isRepeat {
			mapping(el, en, "test event", func(key string, k, v *yaml.Node) {
				switch key {
				case "repeat":
					f, ok := parseNumber(el, v, "repeat")
					if ok && f >= 1 && f <= maxTestEvents {
						repeat = int(f)
					} else if ok {
						el.at(v, "repeat must be from 1 to %d", maxTestEvents)
					}
				case "every":
					s, _ := scalarString(el, v, "every")
					d, err := time.ParseDuration(s)
					if err != nil || d < 0 {
						el.at(v, "every %q must be a duration such as 5s", s)
					}
					every = d
				case "event":
					if err := v.Decode(&fields); err != nil {
						el.at(v, "event must be a mapping of event fields: %v", err)
					}
				default:
					unknownKey(el, k, "test event", []string{"repeat", "every", "event"})
				}
			})
		} else if err := en.Decode(&fields); err != nil {
			el.at(en, "test %q: an event must be a mapping of event fields: %v", name, err)
			continue
		}
		if len(out)+repeat > maxTestEvents {
			el.at(en, "test %q renders more than %d events", name, maxTestEvents)
			return out
		}
		merged := deepMerge(base, fields)
		t0 := prev
		if ts, ok := merged["time"]; ok {
			s := fmt.Sprint(ts)
			if tt, ok := ts.(time.Time); ok {
				s = tt.Format(time.RFC3339Nano)
			}
			if rel, ok := strings.CutPrefix(s, "+"); ok {
				d, err := time.ParseDuration(rel)
				if err != nil {
					el.at(en, "test %q: time %q must be RFC 3339 or +duration (+90s) from the test's start", name, s)
					continue
				}
				t0 = start.Add(d)
			} else {
				tt, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					el.at(en, "test %q: time %q must be RFC 3339 or +duration (+90s) from the test's start", name, s)
					continue
				}
				t0 = tt
			}
		}
		for i := 0; i < repeat; i++ {
			ts := t0.Add(time.Duration(i) * every)
			m := substitute(merged, strconv.Itoa(i)).(map[string]any)
			m["time"] = ts.UTC().Format(time.RFC3339Nano)
			raw, err := json.Marshal(m)
			if err != nil {
				el.at(en, "test %q: %v", name, err)
				break
			}
			ev, err := event.Parse(raw, event.ParseOptions{})
			if err != nil {
				el.at(en, "test %q: %v", name, err)
				break
			}
			out = append(out, testEvent{ev: ev, line: en.Line})
			prev = ts
		}
	}
	return out
}

// deepMerge returns base overridden by over, recursively for mappings.
func deepMerge(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = deepMerge(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// substitute replaces {i} by i in every string of v.
func substitute(v any, i string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, vv := range x {
			out[k] = substitute(vv, i)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for k, vv := range x {
			out[k] = substitute(vv, i)
		}
		return out
	case string:
		return strings.ReplaceAll(x, "{i}", i)
	}
	return v
}

// TestResult is the outcome of one inline test.
type TestResult struct {
	Rule *Rule
	Test string
	Line int
	// Want and Got are the alerts expected and raised.
	Want, Got int
	// Err is set if the rule could not be compiled for the test.
	Err error
}

// Passed reports whether the test passed.
func (r TestResult) Passed() bool { return r.Err == nil && r.Want == r.Got }

// RunTests runs the inline tests of every rule of rs. Each test runs on a
// fresh engine holding the rule and the rules it correlates, where only
// the rule under test raises alerts; its events get log indexes from 0
// and are received at their event time. At the end every window is
// closed, as if time had moved on.
func (rs *RuleSet) RunTests(cfg Config) []TestResult {
	var out []TestResult
	for _, r := range rs.Rules {
		if len(r.Tests) == 0 {
			continue
		}
		sub := &RuleSet{Rules: rs.closure(r)}
		tcfg := cfg
		tcfg.Alerting = func(x *Rule) bool { return x == r }
		for _, t := range r.Tests {
			res := TestResult{Rule: r, Test: t.Name, Line: t.Line, Want: t.Alerts}
			el := &errList{file: r.File}
			events := t.render(el)
			if len(el.errs) > 0 {
				res.Err = el.errs
				out = append(out, res)
				continue
			}
			e, err := Compile(sub, tcfg)
			if err != nil {
				res.Err = err
				out = append(out, res)
				continue
			}
			for i, te := range events {
				rec := &Record{Index: uint64(i), ReceivedAt: te.ev.Time, Event: te.ev}
				for _, a := range e.Process(rec) {
					if a.Rule.ID == r.ID {
						res.Got++
					}
				}
			}
			for _, a := range e.Close() {
				if a.Rule.ID == r.ID {
					res.Got++
				}
			}
			out = append(out, res)
		}
	}
	return out
}

// CheckTests renders every inline test's events without running them, and
// returns the problems found (events that are not valid events, times that
// do not parse) as Errors.
func (rs *RuleSet) CheckTests() error {
	var errs Errors
	for _, r := range rs.Rules {
		for _, t := range r.Tests {
			el := &errList{file: r.File}
			t.render(el)
			errs = append(errs, el.errs...)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// closure returns r and every rule it refers to, transitively, in the
// set's order.
func (rs *RuleSet) closure(r *Rule) []*Rule {
	need := map[*Rule]bool{}
	var walk func(x *Rule)
	walk = func(x *Rule) {
		if need[x] {
			return
		}
		need[x] = true
		if x.Correlation != nil {
			for _, ref := range x.Correlation.Rules {
				if d := rs.lookup(ref); d != nil {
					walk(d)
				}
			}
		}
	}
	walk(r)
	var out []*Rule
	for _, x := range rs.Rules {
		if need[x] {
			out = append(out, x)
		}
	}
	return out
}
