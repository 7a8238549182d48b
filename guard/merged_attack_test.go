package guard_test

// An insider's attacks where the two accounts pgguard keeps by name meet:
// what a cursor or portal holds (held.go) and what a prepared statement
// runs (runsOf). Finance may read customers' IBANs for invoicing, never
// for financial reporting; each case holds or prepares IBANs under the
// first purpose, or something harmless, and tries to read them under the
// second. Each case says in one line what it tries.

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/alert"
)

func TestAttackMergedCursorsPortalsAndPreparedStatements(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	failing := step{&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}}
	bindFetch := step{&pgproto3.Parse{Name: "f", Query: "FETCH ALL FROM c"}, &pgproto3.Bind{DestinationPortal: "pf", PreparedStatement: "f"}, &pgproto3.Sync{}}
	cases := []struct {
		name  string
		steps []step
	}{
		// A FETCH portal's first Execute skipped after an error: it runs
		// for the first time after its cursor was declared again over IBANs.
		{"FETCH portal whose first Execute was skipped", []step{
			{q("BEGIN")}, {q("DECLARE c CURSOR FOR SELECT 'harmless'")}, bindFetch, {q("SAVEPOINT a")},
			append(append(step{}, failing...), &pgproto3.Execute{Portal: "pf"}, &pgproto3.Sync{}),
			{q("ROLLBACK TO a")}, {q("CLOSE c")}, {q("DECLARE c CURSOR FOR " + ibans)},
			{q(toReporting)}, executeAll("pf")}},
		// The same, its skipped first run an SQL FETCH of the portal.
		{"FETCH portal whose first SQL FETCH was skipped", []step{
			{q("BEGIN")}, {q("DECLARE c CURSOR FOR SELECT 'harmless'")}, bindFetch, {q("SAVEPOINT a")},
			{q("SELECT 1/0; FETCH ALL FROM pf")},
			{q("ROLLBACK TO a")}, {q("CLOSE c")}, {q("DECLARE c CURSOR FOR " + ibans)},
			{q(toReporting)}, executeAll("pf")}},
		// A portal bound from a protocol EXECUTE of an SQL-prepared read, run after a purpose switch.
		{"portal of a parsed EXECUTE after a purpose switch", []step{
			{q("PREPARE x AS " + ibans)}, {q("BEGIN")},
			{&pgproto3.Parse{Name: "e", Query: "EXECUTE x"}, &pgproto3.Bind{DestinationPortal: "pe", PreparedStatement: "e"},
				&pgproto3.Execute{Portal: "pe", MaxRows: 1}, &pgproto3.Sync{}},
			{q(toReporting)}, executeAll("pe")}},
		// The same, the statement it executes replaced after the Bind.
		{"portal of a parsed EXECUTE whose statement was replaced", []step{
			{q("PREPARE x AS " + ibans)}, {q("BEGIN")},
			{&pgproto3.Parse{Name: "e", Query: "EXECUTE x"}, &pgproto3.Bind{DestinationPortal: "pe", PreparedStatement: "e"}, &pgproto3.Sync{}},
			{q("DEALLOCATE x")}, {q("PREPARE x AS SELECT 1")}, {q(toReporting)}, executeAll("pe")}},
		// DEALLOCATE ALL skipped in a failing pipeline, then a Parse of the name.
		{"DEALLOCATE ALL skipped, name parsed again", []step{
			{q("PREPARE x AS " + ibans)},
			append(append(step{}, failing...), &pgproto3.Parse{Query: "DEALLOCATE ALL"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}),
			{&pgproto3.Parse{Name: "x", Query: "SELECT 1"}, &pgproto3.Sync{}},
			{q(toReporting)}, {&pgproto3.Bind{PreparedStatement: "x"}, &pgproto3.Execute{}, &pgproto3.Sync{}}}},
		// DISCARD ALL in a failing pipeline, the cursor declared again under its name.
		{"DISCARD ALL skipped, cursor declared again", []step{
			{q("DECLARE c CURSOR WITH HOLD FOR " + ibans)},
			append(append(step{}, failing...), &pgproto3.Parse{Query: "DISCARD ALL"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}),
			{q("DECLARE c CURSOR WITH HOLD FOR SELECT 1")}, {q(toReporting)}, {q("FETCH ALL FROM c")}}},
		// CLOSE ALL in a failing pipeline, then the name as an unnamed-statement portal.
		{"CLOSE ALL skipped, name bound as a portal", []step{
			{q("BEGIN")}, {q("DECLARE c CURSOR FOR " + ibans)},
			{q("SAVEPOINT a")},
			append(append(step{}, failing...), &pgproto3.Parse{Query: "CLOSE ALL"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}),
			{q("ROLLBACK TO a")}, bindOne("c", "SELECT 1"), {q(toReporting)}, executeAll("c")}},
		// The unnamed portal bound from IBANs in a transaction, the unnamed statement parsed again across a Sync.
		{"unnamed portal across Syncs", []step{
			{q("BEGIN")}, {&pgproto3.Parse{Query: ibans}, &pgproto3.Bind{}, &pgproto3.Execute{MaxRows: 1}, &pgproto3.Sync{}},
			{&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Sync{}}, {q(toReporting)}, executeAll("")}},
		// A FETCH portal over a cursor, bound, then the cursor closed and declared over IBANs before the first run.
		{"FETCH portal run after its cursor was redefined", []step{
			{q("BEGIN")}, {q("DECLARE c CURSOR FOR SELECT 'harmless'")}, bindFetch,
			{q("CLOSE c")}, {q("DECLARE c CURSOR FOR " + ibans)}, {q(toReporting)}, executeAll("pf")}},
		// A FETCH portal over a FETCH portal: the outer one keeps what the inner one fetched.
		{"FETCH portal over a FETCH portal, after a purpose switch", []step{
			{q("BEGIN")}, {q("DECLARE c CURSOR FOR " + ibans)}, bindFetch,
			{&pgproto3.Parse{Name: "g", Query: "FETCH ALL FROM pf"}, &pgproto3.Bind{DestinationPortal: "pg", PreparedStatement: "g"},
				&pgproto3.Execute{Portal: "pg", MaxRows: 1}, &pgproto3.Sync{}},
			{q(toReporting)}, executeAll("pg")}},
		// The inner FETCH portal ran inside the outer one's run, then its cursor was redefined.
		{"FETCH portal run by another, then its cursor redefined", []step{
			{q("BEGIN")}, {q("DECLARE c CURSOR FOR " + ibans)}, bindFetch,
			{&pgproto3.Parse{Name: "g", Query: "FETCH 1 FROM pf"}, &pgproto3.Bind{DestinationPortal: "pg", PreparedStatement: "g"},
				&pgproto3.Execute{Portal: "pg"}, &pgproto3.Sync{}},
			{q("CLOSE c")}, {q("DECLARE c CURSOR FOR SELECT 'harmless'")}, {q(toReporting)}, executeAll("pf")}},
		// The same, the inner portal run by an SQL FETCH inside a prepared statement's portal.
		{"SQL FETCH of a FETCH portal, then its cursor redefined", []step{
			{q("BEGIN")}, {q("DECLARE c CURSOR FOR " + ibans)}, bindFetch,
			{q("MOVE 0 IN pf")},
			{q("CLOSE c")}, {q("DECLARE c CURSOR FOR SELECT 'harmless'")}, {q(toReporting)}, {q("FETCH ALL FROM pf")}}},
		// A purpose switch between a FETCH portal's Bind and its Execute, in one segment.
		{"purpose switched between Bind and Execute in one segment", []step{
			{q("BEGIN")}, {q("DECLARE c CURSOR FOR " + ibans)},
			{&pgproto3.Parse{Name: "f", Query: "FETCH ALL FROM c"}, &pgproto3.Bind{DestinationPortal: "pf", PreparedStatement: "f"},
				&pgproto3.Parse{Query: toReporting}, &pgproto3.Bind{}, &pgproto3.Execute{},
				&pgproto3.Execute{Portal: "pf"}, &pgproto3.Sync{}}}},
		// A Close of the SQL-prepared name and a Parse under it, skipped after an error.
		{"Close and Parse of an SQL-prepared name, skipped", []step{
			{q("PREPARE x AS " + ibans)},
			append(append(step{}, failing...), &pgproto3.Close{ObjectType: 'S', Name: "x"},
				&pgproto3.Parse{Name: "x", Query: "SELECT 1"}, &pgproto3.Sync{}),
			{q(toReporting)}, {&pgproto3.Bind{PreparedStatement: "x"}, &pgproto3.Execute{}, &pgproto3.Sync{}}}},
		// A cursor name longer than PostgreSQL keeps, executed as a portal under the name it keeps.
		{"cursor name truncated by the server, run as a portal", []step{
			{q("DECLARE " + strings.Repeat("a", 70) + " CURSOR WITH HOLD FOR " + ibans)},
			{q(toReporting)}, executeAll(strings.Repeat("a", 63))}},
		// A portal name longer than PostgreSQL keeps, fetched under the name the parser keeps.
		{"portal name longer than identifiers, fetched by SQL", []step{
			{q("BEGIN")}, bindOne(strings.Repeat("b", 63), ibans),
			{q(toReporting)}, {q("FETCH ALL FROM " + strings.Repeat("b", 70))}}},
		// A FETCH portal bound over a harmless cursor, the cursor declared again over salaries under the same purpose.
		{"FETCH portal's cursor redefined under the same purpose", []step{
			{q("BEGIN")}, {q("DECLARE c CURSOR FOR SELECT 'harmless'")}, bindFetch,
			{q("CLOSE c")}, {q("DECLARE c CURSOR FOR SELECT iban FROM crm.customers")}, {q(toReporting)}, {q("DECLARE d CURSOR FOR SELECT 1")}, executeAll("pf")}},
		// The unnamed statement replaced in a segment that failed before it.
		{"unnamed statement Parse skipped after an error", []step{
			{&pgproto3.Parse{Query: ibans}, &pgproto3.Sync{}},
			{&pgproto3.Parse{Name: "z", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "z"}, &pgproto3.Execute{},
				&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Sync{}},
			{q(toReporting)}, {&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			attack(t, w.raw(t, "finance_app", "-c pgguard.purpose=invoicing"), ibanMarker, c.steps)
		})
	}
}

// A prepared statement planned over a temporary table that shadowed its
// relation is planned again at Bind once the table is dropped: the portal
// holds what the statement reads then, fetched after a purpose switch.
func TestAttackPortalOfAStatementPlannedAgainAfterATempTableWentAway(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing -c search_path=crm")
	for _, s := range []step{{q("CREATE TEMP TABLE customers (iban text)")},
		{q("PREPARE x AS SELECT iban FROM customers")}, {q("DROP TABLE pg_temp.customers")}, {q("BEGIN")}} {
		if out := r.send(s...); len(out.errors) > 0 {
			t.Fatalf("set-up %q: %v", s[0].(*pgproto3.Query).String, out.errors)
		}
	}
	attack(t, r, ibanMarker, []step{
		{&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "x"}, &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{}},
		{q(toReporting)}, executeAll("p")})
}

// A policy reload between a FETCH portal's first run and its next Execute.
func TestAttackFetchPortalAfterAPolicyReload(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
	r.send(q("BEGIN"))
	r.send(q("DECLARE c CURSOR FOR " + ibans))
	if out := r.send(&pgproto3.Parse{Name: "f", Query: "FETCH ALL FROM c"}, &pgproto3.Bind{DestinationPortal: "pf", PreparedStatement: "f"},
		&pgproto3.Execute{Portal: "pf", MaxRows: 1}, &pgproto3.Sync{}); len(out.errors) > 0 || out.rows != 1 {
		t.Fatalf("first row under invoicing: %d rows, errors %v", out.rows, out.errors)
	}
	r.send(q("CLOSE c"))
	w.addRules(t, "p, finance, invoicing, customer_financial, read, deny")
	attack(t, r, ibanMarker, []step{executeAll("pf")})
}

// A FETCH portal's Bind decided what its cursor held then under the purpose
// in force; the cursor declared again under another purpose over what the
// first may not read, and the purpose switched back, must not meet that
// decision again.
func TestAttackFetchPortalOverACursorDeclaredUnderAnotherPurpose(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	cases := []struct {
		name  string
		fetch step
	}{
		{"Execute", executeAll("pf")},
		{"SQL FETCH", step{q("FETCH ALL FROM pf")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
			attack(t, r, "4200", []step{{q("BEGIN")}, {q("DECLARE c CURSOR FOR SELECT 'harmless'")},
				{&pgproto3.Parse{Name: "f", Query: "FETCH ALL FROM c"}, &pgproto3.Bind{DestinationPortal: "pf", PreparedStatement: "f"}, &pgproto3.Sync{}},
				{q("CLOSE c")}, {q(toReporting)}, {q("DECLARE c CURSOR FOR SELECT gross_monthly::text FROM hr.salaries")},
				{q("SET pgguard.purpose = 'invoicing'")}, c.fetch})
		})
	}
}

// A function the policy allows may open a cursor under a name its caller
// passes. Given the empty name, the unnamed portal's, PostgreSQL picks a
// name of its own: an Execute of the unnamed portal never reads the
// function's rows, also in a session that bound the unnamed portal before
// (whose record pgguard keeps without a definition).
func TestAttackUnnamedPortalOpenedByAFunction(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", `CREATE OR REPLACE FUNCTION public.pgg_open_named(c refcursor) RETURNS refcursor LANGUAGE plpgsql AS
		$$ BEGIN OPEN c FOR SELECT iban FROM crm.customers; RETURN c; END $$;
		GRANT EXECUTE ON FUNCTION public.pgg_open_named(refcursor) TO PUBLIC`)
	w.addRules(t, "p, finance, invoicing, function:public.pgg_open_named, execute, allow")
	named := func(portal, sql string) step {
		return step{&pgproto3.Parse{Name: portal, Query: sql}, &pgproto3.Bind{DestinationPortal: portal, PreparedStatement: portal},
			&pgproto3.Execute{Portal: portal}, &pgproto3.Sync{}}
	}
	for _, before := range []bool{false, true} {
		t.Run(fmt.Sprintf("unnamed portal bound before: %v", before), func(t *testing.T) {
			r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
			if before {
				r.send(extended("", "SELECT 1")...)
				r.send(&pgproto3.Sync{})
			}
			attack(t, r, ibanMarker, []step{{q("BEGIN")}, named("o", "SELECT public.pgg_open_named('')"),
				named("s", toReporting), executeAll("")})
		})
	}
}

// A cursor declared WITH HOLD runs its query to the end when its
// transaction commits, to keep its rows: a function the policy allows in
// it runs then, not only at FETCH, and may move the search_path.
func TestAttackHoldCursorRunsItsCodeAtCommit(t *testing.T) {
	w := decoyWorld(t)
	w.pg.MustExec(t, "postgres", switchFuncDDL)
	w.addRules(t, "p, sales, *, function:public.pgg_switch, execute, allow")
	hold := "DECLARE c CURSOR WITH HOLD FOR SELECT public.pgg_switch('x')"
	cases := []struct {
		name  string
		steps []step
	}{
		{"COMMIT and a read in one message", []step{{q("BEGIN")}, {q(hold)}, {q("COMMIT; " + salaries)}}},
		{"COMMIT and a read, pipelined", []step{{q("BEGIN")}, {q(hold)}, {q("COMMIT"), q(salaries)}}},
		{"outside a block, a read pipelined", []step{{q(hold), q(salaries)}}},
		{"outside a block, then a read", []step{{q(hold)}, {q(salaries)}}},
		{"through a portal, a read in its segment", []step{append(append(append(step{}, extended("", hold)...), extended("", salaries)...), &pgproto3.Sync{})}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			attack(t, w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy"), salaryMarker, c.steps)
		})
	}
	// Without the cursor, the read reaches the (empty) decoy.
	r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy")
	if out := r.send(q(salaries)); len(out.errors) > 0 {
		t.Fatalf("read on the decoy path: %d rows, errors %v", out.rows, out.errors)
	}
}

// A FETCH portal bound over a harmless cursor runs whatever the cursor
// holds when it runs: declared again over a function the policy allows,
// the function moves the search_path at that Execute.
func TestAttackFetchPortalOverACursorDeclaredAgainOverCode(t *testing.T) {
	w := decoyWorld(t)
	w.pg.MustExec(t, "postgres", switchFuncDDL)
	w.addRules(t, "p, sales, *, function:public.pgg_switch, execute, allow")
	setUp := []step{{q("BEGIN")}, {q("DECLARE c CURSOR FOR SELECT 'harmless'")},
		{&pgproto3.Parse{Name: "f", Query: "FETCH ALL FROM c"}, &pgproto3.Bind{DestinationPortal: "pf", PreparedStatement: "f"}, &pgproto3.Sync{}},
		{q("CLOSE c")}, {q("DECLARE c CURSOR FOR SELECT public.pgg_switch('x')")}}
	cases := []struct {
		name  string
		steps []step
	}{
		{"a read in the Execute's segment", []step{append(append(step{&pgproto3.Execute{Portal: "pf"}}, extended("", salaries)...), &pgproto3.Sync{})}},
		{"a query pipelined after its Sync", []step{{&pgproto3.Execute{Portal: "pf"}, &pgproto3.Sync{}, q(salaries)}}},
		{"an SQL FETCH of it and a read in one message", []step{{q("FETCH ALL FROM pf; " + salaries)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			attack(t, w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy"), salaryMarker, append(slices.Clone(setUp), c.steps...))
		})
	}
	// Its first Execute skipped after an error, before the cursor was
	// declared again: the next Execute is its first run.
	t.Run("first Execute skipped", func(t *testing.T) {
		attack(t, w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy"), salaryMarker, []step{
			{q("BEGIN")}, {q("DECLARE c CURSOR FOR SELECT 'harmless'")},
			{&pgproto3.Parse{Name: "f", Query: "FETCH ALL FROM c"}, &pgproto3.Bind{DestinationPortal: "pf", PreparedStatement: "f"}, &pgproto3.Sync{}},
			{q("SAVEPOINT a")}, {&pgproto3.Parse{Name: "z", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "z"}, &pgproto3.Execute{},
				&pgproto3.Execute{Portal: "pf"}, &pgproto3.Sync{}},
			{q("ROLLBACK TO a")}, {q("CLOSE c")}, {q("DECLARE c CURSOR FOR SELECT public.pgg_switch('x')")},
			append(append(step{&pgproto3.Execute{Portal: "pf"}}, extended("", salaries)...), &pgproto3.Sync{})})
	})
}

// A portal bound from an EXECUTE parsed through the protocol runs the
// prepared statement its name holds when the portal runs, not when it was
// bound: one prepared again in between, under another purpose, over what
// the purpose in force may not read.
func TestAttackExecutePortalRunsWhatItsNameHoldsAtExecute(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
	attack(t, r, "4200", []step{{q("PREPARE x AS SELECT 'harmless'")}, {q("BEGIN")},
		{&pgproto3.Parse{Name: "e", Query: "EXECUTE x"}, &pgproto3.Bind{DestinationPortal: "pe", PreparedStatement: "e"}, &pgproto3.Sync{}},
		{q("DEALLOCATE x")}, {q(toReporting)}, {q("PREPARE x AS SELECT gross_monthly::text FROM hr.salaries")},
		{q("SET pgguard.purpose = 'invoicing'")}, executeAll("pe")})
}

// The same portal, with the statement prepared again in between as one
// that copies IBANs into a temporary table: what it copies must reach the
// table's record, or the table is read under any purpose afterwards.
func TestAttackExecutePortalFillsATemporaryTable(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
	for _, s := range []step{{q("CREATE TEMP TABLE pgg_exec_tmp (v text)")}, {q("PREPARE x AS SELECT 'harmless'")}, {q("BEGIN")},
		{&pgproto3.Parse{Name: "e", Query: "EXECUTE x"}, &pgproto3.Bind{DestinationPortal: "pe", PreparedStatement: "e"}, &pgproto3.Sync{}},
		{q("DEALLOCATE x")}, {q("PREPARE x AS INSERT INTO pgg_exec_tmp SELECT iban FROM crm.customers")},
		executeAll("pe"), {q("COMMIT")}} {
		r.send(s...)
	}
	out := r.send(q(toReporting), q("SELECT v FROM pgg_exec_tmp"))
	for _, v := range out.all {
		if strings.Contains(v, ibanMarker) {
			t.Fatalf("%q came back under financial_reporting (errors %v)", v, out.errors)
		}
	}
	if out.lastErr != "42501" {
		t.Fatalf("want the read of the filled table refused (42501), got %d rows, errors %v", out.lastRows, out.errors)
	}
}
