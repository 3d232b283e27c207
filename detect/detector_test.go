package detect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/internal/ledgertest"
	"github.com/accessledger/accessledger/ledger"
)

var bg = context.Background()

var smallBadger = ledgertest.SmallBadger

func newTestLedger(t testing.TB) *ledger.Ledger {
	t.Helper()
	return ledgertest.New(t, ledger.Config{Origin: "detect.test/log", CheckpointInterval: time.Hour})
}

// appendEvents appends events as the API does.
func appendEvents(t testing.TB, l *ledger.Ledger, evs []*event.Event) {
	t.Helper()
	entries := make([]ledger.Entry, len(evs))
	for i, ev := range evs {
		leaf, err := event.EncodeLeaf(event.KindEvent, ev.Time, ev.Canonical())
		if err != nil {
			t.Fatal(err)
		}
		entries[i] = ledger.Entry{Data: leaf}
	}
	for len(entries) > 0 {
		n := min(len(entries), 1000)
		if _, err := l.Append(bg, entries[:n]...); err != nil {
			t.Fatal(err)
		}
		entries = entries[n:]
	}
}

// runDetector opens a detector over l with the rules and runs it until
// the returned stop is called; stop waits for Run and closes it.
func runDetector(t testing.TB, l *ledger.Ledger, dir, rules string) (*Detector, func()) {
	t.Helper()
	return runDetectorWith(t, DetectorConfig{Log: l, Engine: compileYAML(t, rules, Config{}), Dir: dir})
}

// runDetectorWith is runDetector with a configuration of its own (small
// Badger tables, and saves every 20 ms unless it sets SaveInterval).
func runDetectorWith(t testing.TB, cfg DetectorConfig) (*Detector, func()) {
	t.Helper()
	cfg.BadgerOptions = smallBadger
	if cfg.SaveInterval == 0 {
		cfg.SaveInterval = 20 * time.Millisecond
	}
	d, err := OpenDetector(bg, cfg)
	if err != nil {
		t.Fatalf("OpenDetector = %v", err)
	}
	_, stop := startDetector(t, d)
	return d, stop
}

// startDetector runs an open detector until stop is called: stop cancels
// Run, checks that it returned nil and closes the detector. done yields
// Run's result, for tests that check Run has not returned meanwhile.
func startDetector(t testing.TB, d *Detector) (done <-chan error, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(bg)
	ch := make(chan error, 1)
	go func() { ch <- d.Run(ctx) }()
	return ch, func() {
		cancel()
		if err := <-ch; err != nil {
			t.Errorf("Run = %v", err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	}
}

// waitCursor waits until the detector has processed the whole log.
func waitCursor(t testing.TB, d *Detector, l *ledger.Ledger) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		size, _ := l.Size()
		if d.Cursor() == size {
			// The alerts just appended are leaves too: wait for them.
			time.Sleep(50 * time.Millisecond)
			if s2, _ := l.Size(); d.Cursor() == s2 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	size, _ := l.Size()
	t.Fatalf("detector cursor %d, log size %d after 10s", d.Cursor(), size)
}

// alertLeaves returns the dedup keys of the alert leaves of the log.
func alertLeaves(t testing.TB, l *ledger.Ledger) []string {
	t.Helper()
	size, _ := l.Size()
	var keys []string
	for i := uint64(0); i < size; i++ {
		data, _, err := l.Entry(bg, i)
		if err != nil {
			t.Fatal(err)
		}
		if _, a, err := event.DecodeAlertLeaf(data); err == nil {
			keys = append(keys, a.DedupKey)
		}
	}
	slices.Sort(keys)
	return keys
}

const detectorRules = `title: failed login
id: failed
name: failed_login
logsource: {product: accessledger, category: authentication}
detection:
  sel: {action: login, outcome: failure}
  condition: sel
---
title: brute force
id: bf
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 1m
  condition: {gte: 5}
level: high
`

// uninterruptedAlerts returns the dedup keys of the alerts a detector
// raises over evs in one run on a fresh log.
func uninterruptedAlerts(t testing.TB, evs []*event.Event) []string {
	t.Helper()
	l := newTestLedger(t)
	d, stop := runDetector(t, l, t.TempDir(), detectorRules)
	appendEvents(t, l, evs)
	waitCursor(t, d, l)
	stop()
	return alertLeaves(t, l)
}

func bursts(t testing.TB, n int) []*event.Event {
	var evs []*event.Event
	for b := 0; b < n; b++ {
		for i := 0; i < 6; i++ {
			evs = append(evs, fail(t, time.Duration(b)*2*time.Minute+time.Duration(i)*time.Second, fmt.Sprintf("192.0.2.%d", b%3), "u"))
		}
		evs = append(evs, success(t, time.Duration(b)*2*time.Minute+time.Minute, "192.0.2.200", "v"))
	}
	return evs
}

func TestDetector(t *testing.T) {
	l := newTestLedger(t)
	d, stop := runDetector(t, l, t.TempDir(), detectorRules)
	defer stop()
	appendEvents(t, l, bursts(t, 3))
	waitCursor(t, d, l)
	page, err := d.Alerts(bg, AlertQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Alerts) != 3 || page.Next != 0 {
		t.Fatalf("Alerts() = %d alerts (next %d), want 3", len(page.Alerts), page.Next)
	}
	first := page.Alerts[0]
	data, leafHash, err := l.Entry(bg, first.Index)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(leafHash, first.LeafHash) {
		t.Errorf("alert leaf hash %x, want the log's %x", first.LeafHash, leafHash)
	}
	leaf, a, err := event.DecodeAlertLeaf(data)
	if err != nil || leaf.Kind != event.KindAlert {
		t.Fatalf("alert leaf %s: %v", data, err)
	}
	if a.Rule.ID != "bf" || a.Rule.Level != "high" || !slices.Equal(a.Evidence, []uint64{0, 1, 2, 3, 4}) || a.Group[0].Value != "192.0.2.0" {
		t.Errorf("alert = %+v, want bf on events 0-4 of 192.0.2.0", a)
	}
	// The evidence are events of the log.
	for _, idx := range a.Evidence {
		data, _, err := l.Entry(bg, idx)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := DecodeLeaf(idx, data); err != nil || r.Event.Outcome != "failure" {
			t.Errorf("evidence %d = %v, %v; want a failed login", idx, r, err)
		}
	}
	// Queries.
	for _, tt := range []struct {
		q    AlertQuery
		want int
	}{
		{AlertQuery{Level: "critical"}, 0},
		{AlertQuery{Level: "medium"}, 3},
		{AlertQuery{Rule: "bf"}, 3},
		{AlertQuery{Rule: "other"}, 0},
		{AlertQuery{Since: a.Time.Add(time.Minute)}, 2},
		{AlertQuery{Cursor: first.Index + 1}, 2},
	} {
		p, err := d.Alerts(bg, tt.q)
		if err != nil || len(p.Alerts) != tt.want {
			t.Errorf("Alerts(%+v) = %d alerts, %v; want %d", tt.q, len(p.Alerts), err, tt.want)
		}
	}
	p, err := d.Alerts(bg, AlertQuery{Limit: 2})
	if err != nil || len(p.Alerts) != 2 || p.Next != page.Alerts[2].Index {
		t.Errorf("Alerts(limit 2) = %d alerts, next %d, %v; want 2 and next %d", len(p.Alerts), p.Next, err, page.Alerts[2].Index)
	}
	st := d.Status()
	if st.Engine.Rules == nil || st.Cursor == 0 {
		t.Errorf("Status() = %+v", st)
	}
}

// TestDetectorRestart stops the detector at several points of a stream
// and checks that the log holds each alert exactly once, the same set as
// an uninterrupted run.
func TestDetectorRestart(t *testing.T) {
	evs := bursts(t, 12)
	want := uninterruptedAlerts(t, evs)
	if len(want) != 12 {
		t.Fatalf("uninterrupted run: %d alerts, want 12", len(want))
	}

	l := newTestLedger(t)
	dir := t.TempDir()
	for i, cut := range []int{5, 20, 21, 50, len(evs)} {
		prev := 0
		if i > 0 {
			prev = []int{5, 20, 21, 50, len(evs)}[i-1]
		}
		d, stop := runDetector(t, l, dir, detectorRules)
		appendEvents(t, l, evs[prev:cut])
		waitCursor(t, d, l)
		stop()
	}
	if got := alertLeaves(t, l); !slices.Equal(got, want) {
		t.Errorf("with restarts: alert keys %v, want %v", got, want)
	}
}

// TestDetectorReplay loses the detector's state after alerts were
// appended (as a crash between appending and saving would): the replay
// raises them again, and the log deduplicates them.
func TestDetectorReplay(t *testing.T) {
	l := newTestLedger(t)
	appendEvents(t, l, bursts(t, 4))
	d, stop := runDetector(t, l, t.TempDir(), detectorRules)
	waitCursor(t, d, l)
	stop()
	want := alertLeaves(t, l)
	// A fresh state directory: everything is replayed from leaf 0.
	d2, stop2 := runDetector(t, l, t.TempDir(), detectorRules)
	waitCursor(t, d2, l)
	stop2()
	if got := alertLeaves(t, l); !slices.Equal(got, want) || len(got) != 4 {
		t.Errorf("after a replay: alert keys %v, want %v", got, want)
	}
	page, err := d2.Alerts(bg, AlertQuery{})
	if err == nil {
		t.Errorf("Alerts on a closed detector = %d alerts, want an error", len(page.Alerts))
	}
}

// TestDetectorSetsDamagedStateAside: a damaged state snapshot does not
// keep the detector from opening: the state is set aside, the log
// replayed from its first leaf, and the alerts raised again are
// deduplicated by the log.
func TestDetectorSetsDamagedStateAside(t *testing.T) {
	old := compactMin
	compactMin = 1 // every save after the first a snapshot
	t.Cleanup(func() { compactMin = old })
	l := newTestLedger(t)
	dir := t.TempDir()
	evs := bursts(t, 4)
	d, stop := runDetector(t, l, dir, detectorRules)
	appendEvents(t, l, evs[:len(evs)/2])
	waitCursor(t, d, l)
	appendEvents(t, l, evs[len(evs)/2:])
	waitCursor(t, d, l)
	stop()
	want := alertLeaves(t, l)
	snaps, _ := filepath.Glob(filepath.Join(dir, stateDirName, "snapshot-*"))
	if len(snaps) != 1 {
		t.Fatalf("state snapshots %v, want one", snaps)
	}
	raw, err := os.ReadFile(snaps[0])
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x01
	if err := os.WriteFile(snaps[0], raw, 0o600); err != nil {
		t.Fatal(err)
	}

	d2, stop2 := runDetector(t, l, dir, detectorRules)
	waitCursor(t, d2, l)
	stop2()
	if aside, _ := filepath.Glob(filepath.Join(dir, stateDirName+".broken-*", "snapshot-*")); len(aside) != 1 {
		t.Errorf("the damaged state was not set aside: %v", aside)
	}
	if got := alertLeaves(t, l); !slices.Equal(got, want) || len(got) != 4 {
		t.Errorf("after the replay: alert keys %v, want %v", got, want)
	}
}

// TestPublishSpansTransactions publishes more alerts at once than one
// storage transaction holds, as a detector catching up on a backlog of
// attacks does (every alert raised in up to SaveEvery leaves goes out in
// one publish): all of them must be indexed (before, Run stopped there
// with badger.ErrTxnTooBig).
func TestPublishSpansTransactions(t *testing.T) {
	l := newTestLedger(t)
	small := func(o badger.Options) badger.Options {
		return o.WithMemTableSize(2 << 20).WithValueThreshold(64 << 10)
	}
	const rules = `title: failed login
id: failed
logsource: {product: accessledger, category: authentication}
detection:
  sel: {action: login, outcome: failure}
  condition: sel
level: low
`
	d, err := OpenDetector(bg, DetectorConfig{Log: l, Engine: compileYAML(t, rules, Config{}), Dir: t.TempDir(), BadgerOptions: small})
	if err != nil {
		t.Fatalf("OpenDetector = %v", err)
	}
	defer d.Close()
	var evs []*event.Event
	for i := range 8000 {
		evs = append(evs, fail(t, time.Duration(i)*time.Second, fmt.Sprintf("10.0.%d.%d", i>>8, i&255), "u"))
	}
	alerts := stream(compileYAML(t, rules, Config{}), evs)
	if len(alerts) < 8000 {
		t.Fatalf("%d alerts over %d failed logins, want one each", len(alerts), len(evs))
	}
	pending := make([]pendingAlert, len(alerts))
	for i, a := range alerts {
		pending[i] = pendingAlert{alert: a}
	}
	if err := d.publish(bg, pending); err != nil {
		t.Fatalf("publish(%d alerts) = %v", len(pending), err)
	}
	indexed := 0
	for q := (AlertQuery{Limit: 1000}); ; {
		page, err := d.Alerts(bg, q)
		if err != nil {
			t.Fatalf("Alerts = %v", err)
		}
		indexed += len(page.Alerts)
		if page.Next == 0 {
			break
		}
		q.Cursor = page.Next
	}
	if indexed != len(alerts) {
		t.Errorf("%d alerts indexed after publishing %d", indexed, len(alerts))
	}
}

// TestOpenDetectorRefusesALogBehindItsCursor: as the responders do, a
// detector whose state covers more of the log than it holds refuses to
// open (respond.TestOpenRefusesALogBehindItsCursor).
func TestOpenDetectorRefusesALogBehindItsCursor(t *testing.T) {
	l := newTestLedger(t)
	dir := t.TempDir()
	appendEvents(t, l, bursts(t, 2))
	d, stop := runDetector(t, l, dir, detectorRules)
	waitCursor(t, d, l)
	stop()
	shorter := newTestLedger(t)
	appendEvents(t, shorter, bursts(t, 1)[:1])
	_, err := OpenDetector(bg, DetectorConfig{Log: shorter, Engine: compileYAML(t, detectorRules, Config{}), Dir: dir, BadgerOptions: smallBadger})
	if !errors.Is(err, ErrAheadOfLog) || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("OpenDetector on a log shorter than the cursor = %v, want ErrAheadOfLog saying what to restore", err)
	}
}

// TestDetectorIdleClosesWindows: with no event after it, the window of a
// condition with an upper bound closes as time passes, and its alert
// reaches the log.
func TestDetectorIdleClosesWindows(t *testing.T) {
	l := newTestLedger(t)
	rules := strings.Replace(fewPerService, "timespan: 1m", "timespan: 1s", 1)
	e := compileYAML(t, rules, Config{Lateness: 100 * time.Millisecond})
	_, stop := runDetectorWith(t, DetectorConfig{Log: l, Engine: e, Dir: t.TempDir()})
	defer stop()
	appendEvents(t, l, []*event.Event{mkEvent(t, map[string]any{"time": time.Now().UTC().Format(time.RFC3339Nano)})})
	deadline := time.Now().Add(10 * time.Second)
	for len(alertLeaves(t, l)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no alert 10s after the window's end")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDetectorSavesIdleFlush: an idle flush that closes a window without
// an alert (so no leaf follows it) is saved, with where it closed windows:
// a restart after a crash would otherwise reopen the window for late
// events.
func TestDetectorSavesIdleFlush(t *testing.T) {
	l := newTestLedger(t)
	rules := strings.Replace(fewPerService, "timespan: 1m", "timespan: 1s", 1)
	e := compileYAML(t, rules, Config{Lateness: 100 * time.Millisecond})
	dir := t.TempDir()
	_, stop := runDetectorWith(t, DetectorConfig{Log: l, Engine: e, Dir: dir})
	defer stop()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var evs []*event.Event
	for range 3 { // lt 3 does not hold: the window closes without an alert
		evs = append(evs, mkEvent(t, map[string]any{"time": now}))
	}
	appendEvents(t, l, evs)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// What a crash would leave: the files as they are, read alone.
		state := map[string][]byte{}
		gen := fileName("", 0)[1:] // journal-0 comes before the first snapshot
		for _, name := range stateFiles(t, dir) {
			if g, ok := strings.CutPrefix(name, "snapshot-"); ok && len(g) == 16 {
				gen = max(gen, g)
			}
		}
		for _, name := range []string{"snapshot-" + gen, "journal-" + gen} {
			if _, _, _, err := readRecords(filepath.Join(dir, stateDirName, name), state); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		}
		e2 := compileYAML(t, rules, Config{Lateness: 100 * time.Millisecond})
		if err := e2.LoadState(entries(state)); err != nil {
			t.Fatal(err)
		}
		if e2.idleClosed != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("10s after the window's end, the saved state has no idle flush")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := alertLeaves(t, l); len(got) != 0 {
		t.Errorf("alerts %v, want none", got)
	}
}
