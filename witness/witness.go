// Package witness implements C2SP transparency-log witnessing, both ends:
//
//   - the witness (c2sp.org/tlog-witness): Witness checks that each
//     checkpoint a log submits is consistent with the latest one it
//     cosigned for that log and answers with a cosignature/v1 cosignature
//     (c2sp.org/tlog-cosignature), keeping its state in its own Badger
//     directory;
//   - the log's side: Distributor pushes a log's checkpoints to the
//     witnesses of a tlog-policy (c2sp.org/tlog-policy) and collects
//     their verified cosignatures until the policy's quorum is met.
//
// The package knows nothing of serving HTTP: api/witness.go maps the
// errors here to the protocol's status codes.
package witness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accessledger/accessledger/internal/badgerutil"
	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Errors callers branch on. Each is the answer to one tlog-witness status
// code; the wrapping error says what exactly was wrong.
var (
	// ErrMalformed means the request or its checkpoint cannot be parsed,
	// or the old size exceeds the checkpoint's size (400).
	ErrMalformed = errors.New("witness: malformed request")
	// ErrUnknownLog means no trusted log has the checkpoint's origin (404).
	ErrUnknownLog = errors.New("witness: unknown log")
	// ErrBadSignature means the checkpoint carries no valid signature by a
	// trusted key of its log, or a signature by such a key fails (403).
	ErrBadSignature = errors.New("witness: no valid signature by a trusted log key")
	// ErrInconsistent means the checkpoint is not proven consistent with
	// the latest one cosigned: a consistency proof that does not verify,
	// a proof from size 0, the same size with another root hash, or a
	// size-0 checkpoint whose root is not the empty tree's (422).
	ErrInconsistent = errors.New("witness: checkpoint not consistent with the latest cosigned one")
	// ErrNotFound means nothing was cosigned for the log (yet).
	ErrNotFound = errors.New("witness: not found")
	// ErrExists means Create found witness state already in the directory.
	ErrExists = errors.New("witness: state already exists here")
	// ErrNoState means Open found no witness state in the directory.
	ErrNoState = errors.New("witness: no witness state here")
	// ErrClosed means the witness is closed.
	ErrClosed = errors.New("witness: closed")
)

// ConflictError is the 409 answer: the old size of the request is not the
// size of the latest checkpoint the witness cosigned for the log.
type ConflictError struct {
	// Size is the size of the latest cosigned checkpoint (0 if none).
	Size uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness: old size does not match the latest cosigned size %d", e.Size)
}

// Signer is what the witness cosigns with: a note signer (a Cosigner) that
// knows its verifier key.
type Signer interface {
	note.Signer
	VerifierKey() string
}

// Config holds what a witness needs. Dir and Signer are required.
type Config struct {
	// Dir is the witness's own Badger directory.
	Dir string
	// Signer cosigns checkpoints (a *Cosigner).
	Signer Signer
	// Logs are the logs the witness cosigns for (a policy's log lines).
	// A log may have several keys (one line each); a checkpoint needs a
	// valid signature by one of them.
	Logs []PolicyLog
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Clock stamps state updates and evidence; nil means time.Now.
	Clock func() time.Time
	// Registerer receives the witness's metrics; nil skips them.
	Registerer prometheus.Registerer
	// BadgerOptions, if set, adjusts the Badger options (tests,
	// benchmarks). Syncing stays on.
	BadgerOptions func(badger.Options) badger.Options

	// beforeStore, if set, runs after a checkpoint was checked against
	// the stored state and before the new state is stored (tests use it
	// to race two submissions).
	beforeStore func()
}

// Witness is a C2SP tlog-witness. Its methods are safe for concurrent
// use.
//
// Signatures are verified by the callers' goroutines; then one committer
// goroutine checks each submission against the stored state of its log,
// cosigns it and stores it, taking the submissions that queued up meanwhile
// in the same Badger transaction, in order (each sees the state the one
// before it left). Checking the old size and storing the new checkpoint is
// thus a compare-and-swap: concurrent submissions can never roll a log's
// state back. A checkpoint is answered only after its transaction is
// synced, and then CosignedFile; one sync of each covers the whole batch.
type Witness struct {
	cfg     Config
	db      *badger.DB
	log     *slog.Logger
	logs    atomic.Pointer[trustedLogs]
	evSeq   *badger.Sequence
	evMu    sync.Mutex // serialises evidence writes (deduplication)
	metrics *metrics

	// The committer owns these once the witness is open: what the stored
	// states add up to (counted again after a failed commit, when tallied
	// is false) and CosignedFile.
	tally    tally
	tallied  bool
	cosigned *cosignedRecord

	// ops feeds the committer; closeMu makes Close wait for senders.
	closeMu sync.RWMutex
	closed  atomic.Bool
	ops     chan *op
	stop    chan struct{}
	done    chan struct{} // closed when the committer exits
}

// op is one verified submission waiting for the committer.
type op struct {
	ctx        context.Context
	originHash [32]byte
	req        AddRequest
	n          *note.Note
	cp         log.Checkpoint
	out        outcome
	err        error
	done       chan struct{}
}

// maxBatch bounds the submissions stored in one transaction.
const maxBatch = 256

// trustedLogs maps origins to their verifiers. It is replaced whole.
type trustedLogs map[string][]note.Verifier

func newTrusted(logs []PolicyLog) trustedLogs {
	t := trustedLogs{}
	for _, l := range logs {
		t[l.Origin] = append(t[l.Origin], l.Verifier)
	}
	return t
}

// Keys in the witness's Badger directory.
var (
	keyMeta        = []byte("meta")
	keyEvidenceSeq = []byte("q/evidence") // no prefix below starts with q
)

const (
	prefixState    = 's' // + sha256(origin): logState
	prefixEvidence = 'e' // + uint64 id: Evidence
	prefixDedup    = 'd' // + sha256(origin, reason, note text): uint64 id
)

type meta struct {
	Created time.Time `json:"created"`
}

// logState is the latest cosigned checkpoint of one log.
type logState struct {
	Origin string    `json:"origin"`
	Size   uint64    `json:"size"`
	Hash   []byte    `json:"hash"`
	Note   []byte    `json:"note"` // the checkpoint, its verified log signatures and our cosignature
	Time   time.Time `json:"time"`
	// Seq numbers the states the witness stored, of all its logs (1 for
	// the first); Digest is the digest of every log's state once this one
	// was stored (see CosignedFile). Both are absent from states stored
	// before they existed.
	Seq    uint64 `json:"seq,omitempty"`
	Digest []byte `json:"digest,omitempty"`
}

func stateKey(originHash [32]byte) []byte {
	return append([]byte{prefixState}, originHash[:]...)
}

func evidenceKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixEvidence}, id)
}

func (c *Config) setDefaults() error {
	if c.Dir == "" {
		return errors.New("witness: Config.Dir is required")
	}
	if c.Signer == nil {
		return errors.New("witness: Config.Signer is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return nil
}

// Create makes new, empty witness state in cfg.Dir and returns the witness
// open. It fails with ErrExists if there is state already: a witness that
// silently started over would cosign a rolled-back log.
func Create(ctx context.Context, cfg Config) (*Witness, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if seq, ok, err := readCosigned(cfg.Dir); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("creating witness state in %s: %s records that the witness stored %d states here, "+
			"so its storage was lost or replaced; starting over would let it cosign forks of what it cosigned: %w",
			cfg.Dir, filepath.Join(cfg.Dir, CosignedFile), seq, ErrExists)
	}
	db, err := openBadger(cfg)
	if err != nil {
		return nil, err
	}
	err = db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(keyMeta); err == nil {
			return fmt.Errorf("creating witness state in %s: %w", cfg.Dir, ErrExists)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		raw, _ := json.Marshal(meta{Created: cfg.Clock().UTC()})
		return txn.Set(keyMeta, raw)
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	cfg.Logger.InfoContext(ctx, "created witness state", "dir", cfg.Dir)
	return newWitness(ctx, cfg, db)
}

// Open opens the witness state in cfg.Dir, failing with ErrNoState if
// there is none, with ErrCorrupt if the storage lost states it had stored
// (see CosignedFile) or that file is damaged, or missing while states
// have a Seq, and with ErrEarlierVersion if an earlier version stored
// states there after this one ran. Storage without the file and states
// without a Seq (made before they existed) is opened, and the file
// written; so is storage that AcceptFile says to accept as it is.
func Open(ctx context.Context, cfg Config) (*Witness, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(cfg.Dir); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("opening witness state in %s: %w", cfg.Dir, ErrNoState)
	}
	db, err := openBadger(cfg)
	if err != nil {
		return nil, err
	}
	err = db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(keyMeta)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("opening witness state in %s: %w", cfg.Dir, ErrNoState)
		}
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return newWitness(ctx, cfg, db)
}

func openBadger(cfg Config) (*badger.DB, error) {
	opts := badger.DefaultOptions(cfg.Dir).
		WithLogger(badgerLogger{cfg.Logger}).
		WithNumVersionsToKeep(1).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithMetricsEnabled(false)
	if cfg.BadgerOptions != nil {
		opts = cfg.BadgerOptions(opts)
	}
	// One committer goroutine writes log state (see Witness), so Badger
	// need not detect conflicts.
	opts = opts.WithSyncWrites(true).WithDetectConflicts(false)
	if err := badgerutil.RemoveTornFiles(cfg.Dir, cfg.Logger); err != nil {
		return nil, err
	}
	db, err := badgerutil.Open("witness", opts)
	if err != nil {
		return nil, fmt.Errorf("opening witness storage in %s: %w", cfg.Dir, err)
	}
	return db, nil
}

// newWitness checks the storage against CosignedFile, records in it the
// states stored and starts the committer.
func newWitness(ctx context.Context, cfg Config, db *badger.DB) (*Witness, error) {
	counted, err := checkStorage(ctx, cfg, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	cosigned, err := openCosigned(cfg.Dir, counted.seq)
	if err != nil {
		db.Close()
		return nil, err
	}
	seq, err := db.GetSequence(keyEvidenceSeq, 16)
	if err != nil {
		cosigned.close()
		db.Close()
		return nil, fmt.Errorf("witness: evidence sequence: %w", err)
	}
	w := &Witness{cfg: cfg, db: db, log: cfg.Logger, evSeq: seq, tally: counted, tallied: true, cosigned: cosigned,
		ops: make(chan *op, 4*maxBatch), stop: make(chan struct{}), done: make(chan struct{})}
	w.logs.Store(ptr(newTrusted(cfg.Logs)))
	if w.metrics, err = newMetrics(w, cfg.Registerer); err != nil {
		seq.Release()
		cosigned.close()
		db.Close()
		return nil, err
	}
	go w.committer()
	return w, nil
}

// committer is the goroutine that owns writes of log state: it stores the
// queued submissions a batch at a time until Close, then the ones still
// queued.
func (w *Witness) committer() {
	defer close(w.done)
	batch := make([]*op, 0, maxBatch)
	for {
		select {
		case o := <-w.ops:
			batch = append(batch[:0], o)
		case <-w.stop:
			for {
				select {
				case o := <-w.ops:
					w.commit([]*op{o})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case o := <-w.ops:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		w.commit(batch)
	}
}

// commit decides and stores a batch in one transaction and answers each
// submission once it is synced and CosignedFile records it.
func (w *Witness) commit(batch []*op) {
	txn := w.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	pending := w.tally // with the states stored in txn
	var inTxn []*op    // decided in txn, answered once it commits
	flush := func() {
		err := txn.Commit()
		if err != nil {
			w.tallied = false // the storage may hold some of it: count again
		} else {
			w.tally = pending
			if w.cosigned.seq != w.tally.seq {
				// Also after a commit that stored nothing, if an
				// earlier write of the record failed.
				err = w.cosigned.record(w.tally.seq)
			}
		}
		for _, o := range inTxn {
			if err != nil && o.err == nil {
				o.err = err
			}
			close(o.done)
		}
		inTxn = inTxn[:0]
		txn = w.db.NewTransaction(true)
	}
	// counted makes pending what the storage holds after a failed commit,
	// or answers o with the error if it cannot.
	counted := func(o *op) bool {
		if w.tallied {
			return true
		}
		if err := w.recount(); err != nil {
			o.err = err
			close(o.done)
			return false
		}
		pending = w.tally
		return true
	}
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.err = err // the caller is gone: store nothing for it
			close(o.done)
			continue
		}
		if !counted(o) {
			continue
		}
		o.err = w.decide(o.ctx, txn, o.originHash, o.req, o.n, o.cp, &o.out, &pending)
		if errors.Is(o.err, badger.ErrTxnTooBig) && len(inTxn) > 0 {
			// The transaction is full: store what it holds, and decide
			// this one again in the next.
			flush()
			if !counted(o) {
				continue
			}
			o.out = outcome{}
			o.err = w.decide(o.ctx, txn, o.originHash, o.req, o.n, o.cp, &o.out, &pending)
		}
		inTxn = append(inTxn, o)
	}
	flush()
}

// recount counts the stored states again, after a failed commit.
func (w *Witness) recount() error {
	s, err := countStates(w.db)
	if err != nil {
		return fmt.Errorf("counting the states stored after a failed commit: %w", err)
	}
	w.tally, w.tallied = s.tally, true
	return nil
}

func ptr[T any](v T) *T { return &v }

// SetLogs replaces the trusted logs (after the policy file changed). The
// state of a log that is no longer trusted is kept, so that trusting it
// again continues from where it was.
func (w *Witness) SetLogs(logs []PolicyLog) {
	w.logs.Store(ptr(newTrusted(logs)))
	w.metrics.resetLogs()
}

// VerifierKey returns the witness's cosignature verifier key.
func (w *Witness) VerifierKey() string { return w.cfg.Signer.VerifierKey() }

// Name returns the witness's key name.
func (w *Witness) Name() string { return w.cfg.Signer.Name() }

// Close closes the witness's storage. Calls in progress finish first.
func (w *Witness) Close() error {
	w.closeMu.Lock()
	if !w.closed.CompareAndSwap(false, true) {
		w.closeMu.Unlock()
		return nil
	}
	close(w.stop)
	w.closeMu.Unlock()
	<-w.done
	w.metrics.unregister()
	w.evMu.Lock()
	defer w.evMu.Unlock()
	return errors.Join(w.evSeq.Release(), w.db.Close(), w.cosigned.close())
}

// emptyRoot is the RFC 6962 root of the empty tree.
var emptyRoot = rfc6962.DefaultHasher.EmptyRoot()

// outcome is what the transaction decided.
type outcome struct {
	cosig    []byte // the cosignature lines answered
	conflict *ConflictError
	refusal  error  // wraps ErrInconsistent
	reason   string // evidence reason for a refusal ("" for none)
	latest   []byte // the stored checkpoint at the time of a refusal
}

// AddCheckpoint handles one add-checkpoint request. It returns the
// witness's cosignature lines ("— <name> <base64>\n"), or an error:
// ErrMalformed (400), ErrUnknownLog (404), ErrBadSignature (403), a
// *ConflictError (409) or ErrInconsistent (422). Refusals of a validly
// signed checkpoint that can show the log misbehaved are kept as Evidence.
// The new state is synced to disk before AddCheckpoint returns.
func (w *Witness) AddCheckpoint(ctx context.Context, req AddRequest) ([]byte, error) {
	res, err := w.addCheckpoint(ctx, req)
	w.metrics.count(res, err)
	return res, err
}

func (w *Witness) addCheckpoint(ctx context.Context, req AddRequest) ([]byte, error) {
	if w.closed.Load() {
		return nil, ErrClosed
	}
	origin, _, ok := bytes.Cut(req.Checkpoint, []byte("\n"))
	if !ok || len(origin) == 0 {
		return nil, fmt.Errorf("%w: the checkpoint has no origin line", ErrMalformed)
	}
	verifiers := (*w.logs.Load())[string(origin)]
	if len(verifiers) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrUnknownLog, origin)
	}
	n, err := note.Open(req.Checkpoint, note.VerifierList(verifiers...))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return nil, fmt.Errorf("%w: no signature by a key of %q", ErrBadSignature, origin)
		case errors.As(err, &invalid):
			return nil, fmt.Errorf("%w: a signature by a key of %q does not verify", ErrBadSignature, origin)
		}
		return nil, fmt.Errorf("%w: the checkpoint is not a signed note: %v", ErrMalformed, err)
	}
	if err := verifyEveryKnownSignature(req.Checkpoint, n.Text, verifiers); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	var cp log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return nil, fmt.Errorf("%w: the signed note is not a checkpoint: %v", ErrMalformed, err)
	}
	if err := checkCheckpointText(n.Text); err != nil {
		return nil, fmt.Errorf("%w: the checkpoint is not in tlog-checkpoint's encoding: %v", ErrMalformed, err)
	}
	if cp.Origin != string(origin) {
		return nil, fmt.Errorf("%w: the checkpoint's origin line is not %q", ErrMalformed, origin)
	}
	if req.OldSize > cp.Size {
		return nil, fmt.Errorf("%w: old size %d is larger than the checkpoint's size %d", ErrMalformed, req.OldSize, cp.Size)
	}
	o := &op{ctx: ctx, originHash: sha256.Sum256(origin), req: req, n: n, cp: cp, done: make(chan struct{})}
	w.closeMu.RLock()
	if w.closed.Load() {
		w.closeMu.RUnlock()
		return nil, ErrClosed
	}
	w.ops <- o // Close waits for this send; the committer drains after it
	w.closeMu.RUnlock()
	<-o.done // the committer answers every op, even at Close
	out := o.out
	if err := o.err; err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, fmt.Errorf("witness storage: %w", err)
	}
	originHash := o.originHash
	if out.reason != "" {
		w.keepEvidence(ctx, originHash, cp, req, out)
	}
	switch {
	case out.conflict != nil:
		return nil, out.conflict
	case out.refusal != nil:
		return nil, out.refusal
	}
	w.metrics.setSize(cp.Origin, cp.Size)
	return out.cosig, nil
}

// decide checks a verified checkpoint against the stored state of its log
// and, if it is consistent, cosigns it and stores it, all in txn; t is what
// the states in txn add up to, updated if it stores one.
func (w *Witness) decide(ctx context.Context, txn *badger.Txn, originHash [32]byte, req AddRequest, n *note.Note, cp log.Checkpoint, out *outcome, t *tally) error {
	st, err := getState(txn, originHash)
	if err != nil {
		return err
	}
	refuse := func(reason, format string, args ...any) error {
		out.refusal = fmt.Errorf("%w: %s", ErrInconsistent, fmt.Sprintf(format, args...))
		out.reason = reason
		out.latest = st.Note
		return nil
	}
	if req.OldSize != st.Size {
		out.conflict = &ConflictError{Size: st.Size}
		out.latest = st.Note
		if cp.Size == st.Size && !bytes.Equal(cp.Hash, st.Hash) {
			out.reason = ReasonFork
		}
		return nil
	}
	switch {
	case cp.Size == 0 && !bytes.Equal(cp.Hash, emptyRoot):
		return refuse(ReasonEmptyTreeRoot, "a checkpoint of size 0 must have the root hash of the empty tree")
	case req.OldSize == 0 && len(req.Proof) > 0:
		return refuse(ReasonProofFromZero, "the consistency proof from size 0 must be empty")
	case req.OldSize == cp.Size && !bytes.Equal(cp.Hash, st.Hash):
		return refuse(ReasonFork, "the checkpoint has the size of the latest cosigned one (%d) but another root hash", cp.Size)
	case req.OldSize > 0:
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, req.OldSize, cp.Size, req.Proof, st.Hash, cp.Hash); err != nil {
			reason := ReasonInconsistent
			if cp.Size == st.Size {
				// The very checkpoint cosigned, with a proof where none
				// belongs: anyone can send that, and it shows nothing
				// about the log. Refused, but not kept as evidence.
				reason = ""
			}
			return refuse(reason, "the consistency proof from size %d to %d does not verify", req.OldSize, cp.Size)
		}
	}
	line, err := w.cosign(ctx, n.Text)
	if err != nil {
		return err
	}
	var stored bytes.Buffer
	stored.WriteString(n.Text)
	stored.WriteString("\n")
	for _, s := range n.Sigs {
		fmt.Fprintf(&stored, "— %s %s\n", s.Name, s.Base64)
	}
	stored.Write(line)
	next := *t
	next.seq++
	if st.Note != nil { // a stored state, not getState's empty one
		next.toggle(originHash, st.Size, st.Hash)
	}
	next.toggle(originHash, cp.Size, cp.Hash)
	ns := logState{Origin: cp.Origin, Size: cp.Size, Hash: cp.Hash, Note: stored.Bytes(), Time: w.cfg.Clock().UTC(),
		Seq: next.seq, Digest: next.digest[:]}
	raw, err := json.Marshal(ns)
	if err != nil {
		return err
	}
	if w.cfg.beforeStore != nil {
		w.cfg.beforeStore()
	}
	if err := txn.Set(stateKey(originHash), raw); err != nil {
		return err
	}
	*t = next
	out.cosig = line
	return nil
}

// cosign returns the witness's signature line for a checkpoint text.
func (w *Witness) cosign(ctx context.Context, text string) ([]byte, error) {
	var sig []byte
	var err error
	if s, ok := w.cfg.Signer.(interface {
		SignContext(context.Context, []byte) ([]byte, error)
	}); ok {
		sig, err = s.SignContext(ctx, []byte(text))
	} else {
		sig, err = w.cfg.Signer.Sign([]byte(text))
	}
	if err != nil {
		return nil, err
	}
	b := binary.BigEndian.AppendUint32(nil, w.cfg.Signer.KeyHash())
	b = append(b, sig...)
	return fmt.Appendf(nil, "— %s %s\n", w.cfg.Signer.Name(), base64.StdEncoding.EncodeToString(b)), nil
}

func getState(txn *badger.Txn, originHash [32]byte) (logState, error) {
	var st logState
	item, err := txn.Get(stateKey(originHash))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return logState{Hash: emptyRoot}, nil
	}
	if err != nil {
		return st, err
	}
	err = item.Value(func(v []byte) error { return json.Unmarshal(v, &st) })
	return st, err
}

// Latest returns the latest checkpoint the witness cosigned for the log
// whose origin has the given SHA-256 (the monitoring read of
// tlog-witness): the checkpoint with the log signatures the witness
// verified and its own cosignature. It fails with ErrNotFound if the
// witness never cosigned one for that log.
func (w *Witness) Latest(ctx context.Context, originHash [32]byte) ([]byte, error) {
	var st logState
	err := w.view(func(txn *badger.Txn) error {
		var err error
		st, err = getState(txn, originHash)
		return err
	})
	if err != nil {
		return nil, err
	}
	if st.Note == nil {
		return nil, ErrNotFound
	}
	return st.Note, nil
}

func (w *Witness) view(fn func(*badger.Txn) error) error {
	if w.closed.Load() {
		return ErrClosed
	}
	err := w.db.View(fn)
	if err != nil && w.closed.Load() {
		return ErrClosed
	}
	return err
}

// LogInfo is the witness's view of one trusted log.
type LogInfo struct {
	Origin string `json:"origin"`
	// OriginHash is the lowercase hex SHA-256 of the origin, the path of
	// the monitoring read.
	OriginHash string `json:"origin_hash"`
	// Size and RootHash are those of the latest cosigned checkpoint (0
	// and the empty root if none).
	Size     uint64    `json:"size"`
	RootHash []byte    `json:"root_hash"`
	Updated  time.Time `json:"updated,omitzero"`
}

// Logs returns the state of every trusted log, by origin.
func (w *Witness) Logs(ctx context.Context) ([]LogInfo, error) {
	trusted := *w.logs.Load()
	out := make([]LogInfo, 0, len(trusted))
	err := w.view(func(txn *badger.Txn) error {
		for origin := range trusted {
			h := sha256.Sum256([]byte(origin))
			st, err := getState(txn, h)
			if err != nil {
				return err
			}
			out = append(out, LogInfo{Origin: origin, OriginHash: fmt.Sprintf("%x", h), Size: st.Size, RootHash: st.Hash, Updated: st.Time})
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Origin < out[j].Origin })
	return out, err
}

// verifyEveryKnownSignature checks every signature line of the signed note
// raw (of text, which note.Open has verified) made by one of the known
// keys. note.Open verifies the first signature of each key and skips the
// rest; tlog-witness says a witness MUST answer 403 if "a signature line's
// key name and ID match a trusted key but the signature itself fails to
// verify", whichever line it is.
func verifyEveryKnownSignature(raw []byte, text string, known []note.Verifier) error {
	sigs := raw[min(len(text)+1, len(raw)):]
	for len(sigs) > 0 {
		line, rest, _ := bytes.Cut(sigs, []byte("\n"))
		sigs = rest
		line, ok := bytes.CutPrefix(line, []byte("\u2014 "))
		if !ok {
			continue // note.Open has refused what is not a signature
		}
		name, b64, _ := strings.Cut(string(line), " ")
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sig) < 5 {
			continue
		}
		hash := binary.BigEndian.Uint32(sig[:4])
		for _, v := range known {
			if v.Name() == name && v.KeyHash() == hash && !v.Verify([]byte(text), sig[4:]) {
				return fmt.Errorf("a signature by %s (key ID %08x) does not verify", name, hash)
			}
		}
	}
	return nil
}

// checkCheckpointText checks what log.Checkpoint.Unmarshal lets through and
// tlog-checkpoint forbids: a tree size with leading zeroes, a root hash
// that is not the canonical base64 of 32 bytes, an empty extension line.
// Cosigned, such a checkpoint was stored as the log's state, and a root of
// another length then refused every later checkpoint of the log.
func checkCheckpointText(text string) error {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return errors.New("fewer than three lines")
	}
	if _, err := parseDecimal([]byte(lines[1])); err != nil {
		return fmt.Errorf("tree size %q: %v", lines[1], err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != sha256.Size || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return fmt.Errorf("root hash %q is not the canonical base64 of %d bytes", lines[2], sha256.Size)
	}
	for _, ext := range lines[3:] {
		if ext == "" {
			return errors.New("an empty extension line")
		}
	}
	return nil
}
