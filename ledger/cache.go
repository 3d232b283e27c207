package ledger

import (
	"container/list"
	"sync"
)

// bundleCache keeps decompressed full entry bundles for reads, least
// recently used first out, bounded by their total bytes (a bundle is up to
// 16 MiB, so a count would bound nothing). Full bundles never change, so
// the cache needs no invalidation. It is safe for concurrent use.
type bundleCache struct {
	max int64

	mu    sync.Mutex
	bytes int64
	order *list.List // of *cachedBundle, most recent first
	items map[uint64]*list.Element
}

type cachedBundle struct {
	index uint64
	raw   []byte
}

func newBundleCache(maxBytes int64) *bundleCache {
	return &bundleCache{max: maxBytes, order: list.New(), items: make(map[uint64]*list.Element)}
}

// Get returns the bundle at index, if cached. The bytes are shared and
// must not be modified.
func (c *bundleCache) Get(index uint64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[index]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cachedBundle).raw, true
}

// Add caches a bundle, evicting the least recently used ones until the
// total fits. A bundle larger than a quarter of the cache is not kept: it
// would evict everything else for one reader.
func (c *bundleCache) Add(index uint64, raw []byte) {
	size := int64(len(raw))
	if size > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[index]; ok {
		return
	}
	c.items[index] = c.order.PushFront(&cachedBundle{index: index, raw: raw})
	c.bytes += size
	for c.bytes > c.max {
		last := c.order.Back()
		b := last.Value.(*cachedBundle)
		c.order.Remove(last)
		delete(c.items, b.index)
		c.bytes -= int64(len(b.raw))
	}
}

// Bytes returns the bytes cached.
func (c *bundleCache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
