package respond

import (
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/go-json-experiment/json"

	"github.com/accessledger/accessledger/event"
)

// TestSeqNotReusedAfterRestart: a record queued by a delivery's outcome
// (finish) and still pending at a stop keeps its number: the first
// record after the restart takes a new one instead of overwriting it,
// which lost the delivered leaf.
func TestSeqNotReusedAfterRestart(t *testing.T) {
	l := newTestLedger(t)
	cfg := Config{Log: l, Dir: t.TempDir(), Delivery: fastDelivery(), BadgerOptions: smallBadger,
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": heldSender()}}
	s, err := Open(bg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	idx := uint64(1)
	resp := &event.Response{Action: event.ActionDelivered, Time: time.Now(), By: "hook", Responder: "hook", Message: "m1", Alert: &idx}
	// As finish queues a delivery's outcome.
	if err := s.db.Update(func(txn *badger.Txn) error { return s.queueRecord(txn, resp, "delivered\x00hook\x00m1") }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(bg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp2 := *resp
	resp2.Message = "m2"
	if err := s.Record(bg, &resp2); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, s.db, string(keyRecordPfx)); n != 2 {
		t.Errorf("%d pending records after a restart and a Record, want 2 (the one pending at the stop overwritten)", n)
	}
}

// TestSeqAboveStoredKeysAfterRestart: a transaction that took its number
// first but committed last saved a lower sequence than the numbers of
// the outbox messages and dead letters stored. After a restart, a new message and a new dead letter
// take new numbers: none is overwritten, and the counts kept in memory
// are those stored.
func TestSeqAboveStoredKeysAfterRestart(t *testing.T) {
	l := newTestLedger(t)
	d := fastDelivery()
	d.Schedule = []time.Duration{0, time.Hour}
	d.MaxQueued = 2
	cfg := Config{Log: l, Dir: t.TempDir(), Delivery: d, BadgerOptions: smallBadger,
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": heldSender()}}
	s, err := Open(bg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	low := s.nextSeq()
	rec := outboxRecord{Message: Message{ID: "old", Type: TypeAlertRaised, AlertIndex: 99, Time: time.Now()}, NextAt: time.Now()}
	v, err := json.Marshal(&rec)
	if err != nil {
		t.Fatal(err)
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		for _, k := range [][]byte{
			responderKey(keyOutboxPfx, "hook", s.nextSeq()),
			responderKey(keyDeadPfx, "hook", s.nextSeq()),
		} {
			if err := txn.Set(k, v); err != nil {
				return err
			}
		}
		return txn.Set(keySeq, u64(nil, low))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, _ = runService(t, cfg)
	// One more message fills the outbox; the next is dead-lettered.
	appendAlerts(t, l, testAlert("r1", "high", "a", 1), testAlert("r1", "high", "b", 2))
	waitFor(t, "2 queued, 2 dead letters", func() bool {
		st, err := s.Responders(bg)
		return err == nil && st[0].Queued == 2 && st[0].Dead == 2
	})
	for _, c := range []struct {
		prefix string
		want   int
	}{{"o/hook\x00", 2}, {"x/hook\x00", 2}} {
		if n := countKeys(t, s.db, c.prefix); n != c.want {
			t.Errorf("%d keys stored under %q, want %d (one overwritten)", n, c.prefix, c.want)
		}
	}
}

// storedSeq reads keySeq.
func storedSeq(t *testing.T, s *Service) uint64 {
	t.Helper()
	var n uint64
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		n, err = getUint64(txn, keySeq)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSeqSavedInCommitOrder: a transaction that took its number first
// but commits last saves the last number handed out, not its own: the
// sequence stored never goes back. It saved the sequence before its
// commit, and lowered it below the number of a record committed by
// another transaction in between.
func TestSeqSavedInCommitOrder(t *testing.T) {
	s, err := Open(bg, Config{Log: newTestLedger(t), Dir: t.TempDir(), BadgerOptions: smallBadger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first := s.db.NewTransaction(true)
	defer first.Discard()
	if err := s.queueRecord(first, testResponse(1), ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(bg, testResponse(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.commit(first); err != nil {
		t.Fatal(err)
	}
	if got := storedSeq(t, s); got != 2 {
		t.Errorf("stored sequence %d after records 1 and 2 committed in the order 2, 1; want 2", got)
	}
}
