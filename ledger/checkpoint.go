package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a signed tree head: a C2SP tlog-checkpoint in a C2SP
// signed note.
type Checkpoint struct {
	Size uint64
	Hash []byte
	// Note is the signed note, byte for byte as served.
	Note []byte
	// SignedAt is when this process signed it (zero if unknown).
	SignedAt time.Time
}

// Latest returns the latest signed checkpoint.
func (l *Ledger) Latest() *Checkpoint { return l.latest.Load() }

// CheckpointAt returns the checkpoint signed for the given size, or
// ErrNotFound if none was.
func (l *Ledger) CheckpointAt(ctx context.Context, size uint64) (*Checkpoint, error) {
	var cp *Checkpoint
	err := l.view(func(txn *badger.Txn) error {
		raw, err := get(txn, checkpointKey(size))
		if err != nil {
			return err
		}
		cp, err = l.parseCheckpoint(raw)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint of size %d: %w", size, err)
	}
	return cp, nil
}

// Checkpoints calls fn for every signed checkpoint of size from or more,
// in increasing size order, until fn returns false. It seeks straight to
// from, so paging through the history costs only the page read.
func (l *Ledger) Checkpoints(ctx context.Context, from uint64, fn func(*Checkpoint) bool) error {
	return l.view(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{prefixCheckpoint}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(checkpointKey(from)); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			raw, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			cp, err := l.parseCheckpoint(raw)
			if err != nil {
				return err
			}
			if !fn(cp) {
				return nil
			}
		}
		return nil
	})
}

// ErrWrongKey means the log's stored checkpoints are signed by another key
// than the one the ledger was given: the wrong key file, not damage.
var ErrWrongKey = errors.New("ledger: the log's checkpoints are signed by another key")

// parseCheckpoint verifies a stored checkpoint against the log's key.
func (l *Ledger) parseCheckpoint(raw []byte) (*Checkpoint, error) {
	c, _, _, err := log.ParseCheckpoint(raw, l.origin, l.verifier)
	if err != nil {
		// Signed, but by no key this ledger has: another key was given
		// (its hash differs), not a damaged checkpoint.
		var unverified *note.UnverifiedNoteError
		if _, oerr := note.Open(raw, note.VerifierList(l.verifier)); errors.As(oerr, &unverified) && len(unverified.Note.UnverifiedSigs) > 0 {
			sig := unverified.Note.UnverifiedSigs[0]
			return nil, fmt.Errorf("the stored checkpoints are signed by key %s+%08x, and the key given is %s+%08x: "+
				"start with the key this log was created with (log.key in the data directory, or --key): %w",
				sig.Name, sig.Hash, l.verifier.Name(), l.verifier.KeyHash(), ErrWrongKey)
		}
		return nil, fmt.Errorf("stored checkpoint does not verify with this log's key: %v: %w", err, ErrCorrupt)
	}
	return &Checkpoint{Size: c.Size, Hash: c.Hash, Note: raw}, nil
}

// SignCheckpoint signs a checkpoint over the durable tree, stores it
// (synced) and makes it the latest, unless the latest already covers the
// durable size, in which case it returns that one. It is safe to call
// concurrently with appends: it only ever signs data already committed.
// After a failed commit or a halt it signs nothing and returns ErrFailed
// (ErrHalted). One signature is bounded by Config.SignTimeout.
func (l *Ledger) SignCheckpoint(ctx context.Context) (*Checkpoint, error) {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	if err := l.failure(); err != nil {
		return nil, err
	}
	size, root := l.Size()
	if latest := l.latest.Load(); latest != nil && latest.Size >= size {
		return latest, nil
	}
	return l.signLocked(ctx, size, root, nil)
}

// SignDurable signs a checkpoint over every entry the log holds, as
// SignCheckpoint, if they are atLeast or more, and returns the size of
// the latest checkpoint then; 0, and nothing signed, if the log holds
// fewer. It is witness.DistributorConfig.SignDurable for this log.
func (l *Ledger) SignDurable(ctx context.Context, atLeast uint64) (uint64, error) {
	if size, _ := l.Size(); size < atLeast {
		return 0, nil
	}
	cp, err := l.SignCheckpoint(ctx)
	if err != nil {
		return 0, err
	}
	return cp.Size, nil
}

// signLocked signs and stores a checkpoint, in one synced transaction with
// whatever also writes. l.cpMu must be held.
func (l *Ledger) signLocked(ctx context.Context, size uint64, root []byte, also func(*badger.Txn) error) (*Checkpoint, error) {
	body := log.Checkpoint{Origin: l.origin, Size: size, Hash: root}.Marshal()
	signed, err := l.sign(ctx, body)
	if err != nil {
		l.metrics.signFailures.Inc()
		l.signErr.Store(&signFailure{err: err, inRow: l.signFailuresInRow() + 1})
		return nil, fmt.Errorf("signing checkpoint: %w", err)
	}
	l.signErr.Store(nil)
	now := l.cfg.Clock()
	latest := make([]byte, 16)
	binary.BigEndian.PutUint64(latest, size)
	binary.BigEndian.PutUint64(latest[8:], uint64(now.UnixNano()))
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.dbClosed {
		return nil, ErrClosed
	}
	err = l.db.Update(func(txn *badger.Txn) error {
		if also != nil {
			if err := also(txn); err != nil {
				return err
			}
		}
		if err := txn.Set(checkpointKey(size), signed); err != nil {
			return err
		}
		return txn.Set(keyLatestCP, latest)
	})
	if err != nil {
		err = fmt.Errorf("storing checkpoint of size %d: %w", size, err)
		if also == nil {
			// A failed write leaves storage in doubt: fail stop, as
			// for a failed commit of entries.
			l.failStorage(err)
		}
		return nil, err
	}
	cp := &Checkpoint{Size: size, Hash: bytes.Clone(root), Note: signed, SignedAt: now}
	l.latest.Store(cp)
	l.log.DebugContext(ctx, "signed checkpoint", "size", size)
	return cp, nil
}

// checkpointLoop is the signer goroutine: it signs every
// CheckpointInterval while the tree grows, until stop is closed. Closing
// stop also abandons a signature in progress.
func (l *Ledger) checkpointLoop() {
	defer close(l.cpDone)
	t := time.NewTicker(l.cfg.CheckpointInterval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-l.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if l.failure() != nil {
				continue // a failed ledger signs nothing; it said why once
			}
			if _, err := l.SignCheckpoint(ctx); err != nil && ctx.Err() == nil {
				l.log.ErrorContext(ctx, "signing checkpoint failed", "err", err, "failures_in_a_row", l.signFailuresInRow())
			}
		}
	}
}

// signFailure records consecutive signing failures.
type signFailure struct {
	err   error
	inRow int
}

// signFailuresUnhealthy is how many signing failures in a row make the
// ledger unhealthy: checkpoints have stopped, and witnesses and auditors
// see a log that does not grow.
const signFailuresUnhealthy = 3

func (l *Ledger) signFailuresInRow() int {
	if f := l.signErr.Load(); f != nil {
		return f.inRow
	}
	return 0
}

// sign signs a checkpoint body, giving up after Config.SignTimeout or when
// ctx ends. A signer that hangs is abandoned, never waited for; until it
// returns, further signatures fail at once rather than pile up.
func (l *Ledger) sign(ctx context.Context, body []byte) ([]byte, error) {
	claim, err := l.claimSigner()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.SignTimeout)
	defer cancel() // also tells an abandoned signer to give up
	type result struct {
		signed []byte
		err    error
	}
	done := make(chan result, 1)
	go func() {
		defer l.releaseSigner(claim)
		signed, err := note.Sign(&note.Note{Text: string(body)}, contextSigner{l.cfg.Signer, ctx})
		done <- result{signed, err}
	}()
	select {
	case r := <-done:
		return r.signed, r.err
	case <-ctx.Done():
		select {
		case r := <-done: // it answered just in time
			return r.signed, r.err
		default:
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("the signer did not answer within %s", l.cfg.SignTimeout)
		}
		return nil, ctx.Err()
	}
}

// claimSigner marks a signature as in progress, or fails if one still
// is; the returned channel goes to releaseSigner when it returns.
func (l *Ledger) claimSigner() (chan struct{}, error) {
	l.signMu.Lock()
	defer l.signMu.Unlock()
	if l.signDone != nil {
		return nil, errors.New("the previous signature has not returned yet")
	}
	l.signDone = make(chan struct{})
	return l.signDone, nil
}

func (l *Ledger) releaseSigner(done chan struct{}) {
	l.signMu.Lock()
	defer l.signMu.Unlock()
	close(done)
	l.signDone = nil
}

// waitSigner waits until no signature is in progress, for at most d.
func (l *Ledger) waitSigner(d time.Duration) {
	l.signMu.Lock()
	done := l.signDone
	l.signMu.Unlock()
	if done == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// contextSigner passes a context to signers that take one (NoteSigner
// hands it to sigstore, whose KMS signers honour it).
type contextSigner struct {
	Signer
	ctx context.Context
}

func (c contextSigner) Sign(msg []byte) ([]byte, error) {
	if s, ok := c.Signer.(interface {
		SignContext(context.Context, []byte) ([]byte, error)
	}); ok {
		return s.SignContext(c.ctx, msg)
	}
	return c.Signer.Sign(msg)
}

// readLatestCheckpoint loads the latest checkpoint recorded in storage.
func (l *Ledger) readLatestCheckpoint(txn *badger.Txn) (*Checkpoint, error) {
	v, err := get(txn, keyLatestCP)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("no checkpoint stored: %w", ErrCorrupt)
	}
	if err != nil {
		return nil, err
	}
	if len(v) != 16 {
		return nil, fmt.Errorf("malformed latest-checkpoint record: %w", ErrCorrupt)
	}
	size := binary.BigEndian.Uint64(v)
	raw, err := get(txn, checkpointKey(size))
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint %d: %w", size, err)
	}
	cp, err := l.parseCheckpoint(raw)
	if err != nil {
		return nil, err
	}
	if cp.Size != size {
		return nil, fmt.Errorf("checkpoint stored under size %d has size %d: %w", size, cp.Size, ErrCorrupt)
	}
	cp.SignedAt = time.Unix(0, int64(binary.BigEndian.Uint64(v[8:])))
	return cp, nil
}
