package ledger

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// LogCopyPrefix begins the name of the directory, next to the storage
// directory, where Open keeps a copy of the storage engine's logs as they
// were before it opened them after a crash, when the log it then finds
// lost acknowledged entries.
//
// Badger cuts its write-ahead log (the memtable files) and its last value
// log at the first record that does not check, whether a crash tore it or
// a disk damaged it, and the records after a damaged one are gone from
// the files once Badger has opened them. AckedFile detects the loss; this
// copy keeps the bytes, for whoever recovers the entries (each record
// carries its own checksum, so those after the damage can still be read).
const LogCopyPrefix = ".before-open-"

// copyLogsBeforeOpen copies, when dir was not closed cleanly (a memtable
// file holds data: a clean close flushes them all), every memtable file
// and the last value log into a new directory next to dir, each up to its
// last byte that is not zero (the files are preallocated). It returns the
// directory, or "" when there was nothing to copy. It never stops the
// open: a copy that fails, or that would leave less than minFree bytes
// free, is skipped with a warning.
func copyLogsBeforeOpen(dir string, now time.Time, minFree int64, log *slog.Logger) string {
	if locked(dir) {
		// Open by another process (a second server on the same data):
		// this open fails, and cuts nothing.
		return ""
	}
	files, total, err := logsToCopy(dir)
	if err != nil || len(files) == 0 {
		if err != nil {
			log.Warn("could not look for the storage engine's logs to copy before opening them after a crash", "dir", dir, "err", err)
		}
		return ""
	}
	// The copy goes next to dir, maybe on another file system (dir a
	// mount point).
	if free, err := freeSpace(filepath.Dir(filepath.Clean(dir))); err == nil && int64(free)-total < max(minFree, 0) {
		log.Warn("not copying the storage engine's logs before opening them after a crash: too little free space",
			"dir", dir, "bytes", total, "free", free)
		return ""
	}
	dst := filepath.Clean(dir) + LogCopyPrefix + now.UTC().Format("20060102T150405.000000000Z")
	if err := copyLogs(dst, files); err != nil {
		os.RemoveAll(dst)
		log.Warn("could not copy the storage engine's logs before opening them after a crash", "dir", dir, "err", err)
		return ""
	}
	return dst
}

// logFile is a file to copy and the length of its data.
type logFile struct {
	path string
	size int64
}

// logsToCopy returns the memtable files of dir that hold data and, if
// there is one, its last value log; none when no memtable file holds data.
func logsToCopy(dir string) ([]logFile, int64, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var files []logFile
	var total int64
	add := func(name string) error {
		path := filepath.Join(dir, name)
		n, err := dataLength(path)
		if n > 0 {
			files = append(files, logFile{path, n})
			total += n
		}
		return err
	}
	var lastVlog string
	for _, e := range entries {
		switch name := e.Name(); {
		case strings.HasSuffix(name, ".vlog"):
			lastVlog = max(lastVlog, name) // the names are zero-padded numbers
		case strings.HasSuffix(name, ".mem"):
			if err := add(name); err != nil {
				return nil, 0, err
			}
		}
	}
	if len(files) > 0 && lastVlog != "" {
		if err := add(lastVlog); err != nil {
			return nil, 0, err
		}
	}
	return files, total, nil
}

// dataLength returns the length of path up to its last byte that is not
// zero.
func dataLength(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 1<<20)
	for end := info.Size(); end > 0; {
		start := max(end-int64(len(buf)), 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}

// copyLogs copies each file's data into a new directory dst (mode 0700:
// the logs hold the events), synced.
func copyLogs(dst string, files []logFile) error {
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	for _, lf := range files {
		if err := copyPrefix(filepath.Join(dst, filepath.Base(lf.path)), lf.path, lf.size); err != nil {
			return err
		}
	}
	if err := SyncDir(dst); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(dst))
}

func copyPrefix(dst, src string, n int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.LimitReader(in, n)); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// keepLogCopy adds to err, the reason an open failed, where the copy of
// the logs is kept, if the storage engine failed to open (damaged files)
// or the open found the log damaged or short of acknowledged entries
// (ErrCorrupt): what the storage engine cut may be needed. Any other
// failure (a wrong key, a bad setting) cut nothing worth keeping: the copy
// is removed, and err returned as it is.
func keepLogCopy(err error, copied string, engineFailed bool, log *slog.Logger) error {
	if copied == "" {
		return err
	}
	if !engineFailed && !errors.Is(err, ErrCorrupt) {
		dropLogCopy(copied, log)
		return err
	}
	return fmt.Errorf("%w (the storage engine's logs as they were before this open, which cut them, are kept in %s)", err, copied)
}

// dropLogCopy removes the copy of an open that succeeded.
func dropLogCopy(copied string, log *slog.Logger) {
	if copied == "" {
		return
	}
	if err := os.RemoveAll(copied); err != nil {
		log.Warn("could not remove the copy of the storage engine's logs made before opening them", "dir", copied, "err", err)
	}
}
