package witness

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

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
			"(only this file was damaged), remove the file: the witness then records the states the storage holds. "+
			"Never restore the storage from an older backup: %w", path, err, dir, ErrCorrupt)
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
	d, err := os.Open(filepath.Dir(path))
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

// countStates reads every log's state and returns what they add up to,
// the digest stored with the latest (nil if it has none: stored before
// states had one, or no state) and how many logs have a state.
func countStates(db *badger.DB) (counted tally, storedDigest []byte, logs int, err error) {
	err = db.View(func(txn *badger.Txn) error {
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
			counted.toggle([32]byte(key[1:]), st.Size, st.Hash)
			if logs == 0 || st.Seq > counted.seq {
				counted.seq, storedDigest = st.Seq, st.Digest
			}
			logs++
		}
		return nil
	})
	return counted, storedDigest, logs, err
}

// checkStorage refuses storage in dir that lost states it had stored: its
// latest Seq is below what CosignedFile records, or its states do not add
// up to the digest stored with the latest. It returns what they add up to,
// and whether there is a CosignedFile.
func checkStorage(dir string, db *badger.DB) (tally, bool, error) {
	counted, storedDigest, logs, err := countStates(db)
	if err != nil {
		return tally{}, false, err
	}
	const what = "Refusing to open it: the witness would cosign checkpoints inconsistent with ones it cosigned before (forks), under the same key. " +
		"If a disk or file-system fault damaged the files and they can be repaired to hold every state stored, do that; " +
		"never restore them from an older backup, which rolls the witness back the same way. " +
		"Otherwise retire this witness: start a new one, with a new key and name, in a new data directory, " +
		"and have the operators of the logs it witnessed replace it in their policies"
	recorded, ok, err := readCosigned(dir)
	if err != nil {
		return tally{}, false, err
	}
	if ok && recorded > counted.seq {
		return tally{}, false, fmt.Errorf("%s records that the witness had stored %d states (of all its logs) when it last answered, "+
			"but the storage in %s holds only the first %d: it lost the latest, as a damaged write-ahead log or table file does, "+
			"which the storage engine cuts at the damage when it opens, saying nothing. "+what+": %w",
			filepath.Join(dir, CosignedFile), recorded, dir, counted.seq, ErrCorrupt)
	}
	if storedDigest != nil && !bytes.Equal(storedDigest, counted.digest[:]) {
		return tally{}, false, fmt.Errorf("the states of the %d logs in %s are not those the witness stored: they do not add up to the digest "+
			"stored with the latest (state %d), so the state of a log was lost or rolled back, as when the storage engine's MANIFEST "+
			"is cut short (it then deletes the newest tables) or a table file is damaged. "+what+": %w",
			logs, dir, counted.seq, ErrCorrupt)
	}
	return counted, ok, nil
}
