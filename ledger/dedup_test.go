package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// TestDedupRecords: an id answered as a duplicate from a stored record,
// in the 32-byte form and in the 72-byte form of earlier versions, gives
// the first entry's index and full leaf hash, and a different content
// under the same id is a conflict; a full Open checks both forms.
func TestDedupRecords(t *testing.T) {
	entry := func(i int, fp byte) Entry {
		return Entry{Data: entryData(i), DedupKey: fmt.Appendf(nil, "id-%d", i), Fingerprint: [32]byte{fp, byte(i)}}
	}
	l, cfg := newTestLedger(t)
	var want []Result
	for i := 0; i < 300; i += 100 {
		var entries []Entry
		for j := i; j < i+100; j++ {
			entries = append(entries, entry(j, 1))
		}
		res, err := l.Append(bg, entries...)
		if err != nil {
			t.Fatalf("Append() = %v", err)
		}
		want = append(want, res...)
	}
	closeLedger(t, l)
	// Entries 0-149 get records as earlier versions wrote them.
	editStore(t, cfg.Dir, func(txn *badger.Txn) error {
		for i := range 150 {
			e := entry(i, 1)
			old := binary.BigEndian.AppendUint64(nil, uint64(i))
			old = append(old, want[i].LeafHash[:]...)
			old = append(old, e.Fingerprint[:]...)
			if err := txn.Set(dedupKey(e.DedupKey), old); err != nil {
				return err
			}
		}
		return nil
	})
	l = openTestLedger(t, cfg) // a full Open checks every record
	for _, i := range []int{3, 149, 150, 299} {
		res, err := l.Append(bg, entry(i, 1))
		if err != nil || len(res) != 1 || !res[0].Duplicate || res[0].Index != uint64(i) || res[0].LeafHash != want[i].LeafHash {
			t.Fatalf("Append(entry %d again) = %+v, %v; want a duplicate of index %d, leaf hash %x", i, res, err, i, want[i].LeafHash)
		}
		if _, err := l.Append(bg, entry(i, 2)); !errors.Is(err, ErrIDConflict) {
			t.Fatalf("Append(entry %d's id, other content) = %v, want ErrIDConflict", i, err)
		}
	}
	if size, _ := l.Size(); size != 300 {
		t.Fatalf("Size() after duplicates = %d, want 300", size)
	}
}

// TestDedupLegacyFingerprint: an entry stored under a fingerprint an
// earlier version computed (an event with a coordinate of -0, which the
// canonical form now writes 0) is a duplicate of a resubmission carrying
// that fingerprint as LegacyFingerprint, not a conflict; a legacy
// fingerprint of other content still conflicts.
func TestDedupLegacyFingerprint(t *testing.T) {
	l, _ := newTestLedger(t)
	key := []byte("id-neg-zero")
	old := [32]byte{1}
	first, err := l.Append(bg, Entry{Data: entryData(0), DedupKey: key, Fingerprint: old})
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Append(bg, Entry{Data: entryData(1), DedupKey: key, Fingerprint: [32]byte{2}, LegacyFingerprint: &old})
	if err != nil || !res[0].Duplicate || res[0].Index != first[0].Index {
		t.Fatalf("Append(new fingerprint, the stored one as legacy) = %+v, %v; want a duplicate of %d", res, err, first[0].Index)
	}
	other := [32]byte{3}
	if _, err := l.Append(bg, Entry{Data: entryData(2), DedupKey: key, Fingerprint: [32]byte{2}, LegacyFingerprint: &other}); !errors.Is(err, ErrIDConflict) {
		t.Fatalf("Append(other content) = %v, want ErrIDConflict", err)
	}
}
