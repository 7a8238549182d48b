package guard_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
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
func purposeWorld(t *testing.T, eventLoops int) *world {
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
		for _, u := range departmentUsers {
			w.pg.MustExec(t, "postgres", "ALTER ROLE "+u+" INHERIT")
			for _, d := range plan.Departments {
				w.pg.MustExec(t, "postgres", "REVOKE "+d.Role+" FROM "+u)
			}
			for _, p := range plan.Purposes {
				w.pg.MustExec(t, "postgres", "REVOKE "+pgx.Identifier{p.Role}.Sanitize()+" FROM "+u)
			}
			w.pg.MustExec(t, "postgres", "GRANT USAGE ON SCHEMA crm, hr TO "+u+"; GRANT ALL ON ALL TABLES IN SCHEMA crm, hr, public TO "+u)
		}
	})
	guard.BlindForTest(w.guard)
	return w
}

func roleOf(t *testing.T, w *world, user, purpose string) string {
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
