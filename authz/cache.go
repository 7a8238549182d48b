package authz

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// cacheShards spreads lock contention: proxy connections decide in parallel.
const cacheShards = 64

// DefaultCacheBytes bounds the decisions one Policy remembers, in bytes.
const DefaultCacheBytes = 8 << 20

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

// cacheEntry is one cached verdict with its second-chance mark.
type cacheEntry struct {
	v    verdict
	size int64
	// used is set by a lookup and cleared by a sweep; an entry still
	// clear at the next sweep goes.
	used atomic.Bool
}

// decisionCache is a bounded, sharded map from question to verdict. It lives
// inside an immutable Policy, so a reload drops it with the Policy and there
// is never a stale entry to invalidate.
//
// Each shard is bounded in bytes. A full shard evicts with second chance
// (CLOCK): entries looked up since the last sweep stay, the others go. So
// a working set just over the bound keeps its hot part instead of
// re-computing everything, and a hit costs a read lock and one atomic load
// rather than an LRU list update under a write lock.
type decisionCache struct {
	seed     maphash.Seed
	perShard int64
	bytes    atomic.Int64
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu    sync.RWMutex
	m     map[cacheKey]*cacheEntry
	bytes int64    // guarded by mu
	_     [24]byte // keep hot shards on separate cache lines
}

// cacheEntryOverhead approximates what an entry costs besides its
// strings: the entry, the key's headers and the map's slot and spare room.
const cacheEntryOverhead = 160

func newDecisionCache(maxBytes int64) *decisionCache {
	if maxBytes <= 0 {
		maxBytes = DefaultCacheBytes
	}
	c := &decisionCache{seed: maphash.MakeSeed(), perShard: max(1, maxBytes/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]*cacheEntry)
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
	e := s.m[k]
	s.mu.RUnlock()
	if e == nil {
		return verdict{}, false
	}
	if !e.used.Load() {
		e.used.Store(true) // written once per sweep, not on every hit
	}
	return e.v, true
}

// put stores v, evicting from k's shard when it is full. A verdict that
// does not fit in an empty shard is not kept.
func (c *decisionCache) put(k cacheKey, v verdict) {
	size := cacheEntryOverhead + int64(len(k.subject)+len(k.purpose)+len(k.object)+len(k.act)+len(v.category)+len(v.reason))
	if size > c.perShard {
		return
	}
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.m[k]; old != nil {
		s.bytes -= old.size
		c.bytes.Add(-old.size)
	}
	if s.bytes+size > c.perShard {
		c.sweep(s, c.perShard*3/4-size)
	}
	if s.bytes+size > c.perShard {
		delete(s.m, k)
		return
	}
	s.m[k] = &cacheEntry{v: v, size: size}
	s.bytes += size
	c.bytes.Add(size)
}

// sweep frees s down to target bytes: entries looked up since the last
// sweep get a second chance, the rest go; a second pass takes those not
// used since the first. The caller holds s.mu.
func (c *decisionCache) sweep(s *cacheShard, target int64) {
	for pass := 0; pass < 2 && s.bytes > target; pass++ {
		for k, e := range s.m {
			if s.bytes <= target {
				return
			}
			if !e.used.Swap(false) {
				delete(s.m, k)
				s.bytes -= e.size
				c.bytes.Add(-e.size)
			}
		}
	}
}

// size is the bytes the cache holds, as it counts them.
func (c *decisionCache) size() int64 { return c.bytes.Load() }
