package guard_test

// An insider's attacks on what pgguard keeps of the session besides the
// settings the state query reads: cursors, prepared statements and what
// flowed into temporary tables. Finance may read customers' IBANs for
// invoicing, never for financial reporting; each case copies or holds
// IBANs under the first purpose and tries to read them under the second.

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/internal/pgtest"
)

// refusedRead fails the test unless the last segment was refused by
// pgguard and no IBAN came back in any.
func refusedRead(t *testing.T, out outcome, what string) {
	t.Helper()
	if out.lastRows > 0 || strings.Contains(out.values, "NL00BANK") || out.lastErr != "42501" {
		t.Fatalf("%s: want the read refused (42501), got %d rows (%q), errors %v", what, out.lastRows, out.values, out.errors)
	}
}

// A cursor declared WITH HOLD outlives its transaction, and errors: a
// CLOSE, CLOSE ALL, DISCARD ALL or DECLARE the server refused or skipped
// leaves it as it was, and fetching from it reads what its query read.
func TestStateAttackCursorChangesTheServerSkipped(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	declare := q("DECLARE c CURSOR WITH HOLD FOR SELECT iban FROM crm.customers")
	cases := []struct {
		name string
		msgs []pgproto3.FrontendMessage
	}{
		// The server refuses CLOSE in a failed block; pgguard forwards it.
		{"CLOSE in a failed transaction block", []pgproto3.FrontendMessage{
			q("BEGIN"), q("SELECT 1/0"), q("CLOSE c"), q("ROLLBACK")}},
		// An error earlier in the message: CLOSE never runs.
		{"CLOSE after an error in its message", []pgproto3.FrontendMessage{q("SELECT 1/0; CLOSE c")}},
		// CLOSE ALL, likewise.
		{"CLOSE ALL in a failed transaction block", []pgproto3.FrontendMessage{
			q("BEGIN"), q("SELECT 1/0"), q("CLOSE ALL"), q("ROLLBACK")}},
		// DISCARD ALL cannot run inside a transaction block.
		{"DISCARD ALL inside a transaction block", []pgproto3.FrontendMessage{
			q("BEGIN"), q("DISCARD ALL"), q("ROLLBACK")}},
		// The name is in use: the server keeps the IBAN cursor.
		{"DECLARE of a name in use", []pgproto3.FrontendMessage{
			q("DECLARE c CURSOR WITH HOLD FOR SELECT 1")}},
		// The extended protocol, pipelined behind a statement still
		// running: the CLOSE is skipped after an error in its segment.
		{"extended CLOSE skipped, pipelined", []pgproto3.FrontendMessage{
			q("SELECT pg_sleep(0.2)"),
			&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "CLOSE c"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
			if out := r.send(declare); len(out.errors) > 0 {
				t.Fatalf("declare under invoicing: %v", out.errors)
			}
			r.send(c.msgs...)
			r.send(q("SET pgguard.purpose = 'financial_reporting'"))
			refusedRead(t, r.send(q("FETCH ALL FROM c")), c.name)
		})
	}
	// A cursor closed for certain is gone, and its name free again.
	r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
	r.send(declare)
	if out := r.send(q("CLOSE c")); len(out.errors) > 0 {
		t.Fatalf("close: %v", out.errors)
	}
	r.send(q("SET pgguard.purpose = 'financial_reporting'"))
	if out := r.send(q("DECLARE c CURSOR WITH HOLD FOR SELECT 1 AS n"), q("FETCH ALL FROM c")); len(out.errors) > 0 || out.rows != 1 {
		t.Fatalf("a new cursor of the name: %d rows, errors %v", out.rows, out.errors)
	}
}

// Fetching from a cursor declared over a function the policy allows runs
// the function, which may change the search_path: a CLOSE the server
// refused must not make pgguard forget that, or the read after the FETCH
// is decided on the old path.
func TestStateAttackCodeCursorCloseTheServerRefused(t *testing.T) {
	w := decoyWorld(t)
	w.pg.MustExec(t, "postgres", `CREATE OR REPLACE FUNCTION public.pgg_switch(text) RETURNS text LANGUAGE plpgsql AS
		$$ BEGIN PERFORM set_config('search_path', 'hr', false); RETURN $1; END $$;
		GRANT EXECUTE ON FUNCTION public.pgg_switch(text) TO PUBLIC`)
	w.addRules(t, "p, sales, *, function:public.pgg_switch, execute, allow")
	cases := []struct {
		name string
		msgs []pgproto3.FrontendMessage
	}{
		// CLOSE in a failed subtransaction, which ROLLBACK TO recovers.
		{"CLOSE in a failed savepoint", []pgproto3.FrontendMessage{
			q("SAVEPOINT a"), q("SELECT 1/0"), q("CLOSE c"), q("ROLLBACK TO a")}},
		// DECLARE of the name in use, over a plain query.
		{"DECLARE of the name in use", []pgproto3.FrontendMessage{
			q("SAVEPOINT a"), q("DECLARE c CURSOR FOR SELECT 1"), q("ROLLBACK TO a")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy")
			if out := r.send(q("BEGIN"), q("DECLARE c CURSOR FOR SELECT public.pgg_switch('x')")); len(out.errors) > 0 {
				t.Fatalf("declare: %v", out.errors)
			}
			r.send(c.msgs...)
			out := r.send(q("FETCH c; " + salaries))
			if out.lastRows > 0 && out.values != "x" || out.lastErr != "42501" {
				t.Fatalf("want the read refused (42501), got %d rows (%q), errors %v", out.lastRows, out.values, out.errors)
			}
		})
	}
}

// EXECUTE runs the statement prepared under its name, which may call a
// function the policy allows (whose body may change the search_path) or,
// prepared through the extended protocol, be a SET: the state after it is
// the server's to report, as after the statement itself.
func TestStateAttackExecuteRunsWhatWasPrepared(t *testing.T) {
	w := decoyWorld(t)
	w.pg.MustExec(t, "postgres", `CREATE OR REPLACE FUNCTION public.pgg_switch(text) RETURNS text LANGUAGE plpgsql AS
		$$ BEGIN PERFORM set_config('search_path', 'hr', false); RETURN $1; END $$;
		GRANT EXECUTE ON FUNCTION public.pgg_switch(text) TO PUBLIC`)
	w.addRules(t, "p, sales, *, function:public.pgg_switch, execute, allow")
	code := q("PREPARE p AS SELECT public.pgg_switch('x')")
	set := []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "p", Query: "SET search_path = hr"}, &pgproto3.Sync{}}
	cases := []struct {
		name        string
		setup, msgs []pgproto3.FrontendMessage
	}{
		// The function runs at EXECUTE, the read follows in the message.
		{"EXECUTE of an allowed function, then a read", []pgproto3.FrontendMessage{code}, []pgproto3.FrontendMessage{q("EXECUTE p; " + salaries)}},
		// The read pipelined behind it.
		{"EXECUTE of an allowed function, pipelined", []pgproto3.FrontendMessage{code}, []pgproto3.FrontendMessage{q("EXECUTE p"), q(salaries)}},
		// EXECUTE through the extended protocol, the read in its segment.
		{"extended EXECUTE of an allowed function", []pgproto3.FrontendMessage{code},
			append(append(extended("", "EXECUTE p"), extended("", salaries)...), &pgproto3.Sync{})},
		// A SET prepared through the extended protocol, run by SQL EXECUTE.
		{"EXECUTE of a SET prepared by Parse", set, []pgproto3.FrontendMessage{q("EXECUTE p; " + salaries)}},
		// EXPLAIN ANALYZE runs it too.
		{"EXPLAIN ANALYZE EXECUTE", []pgproto3.FrontendMessage{code}, []pgproto3.FrontendMessage{q("EXPLAIN ANALYZE EXECUTE p; " + salaries)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy")
			if out := r.send(c.setup...); len(out.errors) > 0 {
				t.Fatalf("prepare: %v", out.errors)
			}
			out := r.send(c.msgs...)
			if out.lastRows > 0 && out.values != "x" && !strings.HasPrefix(out.values, "Result") || out.lastErr != "42501" {
				t.Fatalf("want the read refused (42501), got %d rows (%q), errors %v", out.lastRows, out.values, out.errors)
			}
		})
	}
	// On its own, EXECUTE runs, and the read after it is decided on the
	// path the server reports.
	r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy")
	r.send(code)
	if out := r.send(q("EXECUTE p")); len(out.errors) > 0 || out.values != "x" {
		t.Fatalf("EXECUTE p: %q, errors %v", out.values, out.errors)
	}
	r.send(q(salaries)).refused(t, "the read after EXECUTE")
}

// A DEALLOCATE and PREPARE the server skipped after an error leave the
// statement it holds: pgguard decides on both until the name is changed
// again without an error, also after later confirmations that saw none.
// Through the extended protocol they take effect at their Execute, in its
// sync segment, even while an earlier segment is still being answered.
func TestStateAttackPreparedChangesTheServerSkipped(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	cases := []struct {
		name string
		msgs []pgproto3.FrontendMessage
	}{
		// Skipped after an error in their message.
		{"one message after an error", []pgproto3.FrontendMessage{q("SELECT 1/0; DEALLOCATE p; PREPARE p AS SELECT 1")}},
		// Skipped after an error in their segment, pipelined.
		{"extended, pipelined behind a running statement", []pgproto3.FrontendMessage{
			q("SELECT pg_sleep(0.2)"),
			&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "DEALLOCATE p"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "PREPARE p AS SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
			if out := r.send(q("PREPARE p AS SELECT iban FROM crm.customers")); len(out.errors) > 0 {
				t.Fatalf("prepare under invoicing: %v", out.errors)
			}
			r.send(c.msgs...)
			r.send(q("SET pgguard.purpose = 'financial_reporting'"))
			refusedRead(t, r.send(q("EXECUTE p")), "EXECUTE p")
		})
	}
	// Changed again without an error, the name holds the new statement.
	r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
	r.send(q("PREPARE p AS SELECT iban FROM crm.customers"))
	r.send(q("SELECT 1/0; DEALLOCATE p; PREPARE p AS SELECT 1"))
	r.send(q("DEALLOCATE p"), q("PREPARE p AS SELECT 1 AS n"), q("SET pgguard.purpose = 'financial_reporting'"))
	if out := r.send(q("EXECUTE p")); len(out.errors) > 0 || out.rows != 1 {
		t.Fatalf("EXECUTE p after a clean change: %d rows, errors %v", out.rows, out.errors)
	}
}

// What a statement copies into a temporary table keeps its policy, also
// when the statement does not say TEMP: PostgreSQL creates a table in the
// temporary schema when that is the first schema of the path it can use.
// And CREATE TABLE AS EXECUTE copies what the prepared statement reads.
func TestStateAttackTemporaryLineage(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	cases := []struct {
		name string
		msgs []pgproto3.FrontendMessage
		read string // default SELECT * FROM stash
	}{
		// CREATE TABLE AS, unqualified, with pg_temp first on the path.
		{"CREATE TABLE AS with pg_temp first on the path", []pgproto3.FrontendMessage{
			q("SET search_path = pg_temp, public"), q("CREATE TABLE stash AS SELECT iban FROM crm.customers")}, ""},
		// SELECT INTO, likewise.
		{"SELECT INTO with pg_temp first on the path", []pgproto3.FrontendMessage{
			q("SET search_path = pg_temp, public"), q("SELECT iban INTO stash FROM crm.customers")}, ""},
		// The schemas before pg_temp do not exist, so the server skips them.
		{"CREATE TABLE AS after schemas that do not exist", []pgproto3.FrontendMessage{
			q(`SET search_path = "$user", nosuchschema, pg_temp, public`), q("CREATE TABLE stash AS SELECT iban FROM crm.customers")}, ""},
		// pg_temp set at the start of the session.
		{"CREATE TABLE AS under a startup path", []pgproto3.FrontendMessage{
			q("CREATE TABLE stash AS SELECT iban FROM crm.customers")}, ""},
		// The copy made by running a prepared statement.
		{"CREATE TEMP TABLE AS EXECUTE", []pgproto3.FrontendMessage{
			q("PREPARE p AS SELECT iban FROM crm.customers"), q("CREATE TEMP TABLE stash AS EXECUTE p")}, ""},
		// The same through the extended protocol.
		{"CREATE TEMP TABLE AS EXECUTE, extended", append([]pgproto3.FrontendMessage{
			q("PREPARE p AS SELECT iban FROM crm.customers")},
			append(extended("", "CREATE TEMP TABLE stash AS EXECUTE p"), &pgproto3.Sync{})...), ""},
		// A prepared INSERT into a table that a temporary table created
		// since hides: the server plans it again, into the temporary table.
		{"EXECUTE planned again into a temporary table", []pgproto3.FrontendMessage{
			q("PREPARE p AS INSERT INTO notes (body) SELECT iban FROM crm.customers"),
			q("CREATE TEMP TABLE notes (id int, body text)"), q("EXECUTE p")}, "SELECT body FROM notes"},
		// The same with a statement of the extended protocol.
		{"Bind planned again into a temporary table", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "s", Query: "INSERT INTO notes (body) SELECT iban FROM crm.customers"}, &pgproto3.Sync{},
			q("CREATE TEMP TABLE notes (id int, body text)"),
			&pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{}}, "SELECT body FROM notes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			options := "-c pgguard.purpose=invoicing"
			if strings.Contains(c.name, "startup") {
				options += " -c search_path=pg_temp,public"
			}
			read := q("SELECT * FROM stash")
			if c.read != "" {
				read = q(c.read)
			}
			r := w.raw(t, "finance_app", options)
			if out := r.send(c.msgs...); len(out.errors) > 0 {
				t.Fatalf("copy under invoicing: %v", out.errors)
			}
			if out := r.send(read); len(out.errors) > 0 || out.rows != 2 {
				t.Fatalf("read under invoicing: %d rows, errors %v", out.rows, out.errors)
			}
			r.send(q("SET pgguard.purpose = 'financial_reporting'"))
			refusedRead(t, r.send(read), c.name)
		})
	}
	// In one message, the read after the copy is decided on what the
	// prepared statement read.
	t.Run("CREATE TEMP TABLE AS EXECUTE in one message", func(t *testing.T) {
		r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
		r.send(q("PREPARE p AS SELECT iban FROM crm.customers"))
		refusedRead(t, r.send(q("CREATE TEMP TABLE stash AS EXECUTE p; SET pgguard.purpose = 'financial_reporting'; SELECT * FROM stash")),
			"one message")
	})
	// A table created on an ordinary path is no temporary table, and
	// copies nothing into the lineage: temporary tables filled from the
	// client stay readable under any purpose.
	r := w.raw(t, "finance_app", "-c pgguard.purpose=financial_reporting")
	if out := r.send(q("CREATE TEMP TABLE stage (n int)"), q("INSERT INTO stage VALUES (1)"), q("SELECT n FROM stage")); len(out.errors) > 0 || out.rows != 1 {
		t.Fatalf("a temporary table filled from the client: %d rows, errors %v", out.rows, out.errors)
	}
}

// State set outside the session: an ordinary role may set its own
// defaults, which the server applies at the next connection, and a client
// chooses the startup options. pgguard reads the state the server reports
// at the start of every session, whatever set it.
func TestStateAttackDefaultsSetOutsideTheSession(t *testing.T) {
	w := decoyWorld(t)
	const user = "rt_defaults_app"
	w.pg.MustCreateRole(t, user, password, pgtest.SCRAM)
	w.pg.MustExec(t, "postgres", "GRANT USAGE ON SCHEMA crm, hr, decoy TO "+user+
		"; GRANT SELECT ON ALL TABLES IN SCHEMA crm, hr, decoy TO "+user)
	w.addRules(t, "g, "+user+", sales")
	cases := []struct{ name, set, options, read string }{
		// The role's own search_path, applied at the next connection.
		{"ALTER ROLE SET search_path", "ALTER ROLE CURRENT_USER SET search_path = hr", "", salaries},
		// The same for this database only.
		{"ALTER ROLE IN DATABASE SET search_path", "ALTER ROLE CURRENT_USER IN DATABASE postgres SET search_path = hr", "", salaries},
		// Backslashes escape quotes once standard_conforming_strings is
		// off: read with it on, the sub-select is inside a string.
		{"ALTER ROLE SET standard_conforming_strings", "ALTER ROLE CURRENT_USER SET standard_conforming_strings = off", "",
			`SELECT 'a\' AS x, ' , (SELECT gross_monthly FROM hr.salaries LIMIT 1)::text --'`},
		// An encoding whose characters may hide a backslash: every
		// statement is refused.
		{"ALTER ROLE SET client_encoding", "ALTER ROLE CURRENT_USER SET client_encoding = 'SJIS'", "", "SELECT 1 AS x"},
		// PostgreSQL reads an escaped space in options as part of the value.
		{"startup option with an escaped space", "", `-c search_path=hr,\ decoy`, salaries},
		// The long form of -c, given last, wins.
		{"startup option in its long form", "", "-c search_path=decoy --search_path=hr", salaries},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.set != "" {
				r := w.raw(t, user, "-c pgguard.purpose=order_fulfilment")
				if out := r.send(q(c.set)); len(out.errors) > 0 {
					t.Fatalf("%s: %v", c.set, out.errors)
				}
				t.Cleanup(func() {
					w.pg.MustExec(t, "postgres", "ALTER ROLE "+user+" RESET ALL; ALTER ROLE "+user+" IN DATABASE postgres RESET ALL")
				})
			}
			r := w.raw(t, user, "-c pgguard.purpose=order_fulfilment "+c.options)
			out := r.send(q(c.read))
			if out.rows > 0 && out.values != "" || out.lastErr != "42501" {
				t.Fatalf("want the read refused (42501), got %d rows (%q), errors %v", out.rows, out.values, out.errors)
			}
		})
	}
}

// A function the policy allows for one purpose copies IBANs into a
// temporary table it creates: pgguard cannot see what it read, so the
// table is read only where the policy allows running the function.
func TestStateAttackTemporaryTableFilledByAFunction(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", `CREATE OR REPLACE FUNCTION public.pgg_stage() RETURNS int LANGUAGE plpgsql AS
		$$ BEGIN CREATE TEMP TABLE IF NOT EXISTS fstash AS SELECT iban FROM crm.customers; RETURN 1; END $$;
		GRANT EXECUTE ON FUNCTION public.pgg_stage() TO PUBLIC`)
	w.addRules(t, "p, finance, invoicing, function:public.pgg_stage, execute, allow")
	cases := []struct {
		name string
		msgs []pgproto3.FrontendMessage
	}{
		// Called directly.
		{"a call", []pgproto3.FrontendMessage{q("SELECT public.pgg_stage()")}},
		// Through a prepared statement.
		{"EXECUTE", []pgproto3.FrontendMessage{q("PREPARE p AS SELECT public.pgg_stage()"), q("EXECUTE p")}},
		// Through the extended protocol.
		{"extended", append(extended("", "SELECT public.pgg_stage()"), &pgproto3.Sync{})},
		// Through a cursor's FETCH.
		{"cursor", []pgproto3.FrontendMessage{q("BEGIN"), q("DECLARE c CURSOR FOR SELECT public.pgg_stage()"), q("FETCH c"), q("COMMIT")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
			if out := r.send(c.msgs...); len(out.errors) > 0 {
				t.Fatalf("under invoicing: %v", out.errors)
			}
			if out := r.send(q("SELECT * FROM fstash")); len(out.errors) > 0 || out.rows != 2 {
				t.Fatalf("read under invoicing: %d rows, errors %v", out.rows, out.errors)
			}
			r.send(q("SET pgguard.purpose = 'financial_reporting'"))
			refusedRead(t, r.send(q("SELECT * FROM fstash")), c.name)
		})
	}
	// Without a temporary table after it, a function leaves nothing to
	// answer for: temporary tables made later are read as before.
	w.pg.MustExec(t, "postgres", `CREATE OR REPLACE FUNCTION public.pgg_noop() RETURNS int LANGUAGE sql AS 'SELECT 1';
		GRANT EXECUTE ON FUNCTION public.pgg_noop() TO PUBLIC`)
	w.addRules(t, "p, finance, invoicing, function:public.pgg_noop, execute, allow")
	r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
	if out := r.send(q("SELECT public.pgg_noop()")); len(out.errors) > 0 {
		t.Fatalf("pgg_noop: %v", out.errors)
	}
	if out := r.send(q("SET pgguard.purpose = 'financial_reporting'"), q("CREATE TEMP TABLE stage (n int)"),
		q("INSERT INTO stage VALUES (1)"), q("SELECT n FROM stage")); len(out.errors) > 0 || out.rows != 1 {
		t.Fatalf("a temporary table after no function: %d rows, errors %v", out.rows, out.errors)
	}
}

// A cursor a function opens holds the rows of a query pgguard never saw:
// fetched under another purpose, they are what the function chose, and
// fetching them needs the policy to allow running it under that purpose.
func TestStateAttackCursorOpenedByAFunction(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", `CREATE OR REPLACE FUNCTION public.pgg_open(refcursor) RETURNS refcursor LANGUAGE plpgsql AS
		$$ BEGIN OPEN $1 FOR SELECT iban FROM crm.customers; RETURN $1; END $$;
		GRANT EXECUTE ON FUNCTION public.pgg_open(refcursor) TO PUBLIC`)
	w.addRules(t, "p, finance, invoicing, function:public.pgg_open, execute, allow")
	open := []pgproto3.FrontendMessage{q("BEGIN"), q("SELECT public.pgg_open('c')"), q("SET LOCAL pgguard.purpose = 'financial_reporting'")}
	cases := []struct {
		name string
		msgs []pgproto3.FrontendMessage
	}{
		// SQL FETCH.
		{"FETCH", []pgproto3.FrontendMessage{q("FETCH ALL FROM c")}},
		// A purpose comment on the FETCH itself.
		{"FETCH with a purpose comment", []pgproto3.FrontendMessage{q("/*purpose='financial_reporting'*/ FETCH ALL FROM c")}},
		// The extended protocol's Execute of the cursor's portal.
		{"Execute", []pgproto3.FrontendMessage{&pgproto3.Execute{Portal: "c"}, &pgproto3.Sync{}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
			if out := r.send(open...); len(out.errors) > 0 {
				t.Fatalf("open under invoicing: %v", out.errors)
			}
			refusedRead(t, r.send(c.msgs...), c.name)
		})
	}
	// Under the purpose the function is allowed for, the cursor is read.
	r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
	if out := r.send(q("BEGIN"), q("SELECT public.pgg_open('c')"), q("FETCH ALL FROM c")); len(out.errors) > 0 || out.lastRows != 2 {
		t.Fatalf("FETCH under invoicing: %d rows, errors %v", out.lastRows, out.errors)
	}
}

// A DECLARE or Bind the server skipped after an error leaves the name
// free: a function the policy allows may then open a cursor under it,
// whose rows pgguard never saw. Fetching from the name is decided on the
// function's rules too, not only on the definition pgguard saw pass.
func TestStateAttackFunctionCursorUnderASkippedName(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", `CREATE OR REPLACE FUNCTION public.pgg_open(refcursor) RETURNS refcursor LANGUAGE plpgsql AS
		$$ BEGIN OPEN $1 FOR SELECT iban FROM crm.customers; RETURN $1; END $$;
		GRANT EXECUTE ON FUNCTION public.pgg_open(refcursor) TO PUBLIC`)
	w.addRules(t, "p, finance, invoicing, function:public.pgg_open, execute, allow")
	open := []pgproto3.FrontendMessage{q("SELECT public.pgg_open('c')"), q("SET LOCAL pgguard.purpose = 'financial_reporting'")}
	fetch := q("FETCH ALL FROM c")
	execute := []pgproto3.FrontendMessage{&pgproto3.Execute{Portal: "c"}, &pgproto3.Sync{}}
	cases := []struct {
		name         string
		skip, read   []pgproto3.FrontendMessage
		inTxn        bool
		withSavepont bool
	}{
		// A WITH HOLD cursor declared behind an error of its implicit
		// transaction: the server never made it.
		{"DECLARE WITH HOLD skipped, FETCH", []pgproto3.FrontendMessage{q("SELECT 1/0; DECLARE c CURSOR WITH HOLD FOR SELECT 1")}, []pgproto3.FrontendMessage{fetch}, false, false},
		{"DECLARE WITH HOLD skipped, Execute", []pgproto3.FrontendMessage{q("SELECT 1/0; DECLARE c CURSOR WITH HOLD FOR SELECT 1")}, execute, false, false},
		// A DECLARE skipped inside a savepoint that is rolled back to.
		{"DECLARE skipped in a savepoint", []pgproto3.FrontendMessage{q("SELECT 1/0; DECLARE c CURSOR FOR SELECT 1")}, []pgproto3.FrontendMessage{fetch}, true, true},
		// A Bind of the portal skipped after an error in its segment.
		{"Bind skipped in a savepoint", append(append(extended("", "SELECT 1/0"),
			&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{DestinationPortal: "c"}), &pgproto3.Sync{}), execute, true, true},
	}
	// The function runs in the same message as the fetch, which names
	// another purpose.
	t.Run("function and FETCH in one message", func(t *testing.T) {
		r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
		r.send(q("BEGIN"))
		refusedRead(t, r.send(q("SELECT public.pgg_open('c'); /*purpose='financial_reporting'*/ FETCH ALL FROM c")), "one message")
	})
	t.Run("CLOSE, function and FETCH in one message", func(t *testing.T) {
		r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
		r.send(q("BEGIN"), q("DECLARE c CURSOR FOR SELECT 1"), q("SELECT public.pgg_open('d')"))
		refusedRead(t, r.send(q("CLOSE c; SELECT public.pgg_open('c'); /*purpose='financial_reporting'*/ FETCH ALL FROM c")), "one message")
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
			if c.inTxn {
				r.send(q("BEGIN"))
			}
			if c.withSavepont {
				r.send(q("SAVEPOINT s"))
			}
			if out := r.send(c.skip...); len(out.errors) == 0 {
				t.Fatalf("want the skipping error")
			}
			if c.withSavepont {
				r.send(q("ROLLBACK TO SAVEPOINT s"))
			} else {
				r.send(q("BEGIN"))
			}
			if out := r.send(open...); len(out.errors) > 0 {
				t.Fatalf("open under invoicing: %v", out.errors)
			}
			refusedRead(t, r.send(c.read...), c.name)
		})
	}
}

// The state query runs on the session's search_path, which the client
// chooses: a schema listed before pg_catalog that holds a function named
// like one the query calls (made by whoever may create functions there)
// would answer for the server.
func TestStateAttackStateQueryOnTheClientsPath(t *testing.T) {
	w := decoyWorld(t)
	w.pg.MustExec(t, "postgres", `CREATE SCHEMA IF NOT EXISTS evil;
		CREATE OR REPLACE FUNCTION evil.current_setting(text) RETURNS text LANGUAGE sql AS
		$$ SELECT CASE WHEN $1 = 'standard_conforming_strings' THEN 'on' ELSE pg_catalog.current_setting($1) END $$;
		GRANT USAGE ON SCHEMA evil TO sales_app; GRANT EXECUTE ON FUNCTION evil.current_setting(text) TO sales_app`)
	r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	if out := r.send(q("SET search_path = evil, pg_catalog, public"), q("SET standard_conforming_strings = off")); len(out.errors) > 0 {
		t.Fatalf("setting up: %v", out.errors)
	}
	// With the strings standard, the sub-select is inside a string.
	out := r.send(q(`SELECT 'a\' AS x, ' , (SELECT gross_monthly FROM hr.salaries LIMIT 1)::text --'`))
	if out.rows > 0 || out.lastErr != "42501" {
		t.Fatalf("want the statement refused (42501), got %d rows (%q), errors %v", out.rows, out.values, out.errors)
	}
}

// PREPARE TRANSACTION ends a transaction whose DDL is committed only by
// COMMIT PREPARED, perhaps much later: the catalog read when the
// transaction ended still shows the table the DDL replaced by a view over
// IBANs, and must be read again after COMMIT PREPARED.
func TestStateAttackCommitPrepared(t *testing.T) {
	pg, err := pgtest.Launch(pgtest.Options{Settings: map[string]string{"max_prepared_transactions": "4"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	loadSchema(t, pg)
	w := newWorldOn(t, pg, alert.ModeEnforce)
	pg.MustExec(t, "postgres", `CREATE SCHEMA owned; GRANT USAGE, CREATE ON SCHEMA owned TO finance_app;
		CREATE TABLE owned.ledger (id text); ALTER TABLE owned.ledger OWNER TO finance_app`)
	r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
	if out := r.send(q("SELECT id FROM owned.ledger")); len(out.errors) > 0 {
		t.Fatalf("read before: %v", out.errors)
	}
	out := r.send(q("BEGIN"), q("ALTER TABLE owned.ledger RENAME TO ledger_old"),
		q("CREATE VIEW owned.ledger AS SELECT iban AS id FROM crm.customers"), q("PREPARE TRANSACTION 'x'"))
	if len(out.errors) > 0 {
		t.Fatalf("prepare: %v", out.errors)
	}
	// A read of the name in another session waits for the catalog to be
	// read again after the transaction ended (and then for the lock the
	// prepared transaction holds, until its lock_timeout).
	other := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing -c lock_timeout=200")
	if out := other.send(q("SELECT id FROM owned.ledger")); out.lastErr != "55P03" {
		t.Fatalf("read while prepared: want a lock timeout, got errors %v", out.errors)
	}
	out = r.send(q("COMMIT PREPARED 'x'"), q("SET pgguard.purpose = 'financial_reporting'"), q("SELECT id FROM owned.ledger"))
	if out.lastRows > 0 || out.lastErr != "42501" {
		t.Fatalf("want the read refused (42501), got %d rows (%q), errors %v", out.lastRows, out.values, out.errors)
	}
}
