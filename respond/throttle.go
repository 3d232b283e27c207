package respond

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/go-json-experiment/json"
)

// throttleState is one responder's throttling of one rule and group: the
// end of the current period, and the alerts held back in it (counted;
// the latest is sent at the end of the period, carrying the count).
type throttleState struct {
	Responder string    `json:"responder"`
	Until     time.Time `json:"until"`
	Held      int       `json:"held"`
	Latest    *Message  `json:"latest,omitempty"`
}

// throttleKey groups alerts by rule and group-by values: the alert's dedup
// key without its window.
func throttleKey(r *responder, m *Message) string {
	var b strings.Builder
	b.WriteString(r.cfg.Name)
	b.WriteByte(0)
	b.WriteString(m.Alert.Rule.ID)
	for _, g := range m.Alert.Group {
		b.WriteByte(0)
		b.WriteString(g.Field)
		b.WriteByte('=')
		b.WriteString(g.Value)
	}
	return b.String()
}

// admit decides whether an alert is sent now (the first of its rule and
// group in the period) or held back and counted. Sent now, held is how
// many alerts the previous period held back that the flusher has not sent
// yet: r's notification of m counts them too (m itself, shared by every
// responder, is not changed). Called by the follower with throttleMu
// held; changes are staged until the batch commits.
func (s *Service) admit(txn *badger.Txn, r *responder, m *Message) (held int, ok bool) {
	k := throttleKey(r, m)
	st := s.throttleStaged(k)
	now := s.now()
	if st == nil || !now.Before(st.Until) {
		if st != nil {
			held = st.Held
		}
		s.stageThrottle(txn, k, &throttleState{Responder: r.cfg.Name, Until: now.Add(r.cfg.Throttle)})
		return held, true
	}
	n := *st
	n.Held++
	latest := *m
	n.Latest = &latest
	s.stageThrottle(txn, k, &n)
	s.metrics.throttled.WithLabelValues(r.cfg.Name).Inc()
	return 0, false
}

// throttleStaged returns the staged state of k, or the committed one.
func (s *Service) throttleStaged(k string) *throttleState {
	if st, ok := s.throttlePending[k]; ok {
		return st
	}
	return s.throttle[k]
}

func (s *Service) stageThrottle(txn *badger.Txn, k string, st *throttleState) {
	if s.throttlePending == nil {
		s.throttlePending = make(map[string]*throttleState)
	}
	s.throttlePending[k] = st
	v, err := json.Marshal(st)
	if err == nil {
		err = txn.Set(append([]byte(string(keyThrottlePf)), k...), v)
	}
	if err != nil {
		s.throttleErr = err
	}
}

// commitThrottle applies what a committed transaction staged: the
// throttling state, the messages it enqueued and those it dead-lettered
// for a full queue.
func (s *Service) commitThrottle() {
	for k, st := range s.throttlePending {
		s.throttle[k] = st
	}
	clear(s.throttlePending)
	s.throttleErr = nil
	for _, d := range s.stagedDue {
		d.r.due.pushLater(d.seq, d.at)
	}
	s.stagedDue = s.stagedDue[:0]
	clear(s.stagedRanks)
	var full []*responder
	for _, r := range s.responders {
		r.queued.Add(int64(r.staged))
		r.staged = 0
		if r.stagedFull > 0 {
			s.committedFull(r)
			full = append(full, r)
		}
	}
	if len(full) > 0 {
		s.wakeRecorder()
	}
	for _, r := range full {
		if err := s.trimDead(r); err != nil {
			s.log.Error("deleting the oldest dead letters over delivery.max_dead_letters failed", "responder", r.cfg.Name, "err", err)
		}
	}
}

// rollbackThrottle forgets what a failed transaction staged.
func (s *Service) rollbackThrottle() {
	clear(s.throttlePending)
	s.throttleErr = nil
	s.stagedDue = s.stagedDue[:0]
	clear(s.stagedRanks)
	for _, r := range s.responders {
		if r.stagedFull > 0 {
			r.deadMu.Unlock() // locked by queueFull
		}
		r.staged, r.stagedFull, r.stagedFullID = 0, 0, ""
	}
}

// loadThrottle restores the throttling state.
func (s *Service) loadThrottle(txn *badger.Txn) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: keyThrottlePf, PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := string(it.Item().Key()[len(keyThrottlePf):])
		var st throttleState
		if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &st) }); err != nil {
			return fmt.Errorf("respond: throttling state %q: %w", k, err)
		}
		s.throttle[k] = &st
	}
	return nil
}

// flushThrottled sends, at the end of each period, one notification for
// the alerts held back in it, carrying their count.
func (s *Service) flushThrottled(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := s.flushThrottledOnce(); err != nil {
			s.log.Error("sending throttled notifications failed; retrying", "err", err)
		}
	}
}

func (s *Service) flushThrottledOnce() error {
	s.throttleMu.Lock()
	defer s.throttleMu.Unlock()
	now := s.now()
	var woke []*responder
	err := s.update(func(txn *badger.Txn) error {
		for k, st := range s.throttle {
			if now.Before(st.Until) {
				continue
			}
			if st.Held == 0 || st.Latest == nil {
				delete(s.throttle, k) // the period is over; forget it
				if err := txn.Delete(append([]byte(string(keyThrottlePf)), k...)); err != nil {
					return err
				}
				continue
			}
			r := s.byName[st.Responder]
			if r == nil {
				continue
			}
			status, err := getStatus(txn, st.Latest.AlertIndex)
			if err != nil {
				return err
			}
			if status >= statusByte(StatusResolved) {
				// Resolved while held back: its resolution has gone
				// out, and an alert.raised after it would open the
				// incident again (PagerDuty), for good. The period ends
				// without a notification.
				s.log.Info("alerts held back by throttling were resolved before the end of the period; not notified",
					"responder", st.Responder, "alert", st.Latest.AlertIndex, "held", st.Held)
				delete(s.throttle, k)
				if err := txn.Delete(append([]byte(string(keyThrottlePf)), k...)); err != nil {
					return err
				}
				continue
			}
			m := *st.Latest
			m.Count = st.Held
			if err := s.enqueue(txn, r, &m); err != nil {
				return err
			}
			woke = append(woke, r)
			// A new period starts: alerts in it are held back again.
			s.stageThrottle(txn, k, &throttleState{Responder: st.Responder, Until: now.Add(r.cfg.Throttle)})
		}
		return s.throttleErr
	})
	if err != nil {
		s.rollbackThrottle()
		return err
	}
	s.commitThrottle()
	for _, r := range woke {
		r.due.wake()
	}
	return nil
}
