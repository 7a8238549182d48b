package guard_test

// An insider's attacks on the extended protocol and on what pgguard keeps
// by name: cursors, portals and prepared statements whose definition,
// removal or effect the server did not carry out as pgguard assumed.
// Each case says in one line what it tries. finance_app may read
// customers' IBANs for invoicing, never for financial reporting.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/alert"
)

const (
	ibans         = "SELECT iban FROM crm.customers"
	toReporting   = "SET pgguard.purpose = 'financial_reporting'"
	ibanMarker    = "NL00BANK"
	salaryMarker  = "4200"
	switchFuncDDL = `CREATE OR REPLACE FUNCTION public.pgg_switch(text) RETURNS text LANGUAGE plpgsql AS
		$$ BEGIN PERFORM set_config('search_path', 'hr', false); RETURN $1; END $$;
		GRANT EXECUTE ON FUNCTION public.pgg_switch(text) TO PUBLIC`
)

// step is one write of a pipeline, read until its ReadyForQuery messages.
type step []pgproto3.FrontendMessage

// attack runs steps on r and fails unless the last one, the read, ended
// in an error and none of its rows showed marker.
func attack(t *testing.T, r *raw, marker string, steps []step) {
	t.Helper()
	var out outcome
	for _, s := range steps {
		out = r.send(s...)
	}
	for _, v := range out.all {
		if strings.Contains(v, marker) {
			t.Fatalf("%q came back (errors %v)", v, out.errors)
		}
	}
	if out.lastErr == "" {
		t.Fatalf("want the last step refused, got %d rows (%q), no error", out.lastRows, out.values)
	}
}

// executeAll runs portal to its end and ends the segment.
func executeAll(portal string) step {
	return step{&pgproto3.Execute{Portal: portal}, &pgproto3.Sync{}}
}

// bindOne binds portal from a statement of sql and fetches one row, in a
// segment of its own.
func bindOne(portal, sql string) step {
	return step{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{DestinationPortal: portal},
		&pgproto3.Execute{Portal: portal, MaxRows: 1}, &pgproto3.Sync{}}
}

// PostgreSQL keeps cursors and portals in one namespace, and a DECLARE,
// Bind, CLOSE or Close of a name may fail, or be skipped after an error:
// pgguard must decide a fetch on every definition the server may hold.
func TestAttackCursorAndPortalNamesFollowTheServer(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	cases := []struct {
		name  string
		steps []step
	}{
		// A second DECLARE of a held cursor's name fails; the IBAN cursor stays.
		{"DECLARE of a name in use", []step{
			{q("DECLARE c CURSOR WITH HOLD FOR " + ibans)}, {q("DECLARE c CURSOR WITH HOLD FOR SELECT 1")},
			{q(toReporting)}, {q("FETCH ALL FROM c")}}},
		// CLOSE behind an error in its own message never runs.
		{"CLOSE skipped after an error", []step{
			{q("DECLARE c CURSOR WITH HOLD FOR " + ibans)}, {q("SELECT 1/0; CLOSE c")},
			{q(toReporting)}, {q("FETCH ALL FROM c")}}},
		// CLOSE ALL likewise.
		{"CLOSE ALL skipped after an error", []step{
			{q("DECLARE c CURSOR WITH HOLD FOR " + ibans)}, {q("SELECT 1/0; CLOSE ALL")},
			{q(toReporting)}, {q("FETCH ALL FROM c")}}},
		// A cursor ended with its transaction, and a portal bound later under its name.
		{"an ended cursor's name over a portal", []step{
			{q("BEGIN; DECLARE p CURSOR FOR SELECT 1; COMMIT")}, {q("BEGIN")}, bindOne("p", ibans),
			{q(toReporting)}, executeAll("p")}},
		// A Bind of a portal name in use fails in a savepoint rolled back to; the portal stays.
		{"Bind of a name in use, under a savepoint", []step{
			{q("BEGIN")}, bindOne("p", ibans), {q("SAVEPOINT a")},
			{&pgproto3.Parse{Name: "one", Query: "SELECT 1"}, &pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "one"}, &pgproto3.Sync{}},
			{q("ROLLBACK TO a")}, {q(toReporting)}, executeAll("p")}},
		// A portal's Close behind an error never runs.
		{"Close of a portal skipped after an error", []step{
			{q("BEGIN")}, bindOne("p", ibans), {q("SAVEPOINT a")},
			{&pgproto3.Parse{Name: "e", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "e"}, &pgproto3.Execute{},
				&pgproto3.Close{ObjectType: 'P', Name: "p"}, &pgproto3.Sync{}},
			{q("ROLLBACK TO a")}, {q(toReporting)}, executeAll("p")}},
		// A portal bound before the server ended the previous transaction must outlive that end.
		{"portal bound behind an earlier transaction's end", []step{
			append(extended("", "SELECT 1"), &pgproto3.Sync{}),
			append(step{q("SELECT pg_sleep(0.3)"), q("BEGIN")}, bindOne("p", ibans)...),
			{q(toReporting)}, executeAll("p")}},
		// DECLARE, a purpose switch and FETCH in one message.
		{"DECLARE and FETCH in one message", []step{
			{q("BEGIN; DECLARE c CURSOR FOR " + ibans + "; SET LOCAL pgguard.purpose = 'financial_reporting'; FETCH ALL FROM c; COMMIT")}}},
		// The same over a cursor that held something harmless before.
		{"CLOSE, DECLARE and FETCH in one message", []step{{q("DECLARE c CURSOR WITH HOLD FOR SELECT 1")},
			{q("BEGIN; CLOSE c; DECLARE c CURSOR FOR " + ibans + "; SET LOCAL pgguard.purpose = 'financial_reporting'; FETCH ALL FROM c; COMMIT")}}},
		// A FETCH bound as a portal under one purpose, executed under another.
		{"a FETCH portal executed after a purpose switch", []step{
			{q("BEGIN")}, {q("DECLARE c CURSOR FOR " + ibans)},
			{&pgproto3.Parse{Name: "f", Query: "FETCH ALL FROM c"}, &pgproto3.Bind{DestinationPortal: "pf", PreparedStatement: "f"}, &pgproto3.Sync{}},
			{q(toReporting)}, executeAll("pf")}},
		// The same, its first row fetched before the switch and the rest after.
		{"a FETCH portal's rest after a purpose switch", []step{
			{q("BEGIN")}, {q("DECLARE c CURSOR FOR " + ibans)},
			{&pgproto3.Parse{Name: "f", Query: "FETCH ALL FROM c"}, &pgproto3.Bind{DestinationPortal: "pf", PreparedStatement: "f"},
				&pgproto3.Execute{Portal: "pf", MaxRows: 1}, &pgproto3.Sync{}},
			{q(toReporting)}, executeAll("pf")}},
		// ... and after the cursor it fetched from was closed.
		{"a FETCH portal's rest after its cursor closed", []step{
			{q("BEGIN")}, {q("DECLARE c CURSOR FOR " + ibans)},
			{&pgproto3.Parse{Name: "f", Query: "FETCH ALL FROM c"}, &pgproto3.Bind{DestinationPortal: "pf", PreparedStatement: "f"},
				&pgproto3.Execute{Portal: "pf", MaxRows: 1}, &pgproto3.Sync{}},
			{q("CLOSE c")}, {q(toReporting)}, executeAll("pf")}},
		// A DECLARE parsed through the protocol, run by SQL EXECUTE.
		{"DECLARE run by EXECUTE", []step{
			{&pgproto3.Parse{Name: "d", Query: "DECLARE c CURSOR WITH HOLD FOR " + ibans}, &pgproto3.Sync{}},
			{q("EXECUTE d")}, {q(toReporting)}, {q("FETCH ALL FROM c")}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			attack(t, w.raw(t, "finance_app", "-c pgguard.purpose=invoicing"), ibanMarker, c.steps)
		})
	}
	// What stays usable: a cursor declared again after its CLOSE, a
	// portal bound again after its Close, under the purpose that allows it.
	r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
	r.send(q("DECLARE c CURSOR WITH HOLD FOR SELECT 1"))
	r.send(q("CLOSE c"))
	r.send(q("DECLARE c CURSOR WITH HOLD FOR " + ibans))
	if out := r.send(q("FETCH ALL FROM c")); len(out.errors) > 0 || out.rows != 2 {
		t.Fatalf("FETCH after CLOSE and DECLARE: %d rows, errors %v", out.rows, out.errors)
	}
	r.send(q("BEGIN"))
	r.send(bindOne("p", "SELECT 1")...)
	r.send(&pgproto3.Close{ObjectType: 'P', Name: "p"}, &pgproto3.Sync{})
	r.send(bindOne("p", ibans)...)
	if out := r.send(executeAll("p")...); len(out.errors) > 0 || out.rows != 1 {
		t.Fatalf("Execute after Close and Bind: %d rows, errors %v", out.rows, out.errors)
	}
}

// A prepared statement that pgguard believes replaced may still be the old
// one: the server skips a Parse or PREPARE behind an error of its segment
// (even one that reached pgguard before the Parse did), and a PREPARE run
// by a portal settles when that portal's segment ends.
func TestAttackPreparedRedefinitionTheServerSkipped(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	t.Run("Parse behind an error already answered", func(t *testing.T) {
		r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
		r.send(q("PREPARE x AS " + ibans))
		r.write(&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
		r.until(t, "22012")
		attack(t, r, ibanMarker, []step{{&pgproto3.Parse{Name: "x", Query: "SELECT 1"}, &pgproto3.Sync{}},
			{q(toReporting)}, {q("EXECUTE x")}})
	})
	t.Run("Parse of a name in use, pipelined with an EXECUTE", func(t *testing.T) {
		r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
		r.send(q("PREPARE x AS " + ibans))
		attack(t, r, ibanMarker, []step{{&pgproto3.Parse{Name: "x", Query: "SELECT 1"}, &pgproto3.Sync{},
			q("/*purpose='financial_reporting'*/ EXECUTE x")}})
	})
	t.Run("PREPARE of a name in use, pipelined with an EXECUTE", func(t *testing.T) {
		r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
		r.send(q("PREPARE x AS " + ibans))
		attack(t, r, ibanMarker, []step{{q("PREPARE x AS SELECT 1"), q("/*purpose='financial_reporting'*/ EXECUTE x")}})
	})
	t.Run("PREPARE and EXECUTE in one message", func(t *testing.T) {
		r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
		r.send(q("PREPARE x AS SELECT 1"))
		attack(t, r, ibanMarker, []step{{q("BEGIN; DEALLOCATE x; PREPARE x AS " + ibans +
			"; SET LOCAL pgguard.purpose = 'financial_reporting'; EXECUTE x; COMMIT")}})
	})
	t.Run("PREPARE run by a portal, behind a slow segment", func(t *testing.T) {
		r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
		r.send(q("PREPARE x AS " + ibans))
		attack(t, r, ibanMarker, []step{
			{q("SELECT pg_sleep(0.3)"), &pgproto3.Parse{Name: "p", Query: "PREPARE x AS SELECT 1"}, &pgproto3.Bind{PreparedStatement: "p"},
				&pgproto3.Execute{}, &pgproto3.Sync{}},
			{q(toReporting)}, {q("EXECUTE x")}})
	})
}

// until reads until an error with code arrives.
func (r *raw) until(t *testing.T, code string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, err := r.fe.Receive()
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			if e.Code != code {
				t.Fatalf("error %s, want %s", e.Code, code)
			}
			return
		}
	}
	t.Fatalf("no error %s", code)
}

// Running a prepared statement runs what it holds: a function that changes
// the search_path, a SET parsed through the protocol, whichever way it is
// run (SQL EXECUTE, Bind and Execute). Nor does a cursor's code run only at
// FETCH: Execute runs a cursor too.
func TestAttackPreparedStatementsCarryWhatTheyRun(t *testing.T) {
	w := decoyWorld(t)
	w.pg.MustExec(t, "postgres", switchFuncDDL)
	w.addRules(t, "p, sales, *, function:public.pgg_switch, execute, allow")
	prepare := step{q("PREPARE sw AS SELECT public.pgg_switch('x')")}
	declare := step{q("BEGIN"), q("DECLARE c CURSOR FOR SELECT public.pgg_switch('x')")}
	readSalaries := extended("", salaries)
	cases := []struct {
		name  string
		steps []step
	}{
		// EXECUTE of the function and a read in one message.
		{"EXECUTE, then a read in one message", []step{prepare, {q("EXECUTE sw; " + salaries)}}},
		// Pipelined as two messages.
		{"EXECUTE, then a read, pipelined", []step{prepare, {q("EXECUTE sw"), q(salaries)}}},
		// The SQL-prepared statement bound through the protocol, a read in its segment.
		{"Bind of it, then a read in its segment", []step{prepare,
			append(append(step{&pgproto3.Bind{PreparedStatement: "sw"}, &pgproto3.Execute{}}, readSalaries...), &pgproto3.Sync{})}},
		// ... and a read after its Sync.
		{"Bind of it, then a query", []step{prepare,
			{&pgproto3.Bind{PreparedStatement: "sw"}, &pgproto3.Execute{}, &pgproto3.Sync{}, q(salaries)}}},
		// A SET parsed through the protocol, run by SQL EXECUTE.
		{"EXECUTE of a SET parsed through the protocol", []step{
			{&pgproto3.Parse{Name: "st", Query: "SET search_path = hr"}, &pgproto3.Sync{}}, {q("EXECUTE st; " + salaries)}}},
		// An EXECUTE parsed through the protocol, its statement replaced by the function before its Bind.
		{"Bind of a parsed EXECUTE whose statement changed", []step{{q("PREPARE sw AS SELECT 1")},
			{&pgproto3.Parse{Name: "e", Query: "EXECUTE sw"}, &pgproto3.Sync{}}, {q("DEALLOCATE sw")}, prepare,
			append(append(step{&pgproto3.Bind{PreparedStatement: "e"}, &pgproto3.Execute{}}, readSalaries...), &pgproto3.Sync{})}},
		// A cursor over the function run by a protocol Execute, a read in its segment.
		{"Execute of a code cursor, then a read in its segment", []step{declare,
			append(append(step{&pgproto3.Execute{Portal: "c"}}, readSalaries...), &pgproto3.Sync{})}},
		// ... and a read after its Sync.
		{"Execute of a code cursor, then a query", []step{declare,
			{&pgproto3.Execute{Portal: "c"}, &pgproto3.Sync{}, q(salaries)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			attack(t, w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy"), salaryMarker, c.steps)
		})
	}
	// The function still runs, and what follows it on its own is decided
	// on the path the server reports.
	r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy")
	r.send(prepare...)
	if out := r.send(q("EXECUTE sw")); len(out.errors) > 0 || out.values != "x" {
		t.Fatalf("EXECUTE sw on its own: %q, errors %v", out.values, out.errors)
	}
	r.send(q(salaries)).refused(t, "read after EXECUTE sw, on the path the server reports")
}

// What a prepared statement reads when the server plans it again under a
// new search_path flows into the temporary table it writes, as what it
// read when prepared does.
func TestAttackTemporaryLineageOfARepreparedStatement(t *testing.T) {
	w := decoyWorld(t)
	w.pg.MustExec(t, "postgres", `CREATE TABLE IF NOT EXISTS decoy.customers (iban text);
		GRANT USAGE ON SCHEMA decoy TO finance_app; GRANT SELECT ON decoy.customers TO finance_app`)
	insert := "INSERT INTO t SELECT iban FROM customers"
	cases := []struct {
		name  string
		steps []step
	}{
		// PREPARE under the decoy's path, EXECUTE under crm's.
		{"SQL PREPARE", []step{{q("PREPARE ins AS " + insert)}, {q("SET search_path = crm")}, {q("EXECUTE ins")}}},
		// Parse under the decoy's path, Bind under crm's.
		{"protocol Parse", []step{{&pgproto3.Parse{Name: "ins", Query: insert}, &pgproto3.Sync{}}, {q("SET search_path = crm")},
			{&pgproto3.Bind{PreparedStatement: "ins"}, &pgproto3.Execute{}, &pgproto3.Sync{}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing -c search_path=decoy")
			if out := r.send(q("CREATE TEMP TABLE t (v text)")); len(out.errors) > 0 {
				t.Fatalf("create: %v", out.errors)
			}
			for _, s := range c.steps {
				if out := r.send(s...); len(out.errors) > 0 {
					t.Fatalf("under invoicing: %v", out.errors)
				}
			}
			attack(t, r, ibanMarker, []step{{q(toReporting)}, {q("SELECT v FROM t")}})
		})
	}
}

// A portal suspended across a Sync is decided again at each Execute under
// the policy in force: a policy reload in between reaches its rows.
func TestAttackPortalFetchedAfterAPolicyReload(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
	r.send(q("BEGIN"))
	if out := r.send(bindOne("p", ibans)...); len(out.errors) > 0 || out.rows != 1 {
		t.Fatalf("first row under invoicing: %d rows, errors %v", out.rows, out.errors)
	}
	w.addRules(t, "p, finance, invoicing, customer_financial, read, deny")
	attack(t, r, ibanMarker, []step{executeAll("p")})
}

// A pipeline that binds the unnamed portal from many statements before its
// Sync, as a driver's batch does, runs as before: each Execute meets the
// portal its Bind made.
func TestBatchOfManyStatementsThroughTheUnnamedPortal(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
	for _, tx := range []bool{false, true} {
		var batch step
		if tx {
			batch = append(batch, q("BEGIN"))
		}
		for i := range 40 {
			batch = append(batch, extended("", fmt.Sprintf("SELECT %d, iban FROM crm.customers", i))...)
		}
		batch = append(batch, &pgproto3.Sync{})
		if out := r.send(batch...); len(out.errors) > 0 || out.rows != 80 {
			t.Fatalf("batch (in a transaction: %v): %d rows, errors %v", tx, out.rows, out.errors)
		}
	}
	r.send(q(toReporting))
	attack(t, r, ibanMarker, []step{executeAll("")})
}
