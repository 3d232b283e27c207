package respond

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/go-json-experiment/json"
)

// ResponderStatus is a responder's delivery state, for the admin API and
// GET /v1/responders.
type ResponderStatus struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Filter   Filter `json:"filter"`
	Queued   int    `json:"queued"`
	Dead     int    `json:"dead_letters"`
	Disabled bool   `json:"disabled"`
	// DisabledReason says why (the endpoint answered 410 Gone).
	DisabledReason string `json:"disabled_reason,omitempty"`
	// Orphaned marks a responder no longer in the configuration (renamed
	// or removed) whose queued messages, dead letters or alerts held back
	// by throttling (Throttled) are still stored, as found at start:
	// nothing delivers them until a responder of that name is configured
	// again. Its Type and Filter are unknown, empty.
	Orphaned  bool `json:"orphaned,omitempty"`
	Throttled int  `json:"throttled_alerts,omitempty"`
	// MaxQueued is the bound of the outbox (delivery.max_queued); 0 for
	// an orphaned responder. QueueFull counts the messages put straight
	// into the dead-letter list since start because the outbox held that
	// many.
	MaxQueued int   `json:"max_queued,omitempty"`
	QueueFull int64 `json:"dead_lettered_queue_full"`
	// MaxDeadLetters is the bound of the dead-letter list
	// (delivery.max_dead_letters); 0 for an orphaned responder.
	// DeadDropped counts the oldest dead letters deleted since start
	// because the list held that many.
	MaxDeadLetters int   `json:"max_dead_letters,omitempty"`
	DeadDropped    int64 `json:"dead_letters_dropped"`
}

// Responders returns every responder's state, then those of the
// responders no longer configured that left messages (Orphaned).
func (s *Service) Responders(ctx context.Context) ([]ResponderStatus, error) {
	out := make([]ResponderStatus, 0, len(s.responders))
	err := s.db.View(func(txn *badger.Txn) error {
		for _, r := range s.responders {
			st := ResponderStatus{Name: r.cfg.Name, Type: r.cfg.Type, Filter: r.cfg.Filter,
				Queued: int(r.queued.Load()), Dead: int(r.dead.Load()), Disabled: r.disabled.Load(),
				MaxQueued: s.cfg.Delivery.MaxQueued, QueueFull: r.fullTotal.Load(),
				MaxDeadLetters: s.cfg.Delivery.MaxDeadLetters, DeadDropped: r.droppedTotal.Load()}
			if item, err := txn.Get(append(slices.Clone(keyDisabled), r.cfg.Name...)); err == nil {
				v, _ := item.ValueCopy(nil)
				st.DisabledReason = string(v)
			}
			out = append(out, st)
		}
		return ctx.Err()
	})
	for _, o := range s.orphanList() {
		out = append(out, ResponderStatus{Name: o.name, Queued: o.queued, Dead: o.dead, Throttled: o.held, Orphaned: true})
	}
	return out, err
}

// DeadLetter is a message given up on.
type DeadLetter struct {
	ID          uint64    `json:"id"` // its number in the dead-letter list
	Message     Message   `json:"message"`
	Attempts    int       `json:"attempts"`
	EnqueuedAt  time.Time `json:"enqueued_at"`
	LastAttempt time.Time `json:"last_attempt"`
	LastStatus  int       `json:"last_status,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
}

// DeadLetters lists a responder's dead letters, oldest first (at most
// limit).
func (s *Service) DeadLetters(ctx context.Context, responder string, limit int) ([]DeadLetter, error) {
	if s.byName[responder] == nil {
		return nil, fmt.Errorf("%w: no responder named %q", ErrNotFound, responder)
	}
	prefix := responderPrefix(keyDeadPfx, responder)
	out := []DeadLetter{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid() && len(out) < limit; it.Next() {
			var rec outboxRecord
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &rec) }); err != nil {
				return err
			}
			out = append(out, DeadLetter{ID: binary.BigEndian.Uint64(it.Item().Key()[len(prefix):]), Message: rec.Message,
				Attempts: rec.Attempts, EnqueuedAt: rec.EnqueuedAt, LastAttempt: rec.NextAt, LastStatus: rec.LastStatus, LastError: rec.LastError})
		}
		return ctx.Err()
	})
	return out, err
}

// Redeliver moves dead letters of a responder back into its outbox for
// delivery now, with fresh attempts: the one numbered id, or all of them
// (up to maxRedeliver in one call) when id is 0. It returns how many it
// moved. Their first attempt does not wait for the schedule's first
// delay, as a new message's does: an operator asked for it.
func (s *Service) Redeliver(ctx context.Context, responder string, id uint64) (int, error) {
	r := s.byName[responder]
	if r == nil {
		return 0, fmt.Errorf("%w: no responder named %q", ErrNotFound, responder)
	}
	if id != 0 {
		return s.redeliver(ctx, r, [][]byte{responderKey(keyDeadPfx, responder, id)}, true)
	}
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: responderPrefix(keyDeadPfx, responder)})
		defer it.Close()
		for it.Rewind(); it.Valid() && len(keys) < maxRedeliver; it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// Each letter moves in one transaction (outbox record set, dead
	// letter deleted), but not all of them in one: a transaction holds a
	// few thousand writes.
	total := 0
	for len(keys) > 0 {
		n := min(len(keys), redeliverPerTxn)
		moved, err := s.redeliver(ctx, r, keys[:n], false)
		total += moved
		if err != nil {
			return total, err
		}
		keys = keys[n:]
	}
	return total, ctx.Err()
}

const (
	maxRedeliver    = 10000 // dead letters one Redeliver(all) moves
	redeliverPerTxn = 1000
)

// redeliver moves the dead letters under keys into r's outbox in one
// transaction. A key that is gone (moved by a concurrent call) is an
// error only if must.
func (s *Service) redeliver(ctx context.Context, r *responder, keys [][]byte, must bool) (int, error) {
	now := s.now()
	var moved []uint64
	r.deadMu.Lock()
	defer r.deadMu.Unlock()
	err := s.update(func(txn *badger.Txn) error {
		moved = moved[:0]
		for _, k := range keys {
			item, err := txn.Get(k)
			if errors.Is(err, badger.ErrKeyNotFound) {
				if must {
					return fmt.Errorf("%w: responder %q has no dead letter %d", ErrNotFound, r.cfg.Name, binary.BigEndian.Uint64(k[len(k)-8:]))
				}
				continue
			}
			if err != nil {
				return err
			}
			var rec outboxRecord
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &rec) }); err != nil {
				return err
			}
			rec.Attempts, rec.NextAt, rec.LastError, rec.LastStatus = 0, now, "", 0
			rec.Redelivered++
			v, err := json.Marshal(&rec)
			if err != nil {
				return err
			}
			seq := s.nextSeq()
			if err := txn.Set(responderKey(keyOutboxPfx, r.cfg.Name, seq), v); err != nil {
				return err
			}
			if okey := orderKey(r.cfg.Name, &rec.Message, seq); okey != nil {
				if err := txn.Set(okey, nil); err != nil {
					return err
				}
			}
			if err := txn.Delete(k); err != nil {
				return err
			}
			moved = append(moved, seq)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	r.dead.Add(-int64(len(moved)))
	r.queued.Add(int64(len(moved)))
	for _, seq := range moved {
		r.due.pushLater(seq, now)
	}
	r.due.wake()
	return len(moved), ctx.Err()
}

// Enable resumes deliveries to a responder disabled after its endpoint
// answered 410 Gone.
func (s *Service) Enable(ctx context.Context, responder string) error {
	r := s.byName[responder]
	if r == nil {
		return fmt.Errorf("%w: no responder named %q", ErrNotFound, responder)
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Delete(append(slices.Clone(keyDisabled), responder...))
	})
	if err != nil {
		return err
	}
	r.disabled.Store(false)
	r.due.wake()
	s.log.Info("responder enabled again", "responder", responder)
	return ctx.Err()
}
