package guard_test

// An insider's attacks: a user of one department, with the TEMP privilege
// and a raw socket, tries to read another department's classified columns
// (or data outside the purpose it declared) through pgguard in enforce
// mode. Each case says in one line what it tries.

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
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
