package respond

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/go-json-experiment/json"

	"github.com/accessledger/accessledger/event"
)

// outboxRecord is one message owed to one responder, as the outbox (and
// the dead-letter list) stores it.
type outboxRecord struct {
	Message    Message   `json:"message"`
	Attempts   int       `json:"attempts"`
	NextAt     time.Time `json:"next_at"`
	EnqueuedAt time.Time `json:"enqueued_at"`
	LastStatus int       `json:"last_status,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	// Redelivered counts the times an admin moved it back from the
	// dead letters: each round's outcome is a leaf of its own.
	Redelivered int `json:"redelivered,omitempty"`
}

// enqueue adds a message to a responder's outbox within txn; it is
// scheduled after the commit, and the responder's workers woken. Its
// first attempt comes after the schedule's first delay (0 by default),
// as the schedule says: the delay before each attempt. When the outbox
// holds delivery.max_queued messages the message goes to the dead-letter
// list instead (queueFull), unless an earlier message of its alert is
// queued (behindQueued). The caller holds throttleMu.
func (s *Service) enqueue(txn *badger.Txn, r *responder, m *Message) error {
	now := s.now()
	if r.queued.Load()+int64(r.staged) >= int64(s.cfg.Delivery.MaxQueued) {
		behind, err := s.behindQueued(r, m)
		if err != nil {
			return err
		}
		if !behind {
			return s.queueFull(txn, r, m, now)
		}
	}
	at := now.Add(s.backoff(0))
	rec := outboxRecord{Message: *m, NextAt: at, EnqueuedAt: now}
	v, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("respond: encoding message %s: %w", m.ID, err)
	}
	seq := s.nextSeq()
	if err := txn.Set(responderKey(keyOutboxPfx, r.cfg.Name, seq), v); err != nil {
		return err
	}
	if k := orderKey(r.cfg.Name, m, seq); k != nil {
		if err := txn.Set(k, nil); err != nil {
			return err
		}
		s.stageRank(r, m)
	}
	// Scheduled and counted once the transaction commits
	// (commitThrottle), never before: a worker must not look for a
	// message not yet stored.
	s.stagedDue = append(s.stagedDue, stagedDue{r, seq, at})
	r.staged++
	return nil
}

// stagedDue is a message enqueued by a transaction not yet committed.
type stagedDue struct {
	r   *responder
	seq uint64
	at  time.Time
}

// loadOutbox schedules the messages stored in a responder's outbox and
// counts them, and raises the sequence to their numbers (see load). It appends to missing the order keys its alert messages
// lack (queued by an earlier version), for the caller to write.
func (s *Service) loadOutbox(txn *badger.Txn, r *responder, missing *[][]byte) error {
	ordered := make(map[uint64]bool)
	oprefix := responderPrefix(keyOrderPfx, r.cfg.Name)
	oit := txn.NewIterator(badger.IteratorOptions{Prefix: oprefix})
	for oit.Rewind(); oit.Valid(); oit.Next() {
		k := oit.Item().Key()
		ordered[binary.BigEndian.Uint64(k[len(k)-8:])] = true
	}
	oit.Close()
	prefix := responderPrefix(keyOutboxPfx, r.cfg.Name)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		n++
		k := it.Item().Key()
		seq := binary.BigEndian.Uint64(k[len(prefix):])
		var rec outboxRecord
		if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &rec) }); err != nil {
			return fmt.Errorf("respond: outbox of %s, message %d: %w", r.cfg.Name, seq, err)
		}
		if okey := orderKey(r.cfg.Name, &rec.Message, seq); okey != nil && !ordered[seq] {
			*missing = append(*missing, okey)
		}
		r.due.pushLater(seq, rec.NextAt)
		s.seq = max(s.seq, seq)
	}
	r.queued.Store(int64(n))
	r.due.wake()
	return nil
}

// loadDeadLetters counts a responder's dead letters, notes the oldest's
// number, and raises the sequence to their numbers (see load).
func (s *Service) loadDeadLetters(txn *badger.Txn, r *responder) {
	prefix := responderPrefix(keyDeadPfx, r.cfg.Name)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		seq := binary.BigEndian.Uint64(it.Item().Key()[len(prefix):])
		if n == 0 {
			r.deadFrom = seq
		}
		s.seq = max(s.seq, seq)
		n++
	}
	r.dead.Store(int64(n))
}

// Delivery order. A responder has several workers, and each message is
// retried on its own schedule: without more, an alert's resolution could
// reach the receiver while its alert.raised waits for a retry, which
// would then open the incident again (PagerDuty's dedup_key). So each
// alert message in an outbox has an order key (keyOrderPfx): the alert,
// the message's rank (alert.raised, then alert.acknowledged, then
// alert.resolved) and its sequence number, written and removed in the
// transactions that add the message to the outbox and take it out; the
// order is what is stored, and survives a restart. An acknowledgement or
// resolution is attempted only when no message of its alert sorts before
// it in the responder's outbox; otherwise it is held, without counting
// an attempt, until that message leaves the outbox (heldBack, released
// by finish). A message dead-lettered leaves the outbox too: the later
// ones then go on rather than wait for a redelivery no one may ask for.
// Messages of other alerts, and digests, never wait.

// messageRank orders the messages of one alert.
func messageRank(typ string) byte {
	switch typ {
	case TypeAlertAcknowledged:
		return 1
	case TypeAlertResolved:
		return 2
	}
	return 0
}

// orderPrefix is the prefix of the order keys of an alert's messages in
// a responder's outbox.
func orderPrefix(responder string, alert uint64) []byte {
	return u64(responderPrefix(keyOrderPfx, responder), alert)
}

// orderKey returns the order key of message m, number seq, in a
// responder's outbox: nil for a digest, which concerns no alert.
func orderKey(responder string, m *Message, seq uint64) []byte {
	if m.Type == TypeDigest {
		return nil
	}
	return u64(append(orderPrefix(responder, m.AlertIndex), messageRank(m.Type)), seq)
}

// addOrderKeys writes order keys missing from the outbox (see loadOutbox).
func (s *Service) addOrderKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Set(k, []byte{}); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// heldBack reports whether message seq of r's outbox, rec, must wait for
// an earlier message of its alert still in the outbox; if so, it is held
// until finish takes that one out.
func (s *Service) heldBack(r *responder, seq uint64, rec *outboxRecord) (bool, error) {
	if messageRank(rec.Message.Type) == 0 {
		return false, nil // alert.raised comes first; digests have no alert
	}
	k := orderKey(r.cfg.Name, &rec.Message, seq)
	r.orderMu.Lock()
	defer r.orderMu.Unlock()
	earlier, err := s.inOutboxBefore(r, rec.Message.AlertIndex, k)
	if err != nil || !earlier {
		return false, err
	}
	r.due.hold(rec.Message.AlertIndex, seq, rec.NextAt)
	return true, nil
}

// inOutboxBefore reports whether a message of alert whose order key
// sorts before the key before is in r's outbox.
func (s *Service) inOutboxBefore(r *responder, alert uint64, before []byte) (bool, error) {
	earlier := false
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: orderPrefix(r.cfg.Name, alert)})
		defer it.Close()
		for it.Rewind(); it.Valid() && bytes.Compare(it.Item().Key(), before) < 0; it.Next() {
			okey := it.Item().Key()
			_, err := txn.Get(responderKey(keyOutboxPfx, r.cfg.Name, binary.BigEndian.Uint64(okey[len(okey)-8:])))
			if err == nil {
				earlier = true
				return nil
			}
			if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			// An order key whose message is gone holds nothing back.
		}
		return nil
	})
	return earlier, err
}

// deliver is one of a responder's workers: it takes the next message due,
// makes one attempt and records the outcome, until ctx ends.
func (s *Service) deliver(ctx context.Context, r *responder) error {
	for {
		seq, ok := r.due.next(ctx, s.now, &r.disabled)
		if !ok {
			return nil
		}
		if err := s.attempt(ctx, r, seq); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Error("delivery bookkeeping failed; retrying in a second", "responder", r.cfg.Name, "err", err)
			r.due.push(seq, s.now().Add(time.Second))
		}
	}
}

// attempt delivers one message once and saves the outcome.
func (s *Service) attempt(ctx context.Context, r *responder, seq uint64) error {
	key := responderKey(keyOutboxPfx, r.cfg.Name, seq)
	var rec outboxRecord
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &rec) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil // delivered or dead-lettered by another path
	}
	if err != nil {
		return err
	}
	if held, err := s.heldBack(r, seq, &rec); held || err != nil {
		return err
	}
	timeout := r.cfg.Timeout
	if timeout <= 0 {
		timeout = s.cfg.Delivery.Timeout
	}
	actx, cancel := context.WithTimeout(ctx, timeout+time.Second)
	start := time.Now()
	out := r.sender.Send(actx, &rec.Message)
	cancel()
	if ctx.Err() != nil && out.Err != nil {
		// Shutting down: the attempt does not count.
		r.due.push(seq, rec.NextAt)
		return nil
	}
	rec.Attempts++
	rec.LastStatus = out.Status
	s.metrics.attempt(r.cfg.Name, out, time.Since(start))
	if out.Err == nil {
		s.metrics.delivered(r.cfg.Name, s.now().Sub(rec.Message.Time))
		return s.finish(ctx, r, key, &rec, event.ActionDelivered, "")
	}
	rec.LastError = truncateUTF8(out.Err.Error(), event.MaxResponseOutput)
	s.log.Warn("delivery failed", "responder", r.cfg.Name, "message", rec.Message.ID, "attempt", rec.Attempts, "status", out.Status, "err", rec.LastError)
	if err := s.countFailure(rec.Message.Time); err != nil {
		return err
	}
	if out.Gone {
		if err := s.disable(r, fmt.Sprintf("the endpoint answered %d Gone", out.Status)); err != nil {
			return err
		}
	}
	if out.Permanent || rec.Attempts >= s.cfg.Delivery.MaxAttempts {
		return s.finish(ctx, r, key, &rec, event.ActionDeadLettered, out.Output)
	}
	delay := s.backoff(rec.Attempts)
	if out.RetryAfter > delay {
		delay = out.RetryAfter
	}
	rec.NextAt = s.now().Add(delay)
	v, err := json.Marshal(&rec)
	if err != nil {
		return err
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key, v) }); err != nil {
		return err
	}
	r.due.push(seq, rec.NextAt)
	return nil
}

// backoff is the delay before the attempt after the given number of
// attempts: the schedule's entry (its last beyond it), with up to ±10 %
// jitter so that retries of many messages spread out.
func (s *Service) backoff(attempts int) time.Duration {
	sched := s.cfg.Delivery.Schedule
	d := sched[min(attempts, len(sched)-1)]
	if d <= 0 {
		return 0
	}
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

// finish removes a message from the outbox (into the dead-letter list if
// it was given up) and records the outcome in the log.
func (s *Service) finish(ctx context.Context, r *responder, key []byte, rec *outboxRecord, action, output string) error {
	resp, dedup := s.outcome(r, rec, action, output)
	seq := binary.BigEndian.Uint64(key[len(key)-8:])
	okey := orderKey(r.cfg.Name, &rec.Message, seq)
	dead := action == event.ActionDeadLettered
	if dead {
		r.deadMu.Lock()
	}
	err := s.update(func(txn *badger.Txn) error {
		if err := txn.Delete(key); err != nil {
			return err
		}
		if okey != nil {
			if err := txn.Delete(okey); err != nil {
				return err
			}
		}
		if action == event.ActionDeadLettered {
			v, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if err := txn.Set(append(slices.Clone(keyDeadPfx), key[len(keyOutboxPfx):]...), v); err != nil {
				return err
			}
		}
		return s.queueRecord(txn, resp, dedup)
	})
	if dead {
		if err == nil {
			r.dead.Add(1)
			r.deadFrom = min(r.deadFrom, seq)
		}
		r.deadMu.Unlock()
	}
	if err != nil {
		return err
	}
	r.queued.Add(-1)
	if okey != nil {
		// The alert's later messages held for this one may go on (after
		// the commit: see heldBack).
		r.orderMu.Lock()
		r.due.release(rec.Message.AlertIndex)
		r.orderMu.Unlock()
	}
	if dead {
		s.metrics.deadLettered.WithLabelValues(r.cfg.Name).Inc()
		s.log.Error("delivery given up; the message is in the dead-letter list", "responder", r.cfg.Name, "message", rec.Message.ID, "attempts", rec.Attempts)
		if err := s.trimDead(r); err != nil {
			// The outcome is saved; the next dead letter trims again.
			s.log.Error("deleting the oldest dead letters over delivery.max_dead_letters failed", "responder", r.cfg.Name, "err", err)
		}
	}
	s.wakeRecorder()
	return nil
}

// outcome returns the response leaf recording the final outcome of
// rec's delivery to r, and its dedup key, which makes the outcome appear
// once in the log, even when it is recorded again after a crash; once
// per round of redelivery.
func (s *Service) outcome(r *responder, rec *outboxRecord, action, output string) (*event.Response, string) {
	resp := &event.Response{Action: action, Time: s.now(), By: r.cfg.Name, Responder: r.cfg.Name,
		Message: rec.Message.ID, Attempts: rec.Attempts, Status: rec.LastStatus, Error: rec.LastError,
		Output: truncateUTF8(output, event.MaxResponseOutput)}
	if rec.Message.Type != TypeDigest {
		idx := rec.Message.AlertIndex
		resp.Alert = &idx
		if rec.Message.Alert != nil {
			resp.DedupKey = rec.Message.Alert.DedupKey
		}
	}
	if action == event.ActionDelivered {
		resp.Error = ""
	}
	dedup := fmt.Sprintf("%s\x00%s\x00%s", action, r.cfg.Name, rec.Message.ID)
	if rec.Redelivered > 0 {
		dedup += fmt.Sprintf("\x00%d", rec.Redelivered)
	}
	return resp, dedup
}

// disable stops deliveries to a responder until an admin enables it.
func (s *Service) disable(r *responder, reason string) error {
	if r.disabled.Swap(true) {
		return nil
	}
	s.log.Error("responder disabled: its endpoint is gone; enable it again through the admin API once fixed", "responder", r.cfg.Name, "reason", reason)
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(append(slices.Clone(keyDisabled), r.cfg.Name...), []byte(reason))
	})
}

// truncateUTF8 cuts s to at most n bytes at a rune boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// dueQueue orders a responder's outbox by the time each message is due.
// It holds only sequence numbers and times; the messages stay in Badger.
type dueQueue struct {
	mu     sync.Mutex
	h      dueHeap
	queued map[uint64]bool
	wakeCh chan struct{}
	// held are the messages waiting for an earlier message of their
	// alert, by alert (see heldBack).
	held map[uint64][]dueItem
}

type dueItem struct {
	seq uint64
	at  time.Time
}

type dueHeap []dueItem

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)   { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newDueQueue() *dueQueue {
	return &dueQueue{queued: make(map[uint64]bool), wakeCh: make(chan struct{}, 1)}
}

// push schedules seq at, and wakes a worker.
func (q *dueQueue) push(seq uint64, at time.Time) {
	q.pushLater(seq, at)
	q.wake()
}

// pushLater schedules seq without waking a worker: the message is not
// committed yet (wake after the commit).
func (q *dueQueue) pushLater(seq uint64, at time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queued[seq] {
		return
	}
	q.queued[seq] = true
	heap.Push(&q.h, dueItem{seq, at})
}

func (q *dueQueue) wake() {
	select {
	case q.wakeCh <- struct{}{}:
	default:
	}
}

// hold sets seq aside until release(alert).
func (q *dueQueue) hold(alert, seq uint64, at time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.held == nil {
		q.held = make(map[uint64][]dueItem)
	}
	q.held[alert] = append(q.held[alert], dueItem{seq, at})
}

// release schedules the messages held for alert again, and wakes a
// worker.
func (q *dueQueue) release(alert uint64) {
	q.mu.Lock()
	items := q.held[alert]
	delete(q.held, alert)
	for _, it := range items {
		if !q.queued[it.seq] {
			q.queued[it.seq] = true
			heap.Push(&q.h, it)
		}
	}
	q.mu.Unlock()
	if len(items) > 0 {
		q.wake()
	}
}

// next waits for the next message due and takes it; false when ctx
// ended. While disabled it hands out nothing.
func (q *dueQueue) next(ctx context.Context, now func() time.Time, disabled interface{ Load() bool }) (uint64, bool) {
	for {
		if ctx.Err() != nil {
			return 0, false
		}
		wait := time.Hour
		if !disabled.Load() {
			q.mu.Lock()
			if len(q.h) > 0 {
				it := q.h[0]
				if d := it.at.Sub(now()); d <= 0 {
					heap.Pop(&q.h)
					delete(q.queued, it.seq)
					more := len(q.h) > 0
					q.mu.Unlock()
					if more {
						q.wake() // let another worker look
					}
					return it.seq, true
				} else {
					wait = d
				}
			}
			q.mu.Unlock()
		}
		t := time.NewTimer(wait)
		select {
		case <-q.wakeCh:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, false
		}
		t.Stop()
	}
}
