package catalog_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/internal/pgtest"
)

// describe renders every relation of s, and the types of their columns,
// for comparing two snapshots' contents.
func describe(s *catalog.Snapshot) string {
	var b strings.Builder
	for _, r := range s.Relations() {
		if r.Schema == "pg_catalog" || r.Schema == "information_schema" {
			continue
		}
		fmt.Fprintf(&b, "%s.%s %c oid=%d cols=%v types=%v parents=%v deps=%v path=%v\n\t%s\n", r.Schema, r.Name, r.Kind, r.OID,
			r.Columns, r.ColumnTypes, r.Parents, r.DependsOn, r.DefinitionSearchPath, r.ViewDefinition)
		for _, oid := range r.ColumnTypes {
			t, ok := s.Type(oid)
			fmt.Fprintf(&b, "\ttype %d %v %+v\n", oid, ok, t)
		}
		for _, c := range s.Children(r.Schema, r.Name) {
			fmt.Fprintf(&b, "\tchild %s.%s\n", c.Schema, c.Name)
		}
	}
	for _, t := range s.TypesNamed("od_row") {
		fmt.Fprintf(&b, "row type %+v\n", *t)
	}
	fmt.Fprintf(&b, "schemas %v\n", s.Schemas())
	return b.String()
}

// TestLoadRelationsMatchesLoad: after each kind of DDL, reading only the
// relations it named (with what depends on them) into the snapshot from
// before it gives the relations, children and column types a whole load
// reads.
func TestLoadRelationsMatchesLoad(t *testing.T) {
	const schema = `CREATE SCHEMA a; CREATE SCHEMA b;
		CREATE TABLE a.t (id int, note text);
		CREATE TABLE b.t (id int);
		CREATE VIEW a.v AS SELECT id, note FROM a.t;
		CREATE VIEW a.vv AS SELECT note FROM a.v;
		CREATE TABLE a.parent (id int);
		CREATE TABLE a.child () INHERITS (a.parent);
		CREATE TABLE a.grandchild () INHERITS (a.child);
		CREATE TABLE a.loose (id int);
		CREATE TABLE a.pt (id int) PARTITION BY RANGE (id);
		CREATE TABLE a.p1 (id int);
		CREATE TABLE a.other (x int);
		CREATE VIEW a.od_row AS SELECT 1 AS one`
	cases := []struct {
		name, ddl string
		names     []string // the names the DDL statement names
	}{
		{"column added to a table a view reads", "ALTER TABLE a.t ADD COLUMN extra text", []string{"t"}},
		{"column renamed under two views", "ALTER TABLE a.t RENAME COLUMN note TO remark", []string{"t"}},
		{"table renamed under two views", "ALTER TABLE a.t RENAME TO t2", []string{"t", "t2"}},
		{"table moved to another schema", "ALTER TABLE a.other SET SCHEMA b", []string{"other"}},
		{"table dropped with its views", "DROP TABLE a.t CASCADE", []string{"t"}},
		{"table dropped and created with other columns", "DROP TABLE a.t CASCADE; CREATE TABLE a.t (secret text, id bigint)", []string{"t"}},
		{"view replaced", "CREATE OR REPLACE VIEW a.v AS SELECT id, note, 1 AS one FROM b.t JOIN a.t USING (id)", []string{"v"}},
		{"column type changed", "DROP VIEW a.vv, a.v; ALTER TABLE a.t ALTER COLUMN id TYPE bigint", []string{"vv", "v", "t"}},
		{"column added to a parent", "ALTER TABLE a.parent ADD COLUMN secret text", []string{"parent"}},
		{"parent renamed", "ALTER TABLE a.parent RENAME TO ancestor", []string{"parent", "ancestor"}},
		{"parent dropped with its children", "DROP TABLE a.parent CASCADE", []string{"parent"}},
		{"table made to inherit", "ALTER TABLE a.loose INHERIT a.parent", []string{"loose", "parent"}},
		{"child no longer inherits", "ALTER TABLE a.child NO INHERIT a.parent", []string{"child", "parent"}},
		{"partition attached", "ALTER TABLE a.pt ATTACH PARTITION a.p1 FOR VALUES FROM (0) TO (10)", []string{"pt", "p1"}},
		{"table created with a new row type", "CREATE TABLE a.fresh (r a.other, n numeric)", []string{"fresh"}},
		{"view made a table of the same name", "DROP VIEW a.od_row; CREATE TABLE a.od_row (x int)", []string{"od_row"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, db := freshDB(t, schema)
			src, err := catalog.NewSource(srv.URL(pgtest.Superuser, "", "postgres"), catalog.DialerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			base, err := src.Load(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			srv.MustExec(t, db, c.ddl)
			got, err := src.LoadRelations(ctx, db, base, c.names)
			if err != nil {
				t.Fatal(err)
			}
			want, err := src.Load(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if describe(got) != describe(want) {
				t.Fatalf("read by names:\n%s\nwhole load:\n%s", describe(got), describe(want))
			}
			if describe(base) == describe(want) {
				t.Fatal("the DDL changed nothing the test sees")
			}
			if got.Version() == base.Version() {
				t.Fatal("the version did not change")
			}
		})
	}
}

// TestLoadRelationsReconnects: the kept connection closed by the server
// (here terminated) is opened again, and a read fails, without waiting
// long, while the server refuses connections.
func TestLoadRelationsReconnects(t *testing.T) {
	srv, db := freshDB(t, "CREATE TABLE t (id int)")
	src, err := catalog.NewSource(srv.URL(pgtest.Superuser, "", "postgres"), catalog.DialerConfig{ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	base, err := src.Load(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		srv.MustExec(t, db, fmt.Sprintf("ALTER TABLE t ADD COLUMN c%d int", i))
		if i == 1 {
			srv.MustExec(t, db, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE application_name = 'pgguard catalog' AND pid <> pg_backend_pid()`)
		}
		got, err := src.LoadRelations(ctx, db, base, []string{"t"})
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		r, ok := got.Relation("public", "t")
		if !ok || len(r.Columns) != i+2 {
			t.Fatalf("read %d: %+v", i, r)
		}
	}
	conn, err := pgx.Connect(ctx, srv.URL(pgtest.Superuser, "", db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgguard catalog'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d catalog connections, want the one kept", n)
	}
	src.Close()
	if _, err := src.LoadRelations(ctx, db, base, []string{"t"}); err == nil {
		t.Fatal("read after Close")
	}
}
