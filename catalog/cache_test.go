package catalog_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/internal/pgtest"
)

// countingLoader wraps the real Dialer: it counts loads, can hold each one
// until released, and can be told to fail.
type countingLoader struct {
	dial  func(context.Context, string) (*catalog.Snapshot, error)
	loads atomic.Int64
	gate  chan struct{} // when not nil, every load waits for a value or close
	fail  atomic.Bool
}

func newCountingLoader(srv *pgtest.Server) *countingLoader {
	return &countingLoader{dial: catalog.Dialer(srv.URL(pgtest.Superuser, "", "postgres"))}
}

func (l *countingLoader) load(ctx context.Context, db string) (*catalog.Snapshot, error) {
	l.loads.Add(1)
	if l.gate != nil {
		<-l.gate
	}
	if l.fail.Load() {
		return nil, errors.New("database unreachable (simulated)")
	}
	return l.dial(ctx, db)
}

func get(t *testing.T, c *catalog.Cache, db string) *catalog.Snapshot {
	t.Helper()
	s, err := c.Get(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantLoads(t *testing.T, l *countingLoader, want int64) {
	t.Helper()
	if got := l.loads.Load(); got != want {
		t.Fatalf("%d loads, want %d", got, want)
	}
}

func TestCacheSingleFlight(t *testing.T) {
	srv, db := freshDB(t, "CREATE TABLE t (a int)")
	l := newCountingLoader(srv)
	l.gate = make(chan struct{})
	c := catalog.NewCache(l.load, time.Hour)
	var wg sync.WaitGroup
	snaps := make([]*catalog.Snapshot, 20)
	errs := make([]error, 20)
	for i := range snaps {
		wg.Go(func() { snaps[i], errs[i] = c.Get(context.Background(), db) })
	}
	time.Sleep(200 * time.Millisecond) // let the callers pile up on the held load
	close(l.gate)
	wg.Wait()
	wantLoads(t, l, 1)
	for i := range snaps {
		if errs[i] != nil || snaps[i] != snaps[0] {
			t.Fatalf("caller %d: %p, %v; want the shared %p", i, snaps[i], errs[i], snaps[0])
		}
	}
	if _, ok := snaps[0].Relation("public", "t"); !ok {
		t.Fatal("snapshot lacks public.t")
	}
}

func TestCacheDatabasesLoadIndependently(t *testing.T) {
	srv, db1 := freshDB(t, "CREATE TABLE one (a int)")
	_, db2 := freshDB(t, "CREATE TABLE two (b int)")
	l := newCountingLoader(srv)
	c := catalog.NewCache(l.load, time.Hour)
	s1, s2 := get(t, c, db1), get(t, c, db2)
	if _, ok := s1.Relation("public", "one"); !ok || s1.Database != db1 {
		t.Errorf("first database snapshot wrong: %s", s1.Database)
	}
	if _, ok := s2.Relation("public", "two"); !ok || s2.Database != db2 {
		t.Errorf("second database snapshot wrong: %s", s2.Database)
	}
	get(t, c, db1)
	wantLoads(t, l, 2)
}

func TestCacheMaxAge(t *testing.T) {
	srv, db := freshDB(t, "")
	l := newCountingLoader(srv)
	c := catalog.NewCache(l.load, 300*time.Millisecond)
	get(t, c, db)
	get(t, c, db)
	wantLoads(t, l, 1)
	time.Sleep(400 * time.Millisecond)
	get(t, c, db)
	wantLoads(t, l, 2)
}

func TestCacheInvalidate(t *testing.T) {
	srv, db := freshDB(t, "CREATE TABLE t (a int)")
	l := newCountingLoader(srv)
	c := catalog.NewCache(l.load, 0)
	before := get(t, c, db)
	srv.MustExec(t, db, "ALTER TABLE t ADD COLUMN b int")
	if again := get(t, c, db); again != before {
		t.Fatal("snapshot reloaded without Invalidate or age")
	}
	c.Invalidate(db)
	after := get(t, c, db)
	wantLoads(t, l, 2)
	wantColumns(t, relation(t, after, "public", "t"), "a", "b")
	if after.Version() == before.Version() {
		t.Error("version unchanged after DDL")
	}
}

func TestCacheRefresh(t *testing.T) {
	srv, db := freshDB(t, "")
	l := newCountingLoader(srv)
	c := catalog.NewCache(l.load, time.Hour)
	get(t, c, db)
	srv.MustExec(t, db, "CREATE TABLE created_later (x int)")
	s, err := c.Refresh(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	relation(t, s, "public", "created_later")
	if get(t, c, db) != s {
		t.Error("Get after Refresh did not serve the refreshed snapshot")
	}
	wantLoads(t, l, 2)
}

// TestCacheReloadKeepsServing: while Reload reads the catalog again, Get
// goes on serving the snapshot in force at once; the new one is served
// once read.
func TestCacheReloadKeepsServing(t *testing.T) {
	srv, db := freshDB(t, "")
	l := newCountingLoader(srv)
	c := catalog.NewCache(l.load, time.Hour)
	l.gate = make(chan struct{}, 2)
	l.gate <- struct{}{}
	old := get(t, c, db)
	srv.MustExec(t, db, "CREATE TABLE created_around (x int)")
	reloaded := make(chan *catalog.Snapshot)
	go func() { s, _ := c.Reload(context.Background(), db); reloaded <- s }()
	for l.loads.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	// The second load is held at the gate: Get must not wait for it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	during, err := c.Get(ctx, db)
	cancel()
	if err != nil || during != old {
		t.Fatalf("Get during Reload did not serve the snapshot in force at once: %v", err)
	}
	l.gate <- struct{}{}
	s := <-reloaded
	relation(t, s, "public", "created_around")
	if get(t, c, db) != s {
		t.Error("Get after Reload did not serve the reloaded snapshot")
	}
	wantLoads(t, l, 2)
}

// TestCacheRefreshWaitsOutOlderLoad: a load already under way may have read
// the catalog before the DDL the caller is looking for, so Refresh starts
// another once it ends.
func TestCacheRefreshWaitsOutOlderLoad(t *testing.T) {
	srv, db := freshDB(t, "")
	l := newCountingLoader(srv)
	l.gate = make(chan struct{}, 2)
	c := catalog.NewCache(l.load, time.Hour)
	first := make(chan *catalog.Snapshot)
	go func() { s, _ := c.Get(context.Background(), db); first <- s }()
	for l.loads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	refreshed := make(chan *catalog.Snapshot)
	go func() { s, _ := c.Refresh(context.Background(), db); refreshed <- s }()
	time.Sleep(100 * time.Millisecond) // Refresh now waits on the first load
	l.gate <- struct{}{}
	l.gate <- struct{}{}
	s1, s2 := <-first, <-refreshed
	wantLoads(t, l, 2)
	if s1 == nil || s2 == nil || s1 == s2 {
		t.Fatalf("Refresh returned the older load's snapshot (%p, %p)", s1, s2)
	}
}

func TestCacheFailureKeepsPreviousSnapshot(t *testing.T) {
	srv, db := freshDB(t, "CREATE TABLE t (a int)")
	l := newCountingLoader(srv)
	c := newCache(t, catalog.CacheConfig{Load: l.load, MaxAge: time.Hour, RetryMin: 20 * time.Millisecond})
	good := get(t, c, db)
	l.fail.Store(true)
	c.Invalidate(db)
	s, err := c.Get(context.Background(), db)
	if err == nil || s != good {
		t.Fatalf("failed reload: got %p, %v; want the previous %p and an error", s, err, good)
	}
	// Still stale: the next call does not serve it as current.
	if _, err := c.Get(context.Background(), db); err == nil {
		t.Fatal("stale snapshot served as current after a failed reload")
	}
	l.fail.Store(false)
	// The cache tries again by itself and recovers.
	eventually(t, "the catalog to load again", func() bool {
		s, err := c.Get(context.Background(), db)
		return err == nil && s != good
	})
}

// newCache is NewCacheWith, stopped when the test ends.
func newCache(t *testing.T, cfg catalog.CacheConfig) *catalog.Cache {
	t.Helper()
	c, err := catalog.NewCacheWith(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// eventually polls cond until it holds, within a bound that only keeps a
// broken build from hanging.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCacheRemembersFailure: after a failed load, callers are refused at
// once with ErrUnavailable, without another load, until the retry; the
// failure is reported once.
func TestCacheRemembersFailure(t *testing.T) {
	srv, db := freshDB(t, "")
	l := newCountingLoader(srv)
	l.fail.Store(true)
	var reported atomic.Int64
	c := newCache(t, catalog.CacheConfig{Load: l.load, MaxAge: time.Hour, RetryMin: time.Hour,
		OnUnavailable: func(database string, err error) {
			if database == db && errors.Is(err, catalog.ErrUnavailable) {
				reported.Add(1)
			}
		}})
	if _, err := c.Get(context.Background(), db); !errors.Is(err, catalog.ErrUnavailable) {
		t.Fatalf("first Get: %v, want ErrUnavailable", err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := c.Get(context.Background(), db); !errors.Is(err, catalog.ErrUnavailable) {
				t.Errorf("Get after the failure: %v, want ErrUnavailable", err)
			}
		})
	}
	wg.Wait()
	if _, err := c.Refresh(context.Background(), db); !errors.Is(err, catalog.ErrUnavailable) {
		t.Fatalf("Refresh: %v, want ErrUnavailable", err)
	}
	wantLoads(t, l, 1)
	if down := c.Unavailable(); len(down) != 1 || down[db] == nil {
		t.Fatalf("Unavailable() = %v, want %s", down, db)
	}
	eventually(t, "the failure to be reported", func() bool { return reported.Load() == 1 })
}

// TestCacheRetryBacksOffAndRecovers: while loads keep failing the cache
// tries again by itself, and a load that succeeds makes the catalog
// available again and is reported.
func TestCacheRetryBacksOffAndRecovers(t *testing.T) {
	srv, db := freshDB(t, "")
	l := newCountingLoader(srv)
	l.fail.Store(true)
	var back atomic.Int64
	c := newCache(t, catalog.CacheConfig{Load: l.load, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		OnAvailable: func(string) { back.Add(1) }})
	if _, err := c.Get(context.Background(), db); !errors.Is(err, catalog.ErrUnavailable) {
		t.Fatalf("Get: %v, want ErrUnavailable", err)
	}
	eventually(t, "retries", func() bool { return l.loads.Load() >= 3 })
	l.fail.Store(false)
	eventually(t, "the catalog to come back", func() bool { return len(c.Unavailable()) == 0 })
	get(t, c, db)
	eventually(t, "the recovery to be reported", func() bool { return back.Load() == 1 })
}

func TestCacheConfigValidation(t *testing.T) {
	load := func(context.Context, string) (*catalog.Snapshot, error) { return nil, nil }
	for _, cfg := range []catalog.CacheConfig{
		{},
		{Load: load, RetryMin: -time.Second},
		{Load: load, RetryMin: time.Minute, RetryMax: time.Second},
	} {
		if _, err := catalog.NewCacheWith(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	if _, err := catalog.NewDialer("postgres://x/", catalog.DialerConfig{ConnectTimeout: -1}); err == nil {
		t.Error("negative connect timeout accepted")
	}
	if _, err := catalog.NewDialer("postgres://%zz", catalog.DialerConfig{}); err == nil || !strings.Contains(err.Error(), "parse catalog connection URL") {
		t.Errorf("a URL that does not parse: %v", err)
	}
}

// TestPing: Ping connects as the URL says, to "postgres" when it names no
// database, and returns the server's own error for a wrong password or a
// missing database, and a network error for a closed port.
func TestPing(t *testing.T) {
	srv := pgtest.Shared(t)
	srv.MustCreateRole(t, "ping_role", "right", pgtest.SCRAM)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := catalog.DialerConfig{ConnectTimeout: 5 * time.Second}
	for _, u := range []string{
		srv.URL(pgtest.Superuser, "", "postgres"),
		"postgres://ping_role:right@" + srv.Addr() + "/?sslmode=disable",
	} {
		if err := catalog.Ping(ctx, u, cfg); err != nil {
			t.Errorf("Ping: %v", err)
		}
	}
	for url, code := range map[string]string{
		"postgres://ping_role:wrong@" + srv.Addr() + "/postgres?sslmode=disable":              "28P01",
		"postgres://ping_role:right@" + srv.Addr() + "/no_such_database_ping?sslmode=disable": "3D000",
	} {
		var pe *pgconn.PgError
		if err := catalog.Ping(ctx, url, cfg); !errors.As(err, &pe) || pe.Code != code {
			t.Errorf("Ping %s: %v, want %s", url, err, code)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	var pe *pgconn.PgError
	if err := catalog.Ping(ctx, "postgres://x@"+closed+"/postgres?sslmode=disable", cfg); err == nil || errors.As(err, &pe) {
		t.Errorf("Ping of a closed port: %v, want a network error", err)
	}
	if err := catalog.Ping(ctx, "postgres://%zz", cfg); err == nil {
		t.Error("Ping of a URL that does not parse succeeded")
	}
}

// TestDialerConnectTimeout: a server that accepts connections and never
// answers fails the load after the connect timeout, not after the caller's
// patience.
func TestDialerConnectTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			defer c.Close()
		}
	}()
	load, err := catalog.NewDialer("postgres://catalog@"+l.Addr().String()+"/?sslmode=disable",
		catalog.DialerConfig{ConnectTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := load(ctx, "postgres"); err == nil || ctx.Err() != nil {
		t.Fatalf("load from a silent server: %v (caller's context: %v), want a connect timeout", err, ctx.Err())
	}
	if accepted.Load() != 1 {
		t.Fatalf("%d connections, want 1", accepted.Load())
	}
}

// TestDialerStatementTimeout: a catalog read that waits (here behind a lock
// on pg_inherits) is ended by the server's statement_timeout.
func TestDialerStatementTimeout(t *testing.T) {
	srv, db := freshDB(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	locker, err := pgx.Connect(ctx, srv.URL(pgtest.Superuser, "", db))
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(context.Background())
	if _, err := locker.Exec(ctx, "BEGIN; LOCK TABLE pg_catalog.pg_inherits IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	load, err := catalog.NewDialer(srv.URL(pgtest.Superuser, "", "postgres"), catalog.DialerConfig{StatementTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = load(ctx, db)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57014" {
		t.Fatalf("load behind a lock: %v, want the server's statement timeout (57014)", err)
	}
}

func TestCacheFailureWithoutSnapshot(t *testing.T) {
	srv, db := freshDB(t, "")
	l := newCountingLoader(srv)
	l.fail.Store(true)
	c := catalog.NewCache(l.load, time.Hour)
	if s, err := c.Get(context.Background(), db); err == nil || s != nil {
		t.Fatalf("got %p, %v; want nil and an error", s, err)
	}
	if s, err := c.Refresh(context.Background(), db); err == nil || s != nil {
		t.Fatalf("Refresh: got %p, %v; want nil and an error", s, err)
	}
}

// TestCacheCallerGivesUp: a caller whose context ends stops waiting, but the
// load goes on for the others and lands in the cache.
func TestCacheCallerGivesUp(t *testing.T) {
	srv, db := freshDB(t, "")
	l := newCountingLoader(srv)
	l.gate = make(chan struct{})
	c := catalog.NewCache(l.load, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, db); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	close(l.gate)
	get(t, c, db)
	wantLoads(t, l, 1)
}

func TestDialerErrors(t *testing.T) {
	srv := pgtest.Shared(t)
	ctx := context.Background()
	if _, err := catalog.Dialer("postgres://%zz")(ctx, "postgres"); err == nil {
		t.Error("bad URL accepted")
	}
	if _, err := catalog.Dialer(srv.URL(pgtest.Superuser, "", "postgres"))(ctx, "no_such_database"); err == nil {
		t.Error("missing database loaded")
	}
	s, err := catalog.Dialer(srv.URL(pgtest.Superuser, "", "postgres"))(ctx, "template1")
	if err != nil || s.Database != "template1" || !slices.Contains(s.Schemas(), "public") {
		t.Errorf("template1: %v", err)
	}
}
