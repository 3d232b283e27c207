// Package bound counts what is in use, in all and by key, within bounds:
// the server's answers that last per API key, its connections per address.
package bound

import "sync"

// Counter counts uses in all and by key. It is safe for concurrent use.
type Counter[K comparable] struct {
	total, perKey int // perKey 0: no bound by key

	mu sync.Mutex
	n  int
	by map[K]int
}

// New returns a counter of at most total uses, and perKey (0: any number)
// of one key.
func New[K comparable](total, perKey int) *Counter[K] {
	return &Counter[K]{total: total, perKey: perKey, by: make(map[K]int)}
}

// Take counts a use of key and reports true, or, if a bound is reached,
// reports false with the uses in all (n) and of the key (nk), for the
// caller to say which. Each use taken is given back with Done.
func (c *Counter[K]) Take(key K) (ok bool, n, nk int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n >= c.total || c.perKey > 0 && c.by[key] >= c.perKey {
		return false, c.n, c.by[key]
	}
	c.n++
	c.by[key]++
	return true, 0, 0
}

// Done gives back a use of key.
func (c *Counter[K]) Done(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	if c.by[key]--; c.by[key] <= 0 {
		delete(c.by, key)
	}
}
