package guard_test

import (
	"strings"
	"testing"

	"github.com/pgguard/pgguard/alert"
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
