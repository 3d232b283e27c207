package ledger

import (
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// ErrNoSpace means the file system holding the log has less free space
// than Config.MinFreeDisk: appends are refused until space is freed.
var ErrNoSpace = errors.New("ledger: too little free disk space")

// DefaultMinFreeDisk is Config.MinFreeDisk's default.
//
// Badger writes its write-ahead logs and value logs through memory
// mappings of files it sizes at their largest when it creates them, and
// the file system allocates their blocks only when a page is first
// written. On a full disk that write cannot fail with an error: the kernel
// kills the process (SIGBUS), in the middle of a commit. The margin covers
// what the four databases of a server may still write after appends stop:
// a memtable's log (48 MiB for the ledger's), the value log's next 64 MiB
// file, the tables a memtable flush and the compactions behind it write
// before they delete the old ones.
const DefaultMinFreeDisk = 256 << 20

// diskInterval is how often the ledger checks the free space: at 100,000
// events/s of 300 bytes, 8 MB are written in between, well inside the
// margin.
const diskInterval = 250 * time.Millisecond

// diskState is the last free-space check.
type diskState struct {
	free uint64 // bytes available to the server
	low  bool   // free below Config.MinFreeDisk: appends refused
	err  error  // the check itself failed
}

// checkDisk measures the free space of the log's file system and
// refuses (or again accepts) appends on it; with the check off
// (MinFreeDisk negative) it only measures, for the metric. A failed
// measurement leaves appends as they were: the check guards the storage,
// and must not stop a log that is writing fine.
func (l *Ledger) checkDisk() {
	measure := freeSpace
	if l.cfg.freeSpace != nil {
		measure = l.cfg.freeSpace
	}
	free, err := measure(l.cfg.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		// Deleted under the server: what it writes is lost at exit.
		l.failStorage(fmt.Errorf("the storage directory %s was removed while the server ran: %w", l.cfg.Dir, err))
	}
	prev := l.disk.Load()
	next := &diskState{free: free, err: err}
	least := uint64(l.cfg.MinFreeDisk)
	switch {
	case l.cfg.MinFreeDisk < 0:
		// Measured only.
	case err != nil:
		next.free, next.low = prev.free, prev.low
		if prev.err == nil {
			l.log.Warn("cannot measure the free disk space; appends go on as they were", "dir", l.cfg.Dir, "err", err)
		}
	case prev.low:
		// Accept again with some room, so that appends do not flap
		// on and off at the line.
		next.low = free < least+least/16
		if !next.low {
			l.log.Info("free disk space is back above the minimum: appends accepted again",
				"dir", l.cfg.Dir, "free_mib", free>>20, "min_free_disk_mib", least>>20)
		}
	default:
		next.low = free < least
		if next.low {
			l.log.Error("free disk space is below the minimum: appends are refused until space is freed",
				"dir", l.cfg.Dir, "free_mib", free>>20, "min_free_disk_mib", least>>20)
		}
	}
	l.disk.Store(next)
}

// noSpace returns ErrNoSpace, with the figures, while the disk is low.
func (l *Ledger) noSpace() error {
	d := l.disk.Load()
	if d == nil || !d.low {
		return nil
	}
	return fmt.Errorf("%d MiB free on the file system of %s, appends need %d MiB: %w",
		d.free>>20, l.cfg.Dir, l.cfg.MinFreeDisk>>20, ErrNoSpace)
}

// diskLoop checks the free space every diskInterval until stop is
// closed.
func (l *Ledger) diskLoop() {
	defer close(l.diskDone)
	t := time.NewTicker(diskInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.checkDisk()
		}
	}
}
