package guard_test

// Attacks on pgguard's view of the session, one family at a time: each
// tries to make pgguard decide a statement on a state the server does not
// have. The decoy schema holds an unclassified table named like the HR
// one, so a statement pgguard resolves to decoy.salaries is allowed while
// the server, in another state, reads hr.salaries.

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/guard"
	"github.com/pgguard/pgguard/proxy"
)

const salaries = "SELECT gross_monthly FROM salaries"

func decoyWorld(t *testing.T) *world {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", `CREATE SCHEMA IF NOT EXISTS decoy;
		CREATE TABLE IF NOT EXISTS decoy.salaries (gross_monthly numeric);
		GRANT USAGE ON SCHEMA decoy TO sales_app; GRANT SELECT ON decoy.salaries TO sales_app`)
	return w
}

// raw is a session driven message by message: a client that pipelines
// what it likes in one write.
type raw struct {
	t    *testing.T
	fe   *pgproto3.Frontend
	conn net.Conn
}

func (w *world) raw(t *testing.T, user, options string) *raw {
	t.Helper()
	cfg, err := pgconn.ParseConfig("postgres://" + user + ":" + password + "@" + w.addr + "/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	if options != "" {
		cfg.RuntimeParams["options"] = options
	}
	pc, err := pgconn.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	h, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Conn.Close() })
	_ = h.Conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &raw{t: t, fe: h.Frontend, conn: h.Conn}
}

// outcome is what the server (or pgguard) answered to one pipeline.
type outcome struct {
	errors   []string // SQLSTATEs in order
	rows     int
	lastRows int // rows of the last segment
	lastErr  string
	values   string   // the first column of the last row
	all      []string // the first column of every row
}

// send writes msgs in one go and reads until as many ReadyForQuery as the
// pipeline asks for.
func (r *raw) send(msgs ...pgproto3.FrontendMessage) outcome {
	r.t.Helper()
	ready := r.write(msgs...)
	var out outcome
	for ready > 0 {
		m, err := r.fe.Receive()
		if err != nil {
			r.t.Fatalf("receive: %v", err)
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			out.errors = append(out.errors, m.Code)
			out.lastErr = m.Code
		case *pgproto3.DataRow:
			out.rows++
			out.lastRows++
			if len(m.Values) > 0 {
				out.values = string(m.Values[0])
				out.all = append(out.all, out.values)
			}
		case *pgproto3.ReadyForQuery:
			if ready--; ready > 0 {
				out.lastRows, out.lastErr = 0, ""
			}
		}
	}
	return out
}

// write sends msgs in one write and returns how many ReadyForQuery they
// ask for.
func (r *raw) write(msgs ...pgproto3.FrontendMessage) int {
	r.t.Helper()
	ready := 0
	for _, m := range msgs {
		r.fe.Send(m)
		switch m.(type) {
		case *pgproto3.Query, *pgproto3.Sync:
			ready++
		}
	}
	if err := r.fe.Flush(); err != nil {
		r.t.Fatal(err)
	}
	return ready
}

func q(sql string) *pgproto3.Query { return &pgproto3.Query{String: sql} }

// extended is one statement in the extended protocol, without Sync.
func extended(name, sql string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{
		&pgproto3.Parse{Name: name, Query: sql},
		&pgproto3.Bind{PreparedStatement: name},
		&pgproto3.Execute{},
	}
}

// refused fails the test unless the pipeline's last segment, the read of
// salaries, was refused by pgguard and returned nothing.
func (o outcome) refused(t *testing.T, what string) {
	t.Helper()
	if o.lastRows > 0 {
		t.Fatalf("%s: hr.salaries rows came back (errors %v)", what, o.errors)
	}
	// 42P01: the name resolves nowhere, which pgguard answers as the server.
	if o.lastErr != "42501" && o.lastErr != "42P01" {
		t.Fatalf("%s: want the last statement refused (42501 or 42P01), got errors %v", what, o.errors)
	}
}

func TestSoundnessPipelinedStateChanges(t *testing.T) {
	w := decoyWorld(t)
	cases := []struct {
		name string
		msgs []pgproto3.FrontendMessage
	}{
		{"SET rolled back by an error in its own message", []pgproto3.FrontendMessage{
			q("SET search_path = decoy; SELECT 1/0"), q(salaries)}},
		{"SET in an aborted transaction", []pgproto3.FrontendMessage{
			q("BEGIN"), q("SELECT 1/0"), q("SET search_path = decoy"), q("ROLLBACK"), q(salaries)}},
		{"ROLLBACK TO SAVEPOINT undoes the SET", []pgproto3.FrontendMessage{
			q("BEGIN; SAVEPOINT a; SET search_path = decoy; ROLLBACK TO a"), q(salaries)}},
		{"COMMIT AND CHAIN ends SET LOCAL", []pgproto3.FrontendMessage{
			q("BEGIN; SET LOCAL search_path = decoy; COMMIT AND CHAIN"), q(salaries)}},
		{"ROLLBACK AND CHAIN undoes SET", []pgproto3.FrontendMessage{
			q("BEGIN; SET search_path = decoy; ROLLBACK AND CHAIN"), q(salaries)}},
		{"COMMIT of a failed block rolls back", []pgproto3.FrontendMessage{
			q("BEGIN"), q("SET search_path = decoy"), q("SELECT 1/0"), q("COMMIT"), q(salaries)}},
		{"COMMIT in the middle of one message", []pgproto3.FrontendMessage{
			q("BEGIN; SET LOCAL search_path = decoy; COMMIT; " + salaries)}},
		{"set_config rolled back", []pgproto3.FrontendMessage{
			q("BEGIN"), q("SELECT set_config('search_path', 'decoy', false)"), q("ROLLBACK"), q(salaries)}},
		{"SET x = '' is not RESET", []pgproto3.FrontendMessage{
			q("SET search_path = ''"), q(salaries)}},
		{"extended SET undone by a later error in its segment", append(append(append(
			extended("", "SET search_path = decoy"), extended("", "SELECT 1/0")...), &pgproto3.Sync{}),
			append(extended("", salaries), &pgproto3.Sync{})...)},
		{"DISCARD ALL then the old name", []pgproto3.FrontendMessage{
			q("SET search_path = decoy"), q("BEGIN"), q("SELECT 1/0"), q("DISCARD ALL"), q("ROLLBACK"), q("RESET search_path"), q(salaries)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=hr")
			r.send(tc.msgs...).refused(t, tc.name)
		})
	}
}

func TestSoundnessStartupOptionsAsPostgreSQLReadsThem(t *testing.T) {
	w := decoyWorld(t)
	for _, options := range []string{
		"-c search_path=decoy -c search_path=hr",
		"-c search_path=decoy --search_path=hr",
		"-c search_path=decoy -ec search_path=hr",
		"--search-path=decoy -csearch_path=hr",
	} {
		t.Run(options, func(t *testing.T) {
			r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment "+options)
			r.send(q(salaries)).refused(t, options)
		})
	}
}

func TestSoundnessPreparedStatementsFollowThePath(t *testing.T) {
	w := decoyWorld(t)
	ctx := context.Background()
	conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy")
	pc := conn.PgConn()
	if _, err := pc.Prepare(ctx, "s1", salaries, nil); err != nil {
		t.Fatalf("prepare under decoy: %v", err)
	}
	mustExec(t, conn, "PREPARE p1 AS "+salaries)
	// Under an unchanged path both run.
	if err := pc.ExecPrepared(ctx, "s1", nil, nil, nil).Read().Err; err != nil {
		t.Fatalf("s1 under its own path: %v", err)
	}
	mustExec(t, conn, "EXECUTE p1")
	// The server re-plans both under the new path: hr.salaries.
	mustExec(t, conn, "SET search_path = hr")
	expectDenied(t, pc.ExecPrepared(ctx, "s1", nil, nil, nil).Read().Err, "hr.salaries.gross_monthly")
	expectDenied(t, execSQL(conn, "EXECUTE p1"), "hr.salaries.gross_monthly")
}

func TestSoundnessVerdictCacheKeepsSessionsApart(t *testing.T) {
	w := decoyWorld(t)
	ctx := context.Background()
	decoy := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy")
	hr := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=hr")
	for i := 0; i < 3; i++ {
		if _, err := decoy.Exec(ctx, salaries, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("decoy session: %v", err)
		}
		expectDenied(t, execSQL(hr, salaries), "hr.salaries.gross_monthly")
		// A session that reaches the decoy's state through its own history
		// shares its verdicts, and one that leaves it does not.
		mustExec(t, hr, "SET search_path = decoy")
		if _, err := hr.Exec(ctx, salaries, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("after SET search_path = decoy: %v", err)
		}
		mustExec(t, hr, "RESET search_path; SET search_path = hr")
	}
}

// The legitimate forms stay allowed: setting the purpose per transaction,
// pipelined, and statements after it in the same message.
func TestSoundnessLegitimateSessionChangesStayAllowed(t *testing.T) {
	w := decoyWorld(t)
	r := w.raw(t, "sales_app", "")
	out := r.send(
		q("BEGIN; SET LOCAL pgguard.purpose = 'order_fulfilment'; SELECT email FROM crm.customers; COMMIT"),
		q("SET pgguard.purpose = 'order_fulfilment'"), q("SELECT email FROM crm.customers"),
	)
	if len(out.errors) != 0 || out.rows != 4 {
		t.Fatalf("errors %v, rows %d (want none and 4)", out.errors, out.rows)
	}
	msgs := append(extended("", "SET pgguard.purpose = 'shipping'"), extended("", "SELECT email FROM crm.customers")...)
	out = r.send(append(msgs, &pgproto3.Sync{})...)
	if len(out.errors) != 0 || out.rows != 2 {
		t.Fatalf("extended pipeline: errors %v, rows %d", out.errors, out.rows)
	}
}

// In a failed transaction block the state cannot be read; ROLLBACK must
// still get through, in either protocol, and nothing else.
func TestSoundnessFailedBlockLetsOnlyRollbackThrough(t *testing.T) {
	w := decoyWorld(t)
	r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=hr")
	r.send(q("BEGIN"), q("SELECT 1/0"), q("SET search_path = decoy"))
	out := r.send(append(extended("", "ROLLBACK"), &pgproto3.Sync{})...)
	if len(out.errors) != 0 {
		t.Fatalf("extended ROLLBACK in a failed block: %v", out.errors)
	}
	r.send(q(salaries)).refused(t, "after ROLLBACK")
}

// A driver that closes a statement and parses it again under the same name
// in one segment keeps using it: the re-parsed statement is the one the
// server holds.
func TestSoundnessCloseAndReparseKeepsTheStatement(t *testing.T) {
	w := decoyWorld(t)
	r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	sql := "SELECT email FROM crm.customers"
	r.send(&pgproto3.Parse{Name: "s1", Query: sql}, &pgproto3.Sync{})
	r.send(&pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Parse{Name: "s1", Query: sql}, &pgproto3.Sync{})
	out := r.send(&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if len(out.errors) != 0 || out.rows != 2 {
		t.Fatalf("s1 after Close and Parse: errors %v, rows %d", out.errors, out.rows)
	}
}

// Family 6: analysis gaps. Each statement hides a read from the analysis
// in how PostgreSQL names or resolves things: the columns a NATURAL join
// compares, the subscripts of an assignment target, a function that
// functional notation calls instead of selecting a column.
func gapsWorld(t *testing.T) *world {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", `CREATE SCHEMA IF NOT EXISTS gaps;
		CREATE OR REPLACE FUNCTION gaps.email(crm.customers) RETURNS text LANGUAGE sql AS 'SELECT $1.iban';
		CREATE TABLE IF NOT EXISTS gaps.tags (id int PRIMARY KEY, tags text[]);
		GRANT USAGE ON SCHEMA gaps TO sales_app; GRANT ALL ON gaps.tags TO sales_app`)
	return w
}

func TestSoundnessAnalysisGaps(t *testing.T) {
	w := gapsWorld(t)
	conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=gaps,public")
	cases := []struct{ name, sql, column string }{
		{"NATURAL JOIN with a column definition list",
			`SELECT count(*) FROM hr.salaries NATURAL JOIN json_to_record('{"gross_monthly": 4200.00}') AS r(gross_monthly numeric)`,
			"hr.salaries.gross_monthly"},
		{"NATURAL JOIN with a function named by its alias",
			"SELECT count(*) FROM hr.salaries NATURAL JOIN generate_series(4200, 4200) AS gross_monthly", ""},
		{"NATURAL JOIN with a column named by CASE's ELSE",
			`SELECT count(*) FROM hr.salaries NATURAL JOIN
			 (SELECT CASE WHEN false THEN 0 ELSE gross_monthly END FROM (VALUES (4200.00)) AS v(gross_monthly)) q`,
			"hr.salaries.gross_monthly"},
		{"NATURAL JOIN matching a table alias",
			"SELECT count(*) FROM hr.salaries AS s(x, gross) NATURAL JOIN (VALUES (4200.00)) AS v(gross)",
			"hr.salaries.gross_monthly"},
		{"subscript of an INSERT target",
			"INSERT INTO gaps.tags (id, tags[(SELECT length(iban) FROM crm.customers LIMIT 1)]) VALUES (1, 'x')",
			"crm.customers.iban"},
		{"functional notation calling a user function",
			"SELECT email(c) FROM crm.customers c", "gaps.email"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectDenied(t, execSQL(conn, tc.sql), tc.column)
		})
	}
}

// The legitimate forms stay allowed.
func TestSoundnessAnalysisGapsLegitimateFormsStayAllowed(t *testing.T) {
	w := gapsWorld(t)
	conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	for _, sql := range []string{
		"SELECT o.status FROM crm.orders o JOIN crm.customers c USING (id)",
		"SELECT count(*) FROM crm.orders NATURAL JOIN public.notes",
		"SELECT count(*) FROM crm.orders NATURAL JOIN (VALUES (10::bigint)) AS v(id)",
		`INSERT INTO crm.orders (id, customer_id, ordered_at, total_amount, status, shipping_address)
		 VALUES (10, 1, now(), 1, 'new', 'x') ON CONFLICT ON CONSTRAINT orders_pkey DO NOTHING`,
		"SELECT email(c) FROM crm.customers c",
		"UPDATE crm.orders SET status = status WHERE id = 10",
	} {
		mustExec(t, conn, sql)
	}
}

// TestSoundnessFunctionsThatChangeState: a function the policy allows runs
// code pgguard cannot see, which may call set_config or SET. The state is
// read again after it, as after a SET.
func TestSoundnessFunctionsThatChangeState(t *testing.T) {
	w := decoyWorld(t)
	w.pg.MustExec(t, "postgres", `CREATE OR REPLACE FUNCTION public.pgg_switch(text) RETURNS text LANGUAGE plpgsql AS
		$$ BEGIN PERFORM set_config('search_path', 'hr', false); RETURN $1; END $$;
		GRANT EXECUTE ON FUNCTION public.pgg_switch(text) TO PUBLIC`)
	w.addRules(t, "p, sales, *, function:public.pgg_switch, execute, allow")
	call := "SELECT public.pgg_switch('x')"
	cases := []struct {
		name string
		msgs []pgproto3.FrontendMessage
	}{
		{"same message", []pgproto3.FrontendMessage{q(call + "; " + salaries)}},
		{"pipelined", []pgproto3.FrontendMessage{q(call), q(salaries)}},
		{"one extended segment", append(append(extended("", call), extended("", salaries)...), &pgproto3.Sync{})},
		{"extended, then a query", append(append(extended("", call), &pgproto3.Sync{}), q(salaries))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy")
			out := r.send(c.msgs...)
			// In one extended segment the call's own row ('x') comes first.
			if out.lastRows > 0 && out.values != "x" {
				t.Fatalf("hr.salaries rows came back (errors %v)", out.errors)
			}
			if out.lastErr != "42501" {
				t.Fatalf("want the read refused (42501), got errors %v", out.errors)
			}
		})
	}
	// The function itself stays allowed, and so does what follows once
	// the state is read again.
	conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy")
	mustExec(t, conn, call)
	mustExec(t, conn, "SET search_path = decoy")
	mustExec(t, conn, salaries)
}

// The same through the two pumps (as for TLS sessions), where a Bind is
// decided without the event loop's quick path: a prepared statement is
// analysed again under the path the server confirmed after the SET.
func TestSoundnessPreparedStatementsFollowThePathOnPumps(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce, func(_ *guard.Config, pc *proxy.Config) { pc.EventLoops = -1 })
	w.pg.MustExec(t, "postgres", `CREATE SCHEMA IF NOT EXISTS decoy;
		CREATE TABLE IF NOT EXISTS decoy.salaries (gross_monthly numeric);
		GRANT USAGE ON SCHEMA decoy TO sales_app; GRANT SELECT ON decoy.salaries TO sales_app`)
	ctx := context.Background()
	conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path=decoy")
	pc := conn.PgConn()
	if _, err := pc.Prepare(ctx, "s1", salaries, nil); err != nil {
		t.Fatalf("prepare under decoy: %v", err)
	}
	if err := pc.ExecPrepared(ctx, "s1", nil, nil, nil).Read().Err; err != nil {
		t.Fatalf("s1 under its own path: %v", err)
	}
	mustExec(t, conn, "SET search_path = hr")
	expectDenied(t, pc.ExecPrepared(ctx, "s1", nil, nil, nil).Read().Err, "hr.salaries.gross_monthly")
}
