package respond

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/go-json-experiment/json"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// pendingRecord is a response leaf waiting to be appended to the log.
type pendingRecord struct {
	Response event.Response `json:"response"`
	DedupKey string         `json:"dedup_key"`
}

// queueRecord stores a response to be appended to the log, in txn,
// which commits through update (it takes a sequence number). The
// recorder appends it after the commit; its dedup key makes an append
// repeated after a crash a no-op. An empty dedup key gets a random one.
func (s *Service) queueRecord(txn *badger.Txn, r *event.Response, dedup string) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("respond: recording %s: %w", r.Action, err)
	}
	if dedup == "" {
		var b [16]byte
		rand.Read(b[:])
		dedup = "rec\x00" + hex.EncodeToString(b[:])
	}
	v, err := json.Marshal(&pendingRecord{Response: *r, DedupKey: dedup})
	if err != nil {
		return err
	}
	return txn.Set(indexKey(keyRecordPfx, s.nextSeq()), v)
}

// Record durably queues response leaves for the log (the decision store
// records its decisions through it), all of rs in one transaction or
// none. It returns once they are stored; the recorder appends them to
// the log shortly after.
func (s *Service) Record(ctx context.Context, rs ...*event.Response) error {
	if len(rs) == 0 {
		return nil
	}
	err := s.update(func(txn *badger.Txn) error {
		for _, r := range rs {
			dedup := ""
			if r.Decision != nil {
				dedup = fmt.Sprintf("%s\x00%d", r.Action, r.Decision.ID)
			}
			if err := s.queueRecord(txn, r, dedup); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.wakeRecorder()
	return nil
}

func (s *Service) wakeRecorder() {
	select {
	case s.records <- struct{}{}:
	default:
	}
}

// recorder appends the queued response leaves to the log, oldest first,
// and removes each once it is durable in the log.
func (s *Service) recorder(ctx context.Context) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	// from is where the next scan starts: past the records appended
	// last. Appended records are deleted, and a scan from the start of
	// the queue would step over every deletion not yet compacted away,
	// so that each wake-up would cost more the longer the server runs.
	// A record can commit after one with a later sequence number (the
	// numbers are taken before the commits), so the tick scans from the
	// start, which finds it within 5 s.
	var from []byte
	for {
		n, next, err := s.appendRecords(ctx, from)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ledger.ErrFailed), errors.Is(err, ledger.ErrClosed):
			return nil // the log stopped; the records wait for a restart
		case err != nil:
			s.log.Warn("recording responses in the log failed; retrying", "err", err)
		}
		if err == nil && next != nil {
			from = next
		}
		if n > 0 && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.records:
		case <-t.C:
			from = nil
		}
	}
}

// appendRecords appends up to 500 queued records from key from on (nil:
// the start of the queue). It returns how many, and the key just past the
// last one (nil if there was none).
func (s *Service) appendRecords(ctx context.Context, from []byte) (int, []byte, error) {
	var keys [][]byte
	var entries []ledger.Entry
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: keyRecordPfx, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		now := s.now()
		if from == nil {
			from = keyRecordPfx
		}
		for it.Seek(from); it.Valid() && len(entries) < 500; it.Next() {
			var pr pendingRecord
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &pr) }); err != nil {
				return fmt.Errorf("respond: queued record %x: %w", it.Item().Key(), err)
			}
			leaf, err := event.EncodeResponseLeaf(&pr.Response, now)
			if err != nil {
				return err
			}
			key := append(slices.Clone(respNamespace), pr.DedupKey...)
			entries = append(entries, ledger.Entry{Data: leaf, DedupKey: key, Fingerprint: sha256.Sum256(key)})
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil || len(entries) == 0 {
		return 0, nil, err
	}
	if _, err := s.cfg.Log.Append(ctx, entries...); err != nil {
		return 0, nil, err
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	s.metrics.recorded.Add(float64(len(entries)))
	// The smallest key after the last one: the key with a zero byte
	// appended.
	return len(entries), append(keys[len(keys)-1], 0), err
}
