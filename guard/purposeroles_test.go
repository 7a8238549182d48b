package guard_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/grants"
	"github.com/pgguard/pgguard/guard"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
)

// The reads the purpose roles decide for sales_app: the email of customers
// is allowed for order_fulfilment (and its child shipping), for no other
// purpose and not without one.
const (
	email     = "SELECT email FROM crm.customers"
	fulfil    = "/*purpose='order_fulfilment'*/"
	newsletts = "/*purpose='newsletter'*/"
)

// purposeWorld is a world whose database holds the shipped policy's
// purpose roles, with the logins NOINHERIT members, and whose pgguard
// switches roles (--purpose-roles) with its analysis blinded: whatever
// PostgreSQL refuses, it refuses on the role pgguard put the session in.
func purposeWorld(t testing.TB, eventLoops int) *world {
	w := purposeWorldSeeing(t, eventLoops)
	guard.BlindForTest(w.guard)
	return w
}

// purposeWorldSeeing is purposeWorld with pgguard's analysis on.
func purposeWorldSeeing(t testing.TB, eventLoops int) *world {
	t.Helper()
	w := newWorld(t, alert.ModeEnforce, func(g *guard.Config, p *proxy.Config) {
		g.PurposeRole = grants.PurposeRoleFunc("")
		p.EventLoops = eventLoops
	})
	ctx := context.Background()
	super, err := pgx.Connect(ctx, w.pg.URL(pgtest.Superuser, "", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(ctx)
	snap, err := catalog.Dialer(w.pg.URL(pgtest.Superuser, "", "postgres"))(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := grants.Compile(w.engine.Policy(), snap, grants.Options{PurposeRoles: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Apply(ctx, super); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Back to the world the other tests expect: every department may
		// read and write everything, and pgguard alone keeps them apart.
		var b strings.Builder
		for _, u := range departmentUsers {
			b.WriteString("ALTER ROLE " + u + " INHERIT;\n")
			for _, d := range plan.Departments {
				b.WriteString("REVOKE " + d.Role + " FROM " + u + ";\n")
			}
			for _, p := range plan.Purposes {
				b.WriteString("REVOKE " + pgx.Identifier{p.Role}.Sanitize() + " FROM " + u + ";\n")
			}
			b.WriteString("GRANT USAGE ON SCHEMA crm, hr TO " + u + "; GRANT ALL ON ALL TABLES IN SCHEMA crm, hr, public TO " + u + ";\n")
		}
		w.pg.MustExec(t, "postgres", b.String())
	})
	return w
}

func roleOf(t testing.TB, w *world, user, purpose string) string {
	t.Helper()
	role, ok := grants.NewNamer(w.engine.Policy(), "").Role(user, purpose)
	if !ok {
		t.Fatalf("%s has no purpose role", user)
	}
	return role
}

// expectRefusedByDatabase fails unless PostgreSQL itself refused with 42501.
func expectRefusedByDatabase(t *testing.T, err error, what string) {
	t.Helper()
	pe := pgErr(t, err)
	if pe.Code != "42501" || strings.HasPrefix(pe.Message, "pgguard:") {
		t.Fatalf("%s: want PostgreSQL's own 42501, got %s %q", what, pe.Code, pe.Message)
	}
}

// expectRefusedByPgguard fails unless pgguard refused with 42501.
func expectRefusedByPgguard(t *testing.T, err error, what string) {
	t.Helper()
	pe := pgErr(t, err)
	if pe.Code != "42501" || !strings.HasPrefix(pe.Message, "pgguard:") {
		t.Fatalf("%s: want pgguard's 42501, got %s %q", what, pe.Code, pe.Message)
	}
}

func currentUser(t *testing.T, conn *pgx.Conn, comment string) string {
	t.Helper()
	var u string
	if err := conn.QueryRow(context.Background(), "SELECT current_user "+comment).Scan(&u); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestPurposeRolesSwitchTheRole: the purpose declared by comment, by SET
// and by the startup option each put the session in that purpose's role,
// so that PostgreSQL refuses what the purpose does not allow, with the
// analysis off; on both relays.
func TestPurposeRolesSwitchTheRole(t *testing.T) {
	for name, loops := range map[string]int{"event loop": 1, "pumps": -1} {
		t.Run(name, func(t *testing.T) {
			w := purposeWorld(t, loops)
			fulfilRole, noneRole := roleOf(t, w, "sales_app", "order_fulfilment"), roleOf(t, w, "sales_app", "")

			// Startup option.
			conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
			mustExec(t, conn, email)
			if u := currentUser(t, conn, ""); u != fulfilRole {
				t.Fatalf("current_user %s, want %s", u, fulfilRole)
			}
			expectRefusedByDatabase(t, execSQL(conn, "SELECT iban FROM crm.customers"), "iban under order_fulfilment")
			events, _ := w.hook.waitFor(t, 1)
			if events[0]["event"] != "query_blocked_by_database" {
				t.Fatalf("alert %v", events[0])
			}

			// Comment: for that statement alone.
			conn = w.connect(t, "sales_app", "")
			expectRefusedByDatabase(t, execSQL(conn, email), "email without a purpose")
			mustExec(t, conn, email+" "+fulfil)
			mustExec(t, conn, fulfil+" "+email)
			expectRefusedByDatabase(t, execSQL(conn, email), "email without a purpose, after a comment")
			expectRefusedByDatabase(t, execSQL(conn, email+" "+newsletts), "email under newsletter")
			if u := currentUser(t, conn, ""); u != noneRole {
				t.Fatalf("current_user %s, want %s", u, noneRole)
			}

			// SET, alone and followed by the statement in one message.
			mustExec(t, conn, "SET pgguard.purpose = 'order_fulfilment'")
			mustExec(t, conn, email)
			mustExec(t, conn, "SET pgguard.purpose = 'newsletter'")
			expectRefusedByDatabase(t, execSQL(conn, email), "email after SET newsletter")
			mustExec(t, conn, "SET pgguard.purpose = 'shipping'; "+email)
			mustExec(t, conn, "RESET pgguard.purpose")
			expectRefusedByDatabase(t, execSQL(conn, email), "email after RESET")
			mustExec(t, conn, "BEGIN; SET LOCAL pgguard.purpose = 'order_fulfilment'; "+email+"; COMMIT")
			expectRefusedByDatabase(t, execSQL(conn, email), "email after the SET LOCAL's transaction")

			// DISCARD ALL returns to the login's role; the next statement
			// switches again.
			conn = w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
			mustExec(t, conn, email)
			mustExec(t, conn, "DISCARD ALL")
			mustExec(t, conn, email)

			// Two purposes in one message need two roles: refused.
			expectRefusedByPgguard(t, execSQL(conn, email+" "+fulfil+"; SELECT 1 "+newsletts), "two purposes in one message")
			// In one pipeline segment too (pgx sends a batch before one Sync).
			b := &pgx.Batch{}
			b.Queue("SELECT 1 " + fulfil)
			b.Queue(email + " " + newsletts)
			br := conn.SendBatch(context.Background(), b)
			if _, err := br.Exec(); err != nil {
				t.Fatalf("first of the batch: %v", err)
			}
			_, err := br.Exec()
			_ = br.Close()
			expectRefusedByPgguard(t, err, "second purpose in one pipeline segment")
			mustExec(t, conn, email)
		})
	}
}

// TestPurposeRolesRefuseClientRoleChanges: a client may not change role
// itself, in any spelling, nor start its session in another role.
func TestPurposeRolesRefuseClientRoleChanges(t *testing.T) {
	w := purposeWorld(t, 0)
	other := pgx.Identifier{roleOf(t, w, "sales_app", "order_fulfilment")}.Sanitize()
	conn := w.connect(t, "sales_app", "")
	for _, sql := range []string{
		"SET ROLE " + other,
		"SET SESSION ROLE " + other,
		"SET LOCAL ROLE " + other,
		"RESET ROLE",
		"SET ROLE NONE",
		"SET SESSION AUTHORIZATION hr_app",
		"SET SESSION AUTHORIZATION DEFAULT",
		"RESET SESSION AUTHORIZATION",
		"SELECT set_config('role', '" + strings.Trim(other, `"`) + "', false)",
		"SELECT set_config('session_authorization', 'hr_app', false)",
		"SELECT 1; SET ROLE " + other,
		"SELECT (SELECT set_config('role', 'hr_app', false))",
	} {
		expectRefusedByPgguard(t, execSQL(conn, sql), sql)
	}
	// Through the extended protocol as well.
	if _, err := conn.Exec(context.Background(), "SELECT set_config('role', $1, false)", strings.Trim(other, `"`)); err == nil {
		t.Fatal("set_config('role', $1) with a parameter was allowed")
	}
	// A session that starts in another role is refused whatever it sends.
	started := w.connect(t, "sales_app", "-c role="+strings.Trim(other, `"`))
	expectRefusedByPgguard(t, execSQL(started, "SELECT 1"), "a session started in another role")
	// The analysis is blind: without purpose roles the same refusals hold
	// (a client's role change escapes the department ceiling too).
	plain := newWorld(t, alert.ModeEnforce)
	pconn := plain.connect(t, "sales_app", "")
	expectRefusedByPgguard(t, execSQL(pconn, "SET ROLE hr_app"), "SET ROLE without purpose roles")
}

// TestPurposeRolesRollbackUndoesTheSwitch: a SET ROLE pgguard ran inside a
// transaction is rolled back with it; pgguard notices (the state is read
// again) and switches again, rather than assume the role it set.
func TestPurposeRolesRollbackUndoesTheSwitch(t *testing.T) {
	w := purposeWorld(t, 0)
	conn := w.connect(t, "sales_app", "")
	mustExec(t, conn, "BEGIN")
	if u := currentUser(t, conn, fulfil); u != roleOf(t, w, "sales_app", "order_fulfilment") {
		t.Fatalf("in the transaction: current_user %s", u)
	}
	mustExec(t, conn, "ROLLBACK")
	// The server is back in the login's role, which holds nothing: the
	// next statement works only if pgguard switches again.
	mustExec(t, conn, email+" "+fulfil)

	// A savepoint rolled back to: the session is in order_fulfilment's
	// role; inside the savepoint pgguard switches to the empty purpose's,
	// which the rollback undoes. A read of email without a purpose must
	// then not run in order_fulfilment's role.
	mustExec(t, conn, "BEGIN")
	mustExec(t, conn, "SAVEPOINT a")
	mustExec(t, conn, "SELECT 1")
	mustExec(t, conn, "ROLLBACK TO SAVEPOINT a")
	expectRefusedByDatabase(t, execSQL(conn, email), "email without a purpose after ROLLBACK TO")
	mustExec(t, conn, "ROLLBACK")
	mustExec(t, conn, email+" "+fulfil)
}

// TestSoundnessPurposeRoleSwitching: raw pipelines against the role
// switching, with the analysis blinded, so that only the role pgguard puts
// the session in stands between sales_app and customers' email addresses,
// which only order_fulfilment's role may read. Each pipeline tries to make
// the last statement, a read of email without a purpose, run in that role.
func TestSoundnessPurposeRoleSwitching(t *testing.T) {
	sync := &pgproto3.Sync{}
	ext := func(name, sql string) []pgproto3.FrontendMessage { return extended(name, sql) }
	seq := func(parts ...[]pgproto3.FrontendMessage) []pgproto3.FrontendMessage {
		var out []pgproto3.FrontendMessage
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	one := func(m ...pgproto3.FrontendMessage) []pgproto3.FrontendMessage { return m }
	attacks := map[string][]pgproto3.FrontendMessage{
		"simple queries back to back":              {q("SELECT 1 " + fulfil), q(email)},
		"extended segments back to back":           seq(ext("", "SELECT 1 "+fulfil), one(sync), ext("", email), one(sync)),
		"two purposes in one segment":              seq(ext("a", "SELECT 1 WHERE false "+fulfil), ext("b", email), one(sync)),
		"comment purpose then none in one message": {q("SELECT 1 WHERE false " + fulfil + "; " + email)},
		"switch undone by ROLLBACK":                {q("SELECT 1 " + fulfil), q("BEGIN"), q("SELECT 1"), q("ROLLBACK"), q(email)},
		"switch undone by ROLLBACK TO SAVEPOINT": {q("SELECT 1 " + fulfil), q("BEGIN"), q("SAVEPOINT s"), q("SELECT 1"),
			q("ROLLBACK TO SAVEPOINT s"), q(email)},
		"switch undone by an error's rollback": {q("SELECT 1 " + fulfil), q("BEGIN"), q("SELECT 1"), q("SELECT 1/0"), q("ROLLBACK"), q(email)},
		"switch in a failed block":             {q("SELECT 1 " + fulfil), q("BEGIN"), q("SELECT 1/0"), q("SELECT 1"), q("ROLLBACK"), q(email)},
		"RESET ALL in the same message":        {q("SELECT 1 " + fulfil), q("RESET ALL; " + email)},
		"role change hidden after a statement": {q("SELECT 1 " + fulfil), q("SELECT 1; RESET ROLE; " + email)},
		"SET LOCAL purpose rolled back":        {q("BEGIN; SET LOCAL pgguard.purpose = 'order_fulfilment'; SELECT 1"), q("ROLLBACK"), q(email)},
		"SET purpose in a failed block":        {q("BEGIN"), q("SELECT 1/0"), q("SET pgguard.purpose = 'order_fulfilment'"), q("ROLLBACK"), q(email)},
		"prepared in one role, bound in another": seq(one(q("SELECT 1 "+fulfil)), one(&pgproto3.Parse{Name: "e", Query: email}, sync),
			one(&pgproto3.Bind{PreparedStatement: "e"}, &pgproto3.Execute{}, sync)),
		// A portal bound while the session is in one role and executed
		// after a switch to another: PostgreSQL checks an UPDATE's
		// privileges when it runs, in the role then in force.
		"portal executed after a switch": seq(one(q("BEGIN")),
			one(&pgproto3.Parse{Name: "u", Query: "UPDATE crm.orders SET status = status WHERE false RETURNING status"},
				&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "u"}, sync),
			one(q("SELECT 1 "+fulfil)),
			one(&pgproto3.Execute{Portal: "p"}, sync)),
	}
	w := purposeWorld(t, 0)
	for name, pipeline := range attacks {
		t.Run(name, func(t *testing.T) {
			r := w.raw(t, "sales_app", "")
			out := r.send(pipeline...)
			if out.lastRows > 0 || out.lastErr != "42501" {
				t.Fatalf("the last statement ran in a role that may read it: rows %d, errors %v", out.lastRows, out.errors)
			}
		})
	}
}
