package api

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// bodyBudget bounds the bytes of request bodies being read or held: all
// of them (Config.MaxInflightBodyBytes), and those of one API key (a
// quarter of that, at least MaxBodyBytes). A body reserves its bytes a
// chunk ahead of what has arrived (readReserving), so one key opening a
// thousand connections that send nothing held the whole budget, and
// every other client's appends got 503 until the read timeout; such a
// key now fills only its own share. It is safe for concurrent use.
type bodyBudget struct {
	all    *semaphore.Weighted
	perKey int64

	mu   sync.Mutex
	keys map[string]int64 // bytes reserved by key name
}

func newBodyBudget(total, maxBody int64) *bodyBudget {
	return &bodyBudget{all: semaphore.NewWeighted(total), perKey: max(total/4, maxBody), keys: make(map[string]int64)}
}

// Why a reservation is refused.
var (
	errKeyShare = errors.New("the key's share of the body budget is in use")
	errBusy     = errors.New("the body budget is in use")
)

// reserve reserves n bytes for key: at once from the key's share
// (errKeyShare if it is spent: the key's own bodies hold it), then from
// the whole budget, waiting at most wait for it (errBusy).
func (b *bodyBudget) reserve(ctx context.Context, key string, n int64, wait time.Duration) error {
	b.mu.Lock()
	if b.keys[key]+n > b.perKey {
		b.mu.Unlock()
		return errKeyShare
	}
	b.keys[key] += n
	b.mu.Unlock()
	ok := b.all.TryAcquire(n)
	if !ok {
		ctx, cancel := context.WithTimeout(ctx, wait)
		ok = b.all.Acquire(ctx, n) == nil
		cancel()
	}
	if !ok {
		b.releaseKey(key, n)
		return errBusy
	}
	return nil
}

// release returns n bytes reserved for key.
func (b *bodyBudget) release(key string, n int64) {
	if n == 0 {
		return
	}
	b.all.Release(n)
	b.releaseKey(key, n)
}

func (b *bodyBudget) releaseKey(key string, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keys[key] -= n; b.keys[key] <= 0 {
		delete(b.keys, key)
	}
}
