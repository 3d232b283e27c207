package detect

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/internal/badgerutil"
	"github.com/accessledger/accessledger/ledger"
)

// Log is what a Detector needs of the log: follow its committed leaves,
// append alerts, read entries back. *ledger.Ledger implements it.
type Log interface {
	Follow(ctx context.Context, from uint64) iter.Seq2[ledger.Leaf, error]
	Append(ctx context.Context, entries ...ledger.Entry) ([]ledger.Result, error)
	Entry(ctx context.Context, index uint64) ([]byte, []byte, error)
	Size() (uint64, []byte)
}

// Defaults of DetectorConfig.
const (
	DefaultSaveInterval = 5 * time.Second
	DefaultSaveEvery    = 100_000
)

// DetectorConfig holds what a Detector needs. Log, Engine and Dir are
// required.
type DetectorConfig struct {
	Log    Log
	Engine *Engine
	// Dir is the detector's own directory, created if missing: a Badger
	// database (the alerts' index) with the engine's state and cursor in
	// its state subdirectory. It never holds the log's keys.
	Dir string
	// Enricher fills in source.geo and source.asn before detection; nil
	// for none.
	Enricher *Enricher
	Logger   *slog.Logger
	// Clock stamps alert leaves' received_at; nil means time.Now.
	Clock func() time.Time
	// Registerer receives the detector's metrics; nil skips them.
	Registerer prometheus.Registerer
	// SaveInterval is how often state is saved while events flow
	// (default 5s); SaveEvery saves after that many leaves (default
	// 100,000) whichever comes first. A restart replays the leaves
	// since the last save. Alerts are appended as soon as no leaf is
	// waiting, and at least every second.
	SaveInterval time.Duration
	SaveEvery    int
	// BadgerOptions, if set, adjusts the Badger options of the
	// detector's database (tests use smaller memtables). SyncWrites
	// stays on.
	BadgerOptions func(badger.Options) badger.Options
	// MaxLag bounds how many leaves the detector may lag the log once it
	// has caught up: beyond it Behind reports true, and the API pushes
	// appends back until the detector is within it again, so that the
	// alerts of an acknowledged event come within a bounded delay at any
	// load. 0: no bound (detection may fall behind under a load the
	// machine cannot both append and analyse).
	MaxLag uint64
}

// Detector follows the log from a durable cursor, runs the engine on each
// event, appends the alerts to the log as leaves of kind alert, and saves
// the cursor and the engine's state in one transaction after the alerts
// are durable. A restart replays from the saved cursor; alerts raised
// again carry the same dedup keys, which the log deduplicates, so no
// alert is recorded twice and none is lost.
//
// Run owns the engine; the other methods are safe for concurrent use.
type Detector struct {
	cfg     DetectorConfig
	db      *badger.DB
	log     *slog.Logger
	engine  *Engine
	state   *stateStore
	metrics *detectorMetrics
	rec     Record // the record of the leaf being processed (decodeFollowed)
	// lastEvent is when the last event Run processed was received (or
	// when Run started): how long the log has been idle (flushIdle).
	// Run's alone.
	lastEvent time.Time
	// saturation raises an alert when a correlation's state turns over
	// (saturation.go). Run's alone.
	saturation *saturationWatch

	cursor    atomic.Uint64 // next leaf to process (saved)
	processed atomic.Uint64 // next leaf to process (in memory)
	stats     atomic.Pointer[Stats]
	lastSeen  atomic.Int64 // received_at (unix ns) of the last event processed
	running   sync.Mutex

	// caughtUp is set once Run has come within MaxLag of the log, and
	// cleared when Run returns; progress is when Run last processed a
	// leaf (unix ns). Behind reads both.
	caughtUp atomic.Bool
	progress atomic.Int64
}

// stalledAfter is how long a detector may process nothing before Behind
// stops holding appends back for it: a detector that is stuck (its log
// reads or alert appends failing) must not stop the log taking events.
var stalledAfter = 10 * time.Second

// Keys of the detector's database.
var (
	keyCursor      = []byte("c")
	keyEnginePfx   = []byte("e/")
	keyAlertPfx    = []byte("a/")
	alertNamespace = []byte("alert\x00") // the alerts' dedup keys in the log
)

// ErrDetectorStopped means Run returned because the log stopped.
var ErrDetectorStopped = errors.New("detect: the log stopped")

// ErrAheadOfLog means the detector's state covers more of the log than
// the log holds (OpenDetector refuses it).
var ErrAheadOfLog = errors.New("detect: the detector's state is ahead of the log")

// OpenDetector opens (or creates) the detector's database in cfg.Dir and
// restores the cursor and the engine's state saved there.
func OpenDetector(ctx context.Context, cfg DetectorConfig) (*Detector, error) {
	if cfg.Log == nil || cfg.Engine == nil || cfg.Dir == "" {
		return nil, errors.New("detect: DetectorConfig.Log, Engine and Dir are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.SaveInterval <= 0 {
		cfg.SaveInterval = DefaultSaveInterval
	}
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = DefaultSaveEvery
	}
	opts := badger.DefaultOptions(cfg.Dir).
		WithLogger(nil).
		WithSyncWrites(true).
		WithNumVersionsToKeep(1).
		// The database holds the alerts' index; the engine's state is in
		// files of its own (see stateStore). Earlier versions kept the
		// state here too, and their memtable size is kept.
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		// Badger's default of four compactors lets its compactions take
		// both cores of a small machine at once (BENCHMARKS.md,
		// "Morning session").
		WithNumCompactors(2).
		// Uncompressed tables are read from their mappings; a block
		// cache would only add work (see ledger.badgerOptions).
		WithBlockCacheSize(0).
		WithIndexCacheSize(4 << 20).
		WithCompression(options.None)
	if cfg.BadgerOptions != nil {
		opts = cfg.BadgerOptions(opts).WithSyncWrites(true)
	}
	if err := badgerutil.RemoveTornFiles(cfg.Dir, cfg.Logger); err != nil {
		return nil, err
	}
	db, err := badgerutil.Open("detector", opts)
	if err != nil {
		// The detector's state is derived from the log: rather than not
		// start, set it aside and replay the log from its first leaf.
		// Alerts raised again are deduplicated by the log.
		aside := fmt.Sprintf("%s.broken-%d", cfg.Dir, time.Now().Unix())
		cfg.Logger.Error("detector state does not open; setting it aside and replaying the log from the start", "dir", cfg.Dir, "moved_to", aside, "err", err)
		if rerr := os.Rename(cfg.Dir, aside); rerr != nil {
			return nil, fmt.Errorf("opening detector state %s: %w (and moving it aside: %v)", cfg.Dir, err, rerr)
		}
		if db, err = badgerutil.Open("detector", opts); err != nil {
			return nil, fmt.Errorf("opening detector state %s: %w", cfg.Dir, err)
		}
	}
	d := &Detector{cfg: cfg, db: db, log: cfg.Logger, engine: cfg.Engine, state: newStateStore(db, cfg.Dir),
		saturation: newSaturationWatch(cfg.Engine.cfg.MaxGroups)}
	cursor, state, err := d.state.load()
	if damaged := (*damagedStateError)(nil); errors.As(err, &damaged) {
		// As above: the state is derived from the log.
		aside := fmt.Sprintf("%s.broken-%d", d.state.dir, time.Now().Unix())
		cfg.Logger.Error("detector state is damaged; setting it aside and replaying the log from the start", "file", damaged.path, "moved_to", aside, "err", damaged.err)
		if rerr := os.Rename(d.state.dir, aside); rerr != nil {
			db.Close()
			return nil, fmt.Errorf("loading detector state: %w (and moving it aside: %v)", err, rerr)
		}
		d.state = newStateStore(db, cfg.Dir)
		cursor, state, err = d.state.load()
	}
	if size, _ := cfg.Log.Size(); err == nil && cursor > size {
		// As the responders' (respond.Open): the log lost entries the
		// detector saw, or is an older backup than its state.
		db.Close()
		return nil, fmt.Errorf("detect: the detector has processed the log's first %d entries, but the log holds %d: "+
			"either the log's storage lost entries it had acknowledged (restore it from a backup that holds them), "+
			"or it was restored from an older backup than %s (restore the log and the detector's and responders' directories from the same backup): %w",
			cursor, size, cfg.Dir, ErrAheadOfLog)
	}
	if err == nil {
		d.cursor.Store(cursor)
		d.processed.Store(cursor)
		err = cfg.Engine.LoadState(entries(state))
	}
	if err == nil {
		err = d.state.removeGarbage()
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("loading detector state: %w", err)
	}
	d.metrics, err = newDetectorMetrics(cfg.Registerer, d)
	if err != nil {
		db.Close()
		return nil, err
	}
	st := cfg.Engine.Stats()
	d.stats.Store(&st)
	d.log.Info("detector opened", "cursor", d.cursor.Load(), "rules", len(st.Rules), "state_groups", st.Groups)
	return d, nil
}

// Cursor returns the index of the next leaf the detector will process;
// every leaf before it has been processed and its alerts are in the log.
func (d *Detector) Cursor() uint64 { return d.cursor.Load() }

// Close closes the detector's database. Call it after Run has returned.
func (d *Detector) Close() error {
	d.running.Lock()
	defer d.running.Unlock()
	if d.metrics.storage != nil {
		d.metrics.storage.Close() // before the storage closes: a scrape may be running
	}
	return errors.Join(d.state.close(), d.db.Close())
}

// pendingAlert is an alert raised but not yet in the log.
type pendingAlert struct {
	alert    *event.Alert
	received time.Time // the triggering event's received_at
}

// Run follows the log and detects until ctx ends, then appends what is
// pending and saves its state, and returns nil. It returns an error if
// the log fails or closes, or if the state cannot be saved as it stops;
// the state up to the last save is then kept, and a restart resumes from
// there. A save that fails while it runs is retried (see flushRunning).
func (d *Detector) Run(ctx context.Context) error {
	if !d.running.TryLock() {
		return errors.New("detect: Run is already running")
	}
	defer d.running.Unlock()
	defer d.caughtUp.Store(false)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	leaves := make(chan ledger.Leaf, 1024)
	followErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ferr error
		defer func() {
			// The error first: the loop reads it once leaves is closed.
			followErr <- ferr
			close(leaves)
		}()
		// A read that fails (storage, a bundle not found) is read again
		// from the leaf after the last one sent: the engine holds the
		// state of every leaf sent, so it goes on where it was, and
		// detection never stops on its own until a restart.
		retry := followRetry
		retry.OnError = func(at uint64, pause time.Duration, err error) {
			d.metrics.followErrors.Inc()
			d.log.Warn("detector could not read the log; retrying", "at", at, "retry_in", pause, "err", err)
		}
		ferr = ledger.FollowInto(fctx, d.cfg.Log.Follow, d.cursor.Load(), retry, leaves)
	}()
	// The follower is stopped before it is waited for: on an error
	// return ctx has not ended, and a follower blocked on the log (or on
	// a full leaves) would otherwise keep Run from returning.
	defer func() {
		cancel()
		wg.Wait()
	}()

	// Alerts go out on a goroutine of their own, one batch at a time, so
	// that detection goes on while the log commits them. (Waiting for
	// each commit held the detector up half of the time under batches of
	// events, and the API pushed appends back meanwhile.)
	pub := startPublisher(ctx, d)
	defer pub.close()
	var pending []pendingAlert
	next := d.cursor.Load()
	d.lastEvent = time.Now()
	start := d.engine.Stats()
	d.saturation.check(&start, d.lastEvent) // the evictions counted from here
	sinceSave := 0
	lastSave := time.Now()
	ticker := time.NewTicker(min(d.cfg.SaveInterval, time.Second))
	defer ticker.Stop()
	// offer hands the pending alerts to the publisher if it is idle.
	offer := func() error {
		var err error
		pending, err = pub.offer(pending)
		return err
	}
	// publishPending appends every alert raised so far and waits until
	// they are durable: what a save needs first.
	publishPending := func(pctx context.Context) error {
		var err error
		pending, err = pub.wait(pending)
		// A batch that ctx's end interrupted is in pending again, to go
		// out with pctx (finish's own context).
		if err != nil && (ctx.Err() == nil || !errors.Is(err, ctx.Err())) {
			return err
		}
		if err := d.publish(pctx, pending); err != nil {
			return err
		}
		clear(pending)
		pending = pending[:0]
		return nil
	}
	flush := func(ctx context.Context) error {
		if err := publishPending(ctx); err != nil {
			return err
		}
		if err := d.save(next); err != nil {
			return err
		}
		sinceSave = 0
		lastSave = time.Now()
		return nil
	}
	// While running, a save that fails does not stop detection: the
	// engine holds its state, the cursor stays at the last save (a
	// restart meanwhile replays from there, as after a crash), and the
	// save is tried again after a pause that doubles from SaveInterval to
	// a minute. Alerts still go out. Only the log failing ends Run.
	saveFailures := 0
	var retryAt time.Time
	flushRunning := func(ctx context.Context) error {
		if err := publishPending(ctx); err != nil {
			return err
		}
		if time.Now().Before(retryAt) {
			return nil
		}
		err := d.save(next)
		if err == nil {
			sinceSave, lastSave = 0, time.Now()
			saveFailures, retryAt = 0, time.Time{}
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		saveFailures++
		pause := min(d.cfg.SaveInterval<<min(saveFailures-1, 16), time.Minute)
		retryAt = time.Now().Add(pause)
		d.metrics.saveFailures.Inc()
		d.log.Error("saving the detector's state failed; detection goes on, and the save is retried", "cursor", next, "retry_in", pause, "err", err)
		return nil
	}
	for {
		select {
		case lf, ok := <-leaves:
			if !ok {
				err := <-followErr
				if ctx.Err() != nil {
					return d.finish(flush)
				}
				if ferr := flush(context.Background()); ferr != nil {
					err = errors.Join(err, ferr)
				}
				return fmt.Errorf("detect: following the log: %w", err)
			}
			if lf.Index != next {
				return fmt.Errorf("detect: the log skipped from leaf %d to %d", next, lf.Index)
			}
			pending = d.process(lf, pending)
			next++
			d.processed.Store(next)
			if len(leaves) == 0 || next%1024 == 0 {
				d.noteProgress(next)
			}
			sinceSave++
			if sinceSave < d.cfg.SaveEvery && len(pending) > 0 {
				// Alerts go out as soon as the publisher is free; the
				// state follows on the save cadence (a restart before
				// then raises them again, and the log deduplicates them).
				if err := offer(); err != nil {
					if ctx.Err() != nil {
						return d.finish(flush)
					}
					return err
				}
			}
			if sinceSave >= d.cfg.SaveEvery && !time.Now().Before(retryAt) {
				if err := flushRunning(ctx); err != nil {
					if ctx.Err() != nil {
						return d.finish(flush)
					}
					return err
				}
			}
		case err := <-pub.done():
			// The batch in flight is durable: what was raised meanwhile
			// goes out now.
			var perr error
			if pending, perr = pub.collect(pending, err); perr != nil {
				if ctx.Err() != nil {
					return d.finish(flush)
				}
				return perr
			}
		case <-ticker.C:
			pending = d.flushIdle(next, pending)
			if d.engine.dirtyMeta && sinceSave == 0 {
				// An idle flush closed windows: save that as a leaf's
				// state is saved, or a restart would reopen them.
				sinceSave = 1
			}
			st := d.engine.Stats()
			d.stats.Store(&st)
			for _, a := range d.saturation.check(&st, time.Now()) {
				d.log.Error("a correlation's state turned over: detections in progress were dropped", "rule", a.Group[0].Value, "summary", a.Summary)
				pending = append(pending, pendingAlert{alert: a, received: a.Time})
			}
			d.updateLag()
			var err error
			if sinceSave > 0 && time.Since(lastSave) >= d.cfg.SaveInterval {
				err = flushRunning(ctx)
			} else {
				err = offer()
			}
			if err != nil {
				if ctx.Err() != nil {
					return d.finish(flush)
				}
				return err
			}
		case <-ctx.Done():
			return d.finish(flush)
		}
	}
}

// publisher appends alerts for Run on a goroutine of its own, one batch
// at a time, so that the engine goes on while the log commits them. Run
// alone calls its methods.
type publisher struct {
	cancel   context.CancelFunc
	batches  chan []pendingAlert
	results  chan error
	inflight []pendingAlert // the batch being appended, nil if none
	spare    []pendingAlert // a batch appended, to collect alerts in again
}

// startPublisher starts the goroutine that publishes what offer hands
// it, with a context that ends with ctx or at close.
func startPublisher(ctx context.Context, d *Detector) *publisher {
	ctx, cancel := context.WithCancel(ctx)
	p := &publisher{cancel: cancel, batches: make(chan []pendingAlert, 1), results: make(chan error, 1)}
	go func() {
		for b := range p.batches {
			p.results <- d.publish(ctx, b)
		}
	}()
	return p
}

// offer hands pending to the goroutine if no batch is in flight, and
// returns where to collect the next alerts. It does not wait: with a
// batch in flight it returns pending as it is. If the batch in flight
// failed, its alerts come back in front of pending, with the error.
func (p *publisher) offer(pending []pendingAlert) ([]pendingAlert, error) {
	if p.inflight != nil {
		select {
		case err := <-p.results:
			return p.collect(pending, err)
		default:
			return pending, nil
		}
	}
	return p.send(pending), nil
}

// done delivers the result of the batch in flight; nil if there is none.
// Whoever receives from it passes the result to collect.
func (p *publisher) done() <-chan error {
	if p.inflight == nil {
		return nil
	}
	return p.results
}

// collect takes back the batch in flight, whose publish returned err, and
// hands pending over if that succeeded, as offer does.
func (p *publisher) collect(pending []pendingAlert, err error) ([]pendingAlert, error) {
	pending, ok := p.finished(pending, err)
	if !ok {
		return pending, err
	}
	return p.send(pending), nil
}

// send hands pending to the idle goroutine, if it holds alerts, and
// returns where to collect the next ones.
func (p *publisher) send(pending []pendingAlert) []pendingAlert {
	if len(pending) == 0 {
		return pending
	}
	p.inflight = pending
	p.batches <- pending
	next := p.spare
	p.spare = nil
	return next
}

// wait waits for the batch in flight, if any, and returns pending; if the
// batch failed, its alerts come back in front of pending, with the error.
func (p *publisher) wait(pending []pendingAlert) ([]pendingAlert, error) {
	if p.inflight == nil {
		return pending, nil
	}
	err := <-p.results
	pending, _ = p.finished(pending, err)
	return pending, err
}

// finished takes back the batch in flight, whose publish returned err,
// and returns pending with the batch's alerts in front if it failed (a
// log that already holds some of them answers those as duplicates).
func (p *publisher) finished(pending []pendingAlert, err error) ([]pendingAlert, bool) {
	b := p.inflight
	p.inflight = nil
	if err != nil {
		return append(b, pending...), false
	}
	clear(b)
	p.spare = b[:0]
	return pending, true
}

// close stops the goroutine. A batch still in flight (Run is returning
// an error) is abandoned: its leaves are after the saved cursor, and a
// restart raises its alerts again.
func (p *publisher) close() {
	p.cancel()
	if p.inflight != nil {
		<-p.results
		p.inflight = nil
	}
	close(p.batches)
}

// noteProgress records that Run has processed the leaves before next,
// and whether that brings it within MaxLag of the log.
func (d *Detector) noteProgress(next uint64) {
	d.progress.Store(time.Now().UnixNano())
	if d.cfg.MaxLag > 0 && !d.caughtUp.Load() {
		if size, _ := d.cfg.Log.Size(); size <= next+d.cfg.MaxLag {
			d.caughtUp.Store(true)
		}
	}
}

// Behind reports whether the detector lags the log by more than MaxLag
// leaves although it is keeping up: Run has caught up since it started
// and processed a leaf within the last 10 seconds. The API then pushes
// appends back, so that the lag, and with it the delay of alerts, stays
// bounded under sustained load. A detector that is catching up (after a
// restart, or replaying a log) or that is stuck never holds appends back.
func (d *Detector) Behind() bool {
	if d.cfg.MaxLag == 0 || !d.caughtUp.Load() {
		return false
	}
	size, _ := d.cfg.Log.Size()
	if size <= d.processed.Load()+d.cfg.MaxLag {
		return false
	}
	return time.Since(time.Unix(0, d.progress.Load())) < stalledAfter
}

// followRetry bounds the pause before following the log again after a
// read failed (tests shorten it).
var followRetry = ledger.DefaultRetry

// finish appends what is pending and saves, with a bounded context of its
// own (ctx has ended).
func (d *Detector) finish(flush func(context.Context) error) error {
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := flush(sctx); err != nil && !errors.Is(err, ledger.ErrClosed) {
		return err
	}
	return nil
}

// process runs the engine on one leaf.
func (d *Detector) process(lf ledger.Leaf, pending []pendingAlert) []pendingAlert {
	rec, err := decodeFollowed(lf, d.cfg.Enricher != nil, &d.rec)
	switch {
	case errors.Is(err, ErrNotEvent):
		d.metrics.otherLeaves.Inc()
		if lf.Index%1024 == 1023 {
			// The sweep Process makes at this index (Engine.Flush).
			pending = appendAlerts(pending, d.engine.Flush(), time.Time{})
		}
		return pending
	case err != nil:
		d.metrics.decodeErrors.Inc()
		d.log.Warn("detector skipped a leaf it cannot decode", "index", lf.Index, "err", err)
		return pending
	}
	if d.cfg.Enricher != nil && d.cfg.Enricher.Enrich(rec.Event) {
		d.metrics.enriched.Inc()
	}
	d.lastSeen.Store(rec.ReceivedAt.UnixNano())
	// Its receive time, not the clock: no clock read per event, and a
	// log idle since before a restart is idle since then.
	d.lastEvent = rec.ReceivedAt
	pending = appendAlerts(pending, d.engine.Process(rec), rec.ReceivedAt)
	d.metrics.events.Inc()
	return pending
}

// appendAlerts appends alerts raised on an event received at received
// (zero for alerts raised by time) to pending.
func appendAlerts(pending []pendingAlert, alerts []*event.Alert, received time.Time) []pendingAlert {
	for _, a := range alerts {
		pending = append(pending, pendingAlert{alert: a, received: received})
	}
	return pending
}

// flushIdle closes, once the detector has processed the whole log, the
// windows that event time would have closed had it gone on with the clock
// since the last event (Engine.FlushIdle), and appends their alerts to
// pending. next is the next leaf to process.
func (d *Detector) flushIdle(next uint64, pending []pendingAlert) []pendingAlert {
	if size, _ := d.cfg.Log.Size(); next < size {
		return pending
	}
	return appendAlerts(pending, d.engine.FlushIdle(time.Since(d.lastEvent)), time.Time{})
}

// decodeFollowed decodes a leaf the log streamed: from what the API
// decoded it from, if the log still held that (Leaf.Decoded), into rec,
// else from its bytes. The event is shared with the log's other
// followers then: with own (the detector will enrich it), the record gets
// its own copy of the event's top level, which is all enrichment writes.
//
// The detector reuses one record for every leaf: the engine keeps no
// pointer to a record past Process (its windows hold times and indexes,
// and hits and firings live within the call), and a record per leaf was
// a twelfth of the objects the server allocated under batches.
func decodeFollowed(lf ledger.Leaf, own bool, rec *Record) (*Record, error) {
	d, ok := lf.Decoded.(*event.Decoded)
	if !ok {
		return DecodeLeaf(lf.Index, lf.Data)
	}
	*rec = Record{Index: lf.Index, ReceivedAt: d.ReceivedAt, Event: d.Event}
	if own {
		ev := *d.Event
		rec.Event = &ev
	}
	return rec, nil
}

// publish appends the pending alerts, waits until they are durable, and
// records them in the alert index. The cursor does not move: a restart
// before the next save replays their leaves and raises them again, and
// the log answers those as duplicates of the same leaves.
func (d *Detector) publish(ctx context.Context, pending []pendingAlert) error {
	if len(pending) == 0 {
		return nil
	}
	indexes, err := d.appendAlerts(ctx, pending)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, p := range pending {
		d.metrics.alerts.WithLabelValues(p.alert.Rule.ID).Inc()
		if !p.received.IsZero() {
			d.metrics.latency.Observe(now.Sub(p.received).Seconds())
		}
	}
	// A write batch, not one transaction: a publish after catching up on
	// a backlog can carry more alerts than one transaction holds. The
	// index need not change atomically: a crash part way replays the
	// leaves, and their alerts are indexed again under the same keys.
	wb := d.db.NewWriteBatch()
	defer wb.Cancel()
	for i, p := range pending {
		if err := wb.Set(alertKey(indexes[i]), encodeAlertRef(p.alert)); err != nil {
			return fmt.Errorf("detect: indexing alerts: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("detect: indexing alerts: %w", err)
	}
	return nil
}

// save stores the engine's changed state and the cursor, next, in one
// transaction. Every alert raised by the leaves before next must already
// be published.
func (d *Detector) save(next uint64) error {
	start := time.Now()
	kind, n, err := d.state.save(next, d.engine)
	if err != nil {
		return fmt.Errorf("detect: saving state at leaf %d: %w", next, err)
	}
	d.metrics.saveSeconds.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	d.metrics.savedBytes.WithLabelValues(kind).Add(float64(n))
	d.cursor.Store(next)
	st := d.engine.Stats()
	d.stats.Store(&st)
	d.metrics.groups.Set(float64(st.Groups))
	d.updateLag()
	return nil
}

// appendAlerts appends alert leaves, retrying while the log pushes back,
// and returns their indexes (the original ones for alerts already there).
func (d *Detector) appendAlerts(ctx context.Context, pending []pendingAlert) ([]uint64, error) {
	if len(pending) == 0 {
		return nil, nil
	}
	indexes := make([]uint64, 0, len(pending))
	for start := 0; start < len(pending); start += 500 {
		chunk := pending[start:min(start+500, len(pending))]
		entries := make([]ledger.Entry, len(chunk))
		now := d.cfg.Clock()
		for i, p := range chunk {
			leaf, err := event.EncodeAlertLeaf(p.alert, now)
			if err != nil {
				return nil, fmt.Errorf("detect: encoding alert of rule %s: %w", p.alert.Rule.ID, err)
			}
			key := append(slices.Clone(alertNamespace), p.alert.DedupKey...)
			// The key stands for the alert itself: an alert raised again
			// after a restart (even by an edited rule) is a duplicate.
			entries[i] = ledger.Entry{Data: leaf, DedupKey: key, Fingerprint: sha256.Sum256(key)}
		}
		backoff := 10 * time.Millisecond
		for {
			res, err := d.cfg.Log.Append(ctx, entries...)
			if errors.Is(err, ledger.ErrPushback) {
				select {
				case <-time.After(backoff):
					backoff = min(2*backoff, time.Second)
					continue
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			if err != nil {
				return nil, fmt.Errorf("detect: appending alerts: %w", err)
			}
			for _, r := range res {
				indexes = append(indexes, r.Index)
				if r.Duplicate {
					d.metrics.duplicates.Inc()
				}
			}
			break
		}
	}
	return indexes, nil
}

func alertKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64(slices.Clone(keyAlertPfx), index)
}

// encodeAlertRef is what the alert index keeps of an alert, to filter
// without reading the log: its time, level and rule id.
func encodeAlertRef(a *event.Alert) []byte {
	b := binary.AppendVarint(nil, a.Time.UnixNano())
	b = append(b, byte(levelRank(a.Rule.Level)))
	return append(b, a.Rule.ID...)
}

func decodeAlertRef(b []byte) (t int64, level int, rule string, ok bool) {
	t, n := binary.Varint(b)
	if n <= 0 || len(b) < n+1 {
		return 0, 0, "", false
	}
	return t, int(b[n]), string(b[n+1:]), true
}

func levelRank(l string) int {
	switch l {
	case event.LevelInformational:
		return 0
	case event.LevelLow:
		return 1
	case event.LevelMedium:
		return 2
	case event.LevelHigh:
		return 3
	case event.LevelCritical:
		return 4
	}
	return -1
}

// ErrBadQuery means an alert query is malformed; the wrapping error says
// which parameter.
var ErrBadQuery = errors.New("detect: bad query")

// AlertQuery selects alerts. Zero fields select everything.
type AlertQuery struct {
	// Since keeps alerts whose time (the event time they fired at) is
	// at or after it.
	Since time.Time
	// Level keeps alerts of this level or above.
	Level string
	// Rule keeps the alerts of the rule with this id.
	Rule string
	// Cursor starts after the alerts already seen: the log index to
	// start from (a page's Next).
	Cursor uint64
	// Limit bounds the alerts returned (default 100, at most 1000).
	Limit int
}

// StoredAlert is an alert as recorded in the log.
type StoredAlert struct {
	Index      uint64
	LeafHash   []byte
	ReceivedAt time.Time
	Alert      *event.Alert
}

// AlertPage is one page of alerts, oldest first. Next, if not zero, is the
// Cursor of the next page.
type AlertPage struct {
	Alerts []StoredAlert
	Next   uint64
}

// Alerts returns the alerts recorded by the detector that match q, in log
// order. Each is read back from the log, with its index and leaf hash, so
// that it can be proven like any entry.
func (d *Detector) Alerts(ctx context.Context, q AlertQuery) (AlertPage, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	if q.Limit > 1000 {
		return AlertPage{}, fmt.Errorf("limit %d is above 1000: %w", q.Limit, ErrBadQuery)
	}
	minLevel := -1
	if q.Level != "" {
		if minLevel = levelRank(q.Level); minLevel < 0 {
			return AlertPage{}, fmt.Errorf("level %q is not one of informational, low, medium, high, critical: %w", q.Level, ErrBadQuery)
		}
	}
	var since int64 = -1 << 63
	if !q.Since.IsZero() {
		since = q.Since.UnixNano()
	}
	var found []uint64
	var next uint64
	err := d.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: keyAlertPfx, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Seek(alertKey(q.Cursor)); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := it.Item().Key()
			index := binary.BigEndian.Uint64(k[len(keyAlertPfx):])
			if len(found) == q.Limit {
				next = index
				return nil
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			t, level, rule, ok := decodeAlertRef(v)
			if !ok || t < since || level < minLevel || q.Rule != "" && rule != q.Rule {
				continue
			}
			found = append(found, index)
		}
		return nil
	})
	if err != nil {
		return AlertPage{}, fmt.Errorf("detect: reading the alert index: %w", err)
	}
	page := AlertPage{Next: next}
	for _, index := range found {
		data, leafHash, err := d.cfg.Log.Entry(ctx, index)
		if err != nil {
			return AlertPage{}, fmt.Errorf("detect: reading alert %d: %w", index, err)
		}
		l, a, err := event.DecodeAlertLeaf(data)
		if err != nil {
			return AlertPage{}, fmt.Errorf("detect: alert %d: %w", index, err)
		}
		page.Alerts = append(page.Alerts, StoredAlert{Index: index, LeafHash: leafHash, ReceivedAt: l.ReceivedAt, Alert: a})
	}
	return page, nil
}

// Status is the detector's progress.
type Status struct {
	// Cursor is the next leaf to process; LogSize the log's size.
	// Saved is the cursor of the saved state, where a restart resumes
	// (at most SaveInterval or SaveEvery leaves behind Cursor).
	Cursor  uint64
	Saved   uint64
	LogSize uint64
	// LagSeconds is how long ago the last processed event was received,
	// while leaves are waiting; 0 when caught up.
	LagSeconds float64
	Engine     Stats
}

// Status returns the detector's progress and the engine's counters (at
// most about a second old).
func (d *Detector) Status() Status {
	size, _ := d.cfg.Log.Size()
	s := Status{Cursor: d.processed.Load(), Saved: d.cursor.Load(), LogSize: size, Engine: *d.stats.Load()}
	if s.Cursor < size {
		if seen := d.lastSeen.Load(); seen != 0 {
			s.LagSeconds = max(0, time.Since(time.Unix(0, seen)).Seconds())
		}
	}
	return s
}

// RuleStatuses returns the loaded rules with their counters (at most
// about a second old).
func (d *Detector) RuleStatuses() []RuleStatus { return d.stats.Load().Rules }

func (d *Detector) updateLag() {
	st := d.Status()
	d.metrics.lagLeaves.Set(float64(st.LogSize - min(st.Cursor, st.LogSize)))
	d.metrics.lagSeconds.Set(st.LagSeconds)
}

type detectorMetrics struct {
	events, otherLeaves, decodeErrors, enriched, duplicates prometheus.Counter
	followErrors                                            prometheus.Counter
	alerts                                                  *prometheus.CounterVec
	latency                                                 prometheus.Histogram
	lagLeaves, lagSeconds, groups                           prometheus.Gauge
	saveSeconds                                             *prometheus.HistogramVec
	savedBytes                                              *prometheus.CounterVec
	saveFailures                                            prometheus.Counter
	storage                                                 *badgerutil.StorageMetrics // nil without a registerer
}

func newDetectorMetrics(reg prometheus.Registerer, d *Detector) (*detectorMetrics, error) {
	m := &detectorMetrics{
		events:       prometheus.NewCounter(prometheus.CounterOpts{Name: "accessledger_detect_events_total", Help: "Events processed by the detector."}),
		otherLeaves:  prometheus.NewCounter(prometheus.CounterOpts{Name: "accessledger_detect_other_leaves_total", Help: "Leaves skipped by the detector because they are not events (alerts, responses)."}),
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "accessledger_detect_decode_errors_total", Help: "Leaves the detector could not decode and skipped."}),
		enriched:     prometheus.NewCounter(prometheus.CounterOpts{Name: "accessledger_detect_enriched_total", Help: "Events given a source.geo or source.asn by enrichment."}),
		duplicates:   prometheus.NewCounter(prometheus.CounterOpts{Name: "accessledger_detect_alert_duplicates_total", Help: "Alerts raised again after a restart and found already in the log."}),
		followErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "accessledger_detect_follow_errors_total", Help: "Reads of the log that failed and were retried by the detector."}),
		alerts:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "accessledger_detect_alerts_total", Help: "Alerts appended to the log, by rule id."}, []string{"rule"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "accessledger_detect_alert_latency_seconds",
			Help:    "Time from the log receiving the event that completed a detection to its alert being durable in the log.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		lagLeaves:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "accessledger_detect_lag_leaves", Help: "Leaves of the log not yet processed by the detector."}),
		lagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "accessledger_detect_lag_seconds", Help: "Age of the last processed event while leaves are waiting; 0 when caught up."}),
		groups:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "accessledger_detect_state_groups", Help: "Groups held in correlation state, over all rules."}),
		saveSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "accessledger_detect_state_save_seconds",
			Help:    "Time to save the detector's state with its cursor: a journal of the changes, or a snapshot of the whole state.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"kind"}),
		savedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "accessledger_detect_state_saved_bytes_total",
			Help: "Bytes of detector state written, by kind of save (journal or snapshot)."}, []string{"kind"}),
		saveFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "accessledger_detect_state_save_failures_total",
			Help: "Saves of the detector's state that failed; each is retried, detection goes on."}),
	}
	if reg == nil {
		return m, nil
	}
	late := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "accessledger_detect_late_events_total", Help: "Events that arrived later than the allowed lateness and were left out of correlation windows (since start)."},
		func() float64 { return float64(d.stats.Load().Late) })
	evicted := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "accessledger_detect_evictions_total", Help: "Groups and window events dropped to keep state within its bounds (since start)."},
		func() float64 { return float64(d.stats.Load().Evicted) })
	m.storage = badgerutil.NewStorageMetrics("detector", d.db)
	for _, c := range []prometheus.Collector{m.events, m.otherLeaves, m.decodeErrors, m.enriched, m.duplicates, m.followErrors, m.alerts, m.latency, m.lagLeaves, m.lagSeconds, m.groups, m.saveSeconds, m.savedBytes, m.saveFailures, late, evicted, m.storage} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("detect: registering metrics: %w", err)
		}
	}
	for _, r := range d.engine.Stats().Rules {
		if r.Alerting {
			m.alerts.WithLabelValues(r.ID) // every alerting rule shows, at 0
		}
	}
	return m, nil
}

// String describes the status for logs.
func (s Status) String() string {
	return "cursor " + strconv.FormatUint(s.Cursor, 10) + " of " + strconv.FormatUint(s.LogSize, 10)
}
