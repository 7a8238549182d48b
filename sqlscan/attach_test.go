package sqlscan

import (
	"slices"
	"testing"
)

func TestAttachedCode(t *testing.T) {
	complete, _ := fixtures(t)
	cases := map[string]string{
		"CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'":           "function",
		"CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'":                   "procedure",
		"ALTER FUNCTION f() SECURITY DEFINER":                                          "function",
		"ALTER FUNCTION f() RENAME TO lower":                                           "function",
		"ALTER ROUTINE f() SET SCHEMA pg_catalog":                                      "function",
		"ALTER FUNCTION f() OWNER TO postgres":                                         "function",
		"CREATE CAST (text AS int) WITH INOUT AS IMPLICIT":                             "cast",
		"CREATE TYPE pg_temp.t AS (a int)":                                             "type",
		"CREATE TYPE t AS ENUM ('a')":                                                  "type",
		"CREATE TYPE r AS RANGE (subtype = int4)":                                      "type",
		"CREATE TYPE t (INPUT = f, OUTPUT = g)":                                        "type",
		"ALTER TYPE t ADD ATTRIBUTE b int":                                             "type",
		"CREATE DOMAIN d AS int CHECK (VALUE > 0)":                                     "domain",
		"CREATE OPERATOR pg_temp.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = f)":  "operator",
		"CREATE AGGREGATE a(int) (SFUNC = int4pl, STYPE = int)":                        "aggregate",
		"CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()":       "trigger",
		"ALTER TABLE t ENABLE ALWAYS TRIGGER tr":                                       "trigger",
		"CREATE RULE r AS ON INSERT TO t DO ALSO NOTIFY x":                             "rule",
		"ALTER TABLE t ENABLE RULE r":                                                  "rule",
		"CREATE POLICY p ON t USING (true)":                                            "policy",
		"CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()":             "event trigger",
		"CREATE EXTENSION hstore":                                                      "extension",
		"CREATE DEFAULT CONVERSION c FOR 'LATIN1' TO 'UTF8' FROM f":                    "conversion",
		"CREATE FOREIGN TABLE ft (a int) SERVER s":                                     "foreign table",
		"CREATE TEXT SEARCH PARSER p (START = a, GETTOKEN = b, END = c, LEXTYPES = d)": "text search parser",
		// Plain objects attach none.
		"CREATE TEMP TABLE t (a int)":                        "",
		"CREATE TABLE t (a int DEFAULT 1)":                   "",
		"CREATE TEMP VIEW v AS SELECT 1":                     "",
		"CREATE INDEX ON t (a)":                              "",
		"CREATE SEQUENCE s":                                  "",
		"DROP FUNCTION f()":                                  "",
		"ALTER TABLE t ADD COLUMN b int":                     "",
		"ALTER TABLE t DISABLE TRIGGER tr":                   "",
		"ALTER TABLE t RENAME TO u":                          "",
		"CREATE SCHEMA s":                                    "",
		"CREATE TEXT SEARCH CONFIGURATION c (COPY = simple)": "",
	}
	for sql, want := range cases {
		r := Analyze(sql, complete, defaultContext())
		if len(r.Statements) != 1 {
			t.Fatalf("%s: %d statements", sql, len(r.Statements))
		}
		if got := r.Statements[0].Attaches; got != want {
			t.Errorf("%s: Attaches = %q, want %q", sql, got, want)
		}
	}
}

// TestDDLChanges: a DDL statement's relation names are unsettled for the
// statements after it in the same input, except temporary tables the input
// creates, whose columns are followed.
func TestDDLChanges(t *testing.T) {
	complete, _ := fixtures(t)
	cases := []struct {
		sql     string
		changes []string
		denied  bool // the last statement is refused
	}{
		{"ALTER TABLE crm.customers RENAME COLUMN email TO e; SELECT email FROM crm.customers", []string{"customers"}, true},
		{"ALTER TABLE crm.orders RENAME TO customers; SELECT email FROM crm.customers", []string{"customers", "orders"}, true},
		{"ALTER SCHEMA crm RENAME TO crm2; SELECT id FROM hr.salaries", []string{AllRelations}, true},
		{"CREATE TEMP VIEW customers AS SELECT iban AS email FROM crm.customers; SELECT email FROM customers", []string{"customers"}, true},
		{"CREATE TEMP TABLE stage (a int); INSERT INTO stage VALUES (1)", nil, false},
		{"CREATE TEMP TABLE stage AS SELECT email FROM crm.customers; SELECT email FROM crm.customers", nil, false},
		{"SELECT email FROM crm.customers; CREATE INDEX ON crm.customers (email)", []string{"customers"}, false},
	}
	for _, c := range cases {
		r := Analyze(c.sql, complete, defaultContext())
		var got []string
		for _, st := range r.Statements {
			if st.DDL {
				got = slices.Sorted(slices.Values(st.Changes))
				break
			}
		}
		if !slices.Equal(got, c.changes) {
			t.Errorf("%s: Changes = %q, want %q", c.sql, got, c.changes)
		}
		last := r.Statements[len(r.Statements)-1]
		if (last.Denial != nil) != c.denied {
			t.Errorf("%s: last statement's denial = %v, want denied %v", c.sql, last.Denial, c.denied)
		}
		if c.denied && last.Denial.Code != CodeTemporary {
			t.Errorf("%s: denial code %s, want %s", c.sql, last.Denial.Code, CodeTemporary)
		}
	}
	ctx := defaultContext()
	ctx.TempRelations = []string{"orders"}
	for _, sql := range []string{"SELECT id FROM orders", "SELECT id FROM pg_temp.orders"} {
		if d := Analyze(sql, complete, ctx).Denial(); d == nil || d.Code != CodeTemporary {
			t.Errorf("%s: a name of the session's temporary relations was not refused: %v", sql, d)
		}
	}
	if d := Analyze("SELECT id FROM crm.orders", complete, ctx).Denial(); d != nil {
		t.Errorf("a qualified name outside pg_temp does not resolve to a temporary relation: %v", d)
	}
	ctx = defaultContext()
	ctx.Unsettled = []string{"orders"}
	if d := Analyze("SELECT id FROM pg_temp.orders", complete, ctx).Denial(); d == nil || d.Code != CodeTemporary {
		t.Errorf("an unsettled name was not refused: %v", d)
	}
}

// TestUserCode: a statement that may run a function outside the built-ins
// the context allows is marked, so the proxy reads the state after it.
func TestUserCode(t *testing.T) {
	complete, _ := fixtures(t)
	ctx := defaultContext()
	ctx.FunctionAllowed = func(schema, name string) bool { return schema == "crm" && name == "mask_email" }
	for sql, want := range map[string]bool{
		"SELECT crm.mask_email(email) FROM crm.customers": true,
		"SELECT masked FROM crm.masked_contacts":          true, // its definition calls crm.mask_email
		"SELECT email FROM public.customer_emails":        false,
		"SELECT lower(email) FROM crm.customers":          false,
		"SELECT email FROM crm.customers":                 false,
	} {
		r := Analyze(sql, complete, ctx)
		if d := r.Denial(); d != nil {
			t.Fatalf("%s: %v", sql, d)
		}
		if got := r.Statements[0].UserCode; got != want {
			t.Errorf("%s: UserCode = %v, want %v", sql, got, want)
		}
	}
}

// TestTemporaryLineage: what a statement copies into a temporary table is
// read by whoever reads any temporary table after it, in the same input or
// (through Context.TempLineage) later.
func TestTemporaryLineage(t *testing.T) {
	complete, _ := fixtures(t)
	r := Analyze("CREATE TEMP TABLE s AS SELECT iban FROM crm.customers; SELECT 1 FROM s; CREATE TEMP TABLE u (x int); SELECT x FROM u", complete, defaultContext())
	if got := r.Statements[0].TempWrites; !slices.Equal(got, []string{"s"}) {
		t.Fatalf("TempWrites = %q", got)
	}
	iban := Access{Schema: "crm", Table: "customers", Column: "iban", Act: Read, Clause: "select"}
	if !slices.Contains(r.Statements[3].Accesses, iban) {
		t.Errorf("reading another temporary table does not read what was copied: %v", r.Statements[3].Accesses)
	}
	ctx := defaultContext()
	ctx.TempTables = []TempTable{{Name: "stage", Columns: []string{"id", "note"}}}
	ctx.TempLineage = []Access{{Schema: "crm", Table: "customers", Column: "iban", Act: Read}}
	r = Analyze("SELECT note FROM stage", complete, ctx)
	if d := r.Denial(); d != nil || !slices.Contains(r.Statements[0].Accesses, iban) {
		t.Errorf("a session's temporary table: denial %v, accesses %v", d, r.Statements[0].Accesses)
	}
}

// TestTablesCreatedInTheTemporarySchema: PostgreSQL creates an unqualified
// table in the first schema of the path it can use, and one created in the
// temporary schema is temporary, TEMP or not. So CREATE TABLE AS and
// SELECT INTO write a temporary table whenever pg_temp is on the path, or
// the path is not known.
func TestTablesCreatedInTheTemporarySchema(t *testing.T) {
	complete, _ := fixtures(t)
	cases := []struct {
		sql  string
		path []string
		want []string
	}{
		{"CREATE TABLE s AS SELECT iban FROM crm.customers", []string{"pg_temp", "public"}, []string{"s"}},
		{"SELECT iban INTO s FROM crm.customers", []string{"pg_temp", "public"}, []string{"s"}},
		{"CREATE TABLE s AS SELECT iban FROM crm.customers", []string{"nosuchschema", "pg_temp_3"}, []string{"s"}},
		{"CREATE TABLE s AS SELECT iban FROM crm.customers", nil, []string{"s"}},
		{"SET search_path = pg_temp; CREATE TABLE s AS SELECT iban FROM crm.customers", []string{"public"}, []string{"s"}},
		{"CREATE TABLE s AS SELECT iban FROM crm.customers", []string{"public"}, nil},
		{"CREATE TABLE public.s AS SELECT iban FROM crm.customers", []string{"pg_temp", "public"}, nil},
	}
	for _, c := range cases {
		ctx := defaultContext()
		ctx.SearchPath = c.path
		r := Analyze(c.sql, complete, ctx)
		last := r.Statements[len(r.Statements)-1]
		if last.Denial != nil {
			t.Fatalf("%s: %v", c.sql, last.Denial)
		}
		if !slices.Equal(last.TempWrites, c.want) {
			t.Errorf("%s on %q: TempWrites = %q, want %q", c.sql, c.path, last.TempWrites, c.want)
		}
	}
}
