package catalog_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/internal/pgtest"
)

// dbCounter keeps database names unique within the shared cluster.
var dbCounter atomic.Int64

// freshDB creates an empty database on the shared cluster and applies sql.
func freshDB(t *testing.T, sql string) (*pgtest.Server, string) {
	t.Helper()
	srv := pgtest.Shared(t)
	name := fmt.Sprintf("%s_%d", strings.ToLower(regexp.MustCompile(`\W+`).ReplaceAllString(t.Name(), "_")), dbCounter.Add(1))
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.CreateDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
	if sql != "" {
		srv.MustExec(t, name, sql)
	}
	return srv, name
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func load(t *testing.T, url string) *catalog.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := catalog.Load(ctx, connect(t, url))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func relation(t *testing.T, s *catalog.Snapshot, schema, name string) *catalog.Relation {
	t.Helper()
	r, ok := s.Relation(schema, name)
	if !ok {
		t.Fatalf("relation %s.%s missing", schema, name)
	}
	return r
}

func wantColumns(t *testing.T, r *catalog.Relation, want ...string) {
	t.Helper()
	if !slices.Equal(r.Columns, want) {
		t.Errorf("%s.%s columns = %q, want %q", r.Schema, r.Name, r.Columns, want)
	}
}

func wantParents(t *testing.T, r *catalog.Relation, want ...catalog.QualifiedName) {
	t.Helper()
	if !slices.Equal(r.Parents, want) {
		t.Errorf("%s.%s parents = %v, want %v", r.Schema, r.Name, r.Parents, want)
	}
}

const liveSchema = `
CREATE SCHEMA "Mixed Case";
CREATE TABLE public.plain (id int, gone text, name text, "CamelCol" int);
ALTER TABLE public.plain DROP COLUMN gone;
CREATE TABLE "Mixed Case"."BigTable" ("Id" int, "Some Col" text);
CREATE TABLE public.measure (at date, v int) PARTITION BY RANGE (at);
CREATE TABLE public.measure_2025 PARTITION OF public.measure FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE public.base (a int, b int);
CREATE TABLE public.heir (c int) INHERITS (public.base);
CREATE VIEW public.plain_names AS SELECT id, name FROM public.plain WHERE id > 0;
CREATE MATERIALIZED VIEW "Mixed Case".mv AS SELECT "Id" FROM "Mixed Case"."BigTable";
CREATE FUNCTION public.twice(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';
CREATE FUNCTION public.distance(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT abs(a - b)';
CREATE OPERATOR public.<-> (LEFTARG = int, RIGHTARG = int, FUNCTION = public.distance);
`

func TestLoadRelations(t *testing.T) {
	srv, db := freshDB(t, liveSchema)
	s := load(t, srv.URL(pgtest.Superuser, "", db))
	if !s.Complete || s.Database != db {
		t.Errorf("Complete = %v, Database = %q", s.Complete, s.Database)
	}
	plain := relation(t, s, "public", "plain")
	wantColumns(t, plain, "id", "name", "CamelCol")
	if plain.Kind != catalog.Table {
		t.Errorf("plain kind %c", plain.Kind)
	}
	wantColumns(t, relation(t, s, "Mixed Case", "BigTable"), "Id", "Some Col")
	if m := relation(t, s, "public", "measure"); m.Kind != catalog.PartitionedTable {
		t.Errorf("measure kind %c", m.Kind)
	}
	part := relation(t, s, "public", "measure_2025")
	wantColumns(t, part, "at", "v")
	wantParents(t, part, catalog.QualifiedName{Schema: "public", Name: "measure"})
	heir := relation(t, s, "public", "heir")
	wantColumns(t, heir, "a", "b", "c")
	wantParents(t, heir, catalog.QualifiedName{Schema: "public", Name: "base"})
}

func TestLoadViews(t *testing.T) {
	srv, db := freshDB(t, liveSchema)
	s := load(t, srv.URL(pgtest.Superuser, "", db))
	v := relation(t, s, "public", "plain_names")
	wantColumns(t, v, "id", "name")
	// Rendered with only pg_catalog on the path, so user relations come
	// schema-qualified whatever path the querying session has.
	if v.Kind != catalog.View || !strings.Contains(v.ViewDefinition, "FROM public.plain") ||
		!slices.Equal(v.DefinitionSearchPath, []string{"pg_catalog"}) {
		t.Errorf("view %c %q under %q", v.Kind, v.ViewDefinition, v.DefinitionSearchPath)
	}
	mv := relation(t, s, "Mixed Case", "mv")
	if mv.Kind != catalog.MaterializedView || !strings.Contains(mv.ViewDefinition, `"Mixed Case"."BigTable"`) {
		t.Errorf("matview %c %q", mv.Kind, mv.ViewDefinition)
	}
	if tbl := relation(t, s, "public", "plain"); tbl.ViewDefinition != "" || tbl.DefinitionSearchPath != nil {
		t.Errorf("table has a definition: %q", tbl.ViewDefinition)
	}
}

func TestLoadSystemCatalogs(t *testing.T) {
	srv, db := freshDB(t, "")
	s := load(t, srv.URL(pgtest.Superuser, "", db))
	pgClass := relation(t, s, "pg_catalog", "pg_class")
	if pgClass.Kind != catalog.Table || !slices.Contains(pgClass.Columns, "relname") {
		t.Errorf("pg_class: %c %q", pgClass.Kind, pgClass.Columns)
	}
	if cols := relation(t, s, "information_schema", "columns"); cols.Kind != catalog.View {
		t.Errorf("information_schema.columns kind %c", cols.Kind)
	}
	for _, schema := range s.Schemas() {
		if schema == "pg_toast" || strings.HasPrefix(schema, "pg_temp_") || strings.HasPrefix(schema, "pg_toast_temp_") {
			t.Errorf("schema %s listed", schema)
		}
	}
}

func TestLoadFunctionsAndOperators(t *testing.T) {
	srv, db := freshDB(t, liveSchema)
	s := load(t, srv.URL(pgtest.Superuser, "", db))
	now, ok := s.Function("pg_catalog", "now")
	if !ok || !now.BuiltIn || now.Language != "internal" {
		t.Errorf("now: %+v", now)
	}
	if f, ok := s.Function("information_schema", "_pg_truetypid"); !ok || !f.BuiltIn {
		t.Errorf("information_schema._pg_truetypid: %+v", f)
	}
	twice, ok := s.Function("public", "twice")
	if !ok || twice.BuiltIn || twice.Language != "sql" {
		t.Errorf("twice: %+v", twice)
	}
	ops := s.UserOperators("<->")
	if !slices.ContainsFunc(ops, func(op catalog.Operator) bool {
		if op.Schema != "public" || op.Name != "<->" {
			return false
		}
		l, lok := s.Type(op.Left)
		r, rok := s.Type(op.Right)
		return lok && rok && l.Name == "int4" && r.Name == "int4" && op.Extension == ""
	}) {
		t.Errorf("user operators <-> = %+v", ops)
	}
	if ops := s.UserOperators("+"); len(ops) != 0 {
		t.Errorf("built-in + listed as user operator: %v", ops)
	}
}

// TestLoadAsUnprivilegedRole loads as a login role with no privileges on the
// tables: pg_catalog still shows every column, where information_schema
// would show none.
func TestLoadAsUnprivilegedRole(t *testing.T) {
	srv, db := freshDB(t, liveSchema+`
		REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
		REVOKE ALL ON SCHEMA "Mixed Case" FROM PUBLIC;`)
	role := "reader_" + db
	srv.MustCreateRole(t, role, "reader-secret", pgtest.SCRAM)
	s := load(t, srv.URL(role, "reader-secret", db))
	wantColumns(t, relation(t, s, "public", "plain"), "id", "name", "CamelCol")
	wantColumns(t, relation(t, s, "Mixed Case", "BigTable"), "Id", "Some Col")
	if !strings.Contains(relation(t, s, "public", "plain_names").ViewDefinition, "public.plain") {
		t.Error("view definition missing for unprivileged role")
	}
}

func TestLoadSearchPaths(t *testing.T) {
	srv, db := freshDB(t, "")
	other := db + "_other"
	srv.MustExec(t, "postgres", "CREATE DATABASE "+other)
	inDB, anyDB, both := "path_in_"+db, "path_any_"+db, "path_both_"+db
	for _, r := range []string{inDB, anyDB, both} {
		srv.MustCreateRole(t, r, "x", pgtest.SCRAM)
	}
	srv.MustExec(t, "postgres", fmt.Sprintf(`
		ALTER DATABASE %[1]s SET search_path = app, "My Schema";
		ALTER ROLE %[2]s IN DATABASE %[1]s SET search_path = "$user", hr;
		ALTER ROLE %[2]s IN DATABASE %[5]s SET search_path = elsewhere;
		ALTER ROLE %[3]s SET search_path = "Quoted, Comma", Folded;
		ALTER ROLE %[4]s SET search_path = everywhere;
		ALTER ROLE %[4]s IN DATABASE %[1]s SET search_path = here;
		ALTER ROLE %[4]s SET work_mem = '8MB';`, db, inDB, anyDB, both, other))
	s := load(t, srv.URL(pgtest.Superuser, "", db))
	for _, tc := range []struct {
		role string
		want []string
	}{
		{"", []string{"app", "My Schema"}},
		{"nobody_in_particular", []string{"app", "My Schema"}},
		{inDB, []string{"$user", "hr"}},
		{anyDB, []string{"Quoted, Comma", "folded"}},
		{both, []string{"here"}},
	} {
		if got := s.SearchPath(tc.role); !slices.Equal(got, tc.want) {
			t.Errorf("SearchPath(%q) = %q, want %q", tc.role, got, tc.want)
		}
	}
	if got := load(t, srv.URL(pgtest.Superuser, "", other)).SearchPath(inDB); !slices.Equal(got, []string{"elsewhere"}) {
		t.Errorf("other database: SearchPath = %q", got)
	}
}

func TestLoadSkipsOtherSessionsTemporarySchemas(t *testing.T) {
	srv, db := freshDB(t, "")
	url := srv.URL(pgtest.Superuser, "", db)
	holder := connect(t, url)
	if _, err := holder.Exec(context.Background(), "CREATE TEMP TABLE scratch (secret text)"); err != nil {
		t.Fatal(err)
	}
	s := load(t, url)
	for _, r := range s.RelationsNamed("scratch") {
		t.Errorf("temporary table listed as %s.%s", r.Schema, r.Name)
	}
}

func TestLoadVersion(t *testing.T) {
	srv, db := freshDB(t, liveSchema)
	url := srv.URL(pgtest.Superuser, "", db)
	first, second := load(t, url), load(t, url)
	if first.Version() != second.Version() {
		t.Fatalf("version changed without DDL: %s then %s", first.Version(), second.Version())
	}
	srv.MustExec(t, db, "ALTER TABLE public.plain ADD COLUMN added int")
	third := load(t, url)
	if third.Version() == first.Version() {
		t.Fatal("version unchanged after ADD COLUMN")
	}
	wantColumns(t, relation(t, third, "public", "plain"), "id", "name", "CamelCol", "added")
}

// TestLoadInEveryQueryMode: the caller picks how its connection talks, and
// poolers may force the simple protocol; the snapshot must not depend on it.
func TestLoadInEveryQueryMode(t *testing.T) {
	srv, db := freshDB(t, liveSchema)
	want := load(t, srv.URL(pgtest.Superuser, "", db)).Version()
	for _, mode := range []pgx.QueryExecMode{
		pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol,
	} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg, err := pgx.ParseConfig(srv.URL(pgtest.Superuser, "", db))
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = mode
			ctx := context.Background()
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			s, err := catalog.Load(ctx, conn)
			if err != nil {
				t.Fatal(err)
			}
			if s.Version() != want {
				t.Errorf("version %s, want %s", s.Version(), want)
			}
			// The connection is usable afterwards, outside any transaction.
			var one int
			if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || conn.PgConn().TxStatus() != 'I' {
				t.Errorf("connection after Load: %v, tx status %c", err, conn.PgConn().TxStatus())
			}
		})
	}
}
