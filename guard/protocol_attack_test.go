package guard_test

// An insider's attacks on the extended protocol and on what pgguard keeps
// by name: cursors, portals and prepared statements whose definition,
// removal or effect the server did not carry out as pgguard assumed.
// Each case says in one line what it tries. finance_app may read
// customers' IBANs for invoicing, never for financial reporting.

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/alert"
)

const (
	ibans       = "SELECT iban FROM crm.customers"
	toReporting = "SET pgguard.purpose = 'financial_reporting'"
	ibanMarker  = "NL00BANK"
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
