package guard

import (
	"sync"
	"sync/atomic"
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

// verdictCache maps (context, exact text) to a verdict. It is two-level so
// that a lookup on the hot path costs one map access by text and allocates
// nothing: a session holds the inner map of its current context.
type verdictCache struct {
	max     int64
	entries atomic.Int64

	mu        sync.Mutex
	byContext map[contextKey]*textVerdicts
}

// textVerdicts are the verdicts of one context.
type textVerdicts struct {
	mu sync.RWMutex
	m  map[string]*verdict
	// dropped is set when the cache let go of this table; sessions holding
	// it fetch a fresh one before their next lookup.
	dropped atomic.Bool
	// inflight holds the analyses under way, so that sessions sending the
	// same new text at once analyse it once.
	inflight map[string]*flight
}

// flight is one analysis under way.
type flight struct {
	done chan struct{}
	v    *verdict
}

// join returns the flight for text and whether the caller leads it (and so
// must analyse and then call land).
func (t *textVerdicts) join(text []byte) (*flight, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.inflight[string(text)]; f != nil {
		return f, false
	}
	if t.inflight == nil {
		t.inflight = make(map[string]*flight)
	}
	f := &flight{done: make(chan struct{})}
	t.inflight[string(text)] = f
	return f, true
}

// land ends the flight for text with v.
func (t *textVerdicts) land(text string, f *flight, v *verdict) {
	f.v = v
	t.mu.Lock()
	delete(t.inflight, text)
	t.mu.Unlock()
	close(f.done)
}

func newVerdictCache(max int) *verdictCache {
	return &verdictCache{max: int64(max), byContext: make(map[contextKey]*textVerdicts)}
}

// forContext returns the verdicts of k, creating the table on first use.
func (c *verdictCache) forContext(k contextKey) *textVerdicts {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.byContext[k]
	if t == nil {
		t = &textVerdicts{m: make(map[string]*verdict)}
		c.byContext[k] = t
	}
	return t
}

func (t *textVerdicts) get(text []byte) *verdict {
	t.mu.RLock()
	v := t.m[string(text)]
	t.mu.RUnlock()
	return v
}

// put stores v; when the cache is full it is emptied whole, which is cheap,
// keeps memory bounded, and costs only re-analysis of the texts in use.
func (c *verdictCache) put(t *textVerdicts, text string, v *verdict) {
	if c.entries.Add(1) > c.max {
		c.clear()
		c.entries.Store(0)
		return // t was just dropped with the rest
	}
	t.mu.Lock()
	t.m[text] = v
	t.mu.Unlock()
}

func (c *verdictCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, t := range c.byContext {
		t.dropped.Store(true)
		t.mu.Lock()
		t.m = make(map[string]*verdict)
		t.mu.Unlock()
		delete(c.byContext, k)
	}
}
