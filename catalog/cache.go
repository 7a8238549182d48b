package catalog

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// loadTimeout bounds one load. A load runs detached from the caller that
// started it, so that a client hanging up does not waste the work the other
// waiting sessions need; this keeps a stuck server from holding it forever.
const loadTimeout = 2 * time.Minute

// Cache holds the current Snapshot of each database and reloads it when it
// is older than its maximum age or has been invalidated.
//
// Loads are single-flight per database: concurrent callers wait for one load
// and share its result, and loads of different databases run independently.
// No lock is held while loading.
//
// Failure semantics: a failed load leaves the previous snapshot in place but
// does not make it current again; the next Get tries again. A call that
// could not produce a current snapshot returns the previous one (nil if there
// never was one) together with the error. Callers that enforce policy must
// treat any error as "schema unknown" and deny; the stale snapshot is only
// for reporting (monitor mode, diagnostics), because after DDL it may lack
// columns that `*` now reads.
type Cache struct {
	load   func(ctx context.Context, database string) (*Snapshot, error)
	maxAge time.Duration

	mu      sync.Mutex // guards entries and every entry's fields; never held during a load
	entries map[string]*cacheEntry
}

// cacheEntry is one database's state. Loads are numbered in the order they
// start; a snapshot is current when no invalidation happened after its load
// began and it is younger than maxAge.
type cacheEntry struct {
	snap       *Snapshot
	snapSeq    uint64 // number of the load that produced snap
	loadedAt   time.Time
	started    uint64 // number of loads started so far
	staleUpTo  uint64 // loads numbered up to this one predate an Invalidate
	inflight   *loadCall
	lastSeq    uint64 // number of the most recently finished load
	lastErr    error  // its error, nil when it succeeded
	lastResult *Snapshot
}

// loadCall is one load in progress; done closes when snap and err are set.
type loadCall struct {
	seq  uint64
	done chan struct{}
	snap *Snapshot
	err  error
}

// NewCache returns a Cache that loads snapshots with load (Dialer builds one
// for a server). A maxAge of zero or less means snapshots never expire by
// age, only through Invalidate and Refresh.
func NewCache(load func(ctx context.Context, database string) (*Snapshot, error), maxAge time.Duration) *Cache {
	return &Cache{load: load, maxAge: maxAge, entries: map[string]*cacheEntry{}}
}

// Get returns the current snapshot of database, loading it on first use,
// after Invalidate, and when it is older than the maximum age. See Cache for
// what an error means.
func (c *Cache) Get(ctx context.Context, database string) (*Snapshot, error) {
	c.mu.Lock()
	e := c.entry(database)
	if c.current(e) {
		s := e.snap
		c.mu.Unlock()
		return s, nil
	}
	after, begun := e.staleUpTo, e.started
	c.mu.Unlock()
	return c.await(ctx, database, after, begun)
}

// Current returns database's snapshot if it is current, without loading or
// waiting: for callers that must not block and turn to Get when it is not.
func (c *Cache) Current(database string) (*Snapshot, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[database]
	if e == nil || !c.current(e) {
		return nil, false
	}
	return e.snap, true
}

// Invalidate marks database's snapshot stale, as after DDL went through:
// the next Get loads again, and so does one that is already waiting for a
// load that began before this call.
func (c *Cache) Invalidate(database string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entry(database)
	e.staleUpTo = e.started
}

// Refresh loads database's snapshot now, whatever its age, and returns it:
// for a statement naming a relation the current snapshot does not know.
// Concurrent refreshes share loads, and a load already under way when
// Refresh is called does not count, since it may predate the DDL the caller
// is looking for.
func (c *Cache) Refresh(ctx context.Context, database string) (*Snapshot, error) {
	c.mu.Lock()
	e := c.entry(database)
	e.staleUpTo = e.started
	after := e.started
	c.mu.Unlock()
	return c.await(ctx, database, after, after)
}

// entry returns database's entry, creating it; c.mu must be held.
func (c *Cache) entry(database string) *cacheEntry {
	e := c.entries[database]
	if e == nil {
		e = &cacheEntry{}
		c.entries[database] = e
	}
	return e
}

// current reports whether e's snapshot may be served as is; c.mu must be held.
func (c *Cache) current(e *cacheEntry) bool {
	if e.snap == nil || e.snapSeq <= e.staleUpTo {
		return false
	}
	return c.maxAge <= 0 || time.Since(e.loadedAt) < c.maxAge
}

// await returns the result of a load numbered above after: one in flight,
// one that began after the caller did (numbered above begun) and finished
// while the caller waited for an older one, or a new one.
func (c *Cache) await(ctx context.Context, database string, after, begun uint64) (*Snapshot, error) {
	c.mu.Lock()
	for {
		e := c.entry(database)
		call := e.inflight
		switch {
		case call == nil && e.lastSeq > begun:
			s, err := e.lastResult, e.lastErr
			prev := e.snap
			c.mu.Unlock()
			return pick(s, prev, err)
		case call == nil:
			call = c.start(ctx, database, e)
		}
		c.mu.Unlock()
		select {
		case <-call.done:
		case <-ctx.Done():
			return c.previous(database), fmt.Errorf("catalog of %s: %w", database, ctx.Err())
		}
		if call.seq > after {
			return pick(call.snap, c.previous(database), call.err)
		}
		c.mu.Lock()
	}
}

// start begins a load in its own goroutine; c.mu must be held.
func (c *Cache) start(ctx context.Context, database string, e *cacheEntry) *loadCall {
	e.started++
	call := &loadCall{seq: e.started, done: make(chan struct{})}
	e.inflight = call
	loadCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	go func() {
		defer cancel()
		snap, err := c.load(loadCtx, database)
		if err == nil && snap == nil {
			err = fmt.Errorf("loader returned no snapshot")
		}
		if err != nil {
			err = fmt.Errorf("load catalog of %s: %w", database, err)
			snap = nil
		}
		c.finish(database, call, snap, err)
	}()
	return call
}

// finish records a load's result and wakes its waiters.
func (c *Cache) finish(database string, call *loadCall, snap *Snapshot, err error) {
	c.mu.Lock()
	e := c.entry(database)
	if snap != nil {
		e.snap, e.snapSeq, e.loadedAt = snap, call.seq, time.Now()
	}
	e.lastSeq, e.lastResult, e.lastErr = call.seq, snap, err
	e.inflight = nil
	call.snap, call.err = snap, err
	c.mu.Unlock()
	close(call.done)
}

// previous returns the last good snapshot of database, or nil.
func (c *Cache) previous(database string) *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entry(database).snap
}

// pick returns a fresh result, or on failure the previous snapshot with the
// error.
func pick(fresh, previous *Snapshot, err error) (*Snapshot, error) {
	if err != nil {
		return previous, err
	}
	return fresh, nil
}

// Dialer returns a loader for NewCache that connects to baseURL (a
// PostgreSQL URL or keyword/value string) with the database replaced, runs
// Load and disconnects. The URL's role needs no privileges beyond CONNECT.
func Dialer(baseURL string) func(ctx context.Context, database string) (*Snapshot, error) {
	return func(ctx context.Context, database string) (*Snapshot, error) {
		cfg, err := pgx.ParseConfig(baseURL)
		if err != nil {
			return nil, fmt.Errorf("parse catalog connection URL: %w", err)
		}
		cfg.Database = database
		// A connection used once gains nothing from prepared statements,
		// which would cost Load a round trip to prepare them.
		cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
		if cfg.RuntimeParams == nil {
			cfg.RuntimeParams = map[string]string{}
		}
		cfg.RuntimeParams["application_name"] = "pgguard catalog"
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", database, err)
		}
		defer closeConn(ctx, conn)
		return Load(ctx, conn)
	}
}

// closeConn says goodbye to the server even when ctx has ended, but does
// not wait long for a peer that stopped answering.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
