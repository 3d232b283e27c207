package respond

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/internal/badgerutil"
	"github.com/accessledger/accessledger/ledger"
)

// Log is what the service needs of the log: follow its committed leaves,
// append response leaves, read entries back. *ledger.Ledger implements it.
type Log interface {
	Follow(ctx context.Context, from uint64) iter.Seq2[ledger.Leaf, error]
	Append(ctx context.Context, entries ...ledger.Entry) ([]ledger.Result, error)
	Entry(ctx context.Context, index uint64) ([]byte, []byte, error)
	Size() (uint64, []byte)
}

// Config holds what a Service needs. Log and Dir are required.
type Config struct {
	Log Log
	// Dir is the service's own Badger directory, created if missing.
	Dir        string
	Responders []ResponderConfig
	Delivery   DeliveryConfig
	// Decisions, if set, turns on IP decisions for bouncers.
	Decisions *DecisionsConfig
	// Senders, if set, replaces the sender built for a responder of that
	// name (tests).
	Senders map[string]Sender
	// HTTPClient sends webhooks; nil builds one that follows no
	// redirects.
	HTTPClient *http.Client
	// Workers is how many deliveries run at once per responder (default
	// 4).
	Workers    int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Clock stamps response leaves and schedules retries; nil means
	// time.Now.
	Clock func() time.Time
	// BadgerOptions, if set, adjusts the Badger options (tests use
	// smaller memtables). SyncWrites stays on.
	BadgerOptions func(badger.Options) badger.Options
}

// responder is one configured responder and its delivery state.
type responder struct {
	cfg    ResponderConfig
	sender Sender
	// lifecycle: also acknowledgements and resolutions.
	lifecycle bool
	due       *dueQueue
	disabled  atomic.Bool
	// orderMu orders holding a message back for an earlier one of its
	// alert against that one's leaving the outbox (heldBack, finish).
	orderMu sync.Mutex

	// queued and dead count the messages in the outbox (those attempted
	// right now included) and the dead letters, as committed: counted at
	// Open, then changed after each commit that adds or removes some.
	queued atomic.Int64
	dead   atomic.Int64
	// staged counts the messages the transaction being saved by the
	// follower (or the throttling flusher) queued; guarded by
	// Service.throttleMu, added to queued once it commits.
	staged int
	// deadMu is held by every transaction that adds or removes dead
	// letters, from before it starts until dead and deadFrom say what it
	// did (see trimDead).
	deadMu sync.Mutex
	// deadFrom: no dead letter has a lower number; guarded by deadMu.
	deadFrom uint64

	// stagedFull counts the messages the transaction being saved
	// dead-lettered for a full queue, stagedFullFrom the first one's
	// number, stagedFullID the last one's id; guarded by
	// Service.throttleMu, with deadMu held while stagedFull > 0 (see
	// queueFull).
	stagedFull     int
	stagedFullFrom uint64
	stagedFullID   string
	// fullTotal counts them since start, once committed; droppedTotal
	// the dead letters deleted for a full list. fullLog and dropLog limit
	// the log lines about them.
	fullTotal    atomic.Int64
	droppedTotal atomic.Int64
	fullLog      logEvery
	dropLog      logEvery
}

// Service follows the log and responds to its alerts. Open it, call Run
// in a goroutine, and Close after Run returned. Its other methods are
// safe for concurrent use.
type Service struct {
	cfg        Config
	db         *badger.DB
	log        *slog.Logger
	responders []*responder
	byName     map[string]*responder
	decisions  *Decisions
	// decisionDuration is how long a ban lasts when the rule gives no
	// duration.
	decisionDuration time.Duration
	metrics          *metrics
	storage          *badgerutil.StorageMetrics // nil without a registerer

	cursor  atomic.Uint64
	logTag  string // the log's tag in message ids; the follower's (loadLogTag)
	seqMu   sync.Mutex
	seq     uint64     // last sequence number handed out
	saveMu  sync.Mutex // orders the commits that save seq (commit)
	feed    broadcast
	records chan struct{} // wakes the recorder

	// throttle holds the throttling state of each responder and group,
	// owned by the follower (guarded by throttleMu for the flusher).
	throttleMu      sync.Mutex
	throttle        map[string]*throttleState
	throttlePending map[string]*throttleState // staged by the batch being saved
	throttleErr     error                     // the first staging error of the batch
	stagedDue       []stagedDue               // messages enqueued by the batch being saved
	stagedRanks     map[stagedAlert]byte      // the lowest rank of each alert's messages among them, by responder

	// respondMu serialises Respond; responded holds the statuses it
	// recorded that the follower has not processed yet, by alert.
	respondMu sync.Mutex
	responded map[uint64]recordedStatus

	running sync.Mutex
	// stopped holds why Run stopped on an error, nil while it runs (or
	// after a clean stop).
	stopped atomic.Pointer[string]
	started atomic.Bool

	// orphans is what responders no longer configured left stored,
	// found at Open (see orphans.go).
	orphans atomic.Pointer[[]*orphan]
}

// Open opens (or creates) the service's database in cfg.Dir, checks the
// responders' configuration and loads the outbox.
func Open(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Log == nil || cfg.Dir == "" {
		return nil, errors.New("respond: Config.Log and Dir are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	def := DefaultDelivery()
	if len(cfg.Delivery.Schedule) == 0 {
		cfg.Delivery.Schedule = def.Schedule
	}
	if cfg.Delivery.MaxAttempts <= 0 {
		cfg.Delivery.MaxAttempts = def.MaxAttempts
	}
	if cfg.Delivery.Timeout <= 0 {
		cfg.Delivery.Timeout = def.Timeout
	}
	if cfg.Delivery.MaxQueued <= 0 {
		cfg.Delivery.MaxQueued = def.MaxQueued
	}
	if cfg.Delivery.MaxDeadLetters <= 0 {
		cfg.Delivery.MaxDeadLetters = def.MaxDeadLetters
	}
	s := &Service{cfg: cfg, log: cfg.Logger, byName: make(map[string]*responder),
		records: make(chan struct{}, 1), throttle: make(map[string]*throttleState)}
	for _, rc := range cfg.Responders {
		if _, dup := s.byName[rc.Name]; dup {
			return nil, fmt.Errorf("respond: two responders are named %q", rc.Name)
		}
		sender := cfg.Senders[rc.Name]
		if sender == nil {
			var err error
			if sender, err = NewSender(rc, cfg.Delivery, cfg.HTTPClient); err != nil {
				return nil, err
			}
		}
		r := &responder{cfg: rc, sender: sender, lifecycle: rc.Lifecycle || rc.Type == TypePagerDuty, due: newDueQueue()}
		s.responders = append(s.responders, r)
		s.byName[rc.Name] = r
	}
	m, err := newMetrics(cfg.Registerer, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	db, err := openDB(cfg.Dir, cfg.Logger, cfg.BadgerOptions)
	if err != nil {
		return nil, err
	}
	s.db = db
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	// The responders only process what the log made durable: a cursor
	// beyond the log's end means the log lost entries they saw (alerts
	// delivered, decisions made), or was restored from an older backup
	// than theirs. Going on would append new entries where the lost ones
	// were, and never deliver the alerts raised there.
	if size, _ := cfg.Log.Size(); s.cursor.Load() > size {
		db.Close()
		return nil, fmt.Errorf("respond: the responders have processed the log's first %d entries, but the log holds %d: "+
			"either the log's storage lost entries it had acknowledged (restore it from a backup that holds them), "+
			"or it was restored from an older backup than %s (restore the log and the responders' and detector's directories from the same backup): %w",
			s.cursor.Load(), size, cfg.Dir, ErrAheadOfLog)
	}
	if cfg.Decisions != nil {
		d, err := OpenDecisions(ctx, db, keyDecisions, *cfg.Decisions, s, cfg.Clock)
		if err != nil {
			db.Close()
			return nil, err
		}
		s.decisions = d
		s.decisionDuration = cfg.Decisions.DefaultDuration
		if s.decisionDuration <= 0 {
			s.decisionDuration = DefaultDecisionsConfig().DefaultDuration
		}
	}
	if cfg.Registerer != nil {
		s.storage = badgerutil.NewStorageMetrics("respond", db)
		if err := cfg.Registerer.Register(s.storage); err != nil {
			db.Close()
			return nil, fmt.Errorf("respond: registering metrics: %w", err)
		}
	}
	return s, nil
}

// load restores the cursor, the sequence, the outbox's schedule, the
// counts of queued messages and dead letters, the disabled responders
// and the throttling state, and reports what
// responders no longer configured left stored.
//
// The sequence is the highest of keySeq and the numbers stored: of the
// pending records, and of the configured responders' outbox messages and
// dead letters (their order keys carry their messages' numbers). keySeq
// alone may be behind them in a store written before commit saved it in
// commit order: the outcome of a delivery (finish) saved none, and a
// transaction that committed last could save a lower number; a record
// still pending at a stop was then overwritten by the first one after the
// restart, an outbox message or dead letter by a new one. A responder
// no longer configured needs none: its keys are under its own name, and
// taken into account at the start that configures it again.
func (s *Service) load() error {
	var missing [][]byte
	var orphans []*orphan
	err := s.db.View(func(txn *badger.Txn) error {
		c, err := getUint64(txn, keyCursor)
		if err != nil {
			return err
		}
		s.cursor.Store(c)
		if s.seq, err = getUint64(txn, keySeq); err != nil {
			return err
		}
		s.seq = max(s.seq, lastRecordSeq(txn, s.seq))
		for _, r := range s.responders {
			if _, err := txn.Get(append(slices.Clone(keyDisabled), r.cfg.Name...)); err == nil {
				r.disabled.Store(true)
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			if err := s.loadOutbox(txn, r, &missing); err != nil {
				return err
			}
			s.loadDeadLetters(txn, r)
		}
		if err := s.loadThrottle(txn); err != nil {
			return err
		}
		orphans, err = s.findOrphans(txn)
		return err
	})
	if err != nil {
		return err
	}
	s.reportOrphans(orphans)
	if err := s.addOrderKeys(missing); err != nil {
		return err
	}
	// More dead letters than the bound: it was lowered, or the responder
	// is configured again after a rename.
	for _, r := range s.responders {
		if err := s.trimDead(r); err != nil {
			return err
		}
	}
	return nil
}

// lastRecordSeq returns the highest number of a pending record above
// from, 0 if there is none. It seeks past from rather than from the
// end: the records below it are mostly appended and deleted, and a
// reverse walk would step over each deletion not yet compacted.
func lastRecordSeq(txn *badger.Txn, from uint64) uint64 {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: keyRecordPfx})
	defer it.Close()
	var last uint64
	for it.Seek(indexKey(keyRecordPfx, from+1)); it.Valid(); it.Next() {
		last = binary.BigEndian.Uint64(it.Item().Key()[len(keyRecordPfx):])
	}
	return last
}

// nextSeq hands out sequence numbers for outbox entries, dead letters
// and records; a transaction that takes some commits through update
// (or commit), which saves the sequence.
func (s *Service) nextSeq() uint64 {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	s.seq++
	return s.seq
}

// update runs fn in a read-write transaction and commits it with the
// sequence saved (commit). Every transaction that takes sequence numbers
// commits through it.
func (s *Service) update(fn func(txn *badger.Txn) error) error {
	if s.db.IsClosed() {
		return badger.ErrDBClosed
	}
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	if err := fn(txn); err != nil {
		return err
	}
	return s.commit(txn)
}

// commit saves the sequence in txn and commits it, returning once it is
// durable (or failed). The sequence saved is the last number handed out
// when txn takes its place in the commit order, under saveMu: so a
// transaction committed later never saves a lower one. Saved before
// (within fn), a transaction that took its numbers first and committed
// last lowered keySeq below the numbers of the others. Only the handing
// of txn to Badger's writer is serialised, not the write: concurrent
// commits still share a sync.
func (s *Service) commit(txn *badger.Txn) error {
	done := make(chan error, 1)
	s.saveMu.Lock()
	s.seqMu.Lock()
	seq := s.seq
	s.seqMu.Unlock()
	err := txn.Set(keySeq, u64(nil, seq))
	if err == nil {
		txn.CommitWith(func(err error) { done <- err })
	}
	s.saveMu.Unlock()
	if err != nil {
		return err
	}
	return <-done
}

// Decisions returns the decision store, nil when decisions are off.
func (s *Service) Decisions() *Decisions { return s.decisions }

// Cursor returns the next leaf the service will process.
func (s *Service) Cursor() uint64 { return s.cursor.Load() }

// Run follows the log, delivers, records and expires until ctx ends. It
// returns nil then, or the error that stopped it.
func (s *Service) Run(ctx context.Context) error {
	if !s.running.TryLock() {
		return errors.New("respond: Run is already running")
	}
	defer s.running.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3+len(s.responders))
	start := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errs <- err
				cancel()
			}
		}()
	}
	start(s.follow)
	start(s.recorder)
	start(s.flushThrottled)
	for _, r := range s.responders {
		for range s.cfg.Workers {
			start(func(ctx context.Context) error { return s.deliver(ctx, r) })
		}
	}
	s.started.Store(true)
	wg.Wait()
	select {
	case err := <-errs:
		msg := err.Error()
		s.stopped.Store(&msg)
		return err
	default:
		return nil
	}
}

// ServiceStatus is the service's progress, for GET /v1/responders.
type ServiceStatus struct {
	// Running is false once Run stopped on an error (Error says which,
	// for the server log: it may carry storage details); the log's alerts
	// then wait for a restart.
	Running bool   `json:"running"`
	Error   string `json:"-"`
	// Cursor is the next leaf to process; LogSize the log's size.
	Cursor  uint64 `json:"cursor"`
	LogSize uint64 `json:"log_size"`
}

// Status reports whether the service runs and how far it has followed
// the log.
func (s *Service) Status() ServiceStatus {
	size, _ := s.cfg.Log.Size()
	st := ServiceStatus{Running: s.started.Load(), Cursor: s.cursor.Load(), LogSize: size}
	if msg := s.stopped.Load(); msg != nil {
		st.Running, st.Error = false, *msg
	}
	return st
}

// Close closes the database. Call it after Run has returned.
func (s *Service) Close() error {
	s.running.Lock()
	defer s.running.Unlock()
	if s.storage != nil {
		s.storage.Close() // before the storage closes: a scrape may be running
		s.cfg.Registerer.Unregister(s.storage)
	}
	return s.db.Close()
}

// broadcast wakes every waiter when something new happened.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next notify.
func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
