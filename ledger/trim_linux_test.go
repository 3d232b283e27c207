package ledger

import (
	"bytes"
	"testing"
)

// TestTrimMappingsKeepsData trims Badger's mappings while the log is
// written and read, and checks that nothing changes: every entry reads
// back, and the log reopens with full verification.
func TestTrimMappingsKeepsData(t *testing.T) {
	l, cfg := newTestLedger(t)
	big := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 40000) }
	// Trim continuously too, while Badger flushes memtables and compacts
	// tables (unmapping files under the trimmer's feet).
	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := trimMappings(cfg.Dir); err != nil {
				errs <- err
				return
			}
		}
	}()
	var trimmed int64
	for i := 0; i < 600; i += 20 {
		entries := make([]Entry, 20)
		for j := range entries {
			entries[j] = Entry{Data: big(i + j)}
		}
		if _, err := l.Append(bg, entries...); err != nil {
			t.Fatalf("Append() = %v", err)
		}
		n, err := trimMappings(cfg.Dir)
		if err != nil {
			t.Fatalf("trimMappings(%s) = %v", cfg.Dir, err)
		}
		trimmed += n
	}
	close(stop)
	if err := <-errs; err != nil {
		t.Errorf("trimMappings(%s) while Badger works = %v", cfg.Dir, err)
	}
	if trimmed == 0 {
		t.Errorf("trimMappings() trimmed nothing, want Badger's mapped files trimmed")
	}
	for i := range 600 {
		if data, _, err := l.Entry(bg, uint64(i)); err != nil || !bytes.Equal(data, big(i)) {
			t.Fatalf("Entry(%d) after trimming = %d bytes, %v; want %d bytes", i, len(data), err, len(big(i)))
		}
	}
	closeLedger(t, l)
	l = openTestLedger(t, cfg)
	if size, _ := l.Size(); size != 600 {
		t.Errorf("Size() after reopen = %d, want 600", size)
	}
}
