package guard

import (
	"context"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/proxy"
	"github.com/rs/zerolog"
)

// TestTemporaryTablesLeaveTheCatalogAlone: creating, altering, indexing
// or dropping a temporary table, which pgguard reads from the server, does
// not make the catalog be read again; other DDL does.
func TestTemporaryTablesLeaveTheCatalogAlone(t *testing.T) {
	engine, err := authz.NewEngine("../model.conf", "../policy.csv", authz.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ddl, err := os.ReadFile("../demo/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := catalog.FromDDL("postgres", string(ddl))
	if err != nil {
		t.Fatal(err)
	}
	var loads atomic.Int32
	cats := catalog.NewCache(func(context.Context, string) (*catalog.Snapshot, error) {
		loads.Add(1)
		return snap, nil
	}, 0)
	g, err := New(Config{Policy: engine, Catalogs: cats, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(g, &proxy.Session{User: "sales_app", Database: "postgres", ClientAddr: &net.TCPAddr{}})
	// The server reports the session's temporary tables at every
	// confirmation; this one is there from the start.
	row := stateRow("order_fulfilment", `"$user", public`, "sales_app")
	row[6] = []byte(`[{"n": "held", "k": "r", "c": ["id"]}]`)
	s.Confirmed(row, nil, 'I')
	run := func(sql string) {
		t.Helper()
		v := s.ClientMessage(proxy.NewClientMessage('Q', queryBody(sql), 1))
		if v.Action != proxy.Forward {
			t.Fatalf("%s: refused: %v", sql, v.Error)
		}
		s.ServerMessage(proxy.NewServerMessage('Z', []byte{'I'}))
		s.Confirmed(row, nil, 'I')
	}
	run("SELECT status FROM crm.orders WHERE id = 1")
	before := loads.Load()
	for _, sql := range []string{
		"CREATE TEMP TABLE stage (id int, status text)",
		"CREATE TEMP TABLE copy AS SELECT id, status FROM crm.orders",
		"SELECT id INTO TEMP ids FROM crm.orders",
		"CREATE INDEX ON pg_temp.stage (id)",
		"DROP TABLE pg_temp.stage",
		"ALTER TABLE held ADD COLUMN note text",
		"CREATE INDEX ON held (id)",
		"DROP TABLE held",
	} {
		run(sql)
		run("SELECT status FROM crm.orders WHERE id = 1")
	}
	if n := loads.Load() - before; n != 0 {
		t.Fatalf("DDL of temporary tables read the catalog %d times", n)
	}
	run("CREATE TABLE public.kept (id int)")
	run("SELECT status FROM crm.orders WHERE id = 1")
	if _, err := cats.AwaitPending(context.Background(), "postgres"); err != nil {
		t.Fatal(err)
	}
	if n := loads.Load() - before; n != 1 {
		t.Fatalf("a new table made the catalog be read %d times, want once", n)
	}
}

// TestDDLStallsOnlyItsRelations: after a transaction whose DDL named only
// relations, the catalog is read again in the background; statements of
// other sessions that name none of those relations are decided at once,
// on the snapshot they had, and a statement that names one waits for the
// new snapshot and is decided on it. DDL that names no relation (a
// function) still makes every statement wait.
func TestDDLStallsOnlyItsRelations(t *testing.T) {
	engine, err := authz.NewEngine("../model.conf", "../policy.csv", authz.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ddl, err := os.ReadFile("../demo/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	before, err := catalog.FromDDL("postgres", string(ddl))
	if err != nil {
		t.Fatal(err)
	}
	after, err := catalog.FromDDL("postgres", string(ddl)+"\nCREATE TABLE public.kept (id int);")
	if err != nil {
		t.Fatal(err)
	}
	var loads atomic.Int32
	release := make(chan struct{})
	cats := catalog.NewCache(func(ctx context.Context, _ string) (*catalog.Snapshot, error) {
		if loads.Add(1) == 1 {
			return before, nil
		}
		select { // every load after the first waits for the test
		case <-release:
			return after, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}, 0)
	g, err := New(Config{Policy: engine, Catalogs: cats, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	open := func() *session {
		s := newSession(g, &proxy.Session{User: "sales_app", Database: "postgres", ClientAddr: &net.TCPAddr{}})
		s.Confirmed(stateRow("order_fulfilment", `"$user", public`, "sales_app"), nil, 'I')
		return s
	}
	// send runs one statement and its ReadyForQuery; done closes when the
	// guard has decided.
	send := func(s *session, sql string) (done chan proxy.Verdict) {
		done = make(chan proxy.Verdict, 1)
		go func() {
			v := s.ClientMessage(proxy.NewClientMessage('Q', queryBody(sql), 1))
			s.ServerMessage(proxy.NewServerMessage('Z', []byte{'I'}))
			done <- v
		}()
		return done
	}
	wait := func(done chan proxy.Verdict, sql string) proxy.Verdict {
		t.Helper()
		select {
		case v := <-done:
			return v
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: still waiting", sql)
		}
		return proxy.Verdict{}
	}
	migrator, other := open(), open()
	wait(send(other, "SELECT status FROM crm.orders WHERE id = 1"), "warm up")
	if v := wait(send(migrator, "CREATE TABLE public.kept (id int)"), "CREATE TABLE"); v.Action != proxy.Forward {
		t.Fatalf("CREATE TABLE refused: %v", v.Error)
	}
	for _, sql := range []string{"SELECT 1", "SELECT status FROM crm.orders WHERE id = 2", "SELECT id FROM crm.orders"} {
		if v := wait(send(other, sql), sql); v.Action != proxy.Forward {
			t.Fatalf("%s: refused while the catalog is read again: %v", sql, v.Error)
		}
	}
	touching := send(other, "SELECT id FROM public.kept")
	select {
	case v := <-touching:
		t.Fatalf("a statement naming the new table was decided before the catalog was read again: %v", v)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if v := wait(touching, "SELECT id FROM public.kept"); v.Action != proxy.Forward {
		t.Fatalf("the new table was not decided on the new catalog: %v", v.Error)
	}
	if p := cats.Pending("postgres"); p != nil {
		t.Fatalf("still pending: %v", p)
	}
}
