package detect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/accessledger/accessledger/event"
)

// Rule is one parsed Sigma document: a detection rule (Detection set) or
// a correlation rule (Correlation set), with its metadata and
// accessledger's additions.
type Rule struct {
	// File and Line say where the document starts.
	File string
	Line int

	ID          string
	Name        string
	Title       string
	Status      string // stable, test, experimental, deprecated, unsupported
	Description string
	Level       string // informational, low, medium, high, critical (default medium)
	Author      string
	License     string
	Date        string
	Modified    string
	Tags        []string
	References  []string
	// FalsePositives lists known benign causes.
	FalsePositives []string
	Fields         []string
	Scope          []string
	Related        []Related
	Logsource      Logsource

	// Correlation is set for correlation rules.
	Correlation *Correlation

	// Suppress, if set, silences repeated alerts (accessledger addition).
	Suppress *Suppress
	// Exceptions are selections of events the rule ignores
	// (accessledger addition).
	Exceptions []Exception
	// Response says what responders may do about the rule's alerts
	// (accessledger addition).
	Response []ResponseSpec
	// Tests are the rule's inline tests (accessledger addition).
	Tests []RuleTest
	// Custom carries free-form metadata, which accessledger ignores.
	Custom map[string]any

	detection  *detectionAST
	exceptions []*selectionAST
	docPos     pos
	// source is the document, re-encoded: the fingerprint of its state
	// in earlier versions (legacyFP). stateSrc is what its saved state
	// depends on, and suppressSrc its suppress settings, re-encoded
	// (stateSource).
	source, stateSrc, suppressSrc []byte
}

// IsCorrelation reports whether r is a correlation rule.
func (r *Rule) IsCorrelation() bool { return r.Correlation != nil }

// Enabled reports whether the rule runs: deprecated and unsupported rules
// are loaded and listed but not run.
func (r *Rule) Enabled() bool { return r.Status != "deprecated" && r.Status != "unsupported" }

// Related is a reference to another rule.
type Related struct {
	ID   string
	Type string
}

// Logsource selects the events a rule applies to. Product must be
// accessledger; Category, if set, is the event's category and Service, if
// set, its service.
type Logsource struct {
	Product    string
	Category   string
	Service    string
	Definition string
}

// Correlation is the correlation section of a correlation rule.
type Correlation struct {
	// Type is event_count, value_count, temporal, temporal_ordered, or
	// one of accessledger's extensions new_term, geo_velocity, baseline.
	Type string
	// Rules are the ids or names of the rules correlated.
	Rules   []string
	GroupBy []string
	// Timespan is the window (for new_term the history window, for
	// geo_velocity the longest gap compared, for baseline the bucket).
	Timespan time.Duration
	// Condition holds the count condition (gt, gte, lt, lte, eq, neq).
	Condition []CountCondition
	// Field lists the fields whose distinct values value_count counts.
	Field []string
	// Aliases maps an alias used in GroupBy to a field per rule name.
	Aliases map[string]map[string]string
	// Generate makes the referenced rules raise alerts of their own too.
	Generate bool

	NewTerm     *NewTermSpec
	GeoVelocity *GeoVelocitySpec
	Baseline    *BaselineSpec
}

// CountCondition is one comparison of a correlation's condition.
type CountCondition struct {
	Op    string // gt, gte, lt, lte, eq, neq
	Value float64
}

// NewTermSpec parameterises the new_term extension: an alert when a group
// shows a value of Fields not seen for it within the history window
// (Timespan).
type NewTermSpec struct {
	Fields []string
	// Learning is how long a group must have been observed before its
	// new terms raise alerts (default: the history window).
	Learning time.Duration
	// MaxTerms bounds the terms remembered per group (default 64); the
	// least recently seen is forgotten first.
	MaxTerms int
	// Tolerance, for a single numeric field, counts a value within
	// Tolerance of a known one as known (and remembers it); for
	// time.hour and time.weekday the distance wraps around (23 is next
	// to 0). An admin who works until 18:00 and once stays until 19:00
	// is not new; one at 03:00 is.
	Tolerance int
}

// GeoVelocitySpec parameterises the geo_velocity extension: an alert when
// two consecutive events of a group imply travel of at least MinDistanceKm
// at MinSpeedKmh or more.
type GeoVelocitySpec struct {
	MinDistanceKm float64
	MinSpeedKmh   float64
}

// BaselineSpec parameterises the baseline extension: an alert when a
// group's count in the current bucket (Timespan) is at least Factor times
// its moving average over History, and at least MinCount.
type BaselineSpec struct {
	Factor   float64
	MinCount int
	History  time.Duration
	// Learning is how long a group must have been observed before it can
	// raise alerts (default: History).
	Learning time.Duration
}

// Suppress silences alerts of a rule with the same values of Fields for
// Duration of event time after one was raised.
type Suppress struct {
	Fields   []string
	Duration time.Duration
}

// Exception is a selection of events a rule ignores, with the reason.
type Exception struct {
	Reason string
	Line   int
}

// ResponseSpec is one thing responders may do about an alert.
type ResponseSpec struct {
	Action   string
	Target   string
	Duration time.Duration
}

// RuleTest is an inline test: events in, the number of alerts expected.
type RuleTest struct {
	Name   string
	Line   int
	Alerts int
	// render renders the test's events, in order, reporting problems in
	// el; tests are rendered when run (or checked), not at load.
	render func(el *errList) []testEvent
}

// Response actions a rule may name.
var responseActions = []string{"ban", "notify", "disable_account", "revoke_sessions", "require_mfa"}

var (
	statuses = []string{"stable", "test", "experimental", "deprecated", "unsupported"}
	levels   = event.Levels
	relTypes = []string{"derived", "obsolete", "merged", "renamed", "similar"}
	// categories are the logsource categories: the event categories.
	categories = []string{event.CategoryAuthentication, event.CategoryAuthorization, event.CategoryDataAccess, event.CategoryAdmin, event.CategorySystem}
)

// Sigma correlation types and accessledger's extensions.
const (
	EventCount      = "event_count"
	ValueCount      = "value_count"
	Temporal        = "temporal"
	TemporalOrdered = "temporal_ordered"
	NewTerm         = "new_term"
	GeoVelocity     = "geo_velocity"
	Baseline        = "baseline"
)

var (
	ruleKeys = []string{"title", "id", "name", "related", "taxonomy", "status", "description", "license", "author",
		"references", "date", "modified", "logsource", "detection", "fields", "falsepositives", "level", "tags", "scope",
		"suppress", "exceptions", "response", "tests", "custom"}
	correlationKeys = []string{"title", "id", "name", "related", "taxonomy", "status", "description", "license", "author",
		"references", "date", "modified", "correlation", "falsepositives", "level", "tags", "generate",
		"suppress", "exceptions", "response", "tests", "custom"}
)

var (
	idPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)
	tagPattern  = regexp.MustCompile(`^[a-z0-9_-]+(\.[a-z0-9_-]+)+$`)
	datePattern = regexp.MustCompile(`^\d{4}-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])$`)
	spanPattern = regexp.MustCompile(`^([1-9][0-9]{0,6})([smhd])$`)
)

// ParseRules parses one YAML file of Sigma documents (separated by ---).
// file names the file in errors. It returns every problem found as Errors.
func ParseRules(file string, data []byte) ([]*Rule, error) {
	el := &errList{file: file}
	var rules []*Rule
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			el.errs = append(el.errs, &Error{File: file, Line: yamlErrLine(err), Msg: "YAML: " + err.Error(), kind: ErrInvalid})
			break
		}
		if len(doc.Content) == 0 || isEmptyDocument(doc.Content[0]) {
			continue // nothing, or a trailing --- with nothing after it
		}
		if r := parseDocument(el, doc.Content[0]); r != nil {
			rules = append(rules, r)
		}
	}
	if len(el.errs) > 0 {
		return rules, el.errs
	}
	return rules, nil
}

// isEmptyDocument reports whether n is the null of an empty YAML document.
func isEmptyDocument(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null" && n.Value == ""
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// LoadRules parses every *.yml and *.yaml file under dir in fsys (in
// lexical order) and checks the set as a whole: unique ids and names,
// references that resolve. It returns the rules and, if anything is
// wrong, Errors listing every problem.
func LoadRules(fsys fs.FS, dir string) (*RuleSet, error) {
	rs, err := ParseDir(fsys, dir)
	if rs == nil {
		return nil, err
	}
	var errs Errors
	if err != nil && !errors.As(err, &errs) {
		return nil, err
	}
	errs = append(errs, rs.check()...)
	if len(errs) > 0 {
		return rs, errs
	}
	return rs, nil
}

// ParseDir parses every *.yml and *.yaml file under dir in fsys, in lexical
// order, without checking the set as a whole (see RuleSet.Check): for
// combining rule directories.
func ParseDir(fsys fs.FS, dir string) (*RuleSet, error) { return ParseDirNamed(fsys, dir, "") }

// ParseDirNamed is ParseDir, naming each file name/<its path in fsys> in
// rules and errors (for os.DirFS(dir), name is dir).
func ParseDirNamed(fsys fs.FS, dir, name string) (*RuleSet, error) {
	var files []string
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading rules: %w", err)
	}
	sort.Strings(files)
	rs := &RuleSet{}
	var errs Errors
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("reading rules: %w", err)
		}
		display := f
		if name != "" {
			display = path.Join(name, f)
		}
		rules, err := ParseRules(display, data)
		var es Errors
		if errors.As(err, &es) {
			errs = append(errs, es...)
		}
		rs.Rules = append(rs.Rules, rules...)
	}
	if len(errs) > 0 {
		return rs, errs
	}
	return rs, nil
}

// RuleSet is a set of rules loaded together, among which correlation
// rules find the rules they refer to.
type RuleSet struct {
	Rules []*Rule
}

// check verifies what spans documents: unique ids and names, references
// that resolve, no cycles.
func (rs *RuleSet) check() Errors {
	var errs Errors
	ids := map[string]*Rule{}
	names := map[string]*Rule{}
	for _, r := range rs.Rules {
		if o, dup := ids[r.ID]; dup && r.ID != "" {
			errs = append(errs, r.docPos.errorf("duplicate rule id %q (also at %s)", r.ID, o.docPos))
		} else {
			ids[r.ID] = r
		}
		if r.Name != "" {
			if o, dup := names[r.Name]; dup {
				errs = append(errs, r.docPos.errorf("duplicate rule name %q (also at %s)", r.Name, o.docPos))
			} else {
				names[r.Name] = r
			}
		}
	}
	for _, r := range rs.Rules {
		if r.Correlation == nil {
			continue
		}
		for _, ref := range r.Correlation.Rules {
			if rs.lookup(ref) == nil {
				errs = append(errs, r.docPos.errorf("correlation rule %q refers to rule %q, which is not loaded (refer to a rule by its id or its name)", r.ID, ref))
			}
		}
	}
	// Cycles: a correlation that (transitively) refers to itself.
	state := map[*Rule]int{}
	var visit func(r *Rule) bool
	visit = func(r *Rule) bool {
		switch state[r] {
		case 1:
			return false
		case 2:
			return true
		}
		state[r] = 1
		if r.Correlation != nil {
			for _, ref := range r.Correlation.Rules {
				if d := rs.lookup(ref); d != nil && !visit(d) {
					return false
				}
			}
		}
		state[r] = 2
		return true
	}
	for _, r := range rs.Rules {
		if !visit(r) {
			errs = append(errs, r.docPos.errorf("correlation rule %q is part of a reference cycle", r.ID))
			break
		}
	}
	return errs
}

// lookup finds a rule by id or name.
func (rs *RuleSet) lookup(ref string) *Rule {
	for _, r := range rs.Rules {
		if r.ID == ref || (r.Name != "" && r.Name == ref) {
			return r
		}
	}
	return nil
}

// Lookup returns the rule with the id or name ref, or nil.
func (rs *RuleSet) Lookup(ref string) *Rule { return rs.lookup(ref) }

// maxDetectionNodes bounds a rule's detection and exceptions once their
// YAML aliases are resolved: field conditions and values (each key and
// each scalar), as the detector parses and compiles them. The default
// pack's largest rule holds a few dozen; a list of thousands of values or
// ranges fits, a larger one belongs in a named list (expand).
const maxDetectionNodes = 100_000

// checkExpansion reports whether the detection and exceptions of the rule
// root hold at most maxDetectionNodes keys and scalars once their aliases
// are resolved, reporting those that do not. yaml.Node leaves aliases
// unexpanded, but the detector parses and compiles what an alias refers
// to at each use: 20 aliases of a list of 1,000 aliases of a map of 3,000
// values, a 22 KB rule, took 17 GB and 52 s to load (found by review).
// It counts in time linear in the nodes written, before anything is
// parsed.
func checkExpansion(el *errList, root *yaml.Node) bool {
	sizes := map[*yaml.Node]int{}
	total := 0
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch k := resolve(root.Content[i]); k.Value {
		case "detection", "exceptions":
			total += expandedSize(root.Content[i+1], sizes)
			if total > maxDetectionNodes {
				el.at(k, "detection and exceptions hold more than %d field conditions and values once their YAML aliases (*name) are resolved: write fewer, or put a long list of values in a named list (expand)", maxDetectionNodes)
				return false
			}
		}
	}
	return true
}

// expandedSize returns how many keys and scalars n holds once its aliases
// are resolved, at most maxDetectionNodes+1; sizes holds those of the
// collections already counted, so that each node is counted once however
// many aliases refer to it.
func expandedSize(n *yaml.Node, sizes map[*yaml.Node]int) int {
	n = resolve(n)
	if n == nil {
		return 0
	}
	if n.Kind == yaml.ScalarNode {
		return 1
	}
	if s, ok := sizes[n]; ok {
		return s
	}
	sizes[n] = maxDetectionNodes + 1 // a collection within itself is over
	s := 0
	for _, c := range n.Content {
		if s += expandedSize(c, sizes); s > maxDetectionNodes {
			s = maxDetectionNodes + 1
			break
		}
	}
	sizes[n] = s
	return s
}

// resolve follows YAML aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// mapping iterates over a mapping node's members, rejecting duplicate keys
// and merge keys. It reports a node that is not a mapping.
func mapping(el *errList, n *yaml.Node, what string, fn func(key string, k, v *yaml.Node)) bool {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		el.at(n, "%s must be a mapping", what)
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			el.at(k, "%s: keys must be plain strings", what)
			continue
		}
		if k.Tag == "!!merge" || k.Value == "<<" {
			el.unsupported(k, "YAML merge key", "merge keys (<<) are not supported; write the members out")
			continue
		}
		if seen[k.Value] {
			el.at(k, "%s: duplicate key %q", what, k.Value)
			continue
		}
		seen[k.Value] = true
		fn(k.Value, k, v)
	}
	return true
}

// scalarString reads a scalar as a string.
func scalarString(el *errList, n *yaml.Node, what string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		el.at(n, "%s must be a string", what)
		return "", false
	}
	return n.Value, true
}

// stringList reads a list of strings; a single string is accepted as a
// list of one where Sigma allows it (single).
func stringList(el *errList, n *yaml.Node, what string, single bool) []string {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && single && n.Tag != "!!null" {
		return []string{n.Value}
	}
	if n.Kind != yaml.SequenceNode {
		el.at(n, "%s must be a list of strings", what)
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		if s, ok := scalarString(el, c, what+" item"); ok {
			out = append(out, s)
		}
	}
	return out
}

// parseSpan parses a Sigma timespan: a number and one of s, m, h, d.
func parseSpan(el *errList, n *yaml.Node, what string) time.Duration {
	s, ok := scalarString(el, n, what)
	if !ok {
		return 0
	}
	m := spanPattern.FindStringSubmatch(s)
	if m == nil {
		el.at(n, "%s %q must be a number and a unit in lower case: Xs, Xm, Xh or Xd (90m for an hour and a half)", what, s)
		return 0
	}
	v, _ := strconv.Atoi(m[1])
	unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[m[2]]
	if d := time.Duration(v) * unit; d <= maxSpan {
		return d
	}
	// Windows are event times in nanoseconds plus a span: 100000d
	// overflowed, and the rule never fired.
	el.at(n, "%s %q: at most 3650d (ten years)", what, s)
	return 0
}

// maxSpan bounds every span a rule gives.
const maxSpan = 3650 * 24 * time.Hour

func parseNumber(el *errList, n *yaml.Node, what string) (float64, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		el.at(n, "%s must be a number", what)
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
	if err != nil {
		i, err2 := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err2 != nil {
			el.at(n, "%s must be a number", what)
			return 0, false
		}
		f = float64(i)
	}
	return f, true
}

func unknownKey(el *errList, k *yaml.Node, where string, known []string) {
	hint := ""
	switch k.Value {
	case "severity", "priority":
		hint = ` (did you mean "level"?)`
	case "reference":
		hint = ` (did you mean "references"?)`
	case "tag":
		hint = ` (did you mean "tags"?)`
	case "falsepositive", "false_positives":
		hint = ` (did you mean "falsepositives"?)`
	default:
		for _, kk := range known {
			if strings.EqualFold(kk, k.Value) {
				hint = fmt.Sprintf(" (did you mean %q? keys are lower case)", kk)
			}
		}
	}
	el.at(k, "unknown field %q in %s%s; accessledger rejects unknown fields: put custom metadata under \"custom:\"", k.Value, where, hint)
}

// parseDocument parses one YAML document into a rule.
func parseDocument(el *errList, root *yaml.Node) *Rule {
	root = resolve(root)
	r := &Rule{File: el.file, Line: root.Line, docPos: posOf(el.file, root), Level: event.LevelMedium}
	r.source, _ = yaml.Marshal(root)
	if root.Kind != yaml.MappingNode {
		el.at(root, "a rule must be a YAML mapping")
		return nil
	}
	if !checkExpansion(el, root) {
		return nil
	}
	r.stateSrc, r.suppressSrc = stateSource(root)
	var hasDetection, hasCorrelation bool
	var detNode, corrNode, excNode, testsNode, lsNode *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch resolve(root.Content[i]).Value {
		case "correlation":
			hasCorrelation = true
		case "detection":
			hasDetection = true
		case "filter":
			el.unsupported(root.Content[i], "Sigma filters", "Sigma filter documents are not supported; write the exclusion as the rule's exceptions")
			return nil
		case "action":
			el.unsupported(root.Content[i], "action: global/repeat/reset", "Sigma 1 rule collections (action: global) are not supported; write each rule out")
			return nil
		}
	}
	keys := ruleKeys
	switch {
	case hasCorrelation && hasDetection:
		el.at(root, "a document has either detection (a Sigma rule) or correlation (a correlation rule), not both")
		return nil
	case hasCorrelation:
		keys = correlationKeys
	case !hasDetection:
		el.at(root, "a rule needs a detection section (a Sigma rule) or a correlation section (a correlation rule)")
		return nil
	}
	mapping(el, root, "the rule", func(key string, k, v *yaml.Node) {
		if !slices.Contains(keys, key) {
			if hasCorrelation && (key == "logsource" || key == "detection") || !hasCorrelation && (key == "correlation" || key == "generate") {
				el.at(k, "%q belongs in a %s, not in a %s", key, map[bool]string{true: "Sigma rule", false: "correlation rule"}[hasCorrelation], map[bool]string{true: "correlation rule", false: "Sigma rule"}[hasCorrelation])
				return
			}
			unknownKey(el, k, "the rule", keys)
			return
		}
		switch key {
		case "title":
			r.Title, _ = scalarString(el, v, "title")
			if len(r.Title) > 256 {
				el.at(v, "title is longer than 256 characters")
			}
		case "id":
			r.ID, _ = scalarString(el, v, "id")
			if r.ID != "" && !idPattern.MatchString(r.ID) {
				el.at(v, "id %q must be a UUID or 1 to 128 characters [A-Za-z0-9_.:-]", r.ID)
			}
		case "name":
			r.Name, _ = scalarString(el, v, "name")
		case "related":
			r.Related = parseRelated(el, v)
		case "taxonomy":
			if t, ok := scalarString(el, v, "taxonomy"); ok && t != Product {
				el.unsupported(v, "taxonomy: "+t, "field names are accessledger's own (taxonomy: accessledger, the default); rules written for the %q taxonomy must be converted", t)
			}
		case "status":
			r.Status, _ = scalarString(el, v, "status")
			if !slices.Contains(statuses, r.Status) {
				el.at(v, "status %q must be one of %s", r.Status, strings.Join(statuses, ", "))
			}
		case "description":
			r.Description, _ = scalarString(el, v, "description")
		case "license":
			r.License, _ = scalarString(el, v, "license")
		case "author":
			r.Author, _ = scalarString(el, v, "author")
		case "references":
			r.References = stringList(el, v, "references", false)
		case "date", "modified":
			s, ok := scalarString(el, v, key)
			if ok && !datePattern.MatchString(s) {
				el.at(v, "%s %q must be a date YYYY-MM-DD", key, s)
			}
			if key == "date" {
				r.Date = s
			} else {
				r.Modified = s
			}
		case "logsource":
			lsNode = v
		case "detection":
			detNode = v
		case "correlation":
			corrNode = v
		case "fields":
			r.Fields = stringList(el, v, "fields", false)
			for _, f := range r.Fields {
				if _, ok := lookupField(f); !ok {
					el.at(v, "fields: unknown field %q; the fields are %s", f, fieldNames())
				}
			}
		case "falsepositives":
			r.FalsePositives = stringList(el, v, "falsepositives", true)
		case "level":
			r.Level, _ = scalarString(el, v, "level")
			if !slices.Contains(levels, r.Level) {
				el.at(v, "level %q must be one of %s", r.Level, strings.Join(levels, ", "))
			}
		case "tags":
			r.Tags = stringList(el, v, "tags", false)
			for _, t := range r.Tags {
				if !tagPattern.MatchString(t) {
					el.at(v, "tag %q must be namespaced and lower case, such as attack.t1110.003 or attack.credential-access", t)
				}
			}
			if len(r.Tags) > event.MaxAlertTags {
				el.at(v, "more than %d tags", event.MaxAlertTags)
			}
		case "scope":
			r.Scope = stringList(el, v, "scope", false)
		case "generate":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
				el.at(v, "generate must be true or false")
			}
			// Recorded on the correlation below.
		case "suppress":
			r.Suppress = parseSuppress(el, v)
		case "exceptions":
			excNode = v
		case "response":
			r.Response = parseResponse(el, v)
		case "tests":
			testsNode = v
		case "custom":
			var m map[string]any
			if err := v.Decode(&m); err != nil {
				el.at(v, "custom must be a mapping: %v", err)
			}
			r.Custom = m
		}
	})
	if r.Title == "" {
		el.at(root, "title is required")
	}
	if r.ID == "" {
		el.at(root, "id is required (accessledger names rules by id in alerts and dedup keys; use a UUID)")
	}
	if hasDetection {
		if lsNode == nil {
			el.at(root, "logsource is required (logsource: {product: accessledger, category: ...})")
		} else {
			r.Logsource = parseLogsource(el, lsNode)
		}
		if detNode != nil {
			r.detection = parseDetection(el, detNode)
		}
	} else {
		r.Correlation = parseCorrelation(el, corrNode)
		for i := 0; i+1 < len(root.Content); i += 2 {
			if resolve(root.Content[i]).Value == "generate" {
				r.Correlation.Generate = resolve(root.Content[i+1]).Value == "true"
			}
		}
	}
	if excNode != nil {
		r.Exceptions, r.exceptions = parseExceptions(el, excNode)
	}
	if testsNode != nil {
		r.Tests = parseTests(el, testsNode)
	}
	if r.Suppress != nil && r.Correlation == nil && len(r.Suppress.Fields) == 0 {
		// A detection rule without suppress fields silences the rule
		// as a whole; that is allowed.
		_ = r
	}
	return r
}

func parseRelated(el *errList, n *yaml.Node) []Related {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		el.at(n, "related must be a list of {id, type}")
		return nil
	}
	var out []Related
	for _, c := range n.Content {
		var rel Related
		mapping(el, c, "related item", func(key string, k, v *yaml.Node) {
			switch key {
			case "id":
				rel.ID, _ = scalarString(el, v, "related id")
			case "type":
				rel.Type, _ = scalarString(el, v, "related type")
				if !slices.Contains(relTypes, rel.Type) {
					el.at(v, "related type %q must be one of %s", rel.Type, strings.Join(relTypes, ", "))
				}
			default:
				unknownKey(el, k, "related", []string{"id", "type"})
			}
		})
		out = append(out, rel)
	}
	return out
}

func parseLogsource(el *errList, n *yaml.Node) Logsource {
	var ls Logsource
	mapping(el, n, "logsource", func(key string, k, v *yaml.Node) {
		s, ok := scalarString(el, v, "logsource "+key)
		if !ok {
			return
		}
		switch key {
		case "product":
			ls.Product = s
			if s != Product {
				el.unsupported(v, "logsource product "+s, "accessledger evaluates rules over its own log source only: logsource product must be %q", Product)
			}
		case "category":
			ls.Category = s
			if !slices.Contains(categories, s) {
				el.at(v, "logsource category %q must be one of %s (the event categories)", s, strings.Join(categories, ", "))
			}
		case "service":
			ls.Service = s
		case "definition":
			ls.Definition = s
		default:
			unknownKey(el, k, "logsource", []string{"product", "category", "service", "definition"})
		}
	})
	if ls.Product == "" {
		el.at(n, "logsource product is required: product: %s", Product)
	}
	return ls
}

func parseSuppress(el *errList, n *yaml.Node) *Suppress {
	s := &Suppress{}
	mapping(el, n, "suppress", func(key string, k, v *yaml.Node) {
		switch key {
		case "fields":
			s.Fields = stringList(el, v, "suppress fields", true)
			for _, f := range s.Fields {
				if _, ok := lookupField(f); !ok {
					el.at(v, "suppress: unknown field %q", f)
				}
			}
		case "duration":
			s.Duration = parseSpan(el, v, "suppress duration")
		default:
			unknownKey(el, k, "suppress", []string{"fields", "duration"})
		}
	})
	if s.Duration == 0 {
		el.at(n, "suppress needs a duration (such as 1h)")
	}
	return s
}

func parseResponse(el *errList, n *yaml.Node) []ResponseSpec {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		el.at(n, "response must be a list of {action, target, duration}")
		return nil
	}
	var out []ResponseSpec
	for _, c := range n.Content {
		var rs ResponseSpec
		mapping(el, c, "response item", func(key string, k, v *yaml.Node) {
			switch key {
			case "action":
				rs.Action, _ = scalarString(el, v, "response action")
				if !slices.Contains(responseActions, rs.Action) {
					el.at(v, "response action %q must be one of %s", rs.Action, strings.Join(responseActions, ", "))
				}
			case "target":
				rs.Target, _ = scalarString(el, v, "response target")
				if _, ok := lookupField(rs.Target); !ok {
					el.at(v, "response target %q is not a field; the fields are %s", rs.Target, fieldNames())
				}
			case "duration":
				rs.Duration = parseSpan(el, v, "response duration")
			default:
				unknownKey(el, k, "response", []string{"action", "target", "duration"})
			}
		})
		if rs.Action == "" {
			el.at(c, "response item needs an action")
		}
		out = append(out, rs)
	}
	return out
}

func parseExceptions(el *errList, n *yaml.Node) ([]Exception, []*selectionAST) {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		el.at(n, "exceptions must be a list of {reason, match}")
		return nil, nil
	}
	var out []Exception
	var sels []*selectionAST
	for i, c := range n.Content {
		ex := Exception{Line: c.Line}
		var sel *selectionAST
		mapping(el, c, "exception", func(key string, k, v *yaml.Node) {
			switch key {
			case "reason":
				ex.Reason, _ = scalarString(el, v, "exception reason")
			case "match":
				sel = parseSelection(el, fmt.Sprintf("exception %d", i+1), v)
			default:
				unknownKey(el, k, "exception", []string{"reason", "match"})
			}
		})
		if ex.Reason == "" {
			el.at(c, "an exception needs a reason (say why these events are benign)")
		}
		if sel == nil {
			el.at(c, "an exception needs match: a selection of the events to ignore")
			continue
		}
		out = append(out, ex)
		sels = append(sels, sel)
	}
	return out, sels
}

var condOps = []string{"gt", "gte", "lt", "lte", "eq", "neq"}

func parseCorrelation(el *errList, n *yaml.Node) *Correlation {
	c := &Correlation{}
	var extNode *yaml.Node
	var extKey string
	var timespanSet bool
	keys := []string{"type", "rules", "group-by", "timespan", "condition", "aliases", "generate", NewTerm, GeoVelocity, Baseline}
	mapping(el, n, "correlation", func(key string, k, v *yaml.Node) {
		switch key {
		case "type":
			c.Type, _ = scalarString(el, v, "correlation type")
			switch c.Type {
			case EventCount, ValueCount, Temporal, TemporalOrdered, NewTerm, GeoVelocity, Baseline:
			case "value_sum", "value_avg", "value_percentile":
				el.unsupported(v, "correlation type "+c.Type, "accessledger supports event_count, value_count, temporal and temporal_ordered (plus its extensions new_term, geo_velocity, baseline)")
			default:
				el.at(v, "correlation type %q must be one of event_count, value_count, temporal, temporal_ordered, new_term, geo_velocity, baseline", c.Type)
			}
		case "rules":
			c.Rules = stringList(el, v, "correlation rules", true)
			if len(c.Rules) == 0 {
				el.at(v, "correlation rules must name at least one rule")
			}
			// One event would fill both places of a temporal
			// correlation that names a rule twice.
			for i, r := range c.Rules {
				if slices.Index(c.Rules, r) != i {
					el.at(v, "correlation rules name %q twice", r)
					break
				}
			}
		case "group-by":
			c.GroupBy = stringList(el, v, "group-by", true)
		case "timespan":
			c.Timespan = parseSpan(el, v, "timespan")
			timespanSet = true
		case "condition":
			mapping(el, v, "correlation condition", func(op string, k, v *yaml.Node) {
				switch {
				case op == "field":
					c.Field = stringList(el, v, "condition field", true)
				case slices.Contains(condOps, op):
					if f, ok := parseNumber(el, v, "condition "+op); ok {
						c.Condition = append(c.Condition, CountCondition{Op: op, Value: f})
					}
				default:
					el.at(k, "unknown correlation condition %q: use gt, gte, lt, lte, eq, neq (and field for value_count)", op)
				}
			})
		case "aliases":
			c.Aliases = map[string]map[string]string{}
			mapping(el, v, "aliases", func(alias string, k, v *yaml.Node) {
				m := map[string]string{}
				mapping(el, v, "alias "+alias, func(rule string, k, v *yaml.Node) {
					m[rule], _ = scalarString(el, v, "alias field")
				})
				c.Aliases[alias] = m
			})
		case "generate":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
				el.at(v, "generate must be true or false")
			}
			c.Generate = v.Value == "true"
		case NewTerm, GeoVelocity, Baseline:
			extNode, extKey = v, key
		default:
			unknownKey(el, k, "correlation", keys)
		}
	})
	if c.Type == "" {
		el.at(n, "correlation type is required")
		return c
	}
	if !timespanSet {
		el.at(n, "correlation timespan is required (such as 10m)")
	}
	if len(c.Rules) == 0 {
		el.at(n, "correlation rules are required")
	}
	if extNode != nil && extKey != c.Type {
		el.at(extNode, "%s parameters given to a correlation of type %s", extKey, c.Type)
	}
	needCond := c.Type == EventCount || c.Type == ValueCount
	switch {
	case needCond && len(c.Condition) == 0:
		el.at(n, "a %s correlation needs a condition (such as gte: 10)", c.Type)
	case (c.Type == NewTerm || c.Type == GeoVelocity || c.Type == Baseline) && len(c.Condition) > 0:
		el.at(n, "a %s correlation takes its thresholds in its %s section, not in condition", c.Type, c.Type)
	}
	if c.Type == ValueCount && len(c.Field) == 0 {
		el.at(n, "a value_count correlation needs condition field: the field whose distinct values are counted")
	}
	if c.Type != ValueCount && len(c.Field) > 0 {
		el.at(n, "condition field is only for value_count")
	}
	if (c.Type == Temporal || c.Type == TemporalOrdered) && len(c.Rules) < 2 {
		el.at(n, "a %s correlation relates at least two rules", c.Type)
	}
	learningZero := false
	switch c.Type {
	case NewTerm:
		c.NewTerm = &NewTermSpec{MaxTerms: 64}
		if extNode == nil {
			el.at(n, "a new_term correlation needs a new_term section with fields")
			break
		}
		mapping(el, extNode, "new_term", func(key string, k, v *yaml.Node) {
			switch key {
			case "fields":
				c.NewTerm.Fields = stringList(el, v, "new_term fields", true)
			case "learning":
				if resolve(v).Value == "0s" {
					learningZero = true
					break
				}
				c.NewTerm.Learning = parseSpan(el, v, "new_term learning")
			case "tolerance":
				if f, ok := parseNumber(el, v, "new_term tolerance"); ok && f >= 0 && f <= 1e6 && f == float64(int(f)) {
					c.NewTerm.Tolerance = int(f)
				} else if ok {
					el.at(v, "new_term tolerance must be a whole number, 0 or more")
				}
			case "max_terms":
				if f, ok := parseNumber(el, v, "new_term max_terms"); ok && f >= 1 && f <= 4096 {
					c.NewTerm.MaxTerms = int(f)
				} else if ok {
					el.at(v, "new_term max_terms must be from 1 to 4096")
				}
			default:
				unknownKey(el, k, "new_term", []string{"fields", "learning", "max_terms", "tolerance"})
			}
		})
		if len(c.NewTerm.Fields) == 0 {
			el.at(extNode, "new_term needs fields: the fields whose new values raise alerts")
		}
		if c.NewTerm.Tolerance > 0 {
			f, ok := lookupField(strings.Join(c.NewTerm.Fields, ","))
			if len(c.NewTerm.Fields) != 1 || !ok || f.kind != kindInt {
				el.at(extNode, "new_term tolerance needs a single numeric field (time.hour, time.weekday, source.port, ...)")
			}
		}
		if c.NewTerm.Learning == 0 && !learningZero {
			c.NewTerm.Learning = c.Timespan
		}
	case GeoVelocity:
		c.GeoVelocity = &GeoVelocitySpec{MinDistanceKm: 500, MinSpeedKmh: 800}
		if extNode != nil {
			mapping(el, extNode, "geo_velocity", func(key string, k, v *yaml.Node) {
				f, ok := parseNumber(el, v, "geo_velocity "+key)
				switch {
				case key != "min_distance_km" && key != "min_speed_kmh":
					unknownKey(el, k, "geo_velocity", []string{"min_distance_km", "min_speed_kmh"})
				case !ok:
				case f <= 0:
					el.at(v, "geo_velocity %s must be positive", key)
				case key == "min_distance_km":
					c.GeoVelocity.MinDistanceKm = f
				default:
					c.GeoVelocity.MinSpeedKmh = f
				}
			})
		}
	case Baseline:
		c.Baseline = &BaselineSpec{Factor: 10, MinCount: 50}
		if extNode != nil {
			mapping(el, extNode, "baseline", func(key string, k, v *yaml.Node) {
				switch key {
				case "factor":
					if f, ok := parseNumber(el, v, "baseline factor"); ok && f > 1 {
						c.Baseline.Factor = f
					} else if ok {
						el.at(v, "baseline factor must be above 1")
					}
				case "min_count":
					if f, ok := parseNumber(el, v, "baseline min_count"); ok && f >= 1 {
						c.Baseline.MinCount = int(f)
					} else if ok {
						el.at(v, "baseline min_count must be at least 1")
					}
				case "history":
					c.Baseline.History = parseSpan(el, v, "baseline history")
				case "learning":
					c.Baseline.Learning = parseSpan(el, v, "baseline learning")
				default:
					unknownKey(el, k, "baseline", []string{"factor", "min_count", "history", "learning"})
				}
			})
		}
		if c.Baseline.History == 0 {
			c.Baseline.History = 7 * 24 * time.Hour
		}
		if c.Baseline.History < 2*c.Timespan {
			el.at(n, "baseline history must span at least two buckets (timespan)")
		}
		if c.Baseline.Learning == 0 {
			c.Baseline.Learning = c.Baseline.History
		}
	}
	for _, cc := range c.Condition {
		switch {
		case cc.Value < 0:
			el.at(n, "condition %s must not be negative", cc.Op)
		case cc.Value != math.Trunc(cc.Value):
			// Every supported type counts events or values.
			el.at(n, "condition %s must be a whole number (a count), got %v", cc.Op, cc.Value)
		}
	}
	if lo, hi, ok := c.countRange(); ok && lo > hi {
		counts := "1 or more"
		if c.Type == Temporal || c.Type == TemporalOrdered {
			counts = fmt.Sprintf("from 1 to %d, the rules it names", len(c.Rules))
		}
		el.at(n, "the condition can never be met: a %s correlation counts %s", c.Type, counts)
	}
	return c
}

// countRange returns the counts c's condition admits, [lo, hi], given
// that a count is at least 1 (a group exists once an event is in it) and,
// for temporal correlations, at most the number of rules. ok is false for
// types that take no count condition.
func (c *Correlation) countRange() (lo, hi float64, ok bool) {
	lo, hi = 1, math.Inf(1)
	switch c.Type {
	case EventCount, ValueCount:
	case Temporal, TemporalOrdered:
		hi = float64(len(c.Rules))
	default:
		return 0, 0, false
	}
	for _, cc := range c.Condition {
		switch cc.Op {
		case "gt":
			lo = max(lo, cc.Value+1)
		case "gte":
			lo = max(lo, cc.Value)
		case "lt":
			hi = min(hi, cc.Value-1)
		case "lte":
			hi = min(hi, cc.Value)
		case "eq":
			lo, hi = max(lo, cc.Value), min(hi, cc.Value)
		}
	}
	return lo, hi, true
}

// Check verifies what spans the rules of rs: unique ids and names,
// references that resolve, no reference cycles. LoadRules does it; call it
// after combining rule sets.
func (rs *RuleSet) Check() error {
	if errs := rs.check(); len(errs) > 0 {
		return errs
	}
	return nil
}
