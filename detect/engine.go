package detect

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/accessledger/accessledger/event"
)

// Defaults for Config.
const (
	DefaultLateness          = 2 * time.Minute
	DefaultMaxGroups         = 200_000
	DefaultMaxEventsPerGroup = 1000
)

// Config tunes an Engine. The zero value uses the defaults.
type Config struct {
	// Lists are the named lists the expand modifier reads.
	Lists Lists
	// Location is the time zone of the time-part modifiers (hour,
	// weekday, ...); nil means UTC.
	Location *time.Location
	// Lateness is how far behind the latest event time (the watermark)
	// an event may arrive and still count in correlation windows
	// (default 2m). Later events are matched by single-event rules but
	// left out of correlations, and counted.
	Lateness time.Duration
	// MaxGroups bounds the groups each correlation keeps (default
	// 200,000); beyond it a group is evicted, and counted: the least
	// recently active of those that have seen one event, and only when
	// there are none of those, of the others (groupLRU).
	MaxGroups int
	// MaxEventsPerGroup bounds the events a window keeps per group
	// (default 1000); beyond it the oldest are dropped, and counted.
	MaxEventsPerGroup int
	// Alerting, if set, decides which rules raise alerts, overriding
	// Sigma's default (a rule raises alerts unless a correlation refers
	// to it without generate: true). Rule tests use it.
	Alerting func(r *Rule) bool
}

func (c *Config) setDefaults() {
	if c.Location == nil {
		c.Location = time.UTC
	}
	if c.Lateness <= 0 {
		c.Lateness = DefaultLateness
	}
	if c.MaxGroups <= 0 {
		c.MaxGroups = DefaultMaxGroups
	}
	if c.MaxEventsPerGroup <= 0 {
		c.MaxEventsPerGroup = DefaultMaxEventsPerGroup
	}
}

// Engine evaluates a compiled rule set over a stream of events. It is
// owned by one goroutine: Process, the state methods and Stats must not
// be called concurrently.
type Engine struct {
	cfg        Config
	rules      []*compiledRule       // detection rules, in load order
	byCategory [6][]*compiledRule    // detection rules by category index; [5] for any
	corrs      []*correlator         // correlations, inner before outer
	byID       map[string]*ruleStats // every rule, by id
	order      []string              // rule ids in load order
	set        *RuleSet

	watermark int64 // highest (capped) event time seen, unix ns
	processed uint64
	seq       uint64 // numbers the Process calls, for the entity tables' caches
	late      uint64
	alerts    []*event.Alert // reused by Process
	dirtyMeta bool
	savedOnce bool     // fingerprints written since LoadState
	stale     []string // state keys to delete at the next SaveState
	// keyBuf and valBuf are where a save encodes each group (setGroup).
	keyBuf, valBuf []byte
	// due is the earliest end of a window of a condition with an upper
	// bound still open (math.MaxInt64 if none): the watermark less the
	// lateness passing it closes windows (closeDue). A pass closes
	// every window then due; the next waits until the watermark less
	// the lateness reaches nextClose, closeStep of event time later, so
	// that many groups closing at different times cost one pass, not one
	// each.
	due, nextClose, closeStep int64
	// idleClosed is where FlushIdle last closed windows (unix ns): an
	// event dated before it arrives too late for any window, as one
	// behind the watermark less the lateness does; else it opened a new
	// window over one already closed, which fired again.
	idleClosed int64
}

// ruleStats are a rule's counters.
type ruleStats struct {
	rule       *Rule
	alerting   bool
	matches    uint64
	alerts     uint64
	suppressed uint64
	corr       *correlator
}

// compiledRule is a detection rule ready to match.
type compiledRule struct {
	rule      *Rule
	stats     *ruleStats
	match     matcher
	consumers []consumer
	suppress  *suppressor
	respond   []responseRef
	fp        stateFP // of its suppressions
}

// consumer is a correlation fed by a rule, at one of its input slots.
type consumer struct {
	c    *correlator
	slot int
}

type responseRef struct {
	spec  ResponseSpec
	field fieldRef
}

var categoryIndex = map[string]int{
	event.CategoryAuthentication: 0, event.CategoryAuthorization: 1, event.CategoryDataAccess: 2,
	event.CategoryAdmin: 3, event.CategorySystem: 4,
}

// categoryOf is categoryIndex[category], or 5 for any other category,
// without a map lookup.
func categoryOf(category string) int {
	switch category {
	case event.CategoryAuthentication:
		return 0
	case event.CategoryAuthorization:
		return 1
	case event.CategoryDataAccess:
		return 2
	case event.CategoryAdmin:
		return 3
	case event.CategorySystem:
		return 4
	}
	return 5
}

// Compile checks and compiles the enabled rules of rs. Errors are
// returned as Errors naming file and line.
func Compile(rs *RuleSet, cfg Config) (*Engine, error) {
	cfg.setDefaults()
	e := &Engine{cfg: cfg, byID: map[string]*ruleStats{}, set: rs, due: math.MaxInt64,
		closeStep: max(int64(cfg.Lateness)/8, int64(time.Second))}
	cc := &compileCtx{lists: cfg.Lists, loc: cfg.Location}
	var errs Errors
	add := func(err error) {
		var es Errors
		if errors.As(err, &es) {
			errs = append(errs, es...)
			return
		}
		errs = append(errs, asError(err))
	}
	// Which rules raise alerts of their own: by Sigma's default, every
	// rule no correlation refers to, plus those referred to by a
	// correlation with generate: true.
	referenced := map[*Rule]bool{}
	generated := map[*Rule]bool{}
	for _, r := range rs.Rules {
		if r.Correlation == nil || !r.Enabled() {
			continue
		}
		for _, ref := range r.Correlation.Rules {
			if d := rs.lookup(ref); d != nil {
				referenced[d] = true
				if r.Correlation.Generate {
					generated[d] = true
				}
			}
		}
	}
	alerting := func(r *Rule) bool {
		if cfg.Alerting != nil {
			return cfg.Alerting(r)
		}
		// Sigma: informational rules are for enrichment, "no case or
		// alerting should be triggered".
		return (!referenced[r] || generated[r]) && r.Level != event.LevelInformational
	}
	compiledByRule := map[*Rule]*compiledRule{}
	corrByRule := map[*Rule]*correlator{}
	for _, r := range rs.Rules {
		st := &ruleStats{rule: r, alerting: alerting(r) && r.Enabled()}
		e.byID[r.ID] = st
		e.order = append(e.order, r.ID)
		if !r.Enabled() {
			continue
		}
		if r.Correlation != nil {
			continue
		}
		cr, err := compileRule(cc, r)
		if err != nil {
			add(err)
			continue
		}
		cr.stats = st
		compiledByRule[r] = cr
		e.rules = append(e.rules, cr)
		idx := 5
		if i, ok := categoryIndex[r.Logsource.Category]; ok && r.Logsource.Category != "" {
			idx = i
		}
		if idx == 5 {
			for i := range e.byCategory {
				e.byCategory[i] = append(e.byCategory[i], cr)
			}
		} else {
			e.byCategory[idx] = append(e.byCategory[idx], cr)
		}
	}
	// Correlations, inner before outer.
	var visit func(r *Rule) *correlator
	visiting := map[*Rule]bool{}
	visit = func(r *Rule) *correlator {
		if c, ok := corrByRule[r]; ok {
			return c
		}
		if visiting[r] {
			return nil
		}
		visiting[r] = true
		for _, ref := range r.Correlation.Rules {
			if d := rs.lookup(ref); d != nil && d.Correlation != nil && d.Enabled() {
				visit(d)
			}
		}
		c, err := compileCorrelation(cc, &e.cfg, r, rs)
		if err != nil {
			add(err)
			corrByRule[r] = nil
			return nil
		}
		c.stats = e.byID[r.ID]
		c.stats.corr = c
		corrByRule[r] = c
		e.corrs = append(e.corrs, c)
		// Wire inputs.
		for slot, ref := range r.Correlation.Rules {
			d := rs.lookup(ref)
			switch {
			case d == nil:
			case d.Correlation == nil:
				if cr := compiledByRule[d]; cr != nil {
					cr.consumers = append(cr.consumers, consumer{c, slot})
				}
			default:
				if ic := corrByRule[d]; ic != nil {
					ic.consumers = append(ic.consumers, consumer{c, slot})
				}
			}
		}
		return c
	}
	for _, r := range rs.Rules {
		if r.Correlation != nil && r.Enabled() {
			visit(r)
		}
	}
	for _, r := range rs.Rules {
		if !r.Enabled() {
			continue
		}
		if r.Correlation != nil {
			for _, ref := range r.Correlation.Rules {
				if d := rs.lookup(ref); d != nil && !d.Enabled() {
					errs = append(errs, r.docPos.errorf("correlation rule %q refers to rule %q, whose status %s disables it", r.ID, ref, d.Status))
				}
			}
		}
	}
	// Fingerprints, for state saved by another version of a rule: of
	// what the state depends on, not of the whole rule (fingerprint.go).
	e.fingerprints(rs)
	if len(errs) > 0 {
		return nil, errs
	}
	e.buildTables()
	return e, nil
}

// asError returns err as an *Error: itself if it is one.
func asError(err error) *Error {
	var re *Error
	if errors.As(err, &re) {
		return re
	}
	return &Error{Msg: err.Error(), kind: ErrInvalid}
}

// compileRule compiles a detection rule: its log source, exceptions and
// condition.
func compileRule(cc *compileCtx, r *Rule) (*compiledRule, error) {
	d := r.detection
	if d == nil || len(d.conditions) == 0 {
		return nil, r.docPos.errorf("rule %q has no usable detection", r.ID)
	}
	// Every selection's problems, in a fixed order: lint reports them
	// all, and the same ones at every run.
	sels := map[string]matcher{}
	var errs Errors
	for _, name := range slices.Sorted(maps.Keys(d.selections)) {
		m, err := compileSelection(cc, d.selections[name])
		if err != nil {
			errs = append(errs, asError(err))
			continue
		}
		sels[name] = m
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
		return nil, errs
	}
	var conds orMatcher
	for _, c := range d.conditions {
		conds = append(conds, compileCond(c, sels))
	}
	var all andMatcher
	// Process gives a rule of a known category only the events of that
	// category (Engine.byCategory): only an unknown one needs checking.
	if _, known := categoryIndex[r.Logsource.Category]; !known && r.Logsource.Category != "" {
		all = append(all, strAnyMatcher{f: fieldRef{id: fCategory, kind: kindString, name: "category"}, cased: true,
			pats: []pattern{{op: opEq, lit: r.Logsource.Category}}})
	}
	if ls := r.Logsource; ls.Service != "" {
		all = append(all, strAnyMatcher{f: fieldRef{id: fService, kind: kindString, name: "service"},
			pats: []pattern{{op: opEq, lit: toLower(ls.Service)}}})
	}
	for _, ex := range r.exceptions {
		m, err := compileSelection(cc, ex)
		if err != nil {
			return nil, err
		}
		all = append(all, notMatcher{m})
	}
	if len(conds) == 1 {
		all = append(all, conds[0])
	} else {
		all = append(all, conds)
	}
	cr := &compiledRule{rule: r, match: simplifyAnd(all)}
	var err error
	if cr.suppress, err = newSuppressor(r, nil); err != nil {
		return nil, err
	}
	if cr.respond, err = responseRefs(r); err != nil {
		return nil, err
	}
	return cr, nil
}

func responseRefs(r *Rule) ([]responseRef, error) {
	var out []responseRef
	for _, rs := range r.Response {
		ref := responseRef{spec: rs}
		if rs.Target != "" {
			f, ok := lookupField(rs.Target)
			if !ok {
				return nil, r.docPos.errorf("response target %q is not a field", rs.Target)
			}
			ref.field = f
		}
		out = append(out, ref)
	}
	return out, nil
}

func compileCond(c condAST, sels map[string]matcher) matcher {
	switch c := c.(type) {
	case condAnd:
		return andMatcher{compileCond(c.l, sels), compileCond(c.r, sels)}
	case condOr:
		return orMatcher{compileCond(c.l, sels), compileCond(c.r, sels)}
	case condNot:
		return notMatcher{compileCond(c.x, sels)}
	case condRef:
		return sels[c.name]
	case condOf:
		var ms []matcher
		for _, n := range c.names {
			ms = append(ms, sels[n])
		}
		if len(ms) == 1 {
			return ms[0]
		}
		if c.all {
			return andMatcher(ms)
		}
		return orMatcher(ms)
	}
	panic(fmt.Sprintf("detect: unknown condition node %T", c))
}

// Process evaluates every enabled rule on rec and returns the alerts it
// raises, in rule order. The returned slice is reused by the next call.
func (e *Engine) Process(rec *Record) []*event.Alert {
	e.alerts = e.alerts[:0]
	e.processed++
	e.seq++
	rec.loc = e.cfg.Location
	t := rec.Event.Time.UnixNano()
	wm := t
	if !rec.ReceivedAt.IsZero() {
		// An event dated in the future does not move the watermark
		// beyond the time the log received it.
		wm = min(wm, rec.ReceivedAt.UnixNano())
	}
	if wm > e.watermark {
		e.watermark = wm
		e.dirtyMeta = true
		// Before this event is counted: it may belong to the window
		// after one that closes now.
		e.closeDue(wm - int64(e.cfg.Lateness))
	}
	late := t < e.watermark-int64(e.cfg.Lateness) || t < e.idleClosed
	if late {
		e.late++
	}
	for _, cr := range e.byCategory[categoryOf(rec.Event.Category)] {
		if !cr.match.match(rec) {
			continue
		}
		cr.stats.matches++
		if cr.stats.alerting {
			e.raiseSingle(cr, rec)
		}
		if late {
			continue
		}
		for _, c := range cr.consumers {
			e.feed(c.c, hit{rec: rec, t: t, idx: rec.Index, slot: c.slot})
		}
	}
	if rec.Index%1024 == 1023 {
		// By log index, not by count since start: a restarted detector
		// sweeps where an uninterrupted one did, and raises the same
		// alerts.
		e.sweep()
	}
	return e.alerts
}

// Flush closes every window whose end is before the watermark less the
// lateness, and drops expired state, as Process does every 1024 leaves
// (a detector calls it for a leaf that is not an event), and returns the
// alerts that raises (for conditions evaluated at the window's end, such
// as lt).
func (e *Engine) Flush() []*event.Alert {
	e.alerts = e.alerts[:0]
	e.sweep()
	return e.alerts
}

// FlushIdle closes the windows of conditions with an upper bound (lt,
// lte, eq, neq) that the watermark would have closed had event time gone
// on for idle past it, and returns the alerts that raises. Only events
// move the watermark: a detector calls FlushIdle while the log is idle,
// with how long it has been, so that such windows close lateness after
// their end in any case. Like Process, it closes them in passes at most
// lateness/8 (and at least a second) of event time apart.
//
// What it closes is state to save (it sets dirtyMeta): a restart that
// lost it would count late events into the windows it closed, and fire
// them again.
func (e *Engine) FlushIdle(idle time.Duration) []*event.Alert {
	e.alerts = e.alerts[:0]
	if closed := e.watermark + int64(idle) - int64(e.cfg.Lateness); e.watermark != 0 && idle > 0 && e.closeDue(closed) {
		e.idleClosed = max(e.idleClosed, closed)
		e.dirtyMeta = true
	}
	return e.alerts
}

// Close ends the stream: it closes every window, as if time had moved on
// past them, and returns the alerts that raises (conditions evaluated at a
// window's end). For replays of a finished stream (rules run, tests); an
// engine that follows a live log never calls it.
func (e *Engine) Close() []*event.Alert {
	e.watermark = 1<<62 - 1
	return e.Flush()
}

// raiseSingle raises the alert of a single-event rule.
func (e *Engine) raiseSingle(cr *compiledRule, rec *Record) {
	st := cr.stats
	t := rec.Event.Time
	if cr.suppress != nil && cr.suppress.suppressed(rec, nil, t.UnixNano()) {
		st.suppressed++
		return
	}
	r := cr.rule
	a := &event.Alert{
		DedupKey:      dedupKey(r.ID, "event:"+strconv.FormatUint(rec.Index, 10), t.UnixNano()),
		Time:          t.UTC(),
		Rule:          alertRule(r),
		Window:        event.Window{Start: t.UTC(), End: t.UTC()},
		Evidence:      []uint64{rec.Index},
		EvidenceCount: 1,
		Summary:       singleSummary(r, rec),
		Response:      responses(cr.respond, rec, nil),
	}
	st.alerts++
	e.alerts = append(e.alerts, a)
}

func alertRule(r *Rule) event.AlertRule {
	title := r.Title
	if len(title) > event.MaxAlertText {
		title = title[:event.MaxAlertText]
	}
	return event.AlertRule{ID: r.ID, Title: title, Level: r.Level, Tags: slices.Clone(r.Tags)}
}

// dedupKey is the stable identity of an alert: the rule, the group and
// the window's start. It reads <rule id>:<32 hex digits>.
func dedupKey(ruleID, group string, windowStart int64) string {
	h := sha256.New()
	h.Write([]byte(group))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, windowStart, 10))
	return ruleID + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}

func singleSummary(r *Rule, rec *Record) string {
	ev := rec.Event
	s := fmt.Sprintf("%s: %s %s %s by %s from %s", r.Title, ev.Service, ev.Action, ev.Outcome, ev.Actor.ID, ev.Source.IP)
	if ev.Resource != nil && (ev.Resource.Type != "" || ev.Resource.ID != "") {
		s += fmt.Sprintf(" on %s %s", ev.Resource.Type, ev.Resource.ID)
	}
	return clip(s)
}

func clip(s string) string {
	if len(s) <= event.MaxAlertText {
		return s
	}
	return s[:event.MaxAlertText-3] + "..."
}

// responses resolves a rule's response actions against the triggering
// record (or, without one, the group's values).
func responses(refs []responseRef, rec *Record, group []event.GroupValue) []event.ResponseAction {
	if len(refs) == 0 {
		return nil
	}
	out := make([]event.ResponseAction, 0, len(refs))
	for _, ref := range refs {
		a := event.ResponseAction{Action: ref.spec.Action, Target: ref.spec.Target, DurationSeconds: int64(ref.spec.Duration / time.Second)}
		if ref.spec.Target != "" {
			found := false
			for _, g := range group {
				if g.Field == ref.spec.Target {
					a.Value, found = g.Value, true
				}
			}
			if !found && rec != nil {
				a.Value, found = rec.str(ref.field)
			}
			if !found || a.Value == "" {
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

// RuleStatus is a rule as loaded, with its counters since start.
type RuleStatus struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Type        string   `json:"type"` // detection, or the correlation type
	Status      string   `json:"status,omitempty"`
	Level       string   `json:"level"`
	Tags        []string `json:"tags,omitempty"`
	File        string   `json:"file"`
	Enabled     bool     `json:"enabled"`
	Alerting    bool     `json:"alerting"`
	Matches     uint64   `json:"matches"`
	Alerts      uint64   `json:"alerts"`
	Suppressed  uint64   `json:"suppressed"`
	Groups      int      `json:"groups,omitempty"`
	Evicted     uint64   `json:"evicted,omitempty"`
	NeedsEnrich bool     `json:"needs_enrichment,omitempty"`
}

// Stats summarises the engine.
type Stats struct {
	Processed uint64
	// Late counts events that arrived too late for correlation windows.
	Late uint64
	// Groups is the state held, in groups, over all correlations;
	// Evicted counts groups and window events dropped for the bounds.
	Groups  int
	Evicted uint64
	// Watermark is the latest event time seen (capped at receipt time).
	Watermark time.Time
	Rules     []RuleStatus
}

// Stats returns the engine's counters and its rules' statuses, in load
// order.
func (e *Engine) Stats() Stats {
	s := Stats{Processed: e.processed, Late: e.late}
	if e.watermark != 0 {
		s.Watermark = time.Unix(0, e.watermark).UTC()
	}
	for _, id := range e.order {
		st := e.byID[id]
		r := st.rule
		rs := RuleStatus{ID: r.ID, Title: r.Title, Type: "detection", Status: r.Status, Level: r.Level, Tags: r.Tags,
			File: r.File, Enabled: r.Enabled(), Alerting: st.alerting, Matches: st.matches, Alerts: st.alerts, Suppressed: st.suppressed}
		if r.Correlation != nil {
			rs.Type = r.Correlation.Type
		}
		if c := st.corr; c != nil {
			rs.Groups = c.ngroups
			rs.Evicted = c.evicted
			s.Groups += c.ngroups
			s.Evicted += c.evicted
		}
		rs.NeedsEnrich = needsEnrichment(e.set, r)
		s.Rules = append(s.Rules, rs)
	}
	return s
}

// needsEnrichment reports whether a rule reads fields that enrichment
// fills (source.geo.*, source.asn), directly or through the rules it
// correlates.
func needsEnrichment(rs *RuleSet, r *Rule) bool {
	uses := func(name string) bool {
		return strings.HasPrefix(name, "source.geo.") || name == "source.asn"
	}
	if r.Correlation != nil {
		c := r.Correlation
		if c.Type == GeoVelocity {
			return true
		}
		if slices.ContainsFunc(c.GroupBy, uses) || slices.ContainsFunc(c.Field, uses) {
			return true
		}
		if c.NewTerm != nil && slices.ContainsFunc(c.NewTerm.Fields, uses) {
			return true
		}
		for _, ref := range c.Rules {
			if d := rs.lookup(ref); d != nil && d != r && needsEnrichment(rs, d) {
				return true
			}
		}
		return false
	}
	if r.detection == nil {
		return false
	}
	for _, s := range r.detection.selections {
		for _, alt := range s.alts {
			for _, fc := range alt {
				if uses(fc.field.name) && !fc.has(modExists) {
					return true
				}
			}
		}
	}
	return false
}

// Rules returns the rule set the engine was compiled from.
func (e *Engine) Rules() *RuleSet { return e.set }

// NeedsEnrichment lists the enabled rules that read source.geo or
// source.asn, which events often carry only after enrichment.
func (e *Engine) NeedsEnrichment() []string {
	var out []string
	for _, id := range e.order {
		st := e.byID[id]
		if st.rule.Enabled() && needsEnrichment(e.set, st.rule) {
			out = append(out, id)
		}
	}
	return out
}

// NeedsEnrichment reports whether rule r of rs reads source.geo or
// source.asn (directly or through the rules it correlates), which events
// often carry only after enrichment.
func NeedsEnrichment(rs *RuleSet, r *Rule) bool { return needsEnrichment(rs, r) }
