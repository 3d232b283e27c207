package sim

import (
	"sort"
	"strings"

	"github.com/accessledger/accessledger/detect"
	"github.com/accessledger/accessledger/event"
)

// ScenarioResult says how often a scenario was injected and detected by
// its intended rule.
type ScenarioResult struct {
	Scenario string
	Rule     string
	Injected int
	Detected int
}

// RuleResult counts a rule's alerts: on attack events, and on benign
// events only (false alerts).
type RuleResult struct {
	Rule        string
	Alerts      int
	False       int
	FalsePer1e5 float64 // false alerts per 100,000 benign events
}

// Report is the outcome of Evaluate.
type Report struct {
	Events int
	Benign int
	// Late counts events that arrived too late for correlation windows
	// (none, for a stream in time order).
	Late      uint64
	Scenarios []ScenarioResult
	Rules     []RuleResult
}

// Evaluate generates the whole simulation, runs every event through e (in
// time order, received at its event time, with log indexes from 0), and
// scores the alerts against the labels: a scenario is detected if an alert
// of its intended rule has one of its events as evidence; an alert none of
// whose evidence is an attack event is a false alert. sink, if set, gets
// every event first (to write it out).
func Evaluate(g *Generator, e *detect.Engine, sink func(*event.Event) error) (Report, error) {
	var rep Report
	attackOf := map[uint64]int{} // event index -> label number
	var alerts []*event.Alert
	index := uint64(0)
	for evs := g.Day(); evs != nil; evs = g.Day() {
		// Labels are numbered in injection order; map ids to them.
		idToLabel := map[string]int{}
		for i, l := range g.Labels() {
			for _, id := range l.EventIDs {
				idToLabel[id] = i
			}
		}
		for _, ev := range evs {
			if sink != nil {
				if err := sink(ev); err != nil {
					return rep, err
				}
			}
			if li, ok := idToLabel[ev.ID]; ok {
				attackOf[index] = li
			} else {
				rep.Benign++
			}
			for _, a := range e.Process(&detect.Record{Index: index, ReceivedAt: ev.Time, Event: ev}) {
				c := *a
				alerts = append(alerts, &c)
			}
			index++
		}
	}
	for _, a := range e.Close() {
		c := *a
		alerts = append(alerts, &c)
	}
	rep.Events = int(index)
	rep.Late = e.Stats().Late
	labels := g.Labels()
	detected := make([]bool, len(labels))
	byRule := map[string]*RuleResult{}
	for _, a := range alerts {
		rr := byRule[a.Rule.ID]
		if rr == nil {
			rr = &RuleResult{Rule: a.Rule.ID}
			byRule[a.Rule.ID] = rr
		}
		rr.Alerts++
		attack := false
		for _, idx := range a.Evidence {
			if li, ok := attackOf[idx]; ok {
				attack = true
				if labels[li].Rule == a.Rule.ID {
					detected[li] = true
				}
			}
		}
		if !attack {
			rr.False++
		}
	}
	scen := map[string]*ScenarioResult{}
	for i, l := range labels {
		sr := scen[l.Scenario]
		if sr == nil {
			sr = &ScenarioResult{Scenario: l.Scenario, Rule: l.Rule}
			scen[l.Scenario] = sr
		}
		sr.Injected++
		if detected[i] {
			sr.Detected++
		}
	}
	for _, s := range Scenarios {
		if sr := scen[s.Name]; sr != nil {
			rep.Scenarios = append(rep.Scenarios, *sr)
		}
	}
	for _, st := range e.Stats().Rules {
		if !st.Alerting {
			continue
		}
		rr := byRule[st.ID]
		if rr == nil {
			rr = &RuleResult{Rule: st.ID}
		}
		if rep.Benign > 0 {
			rr.FalsePer1e5 = float64(rr.False) * 1e5 / float64(rep.Benign)
		}
		rep.Rules = append(rep.Rules, *rr)
	}
	sort.SliceStable(rep.Rules, func(i, j int) bool { return strings.Compare(rep.Rules[i].Rule, rep.Rules[j].Rule) < 0 })
	return rep, nil
}
