package respond

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// maxBatchLeaves bounds the leaves processed in one transaction.
const maxBatchLeaves = 2000

// minFlushGap is the least time between two saves of alert and response
// leaves: the first alert after a quiet spell is saved (and its
// deliveries queued, its decision made) at once; under a stream of alerts
// they are gathered for at most this long, so that the saves and the
// decisions made with them (makeDecisions) stay near 100 a second
// whatever the rate of alerts.
var minFlushGap = 10 * time.Millisecond

// follow processes the log's leaves from the cursor: it keeps the alerts
// and their statuses, queues notifications, makes decisions and counts
// the day's events. Each batch of leaves is saved, with the cursor, in
// one transaction, so that after a crash the same leaves are processed
// again (deliveries are at least once; the store's writes are
// idempotent).
func (s *Service) follow(ctx context.Context) error {
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	leaves := make(chan ledger.Leaf, 1024)
	followErr := make(chan error, 1)
	go func() {
		var ferr error
		defer func() {
			followErr <- ferr
			close(leaves)
		}()
		// A read that fails is read again from where it was: what was
		// processed stays in memory.
		retry := followRetry
		retry.OnError = func(at uint64, pause time.Duration, err error) {
			s.metrics.followErrors.Inc()
			s.log.Warn("responders could not read the log; retrying", "at", at, "retry_in", pause, "err", err)
		}
		ferr = ledger.FollowInto(fctx, s.cfg.Log.Follow, s.cursor.Load(), retry, leaves)
	}()
	next := s.cursor.Load()
	// Only alert and response leaves need a transaction of their own;
	// events are counted in memory and saved, with the cursor, at most
	// every second (or every saveEvery leaves), so that following a busy
	// log costs one synced write a second, not one per commit.
	var pending []ledger.Leaf
	days := make(map[string]*dayStats)
	// lastFlush is when alert or response leaves were last saved; gap
	// fires minFlushGap after it when leaves wait for the next save.
	var lastFlush time.Time
	gap := time.NewTimer(time.Hour)
	gap.Stop()
	defer gap.Stop()
	flush := func(ctx context.Context) error {
		if next == s.cursor.Load() {
			return nil
		}
		if len(pending) > 0 {
			lastFlush = time.Now()
		}
		if err := s.processBatch(ctx, pending, days, next); err != nil {
			return err
		}
		pending = pending[:0]
		clear(days)
		return nil
	}
	tick := time.NewTicker(followTick)
	defer tick.Stop()
	for {
		select {
		case lf, ok := <-leaves:
			if !ok {
				err := <-followErr
				if ctx.Err() != nil || errors.Is(err, ledger.ErrClosed) {
					s.flushAtExit(flush)
					return nil
				}
				return fmt.Errorf("respond: following the log: %w", err)
			}
			if lf.Index != next {
				return fmt.Errorf("respond: the log skipped from leaf %d to %d", next, lf.Index)
			}
			next++
			switch event.LeafKind(lf.Data) {
			case event.KindAlert, event.KindResponse:
				pending = append(pending, lf)
			case event.KindEvent:
				// Looked up without converting the day to a string; only
				// a new day allocates its key.
				d := leafDayBytes(lf.Data)
				st := days[string(d)]
				if st == nil {
					st = &dayStats{}
					days[string(d)] = st
				}
				st.Events++
			}
			save := len(pending) >= maxBatchLeaves || next-s.cursor.Load() >= saveEvery
			if !save && len(leaves) == 0 && len(pending) > 0 {
				// Caught up with alerts waiting: save them now, or once
				// minFlushGap has passed since the last save.
				if wait := minFlushGap - time.Since(lastFlush); wait > 0 {
					gap.Reset(wait)
				} else {
					save = true
				}
			}
			if save {
				if err := flush(ctx); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
			}
		case <-gap.C:
			if len(pending) == 0 {
				continue
			}
			if err := flush(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		case <-tick.C:
			if err := flush(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			s.metrics.updateLag(s)
		case <-ctx.Done():
			s.flushAtExit(flush)
			return nil
		}
	}
}

// followRetry bounds the pause before following the log again after a
// read failed (tests shorten it).
var followRetry = ledger.DefaultRetry

// saveEvery bounds the leaves processed between two saves of the cursor.
const saveEvery = 100_000

// followTick is how often the follower saves the events it counted and
// the cursor when no alert makes it save sooner (tests lengthen it).
var followTick = time.Second

// flushAtExit saves what was processed, with a bounded context of its own
// (the service's has ended). A failure only means those leaves are
// processed again after the restart.
func (s *Service) flushAtExit(flush func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := flush(ctx); err != nil {
		s.log.Warn("saving the responders' cursor at shutdown failed; the last leaves are processed again after the restart", "err", err)
	}
}

// batchState collects what a batch of leaves changes.
type batchState struct {
	txn       *badger.Txn
	alerts    int
	queued    map[*responder]int
	decisions []DecisionInput
	days      map[string]*dayStats
	statuses  map[uint64]byte // alert statuses changed in this batch
}

// processBatch processes the alert and response leaves of a batch and
// saves the outcome, the events counted (days) and the cursor (next) in
// one transaction; a batch too big for one transaction is split (the
// first part saving the cursor at the second's first leaf).
func (s *Service) processBatch(ctx context.Context, leaves []ledger.Leaf, days map[string]*dayStats, next uint64) error {
	err := s.processTxn(ctx, leaves, days, next)
	for try := 0; errors.Is(err, badger.ErrConflict) && try < 10; try++ {
		// Another writer touched a key the batch read; do it again.
		err = s.processTxn(ctx, leaves, days, next)
	}
	if errors.Is(err, badger.ErrTxnTooBig) && len(leaves) > 1 {
		half := len(leaves) / 2
		if err := s.processBatch(ctx, leaves[:half], nil, leaves[half].Index); err != nil {
			return err
		}
		return s.processBatch(ctx, leaves[half:], days, next)
	}
	return err
}

func (s *Service) processTxn(ctx context.Context, leaves []ledger.Leaf, days map[string]*dayStats, next uint64) error {
	b := &batchState{queued: make(map[*responder]int), days: make(map[string]*dayStats), statuses: make(map[uint64]byte)}
	s.throttleMu.Lock()
	defer s.throttleMu.Unlock()
	err := s.update(func(txn *badger.Txn) error {
		b.txn = txn
		b.alerts, b.decisions = 0, b.decisions[:0]
		clear(b.queued)
		clear(b.days)
		clear(b.statuses)
		for _, lf := range leaves {
			if err := s.processLeaf(ctx, b, lf); err != nil {
				return err
			}
		}
		if s.throttleErr != nil {
			return s.throttleErr
		}
		// Decisions are made before the cursor moves past their alerts;
		// Add is idempotent by key, so a crash (or a retried batch) makes
		// each one once.
		if err := s.makeDecisions(ctx, b.decisions); err != nil {
			return err
		}
		for day, st := range days {
			b.day(day).add(st)
		}
		for day, st := range b.days {
			if err := addDayStats(txn, day, st); err != nil {
				return err
			}
		}
		return txn.Set(keyCursor, u64(nil, next))
	})
	if err != nil {
		s.rollbackThrottle()
	}
	if errors.Is(err, badger.ErrTxnTooBig) || errors.Is(err, badger.ErrConflict) {
		return err
	}
	if err != nil {
		return fmt.Errorf("respond: saving leaves up to %d: %w", next, err)
	}
	s.commitThrottle()
	s.cursor.Store(next)
	for r, n := range b.queued {
		if n > 0 {
			r.due.wake()
		}
	}
	if b.alerts > 0 || len(b.statuses) > 0 {
		s.feed.notify()
	}
	s.metrics.updateLag(s)
	return nil
}

// makeDecisions makes the decisions of a batch's alerts. A decision that
// cannot be made (an allow-listed address, a full store, a value that is
// not an address) is logged and skipped; a storage error stops the batch.
//
// They are made decisionsPerCommit at a time, each group committed and
// recorded together.
func (s *Service) makeDecisions(ctx context.Context, ins []DecisionInput) error {
	for len(ins) > 0 {
		group := ins[:min(len(ins), decisionsPerCommit)]
		ins = ins[len(group):]
		res, err := s.decisions.AddAll(ctx, group)
		if err != nil {
			return fmt.Errorf("respond: decisions for alerts %d to %d: %w", group[0].AlertIndex, group[len(group)-1].AlertIndex, err)
		}
		for i, r := range res {
			in := &group[i]
			var inputErr *DecisionInputError
			switch {
			case r.Err == nil:
			case errors.Is(r.Err, ErrAllowListed):
				s.log.Info("no decision for an allow-listed address", "alert", in.AlertIndex, "scenario", in.Scenario)
			case errors.Is(r.Err, ErrEnded):
				// Responders off, or catching up on an old log.
				s.log.Info("no decision: its time passed before the responders processed the alert", "alert", in.AlertIndex, "scenario", in.Scenario, "err", r.Err)
			case errors.Is(r.Err, ErrDecisionsFull), errors.As(r.Err, &inputErr):
				s.log.Error("decision not made", "alert", in.AlertIndex, "scenario", in.Scenario, "err", r.Err)
			default:
				return fmt.Errorf("respond: decision for alert %d: %w", in.AlertIndex, r.Err)
			}
		}
	}
	return nil
}

// decisionsPerCommit bounds the decisions committed (and recorded) in one
// transaction: a few hundred bytes each, well within Badger's limit.
const decisionsPerCommit = 256

// processLeaf handles one leaf within the batch's transaction.
func (s *Service) processLeaf(ctx context.Context, b *batchState, lf ledger.Leaf) error {
	kind := event.LeafKind(lf.Data)
	if kind != event.KindAlert && kind != event.KindResponse {
		return nil
	}
	// Both may queue messages, whose ids need the log's tag.
	if err := s.loadLogTag(ctx); err != nil {
		return err
	}
	if kind == event.KindAlert {
		return s.processAlert(b, lf)
	}
	return s.processResponse(ctx, b, lf)
}

// day returns the counters of a day.
func (b *batchState) day(d string) *dayStats {
	st := b.days[d]
	if st == nil {
		st = &dayStats{}
		b.days[d] = st
	}
	return st
}

// leafDay returns the UTC day (2006-01-02) a canonical leaf was received.
func leafDay(leaf []byte) string { return string(leafDayBytes(leaf)) }

// leafDayBytes is leafDay within leaf (or "unknown").
func leafDayBytes(leaf []byte) []byte {
	_, rest, ok := bytes.Cut(leaf, []byte(`"received_at":"`))
	if ok && len(rest) >= 10 {
		return rest[:10]
	}
	return []byte("unknown")
}

func (s *Service) processAlert(b *batchState, lf ledger.Leaf) error {
	l, a, err := event.DecodeAlertLeaf(lf.Data)
	if err != nil {
		s.metrics.badLeaves.Inc()
		s.log.Warn("responders skipped an alert leaf they cannot decode", "index", lf.Index, "err", err)
		return nil
	}
	st := b.day(leafDay(lf.Data))
	st.Alerts++
	st.byRule(a.Rule.ID)
	st.byLevel(a.Rule.Level)
	b.alerts++
	s.metrics.alerts.Inc()
	h := lf.Hash()
	v := make([]byte, 0, len(h)+len(lf.Data))
	v = append(append(v, h...), lf.Data...)
	if err := b.txn.Set(indexKey(keyAlertPfx, lf.Index), v); err != nil {
		return err
	}
	msg := &Message{ID: s.messageID(AlertID(lf.Index)), Type: TypeAlertRaised, Time: l.ReceivedAt, AlertIndex: lf.Index, Alert: a, Count: 1}
	for _, r := range s.responders {
		if !r.cfg.Filter.Match(a) {
			continue
		}
		m := msg
		if r.cfg.Throttle > 0 {
			held, ok := s.admit(b.txn, r, msg)
			if !ok {
				continue
			}
			if held > 0 {
				// r's own copy: the responders after r were given r's
				// held count too.
				c := *msg
				c.Count += held
				m = &c
			}
		}
		if err := s.enqueue(b.txn, r, m); err != nil {
			return err
		}
		b.queued[r]++
	}
	if s.decisions != nil {
		b.decisions = append(b.decisions, DecisionsForAlert(a, lf.Index, l.ReceivedAt, s.decisionDuration)...)
	}
	return nil
}

func (s *Service) processResponse(ctx context.Context, b *batchState, lf ledger.Leaf) error {
	l, r, err := event.DecodeResponseLeaf(lf.Data)
	if err != nil {
		s.metrics.badLeaves.Inc()
		s.log.Warn("responders skipped a response leaf they cannot decode", "index", lf.Index, "err", err)
		return nil
	}
	if r.Action == event.ActionDeadLettered {
		b.day(leafDay(lf.Data)).DeadLettered++
	}
	if r.Action == event.ActionDigest {
		msg := &Message{ID: s.messageID(fmt.Sprintf("digest_%d", lf.Index)), Type: TypeDigest, Time: l.ReceivedAt, Count: 1, Digest: r.Digest}
		for _, rs := range s.responders {
			if rs.cfg.Digest && rs.cfg.Type != TypePagerDuty {
				if err := s.enqueue(b.txn, rs, msg); err != nil {
					return err
				}
				b.queued[rs]++
			}
		}
		return nil
	}
	if r.Alert == nil {
		return nil
	}
	alert := *r.Alert
	if err := b.txn.Set(linkKey(alert, lf.Index), []byte(r.Action)); err != nil {
		return err
	}
	if r.Action != event.ActionAcknowledged && r.Action != event.ActionResolved {
		return nil
	}
	cur, ok := b.statuses[alert]
	if !ok {
		if cur, err = getStatus(b.txn, alert); err != nil {
			return err
		}
	}
	nb := statusByte(r.Action)
	if nb <= cur {
		return nil // resolved stays resolved; a second acknowledgement changes nothing
	}
	b.statuses[alert] = nb
	if err := b.txn.Set(indexKey(keyStatusPfx, alert), []byte{nb}); err != nil {
		return err
	}
	stored, err := s.storedAlert(ctx, b.txn, alert)
	if err != nil || stored == nil {
		return err
	}
	typ := TypeAlertAcknowledged
	if r.Action == event.ActionResolved {
		typ = TypeAlertResolved
	}
	msg := &Message{ID: s.messageID(fmt.Sprintf("%s_%d", AlertID(alert), lf.Index)), Type: typ, Time: l.ReceivedAt,
		AlertIndex: alert, Alert: stored.Alert, Count: 1, By: r.By, Note: r.Note}
	for _, rs := range s.responders {
		if rs.lifecycle && rs.cfg.Filter.Match(stored.Alert) {
			if err := s.enqueue(b.txn, rs, msg); err != nil {
				return err
			}
			b.queued[rs]++
		}
	}
	return nil
}

// getStatus reads an alert's status byte (0, open, if none).
func getStatus(txn *badger.Txn, alert uint64) (byte, error) {
	item, err := txn.Get(indexKey(keyStatusPfx, alert))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var st byte
	err = item.Value(func(v []byte) error {
		if len(v) == 1 {
			st = v[0]
		}
		return nil
	})
	return st, err
}

// Match reports whether the filter selects alert a.
func (f Filter) Match(a *event.Alert) bool {
	if len(f.Levels) > 0 && !containsFold(f.Levels, a.Rule.Level) {
		return false
	}
	if len(f.Rules) > 0 && !containsFold(f.Rules, a.Rule.ID) {
		return false
	}
	if len(f.Tags) > 0 {
		for _, t := range a.Rule.Tags {
			if containsFold(f.Tags, t) {
				return true
			}
		}
		return false
	}
	return true
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(v string) bool { return strings.EqualFold(v, s) })
}

// now is the service's clock.
func (s *Service) now() time.Time { return s.cfg.Clock() }
