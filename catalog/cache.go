package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// loadTimeout bounds one load whatever the loader does. A load runs
// detached from the caller that started it, so that a client hanging up
// does not waste the work the other waiting sessions need; this keeps a
// loader without timeouts of its own from holding it forever. Dialer's
// timeouts end a load long before.
const loadTimeout = 2 * time.Minute

// ErrUnavailable is wrapped by the error of every failed load, and returned
// at once, without waiting, while a database's catalog is remembered as
// unavailable (see Cache).
var ErrUnavailable = errors.New("catalog unavailable")

// Defaults of CacheConfig.
const (
	DefaultRetryMin = time.Second
	DefaultRetryMax = 30 * time.Second
)

// CacheConfig configures a Cache. The zero value of every optional field
// picks the default documented on it.
type CacheConfig struct {
	// Load reads one database's snapshot (Dialer builds one); required.
	Load func(ctx context.Context, database string) (*Snapshot, error)
	// LoadRelations, when set, reads again only the relations of names
	// (and what depends on them) and returns base with them replaced
	// (Source.LoadRelations): after InvalidateRelations the cache reads
	// the names that way rather than loading the whole catalog, and loads
	// it whole only when that read fails. base is the cache's complete
	// snapshot in force, which no other load changes meanwhile.
	LoadRelations func(ctx context.Context, database string, base *Snapshot, names []string) (*Snapshot, error)
	// MaxAge: snapshots older than this are loaded again before use; zero
	// or less means never by age, only through Invalidate and Refresh.
	MaxAge time.Duration
	// RetryMin is how long a failed load is remembered before the cache
	// tries again by itself (default DefaultRetryMin); each further failure
	// doubles it, up to RetryMax (default DefaultRetryMax).
	RetryMin, RetryMax time.Duration
	// OnUnavailable, when set, is called (on its own goroutine) when a
	// database's catalog becomes unavailable: the first failed load after a
	// good one, or at first use. OnAvailable is called when a load succeeds
	// again.
	OnUnavailable func(database string, err error)
	OnAvailable   func(database string)
}

func (c *CacheConfig) validate() error {
	switch {
	case c.Load == nil:
		return errors.New("catalog cache: no loader")
	case c.RetryMin < 0 || c.RetryMax < 0:
		return fmt.Errorf("catalog cache: retry interval %s to %s: must not be negative", c.RetryMin, c.RetryMax)
	case c.RetryMin > 0 && c.RetryMax > 0 && c.RetryMax < c.RetryMin:
		return fmt.Errorf("catalog cache: longest retry interval %s is below the shortest %s", c.RetryMax, c.RetryMin)
	}
	return nil
}

func (c CacheConfig) withDefaults() CacheConfig {
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(DefaultRetryMax, c.RetryMin)
	}
	return c
}

// Cache holds the current Snapshot of each database and reloads it when it
// is older than its maximum age or has been invalidated.
//
// Loads are single-flight per database: concurrent callers wait for one load
// and share its result, and loads of different databases run independently.
// No lock is held while loading.
//
// Failure semantics: a failed load leaves the previous snapshot in place but
// does not make it current again. The failure is remembered: until a load
// succeeds, every Get and Refresh of that database returns at once with an
// error wrapping ErrUnavailable, so that a server that does not answer
// costs each caller nothing but the first. The cache tries again by itself
// after RetryMin, backing off up to RetryMax while loads keep failing. A
// call that could not produce a current snapshot returns the previous one
// (nil if there never was one) together with the error. Callers that
// enforce policy must treat any error as "schema unknown" and deny; the
// stale snapshot is only for reporting (monitor mode, diagnostics), because
// after DDL it may lack columns that `*` now reads.
type Cache struct {
	cfg CacheConfig

	mu      sync.Mutex // guards entries and every entry's fields; never held during a load
	entries map[string]*cacheEntry
	closed  bool
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
	// down is the error of the failed load that made the catalog
	// unavailable, nil while it is available; backoff is the wait before
	// the next retry, which retry runs.
	down    error
	backoff time.Duration
	retry   *time.Timer
	// pending are relation names changed since snap was read (sorted; a
	// new slice on every change), each until a load numbered above its
	// mark, which read it, has finished: a load of the whole catalog, or
	// a read of the relations of the names (LoadRelations). covered is,
	// per name, the number of the last read of the names that read it.
	pending []string
	marks   map[string]uint64
	covered map[string]uint64
	// wantWhole is set while a caller waits for a whole load behind a
	// read of names: the next load is a whole one, so that a stream of
	// DDL does not hold it back forever.
	wantWhole bool
	// wake closes when a load ends (nil until someone waits).
	wake chan struct{}
}

// loadCall is one load in progress; done closes when snap and err are set.
// Loads of a database run one at a time, so each applies to the snapshot
// the one before left.
type loadCall struct {
	seq  uint64
	done chan struct{}
	snap *Snapshot
	err  error
	// names are, for a read of the relations of names only, those names.
	names    []string
	targeted bool
}

// woken returns a channel that closes when the next load ends; c.mu must
// be held.
func (e *cacheEntry) woken() chan struct{} {
	if e.wake == nil {
		e.wake = make(chan struct{})
	}
	return e.wake
}

// wakeAll wakes those waiting for the end of a load; c.mu must be held.
func (e *cacheEntry) wakeAll() {
	if e.wake != nil {
		close(e.wake)
		e.wake = nil
	}
}

// NewCache returns a Cache that loads snapshots with load (Dialer builds one
// for a server), with the default retry intervals. A maxAge of zero or less
// means snapshots never expire by age, only through Invalidate and Refresh.
func NewCache(load func(ctx context.Context, database string) (*Snapshot, error), maxAge time.Duration) *Cache {
	c, err := NewCacheWith(CacheConfig{Load: load, MaxAge: maxAge})
	if err != nil {
		panic(err) // only a nil load gets here: a wiring bug
	}
	return c
}

// NewCacheWith checks cfg and returns a Cache.
func NewCacheWith(cfg CacheConfig) (*Cache, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Cache{cfg: cfg.withDefaults(), entries: map[string]*cacheEntry{}}, nil
}

// Close stops the retries the cache would start by itself; loads under way
// finish. Get and Refresh go on working.
func (c *Cache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, e := range c.entries {
		if e.retry != nil {
			e.retry.Stop()
		}
	}
}

// Unavailable returns the databases whose catalog is unavailable now, with
// the error of the load that failed.
func (c *Cache) Unavailable() map[string]error {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]error{}
	for db, e := range c.entries {
		if e.down != nil {
			out[db] = e.down
		}
	}
	return out
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
	if e.down != nil {
		s, err := c.unavailable(database, e)
		c.mu.Unlock()
		return s, err
	}
	after, begun := e.staleUpTo, e.started
	c.mu.Unlock()
	return c.await(ctx, database, after, begun)
}

// Current returns database's snapshot if it is current and no relation
// names are pending, without loading or waiting: for callers that must
// not block and turn to Get when it is not.
func (c *Cache) Current(database string) (*Snapshot, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[database]
	if e == nil || !c.current(e) || len(e.pending) > 0 {
		return nil, false
	}
	return e.snap, true
}

// InvalidateRelations marks the relations of these names changed, as
// after a transaction whose DDL named only them has committed. Unlike
// Invalidate, nobody waits: Get goes on returning the snapshot at once,
// a read begins in the background, and until a load begun after this
// call has read them, Pending lists the names, which callers must not
// decide on with the snapshot (AwaitPending waits for that read). The
// names of the relations the snapshot says depend on them (children,
// views that read them: Snapshot.Affected) are marked with them. With
// LoadRelations configured the read is of those relations alone, else
// of the whole catalog. Without names, or with AllRelations among them,
// it is Invalidate.
func (c *Cache) InvalidateRelations(database string, names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entry(database)
	if len(names) == 0 || slices.Contains(names, "*") || e.snap == nil {
		e.staleUpTo = e.started
		return
	}
	names, _ = e.snap.Affected(names)
	// A new slice each time: callers hold the one Pending returned.
	pending := slices.Clone(e.pending)
	if e.marks == nil {
		e.marks = map[string]uint64{}
	}
	for _, n := range names {
		if !slices.Contains(pending, n) {
			pending = append(pending, n)
		}
		// Loads numbered up to e.started began before this call.
		e.marks[n] = e.started
	}
	slices.Sort(pending)
	e.pending = pending
	if e.inflight == nil && e.down == nil {
		c.startNext(database, e)
	}
}

// Pending returns the relation names InvalidateRelations marked that no
// load has covered yet, sorted; nil when there are none. The slice is
// never changed afterwards, by the cache or the caller.
func (c *Cache) Pending(database string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[database]; e != nil {
		return e.pending
	}
	return nil
}

// AwaitPending waits until every name pending now has been read by a
// load begun after it was marked, and returns the snapshot in force then,
// which describes those names as they were at least as late as that (see
// Get for errors). Names marked after the call may be pending still: the
// DDL that named them came after the caller's statement, which may be
// decided on the snapshot without them.
func (c *Cache) AwaitPending(ctx context.Context, database string) (*Snapshot, error) {
	c.mu.Lock()
	e := c.entry(database)
	want := make(map[string]uint64, len(e.pending))
	for _, n := range e.pending {
		want[n] = e.marks[n]
	}
	for {
		if e.down != nil {
			s, err := c.unavailable(database, e)
			c.mu.Unlock()
			return s, err
		}
		read := true
		for n, mark := range want {
			if e.snapSeq <= mark && e.covered[n] <= mark {
				read = false
				break
			}
		}
		if read {
			if !c.current(e) {
				c.mu.Unlock()
				return c.Get(ctx, database)
			}
			s := e.snap
			c.mu.Unlock()
			return s, nil
		}
		if e.inflight == nil {
			c.startNext(database, e)
		}
		wake := e.woken()
		c.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return c.previous(database), fmt.Errorf("catalog of %s: %w", database, ctx.Err())
		}
		c.mu.Lock()
		e = c.entry(database)
	}
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
	return c.loadAnew(ctx, database, true)
}

// Reload reads database's catalog again and returns the result, without
// making the snapshot in force stale: statements go on being decided on it
// while the load runs, and the new one replaces it when it is read (an
// unchanged schema keeps its version). For the periodic refresh, which
// looks for changes made around pgguard and which no statement should
// wait for.
func (c *Cache) Reload(ctx context.Context, database string) (*Snapshot, error) {
	return c.loadAnew(ctx, database, false)
}

// loadAnew waits for a load that begins after the call, and returns it;
// stale also marks the snapshot in force stale meanwhile (Refresh).
func (c *Cache) loadAnew(ctx context.Context, database string, stale bool) (*Snapshot, error) {
	c.mu.Lock()
	e := c.entry(database)
	if stale {
		e.staleUpTo = e.started
	}
	if e.down != nil {
		s, err := c.unavailable(database, e)
		c.mu.Unlock()
		return s, err
	}
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
	return c.cfg.MaxAge <= 0 || time.Since(e.loadedAt) < c.cfg.MaxAge
}

// unavailable returns the error a call that finds e's catalog unavailable
// gets at once, with the previous snapshot; c.mu must be held.
func (c *Cache) unavailable(database string, e *cacheEntry) (*Snapshot, error) {
	return e.snap, fmt.Errorf("catalog of %s: %w", database, e.down)
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
		case call == nil && e.down != nil:
			s, err := c.unavailable(database, e)
			c.mu.Unlock()
			return s, err
		case call == nil && e.lastSeq > begun:
			s, err := e.lastResult, e.lastErr
			prev := e.snap
			c.mu.Unlock()
			return pick(s, prev, err)
		case call == nil:
			call = c.start(ctx, database, e)
		case call.targeted:
			// A read of names only: the whole load comes next.
			e.wantWhole = true
		}
		c.mu.Unlock()
		select {
		case <-call.done:
		case <-ctx.Done():
			return c.previous(database), fmt.Errorf("catalog of %s: %w", database, ctx.Err())
		}
		if !call.targeted && call.seq > after {
			return pick(call.snap, c.previous(database), call.err)
		}
		c.mu.Lock()
	}
}

// startNext begins the load that pending names need: a read of their
// relations when LoadRelations is configured and a complete snapshot is
// there to apply it to, else a whole load; c.mu must be held and no load
// of database under way.
func (c *Cache) startNext(database string, e *cacheEntry) {
	if c.cfg.LoadRelations == nil || e.snap == nil || !e.snap.Complete || e.wantWhole || len(e.pending) == 0 {
		c.start(context.Background(), database, e)
		return
	}
	e.started++
	call := &loadCall{seq: e.started, done: make(chan struct{}), names: e.pending, targeted: true}
	e.inflight = call
	base := e.snap
	loadCtx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	go func() {
		defer cancel()
		snap, err := c.cfg.LoadRelations(loadCtx, database, base, call.names)
		if err == nil && snap == nil {
			err = fmt.Errorf("reader returned no snapshot")
		}
		c.finishTargeted(database, call, base, snap, err)
	}()
}

// finishTargeted applies a read of the relations of names: the names it
// read that no DDL marked again since it began are no longer pending. When
// it failed, the whole catalog is loaded instead, which they then wait
// for; the failure alone does not make the catalog unavailable.
func (c *Cache) finishTargeted(database string, call *loadCall, base, snap *Snapshot, err error) {
	c.mu.Lock()
	e := c.entry(database)
	e.inflight = nil
	if err == nil && e.snap != base {
		err = fmt.Errorf("snapshot replaced during the read") // loads run one at a time: not expected
	}
	if err == nil {
		e.snap = snap // snapSeq and loadedAt stay: the rest was not read again
		if e.covered == nil {
			e.covered = map[string]uint64{}
		}
		kept := make([]string, 0, len(e.pending))
		for _, n := range e.pending {
			if slices.Contains(call.names, n) && e.marks[n] < call.seq {
				delete(e.marks, n)
				continue
			}
			kept = append(kept, n)
		}
		for _, n := range call.names {
			e.covered[n] = call.seq
		}
		if len(kept) == 0 {
			kept = nil
		}
		if len(kept) != len(e.pending) {
			e.pending = kept
		}
	}
	call.snap, call.err = snap, err
	switch {
	case e.down != nil:
	case err != nil:
		c.start(context.Background(), database, e)
	case e.wantWhole || len(e.pending) > 0:
		c.startNext(database, e)
	}
	e.wakeAll()
	c.mu.Unlock()
	close(call.done)
}

// start begins a load of the whole catalog in its own goroutine; c.mu
// must be held.
func (c *Cache) start(ctx context.Context, database string, e *cacheEntry) *loadCall {
	e.wantWhole = false
	e.started++
	call := &loadCall{seq: e.started, done: make(chan struct{})}
	e.inflight = call
	loadCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	go func() {
		defer cancel()
		snap, err := c.cfg.Load(loadCtx, database)
		if err == nil && snap == nil {
			err = fmt.Errorf("loader returned no snapshot")
		}
		if err != nil {
			err = fmt.Errorf("%w: load catalog of %s: %w", ErrUnavailable, database, err)
			snap = nil
		}
		c.finish(database, call, snap, err)
	}()
	return call
}

// finish records a load's result, wakes its waiters and, on a change of
// availability, tells the configured callback.
func (c *Cache) finish(database string, call *loadCall, snap *Snapshot, err error) {
	c.mu.Lock()
	e := c.entry(database)
	if snap != nil {
		e.snap, e.snapSeq, e.loadedAt = snap, call.seq, time.Now()
		var kept []string
		for _, n := range e.pending {
			if e.marks[n] < call.seq {
				delete(e.marks, n)
				continue
			}
			kept = append(kept, n)
		}
		if len(kept) != len(e.pending) {
			e.pending = kept
		}
		// Every name is read as late as this load: what reads of names
		// alone did before it no longer counts.
		clear(e.covered)
	}
	e.lastSeq, e.lastResult, e.lastErr = call.seq, snap, err
	e.inflight = nil
	if (len(e.pending) > 0 || e.wantWhole) && err == nil {
		// The load predates the relations' change: read them again.
		c.startNext(database, e)
	}
	e.wakeAll()
	call.snap, call.err = snap, err
	wentDown, cameBack := c.track(database, e, err)
	c.mu.Unlock()
	close(call.done)
	switch {
	case wentDown && c.cfg.OnUnavailable != nil:
		go c.cfg.OnUnavailable(database, err)
	case cameBack && c.cfg.OnAvailable != nil:
		go c.cfg.OnAvailable(database)
	}
}

// track updates e's availability after a load that ended with err, and
// schedules the next retry while it fails; c.mu must be held.
func (c *Cache) track(database string, e *cacheEntry, err error) (wentDown, cameBack bool) {
	if err == nil {
		cameBack = e.down != nil
		e.down, e.backoff = nil, 0
		return false, cameBack
	}
	wentDown = e.down == nil
	e.down = err
	if e.backoff = min(2*e.backoff, c.cfg.RetryMax); e.backoff == 0 {
		e.backoff = c.cfg.RetryMin
	}
	if !c.closed {
		e.retry = time.AfterFunc(e.backoff, func() { c.retryLoad(database) })
	}
	return wentDown, false
}

// retryLoad starts a load of an unavailable catalog, nobody waiting for it.
func (c *Cache) retryLoad(database string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entry(database); !c.closed && e.down != nil && e.inflight == nil {
		c.start(context.Background(), database, e)
	}
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

// Defaults of DialerConfig.
const (
	DefaultConnectTimeout   = 5 * time.Second
	DefaultStatementTimeout = 30 * time.Second
)

// statementGrace is how much longer than the statement timeout pgguard
// waits for the server's answer before it gives up on the connection.
const statementGrace = time.Second

// DialerConfig bounds the catalog connection. The zero value of each field
// picks its default.
type DialerConfig struct {
	// ConnectTimeout bounds connecting: TCP, TLS, authentication (default
	// DefaultConnectTimeout). A server that accepts connections but never
	// answers costs a load this long.
	ConnectTimeout time.Duration
	// StatementTimeout bounds reading the catalog once connected (default
	// DefaultStatementTimeout): the server's statement_timeout, and pgguard
	// gives up a second later on a server that stopped answering.
	StatementTimeout time.Duration
}

func (d DialerConfig) validate() error {
	if d.ConnectTimeout < 0 || d.StatementTimeout < 0 {
		return fmt.Errorf("catalog connection: timeouts %s and %s: must not be negative", d.ConnectTimeout, d.StatementTimeout)
	}
	return nil
}

func (d DialerConfig) withDefaults() DialerConfig {
	if d.ConnectTimeout == 0 {
		d.ConnectTimeout = DefaultConnectTimeout
	}
	if d.StatementTimeout == 0 {
		d.StatementTimeout = DefaultStatementTimeout
	}
	return d
}

// Dialer returns a loader for NewCache that connects to baseURL (a
// PostgreSQL URL or keyword/value string) with the database replaced, runs
// Load and disconnects, with the default timeouts. The URL's role needs no
// privileges beyond CONNECT.
func Dialer(baseURL string) func(ctx context.Context, database string) (*Snapshot, error) {
	return dialer(baseURL, DialerConfig{}.withDefaults())
}

// NewDialer is Dialer with the timeouts of cfg. It checks that baseURL
// parses.
func NewDialer(baseURL string, cfg DialerConfig) (func(ctx context.Context, database string) (*Snapshot, error), error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if _, err := pgx.ParseConfig(baseURL); err != nil {
		return nil, fmt.Errorf("parse catalog connection URL: %w", err)
	}
	return dialer(baseURL, cfg.withDefaults()), nil
}

// Ping connects to baseURL within cfg's connect timeout and disconnects:
// it checks the address, TLS, the role and its password, and that the
// database exists, as every load will need. When baseURL names no
// database, it connects to "postgres".
func Ping(ctx context.Context, baseURL string, cfg DialerConfig) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	cc, err := connConfig(baseURL, "", cfg.withDefaults())
	if err != nil {
		return err
	}
	if cc.Database == "" {
		cc.Database = "postgres"
	}
	conn, err := connect(ctx, cc, cc.ConnectTimeout)
	if err != nil {
		return err
	}
	closeConn(ctx, conn)
	return nil
}

// connConfig is the configuration of a catalog connection to baseURL;
// database replaces the URL's unless empty.
func connConfig(baseURL, database string, d DialerConfig) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(baseURL)
	if err != nil {
		return nil, fmt.Errorf("parse catalog connection URL: %w", err)
	}
	if database != "" {
		cfg.Database = database
	}
	cfg.ConnectTimeout = d.ConnectTimeout
	// A connection used once gains nothing from prepared statements,
	// which would cost Load a round trip to prepare them.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "pgguard catalog"
	cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(max(1, d.StatementTimeout.Milliseconds()), 10)
	return cfg, nil
}

func dialer(baseURL string, d DialerConfig) func(ctx context.Context, database string) (*Snapshot, error) {
	return func(ctx context.Context, database string) (*Snapshot, error) {
		cfg, err := connConfig(baseURL, database, d)
		if err != nil {
			return nil, err
		}
		cfg.Database = database
		conn, err := connect(ctx, cfg, d.ConnectTimeout)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", database, err)
		}
		defer closeConn(ctx, conn)
		// The server's statement_timeout comes first, with an error that
		// says so; this bounds a server that stopped answering at all.
		ctx, cancel := context.WithTimeout(ctx, d.StatementTimeout+statementGrace)
		defer cancel()
		return Load(ctx, conn)
	}
}

// connect opens cfg's connection within timeout.
func connect(ctx context.Context, cfg *pgx.ConnConfig, timeout time.Duration) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// closeConn says goodbye to the server even when ctx has ended, but does
// not wait long for a peer that stopped answering.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
