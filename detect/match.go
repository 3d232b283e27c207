package detect

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// matcher is a compiled condition over one record. Matchers are built
// once per rule and are immutable; match is called on the hot path and
// neither allocates nor looks fields up by name.
type matcher interface {
	match(r *Record) bool
}

type andMatcher []matcher

func (m andMatcher) match(r *Record) bool {
	for _, x := range m {
		if !x.match(r) {
			return false
		}
	}
	return true
}

type orMatcher []matcher

func (m orMatcher) match(r *Record) bool {
	for _, x := range m {
		if x.match(r) {
			return true
		}
	}
	return false
}

type notMatcher struct{ m matcher }

func (m notMatcher) match(r *Record) bool { return !m.m.match(r) }

type constMatcher bool

func (m constMatcher) match(*Record) bool { return bool(m) }

// compileCtx carries what compiling a field condition needs.
type compileCtx struct {
	lists Lists
	loc   *time.Location
}

// compileSelection compiles a selection: an OR of ANDs of field
// conditions.
func compileSelection(cc *compileCtx, s *selectionAST) (matcher, error) {
	var alts orMatcher
	for _, alt := range s.alts {
		var and andMatcher
		for _, fc := range alt {
			m, err := compileFieldCond(cc, fc)
			if err != nil {
				return nil, err
			}
			and = append(and, m)
		}
		alts = append(alts, simplifyAnd(and))
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return alts, nil
}

func simplifyAnd(m andMatcher) matcher {
	if len(m) == 1 {
		return m[0]
	}
	return m
}

// compileFieldCond compiles "field|modifiers: values".
func compileFieldCond(cc *compileCtx, fc *fieldCondAST) (matcher, error) {
	f := fc.field
	// Expand placeholders first: they stand for values as if written.
	values := fc.values
	if fc.has(modExpand) {
		values = nil
		for _, v := range fc.values {
			vals, err := expandPlaceholders(v.text, cc.lists)
			if err != nil {
				return nil, v.pos.errorf("%s: %v", fc.key, err)
			}
			for _, x := range vals {
				values = append(values, valueAST{kind: litString, text: x, pos: v.pos})
			}
		}
	}
	all := fc.has(modAll)
	cased := fc.has(modCased)
	if len(values) == 0 {
		// An empty named list: nothing equals one of its values.
		return constMatcher(fc.has(modNeq)), nil
	}
	var mt, timePart modifier
	var reFlags string
	for _, m := range fc.mods {
		switch {
		case isTimePart(m):
			timePart = m
		case m == modReI:
			reFlags += "i"
		case m == modReM:
			reFlags += "m"
		case m == modReS:
			reFlags += "s"
		case m == modAll, m == modCased, m == modExpand:
		default:
			mt = m
		}
	}
	if mt == modExists {
		return existsMatcher{f: f, want: strings.EqualFold(values[0].text, "true")}, nil
	}
	if len(values) == 1 && values[0].kind == litNull {
		return absentMatcher{f}, nil
	}
	combine := func(ms []matcher) matcher {
		if len(ms) == 1 {
			return ms[0]
		}
		if all {
			return andMatcher(ms)
		}
		return orMatcher(ms)
	}
	errAt := func(v valueAST, format string, args ...any) error {
		return v.pos.errorf("%s: %s", fc.key, fmt.Sprintf(format, args...))
	}

	// Numbers: numeric fields and time parts.
	if timePart != "" || f.kind == kindInt || f.kind == kindFloat {
		var ms []matcher
		nums := make([]float64, 0, len(values))
		for _, v := range values {
			n, err := strconv.ParseFloat(strings.TrimSpace(v.text), 64)
			if err != nil || v.kind == litBool || math.IsNaN(n) {
				return nil, errAt(v, "%q is not a number", v.text)
			}
			if timePart != "" {
				lo, hi := timePartRange(timePart)
				if n < lo || n > hi || n != math.Trunc(n) {
					return nil, errAt(v, "%s is from %g to %g", timePart, lo, hi)
				}
			}
			nums = append(nums, n)
		}
		get := numGetter{f: f, part: timePart, loc: cc.loc}
		op := cmpEq
		switch mt {
		case modLt:
			op = cmpLt
		case modLte:
			op = cmpLte
		case modGt:
			op = cmpGt
		case modGte:
			op = cmpGte
		case modNeq:
			return numNeqMatcher{get: get, vals: nums}, nil
		case "":
		default:
			return nil, fc.pos.errorf("%s: %s does not apply to numbers", fc.key, mt)
		}
		if op == cmpEq && !all {
			return numInMatcher{get: get, vals: nums}, nil
		}
		for _, n := range nums {
			ms = append(ms, numCmpMatcher{get: get, op: op, v: n})
		}
		return combine(ms), nil
	}

	if f.kind == kindBool {
		var want []bool
		for _, v := range values {
			switch strings.ToLower(v.text) {
			case "true":
				want = append(want, true)
			case "false":
				want = append(want, false)
			default:
				return nil, errAt(v, "%s is a boolean: true or false", f.name)
			}
		}
		if mt == modNeq {
			return boolMatcher{f: f, want: want, neq: true}, nil
		}
		if mt != "" {
			return nil, fc.pos.errorf("%s: %s does not apply to booleans", fc.key, mt)
		}
		return boolMatcher{f: f, want: want}, nil
	}

	// Strings and IP addresses.
	switch mt {
	case modCIDR:
		var prefixes []netip.Prefix
		for _, v := range values {
			p, err := netip.ParsePrefix(strings.TrimSpace(v.text))
			if err != nil {
				a, aerr := netip.ParseAddr(strings.TrimSpace(v.text))
				if aerr != nil {
					return nil, errAt(v, "%q is not a CIDR range", v.text)
				}
				if a.Zone() != "" {
					// fe80::1%eth0/64 parsed as fe80::1 in zone
					// "eth0/64": a /128 (found by review).
					return nil, errAt(v, "%q: zones are not allowed (events' addresses have none)", v.text)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			if a := p.Addr(); a.Is4In6() {
				// Events hold IPv4 addresses unmapped: so must the
				// range, or it matches nothing.
				if p.Bits() < 96 {
					return nil, errAt(v, "%q mixes IPv4-mapped and other IPv6 addresses: give the IPv4 range (such as 192.0.2.0/24)", v.text)
				}
				p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
			}
			prefixes = append(prefixes, p.Masked())
		}
		if all {
			var ms []matcher
			for _, p := range prefixes {
				ms = append(ms, newIPSet(f, []netip.Prefix{p}))
			}
			return combine(ms), nil
		}
		return newIPSet(f, prefixes), nil
	case modRe:
		var ms []matcher
		for _, v := range values {
			expr := v.text
			if reFlags != "" {
				expr = "(?" + reFlags + ")" + expr
			}
			re, err := regexp.Compile(expr)
			if err != nil {
				return nil, errAt(v, "regular expression: %v (accessledger supports the Sigma subset of PCRE: . ^ $ * + ? {n,m} [a-z] [^a-z] | ())", err)
			}
			ms = append(ms, reMatcher{f: f, re: re})
		}
		return combine(ms), nil
	}

	pats := make([]pattern, 0, len(values))
	for _, v := range values {
		text := v.text
		if f.kind == kindIP && mt == "" && !strings.ContainsAny(text, "*?\\") {
			if a, err := netip.ParseAddr(text); err == nil {
				if a.Zone() != "" {
					return nil, errAt(v, "%q: zones are not allowed (events' addresses have none)", v.text)
				}
				text = a.Unmap().String()
			}
		}
		p := parsePattern(text, !cased)
		switch mt {
		case modContains:
			p = p.wrap(true, true)
		case modStartswith:
			p = p.wrap(false, true)
		case modEndswith:
			p = p.wrap(true, false)
		}
		pats = append(pats, p.compile())
	}
	if mt == modNeq {
		return strNeqMatcher{f: f, cased: cased, pats: pats}, nil
	}
	if !all {
		// Many exact values: one set lookup.
		exact := true
		for _, p := range pats {
			exact = exact && p.op == opEq
		}
		if exact && len(pats) > 8 {
			set := make(map[string]struct{}, len(pats))
			for _, p := range pats {
				set[p.lit] = struct{}{}
			}
			return strSetMatcher{f: f, cased: cased, set: set}, nil
		}
		return strAnyMatcher{f: f, cased: cased, pats: pats}, nil
	}
	var ms []matcher
	for _, p := range pats {
		ms = append(ms, strAnyMatcher{f: f, cased: cased, pats: []pattern{p}})
	}
	return combine(ms), nil
}

// existsMatcher is field|exists: true or false.
type existsMatcher struct {
	f    fieldRef
	want bool
}

func (m existsMatcher) match(r *Record) bool { return r.present(m.f) == m.want }

// absentMatcher is field: null: the event lacks the field (an empty
// string counts as absent, as the canonical event omits it).
type absentMatcher struct{ f fieldRef }

func (m absentMatcher) match(r *Record) bool { return !r.present(m.f) }

type boolMatcher struct {
	f    fieldRef
	want []bool
	neq  bool
}

func (m boolMatcher) match(r *Record) bool {
	v := r.Event.MFA
	if v == nil {
		return m.neq
	}
	for _, w := range m.want {
		if *v == w {
			return !m.neq
		}
	}
	return m.neq
}

type cmpOp uint8

const (
	cmpEq cmpOp = iota
	cmpLt
	cmpLte
	cmpGt
	cmpGte
)

// numGetter reads a number: a numeric field, or a part of a time field in
// the configured time zone.
type numGetter struct {
	f    fieldRef
	part modifier
	loc  *time.Location
}

func (g numGetter) get(r *Record) (float64, bool) {
	if g.part == "" {
		return r.num(g.f)
	}
	t, ok := r.timeOf(g.f)
	if !ok {
		return 0, false
	}
	return float64(timePartOf(r.localTime(g.f, t, g.loc), g.part)), true
}

// timePartOf extracts a part of t: Sigma's minute, hour, day (of the
// month), week (ISO), month and year, and accessledger's weekday (ISO:
// 1 is Monday, 7 Sunday).
func timePartOf(t time.Time, part modifier) int {
	switch part {
	case modMinute:
		return t.Minute()
	case modHour:
		return t.Hour()
	case modDay:
		return t.Day()
	case modWeek:
		_, w := t.ISOWeek()
		return w
	case modMonth:
		return int(t.Month())
	case modYear:
		return t.Year()
	case modWeekday:
		wd := int(t.Weekday())
		if wd == 0 {
			return 7
		}
		return wd
	}
	return 0
}

func timePartRange(part modifier) (float64, float64) {
	switch part {
	case modMinute:
		return 0, 59
	case modHour:
		return 0, 23
	case modDay:
		return 1, 31
	case modWeek:
		return 1, 53
	case modMonth:
		return 1, 12
	case modWeekday:
		return 1, 7
	}
	return 1970, 9999
}

type numInMatcher struct {
	get  numGetter
	vals []float64
}

func (m numInMatcher) match(r *Record) bool {
	v, ok := m.get.get(r)
	if !ok {
		return false
	}
	for _, x := range m.vals {
		if v == x {
			return true
		}
	}
	return false
}

type numNeqMatcher struct {
	get  numGetter
	vals []float64
}

func (m numNeqMatcher) match(r *Record) bool {
	v, ok := m.get.get(r)
	if !ok {
		return true
	}
	for _, x := range m.vals {
		if v == x {
			return false
		}
	}
	return true
}

type numCmpMatcher struct {
	get numGetter
	op  cmpOp
	v   float64
}

func (m numCmpMatcher) match(r *Record) bool {
	v, ok := m.get.get(r)
	if !ok {
		return false
	}
	switch m.op {
	case cmpLt:
		return v < m.v
	case cmpLte:
		return v <= m.v
	case cmpGt:
		return v > m.v
	case cmpGte:
		return v >= m.v
	}
	return v == m.v
}

type reMatcher struct {
	f  fieldRef
	re *regexp.Regexp
}

func (m reMatcher) match(r *Record) bool {
	v, ok := r.str(m.f)
	return ok && m.re.MatchString(v)
}

// ipSet matches an IP address against CIDR ranges: sorted, merged
// ranges searched by bisection (IPv4 and IPv6 apart), so a list of
// thousands costs a dozen comparisons.
type ipSet struct {
	f      fieldRef
	v4, v6 []ipRange
}

type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

type ipRange struct{ lo, hi u128 }

func addrU128(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func newIPSet(f fieldRef, prefixes []netip.Prefix) *ipSet {
	var v4, v6 []ipRange
	for _, p := range prefixes {
		lo := addrU128(p.Addr())
		bits := p.Bits()
		if p.Addr().Is4() {
			bits += 96
		}
		hi := lo
		host := 128 - bits
		switch {
		case host == 128:
			hi = u128{math.MaxUint64, math.MaxUint64}
		case host > 64:
			hi.lo = math.MaxUint64
			hi.hi |= (uint64(1) << (host - 64)) - 1
		case host == 64:
			hi.lo = math.MaxUint64
		case host > 0:
			hi.lo |= (uint64(1) << host) - 1
		}
		if p.Addr().Is4() {
			v4 = append(v4, ipRange{lo, hi})
		} else {
			v6 = append(v6, ipRange{lo, hi})
		}
	}
	return &ipSet{f: f, v4: mergeRanges(v4), v6: mergeRanges(v6)}
}

func mergeRanges(rs []ipRange) []ipRange {
	sort.Slice(rs, func(i, j int) bool { return rs[i].lo.less(rs[j].lo) })
	merged := rs[:0]
	for _, r := range rs {
		if n := len(merged); n > 0 && !merged[n-1].hi.less(r.lo) {
			if merged[n-1].hi.less(r.hi) {
				merged[n-1].hi = r.hi
			}
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

func (m *ipSet) contains(a netip.Addr) bool {
	rs := m.v6
	if a.Is4() {
		rs = m.v4
	}
	x := addrU128(a)
	i := sort.Search(len(rs), func(i int) bool { return !rs[i].hi.less(x) })
	return i < len(rs) && !x.less(rs[i].lo)
}

func (m *ipSet) match(r *Record) bool {
	a := r.Event.Source.IP
	if m.f.id != fSourceIP {
		s, ok := r.str(m.f)
		if !ok {
			return false
		}
		var err error
		if a, err = netip.ParseAddr(s); err != nil {
			return false
		}
	}
	return a.IsValid() && m.contains(a.Unmap())
}

// strAnyMatcher matches a string field against patterns (ORed).
type strAnyMatcher struct {
	f     fieldRef
	cased bool
	pats  []pattern
}

func (m strAnyMatcher) match(r *Record) bool {
	var v string
	var ok bool
	if m.cased {
		v, ok = r.str(m.f)
	} else {
		v, ok = r.lowerStr(m.f)
	}
	if !ok {
		// An absent optional field matches '' (the canonical event
		// omits empty strings), and nothing else.
		for i := range m.pats {
			if m.pats[i].op == opEq && m.pats[i].lit == "" {
				return true
			}
		}
		return false
	}
	for i := range m.pats {
		if m.pats[i].match(v) {
			return true
		}
	}
	return false
}

// strNeqMatcher is field|neq: the field equals none of the values, or is
// absent and none of them is the empty string.
type strNeqMatcher struct {
	f     fieldRef
	cased bool
	pats  []pattern
}

func (m strNeqMatcher) match(r *Record) bool {
	var v string
	var ok bool
	if m.cased {
		v, ok = r.str(m.f)
	} else {
		v, ok = r.lowerStr(m.f)
	}
	if !ok {
		// The negation of strAnyMatcher: an absent optional field is
		// '' (the canonical event omits empty strings), so neq '' is
		// false for it; it was true, and reason|neq: '' matched the
		// events without a reason (found by review).
		for i := range m.pats {
			if m.pats[i].op == opEq && m.pats[i].lit == "" {
				return false
			}
		}
		return true
	}
	for i := range m.pats {
		if m.pats[i].match(v) {
			return false
		}
	}
	return true
}

type strSetMatcher struct {
	f     fieldRef
	cased bool
	set   map[string]struct{}
}

func (m strSetMatcher) match(r *Record) bool {
	var v string
	var ok bool
	if m.cased {
		v, ok = r.str(m.f)
	} else {
		v, ok = r.lowerStr(m.f)
	}
	if !ok {
		// As strAnyMatcher: an absent optional field matches ''.
		v = ""
	}
	_, hit := m.set[v]
	return hit
}

// pattern is a compiled Sigma string value: an exact string, a prefix, a
// suffix, a substring, or a general wildcard pattern.
type pattern struct {
	op  patternOp
	lit string         // for opEq, opPrefix, opSuffix, opContains
	re  *regexp.Regexp // for opGlob
	// segs is the parsed value: literal runs and wildcards, before
	// compilation.
	segs []globSeg
	fold bool
}

type patternOp uint8

const (
	opEq patternOp = iota
	opPrefix
	opSuffix
	opContains
	opGlob
)

// globSeg is a literal run, or a wildcard (* or ?).
type globSeg struct {
	lit  string
	wild byte // 0 for a literal, '*' or '?'
}

// parsePattern parses a Sigma value: * and ? are wildcards; a backslash
// escapes a following *, ? or backslash, and is literal otherwise. fold
// lower-cases the literal parts (case-insensitive matching).
func parsePattern(v string, fold bool) pattern {
	var segs []globSeg
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			s := lit.String()
			if fold {
				s = toLower(s)
			}
			segs = append(segs, globSeg{lit: s})
			lit.Reset()
		}
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && i+1 < len(v) && (v[i+1] == '*' || v[i+1] == '?' || v[i+1] == '\\'):
			lit.WriteByte(v[i+1])
			i++
		case c == '*' || c == '?':
			flush()
			segs = append(segs, globSeg{wild: c})
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return pattern{segs: segs, fold: fold}
}

// wrap adds * before and/or after the pattern (contains, endswith,
// startswith).
func (p pattern) wrap(before, after bool) pattern {
	var segs []globSeg
	if before {
		segs = append(segs, globSeg{wild: '*'})
	}
	segs = append(segs, p.segs...)
	if after {
		segs = append(segs, globSeg{wild: '*'})
	}
	p.segs = segs
	return p
}

// compile picks the fastest way to match the pattern.
func (p pattern) compile() pattern {
	segs := p.segs
	star := func(s globSeg) bool { return s.wild == '*' }
	lits, wild := 0, 0
	for _, s := range segs {
		if s.wild == 0 {
			lits++
		} else {
			wild++
		}
	}
	switch {
	case wild == 0:
		p.op, p.lit = opEq, joinLits(segs)
		return p
	case len(segs) == 1 && star(segs[0]):
		p.op, p.lit = opPrefix, ""
		return p
	case lits == 1 && len(segs) == 2 && star(segs[1]) && segs[0].wild == 0:
		p.op, p.lit = opPrefix, segs[0].lit
		return p
	case lits == 1 && len(segs) == 2 && star(segs[0]) && segs[1].wild == 0:
		p.op, p.lit = opSuffix, segs[1].lit
		return p
	case lits == 1 && len(segs) == 3 && star(segs[0]) && star(segs[2]):
		p.op, p.lit = opContains, segs[1].lit
		return p
	}
	var b strings.Builder
	b.WriteString("(?s)^")
	for _, s := range segs {
		switch s.wild {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(s.lit))
		}
	}
	b.WriteString("$")
	p.op, p.re = opGlob, regexp.MustCompile(b.String())
	return p
}

func joinLits(segs []globSeg) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteString(s.lit)
	}
	return b.String()
}

func (p *pattern) match(v string) bool {
	switch p.op {
	case opEq:
		return v == p.lit
	case opPrefix:
		return strings.HasPrefix(v, p.lit)
	case opSuffix:
		return strings.HasSuffix(v, p.lit)
	case opContains:
		return strings.Contains(v, p.lit)
	}
	return p.re.MatchString(v)
}
