package witness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// CosignedFile is the file, in the witness's storage directory, that
// records outside Badger how many states the witness had stored when it
// last answered a submission.
//
// Badger cannot tell a torn write at the end of its write-ahead log from a
// damaged byte in the middle of it: it keeps what precedes the first bad
// record and drops the rest, saying nothing; and a MANIFEST cut short makes
// it delete the newest tables, which the MANIFEST no longer lists. A
// witness on such storage opens with older states of its logs, and would
// cosign checkpoints inconsistent with ones it cosigned: forks. So each
// state stored carries a sequence number (Seq, counting the states stored
// for all logs) and the digest of every log's state once it was stored;
// Open refuses storage whose highest Seq is below this record (it lost
// the states stored last) or whose states do not add up to the digest
// stored with the highest (it lost or rolled back others).
//
// The committer rewrites the record in place and syncs it after each
// synced Badger commit that stored a state, and before it answers any
// submission of that commit. A crash can leave the record behind the
// storage (the states stored since were not answered), never ahead of it.
const CosignedFile = "COSIGNED"

// ErrCorrupt means the witness's storage lost states it had stored (and
// cosigned), or CosignedFile is damaged: Open refuses it, since the
// witness would cosign forks of checkpoints it cosigned before.
var ErrCorrupt = errors.New("witness: storage lost cosigned state")

// ErrEarlierVersion means an earlier version of the witness, which keeps
// no CosignedFile, ran on the storage after this one and stored states
// there: the storage no longer adds up to the record, and cannot be told
// from storage that lost states. Open refuses it until the operator
// accepts it (AcceptFile).
var ErrEarlierVersion = errors.New("witness: an earlier version stored states after this one; storage not checked")

// AcceptFile is the file, in the witness's storage directory, by which
// the operator accepts the storage as it is, unchecked: Open then numbers
// its states anew, records them in CosignedFile and removes AcceptFile.
// It is for storage that an earlier version wrote to (ErrEarlierVersion),
// or whose CosignedFile alone was damaged, never for storage that lost
// states: it would cosign forks.
const AcceptFile = "COSIGNED.accept"

// cosignedRecordSize is the record's length: a magic, the Seq and a
// CRC-32C of both. It fits in one disk sector, so a write of it in place
// is not torn.
const cosignedRecordSize = 16

var cosignedMagic = [4]byte{'A', 'L', 'W', 'C'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// cosignedRecord is CosignedFile, open for the committer's writes. The
// committer owns it once the witness is open.
type cosignedRecord struct {
	f    *os.File
	path string
	seq  uint64 // the Seq the file holds
}

func encodeCosigned(seq uint64) []byte {
	b := make([]byte, cosignedRecordSize)
	copy(b, cosignedMagic[:])
	binary.BigEndian.PutUint64(b[4:12], seq)
	binary.BigEndian.PutUint32(b[12:], crc32.Checksum(b[:12], castagnoli))
	return b
}

func decodeCosigned(b []byte) (uint64, error) {
	if len(b) != cosignedRecordSize {
		return 0, fmt.Errorf("%d bytes, want %d", len(b), cosignedRecordSize)
	}
	if [4]byte(b[:4]) != cosignedMagic {
		return 0, errors.New("not a record of the states stored")
	}
	if crc32.Checksum(b[:12], castagnoli) != binary.BigEndian.Uint32(b[12:]) {
		return 0, errors.New("checksum mismatch")
	}
	return binary.BigEndian.Uint64(b[4:12]), nil
}

// readCosigned returns the Seq that CosignedFile in dir records, and
// whether the file exists. A file that does not hold a valid record is
// ErrCorrupt: nothing writes it but the witness, whole.
func readCosigned(dir string) (uint64, bool, error) {
	path := filepath.Join(dir, CosignedFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading the record of the states stored: %w", err)
	}
	seq, err := decodeCosigned(b)
	if err != nil {
		return 0, false, fmt.Errorf("%s is damaged (%v). It records how many states the witness had stored when it last answered, "+
			"to detect storage that lost some; without it, that cannot be checked. If the storage in %s is known to be intact "+
			"(only this file was damaged), create %s and start the witness again: it records the states the storage holds. "+
			"Never restore the storage from an older backup: %w", path, err, dir, filepath.Join(dir, AcceptFile), ErrCorrupt)
	}
	return seq, true, nil
}

// openCosigned opens CosignedFile in dir for the committer's writes and
// records seq in it. A missing file (a new witness, or one made before the
// record existed) is written whole first, atomically.
func openCosigned(dir string, seq uint64) (*cosignedRecord, error) {
	path := filepath.Join(dir, CosignedFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := createFileSynced(path, encodeCosigned(seq)); err != nil {
			return nil, fmt.Errorf("recording the states stored: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the record of the states stored: %w", err)
	}
	r := &cosignedRecord{f: f, path: path}
	if err := r.record(seq); err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

// record writes seq over the record, in place, and syncs it.
func (r *cosignedRecord) record(seq uint64) error {
	if _, err := r.f.WriteAt(encodeCosigned(seq), 0); err != nil {
		return fmt.Errorf("recording the states stored in %s: %w", r.path, err)
	}
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", r.path, err)
	}
	r.seq = seq
	return nil
}

func (r *cosignedRecord) close() error {
	if r == nil {
		return nil
	}
	return r.f.Close()
}

// createFileSynced writes a new file at path through a temporary file
// that it syncs and renames, then syncs the directory.
func createFileSynced(path string, data []byte) error {
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// tally is what the stored states add up to: the Seq of the latest and the
// digest of all of them.
type tally struct {
	seq    uint64
	digest [sha256.Size]byte
}

// toggle adds a log's state to the digest, or takes it out: the digest is
// the XOR of a hash of each log's state, which catches any state lost or
// rolled back (damage, not an adversary who chooses the states).
func (t *tally) toggle(originHash [32]byte, size uint64, root []byte) {
	h := sha256.New()
	h.Write([]byte("accessledger witness state\n"))
	h.Write(originHash[:])
	h.Write(binary.BigEndian.AppendUint64(nil, size))
	h.Write(root)
	for i, b := range h.Sum(nil) {
		t.digest[i] ^= b
	}
}

// storedStates is what the states in the storage add up to, and what
// else checkStorage needs of them.
type storedStates struct {
	tally         // what they add up to, and the latest Seq
	digest []byte // stored with the latest (nil: no state has a Seq)
	latest []byte // the key of the latest (nil: no state has a Seq)
	// newest is the Time of the newest state that has a Seq.
	newest time.Time
	logs   int
	// unsequenced are the states without a Seq, oldest first: stored by
	// an earlier version, before this one first ran or after it ran.
	unsequenced []unsequenced
}

type unsequenced struct {
	key    []byte
	origin string
	size   uint64
	time   time.Time
}

// countStates reads every log's state and returns what they add up to.
func countStates(db *badger.DB) (storedStates, error) {
	var s storedStates
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixState}, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			key := item.Key()
			if len(key) != 1+sha256.Size {
				return fmt.Errorf("witness storage: a state key of %d bytes", len(key))
			}
			var st logState
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &st) }); err != nil {
				return fmt.Errorf("witness storage: the state of a log: %w", err)
			}
			s.toggle([32]byte(key[1:]), st.Size, st.Hash)
			s.logs++
			switch {
			case st.Seq == 0:
				s.unsequenced = append(s.unsequenced, unsequenced{item.KeyCopy(nil), st.Origin, st.Size, st.Time})
			case st.Seq > s.seq:
				s.seq, s.digest, s.latest = st.Seq, st.Digest, item.KeyCopy(nil)
			}
			if st.Seq > 0 && st.Time.After(s.newest) {
				s.newest = st.Time
			}
		}
		return nil
	})
	slices.SortStableFunc(s.unsequenced, func(a, b unsequenced) int { return a.time.Compare(b.time) })
	return s, err
}

// storedAfter returns the states without a Seq stored after this version
// last stored one: after the newest state with a Seq or, if none is left,
// after it last wrote CosignedFile (its modification time). Lost states
// cannot explain them: storage that loses states brings back ones stored
// before, and those without a Seq it can bring back were stored before
// this version first ran. An earlier version, run on the storage after
// this one, stored them. It also returns the time they are after. (A copy
// of the directory that did not keep modification times moves that of
// CosignedFile later: such states are then taken for lost ones, which
// errs on the side of refusing.)
func (s *storedStates) storedAfter(dir string) ([]unsequenced, time.Time) {
	since := s.newest
	if since.IsZero() {
		fi, err := os.Stat(filepath.Join(dir, CosignedFile))
		if err != nil {
			return nil, since
		}
		since = fi.ModTime()
	}
	i := sort.Search(len(s.unsequenced), func(i int) bool { return s.unsequenced[i].time.After(since) })
	return s.unsequenced[i:], since
}

// checkStorage refuses storage in dir that lost states it had stored: its
// latest Seq is below what CosignedFile records, or its states do not add
// up to the digest stored with the latest (ErrCorrupt); that cannot be
// checked so because an earlier version stored states after this one ran
// (ErrEarlierVersion); or whose CosignedFile is missing although its
// states have a Seq, so were stored by a version that wrote the file
// before it stored any (ErrCorrupt: the file was removed, or lost, maybe
// with states). With AcceptFile in dir, it accepts the storage as it is
// instead (acceptStorage). It returns what the states add up to.
func checkStorage(ctx context.Context, cfg Config, db *badger.DB) (tally, error) {
	dir := cfg.Dir
	s, err := countStates(db)
	if err != nil {
		return tally{}, err
	}
	if _, err := os.Stat(filepath.Join(dir, AcceptFile)); err == nil {
		return acceptStorage(ctx, cfg, db, s)
	} else if !errors.Is(err, os.ErrNotExist) {
		return tally{}, fmt.Errorf("looking for %s: %w", AcceptFile, err)
	}
	const what = "Refusing to open it: the witness would cosign checkpoints inconsistent with ones it cosigned before (forks), under the same key. " +
		"If a disk or file-system fault damaged the files and they can be repaired to hold every state stored, do that; " +
		"never restore them from an older backup, which rolls the witness back the same way. " +
		"Otherwise retire this witness: start a new one, with a new key and name, in a new data directory, " +
		"and have the operators of the logs it witnessed replace it in their policies"
	recorded, ok, err := readCosigned(dir)
	if err != nil {
		return tally{}, err
	}
	var wrong string
	switch {
	case ok && recorded > s.seq:
		wrong = fmt.Sprintf("%s records that the witness had stored %d states (of all its logs) when it last answered, but the storage in %s holds only the first %d",
			filepath.Join(dir, CosignedFile), recorded, dir, s.seq)
	case s.digest != nil && !bytes.Equal(s.digest, s.tally.digest[:]):
		wrong = fmt.Sprintf("the states of the %d logs in %s do not add up to the digest stored with the latest (state %d)", s.logs, dir, s.seq)
	case !ok && s.seq > 0:
		return tally{}, fmt.Errorf("%s is missing, but the states in %s were stored by a witness that writes it before it stores any "+
			"(the latest is state %d): it was removed, or lost to a disk or file-system fault, which may have cost the storage states too; "+
			"without it, the witness cannot tell. Refusing to open it: on storage that lost states, the witness would cosign checkpoints "+
			"inconsistent with ones it cosigned before (forks), under the same key. If only the file was removed or lost, and the storage "+
			"was neither damaged nor restored from a backup, create %s and start the witness again: it records the states the storage holds. "+
			"Otherwise retire this witness: start a new one, with a new key and name, in a new data directory, "+
			"and have the operators of the logs it witnessed replace it in their policies: %w",
			filepath.Join(dir, CosignedFile), dir, s.seq, filepath.Join(dir, AcceptFile), ErrCorrupt)
	default:
		return s.tally, nil
	}
	if later, since := s.storedAfter(dir); len(later) > 0 {
		last := later[len(later)-1]
		more := ""
		if len(later) > 1 {
			more = fmt.Sprintf(" (and the states of %d more logs)", len(later)-1)
		}
		return tally{}, fmt.Errorf("%s; and the state of %s (size %d) was stored at %s without a sequence number%s, "+
			"after this version last stored one (%s). An earlier version of the witness, which keeps no such record, ran on this storage after this one: "+
			"it opened the storage without checking it and replaced states that the record vouches for, so it cannot be checked any more "+
			"(states lost before or while the earlier version ran cannot be told from states it replaced). Refusing to open it. "+
			"If an earlier version did run here (never run one on data a later version wrote), and this storage was neither damaged nor restored from a backup, "+
			"accept the storage as it is: create %s and start the witness again; it records the states the storage holds, once. "+
			"If no earlier version ran here, the storage lost states: do not accept it (README, A witness whose state went back): %w",
			wrong, last.origin, last.size, last.time.UTC().Format(time.RFC3339Nano), more, since.UTC().Format(time.RFC3339Nano),
			filepath.Join(dir, AcceptFile), ErrEarlierVersion)
	}
	if ok && recorded > s.seq {
		return tally{}, fmt.Errorf("%s: it lost the latest, as a damaged write-ahead log or table file does, "+
			"which the storage engine cuts at the damage when it opens, saying nothing. "+what+": %w", wrong, ErrCorrupt)
	}
	return tally{}, fmt.Errorf("the states of the %d logs in %s are not those the witness stored: they do not add up to the digest "+
		"stored with the latest (state %d), so the state of a log was lost or rolled back, as when the storage engine's MANIFEST "+
		"is cut short (it then deletes the newest tables) or a table file is damaged. "+what+": %w",
		s.logs, dir, s.seq, ErrCorrupt)
}

// acceptStorage accepts the storage in cfg.Dir as it is, as the operator
// asked by creating AcceptFile there: it gives each state without a Seq
// one, in the order they were stored, after the latest state (which it
// stores again), all with the digest of every state; records the latest
// Seq in CosignedFile (replacing a damaged one) and removes AcceptFile.
// The storage is then checked at each Open as before. A crash on the way
// leaves AcceptFile, and the next Open accepts the storage again.
func acceptStorage(ctx context.Context, cfg Config, db *badger.DB, s storedStates) (tally, error) {
	recorded, _, _ := readCosigned(cfg.Dir) // a damaged record is accepted too
	keys := make([][]byte, 0, 1+len(s.unsequenced))
	if s.latest != nil {
		keys = append(keys, s.latest)
	}
	for _, u := range s.unsequenced {
		keys = append(keys, u.key)
	}
	t := s.tally
	if len(keys) > 0 {
		t.seq = max(recorded, s.seq)
	}
	txn := db.NewTransaction(true)
	defer func() { txn.Discard() }()
	for _, key := range keys {
		st, err := getState(txn, [32]byte(key[1:]))
		if err != nil {
			return tally{}, fmt.Errorf("accepting the storage: %w", err)
		}
		t.seq++
		st.Seq, st.Digest = t.seq, t.digest[:]
		raw, err := json.Marshal(st)
		if err != nil {
			return tally{}, err
		}
		if err = txn.Set(key, raw); errors.Is(err, badger.ErrTxnTooBig) {
			if err = txn.Commit(); err == nil {
				txn = db.NewTransaction(true)
				err = txn.Set(key, raw)
			}
		}
		if err != nil {
			return tally{}, fmt.Errorf("accepting the storage: %w", err)
		}
	}
	if err := txn.Commit(); err != nil {
		return tally{}, fmt.Errorf("accepting the storage: %w", err)
	}
	if err := createFileSynced(filepath.Join(cfg.Dir, CosignedFile), encodeCosigned(t.seq)); err != nil {
		return tally{}, fmt.Errorf("recording the states stored: %w", err)
	}
	accept := filepath.Join(cfg.Dir, AcceptFile)
	if err := os.Remove(accept); err != nil {
		return tally{}, fmt.Errorf("removing %s once the storage is accepted: %w", accept, err)
	}
	if err := syncDir(cfg.Dir); err != nil {
		return tally{}, fmt.Errorf("removing %s once the storage is accepted: %w", accept, err)
	}
	cfg.Logger.WarnContext(ctx, "accepted the storage as it is, as "+AcceptFile+" asked, without checking it: numbered its states and recorded them",
		"dir", cfg.Dir, "states", t.seq, "renumbered", len(keys), "recorded_before", recorded)
	return t, nil
}
