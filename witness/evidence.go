package witness

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/formats/log"
)

// Reasons a validly signed checkpoint was refused, as recorded in
// Evidence.
const (
	// ReasonFork: the checkpoint has the size of the latest cosigned one
	// but another root hash. The two signed checkpoints prove a split
	// view.
	ReasonFork = "fork"
	// ReasonInconsistent: the consistency proof from the latest cosigned
	// checkpoint did not verify. The checkpoint may be a fork (check it
	// with a proof from the log) or the proof may just be wrong.
	ReasonInconsistent = "inconsistent_proof"
	// ReasonEmptyTreeRoot: a checkpoint of size 0 whose root hash is not
	// the empty tree's. The log signed an impossible checkpoint.
	ReasonEmptyTreeRoot = "empty_tree_root"
	// ReasonProofFromZero: a non-empty consistency proof from size 0.
	ReasonProofFromZero = "proof_from_zero"
)

// Evidence is a refused submission that carried a valid signature by the
// log and can show that the log misbehaved (a 422, or a 409 for a
// checkpoint of the size cosigned but with another root): the request as
// received and the witness's latest cosigned checkpoint of the log at the
// time. Other 409s (a stale old size, or an older checkpoint, which is
// still a valid one) are the protocol's normal way for a client to learn
// the size and prove nothing; they are not kept.
type Evidence struct {
	// ID orders evidence; IDs increase but may skip values.
	ID     uint64 `json:"id"`
	Time   string `json:"time"` // RFC 3339, UTC
	Origin string `json:"origin"`
	Reason string `json:"reason"`
	// Size is the refused checkpoint's size; LatestSize the size the
	// witness had cosigned.
	Size       uint64 `json:"size"`
	LatestSize uint64 `json:"latest_size"`
	// Request is the add-checkpoint request body as received (old size
	// line, proof, checkpoint with its signatures).
	Request string `json:"request"`
	// Latest is the latest cosigned checkpoint at the time ("" if none).
	Latest string `json:"latest,omitempty"`
}

// keepEvidence stores a refused submission, once per origin, reason and
// checkpoint text: replaying the same checkpoint (with other proofs, old
// sizes or extra signatures) adds nothing, so the evidence kept is bounded
// by what the log signed. Failures are logged, never returned: the
// refusal itself is the answer.
func (w *Witness) keepEvidence(ctx context.Context, originHash [32]byte, cp log.Checkpoint, req AddRequest, out outcome) {
	h := sha256.New()
	h.Write(originHash[:])
	h.Write([]byte(out.reason))
	h.Write([]byte{0})
	h.Write(cp.Marshal())
	dedup := append([]byte{prefixDedup}, h.Sum(nil)...)
	var latestSize uint64
	if out.conflict != nil {
		latestSize = out.conflict.Size
	}
	if out.latest != nil {
		var lc log.Checkpoint
		if _, err := lc.Unmarshal(textOf(out.latest)); err == nil {
			latestSize = lc.Size
		}
	}
	w.evMu.Lock()
	defer w.evMu.Unlock()
	if w.closed.Load() {
		return
	}
	for {
		stored := false
		err := w.db.Update(func(txn *badger.Txn) error {
			stored = false
			if _, err := txn.Get(dedup); err == nil {
				return nil // kept already: a replay is not new evidence
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			id, err := w.evSeq.Next()
			if err != nil {
				return err
			}
			ev := Evidence{
				ID:         id + 1, // 0 is never an ID, so from=0 lists everything
				Time:       w.cfg.Clock().UTC().Format("2006-01-02T15:04:05.000000000Z07:00"),
				Origin:     cp.Origin,
				Reason:     out.reason,
				Size:       cp.Size,
				LatestSize: latestSize,
				Request:    string(req.Marshal()),
				Latest:     string(out.latest),
			}
			raw, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			if err := txn.Set(evidenceKey(ev.ID), raw); err != nil {
				return err
			}
			if err := txn.Set(dedup, binary.BigEndian.AppendUint64(nil, ev.ID)); err != nil {
				return err
			}
			stored = true
			return nil
		})
		if errors.Is(err, badger.ErrConflict) {
			continue
		}
		if err != nil {
			w.log.ErrorContext(ctx, "storing witness evidence failed", "origin", cp.Origin, "reason", out.reason, "err", err)
			return
		}
		if !stored {
			w.log.DebugContext(ctx, "refused a validly signed checkpoint kept as evidence before", "origin", cp.Origin, "reason", out.reason,
				"size", cp.Size)
			return
		}
		w.log.WarnContext(ctx, "refused a validly signed checkpoint; kept as evidence", "origin", cp.Origin, "reason", out.reason,
			"size", cp.Size, "latest_size", latestSize)
		w.metrics.evidence.WithLabelValues(out.reason).Inc()
		return
	}
}

// textOf returns the text of a signed note (up to and including the line
// before the blank line), or nil.
func textOf(signed []byte) []byte {
	for i := len(signed) - 2; i >= 0; i-- {
		if signed[i] == '\n' && signed[i+1] == '\n' {
			return signed[:i+1]
		}
	}
	return nil
}

// Evidence lists kept evidence with ID from or more, oldest first, at most
// limit of them. next is the from of the following page, 0 if there is
// none.
func (w *Witness) Evidence(ctx context.Context, from uint64, limit int) (evs []Evidence, next uint64, err error) {
	if limit <= 0 {
		return nil, 0, fmt.Errorf("%w: limit %d", ErrMalformed, limit)
	}
	evs = []Evidence{}
	err = w.view(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{prefixEvidence}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(evidenceKey(from)); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if len(evs) == limit {
				next = binary.BigEndian.Uint64(it.Item().Key()[1:])
				return nil
			}
			var ev Evidence
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &ev) }); err != nil {
				return err
			}
			evs = append(evs, ev)
		}
		return nil
	})
	return evs, next, err
}

// badgerLogger adapts Badger's logger to slog: its info and debug chatter
// goes to debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(msg(f, a), "component", "badger") }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(msg(f, a), "component", "badger") }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(msg(f, a), "component", "badger") }
func (b badgerLogger) Debugf(f string, a ...any)   { b.l.Debug(msg(f, a), "component", "badger") }

func msg(f string, a []any) string { return strings.TrimSpace(fmt.Sprintf(f, a...)) }
