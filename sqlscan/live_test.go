package sqlscan

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgguard/pgguard/internal/pgtest"
)

// These tests check assumptions the analysis makes about PostgreSQL
// against a real server.

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }

func liveConn(t *testing.T, setup string) *pgx.Conn {
	t.Helper()
	srv := pgtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, srv.URL(pgtest.Superuser, "", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if setup != "" {
		if _, err := conn.Exec(ctx, setup); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

// Every built-in one argument of a row type can call must be in
// rowFunctions, or name(t) would be taken for the column t.name.
func TestRowFunctionsCoverTheServer(t *testing.T) {
	conn := liveConn(t, "")
	rows, err := conn.Query(context.Background(), `
		SELECT DISTINCT p.proname::text FROM pg_catalog.pg_proc p
		WHERE p.pronamespace IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
		  AND p.pronargs >= 1 AND p.pronargs - p.pronargdefaults <= 1
		  AND (p.proargtypes[0] IN ('record'::regtype, 'anyelement'::regtype, 'anynonarray'::regtype,
		        'anycompatible'::regtype, 'anycompatiblenonarray'::regtype, '"any"'::regtype)
		    OR (p.pronargs = 1 AND p.provariadic IN ('anyelement'::regtype, 'anynonarray'::regtype,
		        'anycompatible'::regtype, 'anycompatiblenonarray'::regtype, '"any"'::regtype)))`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 10 {
		t.Fatalf("the server lists only %d such functions", len(names))
	}
	for _, n := range names {
		if !rowFunctions[n] {
			t.Errorf("built-in %s takes a row but is not in rowFunctions", n)
		}
	}
}

// Unaliased select-list items are named as the server names them, which
// NATURAL joins match on.
func TestColumnNamesMatchTheServer(t *testing.T) {
	conn := liveConn(t, `
		CREATE SCHEMA IF NOT EXISTS colnames;
		CREATE TABLE IF NOT EXISTS colnames.inner_row (a int, b int[]);
		CREATE TABLE IF NOT EXISTS colnames.outer_row (id int, r colnames.inner_row, arr int[], j jsonb, t text)`)
	exprs := []string{
		"id", "o.id", "o", "o.*::text", "arr[1]", "(r).a", "(r).b[1]", "(o.r).b[1:2]", "j['k']", "(j)['k']['l']",
		"lower(t)", "pg_catalog.lower(t)", "count(*)", "nullif(id, 1)", "id + 1", "-id", "NOT true", "id IS NULL",
		"id::text", "(id + 1)::text", "'x'::text", "1::int", "arr::int[]", "(CASE WHEN true THEN 1 END)::text",
		"t COLLATE \"C\"", "(CASE WHEN true THEN 1 END)", "CASE WHEN true THEN 1 ELSE id END",
		"CASE WHEN true THEN 1 ELSE 2::int END", "CASE WHEN true THEN 1 ELSE (SELECT 5 AS zz) END",
		"(SELECT 1)", "(SELECT 1)::text", "(SELECT id FROM colnames.outer_row LIMIT 1)",
		"(SELECT 1 AS x UNION SELECT 2 LIMIT 1)", "(VALUES (1))", "EXISTS (SELECT 1)", "ARRAY(SELECT 1)",
		"id = ANY (ARRAY[1])", "ARRAY[1]", "ARRAY[1]::text", "ROW(1, 2)", "ROW(1)::text", "coalesce(id, 1)",
		"greatest(id, 1)", "least(id, 1)::text", "current_date", "current_time", "current_time(1)",
		"current_timestamp", "localtime", "localtimestamp(2)", "current_role", "current_user", "user",
		"session_user", "current_catalog", "current_schema", "xmlelement(name a)", "xmlconcat('<a/>'::xml)",
		"xmlforest(1 AS a)", "xmlparse(document '<a/>')", "xmlpi(name a)", "xmlroot('<a/>'::xml, version '1')",
		"xmlserialize(content '<a/>'::xml AS text)", "'<a/>'::xml IS DOCUMENT", "trim(t)", "substring(t from 1)",
		"position('a' in t)", "extract(year from now())", "now() AT TIME ZONE 'utc'", "overlay(t placing 'b' from 1)",
		"$$a$$ || t", "id BETWEEN 1 AND 2", "t LIKE 'a%'", "(o).id", "(o.r).a::text",
	}
	for _, e := range exprs {
		sql := "SELECT " + e + " FROM colnames.outer_row o"
		tree, err := pg.Parse(sql)
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		rt := tree.GetStmts()[0].GetStmt().GetSelectStmt().GetTargetList()[0].GetResTarget()
		want, sure := figureColname(rt.GetVal())
		if !sure {
			t.Errorf("%s: the analysis is not sure of the name", e)
			continue
		}
		rows, err := conn.Query(context.Background(), sql)
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		got := rows.FieldDescriptions()[0].Name
		rows.Close()
		if got != want {
			t.Errorf("%s: the server names it %q, the analysis %q", e, got, want)
		}
	}
}

// PostgreSQL never looks up an unqualified function or operator in the
// session's temporary schema, even when search_path lists pg_temp first, so
// temporary functions the catalog cannot see never stand in for the ones it
// knows, nor turn functional notation into a call.
func TestTemporaryFunctionsAreNotCalledUnqualified(t *testing.T) {
	conn := liveConn(t, `
		CREATE SCHEMA IF NOT EXISTS tempfn;
		CREATE TABLE IF NOT EXISTS tempfn.t (id int, email text);
		INSERT INTO tempfn.t SELECT 1, 'column' WHERE NOT EXISTS (SELECT FROM tempfn.t);
		CREATE FUNCTION pg_temp.email(tempfn.t) RETURNS text LANGUAGE sql AS 'SELECT ''temporary''';
		CREATE FUNCTION pg_temp.lower(varchar) RETURNS text LANGUAGE sql AS 'SELECT ''temporary''';
		CREATE FUNCTION pg_temp.yes(int, int) RETURNS bool LANGUAGE sql AS 'SELECT true';
		CREATE OPERATOR pg_temp.=== (leftarg = int, rightarg = int, function = pg_temp.yes);
		SET search_path = pg_temp, tempfn, public`)
	ctx := context.Background()
	for sql, want := range map[string]string{
		"SELECT email(t) FROM t":                "column",
		"SELECT lower('X'::varchar)":            "x",
		"SELECT pg_temp.lower('X'::varchar)":    "temporary",
		"SELECT pg_temp.email(t) FROM tempfn.t": "temporary",
	} {
		var got string
		if err := conn.QueryRow(ctx, sql).Scan(&got); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if got != want {
			t.Errorf("%s: got %q, want %q", sql, got, want)
		}
	}
	if _, err := conn.Exec(ctx, "SELECT 1 === 2"); err == nil {
		t.Error("an unqualified operator resolved to pg_temp")
	}
}
