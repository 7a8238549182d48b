package guard_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/alert"
)

// TestInvalidStatementsGetTheServersErrors: a statement PostgreSQL itself
// refuses gets, through pgguard, the SQLSTATE, message and position it gets
// directly, and raises no alert.
func TestInvalidStatementsGetTheServersErrors(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	ctx := context.Background()
	direct, err := pgx.Connect(ctx, w.pg.URL("hr_app", password, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(ctx)
	through := w.connect(t, "hr_app", "-c pgguard.purpose=personnel_admin")
	for _, sql := range []string{
		"SELEC first_name FROM hr.employees",
		"SELECT first_name FROM hr.employees WHERE",
		"SELECT first_name FROM hr.employes",
		"SELECT first_name FROM employees",
		"SELECT frist_name FROM hr.employees",
		"SELECT e.first_name FROM hr.employees x",
		"SELECT 'é', nosuch FROM hr.employees",
		"INSERT INTO hr.nosuch VALUES (1)",
		"EXECUTE nosuch",
	} {
		want := pgErr(t, execSQL(direct, sql))
		got := pgErr(t, execSQL(through, sql))
		if got.Code != want.Code || got.Message != want.Message || got.Position != want.Position {
			t.Errorf("%s:\n through pgguard %s %q at %d\n directly       %s %q at %d",
				sql, got.Code, got.Message, got.Position, want.Code, want.Message, want.Position)
		}
	}
	// Bind of a statement that was never prepared.
	for _, conn := range []*pgx.Conn{direct, through} {
		res := conn.PgConn().ExecPrepared(ctx, "never_prepared", nil, nil, nil).Read()
		pe := pgErr(t, res.Err)
		if pe.Code != "26000" || pe.Message != `prepared statement "never_prepared" does not exist` {
			t.Errorf("Bind of an unknown statement: %s %q", pe.Code, pe.Message)
		}
	}
	// One real denial: its alert is the only one.
	expectDenied(t, execSQL(through, "SELECT * FROM hr.sick_leave"), "")
	events, _ := w.hook.waitFor(t, 1)
	time.Sleep(200 * time.Millisecond)
	w.hook.mu.Lock()
	n := len(w.hook.events)
	w.hook.mu.Unlock()
	if n != 1 || len(events) != 1 {
		t.Errorf("%d alerts; want only the denial's: statements the server refuses anyway raise none", n)
	}
}

// TestProceduresAndSessionViews: CALL takes the execute rules functions
// take, and pg_stat_activity is refused column by column, as connection
// pools' health checks need.
func TestProceduresAndSessionViews(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", `CREATE OR REPLACE PROCEDURE public.pgg_touch(n int) LANGUAGE sql AS $$ SELECT n $$;
		GRANT EXECUTE ON PROCEDURE public.pgg_touch(int) TO PUBLIC`)
	w.addRules(t, "p, sales, *, function:public.pgg_touch, execute, allow")
	sales := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	mustExec(t, sales, "CALL public.pgg_touch(1)")
	// The argument is read like any other expression.
	expectDenied(t, execSQL(sales, "CALL public.pgg_touch((SELECT length(iban) FROM crm.customers LIMIT 1))"), "crm.customers.iban")
	marketing := w.connect(t, "marketing_app", "-c pgguard.purpose=newsletter")
	expectDenied(t, execSQL(marketing, "CALL public.pgg_touch(1)"), "")

	for _, sql := range []string{
		"SELECT pid FROM pg_stat_activity WHERE state = 'idle'",
		"SELECT count(*) FROM pg_stat_activity",
		"SELECT pid, usename, datname, state, backend_start FROM pg_catalog.pg_stat_activity",
	} {
		mustExec(t, sales, sql)
	}
	for _, sql := range []string{
		"SELECT query FROM pg_stat_activity",
		"SELECT pid FROM pg_stat_activity WHERE query LIKE '%iban%'",
		"SELECT client_addr FROM pg_stat_activity",
		"SELECT * FROM pg_stat_activity",
	} {
		expectDenied(t, execSQL(sales, sql), "")
	}
}

// TestStandardConformingStringsOff: with standard_conforming_strings off, a
// statement without a backslash is read the same by the server as by
// pgguard and is decided as usual; one with a backslash stays refused; and
// the session can turn the setting back on.
func TestStandardConformingStringsOff(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	through := w.connect(t, "hr_app", "-c pgguard.purpose=personnel_admin")
	mustExec(t, through, "SET standard_conforming_strings = off")
	simple := func(sql string) error {
		_, err := through.PgConn().Exec(context.Background(), sql).ReadAll()
		return err
	}
	if err := simple("SELECT count(*) FROM hr.employees WHERE first_name <> 'it''s'"); err != nil {
		t.Fatalf("statement without a backslash: %v", err)
	}
	// For the server the string runs to the last quote: bsn would be read
	// where pgguard sees a string.
	expectDenied(t, simple(`SELECT 'a\', bsn FROM hr.employees --'`), "")
	if err := simple("SET standard_conforming_strings = on"); err != nil {
		t.Fatal(err)
	}
	if err := simple(`SELECT length('a\')`); err != nil {
		t.Fatalf("backslash after turning the setting on: %v", err)
	}
}

// TestFailedBlockAnswersAsPostgreSQL: in a failed transaction block the
// state query fails too, and a statement after it gets what PostgreSQL
// itself answers (25P02), by either protocol, not a pgguard refusal; the
// session recovers with ROLLBACK.
func TestFailedBlockAnswersAsPostgreSQL(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	ctx := context.Background()
	conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	simple := pgx.QueryExecModeSimpleProtocol
	mustExec(t, conn, "BEGIN")
	if _, err := conn.Exec(ctx, "SELECT 1/0", simple); err == nil {
		t.Fatal("1/0 did not fail")
	}
	// A barrier whose state query fails: the server refuses both.
	_, err := conn.Exec(ctx, "SET search_path = hr", simple)
	const aborted = "current transaction is aborted, commands ignored until end of transaction block"
	expectServerError(t, err, "25P02", aborted, 0)
	for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeDescribeExec} {
		_, err := conn.Exec(ctx, "SELECT email FROM crm.customers", mode)
		expectServerError(t, err, "25P02", aborted, 0)
	}
	mustExec(t, conn, "ROLLBACK")
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(email) FROM crm.customers").Scan(&n); err != nil || n == 0 {
		t.Fatalf("after ROLLBACK: %d %v", n, err)
	}
	// The one alert is for a real refusal, sent last.
	_, err = conn.Exec(ctx, "SELECT iban FROM crm.customers")
	expectDenied(t, err, "iban")
	events, _ := w.hook.waitFor(t, 1)
	if len(events) != 1 || !strings.Contains(fmt.Sprint(events[0]["statement"]), "iban") {
		t.Errorf("alerts: %v", events)
	}
}
