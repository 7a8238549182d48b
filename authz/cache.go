package authz

import (
	"hash/maphash"
	"sync"
)

// cacheShards spreads lock contention: proxy connections decide in parallel.
const cacheShards = 64

// defaultCacheSize bounds the decisions one Policy remembers.
const defaultCacheSize = 1 << 16

// cacheKey is one question the policy answers.
type cacheKey struct {
	subject, purpose, object string
	act                      Act
}

// verdict is the answer for one cacheKey. Column and act of the Denial are
// filled in by the caller, which knows them.
type verdict struct {
	allowed  bool
	denyRule bool // denied by a deny rule, not for want of an allow
	category string
	reason   string
}

// decisionCache is a bounded, sharded map from question to verdict. It lives
// inside an immutable Policy, so a reload drops it with the Policy and there
// is never a stale entry to invalidate. A full shard is emptied rather than
// evicted entry by entry: the working set of a proxy (users x purposes x
// columns actually queried) is small and refills in microseconds, while an
// LRU would cost a write lock and list update on every hit.
type decisionCache struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[cacheKey]verdict
	_  [32]byte // keep hot shards on separate cache lines
}

func newDecisionCache(size int) *decisionCache {
	if size <= 0 {
		size = defaultCacheSize
	}
	c := &decisionCache{seed: maphash.MakeSeed(), perShard: max(1, size/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]verdict)
	}
	return c
}

func (c *decisionCache) shard(k cacheKey) *cacheShard {
	// The object varies most between lookups of one statement; hashing it
	// alone is cheaper than hashing the whole key and spreads well enough.
	return &c.shards[maphash.String(c.seed, k.object)%cacheShards]
}

func (c *decisionCache) get(k cacheKey) (verdict, bool) {
	s := c.shard(k)
	s.mu.RLock()
	v, ok := s.m[k]
	s.mu.RUnlock()
	return v, ok
}

func (c *decisionCache) put(k cacheKey, v verdict) {
	s := c.shard(k)
	s.mu.Lock()
	if len(s.m) >= c.perShard {
		s.m = make(map[cacheKey]verdict)
	}
	s.m[k] = v
	s.mu.Unlock()
}

// len counts the cached verdicts; for tests.
func (c *decisionCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
