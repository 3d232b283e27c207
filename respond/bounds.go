package respond

import (
	"encoding/binary"
	"fmt"
	"slices"
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
// And each responder's dead-letter list holds at most
// delivery.max_dead_letters: past it, its oldest dead letters (lowest
// numbers) are deleted (trimDead), right after the commit that added
// the new ones; the log's dead_lettered leaves still record them. The
// counts compared are kept in memory (responder.queued and dead),
// counted at Open and changed with each commit, never by a scan.
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
// an earlier message of its alert in r's outbox: queued by the
// transaction being saved (stagedRanks), or stored. The stored ones are
// read in a transaction of their own, as heldBack reads them: read in the
// follower's, a delivery attempt's update of one of them would make that
// conflict, and it is done again. The caller holds throttleMu.
func (s *Service) behindQueued(r *responder, m *Message) (bool, error) {
	rank := messageRank(m.Type)
	if m.Type == TypeDigest || rank == 0 {
		return false, nil
	}
	if staged, ok := s.stagedRanks[stagedAlert{r, m.AlertIndex}]; ok && staged < rank {
		return true, nil
	}
	// An order key is <prefix><rank><seq>: the earlier ranks sort first.
	return s.inOutboxBefore(r, m.AlertIndex, append(orderPrefix(r.cfg.Name, m.AlertIndex), rank))
}

// stagedAlert is an alert with a message queued to a responder by the
// transaction being saved.
type stagedAlert struct {
	r     *responder
	alert uint64
}

// stageRank notes that m was queued to r by the transaction being saved,
// for behindQueued; commitThrottle and rollbackThrottle forget it. The
// caller holds throttleMu.
func (s *Service) stageRank(r *responder, m *Message) {
	if s.stagedRanks == nil {
		s.stagedRanks = make(map[stagedAlert]byte)
	}
	k := stagedAlert{r, m.AlertIndex}
	if staged, ok := s.stagedRanks[k]; !ok || messageRank(m.Type) < staged {
		s.stagedRanks[k] = messageRank(m.Type)
	}
}

// queueFull puts m straight into r's dead-letter list within txn, and
// records it in the log as given up, with no attempt, for a full queue.
// It is counted, logged and the recorder woken once txn commits
// (committedFull). The caller holds throttleMu; the first call for r in
// a transaction takes r.deadMu, which commitThrottle or rollbackThrottle
// releases.
func (s *Service) queueFull(txn *badger.Txn, r *responder, m *Message, now time.Time) error {
	rec := outboxRecord{Message: *m, NextAt: now, EnqueuedAt: now,
		LastError: fmt.Sprintf("queue full: %d messages wait for this responder (delivery.max_queued)", s.cfg.Delivery.MaxQueued)}
	v, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("respond: encoding message %s: %w", m.ID, err)
	}
	seq := s.nextSeq()
	if r.stagedFull == 0 {
		r.deadMu.Lock()
		r.stagedFullFrom = seq
	}
	r.stagedFull++
	r.stagedFullID = m.ID
	if err := txn.Set(responderKey(keyDeadPfx, r.cfg.Name, seq), v); err != nil {
		return err
	}
	resp, dedup := s.outcome(r, &rec, event.ActionDeadLettered, "")
	return s.queueRecord(txn, resp, dedup)
}

// committedFull counts the messages r's committed transaction
// dead-lettered for a full queue, releases r.deadMu, and logs them, at
// most once a minute. The caller holds throttleMu; it trims r's
// dead-letter list next.
func (s *Service) committedFull(r *responder) {
	n := r.stagedFull
	r.dead.Add(int64(n))
	r.deadFrom = min(r.deadFrom, r.stagedFullFrom)
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

// trimPerTxn bounds the dead letters one transaction of trimDead
// deletes.
const trimPerTxn = 1000

// trimDead deletes r's oldest dead letters while it has more than
// delivery.max_dead_letters. It holds r.deadMu, as every transaction
// that adds or removes dead letters does from before it starts until
// r.dead and r.deadFrom say what it did: so the letters it sees are
// those counted, and it seeks from deadFrom rather than from the start
// of the list, where the letters it deleted before lie until compacted.
func (s *Service) trimDead(r *responder) error {
	r.deadMu.Lock()
	defer r.deadMu.Unlock()
	bound := int64(s.cfg.Delivery.MaxDeadLetters)
	prefix := responderPrefix(keyDeadPfx, r.cfg.Name)
	for r.dead.Load() > bound {
		n := min(r.dead.Load()-bound, trimPerTxn)
		from := r.deadFrom
		var keys [][]byte
		err := s.db.Update(func(txn *badger.Txn) error {
			keys = keys[:0]
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			for it.Seek(u64(slices.Clone(prefix), from)); it.Valid() && int64(len(keys)) < n; it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			it.Close()
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("respond: deleting the oldest dead letters of %s: %w", r.cfg.Name, err)
		}
		if len(keys) > 0 {
			r.deadFrom = binary.BigEndian.Uint64(keys[len(keys)-1][len(prefix):]) + 1
			r.dead.Add(-int64(len(keys)))
			r.droppedTotal.Add(int64(len(keys)))
			s.metrics.deadDropped.WithLabelValues(r.cfg.Name).Add(float64(len(keys)))
			if total, ok := r.dropLog.note(s.now(), len(keys)); ok {
				s.log.Warn("the responder's dead-letter list is full: its oldest dead letters were deleted; "+
					"the log's dead_lettered leaves still record them (delivery.max_dead_letters)",
					"responder", r.cfg.Name, "max_dead_letters", bound, "deleted", total)
			}
		}
		if int64(len(keys)) < n {
			// Fewer stored from deadFrom than counted: a broken
			// invariant. Look from the start of the list once; if
			// there are fewer still, the count was wrong.
			if from > 0 {
				r.deadFrom = 0
				continue
			}
			r.dead.Add(-(n - int64(len(keys))))
			return fmt.Errorf("respond: %s's dead letters were counted %d more than stored", r.cfg.Name, n-int64(len(keys)))
		}
	}
	return nil
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
