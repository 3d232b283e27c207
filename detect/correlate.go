package detect

import (
	"fmt"
	"iter"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/accessledger/accessledger/event"
)

// hit is one input of a correlation: an event matched by a detection rule,
// or the firing of an inner correlation.
type hit struct {
	rec  *Record // the triggering event; nil for a window closed by time
	t    int64   // event time, unix ns
	idx  uint64  // the triggering event's index
	slot int     // which of the correlation's rules
	// For an inner correlation's firing: its evidence and its group's
	// values by field name.
	evidence []uint64
	inner    map[string]string
}

// correlator evaluates one correlation rule.
type correlator struct {
	rule     *Rule
	spec     *Correlation
	stats    *ruleStats
	cfg      *Config
	span     int64
	lateness int64
	keep     int64 // how long an idle group is kept, past its last event
	monotone bool  // the condition only has lower bounds: fire early
	nslots   int
	// groupBy[slot] are the fields (after aliases) whose values form the
	// group key, for events of that slot; groupNames are the names in
	// alerts.
	groupBy    [][]fieldRef
	groupNames []string
	valueBy    [][]fieldRef // value_count's fields, new_term's fields
	derived    []bool       // slot fed by an inner correlation
	consumers  []consumer
	suppress   *suppressor
	respond    []responseRef
	exceptions []matcher
	fp         stateFP // of its groups and suppressions

	table   *entityTable // holds the groups, in column column
	column  int
	ngroups int
	lru     groupLRU
	evicted uint64
	deleted []string // keys of groups removed since the last save
	dirty   []*group // groups changed since the last save
	// groups are allocated from slabs (newGroup); free holds the slots
	// of removed groups, for reuse.
	slab []group
	free []*group
	// evidence holds, by group, the evidence of the items that carry an
	// inner correlation's firing (item.hasEv); nil but in correlations
	// fed by another. It is kept here rather than in group, which it
	// would make larger than 192 bytes (TestGroupSize).
	evidence map[*group]map[itemKey][]uint64
}

// markDirty records that g must be saved.
func (c *correlator) markDirty(g *group) {
	if !g.dirty {
		g.dirty = true
		c.dirty = append(c.dirty, g)
	}
}

// group is one group's state in a correlation. Its fields are owned by the
// engine's goroutine.
//
// A group is 192 bytes, a multiple of the cache line, so groups start on
// one in their slab (newGroup). What every event reads, and a baseline's
// counters, are in its first 64 bytes.
type group struct {
	stamp uint64 // of its latest entry in the LRU queue; 0 once removed
	first int64  // first event time seen
	last  int64  // latest event time seen
	dirty bool
	fired bool // baseline: the current bucket has fired
	// protected: in the LRU's protected segment (groupLRU); not saved.
	protected bool
	// truncated: insertItem dropped the oldest events of the group's
	// window beyond MaxEventsPerGroup; closeGroup knows its count only
	// from below. Not saved.
	truncated bool
	// firedGap is how far, in milliseconds, the end of the latest
	// firing's window is before firedUntil (consume); in the padding
	// after the bools, so the group stays 192 bytes. Not saved.
	firedGap   uint32
	bucket     int64   // baseline
	count      int64   // baseline
	mean       float64 // baseline
	firedUntil int64   // the latest end of a firing's window, in event time (consume); saved

	bucketEvid []uint64   // baseline: the latest events of the bucket (see baselineEvidence)
	terms      []term     // new_term
	ent        *entity    // in the correlation's table; its key is the group's
	vals       []string   // group-by values, in groupNames order
	points     []geoPoint // geo_velocity
	items      []item
}

// key returns the group's key.
func (g *group) key() string { return g.ent.key }

// item is one event in a group's window. It holds no pointer, so the
// windows, most of the detector's state, cost the garbage collector
// nothing to scan (BenchmarkStateGC); the rare evidence of an inner
// correlation's firing is in the correlator's evidence map.
type item struct {
	t     int64
	idx   uint64
	val   uint64 // value hash (value_count)
	slot  int32
	hasEv bool // its inner firing's evidence is in correlator.evidence
}

// itemKey identifies an item of a group: one event feeds a slot once.
type itemKey struct {
	idx  uint64
	slot int32
}

func (it item) key() itemKey { return itemKey{it.idx, it.slot} }

// item returns g's item for hit h, recording its evidence.
func (c *correlator) item(g *group, h *hit) item {
	it := item{t: h.t, idx: h.idx, slot: int32(h.slot)}
	if h.evidence != nil {
		c.setEvidence(g, it.key(), h.evidence)
		it.hasEv = true
	}
	return it
}

func (c *correlator) setEvidence(g *group, k itemKey, ev []uint64) {
	if c.evidence == nil {
		c.evidence = map[*group]map[itemKey][]uint64{}
	}
	m := c.evidence[g]
	if m == nil {
		m = map[itemKey][]uint64{}
		c.evidence[g] = m
	}
	m[k] = ev
}

// evidenceOf returns the evidence of g's item it, if it carries any.
func (c *correlator) evidenceOf(g *group, it item) []uint64 {
	if !it.hasEv {
		return nil
	}
	return c.evidence[g][it.key()]
}

// setItems replaces g's window, forgetting the evidence of the items
// dropped from it.
func (c *correlator) setItems(g *group, items []item) {
	g.items = items
	m := c.evidence[g]
	if m == nil {
		return
	}
	keep := 0
	for _, it := range items {
		if it.hasEv {
			keep++
		}
	}
	switch {
	case keep == len(m):
	case keep == 0:
		delete(c.evidence, g)
	default:
		kept := make(map[itemKey][]uint64, keep)
		for _, it := range items {
			if it.hasEv {
				kept[it.key()] = m[it.key()]
			}
		}
		c.evidence[g] = kept
	}
}

func itemLess(a, b item) bool { return a.t < b.t || a.t == b.t && a.idx < b.idx }

type term struct {
	hash uint64
	last int64
}

type geoPoint struct {
	t        int64
	idx      uint64
	lat, lon float64
}

// groupLRU orders a correlation's groups for eviction: a segmented LRU
// (SLRU). A new group enters the probation segment; a group that gets a
// second event moves to the protected segment, which holds at most
// protectedCap of MaxGroups; when it overflows, its least recently active
// group is demoted (to a segment of its own, so that each segment stays
// in order of last activity, which sweep relies on: demoted at
// probation's most recent end, an expired group hid behind newer ones).
// Eviction takes probation's least recently active group, then the
// demoted segment's, and protected's only when both are empty. A demoted
// or probation group that gets an event is protected again.
//
// This makes eviction resist scans: a flood of distinct values (failed
// logins for random accounts, one each) cycles through probation and
// leaves the groups that have seen more than one event, such as a brute
// force in progress, in place. A plain LRU evicted them after max_groups
// distinct values.
type groupLRU struct {
	probation, demoted, protected lruQueue
	nprot                         int    // groups in protected
	clock                         uint64 // of the latest stamp: stamps are unique across the segments
}

// protectedShare is the share of MaxGroups (in tenths) the protected
// segment may hold; the rest is for new groups.
const protectedShare = 8

// protectedCap is how many groups the protected segment of a correlation
// keeping maxGroups may hold: protectedShare of them, and always fewer
// than maxGroups, so that there is always another group than a new one
// to evict (with max_groups 1 a new group evicted itself, and the engine
// went on writing to the freed slot; victim also never takes it).
func protectedCap(maxGroups int) int {
	return min(max(1, maxGroups*protectedShare/10), maxGroups-1)
}

// add puts new group g, of a correlation that holds n groups, at
// probation's most recent end.
func (l *groupLRU) add(g *group, n int) {
	g.protected = false
	l.clock++
	l.probation.push(g, l.clock, n)
}

// touch makes g, which has a new event, the most recently active group of
// protected, moving it there if it is not in it yet; then, if protected
// holds more than protectedCap(maxGroups), its least recently active
// group is demoted.
func (l *groupLRU) touch(g *group, n, maxGroups int) {
	if g.protected {
		if l.protected.isLast(g) {
			return // already the most recent
		}
		l.clock++
		l.protected.push(g, l.clock, n)
		return
	}
	g.protected = true
	l.nprot++
	l.clock++
	l.protected.push(g, l.clock, n)
	if l.nprot > protectedCap(maxGroups) {
		if d := l.protected.front(); d != nil {
			l.nprot--
			d.protected = false
			l.clock++
			l.demoted.push(d, l.clock, n)
		}
	}
}

// victim returns the group to evict, other than except (the group just
// added, which must stay: the engine goes on with it): probation's least
// recently active, else the demoted segment's, else protected's; nil if
// there is none.
func (l *groupLRU) victim(except *group) *group {
	for _, q := range []*lruQueue{&l.probation, &l.demoted, &l.protected} {
		// The front is the least recently active: if it is except,
		// the most recent, it is the segment's only group.
		if g := q.front(); g != nil && g != except {
			return g
		}
	}
	return nil
}

// remove takes g out of its segment (its entries go stale).
func (l *groupLRU) remove(g *group) {
	if g.protected {
		l.nprot--
	}
	g.stamp, g.protected = 0, false
}

// all yields the groups of probation, then demoted, then protected, each
// from the least to the most recently active.
func (l *groupLRU) all(yield func(*group) bool) {
	for _, q := range []*lruQueue{&l.probation, &l.demoted, &l.protected} {
		for g := range q.all {
			if !yield(g) {
				return
			}
		}
	}
}

// segments yields probation, demoted, then protected: each is ordered by
// last activity.
func (l *groupLRU) segments(yield func(*lruQueue) bool) {
	_ = yield(&l.probation) && yield(&l.demoted) && yield(&l.protected)
}

// trim drops stale entries of the segments (see lruQueue.trim).
func (l *groupLRU) trim(n int) {
	l.probation.trim(n)
	l.demoted.trim(n)
	l.protected.trim(n)
}

// lruQueue orders groups by last activity, least recent first. Pushing a
// group appends it with a new stamp; its older entries go stale, are
// skipped, and are dropped when the queue is compacted. Unlike a linked
// list, a push writes only the group and the queue's end, not the group's
// neighbours, which are seldom in cache.
type lruQueue struct {
	q    []lruEntry
	head int // q[:head] are popped
}

type lruEntry struct {
	g     *group
	stamp uint64
}

func (en lruEntry) live() bool { return en.g.stamp == en.stamp }

// isLast reports whether g is the queue's most recent group.
func (l *lruQueue) isLast(g *group) bool {
	k := len(l.q)
	return k > l.head && l.q[k-1].g == g && g.stamp == l.q[k-1].stamp
}

// push makes g, with a new stamp, the most recently active of the
// queue's groups; n bounds how many groups the queue holds.
func (l *lruQueue) push(g *group, stamp uint64, n int) {
	g.stamp = stamp
	l.q = append(l.q, lruEntry{g, stamp})
	if len(l.q) > 2*n+64 {
		l.compact()
	}
}

// compact drops the stale entries, keeping the order.
func (l *lruQueue) compact() {
	n := 0
	for _, en := range l.q[l.head:] {
		if en.live() {
			l.q[n] = en
			n++
		}
	}
	clear(l.q[n:])
	l.q, l.head = l.q[:n], 0
}

// front returns the least recently active group, or nil.
func (l *lruQueue) front() *group {
	for l.head < len(l.q) {
		if en := l.q[l.head]; en.live() {
			return en.g
		}
		l.q[l.head] = lruEntry{}
		l.head++
	}
	return nil
}

// all yields the groups from the least to the most recently active.
func (l *lruQueue) all(yield func(*group) bool) {
	for i := l.head; i < len(l.q); i++ {
		if en := l.q[i]; en.live() && !yield(en.g) {
			return
		}
	}
}

// trim drops the stale entries once they outnumber the live ones (at
// most n), and otherwise those at the front.
func (l *lruQueue) trim(n int) {
	if len(l.q) > 2*n+64 {
		l.compact()
	} else {
		l.front()
	}
}

func compileCorrelation(cc *compileCtx, cfg *Config, r *Rule, rs *RuleSet) (*correlator, error) {
	spec := r.Correlation
	c := &correlator{
		rule: r, spec: spec, cfg: cfg,
		span: int64(spec.Timespan), lateness: int64(cfg.Lateness),
		nslots: len(spec.Rules),
	}
	errorf := func(format string, args ...any) error {
		return r.docPos.errorf("correlation %q: %s", r.ID, fmt.Sprintf(format, args...))
	}
	c.monotone = true
	for _, cond := range spec.Condition {
		if cond.Op != "gt" && cond.Op != "gte" {
			c.monotone = false
		}
	}
	if !c.monotone && spec.Type != EventCount && spec.Type != ValueCount {
		return nil, &Error{File: r.File, Line: r.Line, Feature: spec.Type + " condition " + spec.Condition[0].Op,
			Msg: "temporal correlations take gt or gte conditions only (they fire as soon as the rules have matched)", kind: ErrUnsupported}
	}
	// A window keeps at most MaxEventsPerGroup events (insertItem), so
	// it counts no more events, nor distinct values: a condition that
	// needs more never fired, and lint said the rule was fine.
	if lo, _, ok := spec.countRange(); ok && (spec.Type == EventCount || spec.Type == ValueCount) && lo > float64(cfg.MaxEventsPerGroup) {
		return nil, errorf("the condition can never be met: it needs %v or more, and a window keeps at most max_events_per_group (%d) events; raise the setting or lower the condition",
			lo, cfg.MaxEventsPerGroup)
	}
	c.keep = c.span + c.lateness
	switch spec.Type {
	case Baseline:
		c.keep = int64(spec.Baseline.History) + c.span
	case NewTerm:
		c.keep = c.span + c.lateness
	}
	c.groupNames = spec.GroupBy
	c.groupBy = make([][]fieldRef, c.nslots)
	c.valueBy = make([][]fieldRef, c.nslots)
	c.derived = make([]bool, c.nslots)
	for slot, ref := range spec.Rules {
		d := rs.lookup(ref)
		if d == nil {
			return nil, errorf("rule %q is not loaded", ref)
		}
		if d.Correlation != nil {
			c.derived[slot] = true
			switch spec.Type {
			case NewTerm, GeoVelocity, Baseline:
				return nil, errorf("a %s correlation must refer to Sigma rules, not to correlation %q", spec.Type, ref)
			}
		}
		resolveField := func(name string) (string, bool) {
			if a, ok := spec.Aliases[name]; ok {
				f, ok := a[d.Name]
				if !ok && d.ID != "" {
					f, ok = a[d.ID]
				}
				return f, ok
			}
			return name, true
		}
		for _, gname := range spec.GroupBy {
			fname, ok := resolveField(gname)
			if !ok {
				return nil, errorf("alias %q gives no field for rule %q (aliases are keyed by rule name)", gname, ref)
			}
			f, ok := lookupField(fname)
			if !ok {
				return nil, errorf("group-by: unknown field %q; the fields are %s", fname, fieldNames())
			}
			if c.derived[slot] && !slices.Contains(d.Correlation.GroupBy, fname) {
				return nil, errorf("group-by %q: the chained correlation %q does not group by it, so its alerts have no single value of it", fname, ref)
			}
			c.groupBy[slot] = append(c.groupBy[slot], f)
		}
		var vfields []string
		switch spec.Type {
		case ValueCount:
			vfields = spec.Field
		case NewTerm:
			vfields = spec.NewTerm.Fields
		}
		for _, fname := range vfields {
			f, ok := lookupField(fname)
			if !ok {
				return nil, errorf("unknown field %q; the fields are %s", fname, fieldNames())
			}
			if c.derived[slot] && !slices.Contains(d.Correlation.GroupBy, fname) {
				return nil, errorf("field %q: the chained correlation %q does not group by it", fname, ref)
			}
			c.valueBy[slot] = append(c.valueBy[slot], f)
		}
	}
	for name := range spec.Aliases {
		if !slices.Contains(spec.GroupBy, name) {
			return nil, errorf("alias %q is not used in group-by", name)
		}
	}
	var err error
	if c.suppress, err = newSuppressor(r, spec.GroupBy); err != nil {
		return nil, err
	}
	if c.respond, err = responseRefs(r); err != nil {
		return nil, err
	}
	if err := checkResponseTargets(r); err != nil {
		return nil, err
	}
	for _, ex := range r.exceptions {
		// Exceptions of a correlation apply to the events it counts;
		// they are compiled into the referenced rules' matchers by the
		// slot filter below.
		m, err := compileSelection(cc, ex)
		if err != nil {
			return nil, err
		}
		c.exceptions = append(c.exceptions, m)
	}
	return c, nil
}

// checkResponseTargets refuses a response of a counting correlation
// (event_count, value_count, baseline) whose target is not one of its
// group-by fields: its alert stands for many events, which may hold as
// many values of the target, and would name the last event's alone (a
// ban of one of the twenty addresses of a credential stuffing). Other
// correlations take the target's value, when they do not group by it,
// from the event that completed the detection.
func checkResponseTargets(r *Rule) error {
	spec := r.Correlation
	switch spec.Type {
	case EventCount, ValueCount, Baseline:
	default:
		return nil
	}
	for _, rs := range r.Response {
		if rs.Target != "" && !slices.Contains(spec.GroupBy, rs.Target) {
			return r.docPos.errorf("correlation %q: response %s on %s: a %s alert counts many events, which may hold as many values of %s; "+
				"its response may act on its group-by fields only (%s)", r.ID, rs.Action, rs.Target, spec.Type, rs.Target, groupByList(spec.GroupBy))
		}
	}
	return nil
}

func groupByList(fields []string) string {
	if len(fields) == 0 {
		return "it has none"
	}
	return strings.Join(fields, ", ")
}

// groupKeyOf returns the group key of a hit with at most one group-by
// field, its value, without allocating; or false if it lacks it (but
// tenant: see groupValue). appendGroupKey makes the key of more.
func (c *correlator) groupKeyOf(h *hit) (string, bool) {
	fields := c.groupBy[h.slot]
	if len(fields) == 0 {
		return "", true
	}
	return c.groupValue(h, fields[0])
}

// appendGroupKey appends the group key of a hit to b: its group-by
// values, separated by 0x1f; or returns false if it lacks one (but
// tenant: see groupValue).
func (c *correlator) appendGroupKey(b []byte, h *hit) ([]byte, bool) {
	for i, f := range c.groupBy[h.slot] {
		v, ok := c.groupValue(h, f)
		if !ok {
			return b, false
		}
		if i > 0 {
			b = append(b, 0x1f)
		}
		b = append(b, v...)
	}
	return b, true
}

// groupValue returns the hit's value of group-by field f, or false if it
// has none. An event without a tenant (a log of one organisation) groups
// as the empty tenant, so that rules grouping by tenant and account count
// the accounts of such a log as they do without it.
func (c *correlator) groupValue(h *hit, f fieldRef) (string, bool) {
	v, ok := c.fieldOf(h, f)
	if f.id == fTenant {
		return v, true
	}
	return v, ok && v != ""
}

// groupVals returns the group-by values of a hit for a new group, in
// groupNames order, as substrings of key, the group's entity key:
// appendGroupKey joins the same values in the same order. The entity's key is
// a copy (an event's strings share the memory of its whole leaf, which a
// group that outlives the event must not keep), so no value needs one of
// its own. A group keeps none when its key gives them back (valsOf): a
// group of one field, whose value is the key, and one of several whose
// values hold no 0x1f, the separator. Values are most of the objects of
// the detector's state, which every garbage collection marks
// (BenchmarkStateGC).
func (c *correlator) groupVals(h *hit, key string) []string {
	fields := c.groupBy[h.slot]
	if len(fields) <= 1 || splits(key, len(fields)) {
		return nil
	}
	vals := make([]string, len(fields))
	for i, f := range fields {
		vals[i], _ = c.fieldOf(h, f)
	}
	inKey(key, vals)
	return vals
}

// splits reports whether key, which joins n values separated by 0x1f,
// splits back into them: none of them holds a 0x1f.
func splits(key string, n int) bool {
	return strings.Count(key, "\x1f") == n-1
}

// inKey makes vals substrings of key, which joins them in order, separated
// by 0x1f (appendGroupKey).
func inKey(key string, vals []string) {
	off := 0
	for i, v := range vals {
		vals[i] = key[off : off+len(v)]
		off += len(v) + 1
	}
}

// values yields g's group-by fields and values, in groupNames order:
// those it keeps, or its key's (groupVals).
func (c *correlator) values(g *group) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		rest := g.key()
		for i, name := range c.groupNames {
			v := rest
			switch {
			case g.vals != nil:
				v = g.vals[i]
			case i < len(c.groupNames)-1:
				v, rest, _ = strings.Cut(rest, "\x1f")
			}
			if !yield(name, v) {
				return
			}
		}
	}
}

// valsOf returns g's group-by values, in groupNames order.
func (c *correlator) valsOf(g *group) []string {
	if g.vals != nil {
		return g.vals
	}
	var vals []string
	for _, v := range c.values(g) {
		vals = append(vals, v)
	}
	return vals
}

func (c *correlator) fieldOf(h *hit, f fieldRef) (string, bool) {
	if h.inner != nil {
		v, ok := h.inner[f.name]
		return v, ok
	}
	return h.rec.str(f)
}

// valueOf hashes the hit's value_count or new_term fields.
func (c *correlator) valueOf(h *hit) (uint64, bool) {
	fields := c.valueBy[h.slot]
	hash := uint64(14695981039346656037)
	for i, f := range fields {
		var v string
		var ok bool
		if h.inner != nil {
			v, ok = h.inner[f.name]
		} else {
			v, ok = h.rec.str(f)
		}
		if !ok || v == "" {
			return 0, false
		}
		if i > 0 {
			hash = fnvByte(hash, 0x1f)
		}
		for j := 0; j < len(v); j++ {
			hash = fnvByte(hash, v[j])
		}
	}
	return hash, true
}

func fnvByte(h uint64, b byte) uint64 {
	h ^= uint64(b)
	return h * 1099511628211
}

// feed gives a hit to a correlation, and passes what fires on.
func (e *Engine) feed(c *correlator, h hit) {
	if h.rec != nil {
		for _, ex := range c.exceptions {
			if ex.match(h.rec) {
				return
			}
		}
	}
	ent, key, ok := e.entityOf(c, &h)
	if !ok {
		return
	}
	c.stats.matches++
	var g *group
	if ent != nil {
		g = ent.groups[c.column]
	}
	if g == nil {
		if c.spec.Type == TemporalOrdered && h.slot > 0 {
			// Nothing can follow a first rule that has not matched:
			// a group starts with the first rule's event (in log
			// order), which keeps state for busy later rules small.
			return
		}
		if ent == nil {
			ent = c.table.add(key)
		}
		g = c.newGroup()
		g.ent, g.vals, g.first, g.last = ent, c.groupVals(&h, ent.key), h.t, h.t
		ent.groups[c.column] = g
		ent.live++
		c.ngroups++
		c.lru.add(g, c.ngroups)
		if c.ngroups > e.cfg.MaxGroups {
			c.removeGroup(c.lru.victim(g))
			c.evicted++
		}
	} else {
		c.lru.touch(g, c.ngroups, e.cfg.MaxGroups)
	}
	c.markDirty(g)
	if h.t < g.first {
		g.first = h.t
	}
	if h.t > g.last {
		g.last = h.t
	}
	var f *firing
	switch c.spec.Type {
	case EventCount, ValueCount:
		f = e.windowCount(c, g, &h)
	case Temporal:
		f = e.temporal(c, g, &h)
	case TemporalOrdered:
		f = e.temporalOrdered(c, g, &h)
	case NewTerm:
		f = e.newTerm(c, g, &h)
	case GeoVelocity:
		f = e.geoVelocity(c, g, &h)
	case Baseline:
		f = e.baseline(c, g, &h)
	}
	if f != nil {
		e.fire(c, g, f)
	}
}

// firing is a correlation's detection, before suppression.
type firing struct {
	rec        *Record
	t          int64 // event time of the firing: when its window met the condition, or closed
	idx        uint64
	start, end int64
	evidence   []uint64
	count      int // how many events it counted, when evidence holds only some (baseline)
	summary    string
}

// addGroup adds a group of key restored from saved state.
func (c *correlator) addGroup(key string, g *group) {
	if c.table.lookup(c.column, key) == nil {
		c.ngroups++
	}
	c.table.set(c.column, key, g)
}

// lookup returns the group of key, or nil.
func (c *correlator) lookup(key string) *group { return c.table.lookup(c.column, key) }

// removeGroup drops g and frees its slot for the next new group. What
// may still point at the slot holds no claim on it: the LRU queue's stale
// entries compare stamps (a new group gets a new one), and the dirty
// list skips groups that are not dirty or not in the table.
func (c *correlator) removeGroup(g *group) {
	c.lru.remove(g)
	c.table.remove(c.column, g)
	c.ngroups--
	c.deleted = append(c.deleted, g.key())
	delete(c.evidence, g)
	*g = group{}
	c.free = append(c.free, g)
}

// groupSlab is how many groups a slab holds: 96 KiB.
const groupSlab = 512

// newGroup returns a zero group. Groups live in slabs of groupSlab, so
// that the collector marks a slab where it would mark each group: groups
// were 40 % of the objects of the detector's state (BenchmarkStateGC).
// A slab lives as long as one of its groups; the slots of removed groups
// are reused first.
func (c *correlator) newGroup() *group {
	if n := len(c.free); n > 0 {
		g := c.free[n-1]
		c.free = c.free[:n-1]
		return g
	}
	if len(c.slab) == cap(c.slab) {
		c.slab = make([]group, 0, groupSlab)
	}
	c.slab = c.slab[:len(c.slab)+1]
	return &c.slab[len(c.slab)-1]
}

// fire raises a correlation's alert (if it alerts and is not suppressed)
// and feeds the correlations chained to it.
func (e *Engine) fire(c *correlator, g *group, f *firing) {
	ev := normalizeEvidence(f.evidence)
	count := max(f.count, len(ev))
	groupVals := c.groupValues(g)
	st := c.stats
	if st.alerting {
		if c.suppress != nil && c.suppress.suppressed(f.rec, groupVals, f.t) {
			st.suppressed++
		} else {
			r := c.rule
			evList := ev
			if len(evList) > event.MaxEvidence {
				evList = evList[:event.MaxEvidence]
			}
			a := &event.Alert{
				DedupKey:      dedupKey(r.ID, g.key(), f.start),
				Time:          time.Unix(0, f.t).UTC(),
				Rule:          alertRule(r),
				Group:         groupVals,
				Window:        event.Window{Start: time.Unix(0, f.start).UTC(), End: time.Unix(0, f.end).UTC()},
				Evidence:      evList,
				EvidenceCount: count,
				Summary:       clip(r.Title + ": " + f.summary),
				Response:      responses(c.respond, f.rec, groupVals),
			}
			st.alerts++
			e.alerts = append(e.alerts, a)
		}
	}
	if len(c.consumers) == 0 {
		return
	}
	// A chained correlation reads them by name (fieldOf); an empty
	// tenant, left out, reads as none (groupValue).
	inner := make(map[string]string, len(groupVals))
	for _, gv := range groupVals {
		inner[gv.Field] = gv.Value
	}
	for _, cons := range c.consumers {
		e.feed(cons.c, hit{rec: f.rec, t: f.t, idx: f.idx, slot: cons.slot, evidence: ev, inner: inner})
	}
}

// normalizeEvidence sorts and de-duplicates indexes.
func normalizeEvidence(ev []uint64) []uint64 {
	out := slices.Clone(ev)
	slices.Sort(out)
	return slices.Compact(out)
}

// insertItem adds it to the group's window in (time, index) order and
// bounds the window.
func (e *Engine) insertItem(c *correlator, g *group, it item) {
	i := sort.Search(len(g.items), func(i int) bool { return itemLess(it, g.items[i]) })
	g.items = slices.Insert(g.items, i, it)
	// Drop what no window that can still fire may hold.
	horizon := e.watermark - c.lateness - c.span
	drop := 0
	for drop < len(g.items) && g.items[drop].t < horizon {
		drop++
	}
	if n := len(g.items) - drop; n > e.cfg.MaxEventsPerGroup {
		c.evicted += uint64(n - e.cfg.MaxEventsPerGroup)
		drop = len(g.items) - e.cfg.MaxEventsPerGroup
		g.truncated = true
	}
	if drop > 0 {
		c.setItems(g, slices.Delete(g.items, 0, drop))
	}
}

// itemEvidence returns the leaves items stand for: their own, or an
// inner correlation's evidence. One leaf may be there more than once (an
// event matched by two rules of a temporal correlation): fire counts
// them once.
func (c *correlator) itemEvidence(g *group, items []item) []uint64 {
	var ev []uint64
	for _, it := range items {
		if it.hasEv {
			ev = append(ev, c.evidenceOf(g, it)...)
		} else {
			ev = append(ev, it.idx)
		}
	}
	return ev
}

// condMet evaluates the correlation condition on n.
func (c *correlator) condMet(n int) bool {
	for _, cond := range c.spec.Condition {
		v := float64(n)
		ok := true
		switch cond.Op {
		case "gt":
			ok = v > cond.Value
		case "gte":
			ok = v >= cond.Value
		case "lt":
			ok = v < cond.Value
		case "lte":
			ok = v <= cond.Value
		case "eq":
			ok = v == cond.Value
		case "neq":
			ok = v != cond.Value
		}
		if !ok {
			return false
		}
	}
	return true
}

// condMetFrom reports whether the correlation condition holds for every
// count of at least lo: what is known of a window whose count is only
// known from below (group.truncated). An upper bound (lt, lte, eq) never
// does.
func (c *correlator) condMetFrom(lo int) bool {
	for _, cond := range c.spec.Condition {
		v := float64(lo)
		ok := false
		switch cond.Op {
		case "gt":
			ok = v > cond.Value
		case "gte":
			ok = v >= cond.Value
		case "neq":
			ok = v > cond.Value
		}
		if !ok {
			return false
		}
	}
	return true
}

func (c *correlator) condString() string {
	var parts []string
	for _, cond := range c.spec.Condition {
		parts = append(parts, cond.Op+" "+strconv.FormatFloat(cond.Value, 'f', -1, 64))
	}
	return strings.Join(parts, " and ")
}

func (c *correlator) groupString(g *group) string {
	var parts []string
	for _, gv := range c.groupValues(g) {
		parts = append(parts, gv.Field+"="+gv.Value)
	}
	if len(parts) == 0 {
		return "all events"
	}
	return strings.Join(parts, ", ")
}

// groupValues returns g's group-by fields and values, as alerts name
// them: without a tenant the group has none (groupValue).
func (c *correlator) groupValues(g *group) []event.GroupValue {
	var out []event.GroupValue
	for name, v := range c.values(g) {
		if v != "" {
			out = append(out, event.GroupValue{Field: name, Value: v})
		}
	}
	return out
}

func spanString(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}

// windowCount evaluates event_count and value_count. With lower bounds
// only (gt, gte) it fires as soon as any window of timespan holds enough;
// otherwise windows start at a group's first event and are evaluated when
// the watermark passes their end (see closeWindows).
func (e *Engine) windowCount(c *correlator, g *group, h *hit) *firing {
	if c.consumed(g, h.t) {
		return nil // part of an alert raised already
	}
	var val uint64
	if c.spec.Type == ValueCount {
		v, ok := c.valueOf(h)
		if !ok {
			return nil
		}
		val = v
	}
	if !c.monotone {
		// The group's windows that the watermark has passed close
		// before the event is added (insertItem drops their events),
		// whether or not a pass of closeDue has come yet.
		e.closeGroup(c, g, e.watermark-c.lateness)
	}
	it := c.item(g, h)
	it.val = val
	e.insertItem(c, g, it)
	if !c.monotone {
		e.due = min(e.due, g.items[0].t+c.span)
		return nil
	}
	// Every window of timespan that holds the new item starts at an item
	// within timespan before it; take the first that meets the
	// condition, in time order.
	items := g.items
	lo := sort.Search(len(items), func(i int) bool { return items[i].t >= h.t-c.span })
	end := lo
	var distinct map[uint64]int
	if c.spec.Type == ValueCount {
		distinct = map[uint64]int{}
	}
	for s := lo; s < len(items) && items[s].t <= h.t; s++ {
		// Extend the window to [items[s].t, items[s].t+span].
		for end < len(items) && items[end].t <= items[s].t+c.span {
			if distinct != nil {
				distinct[items[end].val]++
			}
			end++
		}
		n := end - s
		if distinct != nil {
			n = len(distinct)
		}
		if c.condMet(n) {
			win := items[s:end]
			ev := c.itemEvidence(g, win)
			last := win[len(win)-1]
			what := "events"
			if distinct != nil {
				what = "distinct " + strings.Join(c.spec.Field, "+") + " values"
			}
			met := c.countMetAt(win)
			f := &firing{rec: h.rec, t: met.t, idx: met.idx, start: win[0].t, end: last.t, evidence: ev,
				summary: fmt.Sprintf("%d %s for %s within %s (condition %s)", n, what, c.groupString(g), spanString(c.spec.Timespan), c.condString())}
			c.consume(g, win[0].t+c.span)
			return f
		}
		if distinct != nil {
			if distinct[items[s].val]--; distinct[items[s].val] == 0 {
				delete(distinct, items[s].val)
			}
		}
	}
	return nil
}

// countMetAt returns the item of a window (in time, then index, order)
// at which its count, of events or of distinct values (value_count),
// first meets a lower-bound condition: the time of the firing. It is
// not the time of the event that arrived last, which for one that
// arrived late is earlier than the window's completion, and made a
// chained correlation see the firing before an event that preceded
// it (found by review).
func (c *correlator) countMetAt(win []item) item {
	var seen map[uint64]bool
	if c.spec.Type == ValueCount {
		seen = map[uint64]bool{}
	}
	n := 0
	for _, it := range win {
		if seen != nil {
			if seen[it.val] {
				continue
			}
			seen[it.val] = true
		}
		if n++; c.condMet(n) {
			return it
		}
	}
	return win[len(win)-1]
}

// slotsMetAt returns the item of a temporal window (in time, then index,
// order) at which the window first holds need of the rules and meets the
// condition: the time of the firing (see countMetAt).
func (c *correlator) slotsMetAt(win []item, need int) item {
	seen := make([]bool, c.nslots)
	n := 0
	for _, it := range win {
		if seen[it.slot] {
			continue
		}
		seen[it.slot] = true
		if n++; n >= need && c.condMet(n) {
			return it
		}
	}
	return win[len(win)-1]
}

// consume records a firing whose window ended at until: its events, the
// group's within timespan before until, are dropped, and consumed refuses
// those dated in the window of the group's latest firing, or of the one
// that ends latest (in event time), that come later, so that one burst
// raises one alert. Events dated outside those windows still count: a
// burst from a clock hours fast must not silence the group until then, nor
// may it leave a real burst after it unprotected (which then fired again
// on its own later events).
func (c *correlator) consume(g *group, until int64) {
	c.setItems(g, slices.DeleteFunc(g.items, func(x item) bool { return x.t <= until && x.t >= until-c.span }))
	g.firedUntil = max(g.firedUntil, until)
	g.firedGap = 0
	if gap := (g.firedUntil - until) / int64(time.Millisecond); gap <= math.MaxUint32 {
		g.firedGap = uint32(gap) // else 49 days apart: only the later one is kept
	}
}

// consumed reports whether an event at t falls within the window of g's
// latest firing, or of the one that ends latest (see consume).
func (c *correlator) consumed(g *group, t int64) bool {
	last := g.firedUntil - int64(g.firedGap)*int64(time.Millisecond)
	return t <= g.firedUntil && t >= g.firedUntil-c.span || t <= last && t >= last-c.span
}

// closeDue closes the windows that end before closed, as closeWindows,
// if one does and the previous pass was at least closeStep before; it
// reports whether it made the pass.
func (e *Engine) closeDue(closed int64) bool {
	if closed > e.due && closed >= e.nextClose {
		e.closeWindows(closed)
		return true
	}
	return false
}

// closeWindows evaluates the windows of non-monotone event_count and
// value_count correlations (conditions with an upper bound, such as lt)
// that end before closed (the watermark less the lateness, or later),
// and sets e.due to the end of the earliest window still open.
func (e *Engine) closeWindows(closed int64) {
	e.due = math.MaxInt64
	for _, c := range e.corrs {
		if c.monotone {
			continue
		}
		// In the LRU's order (probation, demoted, protected, each by
		// last activity), which makes the order of the alerts
		// deterministic.
		for g := range c.lru.all {
			e.closeGroup(c, g, closed)
			if len(g.items) > 0 {
				e.due = min(e.due, g.items[0].t+c.span)
			}
		}
	}
	e.nextClose = closed + e.closeStep
}

// closeGroup evaluates g's windows that end before closed: a window
// starts at the group's first event not yet evaluated and spans timespan.
func (e *Engine) closeGroup(c *correlator, g *group, closed int64) {
	for len(g.items) > 0 && g.items[0].t+c.span < closed {
		start := g.items[0].t
		end := sort.Search(len(g.items), func(i int) bool { return g.items[i].t > start+c.span })
		win := g.items[:end]
		n := len(win)
		if c.spec.Type == ValueCount {
			d := map[uint64]bool{}
			for _, it := range win {
				d[it.val] = true
			}
			n = len(d)
		}
		// A window whose oldest events were dropped (insertItem) held
		// more than it keeps: it fires only if the condition holds for
		// any count above what it kept. Counting what it kept made lt
		// 2000 fire on a window of 5,000 events (found by review).
		met, more := c.condMet(n), ""
		if g.truncated {
			met, more = c.condMetFrom(n+1), "more than "
			g.truncated = false
		}
		if met {
			ev := c.itemEvidence(g, win)
			last := win[len(win)-1]
			e.fire(c, g, &firing{t: start + c.span, idx: last.idx, start: start, end: start + c.span, evidence: ev,
				summary: fmt.Sprintf("%s%d events for %s in the %s from %s (condition %s)", more, n, c.groupString(g), spanString(c.spec.Timespan),
					time.Unix(0, start).UTC().Format(time.RFC3339), c.condString())})
		}
		c.consume(g, start+c.span)
		c.markDirty(g)
	}
}

// temporal fires when the group's events of at least the required number
// of the correlated rules (all of them, by default) fall within one
// timespan.
func (e *Engine) temporal(c *correlator, g *group, h *hit) *firing {
	if c.consumed(g, h.t) {
		return nil
	}
	e.insertItem(c, g, c.item(g, h))
	need := c.nslots
	if len(c.spec.Condition) > 0 {
		need = 1
		for need <= c.nslots && !c.condMet(need) {
			need++
		}
	}
	items := g.items
	counts := make([]int, c.nslots)
	distinct := 0
	end := 0
	for s := range items {
		for end < len(items) && items[end].t <= items[s].t+c.span {
			if counts[items[end].slot] == 0 {
				distinct++
			}
			counts[items[end].slot]++
			end++
		}
		if distinct >= need && c.condMet(distinct) {
			win := items[s:end]
			ev := c.itemEvidence(g, win)
			met := c.slotsMetAt(win, need)
			f := &firing{rec: h.rec, t: met.t, idx: met.idx, start: win[0].t, end: win[len(win)-1].t, evidence: ev,
				summary: fmt.Sprintf("%d of %d correlated rules (%s) matched for %s within %s", distinct, c.nslots,
					strings.Join(c.spec.Rules, ", "), c.groupString(g), spanString(c.spec.Timespan))}
			c.consume(g, win[len(win)-1].t)
			return f
		}
		if counts[items[s].slot]--; counts[items[s].slot] == 0 {
			distinct--
		}
	}
	return nil
}

// temporalOrdered fires when the group's events of the correlated rules
// occur in the rules' order (by event time, then log index) within one
// timespan.
func (e *Engine) temporalOrdered(c *correlator, g *group, h *hit) *firing {
	if c.consumed(g, h.t) {
		return nil
	}
	e.insertItem(c, g, c.item(g, h))
	items := g.items
	chain := make([]int, 0, c.nslots)
	for s := range items {
		if items[s].slot != 0 {
			continue
		}
		chain = append(chain[:0], s)
		for next, j := int32(1), s+1; j < len(items) && int(next) < c.nslots; j++ {
			if items[j].t > items[s].t+c.span {
				break
			}
			if items[j].slot == next {
				chain = append(chain, j)
				next++
			}
		}
		if len(chain) == c.nslots {
			var win []item
			for _, j := range chain {
				win = append(win, items[j])
			}
			ev := c.itemEvidence(g, win)
			// The chain is complete at its last step, whichever of its
			// events the log received last.
			last := win[len(win)-1]
			f := &firing{rec: h.rec, t: last.t, idx: last.idx, start: win[0].t, end: last.t, evidence: ev,
				summary: fmt.Sprintf("%s in this order for %s within %s", strings.Join(c.spec.Rules, " then "), c.groupString(g), spanString(c.spec.Timespan))}
			c.consume(g, win[len(win)-1].t)
			return f
		}
	}
	return nil
}

// newTerm fires when a group shows a value of the new_term fields that it
// has not shown within the history window (timespan), once the group has
// been observed for the learning period.
func (e *Engine) newTerm(c *correlator, g *group, h *hit) *firing {
	spec := c.spec.NewTerm
	if spec.Tolerance > 0 {
		return e.newTermNear(c, g, h, spec)
	}
	v, ok := c.valueOf(h)
	if !ok {
		return nil
	}
	for i := range g.terms {
		if g.terms[i].hash == v {
			fresh := h.t-g.terms[i].last <= c.span
			if h.t > g.terms[i].last {
				g.terms[i].last = h.t
			}
			if fresh {
				return nil
			}
			return e.newTermFiring(c, g, h, spec)
		}
	}
	if len(g.terms) >= spec.MaxTerms {
		oldest := 0
		for i := range g.terms {
			if g.terms[i].last < g.terms[oldest].last {
				oldest = i
			}
		}
		g.terms = slices.Delete(g.terms, oldest, oldest+1)
		c.evicted++
	}
	g.terms = append(g.terms, term{hash: v, last: h.t})
	return e.newTermFiring(c, g, h, spec)
}

// newTermNear is newTerm for one numeric field with a tolerance: the
// terms are the values themselves, and a value within the tolerance of a
// fresh term is known (and remembered).
func (e *Engine) newTermNear(c *correlator, g *group, h *hit, spec *NewTermSpec) *firing {
	f := c.valueBy[h.slot][0]
	var n float64
	var ok bool
	if h.inner != nil {
		var s string
		if s, ok = h.inner[f.name]; ok {
			n, _ = strconv.ParseFloat(s, 64)
		}
	} else {
		n, ok = h.rec.num(f)
	}
	if !ok {
		return nil
	}
	v := int64(n)
	period := int64(0)
	switch f.id {
	case fTimeHour:
		period = 24
	case fTimeWeekday:
		period = 7
	}
	known, exact := false, -1
	for i := range g.terms {
		t := &g.terms[i]
		if h.t-t.last > c.span {
			continue // forgotten
		}
		d := v - int64(t.hash)
		if d < 0 {
			d = -d
		}
		if period > 0 {
			d = min(d, period-d)
		}
		if d <= int64(spec.Tolerance) {
			known = true
		}
		if d == 0 {
			exact = i
		}
	}
	if exact >= 0 {
		g.terms[exact].last = max(g.terms[exact].last, h.t)
	} else {
		for i := range g.terms {
			if int64(g.terms[i].hash) == v { // forgotten, seen again
				g.terms = slices.Delete(g.terms, i, i+1)
				break
			}
		}
		if len(g.terms) >= spec.MaxTerms {
			oldest := 0
			for i := range g.terms {
				if g.terms[i].last < g.terms[oldest].last {
					oldest = i
				}
			}
			g.terms = slices.Delete(g.terms, oldest, oldest+1)
			c.evicted++
		}
		g.terms = append(g.terms, term{hash: uint64(v), last: h.t})
	}
	if known {
		return nil
	}
	return e.newTermFiring(c, g, h, spec)
}

func (e *Engine) newTermFiring(c *correlator, g *group, h *hit, spec *NewTermSpec) *firing {
	if h.t-g.first < int64(spec.Learning) || h.rec == nil {
		return nil
	}
	var vals []string
	for _, f := range c.valueBy[h.slot] {
		v, _ := h.rec.str(f)
		vals = append(vals, f.name+"="+v)
	}
	return &firing{rec: h.rec, t: h.t, idx: h.idx, start: h.t, end: h.t, evidence: []uint64{h.idx},
		summary: fmt.Sprintf("first %s for %s in %s (observed since %s)", strings.Join(vals, ", "), c.groupString(g),
			spanString(c.spec.Timespan), time.Unix(0, g.first).UTC().Format(time.RFC3339))}
}

// geoVelocity fires when an event and the group's previous (or next, for
// one that arrived late) event within timespan are at least the minimum
// distance apart and imply at least the minimum speed. Times closer than
// a minute count as a minute.
func (e *Engine) geoVelocity(c *correlator, g *group, h *hit) *firing {
	geo := h.rec.Event.Source.Geo
	if geo == nil || geo.Lat == nil || geo.Lon == nil {
		return nil
	}
	p := geoPoint{t: h.t, idx: h.idx, lat: *geo.Lat, lon: *geo.Lon}
	i := sort.Search(len(g.points), func(i int) bool {
		q := g.points[i]
		return q.t > p.t || q.t == p.t && q.idx > p.idx
	})
	var f *firing
	check := func(a, b geoPoint) {
		if f != nil || b.t-a.t > c.span {
			return
		}
		km := haversineKm(a.lat, a.lon, b.lat, b.lon)
		hours := math.Max(float64(b.t-a.t), float64(time.Minute)) / float64(time.Hour)
		speed := km / hours
		spec := c.spec.GeoVelocity
		if km >= spec.MinDistanceKm && speed >= spec.MinSpeedKmh {
			f = &firing{rec: h.rec, t: h.t, idx: h.idx, start: a.t, end: b.t, evidence: []uint64{a.idx, b.idx},
				summary: fmt.Sprintf("%s moved %.0f km in %s (%.0f km/h)", c.groupString(g), km,
					time.Duration(b.t-a.t).Round(time.Second), speed)}
		}
	}
	if i > 0 {
		check(g.points[i-1], p)
	}
	if i < len(g.points) {
		check(p, g.points[i])
	}
	g.points = slices.Insert(g.points, i, p)
	if len(g.points) > 4 {
		g.points = g.points[len(g.points)-4:]
	}
	return f
}

// haversineKm is the great-circle distance in kilometres.
func haversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dlat := (lat2 - lat1) * rad
	dlon := (lon2 - lon1) * rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

// baseline counts a group's events per bucket of timespan (aligned to the
// Unix epoch) and fires when the current bucket reaches min_count and
// factor times the group's exponentially weighted moving average of past
// buckets (empty buckets count as zero; the average's horizon is the
// history). Events of an older bucket than the current one are not
// counted.
func (e *Engine) baseline(c *correlator, g *group, h *hit) *firing {
	spec := c.spec.Baseline
	b := h.t - mod(h.t, c.span)
	alpha := float64(c.span) / float64(spec.History)
	switch {
	case g.count == 0 && g.bucket == 0:
		g.bucket = b
	case b > g.bucket:
		// Close the current bucket, then decay over the empty ones.
		g.mean = g.mean*(1-alpha) + alpha*float64(g.count)
		if gap := (b-g.bucket)/c.span - 1; gap > 0 {
			g.mean *= math.Pow(1-alpha, float64(gap))
		}
		g.bucket, g.count, g.fired, g.bucketEvid = b, 0, false, g.bucketEvid[:0]
	case b < g.bucket:
		e.late++
		return nil
	}
	g.count++
	// Evidence: the bucket's latest baselineEvidence events, which made
	// the count. The slice holds up to twice as many and drops the older
	// half at once, so that a busy group's events do not each move the
	// ones before them.
	if len(g.bucketEvid) == 2*baselineEvidence {
		g.bucketEvid = append(g.bucketEvid[:0], g.bucketEvid[baselineEvidence:]...)
	}
	g.bucketEvid = append(g.bucketEvid, h.idx)
	if g.fired || h.t-g.first < int64(spec.Learning) {
		return nil
	}
	threshold := math.Max(float64(spec.MinCount), spec.Factor*g.mean)
	if float64(g.count) < threshold {
		return nil
	}
	g.fired = true
	return &firing{rec: h.rec, t: h.t, idx: h.idx, start: g.bucket, end: g.bucket + c.span - 1,
		evidence: slices.Clone(g.baselineEvidence()), count: int(g.count),
		summary: fmt.Sprintf("%d events for %s in %s, %.1f times the moving average of %.1f per %s", g.count, c.groupString(g),
			spanString(c.spec.Timespan), float64(g.count)/math.Max(g.mean, 0.1), g.mean, spanString(c.spec.Timespan))}
}

// baselineEvidence is how many of its bucket's latest events a baseline
// alert cites.
const baselineEvidence = 64

// baselineEvidence returns the indexes of the latest baselineEvidence
// events of g's current bucket, oldest first.
func (g *group) baselineEvidence() []uint64 {
	return g.bucketEvid[max(0, len(g.bucketEvid)-baselineEvidence):]
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// sweep drops expired groups and suppressions and closes the windows of
// correlations evaluated at their end.
func (e *Engine) sweep() {
	e.closeWindows(e.watermark - int64(e.cfg.Lateness))
	for _, c := range e.corrs {
		horizon := e.watermark - c.keep
		for q := range c.lru.segments {
			for g := range q.all {
				if g.last >= horizon {
					break
				}
				if c.monotone || len(g.items) == 0 {
					c.removeGroup(g)
				}
			}
		}
		c.lru.trim(c.ngroups)
		if c.suppress != nil {
			c.suppress.expire(e.watermark)
		}
	}
	for _, cr := range e.rules {
		if cr.suppress != nil {
			cr.suppress.expire(e.watermark)
		}
	}
}

// suppressor silences a rule's alerts with the same suppress field values
// for the suppress duration of event time.
type suppressor struct {
	fields   []fieldRef
	names    []string
	duration int64
	until    map[string]int64
	dirty    map[string]bool
}

func newSuppressor(r *Rule, groupBy []string) (*suppressor, error) {
	if r.Suppress == nil {
		return nil, nil
	}
	s := &suppressor{duration: int64(r.Suppress.Duration), until: map[string]int64{}, dirty: map[string]bool{}}
	names := r.Suppress.Fields
	if len(names) == 0 {
		names = groupBy
	}
	for _, n := range names {
		f, ok := lookupField(n)
		if !ok {
			return nil, r.docPos.errorf("suppress: unknown field %q", n)
		}
		s.fields = append(s.fields, f)
		s.names = append(s.names, n)
	}
	return s, nil
}

// suppressed reports whether an alert at t with these values is
// silenced, and otherwise starts silencing the next ones.
func (s *suppressor) suppressed(rec *Record, group []event.GroupValue, t int64) bool {
	var b strings.Builder
	for i, f := range s.fields {
		if i > 0 {
			b.WriteByte(0x1f)
		}
		v, ok := "", false
		for _, g := range group {
			if g.Field == s.names[i] {
				v, ok = g.Value, true
			}
		}
		if !ok && rec != nil {
			v, _ = rec.str(f)
		}
		b.WriteString(v)
	}
	key := b.String()
	if until, ok := s.until[key]; ok && t <= until && t >= until-s.duration {
		return true
	}
	s.until[key] = t + s.duration
	s.dirty[key] = true
	return false
}

func (s *suppressor) expire(watermark int64) {
	for k, until := range s.until {
		if until < watermark {
			delete(s.until, k)
			s.dirty[k] = true
		}
	}
}
