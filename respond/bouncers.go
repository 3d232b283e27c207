package respond

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Bouncer names one bouncer's position in the decision change log. As
// CrowdSec makes a bouncer "name@ip" for each address that pulls with an
// API key, each key and address has its own position: bouncers that
// share a key do not take each other's changes, and one's startup pull
// does not move another's position.
type Bouncer struct {
	Key string // the name of the API key it pulls with
	IP  string // the address it pulls from, canonical
}

// String returns the bouncer's name as CrowdSec shows it: key@ip.
func (b Bouncer) String() string {
	if b.IP == "" {
		return b.Key
	}
	return b.Key + "@" + b.IP
}

// MaxBouncersPerKey bounds the positions kept for one API key: pulling
// from a new address beyond it forgets the position of the key's address
// that pulled least recently, which then gets a full answer, as after
// History without a pull.
const MaxBouncersPerKey = 1024

// decSweepEvery is how often, at most, positions behind the pruned
// changes are forgotten.
const decSweepEvery = time.Minute

// decPosition is a bouncer's position.
type decPosition struct {
	cursor uint64    // the last change it acknowledged
	used   time.Time // its last Ack
}

// Ack records that bouncer received the changes up to cursor (a
// StreamAnswer's Cursor), durably: its next pull starts after them. A
// cursor below the bouncer's current one is ignored. A position behind
// the pruned changes (its bouncer has not pulled for History, and would
// get a full answer) is forgotten, and so is, beyond MaxBouncersPerKey
// positions for a key, the one of that key that pulled least recently.
func (s *Decisions) Ack(ctx context.Context, bouncer Bouncer, cursor uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return s.brokenErr()
	}
	now := s.now()
	pos := s.positions[bouncer]
	if pos != nil && pos.cursor >= cursor {
		// Only in memory: after a restart, the time of use stored with
		// the cursor decides which position MaxBouncersPerKey drops.
		pos.used = now
		return nil
	}
	if cursor > s.nextSeq-1 {
		return fmt.Errorf("respond: cursor %d is beyond the last change %d", cursor, s.nextSeq-1)
	}
	var evict *Bouncer
	if pos == nil && s.perKey[bouncer.Key] >= MaxBouncersPerKey {
		evict = s.leastRecent(bouncer.Key)
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		if evict != nil {
			if err := txn.Delete(s.positionKey(*evict)); err != nil {
				return err
			}
		}
		v := binary.BigEndian.AppendUint64(nil, cursor)
		v = binary.BigEndian.AppendUint64(v, uint64(now.UnixNano()))
		return txn.Set(s.positionKey(bouncer), v)
	})
	if err != nil {
		return fmt.Errorf("saving the cursor of bouncer %s: %w", bouncer, err)
	}
	if evict != nil {
		s.forget(*evict)
	}
	s.setPosition(bouncer, &decPosition{cursor: cursor, used: now})
	return nil
}

// leastRecent returns the bouncer of key that acknowledged a pull least
// recently.
func (s *Decisions) leastRecent(key string) *Bouncer {
	var (
		oldest Bouncer
		at     time.Time
		found  bool
	)
	for b, p := range s.positions {
		if b.Key == key && (!found || p.used.Before(at)) {
			oldest, at, found = b, p.used, true
		}
	}
	if !found {
		return nil
	}
	return &oldest
}

func (s *Decisions) setPosition(b Bouncer, p *decPosition) {
	if _, ok := s.positions[b]; !ok {
		s.perKey[b.Key]++
	}
	s.positions[b] = p
}

func (s *Decisions) forget(b Bouncer) {
	if _, ok := s.positions[b]; !ok {
		return
	}
	delete(s.positions, b)
	if s.perKey[b.Key]--; s.perKey[b.Key] <= 0 {
		delete(s.perKey, b.Key)
	}
}

// sweepPositions forgets, at most every decSweepEvery, the positions
// behind the pruned changes, whose bouncers get a full answer anyway, and
// the cursors stored by earlier versions, adding their deletions to b.
func (s *Decisions) sweepPositions(now time.Time, b *decBatch) {
	if now.Sub(s.swept) < decSweepEvery {
		return
	}
	s.swept = now
	b.deletes = append(b.deletes, s.legacy...)
	s.legacy = nil
	for bouncer, p := range s.positions {
		if p.cursor < s.floor {
			s.forget(bouncer)
			b.deletes = append(b.deletes, s.positionKey(bouncer))
		}
	}
}

// positionKey is where b's position is stored: c<key>\x00<address> (key
// names hold no NUL).
func (s *Decisions) positionKey(b Bouncer) []byte {
	k := append(s.key('c'), b.Key...)
	k = append(k, 0)
	return append(k, b.IP...)
}

// loadPosition loads a stored position: cursor ‖ time of use. A cursor
// stored per key alone (by earlier versions, 8 bytes, no address) is not
// used: the key's bouncers get a full answer at their first pull, and
// the next sweep deletes it.
func (s *Decisions) loadPosition(k, v []byte) error {
	key, ip, ok := bytes.Cut(k, []byte{0})
	if !ok {
		if len(v) != 8 {
			return fmt.Errorf("cursor of bouncer %q: %d bytes, want 8", k, len(v))
		}
		s.legacy = append(s.legacy, append(s.key('c'), k...))
		return nil
	}
	if len(v) != 16 {
		return fmt.Errorf("position of bouncer %q@%q: %d bytes, want 16", key, ip, len(v))
	}
	used := time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))).UTC()
	s.setPosition(Bouncer{Key: string(key), IP: string(ip)}, &decPosition{cursor: binary.BigEndian.Uint64(v), used: used})
	return nil
}
