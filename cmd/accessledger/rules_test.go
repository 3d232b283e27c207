package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accessledger/accessledger/event"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const cliRule = `title: Fast failures
id: my-fast-failures
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 1m
  condition: {gte: 3}
level: high
tests:
  - name: three failures
    base: {service: sso, action: login, category: authentication, outcome: failure, actor: {id: a}, source: {ip: 45.83.64.1}}
    events:
      - repeat: 3
        every: 1s
        event: {}
    alerts: %d
`

func TestRulesLint(t *testing.T) {
	tests := []struct {
		name  string
		args  func(dir string) []string
		files map[string]string
		code  int
		want  string
	}{
		{"default pack", func(string) []string { return []string{"rules", "lint"} }, nil, 0, "rules: ok"},
		{"own rules with the default pack", func(d string) []string { return []string{"rules", "lint", "--default-pack", d} },
			map[string]string{"r.yml": strings.Replace(cliRule, "%d", "1", 1)}, 0, "rules: ok"},
		{"reference to the pack without it", func(d string) []string { return []string{"rules", "lint", d} },
			map[string]string{"r.yml": strings.Replace(cliRule, "%d", "1", 1)}, 1, `refers to rule "failed_login", which is not loaded`},
		{"typo", func(d string) []string { return []string{"rules", "lint", d} },
			map[string]string{"sub/bad.yml": "title: t\nid: x\nseverity: high\nlogsource: {product: accessledger}\ndetection: {sel: {action: login}, condition: sel}\n"},
			1, `sub/bad.yml:3:1: unknown field "severity"`},
		{"duplicate ids across files", func(d string) []string { return []string{"rules", "lint", d} },
			map[string]string{
				"a.yml": "title: t\nid: x\nlogsource: {product: accessledger}\ndetection: {sel: {action: login}, condition: sel}\n",
				"b.yml": "title: t\nid: x\nlogsource: {product: accessledger}\ndetection: {sel: {action: read}, condition: sel}\n"},
			1, `b.yml:1:1: duplicate rule id "x"`},
		{"unknown modifier", func(d string) []string { return []string{"rules", "lint", d} },
			map[string]string{"a.yml": "title: t\nid: x\nlogsource: {product: accessledger}\ndetection:\n  sel: {actor.id|startwith: a}\n  condition: sel\n"},
			1, `unknown modifier "startwith"`},
		// A selection that fails is reported once, not again as an
		// unknown identifier of the condition; a trailing --- is no rule.
		{"unknown modifier, reported once", func(d string) []string { return []string{"rules", "lint", d} },
			map[string]string{"a.yml": "title: t\nid: x\nlogsource: {product: accessledger}\ndetection:\n  sel: {actor.id|startwith: a}\n  condition: sel\n---\n"},
			1, "1 problem in 1 rule"},
		{"trailing separator", func(d string) []string { return []string{"rules", "lint", d} },
			map[string]string{"a.yml": "title: t\nid: x\nlogsource: {product: accessledger}\ndetection: {sel: {action: login}, condition: sel}\n---\n"},
			0, "1 rule: ok"},
		// Every bad value of every selection, not one of them at random.
		{"three bad selections", func(d string) []string { return []string{"rules", "lint", d} },
			map[string]string{"a.yml": "title: t\nid: x\nlogsource: {product: accessledger}\ndetection:\n  a: {actor.id|re: '('}\n  b: {source.ip|cidr: nope}\n  c: {source.port|gt: x}\n  condition: a or b or c\n"},
			1, "3 problems"},
		{"unknown list", func(d string) []string { return []string{"rules", "lint", d} },
			map[string]string{"a.yml": "title: t\nid: x\nlogsource: {product: accessledger}\ndetection:\n  sel: {actor.id|expand: '%%staff%%'}\n  condition: sel\n"},
			1, `unknown named list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			code, stdout, stderr := runCLI(t, nil, tt.args(dir)...)
			if code != tt.code || !strings.Contains(stdout+stderr, tt.want) {
				t.Errorf("%v = exit %d, output %q %q; want exit %d and %q", tt.args(dir), code, stdout, stderr, tt.code, tt.want)
			}
		})
	}
}

func TestRulesTest(t *testing.T) {
	pass := writeFiles(t, map[string]string{"r.yml": strings.Replace(cliRule, "%d", "1", 1)})
	code, stdout, stderr := runCLI(t, nil, "rules", "test", "--default-pack", pass)
	if code != 0 || !strings.Contains(stdout, "pass    my-fast-failures") || !strings.Contains(stdout, "0 failed") {
		t.Errorf("rules test (passing) = exit %d, %q %q", code, stdout, stderr)
	}
	fail := writeFiles(t, map[string]string{"r.yml": strings.Replace(cliRule, "%d", "2", 1)})
	code, stdout, _ = runCLI(t, nil, "rules", "test", "--default-pack", fail)
	if code != 1 || !strings.Contains(stdout, "FAIL    my-fast-failures") || !strings.Contains(stdout, "1 failed") {
		t.Errorf("rules test (failing) = exit %d, %q; want exit 1 and a FAIL line", code, stdout)
	}
}

// TestRulesTestRefusesWhatServeRefuses: rules that do not compile fail
// rules test with lint's problems, whether or not they have tests.
func TestRulesTestRefusesWhatServeRefuses(t *testing.T) {
	untested := cliRule[:strings.Index(cliRule, "tests:")]
	badGroup := strings.Replace(untested, "group-by: [source.ip]", "group-by: [user.name]", 1)
	badField := strings.NewReplacer("type: event_count", "type: value_count", "condition: {gte: 3}", "condition: {field: user.name, gte: 3}").Replace(untested)
	for name, rule := range map[string]string{"unknown group-by": badGroup, "unknown condition field": badField} {
		dir := writeFiles(t, map[string]string{"r.yml": rule})
		code, stdout, stderr := runCLI(t, nil, "rules", "test", "--default-pack", dir)
		if code != 1 || !strings.Contains(stdout, `unknown field "user.name"`) || !strings.Contains(stderr, "do not load") {
			t.Errorf("%s: rules test = exit %d, %q %q; want exit 1 naming the field", name, code, stdout, stderr)
		}
	}
}

func TestRulesRun(t *testing.T) {
	var lines []string
	for i := 0; i < 8; i++ {
		lines = append(lines, `{"time":"2026-01-05T10:00:0`+string(rune('0'+i))+`Z","service":"sso","actor":{"id":"root"},"source":{"ip":"45.83.64.1"},"action":"login","category":"authentication","outcome":"failure","reason":"invalid_credentials"}`)
	}
	// A leaf of the log (as GET /v1/entries gives) is accepted too.
	ev, err := event.Parse([]byte(lines[0]), event.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := event.EncodeLeaf(event.KindEvent, ev.Time, ev.Canonical())
	lines = append(lines, string(leaf))
	dir := writeFiles(t, map[string]string{"events.ndjson": strings.Join(lines, "\n") + "\n"})
	code, stdout, stderr := runCLI(t, nil, "rules", "run", "--events", filepath.Join(dir, "events.ndjson"))
	if code != 0 {
		t.Fatalf("rules run = exit %d, %s", code, stderr)
	}
	out := strings.TrimSpace(stdout)
	if n := strings.Count(out, "\n") + 1; out == "" || n != 1 {
		t.Fatalf("rules run printed %d alerts (%s), want 1 (al-bruteforce-fast)", n, out)
	}
	a, err := event.ParseAlert([]byte(out))
	if err != nil {
		t.Fatalf("event.ParseAlert(%s) = %v", out, err)
	}
	if a.Rule.ID != "al-bruteforce-fast" || a.EvidenceCount != 6 || len(a.Response) != 1 || a.Response[0].Value != "45.83.64.1" {
		t.Errorf("alert = %+v, want al-bruteforce-fast on 6 events, banning 45.83.64.1", a)
	}
	if !strings.Contains(stderr, "9 events, 1 alerts (al-bruteforce-fast 1)") {
		t.Errorf("rules run summary = %q", stderr)
	}
	if code, _, stderr := runCLI(t, nil, "rules", "run"); code == 0 || !strings.Contains(stderr, "--events") {
		t.Errorf("rules run without --events = exit %d, %q", code, stderr)
	}
}

// TestServeRejectsBadRules checks that serve stops on a broken rule, with
// its file and line, before it writes anything.
func TestServeRejectsBadRules(t *testing.T) {
	rules := writeFiles(t, map[string]string{"bad.yml": "title: t\nid: x\nlogsource: {product: accessledger}\ndetection:\n  sel: {actor.id|base64: a}\n  condition: sel\n"})
	data := filepath.Join(t.TempDir(), "data")
	code, _, stderr := runCLI(t, nil, "serve", "--data", data, "--listen", "127.0.0.1:0", "--rules-dir", rules)
	if code != 1 || !strings.Contains(stderr, "bad.yml:5:") || !strings.Contains(stderr, `unsupported Sigma feature "modifier base64"`) {
		t.Errorf("serve --rules-dir with a bad rule = exit %d, %q; want exit 1 naming bad.yml:5 and the feature", code, stderr)
	}
	if _, err := os.Stat(data); err == nil {
		t.Errorf("serve created %s before failing on its rules", data)
	}
}
