package respond

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/internal/ledgertest"
	"github.com/accessledger/accessledger/ledger"
)

var bg = context.Background()

// smallBadger keeps the service's database small in tests.
var smallBadger = ledgertest.SmallBadger

// newTestLedger creates a ledger in a temporary directory.
func newTestLedger(t testing.TB) *ledger.Ledger {
	t.Helper()
	return ledgertest.New(t, ledger.Config{Origin: "respond.test/log", CheckpointInterval: 50 * time.Millisecond})
}

// testAlert returns a valid alert of rule with the given group value.
// wantMessageID is the id of a message of log l: the first 16 hex digits
// of its first leaf's hash, an underscore, and local.
func wantMessageID(t testing.TB, l *ledger.Ledger, local string) string {
	t.Helper()
	_, h, err := l.Entry(bg, 0)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h[:8]) + "_" + local
}

func testAlert(rule, level, group string, n int) *event.Alert {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Minute)
	return &event.Alert{
		DedupKey: fmt.Sprintf("%s|%s|%d", rule, group, n),
		Time:     t0,
		Rule:     event.AlertRule{ID: rule, Title: "Test rule " + rule, Level: level, Tags: []string{"attack.t1110"}},
		Group:    []event.GroupValue{{Field: "source.ip", Value: group}},
		Window:   event.Window{Start: t0.Add(-time.Minute), End: t0},
		Evidence: []uint64{0}, EvidenceCount: 1,
		Summary:  "six failed logins from " + group,
		Response: []event.ResponseAction{{Action: "ban", Target: "source.ip", Value: group, DurationSeconds: 3600}},
	}
}

// appendAlerts appends alerts as the detector does and returns their
// indexes.
func appendAlerts(t testing.TB, l *ledger.Ledger, alerts ...*event.Alert) []uint64 {
	t.Helper()
	var out []uint64
	for _, a := range alerts {
		leaf, err := event.EncodeAlertLeaf(a, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		res, err := l.Append(bg, ledger.Entry{Data: leaf})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res[0].Index)
	}
	return out
}

// appendEvent appends one plain event leaf.
func appendEvent(t testing.TB, l *ledger.Ledger) {
	t.Helper()
	leaf, err := event.EncodeLeaf(event.KindEvent, time.Now(), []byte(`{"time":"2026-11-27T10:00:00.000000000Z","service":"sso"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(bg, ledger.Entry{Data: leaf}); err != nil {
		t.Fatal(err)
	}
}

// fakeSender answers each attempt with the next scripted outcome (the
// last one repeats) and records what it was sent.
type fakeSender struct {
	mu       sync.Mutex
	script   []Outcome
	attempts int
	got      []Message
	times    []time.Time
	notify   chan struct{}
	delay    time.Duration // each attempt takes this long
}

func newFakeSender(script ...Outcome) *fakeSender {
	return &fakeSender{script: script, notify: make(chan struct{}, 1000)}
}

func (f *fakeSender) Send(_ context.Context, m *Message) Outcome {
	time.Sleep(f.delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	out := Outcome{}
	if len(f.script) > 0 {
		out = f.script[min(f.attempts, len(f.script)-1)]
	}
	f.attempts++
	f.times = append(f.times, time.Now())
	if out.Err == nil {
		f.got = append(f.got, *m)
	}
	select {
	case f.notify <- struct{}{}:
	default:
	}
	return out
}

func (f *fakeSender) delivered() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Message(nil), f.got...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runService opens a service over l and runs it until stop is called.
func runService(t testing.TB, cfg Config) (*Service, func()) {
	t.Helper()
	if cfg.BadgerOptions == nil {
		cfg.BadgerOptions = smallBadger
	}
	s, err := Open(bg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	t.Cleanup(stop)
	return s, stop
}

// responseLeaves reads every response leaf in the log.
func responseLeaves(t testing.TB, l *ledger.Ledger) []*event.Response {
	t.Helper()
	size, _ := l.Size()
	var out []*event.Response
	for i := range size {
		data, _, err := l.Entry(bg, i)
		if err != nil {
			t.Fatal(err)
		}
		if event.LeafKind(data) != event.KindResponse {
			continue
		}
		_, r, err := event.DecodeResponseLeaf(data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// fastDelivery is a retry schedule for tests.
func fastDelivery() DeliveryConfig {
	return DeliveryConfig{Schedule: []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond, 60 * time.Millisecond}, MaxAttempts: 5, Timeout: time.Second}
}
