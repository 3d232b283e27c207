package ledger

import (
	"errors"
	"testing"
	"time"
)

// TestHaltStopsAppendsAndSigning: after Halt, appends fail with an error
// that matches ErrHalted, ErrFailed and the cause, nothing more is
// signed, the ledger is unhealthy and reads go on; Close reports no
// failure, and the reopened ledger appends again (the halt is the
// caller's to record).
func TestHaltStopsAppendsAndSigning(t *testing.T) {
	l, cfg := newTestLedger(t)
	appendN(t, l, 0, 5, 5)
	cp, err := l.SignCheckpoint(bg)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 5, 2, 2) // durable, not yet signed
	cause := errors.New("a witness has cosigned size 9")
	l.Halt(cause)
	l.Halt(errors.New("a second reason")) // the first halt is kept

	_, err = l.Append(bg, Entry{Data: []byte("after the halt")})
	for _, target := range []error{ErrHalted, ErrFailed, cause} {
		mustErrIs(t, "Append() after Halt", err, target)
	}
	if size, _ := l.Size(); size != 7 {
		t.Errorf("Size() after Halt = %d, want 7", size)
	}
	if _, err := l.SignCheckpoint(bg); !errors.Is(err, ErrHalted) {
		t.Errorf("SignCheckpoint() after Halt = %v, want ErrHalted", err)
	}
	if got := l.Latest(); got.Size != cp.Size {
		t.Errorf("Latest().Size after Halt = %d, want %d (nothing signed)", got.Size, cp.Size)
	}
	if err := l.Healthy(); !errors.Is(err, ErrHalted) || !errors.Is(err, cause) {
		t.Errorf("Healthy() after Halt = %v, want ErrHalted with the cause", err)
	}
	if data, _, err := l.Entry(bg, 6); err != nil || string(data) != string(entryData(6)) {
		t.Errorf("Entry(6) after Halt = %q, %v; want %q", data, err, entryData(6))
	}
	closeLedger(t, l) // a halt is no failure of the close

	l = openTestLedger(t, cfg)
	if got := l.Latest(); got.Size != cp.Size {
		t.Errorf("Latest().Size after reopening = %d, want %d: Close signed a final checkpoint over the halted log", got.Size, cp.Size)
	}
	appendN(t, l, 7, 1, 1)
}

// TestHaltAtOpen: a ledger halted by Config.HaltAtOpen signs nothing, not
// even at the signer's first tick right after Open, and takes no appends:
// a halt applied once Open has returned could come after that tick,
// which signs the entries stored since the latest checkpoint (what a
// restored log recorded as behind its witnesses must not do).
func TestHaltAtOpen(t *testing.T) {
	l, cfg := newTestLedger(t)
	appendN(t, l, 0, 3, 3)
	cp, err := l.SignCheckpoint(bg)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3, 2, 2) // durable, not yet signed
	l.Halt(errors.New("halted before the close"))
	closeLedger(t, l) // signs no final checkpoint

	cause := errors.New("recorded: a witness has cosigned size 9")
	var seen uint64
	cfg.CheckpointInterval = time.Millisecond
	cfg.HaltAtOpen = func(latest *Checkpoint) error {
		seen = latest.Size
		return cause
	}
	l = openTestLedger(t, cfg)
	time.Sleep(50 * time.Millisecond) // fifty ticks of the signer
	if seen != cp.Size {
		t.Errorf("HaltAtOpen got the latest checkpoint of size %d, want %d", seen, cp.Size)
	}
	if got := l.Latest(); got.Size != cp.Size {
		t.Errorf("Latest().Size after HaltAtOpen = %d, want %d: the signer signed the halted log", got.Size, cp.Size)
	}
	_, err = l.Append(bg, Entry{Data: []byte("after the halt")})
	mustErrIs(t, "Append() after HaltAtOpen", err, ErrHalted)
	mustErrIs(t, "Append() after HaltAtOpen", err, cause)

	// A nil error leaves it running.
	closeLedger(t, l)
	cfg.HaltAtOpen = func(*Checkpoint) error { return nil }
	l = openTestLedger(t, cfg)
	appendN(t, l, 5, 1, 1)
}
