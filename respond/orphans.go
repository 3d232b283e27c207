package respond

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/go-json-experiment/json"
)

// Orphans. The outbox, the dead letters, the order keys and the
// throttling state are stored by responder name. A responder renamed or removed from the
// configuration leaves its entries behind: nothing delivers them, and
// nothing may delete them, since renaming the responder back must
// deliver them ("neither a crash nor a SIGKILL loses one"). Open finds
// them, logs a warning naming each such responder, and Responders and the
// metrics report them; they stay on disk untouched, and the throttling
// state of a responder no longer configured is left out of the flusher's
// walk.

// orphan is what a responder no longer configured left stored.
type orphan struct {
	name   string
	queued int // outbox messages
	dead   int // dead letters
	held   int // alerts held back by throttling, owed a counted notification
}

// owes reports whether the responder left anything to deliver.
func (o *orphan) owes() bool { return o.queued > 0 || o.dead > 0 || o.held > 0 }

// findOrphans counts, by responder name, the outbox messages, dead
// letters and alerts held back by throttling of responders not in the
// configuration, in name order.
func (s *Service) findOrphans(txn *badger.Txn) ([]*orphan, error) {
	byName := make(map[string]*orphan)
	get := func(name string) *orphan {
		o := byName[name]
		if o == nil {
			o = &orphan{name: name}
			byName[name] = o
		}
		return o
	}
	if err := s.countOrphaned(txn, keyOutboxPfx, func(name string, _ *badger.Item) error { get(name).queued++; return nil }); err != nil {
		return nil, err
	}
	if err := s.countOrphaned(txn, keyDeadPfx, func(name string, _ *badger.Item) error { get(name).dead++; return nil }); err != nil {
		return nil, err
	}
	err := s.countOrphaned(txn, keyThrottlePf, func(name string, item *badger.Item) error {
		var st throttleState
		if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &st) }); err != nil {
			return fmt.Errorf("respond: throttling state %q: %w", item.Key(), err)
		}
		get(name).held += st.Held
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*orphan, 0, len(byName))
	for _, o := range byName {
		if o.owes() {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b *orphan) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// countOrphaned calls count for each key <prefix><responder>\x00… whose
// responder is not configured, skipping over the keys of those that are.
func (s *Service) countOrphaned(txn *badger.Txn, prefix []byte, count func(name string, item *badger.Item) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); {
		rest := it.Item().Key()[len(prefix):]
		end := bytes.IndexByte(rest, 0)
		if end < 0 {
			it.Next() // not a responder's key
			continue
		}
		name := string(rest[:end])
		if s.byName[name] != nil {
			// Past this responder's keys: <prefix><name>\x01 sorts after
			// every <prefix><name>\x00….
			it.Seek(append(append(slices.Clone(prefix), name...), 1))
			continue
		}
		if err := count(name, it.Item()); err != nil {
			return err
		}
		it.Next()
	}
	return nil
}

// reportOrphans logs what responders no longer configured left stored,
// keeps it for Responders and the metrics, and drops their throttling
// state from memory (it stays on disk).
func (s *Service) reportOrphans(orphans []*orphan) {
	for k, st := range s.throttle {
		if s.byName[st.Responder] == nil {
			delete(s.throttle, k)
		}
	}
	for _, o := range orphans {
		s.log.Warn("a responder no longer in the configuration left messages undelivered; they are kept: "+
			"configure a responder of this name again to deliver them (see Responders in the README)",
			"responder", o.name, "queued", o.queued, "dead_letters", o.dead, "throttled_alerts", o.held)
	}
	s.orphans.Store(&orphans)
}

// orphanList returns what reportOrphans kept (none before Open loaded it).
func (s *Service) orphanList() []*orphan {
	if p := s.orphans.Load(); p != nil {
		return *p
	}
	return nil
}
