package detect

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// specCorrelation is the correlation specification's example "Failed
// Logins Followed by Successful Login", in accessledger's taxonomy.
const specCorrelation = `title: Correlation - Multiple Failed Logins Followed by Successful Login
id: b180ead8-d58f-40b2-ae54-c8940995b9b6
status: experimental
description: Detects multiple failed logins by a single user followed by a successful login of that user
references:
    - https://reference.com
author: Florian Roth (Nextron Systems)
date: 2023-06-16
correlation:
    type: temporal_ordered
    rules:
        - multiple_failed_login
        - successful_login
    group-by:
        - actor.id
    timespan: 10m
falsepositives:
    - Unlikely
level: high
---
title: Multiple failed logons
id: a8418a5a-5fc4-46b5-b23b-6c73beb19d41
description: Detects multiple failed logins within a certain amount of time
name: multiple_failed_login
correlation:
    type: event_count
    rules:
        - failed_login
    group-by:
        - actor.id
    timespan: 10m
    condition:
        gte: 10
---
title: Single failed login
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed_login
logsource:
    product: accessledger
    category: authentication
detection:
    selection:
        action: login
        outcome: failure
    condition: selection
---
title: Successful login
id: 4d0a2c83-c62c-4ed4-b475-c7e23a9269b8
description: Detects a successful login
name: successful_login
logsource:
    product: accessledger
    category: authentication
detection:
    selection:
        action: login
        outcome: success
    condition: selection
`

func TestParseSpecCorrelation(t *testing.T) {
	rs, err := LoadRules(fstest.MapFS{"r/mr_failed_then_success.yml": {Data: []byte(specCorrelation)}}, "r")
	if err != nil {
		t.Fatalf("LoadRules = %v", err)
	}
	if got := len(rs.Rules); got != 4 {
		t.Fatalf("LoadRules: %d rules, want 4", got)
	}
	top := rs.Lookup("b180ead8-d58f-40b2-ae54-c8940995b9b6")
	if top == nil || top.Correlation == nil || top.Correlation.Type != TemporalOrdered || top.Level != "high" {
		t.Fatalf("Lookup(top) = %+v, want a high temporal_ordered correlation", top)
	}
	if inner := rs.Lookup("multiple_failed_login"); inner == nil || inner.Correlation.Condition[0] != (CountCondition{"gte", 10}) {
		t.Errorf("Lookup(multiple_failed_login) = %+v, want event_count gte 10", inner)
	}
	e, err := Compile(rs, Config{})
	if err != nil {
		t.Fatalf("Compile = %v", err)
	}
	// Only the outermost correlation raises alerts (generate is false).
	var alerting []string
	for _, s := range e.Stats().Rules {
		if s.Alerting {
			alerting = append(alerting, s.ID)
		}
	}
	if strings.Join(alerting, ",") != top.ID {
		t.Errorf("alerting rules = %v, want only %s", alerting, top.ID)
	}
}

// TestParseErrors checks that every malformed or unsupported rule is
// rejected with its file, line and the feature named.
func TestParseErrors(t *testing.T) {
	head := "title: t\nid: r1\nlogsource: {product: accessledger}\n"
	corr := func(typ, rules, span, cond string) string {
		return fmt.Sprintf("title: c\nid: c1\ncorrelation:\n  type: %s\n  rules: %s\n  timespan: %s\n  condition: %s\n", typ, rules, span, cond)
	}
	tests := []struct {
		name        string
		src         string
		line        int
		unsupported bool
		want        string
	}{
		{"unknown top-level field", head + "severity: high\ndetection: {sel: {action: login}, condition: sel}\n", 4, false, `unknown field "severity" in the rule (did you mean "level"?)`},
		{"wrong case key", head + "Level: high\ndetection: {sel: {action: login}, condition: sel}\n", 4, false, `did you mean "level"`},
		{"unknown field name", head + "detection:\n  sel:\n    user: alice\n  condition: sel\n", 6, false, `unknown field "user"`},
		{"unknown modifier", head + "detection:\n  sel:\n    actor.id|containz: a\n  condition: sel\n", 6, false, `unknown modifier "containz"`},
		{"unsupported modifier", head + "detection:\n  sel:\n    actor.id|base64: a\n  condition: sel\n", 6, true, `modifier base64`},
		{"windash", head + "detection:\n  sel:\n    actor.id|windash: a\n  condition: sel\n", 6, true, `modifier windash`},
		{"fieldref", head + "detection:\n  sel:\n    actor.id|fieldref: actor.session\n  condition: sel\n", 6, true, `modifier fieldref`},
		{"keywords", head + "detection:\n  keywords:\n    - evil\n    - bad\n  condition: keywords\n", 6, true, `keyword search`},
		{"keyword all", head + "detection:\n  kw:\n    '|all': [a, b]\n  condition: kw\n", 6, true, `keyword search`},
		{"aggregation", head + "detection:\n  sel: {action: login}\n  condition: sel | count() by source.ip > 5\n", 6, true, `aggregation in condition`},
		{"near", head + "detection:\n  a: {action: login}\n  b: {action: read}\n  condition: a near b\n", 7, true, `near`},
		{"timeframe", head + "detection:\n  sel: {action: login}\n  timeframe: 5m\n  condition: sel\n", 6, true, `timeframe`},
		{"2 of", head + "detection:\n  a: {action: login}\n  condition: 2 of a*\n", 6, true, `2 of`},
		{"unknown identifier", head + "detection:\n  sel: {action: login}\n  condition: sel and filter\n", 6, false, `unknown search identifier "filter"`},
		// Found by probing the engine: a stack overflow, windows that
		// overflowed, correlations that could never fire.
		{"deep brackets", head + "detection:\n  sel: {action: login}\n  condition: " + strings.Repeat("(", 65) + "sel" + strings.Repeat(")", 65) + "\n", 6, false, `nested deeper than 64 levels`},
		{"deep nots", head + "detection:\n  sel: {action: login}\n  condition: " + strings.Repeat("not ", 65) + "sel\n", 6, false, `nested deeper than 64 levels`},
		{"long condition", head + "detection:\n  sel: {action: login}\n  condition: sel" + strings.Repeat(" or sel", 2048) + "\n", 6, false, `at most 4096`},
		{"timespan beyond ten years", corr("event_count", "[x]", "100000d", "{gte: 2}"), 6, false, `timespan "100000d": at most 3650d`},
		{"rule named twice", corr("temporal_ordered", "[x, x]", "1m", "{gte: 2}"), 5, false, `correlation rules name "x" twice`},
		{"temporal count above its rules", corr("temporal", "[x, y]", "1m", "{gte: 5}"), 4, false, `can never be met: a temporal correlation counts from 1 to 2`},
		{"count below one", corr("event_count", "[x]", "1m", "{lt: 0}"), 4, false, `can never be met: a event_count correlation counts 1 or more`},
		{"contradictory count", corr("event_count", "[x]", "1m", "{gt: 10, lt: 5}"), 4, false, `can never be met`},
		{"upper-case keyword", head + "detection:\n  sel: {action: login}\n  condition: NOT sel\n", 6, false, `condition keywords are lower case`},
		{"other product", "title: t\nid: r1\nlogsource: {product: windows, category: process_creation}\ndetection: {sel: {action: login}, condition: sel}\n", 3, true, `logsource product windows`},
		{"bad category", "title: t\nid: r1\nlogsource: {product: accessledger, category: firewall}\ndetection: {sel: {action: login}, condition: sel}\n", 3, false, `logsource category "firewall"`},
		{"other taxonomy", head + "taxonomy: sigma\ndetection: {sel: {action: login}, condition: sel}\n", 4, true, `taxonomy: sigma`},
		{"missing id", "title: t\nlogsource: {product: accessledger}\ndetection: {sel: {action: login}, condition: sel}\n", 1, false, `id is required`},
		{"bad level", head + "level: severe\ndetection: {sel: {action: login}, condition: sel}\n", 4, false, `level "severe"`},
		{"bad tag", head + "tags: [Attack.T1110]\ndetection: {sel: {action: login}, condition: sel}\n", 4, false, `tag "Attack.T1110"`},
		{"null in list", head + "detection:\n  sel:\n    reason: ['', null]\n  condition: sel\n", 6, false, `null cannot be part of a list`},
		{"all on one value", head + "detection:\n  sel:\n    actor.id|contains|all: a\n  condition: sel\n", 6, false, `all needs a list`},
		{"contains on a number", head + "detection:\n  sel:\n    source.asn|contains: 12\n  condition: sel\n", 6, false, `contains applies to strings`},
		{"gt on a string", head + "detection:\n  sel:\n    actor.id|gt: 5\n  condition: sel\n", 6, false, `gt compares numbers`},
		{"cidr on a string", head + "detection:\n  sel:\n    actor.id|cidr: 10.0.0.0/8\n  condition: sel\n", 6, false, `cidr applies to IP`},
		{"time without part", head + "detection:\n  sel:\n    time: '2026-01-01'\n  condition: sel\n", 6, false, `time is a time`},
		{"two matching modifiers", head + "detection:\n  sel:\n    actor.id|contains|startswith: a\n  condition: sel\n", 6, false, `cannot be combined`},
		{"re flag without re", head + "detection:\n  sel:\n    actor.id|i: a\n  condition: sel\n", 6, false, `flag of re`},
		{"duplicate key", head + "detection:\n  sel:\n    action: login\n    action: read\n  condition: sel\n", 7, false, `duplicate key "action"`},
		{"missing condition", head + "detection:\n  sel: {action: login}\n", 5, false, `needs a condition`},
		{"sigma filter", "title: f\nlogsource: {product: accessledger}\nfilter:\n  rules: [a]\n", 3, true, `Sigma filters`},
		{"value_sum", "title: c\nid: c1\ncorrelation:\n  type: value_sum\n  rules: [x]\n  timespan: 1h\n", 4, true, `correlation type value_sum`},
		{"bad timespan", "title: c\nid: c1\ncorrelation:\n  type: event_count\n  rules: [x]\n  timespan: 1H\n  condition: {gte: 2}\n", 6, false, `timespan "1H"`},
		{"event_count without condition", "title: c\nid: c1\ncorrelation:\n  type: event_count\n  rules: [x]\n  timespan: 1h\n", 4, false, `needs a condition`},
		{"unknown correlation field", "title: c\nid: c1\ncorrelation:\n  type: event_count\n  rules: [x]\n  timespan: 1h\n  condition: {gte: 2}\n  groupby: [actor.id]\n", 8, false, `unknown field "groupby"`},
		{"fractional condition", "title: c\nid: c1\ncorrelation:\n  type: event_count\n  rules: [x]\n  timespan: 1h\n  condition: {gte: 1.5}\n", 4, false, `condition gte must be a whole number (a count), got 1.5`},
		{"unknown condition op", "title: c\nid: c1\ncorrelation:\n  type: event_count\n  rules: [x]\n  timespan: 1h\n  condition: {ge: 2}\n", 7, false, `unknown correlation condition "ge"`},
		{"detection in correlation", "title: c\nid: c1\ncorrelation:\n  type: event_count\n  rules: [x]\n  timespan: 1h\n  condition: {gte: 2}\ndetection: {}\n", 1, false, `not both`},
		{"merge key", "base: &b {action: login}\n" + head + "detection:\n  sel:\n    <<: *b\n  condition: sel\n", 7, true, `YAML merge key`},
		{"yaml syntax", head + "detection:\n  sel: {action: login\n", 4, false, `YAML`},
		{"custom metadata elsewhere", head + "x-owner: secops\ndetection: {sel: {action: login}, condition: sel}\n", 4, false, `put custom metadata under "custom:"`},
		{"test without alerts", head + "detection: {sel: {action: login}, condition: sel}\ntests:\n  - name: x\n    events: [{}]\n", 6, false, `needs alerts`},
		{"bad test event", head + "detection: {sel: {action: login}, condition: sel}\ntests:\n  - name: x\n    events: [{service: sso}]\n    alerts: 0\n", 7, false, `actor: required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := ParseRules("rules/x.yml", []byte(tt.src))
			if err == nil {
				err = (&RuleSet{Rules: rules}).CheckTests()
			}
			if err == nil {
				t.Fatalf("ParseRules(%q) = nil error, want %q", tt.src, tt.want)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("ParseRules error %T, want Errors", err)
			}
			var found *Error
			for _, e := range es {
				if strings.Contains(e.Error(), tt.want) {
					found = e
				}
			}
			if found == nil {
				t.Fatalf("ParseRules(%q) = %v, want an error containing %q", tt.src, err, tt.want)
			}
			if found.File != "rules/x.yml" || found.Line != tt.line {
				t.Errorf("error at %s:%d, want rules/x.yml:%d (%v)", found.File, found.Line, tt.line, found)
			}
			if got := errors.Is(found, ErrUnsupported); got != tt.unsupported {
				t.Errorf("errors.Is(%v, ErrUnsupported) = %v, want %v", found, got, tt.unsupported)
			}
			if !strings.HasPrefix(found.Error(), "rules/x.yml:") {
				t.Errorf("Error() = %q, want it to start with the file", found.Error())
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	rule := func(id, name string) string {
		return "title: t\nid: " + id + "\nname: " + name + "\nlogsource: {product: accessledger}\ndetection: {sel: {action: login}, condition: sel}\n"
	}
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"duplicate id", map[string]string{"r/a.yml": rule("x", "a"), "r/b.yml": rule("x", "b")}, `duplicate rule id "x" (also at r/a.yml:1)`},
		{"duplicate name", map[string]string{"r/a.yml": rule("x", "a"), "r/b.yml": rule("y", "a")}, `duplicate rule name "a"`},
		{"dangling reference", map[string]string{"r/a.yml": "title: c\nid: c\ncorrelation: {type: event_count, rules: [nope], timespan: 1m, condition: {gte: 2}}\n"}, `refers to rule "nope", which is not loaded`},
		{"cycle", map[string]string{"r/a.yml": "title: c\nid: c\ncorrelation: {type: event_count, rules: [d], timespan: 1m, condition: {gte: 2}}\n---\ntitle: d\nid: d\ncorrelation: {type: event_count, rules: [c], timespan: 1m, condition: {gte: 2}}\n"}, `reference cycle`},
		{"unknown list", map[string]string{"r/a.yml": "title: t\nid: x\nlogsource: {product: accessledger}\ndetection:\n  sel:\n    actor.id|expand: '%nope%'\n  condition: sel\n"}, `r/a.yml:6:22: actor.id|expand: unknown named list %nope%`},
		{"bad regexp", map[string]string{"r/a.yml": "title: t\nid: x\nlogsource: {product: accessledger}\ndetection:\n  sel:\n    actor.id|re: '(?<=a)b'\n  condition: sel\n"}, `r/a.yml:6:18: actor.id|re: regular expression`},
		{"ban of a field the count does not group by", map[string]string{"r/a.yml": "title: c\nid: c\ncorrelation: {type: value_count, rules: [x], group-by: [service], timespan: 1m, condition: {field: actor.id, gte: 20}}\nresponse: [{action: ban, target: source.ip}]\n---\n" + rule("x", "x")},
			`response ban on source.ip: a value_count alert counts many events, which may hold as many values of source.ip; its response may act on its group-by fields only (service)`},
		// Found by review: a window keeps at most max_events_per_group
		// events, so these never fired, and lint said they were fine.
		{"event_count above max_events_per_group", map[string]string{"r/a.yml": "title: c\nid: c\ncorrelation: {type: event_count, rules: [x], group-by: [source.ip], timespan: 1h, condition: {gte: 1001}}\n---\n" + rule("x", "x")},
			`r/a.yml:1:1: correlation "c": the condition can never be met: it needs 1001 or more, and a window keeps at most max_events_per_group (1000) events`},
		{"value_count above max_events_per_group", map[string]string{"r/a.yml": "title: c\nid: c\ncorrelation: {type: value_count, rules: [x], group-by: [source.ip], timespan: 1h, condition: {field: actor.id, gt: 1000}}\n---\n" + rule("x", "x")},
			`max_events_per_group (1000)`},
		// Found by review: the zone swallowed the prefix length, a /128.
		{"zoned cidr", map[string]string{"r/a.yml": "title: t\nid: x\nlogsource: {product: accessledger}\ndetection:\n  sel:\n    source.ip|cidr: 'fe80::1%eth0/64'\n  condition: sel\n"}, `r/a.yml:6:21: source.ip|cidr: "fe80::1%eth0/64": zones are not allowed`},
		{"zoned address", map[string]string{"r/a.yml": "title: t\nid: x\nlogsource: {product: accessledger}\ndetection:\n  sel:\n    source.ip: 'fe80::1%eth0'\n  condition: sel\n"}, `"fe80::1%eth0": zones are not allowed`},
		{"group-by not in chained rule", map[string]string{"r/a.yml": "title: o\nid: o\ncorrelation: {type: event_count, rules: [i], group-by: [source.ip], timespan: 1m, condition: {gte: 2}}\n---\ntitle: i\nid: i\ncorrelation: {type: event_count, rules: [x], group-by: [actor.id], timespan: 1m, condition: {gte: 2}}\n---\n" + rule("x", "x")}, `does not group by it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for n, s := range tt.files {
				fsys[n] = &fstest.MapFile{Data: []byte(s)}
			}
			rs, err := LoadRules(fsys, "r")
			if err == nil {
				_, err = Compile(rs, Config{})
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadRules+Compile = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestCountAboveConfiguredMax: the bound on a count condition is the
// configured max_events_per_group, not the default.
func TestCountAboveConfiguredMax(t *testing.T) {
	src := "title: c\nid: c\ncorrelation: {type: event_count, rules: [x], group-by: [source.ip], timespan: 1h, condition: {gte: 1500}}\n---\n" +
		"title: t\nid: x\nlogsource: {product: accessledger}\ndetection: {sel: {action: login}, condition: sel}\n"
	rs, err := LoadRules(fstest.MapFS{"r/a.yml": {Data: []byte(src)}}, "r")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(rs, Config{MaxEventsPerGroup: 2000}); err != nil {
		t.Errorf("Compile(gte 1500, MaxEventsPerGroup 2000) = %v, want it compiled", err)
	}
	if _, err := Compile(rs, Config{MaxEventsPerGroup: 1200}); err == nil || !strings.Contains(err.Error(), "max_events_per_group (1200)") {
		t.Errorf("Compile(gte 1500, MaxEventsPerGroup 1200) = %v, want refused naming max_events_per_group (1200)", err)
	}
}

// aliasFanOut is a rule whose selections s0 to s<sels-1> are each an alias
// of a list of refs aliases of a map of three fields of vals values: a
// few kilobytes that resolve to sels*refs*3*vals values.
func aliasFanOut(vals, refs, sels int) []byte {
	var b strings.Builder
	b.WriteString("title: t\nid: 44444444-4444-4444-4444-444444444444\nlogsource: {product: accessledger, category: authentication}\ndetection:\n")
	v := make([]string, vals)
	for i := range v {
		v[i] = fmt.Sprintf("v%d", i)
	}
	l := "[" + strings.Join(v, ", ") + "]"
	fmt.Fprintf(&b, "  _l: &L {actor.id|contains: %s, reason|contains: %s, resource.id|contains: %s}\n", l, l, l)
	b.WriteString("  _m: &M [" + strings.TrimSuffix(strings.Repeat("*L, ", refs), ", ") + "]\n")
	for i := range sels {
		fmt.Fprintf(&b, "  s%d: *M\n", i)
	}
	b.WriteString("  condition: 1 of s*\n")
	return []byte(b.String())
}

// TestRuleAliasFanOut: the detector parses and compiles what an alias
// refers to at each use, so a 22 KB rule of aliases of aliases (60
// million values once resolved) took 17 GB and 52 s to load (found by
// review). Past maxDetectionNodes a rule is refused, at the detection's
// line, before anything is parsed; a rule that resolves to fewer loads.
func TestRuleAliasFanOut(t *testing.T) {
	small := aliasFanOut(10, 10, 3) // 900 values
	if _, err := ParseRules("fan.yml", small); err != nil {
		t.Fatalf("ParseRules(%d values through aliases) = %v, want it loaded", 900, err)
	}
	// 600,000 values: without the bound, parsed in a tenth of a second.
	_, err := ParseRules("fan.yml", aliasFanOut(100, 100, 20))
	if err == nil || !strings.Contains(err.Error(), "fan.yml:4:") || !strings.Contains(err.Error(), "more than 100000 field conditions and values") {
		t.Fatalf("ParseRules(600,000 values through aliases) = %v, want refused at fan.yml:4", err)
	}
	// The reviewer's rule, refused with a few allocations per node written.
	doc := aliasFanOut(1000, 1000, 20)
	if allocs := testing.AllocsPerRun(1, func() {
		if _, err := ParseRules("fan.yml", doc); err == nil {
			t.Fatal("ParseRules(60 million values through aliases) = nil, want refused")
		}
	}); allocs > 100_000 {
		t.Errorf("refusing a %d-byte rule of aliases made %.0f allocations, want fewer than 100,000", len(doc), allocs)
	}
	fsys := fstest.MapFS{"r/fan.yml": {Data: doc}}
	if _, err := LoadRules(fsys, "r"); err == nil || !strings.Contains(err.Error(), "YAML aliases") {
		t.Errorf("LoadRules(60 million values through aliases) = %v, want refused", err)
	}
}
