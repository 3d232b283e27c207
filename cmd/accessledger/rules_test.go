package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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

// TestRulesRunTakesWhatTheAPIGives: the README has rules run replay log
// leaves "as GET /v1/entries gives them", and a query's NDJSON; both wrap
// the leaf in {"index","leaf_hash","entry"}, which rules run refused
// ("index: unknown field; leaf_hash: unknown field; entry: unknown
// field"). It takes them now, with their log indexes: the replay of a
// real server's log raises the server's alert on the same evidence, and
// skips the log's other leaves (its admin key, the alert, the ban).
func TestRulesRunTakesWhatTheAPIGives(t *testing.T) {
	s := startServer(t, t.TempDir())
	res := s.mustPost(bruteForce(time.Now().UTC().Add(-time.Minute), 0, 1)...)
	s.caughtUp(30 * time.Second)
	var alerts struct {
		Alerts []struct {
			Alert json.RawMessage `json:"alert"`
		} `json:"alerts"`
	}
	s.get("/v1/alerts?rule=al-bruteforce-fast", &alerts)
	if len(alerts.Alerts) != 1 {
		t.Fatalf("the server raised %d al-bruteforce-fast alerts, want 1", len(alerts.Alerts))
	}
	served, err := event.ParseAlert(alerts.Alerts[0].Alert)
	if err != nil {
		t.Fatal(err)
	}
	var size struct {
		Size uint64 `json:"size"`
	}
	s.get("/v1/log", &size)
	s.waitIndexed(size.Size, 30*time.Second)

	dir := t.TempDir()
	all := filepath.Join(dir, "all.ndjson")
	if code, _, errOut := runCLI(t, nil, "query", "--url", s.base, "--key", s.token, "--format", "ndjson", "-o", all); code != 0 {
		t.Fatalf("query --format ndjson = exit %d %s", code, errOut)
	}
	ndjson, _ := os.ReadFile(all)
	if !strings.HasPrefix(string(ndjson), `{"index":0,"leaf_hash":`) || !strings.Contains(string(ndjson), `"kind":"alert"`) {
		t.Fatalf("query --format ndjson wrote %.300s..., want every entry of the log, from its admin key to the alert", ndjson)
	}
	// accessledger query --format ndjson | accessledger rules run --events -
	code, out, errOut := runCLIStdin(t, string(ndjson), "rules", "run", "--events", "-")
	if code != 0 {
		t.Fatalf("rules run --events - (the query's NDJSON) = exit %d %s", code, errOut)
	}
	var got []*event.Alert
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		a, err := event.ParseAlert([]byte(line))
		if err != nil {
			t.Fatalf("rules run printed %q: %v", line, err)
		}
		if a.Rule.ID == "al-bruteforce-fast" {
			got = append(got, a)
		}
	}
	if len(got) != 1 || !slices.Equal(got[0].Evidence, served.Evidence) || got[0].DedupKey != served.DedupKey {
		t.Errorf("rules run on the query's NDJSON raised %+v, want the server's alert on %v (%s)", got, served.Evidence, served.DedupKey)
	}

	// curl .../v1/entries/N > leaf.json; rules run --events leaf.json
	leaf := writeFile(t, filepath.Join(dir, "leaf.json"), string(s.get(fmt.Sprintf("/v1/entries/%d", res[0].Index), nil)))
	if code, _, errOut := runCLI(t, nil, "rules", "run", "--events", leaf); code != 0 || !strings.Contains(errOut, "1 events, 0 alerts") {
		t.Errorf("rules run --events (GET /v1/entries/%d) = exit %d %q, want one event and no alert", res[0].Index, code, errOut)
	}
	admin := writeFile(t, filepath.Join(dir, "admin.json"), string(s.get("/v1/entries/0", nil)))
	if code, _, errOut := runCLI(t, nil, "rules", "run", "--events", admin); code != 0 {
		t.Errorf("rules run --events (GET /v1/entries/0, the admin key) = exit %d %q, want it skipped", code, errOut)
	}
}

// TestRulesRunEntryShapes: the entries rules run takes are read as
// strictly as events and leaves: entry_base64 as the API sends an entry
// that is not JSON, and no member besides index, leaf_hash and one of
// entry and entry_base64. A plain event still refuses unknown fields.
func TestRulesRunEntryShapes(t *testing.T) {
	evs := bruteForce(time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC), 0, 1)
	var lines []string
	for i, raw := range evs {
		ev, err := event.Parse(raw, event.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := event.EncodeLeaf(event.KindEvent, ev.Time, ev.Canonical())
		h := sha256.Sum256(append([]byte{0}, leaf...))
		entry := fmt.Sprintf(`"entry":%s`, leaf)
		if i == 2 {
			entry = fmt.Sprintf(`"entry_base64":%q`, base64.StdEncoding.EncodeToString(leaf))
		}
		if i == 4 { // whitespace and another order, as a person may write it
			lines = append(lines, fmt.Sprintf(`{ %s, "index": %d }`, entry, 100+i))
			continue
		}
		lines = append(lines, fmt.Sprintf(`{"index":%d,"leaf_hash":%q,%s}`, 100+i, base64.StdEncoding.EncodeToString(h[:]), entry))
	}
	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "good.ndjson"), strings.Join(lines, "\n")+"\n")
	code, out, errOut := runCLI(t, nil, "rules", "run", "--events", good)
	if code != 0 {
		t.Fatalf("rules run = exit %d %s", code, errOut)
	}
	a, err := event.ParseAlert([]byte(strings.TrimSpace(out)))
	if err != nil || a.Rule.ID != "al-bruteforce-fast" || !slices.Equal(a.Evidence, []uint64{100, 101, 102, 103, 104, 105}) {
		t.Errorf("rules run printed %q (%v), want al-bruteforce-fast on entries 100 to 105", out, err)
	}
	leaf := lines[0][strings.Index(lines[0], `"entry":`)+len(`"entry":`) : len(lines[0])-1]
	for name, bad := range map[string]struct{ line, want string }{
		"unknown member":   {`{"index":1,"leaf_hash":"AA==","entry":` + leaf + `,"duplicate":true}`, "duplicate"},
		"no index":         {`{"leaf_hash":"AA==","entry":` + leaf + `}`, "without its index"},
		"entry twice":      {`{"index":1,"entry":` + leaf + `,"entry_base64":"AA=="}`, "one of entry and entry_base64"},
		"no entry":         {`{"index":1,"leaf_hash":"AA=="}`, "one of entry and entry_base64"},
		"bad base64":       {`{"index":1,"entry_base64":"!!"}`, "entry_base64"},
		"event with index": {`{"indexx":1,` + string(evs[0][1:]), "indexx"},
		"a JSON array":     {"[", "query --format ndjson"},
	} {
		f := writeFile(t, filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".ndjson"), bad.line+"\n")
		if code, _, errOut := runCLI(t, nil, "rules", "run", "--events", f); code != 1 || !strings.Contains(errOut, bad.want) || !strings.Contains(errOut, ":1: ") {
			t.Errorf("%s: rules run = exit %d %q, want exit 1 naming line 1 and %q", name, code, errOut, bad.want)
		}
	}
}
