package detect

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"gopkg.in/yaml.v3"

	"github.com/accessledger/accessledger/event"
)

// diskState is a detector's saved state on disk: the state files beside
// its Badger database, opened afresh for each save and each load, as a
// detector that restarts does.
type diskState struct {
	t   *testing.T
	dir string
}

func newDiskState(t *testing.T) diskState { return diskState{t, t.TempDir()} }

// save saves e's state as a detector does (a journal or a snapshot, with
// the cursor next).
func (d diskState) save(e *Engine, next uint64) {
	d.t.Helper()
	db := openStateDB(d.t, d.dir)
	defer db.Close()
	st := newStateStore(db, d.dir)
	if _, _, err := st.load(); err != nil {
		d.t.Fatalf("load: %v", err)
	}
	if _, _, err := st.save(next, e); err != nil {
		d.t.Fatalf("save: %v", err)
	}
	if err := st.close(); err != nil {
		d.t.Fatal(err)
	}
}

// state returns the saved state's entries.
func (d diskState) state() map[string][]byte {
	d.t.Helper()
	db := openStateDB(d.t, d.dir)
	defer db.Close()
	st := newStateStore(db, d.dir)
	_, state, err := st.load()
	if err != nil {
		d.t.Fatalf("load: %v", err)
	}
	if err := st.removeGarbage(); err != nil {
		d.t.Fatal(err)
	}
	return state
}

// restart compiles rules, as a restarted detector does, and loads the
// saved state into the engine.
func (d diskState) restart(rules string, cfg Config) *Engine {
	d.t.Helper()
	e := compileYAML(d.t, rules, cfg)
	if err := e.LoadState(entries(d.state())); err != nil {
		d.t.Fatalf("LoadState: %v", err)
	}
	return e
}

// feed processes evs from log index from and returns the alerts.
func feed(e *Engine, from uint64, evs ...*event.Event) []*event.Alert {
	var out []*event.Alert
	for i, ev := range evs {
		out = append(out, cloneAlerts(e.Process(rec(ev, from+uint64(i))))...)
	}
	return out
}

// ruleStatus returns the status of rule id.
func ruleStatus(t *testing.T, e *Engine, id string) RuleStatus {
	t.Helper()
	for _, s := range e.Stats().Rules {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no rule %s", id)
	return RuleStatus{}
}

// presentationEdit changes, in rules, what a person reads and what
// responders do, not what a rule detects: title, description, level,
// tags, references, author, dates, falsepositives, status (still
// enabled), response, a comment and the order of the keys.
func presentationEdit(rules string) string {
	var docs []string
	for _, doc := range strings.Split(rules, "\n---\n") {
		var out []string
		for _, l := range strings.Split(doc, "\n") {
			switch {
			case strings.HasPrefix(l, "title: "):
				l = "title: " + strings.ToUpper(l[len("title: "):]) + " (renamed)"
			case strings.HasPrefix(l, "level: "):
				l = "level: critical"
			case strings.HasPrefix(l, "description: "), strings.HasPrefix(l, "status: "),
				strings.HasPrefix(l, "response: "), strings.HasPrefix(l, "tags: "):
				continue // replaced below
			}
			out = append(out, l)
		}
		doc = strings.Join(out, "\n")
		if strings.TrimSpace(doc) != "" {
			doc = "# edited by the operator\n" + strings.TrimRight(doc, "\n") + `
description: Edited to say more about what it detects.
status: experimental
author: the operator
date: 2026-01-01
modified: 2026-02-02
references: [https://example.org/rule]
falsepositives: [a new false positive]
tags: [attack.t1110, attack.credential-access]
response: [{action: notify, target: actor.id}]
`
		}
		docs = append(docs, doc)
	}
	return strings.Join(docs, "\n---\n")
}

// TestPresentationEditKeepsLearnedState: a learning rule (new_term,
// baseline) restarted with only its title, description, level, tags,
// references, author, dates, false positives, status or response changed
// keeps what it learned, and raises at once on the anomaly it raised
// before the edit; with its state discarded it would learn again for
// days, raising nothing.
func TestPresentationEditKeepsLearnedState(t *testing.T) {
	t.Run("new_term", func(t *testing.T) {
		rules := failedLogin + `title: new country
id: nc
description: a country the account has not logged in from
level: medium
correlation:
  type: new_term
  rules: [successful_login]
  group-by: [actor.id]
  timespan: 10d
  new_term:
    fields: [source.geo.country]
    learning: 2d
`
		login := func(day int, country string) *event.Event {
			return mkEvent(t, map[string]any{"time": at(time.Duration(day) * 24 * time.Hour), "outcome": "success", "reason": nil,
				"source": map[string]any{"geo": map[string]any{"country": country}}})
		}
		ds := newDiskState(t)
		e := compileYAML(t, rules, Config{})
		if as := feed(e, 0, login(0, "FR"), login(3, "FR")); len(as) != 0 {
			t.Fatalf("learning: alerts %s", alertIDs(as))
		}
		ds.save(e, 2)

		edited := presentationEdit(rules)
		if edited == rules || !strings.Contains(edited, "title: NEW COUNTRY (renamed)") || !strings.Contains(edited, "level: critical") {
			t.Fatalf("the edit changed nothing:\n%s", edited)
		}
		e2 := ds.restart(edited, Config{})
		if g := ruleStatus(t, e2, "nc").Groups; g != 1 {
			t.Errorf("groups of nc after the edit = %d, want the 1 learned", g)
		}
		as := feed(e2, 2, login(4, "BR"))
		if len(as) != 1 || as[0].Rule.ID != "nc" || as[0].Rule.Level != "critical" {
			t.Fatalf("new country after the edit: alerts %+v, want one of nc at its new level (the account was learned for 3 days)", as)
		}
	})
	t.Run("baseline", func(t *testing.T) {
		rules := massReadRules("{factor: 10, min_count: 50, history: 7d, learning: 2d}") + "level: high\n"
		read := func(d time.Duration) *event.Event {
			return mkEvent(t, map[string]any{"time": at(d), "action": "read", "category": "data_access", "outcome": "success", "reason": nil})
		}
		var evs []*event.Event
		for day := 0; day < 3; day++ { // three days of 20 reads an hour, 8 hours a day
			for h := 0; h < 8; h++ {
				for i := 0; i < 20; i++ {
					evs = append(evs, read(time.Duration(day)*24*time.Hour+time.Duration(h)*time.Hour+time.Duration(i)*time.Minute))
				}
			}
		}
		ds := newDiskState(t)
		e := compileYAML(t, rules, Config{})
		if as := feed(e, 0, evs...); len(as) != 0 {
			t.Fatalf("normal reads: alerts %s", alertIDs(as))
		}
		ds.save(e, uint64(len(evs)))

		e2 := ds.restart(presentationEdit(rules), Config{})
		if g := ruleStatus(t, e2, "mass").Groups; g != 1 {
			t.Errorf("groups of mass after the edit = %d, want the 1 learned", g)
		}
		var burst []*event.Event
		for i := 0; i < 500; i++ {
			burst = append(burst, read(3*24*time.Hour+time.Duration(i)*5*time.Second))
		}
		if as := feed(e2, uint64(len(evs)), burst...); len(as) != 1 || as[0].Rule.ID != "mass" {
			t.Fatalf("mass read after the edit: alerts %s, want one of mass (the account was learned for 3 days)", alertIDs(as))
		}
	})
	t.Run("suppression", func(t *testing.T) {
		rules := `title: denied
id: denied
logsource: {product: accessledger}
detection:
  sel: {source.ip|cidr: 192.0.2.0/24}
  condition: sel
level: medium
suppress: {fields: [source.ip], duration: 1h}
`
		ds := newDiskState(t)
		e := compileYAML(t, rules, Config{})
		if as := feed(e, 0, fail(t, 0, "192.0.2.1", "a")); len(as) != 1 {
			t.Fatalf("first event: alerts %s, want one", alertIDs(as))
		}
		ds.save(e, 1)
		e2 := ds.restart(presentationEdit(rules), Config{})
		if as := feed(e2, 1, fail(t, 10*time.Minute, "192.0.2.1", "b")); len(as) != 0 {
			t.Errorf("same address 10 minutes later, after the edit: alerts %s, want none (suppressed for 1h)", alertIDs(as))
		}
		if s := ruleStatus(t, e2, "denied").Suppressed; s != 1 {
			t.Errorf("suppressed = %d, want 1", s)
		}
	})
}

// bruteForce is an event_count correlation of failed logins per address
// over 10 minutes; edit rewrites it.
const bruteForce = failedLogin + `title: brute force
id: bf
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 10m
  condition: {gte: 5}
`

// TestThresholdEditKeepsWindow: an operator who changes only the count
// threshold of an event_count correlation keeps its windows: a brute
// force in progress across the restart goes on counting, and fires at
// the new threshold on the events of both sides of it.
func TestThresholdEditKeepsWindow(t *testing.T) {
	ds := newDiskState(t)
	e := compileYAML(t, bruteForce, Config{})
	var evs []*event.Event
	for i := range 7 {
		evs = append(evs, fail(t, time.Duration(i)*10*time.Second, "192.0.2.1", fmt.Sprintf("u%d", i)))
	}
	if as := feed(e, 0, evs[:4]...); len(as) != 0 {
		t.Fatalf("four failures: alerts %s", alertIDs(as))
	}
	ds.save(e, 4)

	edited := strings.Replace(bruteForce, "gte: 5", "gte: 6", 1)
	e2 := ds.restart(edited, Config{})
	if g := ruleStatus(t, e2, "bf").Groups; g != 1 {
		t.Errorf("groups of bf after the threshold changed = %d, want 1", g)
	}
	if as := feed(e2, 4, evs[4]); len(as) != 0 {
		t.Fatalf("fifth failure: alerts %s, want none (the threshold is 6 now)", alertIDs(as))
	}
	as := feed(e2, 5, evs[5])
	if len(as) != 1 || as[0].Rule.ID != "bf" || as[0].EvidenceCount != 6 || as[0].Evidence[0] != 0 {
		t.Fatalf("sixth failure: alerts %s, want one of bf on the 6 failures since index 0", alertIDs(as))
	}

	// And the other way: lowered to 3, the window of 4 fires at the next.
	ds = newDiskState(t)
	e = compileYAML(t, bruteForce, Config{})
	feed(e, 0, evs[:4]...)
	ds.save(e, 4)
	e2 = ds.restart(strings.Replace(bruteForce, "gte: 5", "gte: 3", 1), Config{})
	if as := feed(e2, 4, evs[4]); len(as) != 1 || as[0].EvidenceCount != 5 {
		t.Fatalf("lowered to 3: alerts %s, want one on the 5 failures", alertIDs(as))
	}
}

// TestDefinitionEditDiscardsState: an edit that changes what the saved
// state means (what the counted rule matches, the grouping, the window,
// how the condition is evaluated, the correlation's exceptions, the
// lateness) discards it: counting starts afresh.
func TestDefinitionEditDiscardsState(t *testing.T) {
	tests := []struct {
		name  string
		rules string
		cfg   Config
	}{
		{"detection of the rule counted", strings.Replace(bruteForce, "sel: {action: login, outcome: failure}",
			"sel: {action: login, outcome: failure, reason: invalid_credentials}", 1), Config{}},
		{"logsource of the rule counted", strings.Replace(bruteForce, "logsource: {product: accessledger, category: authentication}\ndetection:\n  sel: {action: login, outcome: failure}",
			"logsource: {product: accessledger, category: authentication, service: sso}\ndetection:\n  sel: {action: login, outcome: failure}", 1), Config{}},
		{"group-by", strings.Replace(bruteForce, "group-by: [source.ip]", "group-by: [source.ip, actor.type]", 1), Config{}},
		{"timespan", strings.Replace(bruteForce, "timespan: 10m", "timespan: 15m", 1), Config{}},
		{"type", strings.Replace(strings.Replace(bruteForce, "type: event_count", "type: value_count", 1),
			"condition: {gte: 5}", "condition: {gte: 5, field: actor.id}", 1), Config{}},
		{"condition with an upper bound", strings.Replace(bruteForce, "{gte: 5}", "{gte: 5, lt: 1000}", 1), Config{}},
		{"exceptions", bruteForce + "exceptions: [{reason: the office, match: {source.ip|cidr: 198.18.0.0/15}}]\n", Config{}},
		{"lateness", bruteForce, Config{Lateness: 5 * time.Minute}},
	}
	var evs []*event.Event
	for i := range 6 {
		evs = append(evs, fail(t, time.Duration(i)*10*time.Second, "192.0.2.1", fmt.Sprintf("u%d", i)))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.rules == bruteForce && tt.cfg.Lateness == 0 {
				t.Fatal("the test edits nothing")
			}
			ds := newDiskState(t)
			e := compileYAML(t, bruteForce, Config{})
			feed(e, 0, evs[:4]...)
			ds.save(e, 4)
			e2 := ds.restart(tt.rules, tt.cfg)
			if g := ruleStatus(t, e2, "bf").Groups; g != 0 {
				t.Errorf("groups of bf after the edit = %d, want 0", g)
			}
			if as := feed(e2, 4, evs[4:]...); len(as) != 0 {
				t.Errorf("two more failures after the edit: alerts %s, want none (counting starts afresh)", alertIDs(as))
			}
		})
	}
	// A learning rule's learning is discarded when what it learns changes.
	t.Run("new_term fields", func(t *testing.T) {
		rules := failedLogin + `title: new country
id: nc
correlation:
  type: new_term
  rules: [successful_login]
  group-by: [actor.id]
  timespan: 10d
  new_term:
    fields: [source.geo.country]
    learning: 2d
`
		login := func(day int, asn int) *event.Event {
			return mkEvent(t, map[string]any{"time": at(time.Duration(day) * 24 * time.Hour), "outcome": "success", "reason": nil,
				"source": map[string]any{"asn": asn, "geo": map[string]any{"country": "FR"}}})
		}
		ds := newDiskState(t)
		e := compileYAML(t, rules, Config{})
		feed(e, 0, login(0, 1), login(3, 1))
		ds.save(e, 2)
		e2 := ds.restart(strings.Replace(rules, "fields: [source.geo.country]", "fields: [source.asn]", 1), Config{})
		if g := ruleStatus(t, e2, "nc").Groups; g != 0 {
			t.Errorf("groups of nc after its fields changed = %d, want 0", g)
		}
	})
}

// TestSuppressEditKeepsWindows: suppression settings are fingerprinted
// apart from the windows. Changing them discards the suppressions (which
// were taken under them) and keeps the windows; an edit of the title
// keeps both.
func TestSuppressEditKeepsWindows(t *testing.T) {
	rules := bruteForce + "suppress: {fields: [source.ip], duration: 1h}\n"
	var evs []*event.Event
	for i := range 5 { // a burst, which fires and is suppressed for 1h
		evs = append(evs, fail(t, time.Duration(i)*10*time.Second, "192.0.2.1", fmt.Sprintf("u%d", i)))
	}
	for i := range 5 { // another, 20 minutes later: its window is open at the restart
		evs = append(evs, fail(t, 20*time.Minute+time.Duration(i)*10*time.Second, "192.0.2.1", fmt.Sprintf("v%d", i)))
	}
	run := func(t *testing.T, edited string) (alerts int, suppressed uint64) {
		ds := newDiskState(t)
		e := compileYAML(t, rules, Config{})
		if as := feed(e, 0, evs[:9]...); len(as) != 1 {
			t.Fatalf("first burst: alerts %s, want one", alertIDs(as))
		}
		ds.save(e, 9)
		e2 := ds.restart(edited, Config{})
		as := feed(e2, 9, evs[9])
		return len(as), ruleStatus(t, e2, "bf").Suppressed
	}
	t.Run("duration", func(t *testing.T) {
		n, s := run(t, strings.Replace(rules, "duration: 1h", "duration: 2h", 1))
		if n != 1 || s != 0 {
			t.Errorf("second burst after the suppression changed: %d alerts, %d suppressed; want the window kept (it fires) and the suppression discarded (not suppressed)", n, s)
		}
	})
	t.Run("title", func(t *testing.T) {
		n, s := run(t, strings.Replace(rules, "title: brute force", "title: Brute force from one address", 1))
		if n != 0 || s != 1 {
			t.Errorf("second burst after the title changed: %d alerts, %d suppressed; want the window and the suppression kept (it fires, suppressed)", n, s)
		}
	})
}

// legacyFingerprints computes the fingerprints the release before this
// one saved: a hash of each rule's whole document, re-encoded; for a
// correlation, of its document, the documents of the rules it names, and
// the lateness, the events kept per group and the state's encoding
// version (cfg's defaults applied).
func legacyFingerprints(t *testing.T, rules string, cfg Config) map[string]string {
	t.Helper()
	cfg.setDefaults()
	type doc struct {
		id, name string
		refs     []string
		src      []byte
	}
	var docs []*doc
	dec := yaml.NewDecoder(strings.NewReader(rules))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(n.Content) == 0 {
			continue
		}
		root := n.Content[0]
		src, err := yaml.Marshal(root)
		if err != nil {
			t.Fatal(err)
		}
		var fields struct {
			ID          string `yaml:"id"`
			Name        string `yaml:"name"`
			Correlation *struct {
				Rules []string `yaml:"rules"`
			} `yaml:"correlation"`
		}
		if err := root.Decode(&fields); err != nil {
			t.Fatal(err)
		}
		d := &doc{id: fields.ID, name: fields.Name, src: src}
		if fields.Correlation != nil {
			d.refs = fields.Correlation.Rules
			if d.refs == nil {
				d.refs = []string{} // a correlation of no rule still hashes the rest
			}
		}
		docs = append(docs, d)
	}
	lookup := func(ref string) *doc {
		for _, d := range docs {
			if d.id == ref || d.name != "" && d.name == ref {
				return d
			}
		}
		return nil
	}
	out := map[string]string{}
	for _, d := range docs {
		if d.refs == nil {
			sum := sha256.Sum256(d.src)
			out[d.id] = hex.EncodeToString(sum[:16])
			continue
		}
		h := sha256.New()
		h.Write(d.src)
		for _, ref := range d.refs {
			if r := lookup(ref); r != nil {
				h.Write(r.src)
			}
		}
		fmt.Fprintf(h, "%d/%d/%d", cfg.Lateness, cfg.MaxEventsPerGroup, stateVersion)
		out[d.id] = hex.EncodeToString(h.Sum(nil)[:16])
	}
	return out
}

// legacyWriter writes what the release before this one wrote: the state
// as it is, with the whole-document fingerprints.
type legacyWriter struct {
	w   StateWriter
	fps map[string]string
}

func (l legacyWriter) Set(k, v []byte) error {
	if id, ok := strings.CutPrefix(string(k), keyFP); ok {
		fp, known := l.fps[id]
		if !known {
			return fmt.Errorf("no legacy fingerprint for rule %s", id)
		}
		v = []byte(fp)
	}
	return l.w.Set(k, v)
}

func (l legacyWriter) Delete(k []byte) error { return l.w.Delete(k) }

// TestLegacyFingerprintKept: state saved by the release before this one,
// under whole-document fingerprints, is kept by the upgrade (a brute
// force in progress, an account's learned countries, a suppression), and
// the next save writes the new fingerprints, under which the state is
// kept at the next restart too. Saved in the state files (that release's
// layout) or in the detector's Badger database (the layout before).
func TestLegacyFingerprintKept(t *testing.T) {
	rules := bruteForce + `---
title: new country
id: nc
correlation:
  type: new_term
  rules: [successful_login]
  group-by: [actor.id]
  timespan: 10d
  new_term:
    fields: [source.geo.country]
    learning: 2d
---
title: denied
id: denied
logsource: {product: accessledger}
detection:
  sel: {source.ip|cidr: 192.0.2.0/24}
  condition: sel
suppress: {fields: [source.ip], duration: 1h}
`
	login := func(day int, country string) *event.Event {
		return mkEvent(t, map[string]any{"time": at(time.Duration(day) * 24 * time.Hour), "outcome": "success", "reason": nil,
			"source": map[string]any{"ip": "198.51.100.1", "geo": map[string]any{"country": country}}})
	}
	failAt := func(d time.Duration, ip string) *event.Event { return fail(t, 3*24*time.Hour+d, ip, "bob") }
	readAt := func(d time.Duration, ip string) *event.Event { // no failed login: bf does not count it
		return mkEvent(t, map[string]any{"time": at(3*24*time.Hour + d), "action": "read", "category": "data_access", "outcome": "success",
			"reason": nil, "source": map[string]any{"ip": ip}})
	}
	before := []*event.Event{
		login(0, "FR"), login(3, "FR"),
		failAt(0, "198.51.100.9"), failAt(time.Second, "198.51.100.9"), failAt(2*time.Second, "198.51.100.9"), failAt(3*time.Second, "198.51.100.9"),
		readAt(4*time.Second, "192.0.2.1"), // denied: alert, suppressed for 1h
	}
	cfg := Config{}
	legacy := legacyFingerprints(t, rules, cfg)
	if len(legacy) != 5 {
		t.Fatalf("legacy fingerprints %v, want the 5 rules'", legacy)
	}

	saveLegacy := map[string]func(t *testing.T, ds diskState, e *Engine, next uint64){
		"state files": func(t *testing.T, ds diskState, e *Engine, next uint64) {
			// As that release's first save: a journal of generation 0.
			dir := filepath.Join(ds.dir, stateDirName)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			f, err := os.Create(filepath.Join(dir, fileName("journal", 0)))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := writeSave(f, next, func(w StateWriter) error { return e.SaveState(legacyWriter{w, legacy}) }); err != nil {
				t.Fatal(err)
			}
		},
		"Badger": func(t *testing.T, ds diskState, e *Engine, next uint64) {
			// One key per entry under e/, with an 8-byte cursor.
			all := mapWriter{}
			if err := e.SaveAll(legacyWriter{all, legacy}); err != nil {
				t.Fatal(err)
			}
			db := openStateDB(t, ds.dir)
			defer db.Close()
			err := db.Update(func(txn *badger.Txn) error {
				for k, v := range all {
					if err := txn.Set(append(bytes.Clone(keyEnginePfx), k...), []byte(v)); err != nil {
						return err
					}
				}
				return txn.Set(keyCursor, binary.BigEndian.AppendUint64(nil, next))
			})
			if err != nil {
				t.Fatal(err)
			}
		},
	}
	for _, layout := range []string{"state files", "Badger"} {
		t.Run(layout, func(t *testing.T) {
			ds := newDiskState(t)
			e := compileYAML(t, rules, cfg)
			if as := feed(e, 0, before...); alertIDs(as) != "denied[6]" {
				t.Fatalf("before the upgrade: alerts %s, want denied[6]", alertIDs(as))
			}
			next := uint64(len(before))
			saveLegacy[layout](t, ds, e, next)
			saved := ds.state()
			for id, fp := range legacy {
				if v, ok := saved[keyFP+id]; ok && string(v) != fp {
					t.Fatalf("saved fingerprint of %s = %q, want the legacy %q", id, v, fp)
				}
			}

			e2 := ds.restart(rules, cfg)
			for _, id := range []string{"bf", "nc"} {
				if g := ruleStatus(t, e2, id).Groups; g != 1 {
					t.Errorf("groups of %s after the upgrade = %d, want 1", id, g)
				}
			}
			as := feed(e2, next,
				failAt(5*time.Second, "198.51.100.9"), // the fifth failure: bf
				readAt(6*time.Second, "192.0.2.1"),    // denied, suppressed
				login(4, "BR"))                        // a new country after learning: nc
			if got := alertIDs(as); got != fmt.Sprintf("bf[2 3 4 5 %d] nc[%d]", next, next+2) {
				t.Errorf("after the upgrade: alerts %s, want bf on the five failures and nc on the new country (denied suppressed)", got)
			}
			if s := ruleStatus(t, e2, "denied").Suppressed; s != 1 {
				t.Errorf("denied suppressed %d, want 1", s)
			}

			// The next save writes the new fingerprints.
			ds.save(e2, next+3)
			saved = ds.state()
			for _, id := range []string{"bf", "nc", "denied"} {
				v, ok := saved[keyFP+id]
				if !ok || string(v) == legacy[id] {
					t.Errorf("fingerprint of %s after the next save = %q, %v; want the new one", id, v, ok)
				}
			}
			fresh := mapWriter{}
			if err := compileYAML(t, rules, cfg).SaveAll(fresh); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"bf", "nc", "denied"} {
				if got, want := string(saved[keyFP+id]), fresh[keyFP+id]; got != want {
					t.Errorf("fingerprint of %s after the next save = %q, want %q, the one this release saves", id, got, want)
				}
			}

			// Under which the state is kept at the next restart.
			e3 := ds.restart(rules, cfg)
			if g := ruleStatus(t, e3, "nc").Groups; g != 1 {
				t.Errorf("groups of nc at the restart after the migration = %d, want 1", g)
			}
			if as := feed(e3, next+3, login(5, "US")); alertIDs(as) != fmt.Sprintf("nc[%d]", next+3) {
				t.Errorf("at the restart after the migration: alerts %s, want nc on the new country", alertIDs(as))
			}
		})
	}
}

// fingerprintRules has a rule of each kind with state: correlations of
// each type but temporal, one of them chained, and a detection rule with
// suppress.
const fingerprintRules = failedLogin + `title: brute force
id: bf
name: brute_force
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 10m
  condition: {gte: 5}
level: high
suppress: {fields: [source.ip], duration: 1h}
---
title: accounts per address
id: vc
correlation:
  type: value_count
  rules: [failed_login, successful_login]
  group-by: [ip]
  aliases: {ip: {failed_login: source.ip, successful_login: source.ip}}
  timespan: 10m
  condition: {gte: 5, field: actor.id}
---
title: unusual hour
id: nt
correlation:
  type: new_term
  rules: [successful_login]
  group-by: [actor.id]
  timespan: 30d
  new_term: {fields: [time.hour], tolerance: 1, learning: 7d, max_terms: 24}
---
title: login spike
id: bl
correlation:
  type: baseline
  rules: [successful_login]
  group-by: [actor.id]
  timespan: 1h
  baseline: {factor: 10, min_count: 50, history: 7d, learning: 2d}
---
title: travel
id: gv
correlation:
  type: geo_velocity
  rules: [successful_login]
  group-by: [actor.id]
  timespan: 24h
  geo_velocity: {min_distance_km: 500, min_speed_kmh: 800}
---
title: success after brute force
id: chain
correlation:
  type: temporal_ordered
  rules: [brute_force, successful_login]
  group-by: [source.ip]
  timespan: 1h
---
title: denied
id: denied
logsource: {product: accessledger}
detection:
  sel: {source.ip|cidr: 192.0.2.0/24}
  condition: sel
exceptions: [{reason: the test range, match: {source.ip: 192.0.2.9}}]
suppress: {fields: [source.ip], duration: 1h}
`

// TestFingerprintKeys checks, rule key by rule key, what changes the
// fingerprints saved with the state: presentation, response and
// thresholds do not; what the state is built from does, for the rule and
// the correlations it feeds; suppress changes the suppressions' part
// only.
func TestFingerprintKeys(t *testing.T) {
	saved := func(t *testing.T, rules string) map[string]string {
		t.Helper()
		w := mapWriter{}
		if err := compileYAML(t, rules, Config{}).SaveAll(w); err != nil {
			t.Fatal(err)
		}
		fps := map[string]string{}
		for k, v := range w {
			if id, ok := strings.CutPrefix(k, keyFP); ok {
				fps[id] = v
			}
		}
		return fps
	}
	base := saved(t, fingerprintRules)
	if len(base) != 7 {
		t.Fatalf("fingerprints saved %v, want the 7 rules with state", base)
	}
	edit := func(t *testing.T, pairs ...string) string {
		t.Helper()
		rules := fingerprintRules
		for i := 0; i < len(pairs); i += 2 {
			if !strings.Contains(rules, pairs[i]) {
				t.Fatalf("%q is not in the rules", pairs[i])
			}
			rules = strings.Replace(rules, pairs[i], pairs[i+1], 1)
		}
		return rules
	}
	kept := []struct {
		name  string
		edits []string
	}{
		{"title, level", []string{"title: brute force\n", "title: Brute force\n", "level: high", "level: critical"}},
		{"title of the rule counted", []string{"title: failed login", "title: Failed login"}},
		{"metadata", []string{"title: travel\n", "title: travel\ndescription: far too fast\nauthor: me\ndate: 2026-01-01\nmodified: 2026-02-01\n" +
			"references: [https://example.org]\nfalsepositives: [VPN]\ntags: [attack.t1078]\nlicense: MIT\n" +
			"related: [{id: x, type: similar}]\ntaxonomy: accessledger\ncustom: {team: soc}\n"}},
		{"fields, scope", []string{"title: denied\n", "title: denied\nfields: [source.ip]\nscope: [server]\n"}},
		{"status", []string{"title: unusual hour\n", "title: unusual hour\nstatus: experimental\n"}},
		{"name of a rule no correlation names", []string{"id: vc\n", "id: vc\nname: accounts_per_address\n"}},
		{"response", []string{"title: login spike\n", "title: login spike\nresponse: [{action: notify, target: actor.id}]\n",
			"title: denied\n", "title: denied\nresponse: [{action: ban, target: source.ip, duration: 1h}]\n"}},
		{"generate", []string{"title: login spike\n", "title: login spike\ngenerate: true\n"}},
		{"reason of an exception", []string{"reason: the test range", "reason: the documentation range"}},
		{"comments, order and style", []string{"id: vc\ncorrelation:\n  type: value_count\n  rules: [failed_login, successful_login]",
			"id: vc # the spray\ncorrelation:\n  rules:\n    - failed_login\n    - successful_login\n  type: 'value_count'"}},
		{"condition threshold", []string{"condition: {gte: 5}", "condition: {gte: 8}", "{gte: 5, field: actor.id}", "{gte: 3, field: actor.id}"}},
		{"new_term learning and tolerance", []string{"tolerance: 1, learning: 7d", "tolerance: 2, learning: 14d"}},
		{"baseline factor, min_count, learning", []string{"factor: 10, min_count: 50, history: 7d, learning: 2d", "factor: 5, min_count: 500, history: 7d, learning: 3d"}},
		{"baseline thresholds to their defaults", []string{"baseline: {factor: 10, min_count: 50, history: 7d, learning: 2d}", "baseline: {history: 7d}"}},
		{"geo_velocity thresholds", []string{"{min_distance_km: 500, min_speed_kmh: 800}", "{min_distance_km: 300, min_speed_kmh: 600}"}},
	}
	for _, tt := range kept {
		t.Run("kept/"+tt.name, func(t *testing.T) {
			got := saved(t, edit(t, tt.edits...))
			for id, fp := range base {
				if got[id] != fp {
					t.Errorf("fingerprint of %s changed: %s, was %s", id, got[id], fp)
				}
			}
		})
	}
	changed := []struct {
		name  string
		edits []string
		rules []string // whose state is discarded
	}{
		{"detection of the rules counted", []string{"sel: {action: login, outcome: failure}", "sel: {action: login, outcome: failure, mfa: false}"}, []string{"bf", "vc", "chain"}},
		{"logsource of the rules counted", []string{"name: successful_login\nlogsource: {product: accessledger, category: authentication}",
			"name: successful_login\nlogsource: {product: accessledger, category: authentication, service: sso}"}, []string{"vc", "nt", "bl", "gv", "chain"}},
		{"detection of a suppressing rule", []string{"192.0.2.0/24", "192.0.2.0/25"}, []string{"denied"}},
		{"exception", []string{"source.ip: 192.0.2.9", "source.ip: 192.0.2.8"}, []string{"denied"}},
		{"exception of a correlation", []string{"title: travel\n", "title: travel\nexceptions: [{reason: lab, match: {actor.id: tester}}]\n"}, []string{"gv"}},
		{"type", []string{"type: event_count", "type: value_count", "condition: {gte: 5}", "condition: {gte: 5, field: actor.id}"}, []string{"bf", "chain"}},
		{"type alone", []string{"type: temporal_ordered", "type: temporal"}, []string{"chain"}},
		{"rules", []string{"rules: [failed_login, successful_login]", "rules: [successful_login, failed_login]",
			"{ip: {failed_login: source.ip, successful_login: source.ip}}", "{ip: {successful_login: source.ip, failed_login: source.ip}}"}, []string{"vc"}},
		{"group-by", []string{"group-by: [actor.id]\n  timespan: 24h", "group-by: [tenant, actor.id]\n  timespan: 24h"}, []string{"gv"}},
		{"aliases", []string{"successful_login: source.ip}", "successful_login: source.network}"}, []string{"vc"}},
		{"timespan", []string{"timespan: 24h", "timespan: 12h"}, []string{"gv"}},
		{"condition operator", []string{"condition: {gte: 5}", "condition: {gte: 5, lte: 100}"}, []string{"bf", "chain"}},
		{"timespan of the inner correlation", []string{"timespan: 10m\n  condition: {gte: 5}", "timespan: 5m\n  condition: {gte: 5}"}, []string{"bf", "chain"}},
		{"value field", []string{"field: actor.id", "field: source.user_agent"}, []string{"vc"}},
		{"new_term fields", []string{"fields: [time.hour]", "fields: [time.weekday]"}, []string{"nt"}},
		{"new_term tolerance set or not", []string{"tolerance: 1, ", ""}, []string{"nt"}},
		{"new_term max_terms", []string{"max_terms: 24", "max_terms: 12"}, []string{"nt"}},
		{"baseline history", []string{"history: 7d", "history: 14d"}, []string{"bl"}},
	}
	for _, tt := range changed {
		t.Run("discarded/"+tt.name, func(t *testing.T) {
			got := saved(t, edit(t, tt.edits...))
			for id, fp := range base {
				if want := slices.Contains(tt.rules, id); (got[id] != fp) != want {
					t.Errorf("fingerprint of %s changed: %v, want %v", id, got[id] != fp, want)
				}
			}
		})
	}
	t.Run("suppress", func(t *testing.T) {
		got := saved(t, edit(t, "suppress: {fields: [source.ip], duration: 1h}\n---", "suppress: {fields: [source.ip], duration: 2h}\n---"))
		for id, fp := range base {
			g, s, _ := strings.Cut(got[id], "/")
			bg, bs, _ := strings.Cut(fp, "/")
			if id == "bf" {
				if g != bg || s == bs {
					t.Errorf("fingerprint of bf %s, was %s: want the groups' part kept and the suppressions' changed", got[id], fp)
				}
			} else if got[id] != fp {
				t.Errorf("fingerprint of %s changed: %s, was %s", id, got[id], fp)
			}
		}
	})
}

// TestFingerprintNumberSpelling: detection matches a value's text, so
// actor.id: 16 and actor.id: 0x10 (or 1000, 1e3 and 1_000; 1 and 1.0)
// are rules matching other events; their state fingerprints differ. The
// fingerprint hashed decoded numbers, which made them one (found by
// review).
func TestFingerprintNumberSpelling(t *testing.T) {
	rules := func(v string) string {
		return `title: failed login
id: failed
name: failed_login
logsource: {product: accessledger, category: authentication}
detection:
  sel: {action: login, outcome: failure, actor.id: ` + v + `}
  condition: sel
---
title: bf
id: bf
correlation: {type: event_count, rules: [failed_login], group-by: [source.ip], timespan: 1h, condition: {gte: 2}}
`
	}
	fp := func(v string) string {
		w := mapWriter{}
		if err := compileYAML(t, rules(v), Config{}).SaveAll(w); err != nil {
			t.Fatal(err)
		}
		return w[keyFP+"bf"]
	}
	for _, pair := range [][2]string{{"0x10", "16"}, {"1.0", "1"}, {"1_000", "1000"}, {"1e3", "1000"}} {
		if fp(pair[0]) == fp(pair[1]) {
			t.Errorf("actor.id: %s and actor.id: %s have one state fingerprint, but match other events", pair[0], pair[1])
		}
	}
	// Quoting a value does not change what it matches, nor the state.
	if fp(`"alice"`) != fp("alice") {
		t.Errorf(`actor.id: "alice" and actor.id: alice have other fingerprints`)
	}
}

// aliasBomb is a rule whose custom section nests anchors depth deep, each
// nine aliases of the one before: expanded, 9^depth nodes from a few
// hundred bytes.
func aliasBomb(depth int) []byte {
	var b strings.Builder
	b.WriteString("title: t\nid: 33333333-3333-3333-3333-333333333333\nlogsource: {product: accessledger, category: authentication}\n")
	b.WriteString("detection:\n  sel:\n    actor.id: x\n  condition: sel\ncustom:\n")
	b.WriteString("  a0: &a0 [x,x,x,x,x,x,x,x,x]\n")
	for i := 1; i < depth; i++ {
		refs := strings.Repeat(fmt.Sprintf("*a%d,", i-1), 9)
		fmt.Fprintf(&b, "  a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(refs, ","))
	}
	return []byte(b.String())
}

// TestRuleAliasesNotExpanded: the state fingerprint's copy of a rule
// followed every alias, so a 600-byte rule of anchors nested nine deep
// made `rules lint` and `serve` run out of memory (found by review). A
// rule six deep is parsed with few allocations; nine deep is refused
// with yaml's own error, at once.
func TestRuleAliasesNotExpanded(t *testing.T) {
	doc := aliasBomb(6)
	if allocs := testing.AllocsPerRun(1, func() { ParseRules("bomb.yml", doc) }); allocs > 50_000 {
		t.Fatalf("parsing a %d-byte rule with anchors nested 6 deep made %.0f allocations, want them not expanded", len(doc), allocs)
	}
	_, err := ParseRules("bomb.yml", aliasBomb(9))
	if err == nil || !strings.Contains(err.Error(), "excessive aliasing") {
		t.Errorf("ParseRules(anchors nested 9 deep) = %v, want yaml's excessive aliasing error", err)
	}
}
