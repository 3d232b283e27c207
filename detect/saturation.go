package detect

import (
	"fmt"
	"time"

	"github.com/accessledger/accessledger/event"
)

// SaturatedRuleID is the rule id of the alert the detector raises when a
// correlation's state turns over: it evicted as many groups as it may
// hold (MaxGroups) within saturationWindow. Eviction keeps memory bounded;
// it drops groups that have seen one event first (groupLRU), so a flood of
// distinct values seen once each (failed logins with invented account
// names, say) turns over only those, but a flood of values seen twice
// each, or more traffic than MaxGroups fits, evicts the state of a brute
// force in progress and hides it. Analysts learn that detection is
// degraded, and when.
const SaturatedRuleID = "accessledger-detect-saturated"

const (
	// saturationWindow is how fast a correlation's whole state must turn
	// over to be reported.
	saturationWindow = 10 * time.Minute
	// saturationQuiet is the least time between two alerts of one rule.
	saturationQuiet = time.Hour
)

// saturationWatch follows each correlation's evictions (Run's alone).
type saturationWatch struct {
	maxGroups int
	rules     map[string]*saturationState
}

type saturationState struct {
	since   time.Time // start of the current observation
	evicted uint64    // the rule's eviction count then
	alerted time.Time // last alert
}

func newSaturationWatch(maxGroups int) *saturationWatch {
	return &saturationWatch{maxGroups: maxGroups, rules: make(map[string]*saturationState)}
}

// check compares each rule's eviction count with the one saturationWindow
// ago and returns an alert for each rule whose state turned over since,
// at most one per rule per saturationQuiet.
func (w *saturationWatch) check(st *Stats, now time.Time) []*event.Alert {
	var out []*event.Alert
	for _, rs := range st.Rules {
		s := w.rules[rs.ID]
		if s == nil {
			s = &saturationState{since: now, evicted: rs.Evicted}
			w.rules[rs.ID] = s
			continue
		}
		n := rs.Evicted - s.evicted
		if n >= uint64(w.maxGroups) && now.Sub(s.alerted) >= saturationQuiet {
			s.alerted = now
			out = append(out, saturatedAlert(rs.ID, n, s.since, now, w.maxGroups))
			s.since, s.evicted = now, rs.Evicted
			continue
		}
		if now.Sub(s.since) >= saturationWindow {
			s.since, s.evicted = now, rs.Evicted
		}
	}
	return out
}

func saturatedAlert(rule string, n uint64, since, now time.Time, maxGroups int) *event.Alert {
	now = now.UTC()
	return &event.Alert{
		DedupKey: SaturatedRuleID + "|" + rule + "|" + now.Truncate(saturationQuiet).Format(time.RFC3339),
		Time:     now,
		Rule: event.AlertRule{ID: SaturatedRuleID, Title: "A correlation's state turned over: detections in progress were dropped",
			Level: event.LevelHigh, Tags: []string{"attack.defense-evasion", "attack.t1562"}},
		Group:    []event.GroupValue{{Field: "rule.id", Value: rule}},
		Window:   event.Window{Start: since.UTC(), End: now},
		Evidence: []uint64{},
		Summary: fmt.Sprintf("rule %s evicted %d groups since %s, as many as it holds (max_groups %d): groups seen once first, "+
			"then the least recently active, were dropped, and with them perhaps an attack in progress. A flood of distinct values does this; so does more traffic than max_groups fits.",
			rule, n, since.UTC().Format(time.RFC3339), maxGroups),
	}
}
