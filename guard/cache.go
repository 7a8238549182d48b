package guard

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/sqlscan"
)

// contextKey is everything a verdict depends on besides the statement text.
type contextKey struct {
	user, role, purpose, searchPath string
	catalogVersion                  string
	policyVersion                   string
	lexical                         string // standard_conforming_strings and client_encoding
	temps                           string // the session's temporary and unsettled relation names
	settled                         bool   // transaction control is no barrier (session.settled)
}

// verdictCache maps (context, text) to a verdict. It is two-level so that
// a lookup on the hot path costs one map access by text and allocates
// nothing: a session holds the inner table of its current context.
//
// It is bounded in bytes, counting its keys and what its verdicts hold. A
// text up to keyTextMax bytes is its own key; a longer one is keyed by its
// SHA-256 and length, so the cache never keeps a long text. When a new
// entry would not fit, entries not looked up since the last sweep go, in
// every context, until a quarter of the room is free (see sweep).
type verdictCache struct {
	max   int64
	bytes atomic.Int64
	// onSize, when set, is told the bytes held after each change.
	onSize func(int64)

	mu        sync.Mutex
	byContext map[contextKey]*textVerdicts
	sweepMu   sync.Mutex // one sweep at a time
}

// keyTextMax is the longest text kept as its own key: statements of
// typical applications, which then cost no hashing.
const keyTextMax = 1 << 10

// longKey keys a text longer than keyTextMax.
type longKey struct {
	sum [sha256.Size]byte
	n   int
}

// textKey is a text's key in either form, for the paths that may allocate.
type textKey struct {
	short string
	long  longKey
}

func keyOf(text []byte) textKey {
	if len(text) <= keyTextMax {
		return textKey{short: string(text)}
	}
	return textKey{long: longKey{sha256.Sum256(text), len(text)}}
}

// isShort reports whether the key is the text itself.
func (k textKey) isShort() bool { return k.long.n == 0 }

// size is the key's share of an entry's bytes.
func (k textKey) size() int64 {
	if k.isShort() {
		return int64(len(k.short))
	}
	return int64(unsafe.Sizeof(k.long))
}

// entry is one cached verdict.
type entry struct {
	v    *verdict
	size int64
	// used is set by a lookup and cleared by a sweep: an entry still
	// clear at the next sweep goes.
	used atomic.Bool
}

// textVerdicts are the verdicts of one context.
type textVerdicts struct {
	mu    sync.RWMutex
	short map[string]*entry
	long  map[longKey]*entry
	// dropped is set when the cache let go of this table; sessions holding
	// it fetch a fresh one before their next lookup.
	dropped atomic.Bool
	// inflight holds the analyses under way, so that sessions sending the
	// same new text at once analyse it once.
	inflight map[textKey]*flight
}

// flight is one analysis under way.
type flight struct {
	done chan struct{}
	v    *verdict
}

// join returns the flight for k and whether the caller leads it (and so
// must analyse and then call land).
func (t *textVerdicts) join(k textKey) (*flight, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.inflight[k]; f != nil {
		return f, false
	}
	if t.inflight == nil {
		t.inflight = make(map[textKey]*flight)
	}
	f := &flight{done: make(chan struct{})}
	t.inflight[k] = f
	return f, true
}

// land ends the flight for k with v.
func (t *textVerdicts) land(k textKey, f *flight, v *verdict) {
	f.v = v
	t.mu.Lock()
	delete(t.inflight, k)
	t.mu.Unlock()
	close(f.done)
}

func newVerdictCache(maxBytes int64) *verdictCache {
	return &verdictCache{max: maxBytes, byContext: make(map[contextKey]*textVerdicts)}
}

// forContext returns the verdicts of k, creating the table on first use.
func (c *verdictCache) forContext(k contextKey) *textVerdicts {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.byContext[k]
	if t == nil {
		t = &textVerdicts{short: make(map[string]*entry), long: make(map[longKey]*entry)}
		c.byContext[k] = t
	}
	return t
}

// get returns text's verdict, or nil; a short text costs no allocation.
func (t *textVerdicts) get(text []byte) *verdict {
	var e *entry
	if len(text) <= keyTextMax {
		t.mu.RLock()
		e = t.short[string(text)]
		t.mu.RUnlock()
	} else {
		k := longKey{sha256.Sum256(text), len(text)}
		t.mu.RLock()
		e = t.long[k]
		t.mu.RUnlock()
	}
	if e == nil {
		return nil
	}
	if !e.used.Load() {
		e.used.Store(true) // written once per sweep, not on every hit
	}
	return e.v
}

// put stores v under k, making room if need be. An entry larger than an
// eighth of the cache is not kept.
func (c *verdictCache) put(t *textVerdicts, k textKey, v *verdict) {
	size := entryOverhead + k.size() + verdictSize(v)
	if size > c.max/8 || !c.reserve(size) {
		return
	}
	e := &entry{v: v, size: size}
	t.mu.Lock()
	if t.dropped.Load() {
		t.mu.Unlock()
		c.release(size)
		return
	}
	var old *entry
	if k.isShort() {
		old, t.short[k.short] = t.short[k.short], e
	} else {
		old, t.long[k.long] = t.long[k.long], e
	}
	t.mu.Unlock()
	if old != nil {
		c.release(old.size)
	}
	c.report()
}

// reserve takes size bytes of room, sweeping once when there is none.
func (c *verdictCache) reserve(size int64) bool {
	for try := 0; try < 2; try++ {
		if c.bytes.Add(size) <= c.max {
			return true
		}
		c.bytes.Add(-size)
		if try == 0 {
			c.sweep(size)
		}
	}
	return false
}

func (c *verdictCache) release(size int64) { c.bytes.Add(-size) }

func (c *verdictCache) report() {
	if c.onSize != nil {
		c.onSize(c.bytes.Load())
	}
}

// sweep frees room until need bytes and a quarter of the cache are free:
// entries looked up since the last sweep get a second chance, the rest
// go; should that not free enough, a second pass takes the entries not
// used since the first. A table left empty is let go of. Contexts no
// session uses any more empty this way within two sweeps.
func (c *verdictCache) sweep(need int64) {
	c.sweepMu.Lock()
	defer c.sweepMu.Unlock()
	target := c.max*3/4 - need
	for pass := 0; pass < 2 && c.bytes.Load() > target; pass++ {
		c.mu.Lock()
		for k, t := range c.byContext {
			if c.bytes.Load() <= target {
				break
			}
			if c.evictUnused(t) {
				delete(c.byContext, k)
			}
		}
		c.mu.Unlock()
	}
	c.report()
}

// evictUnused removes t's entries not used since the last sweep and
// clears the mark of the others; it reports whether t was emptied and
// let go of.
func (c *verdictCache) evictUnused(t *textVerdicts) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, e := range t.short {
		if !e.used.Swap(false) {
			delete(t.short, k)
			c.release(e.size)
		}
	}
	for k, e := range t.long {
		if !e.used.Swap(false) {
			delete(t.long, k)
			c.release(e.size)
		}
	}
	if len(t.short)+len(t.long)+len(t.inflight) > 0 {
		return false
	}
	t.dropped.Store(true)
	return true
}

// entryOverhead approximates what an entry costs besides its key and
// verdict: the entry, its map slot and the map's spare room.
const entryOverhead = 128

// verdictSize approximates the bytes a verdict holds, counting every
// string and slice it points to as its own (strings shared with other
// verdicts or the catalog count in each).
func verdictSize(v *verdict) int64 {
	n := int64(unsafe.Sizeof(*v)) + accessesSize(v.accesses) + int64(len(v.purpose)+len(v.text))
	for i := range v.effects {
		e := &v.effects[i]
		n += int64(unsafe.Sizeof(*e)) + int64(len(e.Kind)+len(e.Name)+len(e.Value)+len(e.purpose)+len(e.text))
		n += accessesSize(e.accesses) + stringsSize(e.changes) + stringsSize(e.tempWrites)
		n += int64(cap(e.tempReads)) * int64(unsafe.Sizeof(sqlscan.Access{}))
	}
	if d := v.denied; d != nil {
		n += int64(unsafe.Sizeof(*d)) + int64(len(d.statement)+len(d.fingerprint)+len(d.purpose)+len(d.policy))
		n += stringsSize(d.roles)
		if d.err != nil {
			n += int64(unsafe.Sizeof(*d.err)) + int64(len(d.err.Message)+len(d.err.Detail)+len(d.err.Hint))
		}
		for _, x := range d.denied {
			n += int64(unsafe.Sizeof(x)) + int64(len(x.Column)+len(x.Category)+len(x.Act)+len(x.Reason))
		}
	}
	return n
}

func accessesSize(as []authz.Access) int64 {
	n := int64(cap(as)) * int64(unsafe.Sizeof(authz.Access{}))
	for _, a := range as {
		n += int64(len(a.Column) + len(a.Act))
	}
	return n
}

func stringsSize(ss []string) int64 {
	n := int64(cap(ss)) * int64(unsafe.Sizeof(""))
	for _, s := range ss {
		n += int64(len(s))
	}
	return n
}
