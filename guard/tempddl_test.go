package guard

import (
	"context"
	"net"
	"os"
	"sync/atomic"
	"testing"

	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/proxy"
	"github.com/rs/zerolog"
)

// TestTemporaryTablesLeaveTheCatalogAlone: creating a temporary table,
// which pgguard reads from the server, does not make every session of the
// database wait for the catalog to be read again; other DDL does.
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
	s.Confirmed(stateRow("order_fulfilment", `"$user", public`, "sales_app"), nil, 'I')
	run := func(sql string) {
		t.Helper()
		v := s.ClientMessage(proxy.NewClientMessage('Q', queryBody(sql), 1))
		if v.Action != proxy.Forward {
			t.Fatalf("%s: refused: %v", sql, v.Error)
		}
		s.ServerMessage(proxy.NewServerMessage('Z', []byte{'I'}))
		s.Confirmed(stateRow("order_fulfilment", `"$user", public`, "sales_app"), nil, 'I')
	}
	run("SELECT status FROM crm.orders WHERE id = 1")
	before := loads.Load()
	for _, sql := range []string{
		"CREATE TEMP TABLE stage (id int, status text)",
		"CREATE TEMP TABLE copy AS SELECT id, status FROM crm.orders",
		"SELECT id INTO TEMP ids FROM crm.orders",
	} {
		run(sql)
		run("SELECT status FROM crm.orders WHERE id = 1")
	}
	if n := loads.Load() - before; n != 0 {
		t.Fatalf("creating temporary tables read the catalog %d times", n)
	}
	run("CREATE TABLE public.kept (id int)")
	run("SELECT status FROM crm.orders WHERE id = 1")
	if n := loads.Load() - before; n != 1 {
		t.Fatalf("a new table made the catalog be read %d times, want once", n)
	}
}
