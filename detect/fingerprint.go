package detect

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// fpVersion names the scheme of the fingerprints, so that no hash of
// this one equals one of another.
const fpVersion = "accessledger/detect state fingerprint 2"

// presentationKeys are the rule keys no saved state depends on (see
// stateSource).
var presentationKeys = []string{"title", "name", "related", "taxonomy", "status", "description", "license", "author",
	"references", "date", "modified", "fields", "falsepositives", "level", "tags", "scope", "response", "tests",
	"custom", "generate"}

// thresholdKeys are the parameters of each extension correlation that
// are compared with the state, not used to build it (see stateSource).
// new_term tolerance is kept as whether it is set.
var thresholdKeys = map[string][]string{
	NewTerm:     {"learning"},
	Baseline:    {"factor", "min_count", "learning"},
	GeoVelocity: {"min_distance_km", "min_speed_kmh"},
}

// stateSource re-encodes rule document root as its saved state depends
// on it: without the presentation keys, suppress, the reasons of
// exceptions, generate, the numbers of the correlation's condition and
// the extensions' thresholds; and suppress apart, for the suppressions.
// Maps are encoded with sorted keys, without comments. Engine.fingerprints
// hashes them into the fingerprints of the rule's state.
//
// The engine saves, per rule, the groups of a correlation (windows,
// new_term terms, geo points, baseline averages: for the learning rules,
// one to two weeks of learning) and the suppressions of a rule with
// suppress, under the rule's fingerprint. At load, state saved under
// another fingerprint is discarded (LoadState). A fingerprint must
// therefore change with everything that changes what the saved state
// means, and with nothing else: earlier versions hashed the whole rule
// document, so an edit of a rule's title discarded its learning.
//
// What is in, and why. The fingerprint of a rule's state is a hash of
// the rule document less the keys listed below, canonically re-encoded
// (comments, key order and YAML style do not count), and for a
// correlation, recursively, the same of each rule it refers to, in order,
// plus the lateness, the events kept per group and the state's encoding
// version of the configuration. Everything not excluded by name is in, so
// a key added later is in until someone decides otherwise. That keeps:
//
//   - id; logsource, detection and the match of each exception (of the
//     rule itself and of every rule feeding a correlation, down the
//     chain): they decide which events the state was built from, and
//     for the learning rules, the population a baseline or a set of
//     terms describes;
//   - correlation type, rules (their order is the slots of the saved
//     items), group-by and aliases (the group keys), timespan (windows,
//     history of new_term, buckets of baseline), the value fields
//     (condition field of value_count, fields of new_term: the hashes
//     saved), and any key a later version adds;
//   - the operators of condition (gt, gte, lt, ...), not their numbers:
//     a condition with lower bounds only fires as soon as a window holds
//     enough and drops the events it counted, one with an upper bound
//     keeps a window until its end and then evaluates it, so the saved
//     items mean different things under the two;
//   - new_term max_terms (a bound on the terms saved, like
//     max_events_per_group) and whether tolerance is set (the terms
//     saved are hashes without it, the values themselves with it);
//   - baseline history (the weight of the moving average saved, and how
//     long an idle group is kept);
//   - suppress, in the fingerprint of the suppressions only: their keys
//     are the values of its fields, and their ends were set with its
//     duration. The suppressions' fingerprint also holds the groups'
//     (for a detection rule, its detection's), so what discards a rule's
//     groups discards its suppressions too, but a change of suppress
//     alone keeps a baseline's learning.
//
// What is out, and why: keys no part of the state is computed from.
//
//   - title, name (the rules that refer to it by name name it in their
//     own rules list, which is in), description, level, tags,
//     references, related, author, license, date, modified, fields,
//     falsepositives, scope, taxonomy, custom, tests: presentation;
//     level and tags are copied into alerts when they are raised;
//   - status: a rule that stays enabled runs the same; one that is
//     disabled loads no state at all;
//   - response, and the reason of an exception: copied into alerts,
//     acted on by responders;
//   - generate: whether the referenced rules raise alerts of their own;
//     they feed the correlation either way;
//   - the numbers of condition: the items of a window stay the events
//     of that window whatever count fires it, so a brute force in
//     progress goes on counting toward the new threshold. This is what
//     operators tune most;
//   - new_term learning and tolerance (its size), baseline factor,
//     min_count and learning, geo_velocity min_distance_km and
//     min_speed_kmh: each is compared, when an event arrives, with what
//     the state holds (how long a group has been observed, its average,
//     its known terms, its last points), none changes what is saved.
//
// Not rule keys, and not in: the named lists and the time zone, which
// change what rules match (as an edit of detection would) but are
// configuration, kept out as before.
//
// State saved by earlier versions carries the whole-document fingerprint
// (legacy); LoadState accepts it for an unchanged rule, and the next save
// writes the new one.
func stateSource(root *yaml.Node) (state, suppress []byte) {
	var doc map[string]any
	// Scalars as their text: detection matches a value's text, so 16 and
	// 0x10, 1000 and 1e3 or 1_000 are other rules, which a decoded
	// number made one (found by review).
	if err := scalarsAsText(root).Decode(&doc); err != nil {
		// Not a rule that loads (ParseRules reports why): all of it.
		b, _ := yaml.Marshal(root)
		return b, b
	}
	if s, ok := doc["suppress"]; ok {
		suppress, _ = yaml.Marshal(s)
		delete(doc, "suppress")
	}
	for _, k := range presentationKeys {
		delete(doc, k)
	}
	if exc, ok := doc["exceptions"].([]any); ok {
		for _, x := range exc {
			if m, ok := x.(map[string]any); ok {
				delete(m, "reason")
			}
		}
	}
	if c, ok := doc["correlation"].(map[string]any); ok {
		delete(c, "generate")
		if cond, ok := c["condition"].(map[string]any); ok {
			for op := range cond {
				if slices.Contains(condOps, op) {
					cond[op] = nil
				}
			}
		}
		for section, keys := range thresholdKeys {
			m, ok := c[section].(map[string]any)
			if !ok {
				continue
			}
			for _, k := range keys {
				delete(m, k)
			}
			if tol, ok := m["tolerance"]; ok && section == NewTerm {
				if isZero(tol) {
					delete(m, "tolerance")
				} else {
					m["tolerance"] = "set"
				}
			}
			if len(m) == 0 {
				delete(c, section) // as if not given: its defaults are thresholds too
			}
		}
	}
	state, _ = yaml.Marshal(doc)
	return state, suppress
}

// isZero reports whether a scalar, as scalarsAsText leaves it, is the
// number 0.
func isZero(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	var f float64
	return yaml.Unmarshal([]byte(s), &f) == nil && f == 0
}

// scalarsAsText returns a copy of the tree of n whose scalars, but nulls,
// are strings of their text, as written.
func scalarsAsText(n *yaml.Node) *yaml.Node {
	return copyScalarsAsText(n, make(map[*yaml.Node]*yaml.Node))
}

// copyScalarsAsText is scalarsAsText copying each node once (copies):
// an alias refers to the copy of its anchor, as in the original. Copying
// what an alias refers to at each alias expanded anchors of anchors, nine
// to the power of their depth in a 600-byte rule ("billion laughs"), until
// the process ran out of memory (found by review).
func copyScalarsAsText(n *yaml.Node, copies map[*yaml.Node]*yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	if c, ok := copies[n]; ok {
		return c
	}
	c := new(yaml.Node)
	copies[n] = c
	*c = *n
	if c.Kind == yaml.ScalarNode && c.ShortTag() != "!!null" {
		c.Tag, c.Style = "!!str", 0
	}
	c.Alias = copyScalarsAsText(n.Alias, copies)
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		c.Content[i] = copyScalarsAsText(k, copies)
	}
	return c
}

// stateFP is what a rule's saved state is saved under, and what it is
// accepted under at load.
type stateFP struct {
	groups   string // of a correlation's groups; "" for a detection rule
	suppress string // of the suppressions; "" without suppress
	legacy   string // the whole-document fingerprint of earlier versions
}

// String returns the fingerprint as saved: the groups' and the
// suppressions', separated by a slash (a legacy fingerprint, 32 hex
// digits, has none).
func (f stateFP) String() string { return f.groups + "/" + f.suppress }

// accepts reports which parts of the state saved under fingerprint saved
// are still valid: the groups, the suppressions. State saved by an
// earlier version under the rule's legacy fingerprint is valid whole: the
// rule is the one it was saved by.
func (f stateFP) accepts(saved string) (groups, suppress bool) {
	if saved == f.legacy {
		return true, true
	}
	g, s, ok := strings.Cut(saved, "/")
	if !ok {
		return false, false
	}
	return g == f.groups, s == f.suppress
}

// fingerprints sets the fingerprints of e's rules with state (see
// stateSource).
func (e *Engine) fingerprints(rs *RuleSet) {
	fp := &inputFPs{rs: rs, memo: map[*Rule]string{}}
	for _, cr := range e.rules {
		r := cr.rule
		cr.fp = stateFP{legacy: legacyFP(r.source)}
		if r.Suppress != nil {
			cr.fp.suppress = hashParts(fpVersion, "suppress", fp.of(r), string(r.suppressSrc))
		}
	}
	for _, c := range e.corrs {
		r := c.rule
		c.fp = stateFP{legacy: legacyCorrelationFP(rs, r, e.cfg)}
		c.fp.groups = hashParts(fpVersion, "groups", fp.of(r),
			fmt.Sprintf("%d/%d/%d", e.cfg.Lateness, e.cfg.MaxEventsPerGroup, stateVersion))
		if r.Suppress != nil {
			c.fp.suppress = hashParts(fpVersion, "suppress", c.fp.groups, string(r.suppressSrc))
		}
	}
}

// inputFPs hashes what rules give the state of the correlations they
// feed.
type inputFPs struct {
	rs   *RuleSet
	memo map[*Rule]string
}

// of returns the hash of r's state source and, for a correlation, of
// those of the rules it refers to, in order, recursively.
func (f *inputFPs) of(r *Rule) string {
	if h, ok := f.memo[r]; ok {
		return h
	}
	f.memo[r] = "cycle" // refused by RuleSet.Check; not to recurse for ever
	parts := []string{string(r.stateSrc)}
	if r.Correlation != nil {
		for _, ref := range r.Correlation.Rules {
			if d := f.rs.lookup(ref); d != nil {
				parts = append(parts, f.of(d))
			} else {
				parts = append(parts, "missing "+ref)
			}
		}
	}
	h := hashParts(parts...)
	f.memo[r] = h
	return h
}

// hashParts returns the first 16 bytes of the SHA-256 of parts, each
// prefixed by its length, in hex.
func hashParts(parts ...string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// legacyFP is the fingerprint earlier versions saved for a detection
// rule: of its whole document, re-encoded.
func legacyFP(source []byte) string {
	h := sha256.Sum256(source)
	return hex.EncodeToString(h[:16])
}

// legacyCorrelationFP is the fingerprint earlier versions saved for
// correlation r: of its whole document, those of the rules it refers to
// (not further), and the configuration's lateness, events kept per group
// and the state's encoding version.
func legacyCorrelationFP(rs *RuleSet, r *Rule, cfg Config) string {
	h := sha256.New()
	h.Write(r.source)
	for _, ref := range r.Correlation.Rules {
		if d := rs.lookup(ref); d != nil {
			h.Write(d.source)
		}
	}
	fmt.Fprintf(h, "%d/%d/%d", cfg.Lateness, cfg.MaxEventsPerGroup, stateVersion)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
