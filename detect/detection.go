package detect

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// detectionAST is a parsed detection section.
type detectionAST struct {
	selections map[string]*selectionAST
	order      []string // selection names in document order
	conditions []condAST
	// failed are the search identifiers whose definition had an error,
	// already reported: the condition's references to them are not
	// reported again as unknown.
	failed map[string]bool
	pos    pos
}

// selectionAST is a search identifier: a map (fields ANDed) or a list of
// maps (ORed).
type selectionAST struct {
	name string
	alts [][]*fieldCondAST // OR of ANDs
	pos  pos
}

// modifier names, in the Sigma modifiers appendix and accessledger's
// extensions.
type modifier string

const (
	modContains   modifier = "contains"
	modStartswith modifier = "startswith"
	modEndswith   modifier = "endswith"
	modAll        modifier = "all"
	modExists     modifier = "exists"
	modCased      modifier = "cased"
	modRe         modifier = "re"
	modReI        modifier = "i"
	modReM        modifier = "m"
	modReS        modifier = "s"
	modCIDR       modifier = "cidr"
	modLt         modifier = "lt"
	modLte        modifier = "lte"
	modGt         modifier = "gt"
	modGte        modifier = "gte"
	modNeq        modifier = "neq"
	modExpand     modifier = "expand"
	modMinute     modifier = "minute"
	modHour       modifier = "hour"
	modDay        modifier = "day"
	modWeek       modifier = "week"
	modMonth      modifier = "month"
	modYear       modifier = "year"
	modWeekday    modifier = "weekday" // accessledger extension
)

var knownModifiers = []modifier{modContains, modStartswith, modEndswith, modAll, modExists, modCased, modRe,
	modReI, modReM, modReS, modCIDR, modLt, modLte, modGt, modGte, modNeq, modExpand,
	modMinute, modHour, modDay, modWeek, modMonth, modYear, modWeekday}

// unsupportedModifiers are Sigma modifiers accessledger rejects.
var unsupportedModifiers = map[string]string{
	"windash":      "it rewrites Windows command-line flags, which access events do not have",
	"base64":       "access events carry no base64-encoded payloads",
	"base64offset": "access events carry no base64-encoded payloads",
	"utf16le":      "access events are UTF-8",
	"utf16be":      "access events are UTF-8",
	"utf16":        "access events are UTF-8",
	"wide":         "access events are UTF-8",
	"fieldref":     "comparing two fields of an event is not implemented",
}

func isTimePart(m modifier) bool {
	switch m {
	case modMinute, modHour, modDay, modWeek, modMonth, modYear, modWeekday:
		return true
	}
	return false
}

// fieldCondAST is one "field|modifiers: values" of a selection.
type fieldCondAST struct {
	key    string // as written
	field  fieldRef
	mods   []modifier
	values []valueAST
	pos    pos
}

func (f *fieldCondAST) has(m modifier) bool { return slices.Contains(f.mods, m) }

// valueAST is one value of a field condition.
type valueAST struct {
	kind  valueLitKind
	text  string // the scalar's text (for strings, numbers, booleans)
	pos   pos
	isNum bool
}

type valueLitKind uint8

const (
	litString valueLitKind = iota
	litNumber
	litBool
	litNull
)

func parseDetection(el *errList, n *yaml.Node) *detectionAST {
	d := &detectionAST{selections: map[string]*selectionAST{}, pos: posOf(el.file, n)}
	var condNode *yaml.Node
	mapping(el, n, "detection", func(key string, k, v *yaml.Node) {
		switch key {
		case "condition":
			condNode = v
			return
		case "timeframe":
			el.unsupported(k, "timeframe", "timeframe belongs to Sigma 1 aggregations; write a correlation rule with a timespan")
			return
		}
		if !validIdentifier(key) {
			el.at(k, "search identifier %q must be letters, digits and underscores", key)
			return
		}
		if key == "them" || key == "and" || key == "or" || key == "not" || key == "of" || key == "all" {
			el.at(k, "search identifier %q is a keyword of the condition", key)
			return
		}
		if s := parseSelection(el, key, v); s != nil {
			d.selections[key] = s
			d.order = append(d.order, key)
		} else {
			if d.failed == nil {
				d.failed = map[string]bool{}
			}
			d.failed[key] = true
		}
	})
	if condNode == nil {
		el.at(n, "detection needs a condition")
		return d
	}
	var conds []string
	var condPos []*yaml.Node
	if condNode.Kind == yaml.SequenceNode {
		for _, c := range condNode.Content {
			if s, ok := scalarString(el, c, "condition"); ok {
				conds = append(conds, s)
				condPos = append(condPos, c)
			}
		}
	} else if s, ok := scalarString(el, condNode, "condition"); ok {
		conds, condPos = []string{s}, []*yaml.Node{condNode}
	}
	for i, s := range conds {
		c, err := parseCondition(s, d)
		if err != nil {
			if err.reported {
				continue
			}
			// The condition is quoted, at most its first 200 bytes:
			// one of megabytes made a message as long.
			shown := s
			if len(shown) > 200 {
				shown = shown[:200] + "..."
			}
			if err.feature != "" {
				el.unsupported(condPos[i], err.feature, "condition %q: %s", shown, err.msg)
			} else {
				el.at(condPos[i], "condition %q: %s", shown, err.msg)
			}
			continue
		}
		d.conditions = append(d.conditions, c)
	}
	return d
}

func validIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// parseSelection parses a search identifier's definition.
func parseSelection(el *errList, name string, n *yaml.Node) *selectionAST {
	n = resolve(n)
	s := &selectionAST{name: name, pos: posOf(el.file, n)}
	switch n.Kind {
	case yaml.MappingNode:
		if alt := parseFieldMap(el, name, n); alt != nil {
			s.alts = append(s.alts, alt)
		}
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			el.at(n, "selection %s is an empty list", name)
			return nil
		}
		for _, c := range n.Content {
			c = resolve(c)
			if c.Kind != yaml.MappingNode {
				el.unsupported(c, "keyword search", "selection %s: a list of plain values searches the whole event for keywords, which accessledger does not support; name the field (field|contains: value)", name)
				return nil
			}
			if alt := parseFieldMap(el, name, c); alt != nil {
				s.alts = append(s.alts, alt)
			}
		}
	default:
		el.unsupported(n, "keyword search", "selection %s: a plain value searches the whole event for a keyword, which accessledger does not support; name the field", name)
		return nil
	}
	if len(s.alts) == 0 {
		return nil
	}
	return s
}

// parseFieldMap parses a map of field conditions (ANDed).
func parseFieldMap(el *errList, sel string, n *yaml.Node) []*fieldCondAST {
	var out []*fieldCondAST
	ok := mapping(el, n, "selection "+sel, func(key string, k, v *yaml.Node) {
		if fc := parseFieldCond(el, sel, key, k, v); fc != nil {
			out = append(out, fc)
		}
	})
	if ok && len(n.Content) == 0 {
		el.at(n, "selection %s is empty", sel)
	}
	return out
}

// parseFieldCond parses "field|mod|mod: value(s)" and checks that the
// modifiers fit the field and each other.
func parseFieldCond(el *errList, sel, key string, k, v *yaml.Node) *fieldCondAST {
	parts := strings.Split(key, "|")
	name := parts[0]
	fc := &fieldCondAST{key: key, pos: posOf(el.file, k)}
	if name == "" {
		el.unsupported(k, "keyword search", "selection %s: %q applies modifiers to keywords (a search of the whole event), which accessledger does not support; name the field", sel, key)
		return nil
	}
	f, ok := lookupField(name)
	if !ok {
		el.at(k, "selection %s: unknown field %q; the fields are %s", sel, name, fieldNames())
		return nil
	}
	fc.field = f
	for _, m := range parts[1:] {
		mod := modifier(m)
		if why, bad := unsupportedModifiers[m]; bad {
			el.unsupported(k, "modifier "+m, "selection %s: %s", sel, why)
			return nil
		}
		if !slices.Contains(knownModifiers, mod) {
			el.at(k, "selection %s: unknown modifier %q in %q", sel, m, key)
			return nil
		}
		if fc.has(mod) {
			el.at(k, "selection %s: modifier %q given twice", sel, m)
			return nil
		}
		fc.mods = append(fc.mods, mod)
	}
	// Values.
	v = resolve(v)
	switch v.Kind {
	case yaml.ScalarNode:
		fc.values = []valueAST{scalarValue(el, v)}
	case yaml.SequenceNode:
		if len(v.Content) == 0 {
			el.at(v, "selection %s: %s has an empty list of values", sel, key)
			return nil
		}
		for _, c := range v.Content {
			c = resolve(c)
			if c.Kind != yaml.ScalarNode {
				el.at(c, "selection %s: the values of %s must be plain values", sel, key)
				return nil
			}
			val := scalarValue(el, c)
			if val.kind == litNull {
				el.at(c, "selection %s: null cannot be part of a list of values; make it a selection of its own", sel)
				return nil
			}
			fc.values = append(fc.values, val)
		}
	default:
		el.at(v, "selection %s: the value of %s must be a value or a list of values", sel, key)
		return nil
	}
	if msg := checkModifiers(fc); msg != "" {
		el.at(k, "selection %s: %s: %s", sel, key, msg)
		return nil
	}
	return fc
}

func scalarValue(el *errList, n *yaml.Node) valueAST {
	v := valueAST{text: n.Value, pos: posOf(el.file, n)}
	switch n.Tag {
	case "!!null":
		v.kind = litNull
	case "!!int", "!!float":
		v.kind, v.isNum = litNumber, true
	case "!!bool":
		v.kind = litBool
	default:
		v.kind = litString
	}
	return v
}

// checkModifiers checks a field condition's modifiers against each other,
// the field's type and the values; it returns what is wrong, or "".
func checkModifiers(fc *fieldCondAST) string {
	var match []modifier // the modifiers that choose how values match
	var timePart modifier
	reFlags := 0
	for i, m := range fc.mods {
		switch {
		case isTimePart(m):
			if timePart != "" {
				return "only one time-part modifier may be given"
			}
			if i != 0 {
				return fmt.Sprintf("the time-part modifier %s must come first", m)
			}
			timePart = m
		case m == modReI || m == modReM || m == modReS:
			if !fc.has(modRe) || slices.Index(fc.mods, modRe) > i {
				return fmt.Sprintf("modifier %s is a flag of re and must follow it", m)
			}
			reFlags++
		case m == modAll || m == modCased || m == modExpand:
		default:
			match = append(match, m)
		}
	}
	if len(match) > 1 {
		return fmt.Sprintf("modifiers %s cannot be combined", joinMods(match))
	}
	mt := modifier("")
	if len(match) == 1 {
		mt = match[0]
	}
	kind := fc.field.kind
	numeric := kind == kindInt || kind == kindFloat || timePart != ""
	if kind == kindTime && timePart == "" && mt != modExists {
		return fmt.Sprintf("%s is a time: match a part of it with a time-part modifier (%s|hour, %s|weekday, ...)", fc.field.name, fc.field.name, fc.field.name)
	}
	if timePart != "" && kind != kindTime {
		return fmt.Sprintf("time-part modifier %s applies to time and received_at only", timePart)
	}
	if fc.has(modAll) && len(fc.values) < 2 && !fc.has(modExpand) {
		return "all needs a list of at least two values (Sigma forbids it on a single value)"
	}
	if fc.has(modCased) && (numeric || kind == kindBool || mt == modRe || mt == modCIDR || mt == modExists) {
		return "cased applies to string matching only (re is case-sensitive already; use re|i for the opposite)"
	}
	if fc.has(modExpand) {
		for _, v := range fc.values {
			if v.kind != litString || !strings.Contains(v.text, "%") {
				return "expand needs a value with a %placeholder%"
			}
		}
	}
	for _, v := range fc.values {
		if v.kind == litNull && mt != "" {
			return "null matches an absent field and takes no modifier"
		}
	}
	switch mt {
	case modExists:
		if len(fc.mods) != 1 {
			return "exists takes no other modifier"
		}
		if len(fc.values) != 1 || fc.values[0].kind != litBool {
			return "exists takes true or false"
		}
	case modContains, modStartswith, modEndswith:
		if numeric || kind == kindBool {
			return fmt.Sprintf("%s applies to strings; %s is a %s", mt, fc.field.name, kind)
		}
	case modRe:
		if numeric || kind == kindBool {
			return fmt.Sprintf("re applies to strings; %s is a %s", fc.field.name, kind)
		}
	case modCIDR:
		if kind != kindIP {
			return fmt.Sprintf("cidr applies to IP addresses; %s is a %s", fc.field.name, kind)
		}
	case modLt, modLte, modGt, modGte:
		if !numeric {
			return fmt.Sprintf("%s compares numbers; %s is a %s", mt, fc.field.name, kind)
		}
	}
	if reFlags > 0 && mt != modRe {
		return "i, m and s are flags of re"
	}
	return ""
}

func joinMods(ms []modifier) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = string(m)
	}
	return strings.Join(s, " and ")
}

// condAST is a parsed condition.
type condAST interface{ isCond() }

type condAnd struct{ l, r condAST }
type condOr struct{ l, r condAST }
type condNot struct{ x condAST }
type condRef struct{ name string }
type condOf struct {
	all   bool
	names []string
}

func (condAnd) isCond() {}
func (condOr) isCond()  {}
func (condNot) isCond() {}
func (condRef) isCond() {}
func (condOf) isCond()  {}

type condError struct {
	msg     string
	feature string
	// reported: the error is one already reported elsewhere (a search
	// identifier whose definition failed).
	reported bool
}

// parseCondition parses a Sigma condition over d's search identifiers.
//
//	expr    = and { "or" and }
//	and     = not { "and" not }
//	not     = "not" not | primary
//	primary = "(" expr ")" | ("1" | "all") "of" (pattern | "them") | identifier
func parseCondition(s string, d *detectionAST) (condAST, *condError) {
	toks, cerr := lexCondition(s)
	if cerr != nil {
		return nil, cerr
	}
	p := &condParser{toks: toks, d: d}
	c, cerr := p.expr()
	if cerr != nil {
		return nil, cerr
	}
	if p.i < len(p.toks) {
		return nil, &condError{msg: fmt.Sprintf("unexpected %q", p.toks[p.i])}
	}
	return c, nil
}

func lexCondition(s string) ([]string, *condError) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')':
			toks = append(toks, string(c))
			i++
		case c == '|':
			return nil, &condError{feature: "aggregation in condition", msg: "aggregations (| count() ...) are Sigma 1 syntax; write a correlation rule"}
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r()|", rune(s[j])) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	if len(toks) == 0 {
		return nil, &condError{msg: "empty condition"}
	}
	if len(toks) > maxConditionTokens {
		return nil, &condError{msg: fmt.Sprintf("%d words and brackets, at most %d: split the rule", len(toks), maxConditionTokens)}
	}
	if slices.Contains(toks, "near") {
		return nil, &condError{feature: "near", msg: "near is Sigma 1 syntax; write a temporal correlation rule"}
	}
	return toks, nil
}

type condParser struct {
	toks  []string
	i     int
	d     *detectionAST
	depth int // of brackets and nots around the current token
}

// Bounds of a condition: the parser and the matcher recurse over its
// nesting, and a rule file is input. 1,500,000 brackets overflowed the
// stack; real conditions have a handful of either.
const (
	maxConditionDepth  = 64
	maxConditionTokens = 4096
)

func (p *condParser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

func (p *condParser) expr() (condAST, *condError) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.peek() == "or" {
		p.i++
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = condOr{l, r}
	}
	return l, nil
}

func (p *condParser) and() (condAST, *condError) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for p.peek() == "and" {
		p.i++
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = condAnd{l, r}
	}
	return l, nil
}

// nest enters one level of brackets or not, failing beyond
// maxConditionDepth; the caller calls leave after it.
func (p *condParser) nest() *condError {
	if p.depth++; p.depth > maxConditionDepth {
		return &condError{msg: fmt.Sprintf("brackets and nots nested deeper than %d levels", maxConditionDepth)}
	}
	return nil
}

func (p *condParser) leave() { p.depth-- }

func (p *condParser) not() (condAST, *condError) {
	if p.peek() == "not" {
		p.i++
		if err := p.nest(); err != nil {
			return nil, err
		}
		defer p.leave()
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return condNot{x}, nil
	}
	return p.primary()
}

func (p *condParser) primary() (condAST, *condError) {
	t := p.peek()
	switch t {
	case "":
		return nil, &condError{msg: "unexpected end"}
	case "(":
		p.i++
		if err := p.nest(); err != nil {
			return nil, err
		}
		defer p.leave()
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, &condError{msg: "missing )"}
		}
		p.i++
		return x, nil
	case ")", "and", "or", "of", "them":
		return nil, &condError{msg: fmt.Sprintf("unexpected %q", t)}
	case "near":
		return nil, &condError{feature: "near", msg: "near is Sigma 1 syntax; write a temporal correlation rule"}
	}
	if p.i+1 < len(p.toks) && p.toks[p.i+1] == "of" {
		if t != "1" && t != "all" {
			if t == "any" || isDigits(t) {
				return nil, &condError{feature: t + " of", msg: "Sigma has 1 of and all of only"}
			}
			return nil, &condError{msg: fmt.Sprintf("unexpected %q before of (use 1 of or all of)", t)}
		}
		p.i += 2
		pat := p.peek()
		if pat == "" || pat == "(" || pat == ")" {
			return nil, &condError{msg: "of needs a pattern or them"}
		}
		p.i++
		var names []string
		for _, n := range p.d.order {
			if pat == "them" && !strings.HasPrefix(n, "_") || pat != "them" && globMatch(pat, n) {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			return nil, &condError{msg: fmt.Sprintf("%q matches no search identifier", pat)}
		}
		return condOf{all: t == "all", names: names}, nil
	}
	if strings.ContainsAny(t, "*?") {
		return nil, &condError{msg: fmt.Sprintf("pattern %q needs 1 of or all of", t)}
	}
	if _, ok := p.d.selections[t]; !ok {
		if strings.ToLower(t) != t && slices.Contains([]string{"and", "or", "not", "of", "them", "all"}, strings.ToLower(t)) {
			return nil, &condError{msg: fmt.Sprintf("%q: condition keywords are lower case", t)}
		}
		if p.d.failed[t] {
			return nil, &condError{reported: true}
		}
		return nil, &condError{msg: fmt.Sprintf("unknown search identifier %q", t)}
	}
	p.i++
	return condRef{t}, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// globMatch matches s against a pattern with * (any run) and ? (one
// character), case-sensitively.
func globMatch(pat, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := -1, -1
	for px < len(pat) || sx < len(s) {
		if px < len(pat) {
			switch c := pat[px]; c {
			case '*':
				nextPx, nextSx = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if nextSx > 0 && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}
