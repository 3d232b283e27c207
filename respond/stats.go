package respond

import (
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/go-json-experiment/json"
)

// dayStats counts one UTC day of the log for the digest.
type dayStats struct {
	Events           uint64            `json:"events"`
	Alerts           uint64            `json:"alerts"`
	AlertsByRule     map[string]uint64 `json:"alerts_by_rule,omitempty"`
	AlertsByLevel    map[string]uint64 `json:"alerts_by_level,omitempty"`
	DeliveryFailures uint64            `json:"delivery_failures"`
	DeadLettered     uint64            `json:"dead_lettered"`
}

func (d *dayStats) byRule(rule string) {
	if d.AlertsByRule == nil {
		d.AlertsByRule = make(map[string]uint64)
	}
	d.AlertsByRule[rule]++
}

func (d *dayStats) byLevel(level string) {
	if d.AlertsByLevel == nil {
		d.AlertsByLevel = make(map[string]uint64)
	}
	d.AlertsByLevel[level]++
}

func (d *dayStats) add(o *dayStats) {
	d.Events += o.Events
	d.Alerts += o.Alerts
	d.DeliveryFailures += o.DeliveryFailures
	d.DeadLettered += o.DeadLettered
	for k, v := range o.AlertsByRule {
		if d.AlertsByRule == nil {
			d.AlertsByRule = make(map[string]uint64)
		}
		d.AlertsByRule[k] += v
	}
	for k, v := range o.AlertsByLevel {
		if d.AlertsByLevel == nil {
			d.AlertsByLevel = make(map[string]uint64)
		}
		d.AlertsByLevel[k] += v
	}
}

func dayKey(day string) []byte { return append(append([]byte(nil), keyDayPfx...), day...) }

func readDayStats(txn *badger.Txn, day string) (*dayStats, error) {
	var st dayStats
	item, err := txn.Get(dayKey(day))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return &st, nil
	}
	if err != nil {
		return nil, err
	}
	err = item.Value(func(v []byte) error { return json.Unmarshal(v, &st) })
	return &st, err
}

// addDayStats adds delta to a day's stored counters, in txn.
func addDayStats(txn *badger.Txn, day string, delta *dayStats) error {
	st, err := readDayStats(txn, day)
	if err != nil {
		return err
	}
	st.add(delta)
	v, err := json.Marshal(st, json.Deterministic(true))
	if err != nil {
		return err
	}
	return txn.Set(dayKey(day), v)
}

// countFailure counts a failed delivery attempt on today's counters. They
// are kept under their own key (dayf/), written only by the delivery
// workers, so that they never conflict with the follower's transaction.
func (s *Service) countFailure(time.Time) error {
	day := s.now().UTC().Format(time.DateOnly)
	key := append(append([]byte(nil), keyDayFailPfx...), day...)
	for {
		err := s.db.Update(func(txn *badger.Txn) error {
			n, err := getUint64(txn, key)
			if err != nil {
				return err
			}
			return txn.Set(key, u64(nil, n+1))
		})
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
	}
}

// dayFailures reads a day's failed delivery attempts.
func dayFailures(txn *badger.Txn, day string) (uint64, error) {
	return getUint64(txn, append(append([]byte(nil), keyDayFailPfx...), day...))
}
