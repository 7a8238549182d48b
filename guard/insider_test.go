package guard_test

// An insider's attacks: a user of one department, with the TEMP privilege
// and a raw socket, tries to read another department's classified columns
// (or data outside the purpose it declared) through pgguard in enforce
// mode. Each case says in one line what it tries.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/alert"
)

// A statement changes the session's state when its portal runs, at
// Execute, not when it is bound: inside a transaction block a portal
// outlives its sync segment.
func TestInsiderLateExecuteOfAStatePortal(t *testing.T) {
	w := decoyWorld(t)
	w.pg.MustExec(t, "postgres", `CREATE OR REPLACE FUNCTION public.pgg_switch(text) RETURNS text LANGUAGE plpgsql AS
		$$ BEGIN PERFORM set_config('search_path', 'hr', false); RETURN $1; END $$;
		GRANT EXECUTE ON FUNCTION public.pgg_switch(text) TO PUBLIC`)
	w.addRules(t, "p, sales, *, function:public.pgg_switch, execute, allow")
	cases := []struct{ name, stmt string }{
		// SET bound in one segment, confirmed unchanged, run in the next before a read.
		{"SET search_path bound early, executed later", "SET search_path = hr"},
		// The one followed form of set_config, bound early and run later.
		{"set_config bound early, executed later", "SELECT set_config('search_path', 'hr', false)"},
		// An allowed function that changes the path, run by a later Execute of its portal.
		{"state-changing function bound early, executed later", "SELECT public.pgg_switch('x')"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy")
			r.send(q("BEGIN"))
			if out := r.send(&pgproto3.Parse{Name: "s", Query: c.stmt},
				&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s"}, &pgproto3.Sync{}); len(out.errors) > 0 {
				t.Fatalf("bind: %v", out.errors)
			}
			out := r.send(&pgproto3.Execute{Portal: "p"}, &pgproto3.Parse{Query: salaries}, &pgproto3.Bind{},
				&pgproto3.Execute{}, &pgproto3.Sync{})
			if out.rows > 0 && out.values != "x" && out.values != "hr" || out.lastErr != "42501" {
				t.Fatalf("want the late Execute refused (42501) and no salaries, got %d rows (%q), errors %v", out.rows, out.values, out.errors)
			}
			r.send(q("ROLLBACK"))
		})
	}
	// Executed in the segment that binds it, the change is followed and
	// confirmed, and the read after it decided on the new path.
	r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy")
	r.send(q("BEGIN"))
	out := r.send(&pgproto3.Parse{Name: "s", Query: "SET search_path = hr"},
		&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s"}, &pgproto3.Execute{Portal: "p"}, &pgproto3.Sync{})
	if len(out.errors) > 0 {
		t.Fatalf("SET in one segment: %v", out.errors)
	}
	r.send(append(extended("", salaries), &pgproto3.Sync{})...).refused(t, "read after the confirmed SET")
	// A portal of an ordinary query still runs across segments, as JDBC's
	// fetch size does.
	r.send(q("ROLLBACK; BEGIN; SET search_path = decoy"))
	r.send(&pgproto3.Parse{Name: "c", Query: "SELECT g FROM generate_series(1, 3) g"},
		&pgproto3.Bind{DestinationPortal: "c", PreparedStatement: "c"}, &pgproto3.Execute{Portal: "c", MaxRows: 1}, &pgproto3.Sync{})
	if out := r.send(&pgproto3.Execute{Portal: "c", MaxRows: 2}, &pgproto3.Sync{}); len(out.errors) > 0 || out.rows != 2 {
		t.Fatalf("fetching the rest of a query portal: %d rows, errors %v", out.rows, out.errors)
	}
}

// A cursor's query runs at FETCH and MOVE, not at DECLARE: code the policy
// allows in it may change the state each time.
func TestInsiderFetchRunsTheCursorsCode(t *testing.T) {
	w := decoyWorld(t)
	w.pg.MustExec(t, "postgres", `CREATE OR REPLACE FUNCTION public.pgg_switch(text) RETURNS text LANGUAGE plpgsql AS
		$$ BEGIN PERFORM set_config('search_path', 'hr', false); RETURN $1; END $$;
		GRANT EXECUTE ON FUNCTION public.pgg_switch(text) TO PUBLIC`)
	w.addRules(t, "p, sales, *, function:public.pgg_switch, execute, allow")
	declare := q("DECLARE c CURSOR FOR SELECT public.pgg_switch('x')")
	cases := []struct {
		name string
		msgs []pgproto3.FrontendMessage
	}{
		// FETCH and the read in one message, after a DECLARE the server confirmed.
		{"FETCH then a read in one message", []pgproto3.FrontendMessage{q("FETCH c; " + salaries)}},
		// MOVE runs the query as FETCH does, its rows unseen.
		{"MOVE then a read, pipelined", []pgproto3.FrontendMessage{q("MOVE c"), q(salaries)}},
		// FETCH prepared before the cursor existed, bound after.
		{"FETCH in the extended protocol", append(append(extended("", "FETCH c"), extended("", salaries)...), &pgproto3.Sync{})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy")
			r.send(q("BEGIN"))
			if out := r.send(declare); len(out.errors) > 0 {
				t.Fatalf("declare: %v", out.errors)
			}
			out := r.send(c.msgs...)
			if out.lastRows > 0 && out.values != "x" || out.lastErr != "42501" {
				t.Fatalf("want the read refused (42501), got %d rows (%q), errors %v", out.lastRows, out.values, out.errors)
			}
			r.send(q("ROLLBACK"))
		})
	}
	// SQL FETCH reads a protocol portal too: one bound from set_config runs it.
	t.Run("SQL FETCH of a protocol portal", func(t *testing.T) {
		r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy")
		r.send(q("BEGIN"))
		r.send(&pgproto3.Parse{Name: "s", Query: "SELECT set_config('search_path', 'hr', false)"},
			&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s"}, &pgproto3.Sync{})
		out := r.send(q("FETCH p; " + salaries))
		if out.lastRows > 0 && out.values != "hr" || out.lastErr != "42501" {
			t.Fatalf("want the read refused (42501), got %d rows (%q), errors %v", out.lastRows, out.values, out.errors)
		}
	})
	// A cursor over ordinary queries is fetched from as before, and what
	// follows the code's FETCH on its own is decided on the confirmed state.
	r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy")
	r.send(q("BEGIN"))
	if out := r.send(q("DECLARE o CURSOR FOR SELECT status FROM crm.orders; FETCH 1 FROM o; FETCH 1 FROM o")); len(out.errors) > 0 || out.rows != 2 {
		t.Fatalf("plain cursor: %d rows, errors %v", out.rows, out.errors)
	}
	r.send(declare)
	if out := r.send(q("FETCH c")); len(out.errors) > 0 || out.values != "x" {
		t.Fatalf("FETCH of the code cursor on its own: %q, errors %v", out.values, out.errors)
	}
	r.send(q(salaries)).refused(t, "read after the FETCH, on the path the server reports")
}

// DDL that evaluates expressions over a table's stored rows reads them: a
// failing cast quotes the value in its message, under any SQLSTATE, and
// PostgreSQL asks only for ownership. support_app owns vault.tags and may
// write its tag, never read it.
func TestInsiderDDLOverStoredRows(t *testing.T) {
	w := vaultWorld(t, alert.ModeEnforce)
	cases := []struct{ name, sql string }{
		// An index expression is computed for every row.
		{"index expression", "CREATE INDEX ON vault.tags ((tag::int))"},
		// A partial index's predicate is evaluated for every row.
		{"partial index predicate", "CREATE INDEX ON vault.tags (id) WHERE tag::int > 0"},
		// A CHECK constraint is validated against every row.
		{"check constraint", "ALTER TABLE vault.tags ADD CONSTRAINT c CHECK (tag::int > 0)"},
		// NOT VALID skips the scan, but any later UPDATE evaluates it on the whole row.
		{"check constraint NOT VALID", "ALTER TABLE vault.tags ADD CONSTRAINT c CHECK (tag::int > 0) NOT VALID"},
		// A column constraint of ADD COLUMN may name the other columns.
		{"check of an added column", "ALTER TABLE vault.tags ADD COLUMN z int CHECK (tag::int > 0)"},
		// A stored generated column is computed for every row.
		{"generated column", "ALTER TABLE vault.tags ADD COLUMN g int GENERATED ALWAYS AS (tag::int) STORED"},
		// A type change converts every value, with USING by an expression.
		{"type change USING", "ALTER TABLE vault.tags ALTER COLUMN tag TYPE int USING tag::int"},
		// An exclusion constraint's elements are computed and compared.
		{"exclusion constraint", "ALTER TABLE vault.tags ADD EXCLUDE USING btree ((tag::int) WITH =)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "support_app", "-c pgguard.purpose=customer_support")
			errs := r.errorsOf(q(c.sql))
			if len(errs) != 1 || errs[0].Code != "42501" || !strings.HasPrefix(errs[0].Message, "pgguard:") {
				t.Fatalf("want the DDL refused by pgguard, got %+v", errs)
			}
			for _, e := range errs {
				if strings.Contains(e.Message+e.Detail, secretDup) {
					t.Fatalf("the secret came back: %s", e.Message)
				}
			}
		})
	}
	// A table created earlier in the same message has no rows but its own:
	// indexing it stays allowed, as migrations do.
	r := w.raw(t, "support_app", "-c pgguard.purpose=customer_support")
	if out := r.send(q("CREATE TABLE vault.fresh (a text); CREATE INDEX ON vault.fresh ((lower(a))); DROP TABLE vault.fresh")); len(out.errors) > 0 {
		t.Fatalf("index on a table created in the same message: %v", out.errors)
	}
	if out := r.send(q("CREATE TEMP TABLE stage (a text); CREATE INDEX ON stage (a); ALTER TABLE stage ADD CHECK (a <> '')")); len(out.errors) > 0 {
		t.Fatalf("index on a fresh temporary table: %v", out.errors)
	}
}

// Data copied into a temporary table keeps its policy: DDL over the
// temporary table's rows reads that lineage, under the purpose in force.
func TestInsiderDDLOverTemporaryLineage(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	for _, ddl := range []string{
		// The index expression's cast error quotes the IBAN.
		"CREATE INDEX ON stash ((iban::int))",
		// So does validating a check constraint.
		"ALTER TABLE stash ADD CHECK (iban::int > 0)",
		// And converting the column.
		"ALTER TABLE stash ALTER COLUMN iban TYPE int USING iban::int",
	} {
		t.Run(ddl, func(t *testing.T) {
			r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
			if out := r.send(q("CREATE TEMP TABLE stash AS SELECT iban FROM crm.customers")); len(out.errors) > 0 {
				t.Fatalf("copy under invoicing: %v", out.errors)
			}
			r.send(q("SET pgguard.purpose = 'financial_reporting'"))
			errs := r.errorsOf(q(ddl))
			if len(errs) != 1 || errs[0].Code != "42501" || strings.Contains(errs[0].Message, "NL00BANK") {
				t.Fatalf("want the DDL refused under financial_reporting, got %+v", errs)
			}
		})
	}
}

// pgguard followed a SET when it was bound, the server when it runs: a
// statement bound in between is planned by the server on the old path.
func TestInsiderBindBetweenABoundSETAndItsExecute(t *testing.T) {
	w := decoyWorld(t)
	// A decoy whose column has hr.salaries' type, so that the server may
	// plan the prepared statement again on another path.
	w.pg.MustExec(t, "postgres", `CREATE SCHEMA IF NOT EXISTS decoy2;
		CREATE TABLE IF NOT EXISTS decoy2.salaries (gross_monthly numeric(10,2));
		GRANT USAGE ON SCHEMA decoy2 TO sales_app; GRANT SELECT ON decoy2.salaries TO sales_app`)
	cases := []struct {
		name string
		seg  []pgproto3.FrontendMessage
	}{
		// The SET is bound, never executed; the read is bound after it.
		{"SET bound, never executed", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "a", Query: "SET search_path = decoy2"},
			&pgproto3.Bind{DestinationPortal: "a", PreparedStatement: "a"},
			&pgproto3.Bind{DestinationPortal: "b", PreparedStatement: "b"}, &pgproto3.Execute{Portal: "b"}}},
		// The SET runs only after the read was bound, and planned, on the old path.
		{"SET executed after the read's Bind", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "a", Query: "SET search_path = decoy2"},
			&pgproto3.Bind{DestinationPortal: "a", PreparedStatement: "a"},
			&pgproto3.Bind{DestinationPortal: "b", PreparedStatement: "b"},
			&pgproto3.Execute{Portal: "a"}, &pgproto3.Execute{Portal: "b"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy2")
			if out := r.send(&pgproto3.Parse{Name: "b", Query: salaries}, &pgproto3.Sync{}); len(out.errors) > 0 {
				t.Fatalf("prepare under decoy2: %v", out.errors)
			}
			r.send(q("SET search_path = hr"))
			out := r.send(append(c.seg, &pgproto3.Sync{})...)
			if out.rows > 0 || out.lastErr != "42501" {
				t.Fatalf("want the read refused (42501), got %d rows (%q), errors %v", out.rows, out.values, out.errors)
			}
		})
	}
	// Executed before the read is bound, the SET is followed as before.
	r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=hr")
	out := r.send(&pgproto3.Parse{Name: "a", Query: "SET search_path = decoy2"},
		&pgproto3.Bind{DestinationPortal: "a", PreparedStatement: "a"}, &pgproto3.Execute{Portal: "a"},
		&pgproto3.Parse{Name: "b", Query: salaries}, &pgproto3.Bind{DestinationPortal: "b", PreparedStatement: "b"},
		&pgproto3.Execute{Portal: "b"}, &pgproto3.Sync{})
	if len(out.errors) > 0 {
		t.Fatalf("SET executed, then the read: %v", out.errors)
	}
}

// PostgreSQL 15 splits a search_path at commas and at space, tab, newline,
// carriage return and form feed, but not at a vertical tab, which stays in
// the name: "decoy\v,hr" is the path of a schema that does not exist and
// hr, where pgguard read decoy, hr.
func TestInsiderSearchPathSplitAsTheServerSplitsIt(t *testing.T) {
	w := decoyWorld(t)
	path := "decoy\v,hr"
	// The path set by the one set_config form pgguard follows.
	t.Run("set_config", func(t *testing.T) {
		r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
		if out := r.send(q("SELECT set_config('search_path', '" + path + "', false)")); len(out.errors) > 0 {
			t.Fatalf("set_config: %v", out.errors)
		}
		r.send(q(salaries)).refused(t, "after set_config")
	})
	// The path given as a StartupMessage parameter of its own.
	t.Run("startup parameter", func(t *testing.T) {
		cfg, err := pgconn.ParseConfig("postgres://sales_app:" + password + "@" + w.addr + "/postgres?sslmode=disable")
		if err != nil {
			t.Fatal(err)
		}
		cfg.RuntimeParams["search_path"] = path
		cfg.RuntimeParams["options"] = "-c pgguard.purpose=order_fulfilment"
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pc, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close(ctx)
		res := pc.ExecParams(ctx, salaries, nil, nil, nil, nil).Read()
		if len(res.Rows) > 0 {
			t.Fatalf("hr.salaries rows came back: %q", res.Rows)
		}
		expectDenied(t, res.Err, "hr.salaries.gross_monthly")
	})
}

// PostgreSQL skips a schema on the path that the session may not use: a
// table there named like a classified one is not what the server reads.
func TestInsiderPathThroughASchemaWithoutUsage(t *testing.T) {
	w := decoyWorld(t)
	w.pg.MustExec(t, "postgres", `CREATE SCHEMA IF NOT EXISTS nousage;
		CREATE TABLE IF NOT EXISTS nousage.salaries (gross_monthly numeric(10,2));
		REVOKE ALL ON SCHEMA nousage FROM PUBLIC`)
	cases := []struct {
		name, options string
		msgs          []pgproto3.FrontendMessage
	}{
		// The path the server confirmed at the start lists the schema it skips.
		{"confirmed path", "-c search_path=nousage,hr", []pgproto3.FrontendMessage{q(salaries)}},
		// A SET followed within its own message, before any confirmation.
		{"followed SET", "", []pgproto3.FrontendMessage{q("SET search_path = nousage, hr; " + salaries)}},
		// The same through the extended protocol in one segment.
		{"followed SET, extended", "", append(append(extended("", "SET search_path = nousage, hr"),
			extended("", salaries)...), &pgproto3.Sync{})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment "+c.options)
			r.send(c.msgs...).refused(t, c.name)
		})
	}
	// A schema the session may use resolves as before.
	r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy,hr")
	if out := r.send(q(salaries)); len(out.errors) > 0 {
		t.Fatalf("decoy.salaries: %v", out.errors)
	}
}

// Rows held by a cursor or a portal are read when they are fetched: under
// the purpose, and the policy, in force then. Finance may read customers'
// IBANs for invoicing, never for financial reporting.
func TestInsiderCursorFetchedUnderAnotherPurpose(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	cases := []struct {
		name string
		msgs [][]pgproto3.FrontendMessage
	}{
		// A cursor held past its transaction, fetched under another purpose.
		{"WITH HOLD cursor, then SET purpose", [][]pgproto3.FrontendMessage{
			{q("DECLARE c CURSOR WITH HOLD FOR SELECT iban FROM crm.customers")},
			{q("SET pgguard.purpose = 'financial_reporting'")}, {q("FETCH ALL FROM c")}}},
		// In one transaction, SET LOCAL between DECLARE and FETCH.
		{"cursor, SET LOCAL purpose, FETCH", [][]pgproto3.FrontendMessage{
			{q("BEGIN; DECLARE c CURSOR FOR SELECT iban FROM crm.customers")},
			{q("SET LOCAL pgguard.purpose = 'financial_reporting'; FETCH ALL FROM c")}}},
		// A purpose comment on the FETCH itself.
		{"FETCH with a purpose comment", [][]pgproto3.FrontendMessage{
			{q("BEGIN"), q("DECLARE c CURSOR FOR SELECT iban FROM crm.customers")},
			{q("/*purpose='financial_reporting'*/ FETCH ALL FROM c")}}},
		// A protocol portal bound under one purpose, executed under another.
		{"portal executed after SET purpose", [][]pgproto3.FrontendMessage{
			{q("BEGIN")},
			{&pgproto3.Parse{Name: "s", Query: "SELECT iban FROM crm.customers"},
				&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s"}, &pgproto3.Sync{}},
			{q("SET pgguard.purpose = 'financial_reporting'")},
			{&pgproto3.Execute{Portal: "p"}, &pgproto3.Sync{}}}},
		// SQL FETCH of that protocol portal.
		{"protocol portal fetched by SQL", [][]pgproto3.FrontendMessage{
			{q("BEGIN")},
			{&pgproto3.Parse{Name: "s", Query: "SELECT iban FROM crm.customers"},
				&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s"}, &pgproto3.Sync{}},
			{q("SET pgguard.purpose = 'financial_reporting'")}, {q("FETCH ALL FROM p")}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
			var out outcome
			for _, m := range c.msgs {
				out = r.send(m...)
			}
			if out.lastRows > 0 || out.lastErr != "42501" {
				t.Fatalf("want the fetch refused (42501), got %d rows (%q), errors %v", out.lastRows, out.values, out.errors)
			}
		})
	}
	// Under the purpose it was declared for, or another that allows the
	// same, the cursor is fetched from as before.
	r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
	r.send(q("DECLARE c CURSOR WITH HOLD FOR SELECT iban FROM crm.customers"))
	r.send(q("SET pgguard.purpose = 'dunning'"))
	if out := r.send(q("FETCH ALL FROM c")); len(out.errors) > 0 || out.rows != 2 {
		t.Fatalf("FETCH under dunning: %d rows, errors %v", out.rows, out.errors)
	}
}

// A temporary table's CHECK constraint, attached while it was empty,
// is evaluated over the whole row at every UPDATE: its cast quotes a value
// copied in under another purpose. Customer service may read birth dates
// to verify an identity, and write but not read them for an erasure.
func TestInsiderUpdateEvaluatesATemporaryRow(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	for _, update := range []string{
		// UPDATE of another column re-checks the row.
		"UPDATE t SET x = 1",
		// So does MERGE's UPDATE.
		"MERGE INTO t USING (VALUES (1)) v(a) ON true WHEN MATCHED THEN UPDATE SET x = 2",
		// And ON CONFLICT DO UPDATE.
		"INSERT INTO t (id, x) VALUES (1, 3) ON CONFLICT (id) DO UPDATE SET x = 3",
	} {
		t.Run(update, func(t *testing.T) {
			r := w.raw(t, "support_app", "-c pgguard.purpose=identity_verification")
			out := r.send(q("CREATE TEMP TABLE t (id int PRIMARY KEY, bd date, x int, CHECK (x IS NULL OR bd::text::int > 0))"),
				q("INSERT INTO t (id, bd) SELECT id, birth_date FROM crm.customers"), q("SET pgguard.purpose = 'erasure_request'"))
			if len(out.errors) > 0 {
				t.Fatalf("setting up: %v", out.errors)
			}
			errs := r.errorsOf(q(update))
			if len(errs) != 1 || errs[0].Code != "42501" || strings.Contains(errs[0].Message, "1980") {
				t.Fatalf("want the update refused, got %+v", errs)
			}
		})
	}
	// Under a purpose that may read and write what was copied, the
	// update runs.
	r := w.raw(t, "support_app", "-c pgguard.purpose=customer_support")
	r.send(q("CREATE TEMP TABLE t (id int PRIMARY KEY, e text, x int)"), q("INSERT INTO t (id, e) SELECT id, email FROM crm.customers"))
	if errs := r.errorsOf(q("UPDATE t SET x = 1")); len(errs) > 0 {
		t.Fatalf("update under customer_support: %+v", errs)
	}
}

// A check added NOT VALID while the temporary table was empty, and
// validated once rows were copied in under another purpose, quotes them;
// so does one checked again when a column's type changes.
func TestInsiderValidateConstraintLater(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	r := w.raw(t, "support_app", "-c pgguard.purpose=identity_verification")
	out := r.send(q("CREATE TEMP TABLE t (id int PRIMARY KEY, bd date, x int)"),
		q("ALTER TABLE t ADD CONSTRAINT c CHECK (current_setting('pgguard.purpose') = 'identity_verification' OR bd::text::int > 0) NOT VALID"),
		q("INSERT INTO t (id, bd) SELECT id, birth_date FROM crm.customers"), q("SET pgguard.purpose = 'erasure_request'"))
	if len(out.errors) > 0 {
		t.Fatalf("setting up: %v", out.errors)
	}
	errs := r.errorsOf(q("ALTER TABLE t VALIDATE CONSTRAINT c"))
	if len(errs) != 1 || errs[0].Code != "42501" || strings.Contains(errs[0].Message, "1980") {
		t.Fatalf("want VALIDATE CONSTRAINT refused, got %+v", errs)
	}
	// A type change rewrites the table and checks again the constraints
	// that name the column, over every row.
	r = w.raw(t, "support_app", "-c pgguard.purpose=identity_verification")
	out = r.send(q("CREATE TEMP TABLE t (id int PRIMARY KEY, bd date, x int, "+
		"CHECK (current_setting('pgguard.purpose') = 'identity_verification' OR x = 0 OR bd::text::int > 0))"),
		q("INSERT INTO t (id, bd) SELECT id, birth_date FROM crm.customers"), q("SET pgguard.purpose = 'erasure_request'"))
	if len(out.errors) > 0 {
		t.Fatalf("setting up: %v", out.errors)
	}
	errs = r.errorsOf(q("ALTER TABLE t ALTER COLUMN x TYPE bigint"))
	if len(errs) != 1 || errs[0].Code != "42501" || strings.Contains(errs[0].Message, "1980") {
		t.Fatalf("want the type change refused, got %+v", errs)
	}
}

// CREATE TEMP TABLE IF NOT EXISTS creates nothing when a temporary view
// of that name exists: the name still means the view. Finance may read
// customers' IBANs for invoicing, not for financial reporting.
func TestInsiderCreateIfNotExistsOverATemporaryView(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	stage := "CREATE TEMP TABLE IF NOT EXISTS salaries (gross_monthly numeric); "
	cases := []struct {
		name string
		msgs []pgproto3.FrontendMessage
	}{
		// The view made in an earlier message, under the purpose that allows it.
		{"view in an earlier message", []pgproto3.FrontendMessage{
			q("CREATE TEMP VIEW salaries AS SELECT iban AS gross_monthly FROM crm.customers"),
			q("SET pgguard.purpose = 'financial_reporting'"), q(stage + "SELECT gross_monthly FROM salaries")}},
		// Qualified with pg_temp.
		{"qualified read", []pgproto3.FrontendMessage{
			q("CREATE TEMP VIEW salaries AS SELECT iban AS gross_monthly FROM crm.customers"),
			q("SET pgguard.purpose = 'financial_reporting'"), q(stage + "SELECT gross_monthly FROM pg_temp.salaries")}},
		// The view made in the same message, under a purpose comment.
		{"view in the same message", []pgproto3.FrontendMessage{
			q("SET pgguard.purpose = 'financial_reporting'"),
			q("/*purpose='invoicing'*/ CREATE TEMP VIEW salaries AS SELECT iban AS gross_monthly FROM crm.customers; " +
				stage + "SELECT gross_monthly FROM salaries")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
			out := r.send(c.msgs...)
			if out.lastRows > 0 || out.lastErr != "42501" {
				t.Fatalf("want the read refused (42501), got %d rows (%q), errors %v", out.lastRows, out.values, out.errors)
			}
		})
	}
	// Without a relation of that name, the table it creates is used at once.
	r := w.raw(t, "finance_app", "-c pgguard.purpose=financial_reporting")
	if out := r.send(q(stage + "INSERT INTO salaries VALUES (1); SELECT gross_monthly FROM salaries")); len(out.errors) > 0 || out.rows != 1 {
		t.Fatalf("a new table: %d rows, errors %v", out.rows, out.errors)
	}
}

// A temporary table created in a message is followed by its CREATE only
// until DDL later in the message drops or renames it, or gives its name to
// a view: a purpose comment let the view read IBANs, and the read after it
// passed as one of the table.
func TestInsiderTemporaryTableReplacedInTheSameMessage(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	view := "/*purpose='invoicing'*/ CREATE TEMP VIEW x AS SELECT iban AS a FROM crm.customers; SELECT a FROM x"
	for _, sql := range []string{
		// Dropped, and the name given to a view.
		"CREATE TEMP TABLE x (a text); DROP TABLE x; " + view,
		// Renamed away, and the name given to a view.
		"CREATE TEMP TABLE x (a text); ALTER TABLE x RENAME TO y; " + view,
	} {
		t.Run(sql, func(t *testing.T) {
			r := w.raw(t, "finance_app", "-c pgguard.purpose=financial_reporting")
			if out := r.send(q(sql)); out.lastRows > 0 || out.lastErr != "42501" {
				t.Fatalf("want refused (42501), got %d rows (%q), errors %v", out.lastRows, out.values, out.errors)
			}
		})
	}
	// Used and then dropped in one message, as scripts clean up.
	r := w.raw(t, "finance_app", "-c pgguard.purpose=financial_reporting")
	if out := r.send(q("CREATE TEMP TABLE s (a int); INSERT INTO s VALUES (1); SELECT a FROM s; DROP TABLE s")); len(out.errors) > 0 || out.rows != 1 {
		t.Fatalf("a table used, then dropped: %d rows, errors %v", out.rows, out.errors)
	}
}

// Deleting from a temporary table updates the rows of another that
// referenced it (ON DELETE SET NULL), and their check quotes what was
// copied in under another purpose.
func TestInsiderDeleteCascadesIntoATemporaryRow(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	for _, del := range []string{
		// DELETE sets the references to NULL, and the check runs.
		"DELETE FROM p",
		// So does MERGE's DELETE.
		"MERGE INTO p USING (VALUES (1)) v(a) ON true WHEN MATCHED THEN DELETE",
	} {
		t.Run(del, func(t *testing.T) {
			r := w.raw(t, "support_app", "-c pgguard.purpose=identity_verification")
			out := r.send(q("CREATE TEMP TABLE p (id int PRIMARY KEY)"),
				q("CREATE TEMP TABLE c (id int, bd date, pid int REFERENCES p ON DELETE SET NULL, CHECK (pid IS NOT NULL OR bd::text::int > 0))"),
				q("INSERT INTO p SELECT id FROM crm.customers"), q("INSERT INTO c SELECT id, birth_date, id FROM crm.customers"),
				q("SET pgguard.purpose = 'erasure_request'"))
			if len(out.errors) > 0 {
				t.Fatalf("setting up: %v", out.errors)
			}
			errs := r.errorsOf(q(del))
			if len(errs) != 1 || errs[0].Code != "42501" || strings.Contains(errs[0].Message, "1980") {
				t.Fatalf("want the delete refused, got %+v", errs)
			}
		})
	}
}
