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
