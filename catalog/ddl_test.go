package catalog_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/catalog"
)

type ddlCase struct {
	name string
	sql  string
	// want lists lines that render (all schemas, with definitions) must
	// hold; absent lists relations (schema.name) that must not exist.
	want   []string
	absent []string
}

var ddlCases = []ddlCase{
	{
		name: "unqualified names go to public and fold",
		sql:  `CREATE TABLE Foo (Bar int, "Baz" text); CREATE TABLE "MixedCase" ("Id" int);`,
		want: []string{"r public.foo (bar, Baz)", "r public.MixedCase (Id)"},
	},
	{
		name: "search_path picks the first existing schema",
		sql: `CREATE SCHEMA "My Schema";
			SET search_path = missing, "My Schema", public;
			CREATE TABLE t (a int);
			SET search_path TO DEFAULT;
			CREATE TABLE u (a int);`,
		want: []string{"r My Schema.t (a)", "r public.u (a)"},
	},
	{
		name: "a path of unknown schemas creates in the first",
		sql:  `SET search_path = elsewhere; CREATE TABLE t (a int); ALTER TABLE t ADD COLUMN b int;`,
		want: []string{"schema elsewhere", "r elsewhere.t (a, b)"},
	},
	{
		name: "LIKE copies columns where it stands",
		sql:  `CREATE TABLE src (a int, b int); CREATE TABLE dst (x int, LIKE src INCLUDING ALL, y int);`,
		want: []string{"r public.dst (x, a, b, y)"},
	},
	{
		name: "partitions take the parent's columns",
		sql: `CREATE TABLE m (at date, v int) PARTITION BY RANGE (at);
			CREATE TABLE m1 PARTITION OF m (v WITH OPTIONS NOT NULL) FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
			CREATE TABLE m2 (at date, v int);
			ALTER TABLE ONLY m ATTACH PARTITION m2 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
			ALTER TABLE m ADD COLUMN note text;`,
		want: []string{
			"p public.m (at, v, note)",
			"r public.m1 (at, v, note) parents [public.m]",
			"r public.m2 (at, v, note) parents [public.m]",
		},
	},
	{
		name: "detach keeps the columns",
		sql: `CREATE TABLE m (a int) PARTITION BY LIST (a);
			CREATE TABLE m1 PARTITION OF m FOR VALUES IN (1);
			ALTER TABLE m DETACH PARTITION m1;`,
		want: []string{"r public.m1 (a)\n"},
	},
	{
		name: "multiple inheritance merges columns",
		sql: `CREATE TABLE p1 (a int, b int); CREATE TABLE p2 (b int, c int);
			CREATE TABLE kid (c int, d int) INHERITS (p1, p2);
			ALTER TABLE p1 DROP COLUMN b;`,
		want: []string{"r public.kid (a, b, c, d) parents [public.p1 public.p2]"},
	},
	{
		name: "CREATE TABLE AS and SELECT INTO",
		sql: `CREATE TABLE src (a int, b text);
			CREATE TABLE copy1 AS SELECT * FROM src;
			CREATE TABLE copy2 (x, y) AS SELECT a, b FROM src WITH NO DATA;
			CREATE TABLE copy3 (x) AS SELECT a, b, a + 1 FROM src;
			SELECT b, count(*) INTO copy4 FROM src GROUP BY b;
			CREATE TEMP TABLE scratch AS SELECT 1;`,
		want: []string{
			"r public.copy1 (a, b)", "r public.copy2 (x, y)",
			"r public.copy3 (x, b, ?column?)", "r public.copy4 (b, count)",
		},
		absent: []string{"public.scratch", "pg_temp.scratch"},
	},
	{
		name: "view text is the query as written",
		sql: `CREATE TABLE t (a int, b int);
			CREATE VIEW v1 (x) WITH (security_barrier) AS SELECT a, b /* as */ FROM t WHERE a > 0 -- trailing
			WITH LOCAL CHECK OPTION;
			CREATE MATERIALIZED VIEW mv AS (SELECT a FROM t) WITH DATA;
			CREATE VIEW "Odd AS Name" AS SELECT (1) AS one`,
		want: []string{
			"v public.v1 (x, b)\n  as \"SELECT a, b /* as */ FROM t WHERE a > 0\" under [\"$user\" \"public\"]",
			"m public.mv (a)\n  as \"(SELECT a FROM t)\"",
			"v public.Odd AS Name (one)\n  as \"SELECT (1) AS one\"",
		},
	},
	{
		name: "column names as PostgreSQL figures them",
		sql: `CREATE TABLE t (a int, j jsonb, arr int[]);
			CREATE VIEW v AS SELECT j::text, 'x'::varchar, t.arr[1], (t.j)->'k', CAST(1 AS bigint),
				CASE WHEN true THEN a END, localtimestamp(2),
				xmlelement(name x), json_object('a': 1), grouping(a), (SELECT a AS sub FROM t LIMIT 1),
				EXISTS (SELECT 1), ARRAY(SELECT 1), ROW(1), coalesce(a), greatest(a), nullif(a, 1), a COLLATE "C"
				FROM t GROUP BY a, arr, j;
			CREATE VIEW w AS SELECT CASE WHEN true THEN 1 ELSE a END, current_date FROM t;`,
		want: []string{
			"v public.v (j, varchar, arr, ?column?, int8, case, localtimestamp, xmlelement, json_object, grouping, sub, " +
				"exists, array, row, coalesce, greatest, nullif, a)",
			"v public.w (a, current_date)",
		},
	},
	{
		name: "star through CTEs, subqueries, joins and functions",
		sql: `CREATE TABLE a (id int, x int); CREATE TABLE b (id int, y int);
			CREATE VIEW v1 AS WITH c AS (SELECT * FROM a) SELECT c.*, s.* FROM c, (SELECT 1 AS one) s;
			CREATE VIEW v2 AS SELECT * FROM a JOIN b USING (id);
			CREATE VIEW v3 AS SELECT * FROM a AS aa (i) NATURAL JOIN b;
			CREATE VIEW v4 AS SELECT * FROM a LEFT JOIN (SELECT * FROM b) AS bb (id2) ON true;
			CREATE VIEW v5 AS SELECT f.* FROM json_to_record('{}') WITH ORDINALITY AS f (k int, v text);
			CREATE VIEW v6 AS SELECT public.a.* FROM public.a;
			CREATE VIEW v7 AS WITH RECURSIVE r (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r;
			CREATE VIEW v8 AS SELECT u.* FROM a JOIN b USING (id) AS u;`,
		want: []string{
			"v public.v1 (id, x, one)", "v public.v2 (id, x, y)", "v public.v3 (i, x, id, y)",
			"v public.v4 (id, x, id2, y)", "v public.v5 (k, v, ordinality)", "v public.v6 (id, x)",
			"v public.v7 (n)", "v public.v8 (id)",
		},
	},
	{
		name: "views may name relations the file does not declare",
		sql:  `CREATE VIEW v AS SELECT id, name FROM somewhere_else.people;`,
		want: []string{"v public.v (id, name)"},
	},
	{
		name: "functions, procedures and aggregates",
		sql: `CREATE FUNCTION f(int) RETURNS int LANGUAGE sql AS 'SELECT 1';
			CREATE FUNCTION f(text) RETURNS int LANGUAGE plpgsql AS 'BEGIN RETURN 1; END';
			CREATE FUNCTION g() RETURNS int RETURN 1;
			CREATE OR REPLACE PROCEDURE Util.Tidy() LANGUAGE C AS 'lib', 'tidy';
			CREATE FUNCTION pg_catalog.sneaky() RETURNS int LANGUAGE sql AS 'SELECT 1';
			CREATE AGGREGATE agg(int) (SFUNC = int4pl, STYPE = int);`,
		want: []string{
			"function public.f plpgsql,sql builtin=false", "function public.g sql builtin=false",
			"function util.tidy c builtin=false", "function pg_catalog.sneaky sql builtin=true",
			"function public.agg internal builtin=false",
		},
	},
	{
		name: "operators outside pg_catalog",
		sql: `CREATE OPERATOR ### (LEFTARG = int, RIGHTARG = int, FUNCTION = int4pl);
			CREATE OPERATOR pg_catalog.<-> (LEFTARG = int, RIGHTARG = int, FUNCTION = int4mi);`,
		want: []string{"operator public ###"},
	},
	{
		name: "ignored statements",
		sql: `CREATE TABLE t (a int); INSERT INTO t VALUES (1); GRANT SELECT ON t TO PUBLIC;
			CREATE INDEX ON t (a); COMMENT ON TABLE t IS 'x'; DO $$ BEGIN END $$; VACUUM t;
			CREATE SEQUENCE s; CREATE TYPE pair AS (x int, y int); CREATE EXTENSION IF NOT EXISTS hstore;`,
		want: []string{"r public.t (a)"},
	},
	{
		name:   "drops",
		sql:    `CREATE TABLE p (a int); CREATE TABLE k () INHERITS (p); DROP TABLE p CASCADE; DROP VIEW IF EXISTS nothing;`,
		absent: []string{"public.p", "public.k"},
	},
}

func TestFromDDL(t *testing.T) {
	for _, tc := range ddlCases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := catalog.FromDDL("shop", tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if s.Complete || s.Database != "shop" {
				t.Errorf("Complete = %v, Database = %q", s.Complete, s.Database)
			}
			got := render(s, func(string) bool { return true }, true)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in:\n%s", w, got)
				}
			}
			for _, a := range tc.absent {
				schema, name, _ := strings.Cut(a, ".")
				if _, ok := s.Relation(schema, name); ok {
					t.Errorf("%s should not exist:\n%s", a, got)
				}
			}
		})
	}
}

func TestFromDDLSearchPathSettings(t *testing.T) {
	s, err := catalog.FromDDL("shop", `
		ALTER ROLE ALL SET search_path = everywhere;
		ALTER DATABASE shop SET search_path = "Shop Schema", public;
		ALTER DATABASE other SET search_path = not_ours;
		ALTER ROLE alice SET search_path = alice_anywhere;
		ALTER ROLE bob SET search_path = bob_anywhere;
		ALTER ROLE bob IN DATABASE shop SET search_path = "$user", bob_here;
		ALTER ROLE carol IN DATABASE other SET search_path = carol_elsewhere;
		ALTER ROLE dave SET search_path = x;
		ALTER ROLE dave RESET search_path;
		ALTER ROLE CURRENT_USER SET search_path = unknown_who;`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		role string
		want []string
	}{
		{"", []string{"Shop Schema", "public"}},
		{"alice", []string{"alice_anywhere"}},
		{"bob", []string{"$user", "bob_here"}},
		{"carol", []string{"Shop Schema", "public"}},
		{"dave", []string{"Shop Schema", "public"}},
	} {
		if got := s.SearchPath(tc.role); !slices.Equal(got, tc.want) {
			t.Errorf("SearchPath(%q) = %q, want %q", tc.role, got, tc.want)
		}
	}
	plain, err := catalog.FromDDL("shop", "CREATE TABLE t (a int)")
	if err != nil {
		t.Fatal(err)
	}
	if got := plain.SearchPath("anyone"); !slices.Equal(got, []string{"$user", "public"}) {
		t.Errorf("default SearchPath = %q", got)
	}
}

func TestFromDDLErrors(t *testing.T) {
	for _, tc := range []struct{ name, sql, want string }{
		{"syntax", "CREATE TABLE ok (a int);\n-- héllo wörld\nCREATE TABLE bad (a int,, b int);", "line 3: parse DDL: syntax error"},
		{"end of input", "CREATE TABLE ok (a int);\n\nCREATE TABLE bad (a int", "line 3: parse DDL"},
		{"duplicate", "CREATE TABLE t (a int);\n  /* again */ CREATE TABLE t (b int);", "line 2: relation public.t already exists"},
		{"unknown parent", "\n\nCREATE TABLE k () INHERITS (nowhere);", "line 3: CREATE TABLE public.k: relation nowhere is not declared"},
		{"alter unknown", "ALTER TABLE nowhere ADD COLUMN a int;", "line 1: ALTER TABLE: relation nowhere is not declared"},
		{"drop missing column", "CREATE TABLE t (a int);\nALTER TABLE t DROP COLUMN b;", "line 2: ALTER TABLE public.t: column b does not exist"},
		{"add existing column", "CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN a int;", "line 2: ALTER TABLE public.t: column a already exists"},
		{"rename to existing", "CREATE TABLE t (a int, b int);\nALTER TABLE t RENAME a TO b;", "line 2: RENAME COLUMN: column b of public.t already exists"},
		{"circular", "CREATE TABLE a (x int);\nCREATE TABLE b () INHERITS (a);\nALTER TABLE a INHERIT b;", "line 3: ALTER TABLE public.a: circular inheritance"},
		{"star from unknown", "CREATE VIEW v AS\n  SELECT * FROM nowhere;", "line 1: CREATE VIEW public.v: relation nowhere is not declared"},
		{"star without from", "CREATE VIEW v AS SELECT *;", "line 1: CREATE VIEW public.v: SELECT * with no tables"},
		{"star from function", "CREATE VIEW v AS SELECT * FROM generate_series(1, 3);", "without a column definition list"},
		{"too many names", "CREATE TABLE t (a int);\nCREATE VIEW v (x, y) AS SELECT a FROM t;", "line 2: CREATE VIEW public.v: 2 column names given for 1 columns"},
		{"duplicate view column", "CREATE TABLE a (id int);\nCREATE VIEW v AS SELECT * FROM a, a AS b;", "line 2: CREATE VIEW public.v: column id specified more than once"},
		{"typed table", "CREATE TYPE pair AS (x int);\nCREATE TABLE t OF pair;", "line 2: CREATE TABLE public.t OF a type"},
		{"execute", "CREATE TABLE t AS EXECUTE q;", "line 1: CREATE TABLE AS public.t: cannot tell the columns of a ExecuteStmt"},
		{"no language", "CREATE FUNCTION f() RETURNS int AS 'SELECT 1';", "line 1: CREATE FUNCTION public.f: no LANGUAGE"},
		{"empty path", "SELECT pg_catalog.set_config('search_path', '', false);\nCREATE TABLE t (a int);", "line 2: CREATE TABLE: no schema has been selected"},
		{"drop with heirs", "CREATE TABLE p (a int);\nCREATE TABLE k () INHERITS (p);\nDROP TABLE p;", "line 3: DROP: other relations inherit from public.p"},
		{"schema not empty", "CREATE SCHEMA s;\nCREATE TABLE s.t (a int);\nDROP SCHEMA s;", "line 3: DROP SCHEMA: schema s is not empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := catalog.FromDDL("shop", tc.sql)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestFromDDLSkipsPsqlMetaCommands(t *testing.T) {
	s, err := catalog.FromDDL("shop", "\\restrict abc\nCREATE TABLE t (a text DEFAULT '\\x');\n\\connect other\n\\unrestrict abc\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Relation("public", "t"); !ok {
		t.Fatal("table after \\restrict missing")
	}
	_, err = catalog.FromDDL("shop", "\\restrict abc\n\nCREATE TABLE (;")
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("err = %v, want a line 3 error", err)
	}
}

func TestFromDDLVersion(t *testing.T) {
	const base = "CREATE TABLE t (a int); CREATE VIEW v AS SELECT a FROM t;"
	s1, err1 := catalog.FromDDL("shop", base)
	s2, err2 := catalog.FromDDL("shop", "-- same schema\n"+base)
	s3, err3 := catalog.FromDDL("shop", base+" ALTER TABLE t ADD COLUMN b int;")
	if err := errorsJoin(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if s1.Version() != s2.Version() || s1.Version() == s3.Version() {
		t.Errorf("versions %s %s %s", s1.Version(), s2.Version(), s3.Version())
	}
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func FuzzFromDDL(f *testing.F) {
	for _, tc := range ddlCases {
		f.Add(tc.sql)
	}
	for _, name := range []string{"testdata/app.sql", "testdata/edge.sql", "testdata/pgdump.sql"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("\\x\nCREATE VIEW v AS SELECT 1 WITH CASCADED CHECK OPTION")
	f.Add("CREATE SCHEMA s CREATE VIEW v AS SELECT * FROM t")
	f.Fuzz(func(t *testing.T, sql string) {
		s, err := catalog.FromDDL("db", sql)
		if err == nil && s == nil {
			t.Fatal("no snapshot and no error")
		}
	})
}
