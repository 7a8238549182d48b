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
)

// TestDatabaseRefusalRaisesAnAlert: a statement pgguard lets through that
// PostgreSQL refuses for want of a privilege is a gap in the analysis the
// second lock closed; the security team gets query_blocked_by_database.
func TestDatabaseRefusalRaisesAnAlert(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", "CREATE TABLE IF NOT EXISTS public.pgg_locked (id int, note text); REVOKE ALL ON public.pgg_locked FROM sales_app")
	conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	pe := pgErr(t, execSQL(conn, "SELECT note FROM public.pgg_locked WHERE id = 42"))
	if pe.Code != "42501" || strings.HasPrefix(pe.Message, "pgguard:") {
		t.Fatalf("want PostgreSQL's own 42501, got %s %q", pe.Code, pe.Message)
	}
	events, raw := w.hook.waitFor(t, 1)
	ev := events[0]
	if ev["event"] != "query_blocked_by_database" || ev["user"] != "sales_app" || ev["purpose"] != "order_fulfilment" {
		t.Fatalf("alert %v", ev)
	}
	if st, _ := ev["statement"].(string); !strings.Contains(st, "pgg_locked") || strings.Contains(raw[0], "42 ") {
		t.Fatalf("statement %q (it must be normalized)", ev["statement"])
	}
}

// TestSecondLockHoldsWithoutTheAnalysis: with the policy compiled into the
// database's privileges (pgguard grants) and pgguard's analysis blinded,
// no department reads another's classified columns through pgguard:
// PostgreSQL refuses each attack, and pgguard raises
// query_blocked_by_database for it.
func TestSecondLockHoldsWithoutTheAnalysis(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
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
	plan, err := grants.Compile(w.engine.Policy(), snap, grants.Options{})
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
			for _, d := range plan.Departments {
				w.pg.MustExec(t, "postgres", "REVOKE "+d.Role+" FROM "+u)
			}
			w.pg.MustExec(t, "postgres", "GRANT USAGE ON SCHEMA crm, hr TO "+u+"; GRANT ALL ON ALL TABLES IN SCHEMA crm, hr, public TO "+u)
		}
	})
	guard.BlindForTest(w.guard)
	attacks := []struct{ user, options, sql string }{
		{"sales_app", "-c pgguard.purpose=order_fulfilment", "SELECT gross_monthly FROM hr.salaries"},
		{"sales_app", "-c pgguard.purpose=order_fulfilment", "SELECT iban FROM crm.customers"},
		{"sales_app", "-c pgguard.purpose=order_fulfilment", "SELECT count(*) FROM crm.customers WHERE bsn LIKE '1%'"},
		{"sales_app", "-c pgguard.purpose=order_fulfilment", "SELECT c FROM crm.customers c"},
		{"marketing_app", "-c pgguard.purpose=newsletter", "SELECT birth_date FROM crm.customers"},
		{"marketing_app", "-c pgguard.purpose=newsletter", "SELECT * FROM hr.sick_leave"},
		{"hr_app", "-c pgguard.purpose=personnel_admin", "SELECT iban FROM crm.customers"},
		{"hr_app", "-c pgguard.purpose=personnel_admin", "UPDATE crm.customers SET email = email RETURNING iban"},
		{"support_app", "-c pgguard.purpose=customer_support", "SELECT bank_account FROM hr.salaries"},
	}
	for i, a := range attacks {
		conn := w.connect(t, a.user, a.options)
		pe := pgErr(t, execSQL(conn, a.sql))
		if pe.Code != "42501" || strings.HasPrefix(pe.Message, "pgguard:") {
			t.Fatalf("%s: %s: want PostgreSQL's own refusal, got %s %q", a.user, a.sql, pe.Code, pe.Message)
		}
		events, _ := w.hook.waitFor(t, i+1)
		if ev := events[i]; ev["event"] != "query_blocked_by_database" || ev["user"] != a.user {
			t.Fatalf("%s: alert %v", a.sql, ev)
		}
	}
	// What the policy allows still works.
	sales := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	mustExec(t, sales, "SELECT email, city FROM crm.customers")
}
