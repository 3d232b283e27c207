package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// AckedFile is the file, in the ledger's storage directory, that records
// the tree size of the last acknowledged commit, outside Badger.
//
// Badger cannot tell a torn write at the end of its write-ahead log from
// a damaged byte in the middle of it: it keeps what precedes the first bad
// record and cuts the rest. A flipped byte in a memtable file, or a
// MANIFEST cut short (which drops tables), then opens as a shorter but
// consistent log, and appends would go on over the entries it lost. This
// record is what Open compares the stored size with: a log that holds
// fewer entries than were acknowledged is refused (ErrCorrupt).
//
// It is rewritten in place after every commit, before the commit is
// acknowledged, and not synced: Badger's commit is. A crash can leave it
// behind the log (it then says less than was acknowledged, and the check
// is weaker for those entries, never wrong), not ahead of it.
const AckedFile = "ACKNOWLEDGED"

// ackedRecordSize is the record's length: a magic, the size and a CRC-32C
// of both. It fits in one disk sector, so a write of it is not torn.
const ackedRecordSize = 16

var ackedMagic = [4]byte{'A', 'L', 'A', 'K'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ackedRecord keeps the file open for the writes of the sequencer.
type ackedRecord struct {
	f    *os.File
	path string
	buf  [ackedRecordSize]byte
}

// readAcked returns the size AckedFile in dir records, and whether it
// exists. A file that exists but does not hold a valid record is an
// error: nothing writes it but the ledger, whole.
func readAcked(dir string) (uint64, bool, error) {
	path := filepath.Join(dir, AckedFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading the acknowledged size: %w", err)
	}
	size, err := decodeAcked(b)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %v; it records how many entries were acknowledged, to detect storage that lost some: "+
			"if the storage is known to be intact, remove it: %w", path, err, ErrCorrupt)
	}
	return size, true, nil
}

func decodeAcked(b []byte) (uint64, error) {
	if len(b) != ackedRecordSize {
		return 0, fmt.Errorf("%d bytes, want %d", len(b), ackedRecordSize)
	}
	if [4]byte(b[:4]) != ackedMagic {
		return 0, errors.New("not an acknowledged-size record")
	}
	if crc32.Checksum(b[:12], castagnoli) != binary.BigEndian.Uint32(b[12:]) {
		return 0, errors.New("checksum mismatch")
	}
	return binary.BigEndian.Uint64(b[4:12]), nil
}

// checkAcked refuses a stored log of size stored in dir if AckedFile
// there records more acknowledged entries.
func checkAcked(dir string, stored uint64, what string) error {
	acked, ok, err := readAcked(dir)
	if err != nil || !ok || stored >= acked {
		return err
	}
	return fmt.Errorf("%s, but %d entries were acknowledged (%s): the storage lost entries %d-%d, "+
		"as a damaged write-ahead log or table file does, which the storage engine cuts at the damage when it opens. "+
		"Restore %s, and the detect/ and respond/ directories, from the same backup; "+
		"if this is a backup restored on purpose, remove %s: %w",
		what, acked, filepath.Join(dir, AckedFile), stored, acked-1, dir, AckedFile, ErrCorrupt)
}

// openAcked opens AckedFile in dir for the sequencer's writes and records
// size in it. A missing file is written whole first, atomically, so that
// no crash leaves it empty.
func openAcked(dir string, size uint64) (*ackedRecord, error) {
	path := filepath.Join(dir, AckedFile)
	a := &ackedRecord{path: path}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := WriteFileAtomic(path, a.encode(size), 0o600); err != nil {
			return nil, fmt.Errorf("recording the acknowledged size: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the acknowledged size: %w", err)
	}
	a.f = f
	if err := a.record(size); err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

func (a *ackedRecord) encode(size uint64) []byte {
	copy(a.buf[:4], ackedMagic[:])
	binary.BigEndian.PutUint64(a.buf[4:12], size)
	binary.BigEndian.PutUint32(a.buf[12:], crc32.Checksum(a.buf[:12], castagnoli))
	return a.buf[:]
}

// record writes size over the record. It fails if the file was removed:
// the storage directory was deleted under the server (rm -rf), whose
// writes then go to files that are gone, and must not be acknowledged.
func (a *ackedRecord) record(size uint64) error {
	if _, err := a.f.WriteAt(a.encode(size), 0); err != nil {
		return fmt.Errorf("recording the acknowledged size in %s: %w", a.path, err)
	}
	if removed(a.f) {
		return fmt.Errorf("%s was removed while the server ran: the storage directory %s was deleted, "+
			"and what is written there is lost at exit; nothing more is acknowledged. Restore the directory from a backup",
			a.path, filepath.Dir(a.path))
	}
	return nil
}

func (a *ackedRecord) close() error {
	if a == nil {
		return nil
	}
	return a.f.Close()
}
