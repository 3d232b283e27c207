package respond

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// TestRenamedResponderKeepsItsMessages: a responder renamed in the
// configuration leaves its queued message, dead letter and throttled
// alert on disk. The service says so at start (a warning, GET
// /v1/responders, a metric), keeps them, leaves its throttling state out
// of the flusher's walk, and delivers them once the responder has its
// old name again. They were silently never delivered.
func TestRenamedResponderKeepsItsMessages(t *testing.T) {
	l := newTestLedger(t)
	dir := t.TempDir()
	d := fastDelivery()
	d.Schedule = []time.Duration{0, time.Hour}
	hook := func(name string) ResponderConfig {
		return ResponderConfig{Name: name, Type: TypeWebhook, Throttle: time.Hour}
	}
	// Group a's alert is dead-lettered, group b's waits for a retry in
	// three hours, group a's second alert is held back by throttling.
	down := newOrderSender(func(m *Message, _ int) Outcome {
		if m.Alert.Group[0].Value == "a" {
			return Outcome{Err: errors.New("400"), Status: 400, Permanent: true}
		}
		return Outcome{Err: errors.New("429"), Status: 429, RetryAfter: 3 * time.Hour}
	})
	s, stop := runService(t, Config{Log: l, Dir: dir, Delivery: d,
		Responders: []ResponderConfig{hook("old")}, Senders: map[string]Sender{"old": down}})
	appendAlerts(t, l, testAlert("r1", "high", "a", 1), testAlert("r1", "high", "b", 2), testAlert("r1", "high", "a", 3))
	waitFor(t, "a dead letter and a message waiting", func() bool {
		st, err := s.Responders(bg)
		return err == nil && st[0].Dead == 1 && st[0].Queued == 1
	})
	stop()

	// Renamed: the old name's messages are reported, not delivered, kept.
	var logged bytes.Buffer
	reg := prometheus.NewRegistry()
	renamed := newOrderSender(nil)
	s, err := Open(bg, Config{Log: l, Dir: dir, Delivery: d, BadgerOptions: smallBadger, Registerer: reg,
		Logger:     slog.New(slog.NewTextHandler(&logged, nil)),
		Responders: []ResponderConfig{hook("new")}, Senders: map[string]Sender{"new": renamed}})
	if err != nil {
		t.Fatal(err)
	}
	if out := logged.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "responder=old queued=1 dead_letters=1 throttled_alerts=1") {
		t.Errorf("the log at start says %q; want a warning naming responder old, with 1 queued, 1 dead letter, 1 throttled alert", out)
	}
	st, err := s.Responders(bg)
	if err != nil {
		t.Fatal(err)
	}
	if o := st[len(st)-1]; len(st) != 2 || st[0].Name != "new" || st[0].Orphaned ||
		o.Name != "old" || o.Type != "" || o.Queued != 1 || o.Dead != 1 || o.Throttled != 1 || !o.Orphaned {
		t.Errorf("Responders() = %+v; want new, then old orphaned with 1 queued, 1 dead letter, 1 throttled alert", st)
	}
	for state, want := range map[string]float64{"queued": 1, "dead_letter": 1, "throttled": 1} {
		g, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, mf := range g {
			if mf.GetName() != "accessledger_delivery_orphaned_messages" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, lp := range m.GetLabel() {
					labels[lp.GetName()] = lp.GetValue()
				}
				if labels["responder"] == "old" && labels["state"] == state {
					found = true
					if got := m.GetGauge().GetValue(); got != want {
						t.Errorf("accessledger_delivery_orphaned_messages{responder=old,state=%s} = %v, want %v", state, got, want)
					}
				}
			}
		}
		if !found {
			t.Errorf("no accessledger_delivery_orphaned_messages{responder=old,state=%s}", state)
		}
	}
	for k, ts := range s.throttle {
		if ts.Responder == "old" {
			t.Errorf("the throttling state %q of a responder no longer configured is walked every second", k)
		}
	}
	if n := countKeys(t, s.db, "t/old\x00"); n != 2 {
		t.Errorf("%d throttling states of old on disk, want both kept", n)
	}
	s.Close()

	// Named old again, hours later: the queued message and the throttled
	// alert are delivered; the dead letter is there to redeliver.
	up := newOrderSender(nil)
	s, _ = runService(t, Config{Log: l, Dir: dir, Delivery: d, Clock: func() time.Time { return time.Now().Add(4 * time.Hour) },
		Responders: []ResponderConfig{hook("old")}, Senders: map[string]Sender{"old": up}})
	waitFor(t, "the kept messages delivered", func() bool { _, delivered := up.got(); return len(delivered) == 2 })
	_, delivered := up.got()
	if delivered[0].Alert.Group[0].Value == delivered[1].Alert.Group[0].Value {
		t.Errorf("delivered %+v; want group b's alert and group a's throttled one", delivered)
	}
	if dead, err := s.DeadLetters(bg, "old", 10); err != nil || len(dead) != 1 {
		t.Errorf("dead letters of old named again: %d, %v; want 1", len(dead), err)
	}
	st, _ = s.Responders(bg)
	if len(st) != 1 || st[0].Orphaned {
		t.Errorf("Responders() = %+v, want old only, not orphaned", st)
	}
	if sent, _ := renamed.got(); len(sent) != 0 {
		t.Errorf("the renamed responder was sent old's messages")
	}
}

// countKeys counts the keys under prefix.
func countKeys(t *testing.T, db *badger.DB, prefix string) int {
	t.Helper()
	n := 0
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
