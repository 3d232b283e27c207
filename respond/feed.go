package respond

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// Errors of the lifecycle calls.
var (
	// ErrNoAlert means there is no alert at that index.
	ErrNoAlert = errors.New("respond: no alert at that index")
	// ErrConflict means the alert's status does not allow the action
	// (acknowledging or resolving a resolved alert).
	ErrConflict = errors.New("respond: the alert's status does not allow this")
	// ErrNotFound means the responder or dead letter does not exist.
	ErrNotFound = errors.New("respond: not found")
	// ErrAheadOfLog means the responders' state covers more of the log
	// than the log holds (Open refuses it).
	ErrAheadOfLog = errors.New("respond: the responders' state is ahead of the log")
)

// FeedAlert is an alert of the feed: where it is in the log, the alert,
// and its status as the responders' state knows it.
type FeedAlert struct {
	Index      uint64
	LeafHash   []byte
	ReceivedAt time.Time
	Alert      *event.Alert
	Status     string
}

// AlertsAfter returns up to limit alerts after the given log index, in
// log order; after < 0 starts at the beginning. An alert appears once the
// service has processed it.
func (s *Service) AlertsAfter(ctx context.Context, after int64, limit int) ([]FeedAlert, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []FeedAlert
	start := uint64(0)
	if after >= 0 {
		start = uint64(after) + 1
	}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: keyAlertPfx, PrefetchValues: true, PrefetchSize: min(limit, 100)})
		defer it.Close()
		for it.Seek(indexKey(keyAlertPfx, start)); it.Valid() && len(out) < limit; it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			index := binary.BigEndian.Uint64(it.Item().Key()[len(keyAlertPfx):])
			fa, err := decodeStored(index, it.Item())
			if err != nil {
				return err
			}
			st, err := getStatus(txn, index)
			if err != nil {
				return err
			}
			fa.Status = statusName(st)
			out = append(out, *fa)
		}
		return nil
	})
	return out, err
}

func decodeStored(index uint64, item *badger.Item) (*FeedAlert, error) {
	var fa *FeedAlert
	err := item.Value(func(v []byte) error {
		if len(v) < sha256.Size {
			return fmt.Errorf("respond: alert %d: stored record too short", index)
		}
		l, a, err := event.DecodeAlertLeaf(v[sha256.Size:])
		if err != nil {
			return fmt.Errorf("respond: alert %d: %w", index, err)
		}
		fa = &FeedAlert{Index: index, LeafHash: slices.Clone(v[:sha256.Size]), ReceivedAt: l.ReceivedAt, Alert: a}
		return nil
	})
	return fa, err
}

// AlertsChanged returns a channel closed when alerts are added to the
// feed or change status; take it before reading, so that nothing added in
// between is missed.
func (s *Service) AlertsChanged() <-chan struct{} { return s.feed.wait() }

// storedAlert reads an alert the service has processed, nil if none.
func (s *Service) storedAlert(_ context.Context, txn *badger.Txn, index uint64) (*FeedAlert, error) {
	item, err := txn.Get(indexKey(keyAlertPfx, index))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeStored(index, item)
}

// Alert returns the alert at a log index with its status. It reads the
// log when the service has not processed that leaf yet; ErrNoAlert if the
// leaf is not an alert.
func (s *Service) Alert(ctx context.Context, index uint64) (*FeedAlert, error) {
	var fa *FeedAlert
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		if fa, err = s.storedAlert(ctx, txn, index); err != nil || fa == nil {
			return err
		}
		st, err := getStatus(txn, index)
		fa.Status = statusName(st)
		return err
	})
	if err != nil || fa != nil {
		return fa, err
	}
	data, leafHash, err := s.cfg.Log.Entry(ctx, index)
	if errors.Is(err, ledger.ErrNotFound) || errors.Is(err, ledger.ErrInvalidArgument) {
		return nil, ErrNoAlert
	}
	if err != nil {
		return nil, err
	}
	if event.LeafKind(data) != event.KindAlert {
		return nil, ErrNoAlert
	}
	l, a, err := event.DecodeAlertLeaf(data)
	if err != nil {
		return nil, fmt.Errorf("respond: alert %d: %w", index, err)
	}
	return &FeedAlert{Index: index, LeafHash: leafHash, ReceivedAt: l.ReceivedAt, Alert: a, Status: StatusOpen}, nil
}

// Recorded is a response leaf appended to the log.
type Recorded struct {
	Index    uint64
	LeafHash []byte
	Response *event.Response
}

// Respond records an acknowledgement (event.ActionAcknowledged) or a
// resolution (event.ActionResolved) of the alert at index, by the named
// API key, with a note, as a response leaf. It fails with ErrNoAlert if
// there is no alert there and ErrConflict if the alert is already
// resolved (or already acknowledged, for an acknowledgement), counting
// what earlier calls recorded and the service has not processed yet: of
// calls racing on one alert, one succeeds (ten concurrent
// acknowledgements appended seven leaves).
func (s *Service) Respond(ctx context.Context, index uint64, action, by, note string) (*Recorded, error) {
	if action != event.ActionAcknowledged && action != event.ActionResolved {
		return nil, fmt.Errorf("respond: action %q is not acknowledged or resolved", action)
	}
	s.respondMu.Lock()
	defer s.respondMu.Unlock()
	// The cursor first: the status read after it has every leaf below it.
	cursor := s.cursor.Load()
	fa, err := s.Alert(ctx, index)
	if err != nil {
		return nil, err
	}
	status := statusByte(fa.Status)
	for alert, rs := range s.responded {
		if rs.leaf < cursor {
			delete(s.responded, alert) // processed: s.Alert has it
		}
	}
	if rs, ok := s.responded[index]; ok {
		status = max(status, rs.status)
	}
	if status >= statusByte(action) {
		return nil, fmt.Errorf("%w: alert %d is already %s", ErrConflict, index, statusName(status))
	}
	idx := index
	r := &event.Response{Action: action, Time: s.now(), Alert: &idx, DedupKey: fa.Alert.DedupKey, By: by, Note: note}
	leaf, err := event.EncodeResponseLeaf(r, s.now())
	if err != nil {
		return nil, err
	}
	res, err := s.cfg.Log.Append(ctx, ledger.Entry{Data: leaf})
	if err != nil {
		return nil, err
	}
	if s.responded == nil {
		s.responded = make(map[uint64]recordedStatus)
	}
	s.responded[index] = recordedStatus{status: statusByte(action), leaf: res[0].Index}
	return &Recorded{Index: res[0].Index, LeafHash: res[0].LeafHash[:], Response: r}, nil
}

// recordedStatus is a status Respond recorded, and the leaf holding it.
type recordedStatus struct {
	status byte
	leaf   uint64
}

// Incident is an alert and everything recorded about it.
type Incident struct {
	Alert FeedAlert
	// Responses are the log indexes of the response leaves about the
	// alert, in log order, as far as the service has processed the log.
	Responses []uint64
	// Cursor is how far the service has processed the log.
	Cursor uint64
}

// Incident returns the alert at index and the response leaves about it.
func (s *Service) Incident(ctx context.Context, index uint64) (*Incident, error) {
	fa, err := s.Alert(ctx, index)
	if err != nil {
		return nil, err
	}
	inc := &Incident{Alert: *fa, Responses: []uint64{}, Cursor: s.cursor.Load()}
	prefix := u64(slices.Clone(keyLinkPfx), index)
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			inc.Responses = append(inc.Responses, binary.BigEndian.Uint64(it.Item().Key()[len(prefix):]))
		}
		return nil
	})
	return inc, err
}
