package respond

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"

	"github.com/accessledger/accessledger/internal/badgerutil"
)

// Keys of the respond database. Every key starts with one letter and a
// slash; values are small.
var (
	keyCursor     = []byte("c")        // next leaf to process
	keyAlertPfx   = []byte("a/")       // a/<index> → leaf hash ‖ alert leaf
	keyStatusPfx  = []byte("s/")       // s/<index> → status byte
	keyLinkPfx    = []byte("r/")       // r/<alert>/<response index> → action
	keyOutboxPfx  = []byte("o/")       // o/<responder>\x00<seq> → outboxRecord
	keyDeadPfx    = []byte("x/")       // x/<responder>\x00<seq> → outboxRecord
	keyOrderPfx   = []byte("q/")       // q/<responder>\x00<alert><rank><seq> → nothing: an alert's messages in the outbox, in delivery order
	keyThrottlePf = []byte("t/")       // t/<responder>\x00<group> → throttleState
	keyDisabled   = []byte("g/")       // g/<responder> → reason
	keyRecordPfx  = []byte("L/")       // L/<seq> → pendingRecord (response leaves to append)
	keyDayPfx     = []byte("day/")     // day/<yyyy-mm-dd> → dayStats
	keyDayFailPfx = []byte("dayf/")    // dayf/<yyyy-mm-dd> → failed delivery attempts
	keySeq        = []byte("seq")      // last sequence number handed out
	keyDecisions  = []byte("d/")       // the decision store's prefix
	respNamespace = []byte("resp\x00") // the dedup keys of response leaves in the log
)

// Alert statuses, derived from the response leaves in the log.
const (
	StatusOpen         = "open"
	StatusAcknowledged = "acknowledged"
	StatusResolved     = "resolved"
)

func statusByte(s string) byte {
	switch s {
	case StatusAcknowledged:
		return 1
	case StatusResolved:
		return 2
	}
	return 0
}

func statusName(b byte) string {
	switch b {
	case 1:
		return StatusAcknowledged
	case 2:
		return StatusResolved
	}
	return StatusOpen
}

func u64(b []byte, n uint64) []byte { return binary.BigEndian.AppendUint64(b, n) }

func indexKey(prefix []byte, index uint64) []byte {
	return u64(append(make([]byte, 0, len(prefix)+8), prefix...), index)
}

func linkKey(alert, response uint64) []byte {
	return u64(u64(append([]byte(nil), keyLinkPfx...), alert), response)
}

// responderKey is <prefix><responder>\x00<seq>.
func responderKey(prefix []byte, responder string, seq uint64) []byte {
	b := append(append(append([]byte(nil), prefix...), responder...), 0)
	return u64(b, seq)
}

func responderPrefix(prefix []byte, responder string) []byte {
	return append(append(append([]byte(nil), prefix...), responder...), 0)
}

// openDB opens (or creates) the respond database. Unlike the detector's
// state it is not rebuilt from the log when it is broken: it holds
// deliveries still owed and the bouncers' positions, and replaying the
// log would notify every responder of every past alert again.
func openDB(dir string, log *slog.Logger, adjust func(badger.Options) badger.Options) (*badger.DB, error) {
	opts := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithSyncWrites(true).
		WithNumVersionsToKeep(1).
		// Small: the responders write little (a cursor a second, alerts
		// and their messages), and Badger's memtables and caches live on
		// the Go heap, which the server's soft memory limit bounds.
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueThreshold(1 << 10)
	if adjust != nil {
		opts = adjust(opts).WithSyncWrites(true)
	}
	if err := badgerutil.RemoveTornFiles(dir, log); err != nil {
		return nil, err
	}
	db, err := badgerutil.Open("respond", opts)
	if err != nil {
		return nil, fmt.Errorf("opening the responders' state %s: %w (it holds deliveries still owed and the bouncers' positions: restore it from a backup, or move it aside to start afresh, which notifies the responders of every alert in the log again)", dir, err)
	}
	return db, nil
}

// getUint64 reads a big-endian counter, 0 if absent.
func getUint64(txn *badger.Txn, key []byte) (uint64, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("respond: %q holds %d bytes, want 8", key, len(v))
		}
		n = binary.BigEndian.Uint64(v)
		return nil
	})
	return n, err
}
