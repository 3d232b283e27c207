package respond

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/go-json-experiment/json"

	"github.com/accessledger/accessledger/event"
)

// Bounds. A responder that is down, or disabled, for days while
// detection goes on would otherwise hold every alert raised meanwhile in
// its outbox, and then in its dead-letter list, without limit; and an
// attacker can raise many (from many addresses, against many accounts).
// So each responder's outbox holds at most delivery.max_queued messages:
// a message that would make it hold more goes straight to the
// dead-letter list (queueFull), given up for a full queue and recorded
// as such in the log like any other dead-lettering, without an attempt.
// The counts compared are kept in memory (responder.queued), counted at
// Open and changed after each commit.
//
// Delivery order. A message dead-lettered for a full queue never enters
// the outbox and has no order key, so it holds back none of its alert's
// later messages (heldBack finds nothing before them): they go on, as
// after any dead-lettering. The other way round, an acknowledgement or
// resolution of an alert whose alert.raised (or acknowledgement) is still
// in the outbox is queued behind it even when the outbox is full
// (behindQueued): given up, it would leave the receiver's incident open
// once the alert.raised is delivered, with nothing to close it. Only a
// person (an API key) acknowledges or resolves, once each per alert, so
// this admits at most two more messages per queued alert.

// behindQueued reports whether m, an acknowledgement or a resolution, has
// an earlier message of its alert in r's outbox, as txn sees it (the
// messages txn queued included).
func (s *Service) behindQueued(txn *badger.Txn, r *responder, m *Message) (bool, error) {
	rank := messageRank(m.Type)
	if m.Type == TypeDigest || rank == 0 {
		return false, nil
	}
	prefix := orderPrefix(r.cfg.Name, m.AlertIndex)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	// An order key is <prefix><rank><seq>: the earlier ranks come first.
	for it.Rewind(); it.Valid() && it.Item().Key()[len(prefix)] < rank; it.Next() {
		okey := it.Item().Key()
		_, err := txn.Get(responderKey(keyOutboxPfx, r.cfg.Name, binary.BigEndian.Uint64(okey[len(okey)-8:])))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return false, err
		}
	}
	return false, nil
}

// queueFull puts m straight into r's dead-letter list within txn, and
// records it in the log as given up, with no attempt, for a full queue.
// It is counted, logged and the recorder woken once txn commits
// (committedFull). The caller holds throttleMu.
func (s *Service) queueFull(txn *badger.Txn, r *responder, m *Message, now time.Time) error {
	rec := outboxRecord{Message: *m, NextAt: now, EnqueuedAt: now,
		LastError: fmt.Sprintf("queue full: %d messages wait for this responder (delivery.max_queued)", s.cfg.Delivery.MaxQueued)}
	v, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("respond: encoding message %s: %w", m.ID, err)
	}
	if err := txn.Set(responderKey(keyDeadPfx, r.cfg.Name, s.nextSeq()), v); err != nil {
		return err
	}
	resp, dedup := s.outcome(r, &rec, event.ActionDeadLettered, "")
	if err := s.queueRecord(txn, resp, dedup); err != nil {
		return err
	}
	r.stagedFull++
	r.stagedFullID = m.ID
	return nil
}

// committedFull counts the messages r's committed transaction
// dead-lettered for a full queue, and logs them, at most once a minute.
// The caller holds throttleMu.
func (s *Service) committedFull(r *responder) {
	n := r.stagedFull
	r.deadMu.Lock()
	r.dead.Add(int64(n))
	r.deadMu.Unlock()
	r.fullTotal.Add(int64(n))
	s.metrics.deadLettered.WithLabelValues(r.cfg.Name).Add(float64(n))
	s.metrics.queueFull.WithLabelValues(r.cfg.Name).Add(float64(n))
	if total, ok := r.fullLog.note(s.now(), n); ok {
		s.log.Error("the responder's outbox is full: new messages go straight to its dead-letter list, recorded in the log as given up; "+
			"see GET /v1/responders (delivery.max_queued)",
			"responder", r.cfg.Name, "max_queued", s.cfg.Delivery.MaxQueued, "dead_lettered", total, "last_message", r.stagedFullID)
	}
	r.stagedFull, r.stagedFullID = 0, ""
}

// logEveryInterval is the least time between two log lines of a kind
// about one responder's bounds.
const logEveryInterval = time.Minute

// logEvery lets a log line through at most once per logEveryInterval,
// counting the events of the lines it held back. Safe for concurrent
// use.
type logEvery struct {
	mu   sync.Mutex
	last time.Time
	n    int
}

// note counts n events at now. When a line is due it returns the events
// since the last line, these included, and true.
func (l *logEvery) note(now time.Time, n int) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n += n
	if d := now.Sub(l.last); !l.last.IsZero() && d >= 0 && d < logEveryInterval {
		return 0, false
	}
	total := l.n
	l.last, l.n = now, 0
	return total, true
}
