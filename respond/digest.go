package respond

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// Digest appends the digest of the UTC day that contains day to the log,
// as a response leaf of action digest, and returns it. The responders
// with digest: true get it once the service processes that leaf. A day's
// digest is recorded once: running it again returns the one in the log.
// The counts are those of the leaves processed so far; the open and
// acknowledged alerts are those of now, not of the day's end (the status
// history is not kept). by names who asked
// for it (an admin key; "" for the server's own schedule).
func (s *Service) Digest(ctx context.Context, day time.Time, by string) (*Recorded, error) {
	if by == "" {
		by = event.AdminByServer
	}
	start := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
	d := &event.Digest{Start: start, End: start.Add(24 * time.Hour)}
	err := s.db.View(func(txn *badger.Txn) error {
		st, err := readDayStats(txn, start.Format(time.DateOnly))
		if err != nil {
			return err
		}
		d.Events, d.Alerts = st.Events, st.Alerts
		d.AlertsByRule, d.AlertsByLevel = st.AlertsByRule, st.AlertsByLevel
		d.DeadLettered = st.DeadLettered
		if d.DeliveryFailures, err = dayFailures(txn, start.Format(time.DateOnly)); err != nil {
			return err
		}
		open, acked, err := countOpen(ctx, txn)
		d.OpenAlerts, d.Acknowledged = open, acked
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("respond: digest of %s: %w", start.Format(time.DateOnly), err)
	}
	r := &event.Response{Action: event.ActionDigest, Time: s.now(), By: by, Digest: d}
	leaf, err := event.EncodeResponseLeaf(r, s.now())
	if err != nil {
		return nil, err
	}
	key := append(slices.Clone(respNamespace), "digest\x00"+start.Format(time.DateOnly)...)
	res, err := s.cfg.Log.Append(ctx, ledger.Entry{Data: leaf, DedupKey: key, Fingerprint: sha256.Sum256(key)})
	if err != nil {
		return nil, err
	}
	if res[0].Duplicate {
		// Recorded before: answer the digest in the log.
		data, _, err := s.cfg.Log.Entry(ctx, res[0].Index)
		if err != nil {
			return nil, err
		}
		if _, r, err = event.DecodeResponseLeaf(data); err != nil {
			return nil, fmt.Errorf("respond: the digest at %d: %w", res[0].Index, err)
		}
	}
	return &Recorded{Index: res[0].Index, LeafHash: res[0].LeafHash[:], Response: r}, nil
}

// countOpen counts the alerts not resolved: open ones and acknowledged
// ones.
func countOpen(ctx context.Context, txn *badger.Txn) (open, acked uint64, err error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: keyAlertPfx})
	defer it.Close()
	statuses := txn.NewIterator(badger.IteratorOptions{Prefix: keyStatusPfx, PrefetchValues: true})
	defer statuses.Close()
	st := map[string]byte{}
	for statuses.Rewind(); statuses.Valid(); statuses.Next() {
		v, err := statuses.Item().ValueCopy(nil)
		if err != nil {
			return 0, 0, err
		}
		if len(v) == 1 {
			st[string(statuses.Item().Key()[len(keyStatusPfx):])] = v[0]
		}
	}
	for it.Rewind(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		switch st[string(it.Item().Key()[len(keyAlertPfx):])] {
		case 0:
			open++
		case 1:
			acked++
		}
	}
	return open, acked, nil
}
