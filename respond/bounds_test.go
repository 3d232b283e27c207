package respond

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metricValue returns the value of the gauge or counter name with the
// given responder label in reg, and whether there is one.
func metricValue(t *testing.T, reg *prometheus.Registry, name, responder string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() != "responder" || lp.GetValue() != responder {
					continue
				}
				if g := m.GetGauge(); g != nil {
					return g.GetValue(), true
				}
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

// wantMetric checks the value of a responder's metric.
func wantMetric(t *testing.T, reg *prometheus.Registry, name, responder string, want float64) {
	t.Helper()
	if got, ok := metricValue(t, reg, name, responder); !ok || got != want {
		t.Errorf("%s{responder=%q} = %v (present: %v), want %v", name, responder, got, ok, want)
	}
}

// TestDeliveryCountsAcrossRestart: the queued messages and dead letters
// of each responder are counted at Open from what is stored, and kept
// as messages come and go (Redeliver); GET /v1/responders and the
// metrics read those counts (the dead letters were counted by a scan of
// the list at each request, and had no metric).
func TestDeliveryCountsAcrossRestart(t *testing.T) {
	l := newTestLedger(t)
	dir := t.TempDir()
	d := fastDelivery()
	d.Schedule = []time.Duration{0, time.Hour}
	// Group a's alert is dead-lettered, group b's waits for a retry.
	down := newOrderSender(func(m *Message, _ int) Outcome {
		if m.Alert.Group[0].Value == "a" {
			return Outcome{Err: errors.New("400"), Status: 400, Permanent: true}
		}
		return Outcome{Err: errors.New("429"), Status: 429, RetryAfter: 3 * time.Hour}
	})
	hooks := []ResponderConfig{{Name: "hook", Type: TypeWebhook}}
	s, stop := runService(t, Config{Log: l, Dir: dir, Delivery: d, Responders: hooks, Senders: map[string]Sender{"hook": down}})
	appendAlerts(t, l, testAlert("r1", "high", "a", 1), testAlert("r1", "high", "b", 2))
	waitFor(t, "a dead letter and a message waiting", func() bool {
		st, err := s.Responders(bg)
		return err == nil && st[0].Dead == 1 && st[0].Queued == 1
	})
	stop()

	reg := prometheus.NewRegistry()
	s, err := Open(bg, Config{Log: l, Dir: dir, Delivery: d, BadgerOptions: smallBadger, Registerer: reg,
		Responders: hooks, Senders: map[string]Sender{"hook": newOrderSender(nil)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := func(when string, queued, dead int) {
		t.Helper()
		st, err := s.Responders(bg)
		if err != nil || st[0].Queued != queued || st[0].Dead != dead {
			t.Errorf("%s: Responders() = %+v, %v; want %d queued, %d dead letters", when, st, err, queued, dead)
		}
		wantMetric(t, reg, "accessledger_delivery_responder_queue_depth", "hook", float64(queued))
		wantMetric(t, reg, "accessledger_delivery_responder_dead_letters", "hook", float64(dead))
	}
	check("after the restart", 1, 1)
	if n, err := s.Redeliver(bg, "hook", 0); err != nil || n != 1 {
		t.Fatalf("Redeliver = %d, %v", n, err)
	}
	check("after the redelivery", 2, 0)
}
