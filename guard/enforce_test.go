package guard_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/authz"
	"github.com/rs/zerolog"
)

func pgErr(t *testing.T, err error) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("want a PostgreSQL error, got %v", err)
	}
	return pe
}

// expectDenied checks the documented error: 42501, ERROR, a message that
// starts with pgguard: and names the column, and a hint about purposes.
func expectDenied(t *testing.T, err error, column string) {
	t.Helper()
	pe := pgErr(t, err)
	if pe.Code != "42501" || pe.Severity != "ERROR" || !strings.HasPrefix(pe.Message, "pgguard:") {
		t.Fatalf("want 42501 ERROR pgguard:..., got %s %s %q", pe.Severity, pe.Code, pe.Message)
	}
	if column != "" && !strings.Contains(pe.Message, column) {
		t.Fatalf("message %q does not name %s", pe.Message, column)
	}
}

// expectServerError checks an error PostgreSQL itself would give: its
// SQLSTATE, message and position, and no pgguard prefix.
func expectServerError(t *testing.T, err error, code, message string, position int32) {
	t.Helper()
	pe := pgErr(t, err)
	if pe.Code != code || pe.Message != message || pe.Position != position || pe.Severity != "ERROR" {
		t.Fatalf("want %s %q at %d, got %s %s %q at %d", code, message, position, pe.Severity, pe.Code, pe.Message, pe.Position)
	}
}

func TestDepartmentsSeeTheirOwnData(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	ctx := context.Background()
	cases := []struct {
		name, user, options, sql string
		deniedColumn             string // "" when allowed
	}{
		{"sales reads contact for order fulfilment", "sales_app", "-c pgguard.purpose=order_fulfilment",
			"SELECT email FROM crm.customers ORDER BY id", ""},
		{"sales, child purpose shipping", "sales_app", "-c pgguard.purpose=shipping",
			"SELECT c.email, o.status FROM crm.customers c JOIN crm.orders o ON o.customer_id = c.id", ""},
		{"sales without purpose", "sales_app", "", "SELECT email FROM crm.customers", "crm.customers.email"},
		{"sales into hr", "sales_app", "-c pgguard.purpose=order_fulfilment",
			"SELECT gross_monthly FROM hr.salaries", "hr.salaries.gross_monthly"},
		{"sales reads bsn", "sales_app", "-c pgguard.purpose=order_fulfilment",
			"SELECT id FROM crm.customers WHERE bsn = '111222333'", "crm.customers.bsn"},
		{"payroll reads salaries", "payroll_app", "-c pgguard.purpose=payroll", "SELECT gross_monthly FROM hr.salaries", ""},
		{"payroll denied health", "payroll_app", "-c pgguard.purpose=sick_leave_admin",
			"SELECT diagnosis_note FROM hr.sick_leave", "hr.sick_leave.diagnosis_note"},
		{"hr reads health for sick leave admin", "hr_app", "-c pgguard.purpose=sick_leave_admin",
			"SELECT diagnosis_note FROM hr.sick_leave", ""},
		{"marketing newsletter contact", "marketing_app", "-c pgguard.purpose=newsletter", "SELECT email FROM crm.customers", ""},
		{"marketing phone denied by parent deny", "marketing_app", "-c pgguard.purpose=newsletter",
			"SELECT phone FROM crm.customers", "crm.customers.phone"},
		{"marketing star reads identity", "marketing_app", "-c pgguard.purpose=newsletter",
			"SELECT * FROM crm.customers", "crm.customers."},
		{"finance iban invoicing", "finance_app", "-c pgguard.purpose=invoicing", "SELECT iban FROM crm.customers", ""},
		{"support must not read iban", "support_app", "-c pgguard.purpose=customer_support",
			"SELECT iban FROM crm.customers", "crm.customers.iban"},
		{"unclassified column allowed", "marketing_app", "", "SELECT count(id) FROM crm.customers", ""},
		{"unanalysable DO block", "hr_app", "-c pgguard.purpose=personnel_admin",
			"DO $$BEGIN PERFORM 1; END$$", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := w.connect(t, tc.user, tc.options)
			_, err := conn.Exec(ctx, tc.sql)
			switch {
			case strings.HasPrefix(tc.sql, "DO"):
				expectDenied(t, err, "")
			case tc.deniedColumn == "":
				if err != nil {
					t.Fatalf("want allowed, got %v", err)
				}
			default:
				expectDenied(t, err, tc.deniedColumn)
				if pe := pgErr(t, err); !strings.Contains(pe.Hint, "pgguard.purpose") {
					t.Fatalf("hint %q does not say how to declare a purpose", pe.Hint)
				}
			}
		})
	}
}

func TestAllowedQueryReturnsRows(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	rows, err := conn.Query(context.Background(), "SELECT email FROM crm.customers WHERE id = $1", 2)
	if err != nil {
		t.Fatal(err)
	}
	emails, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(emails) != 1 || emails[0] != "bram@example.nl" {
		t.Fatalf("got %v, %v", emails, err)
	}
}

func TestPurposeDeclarations(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	ctx := context.Background()
	conn := w.connect(t, "payroll_app", "")
	q := "SELECT gross_monthly FROM hr.salaries"
	expectDenied(t, execSQL(conn, q), "hr.salaries.gross_monthly")
	// A comment declares the purpose for its statement alone.
	if err := execSQL(conn, q+" /*purpose='payroll'*/"); err != nil {
		t.Fatalf("comment purpose: %v", err)
	}
	expectDenied(t, execSQL(conn, q), "hr.salaries.gross_monthly")
	// SET lasts for the session, RESET clears it.
	mustExec(t, conn, "SET pgguard.purpose = 'payroll'")
	mustExec(t, conn, q)
	mustExec(t, conn, "RESET pgguard.purpose")
	expectDenied(t, execSQL(conn, q), "hr.salaries.gross_monthly")
	// SET LOCAL lasts to the end of the transaction.
	mustExec(t, conn, "BEGIN")
	mustExec(t, conn, "SET LOCAL pgguard.purpose = 'payroll'")
	mustExec(t, conn, q)
	mustExec(t, conn, "COMMIT")
	expectDenied(t, execSQL(conn, q), "hr.salaries.gross_monthly")
	// A SET rolled back is undone, as PostgreSQL undoes it.
	mustExec(t, conn, "BEGIN")
	mustExec(t, conn, "SET pgguard.purpose = 'payroll'")
	mustExec(t, conn, "ROLLBACK")
	expectDenied(t, execSQL(conn, q), "hr.salaries.gross_monthly")
	// DISCARD ALL clears it.
	mustExec(t, conn, "SET pgguard.purpose = 'payroll'")
	mustExec(t, conn, "DISCARD ALL")
	expectDenied(t, execSQL(conn, q), "hr.salaries.gross_monthly")
	// Through the extended protocol, a SET takes effect when it runs, not
	// when it is prepared.
	mustExec(t, conn, "RESET pgguard.purpose")
	if _, err := conn.PgConn().Prepare(ctx, "later", "SET pgguard.purpose = 'payroll'", nil); err != nil {
		t.Fatal(err)
	}
	expectDenied(t, execSQL(conn, q), "hr.salaries.gross_monthly")
	if err := conn.PgConn().ExecPrepared(ctx, "later", nil, nil, nil).Read().Err; err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, q)
	mustExec(t, conn, "RESET pgguard.purpose")
	// A purpose the policy never names is most likely a typo: it is logged.
	mustExec(t, conn, "SET pgguard.purpose = 'payrol'")
	if !strings.Contains(w.logs.String(), `"purpose":"payrol"`) {
		t.Errorf("no warning about the unknown purpose in the log:\n%s", w.logs.String())
	}
	mustExec(t, conn, "RESET pgguard.purpose")
	// In one query string, a SET applies to the statements after it.
	if _, err := conn.PgConn().Exec(ctx, "SET pgguard.purpose = 'payroll'; "+q).ReadAll(); err != nil {
		t.Fatalf("set then select in one string: %v", err)
	}
}

// TestRefusalNamesWhatThePolicyDoesNotKnow: a refusal caused by a user or
// a purpose the policy has never heard of says so, instead of blaming the
// column.
func TestRefusalNamesWhatThePolicyDoesNotKnow(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	cases := []struct {
		name, user, options, sql string
		message, hint            string // substrings
	}{
		{"misspelt purpose", "payroll_app", "-c pgguard.purpose=payrol", "SELECT gross_monthly FROM hr.salaries",
			`not allowed for purpose "payrol": purpose "payrol" is not defined in the policy`, `Did you mean "payroll"?`},
		{"made-up purpose", "sales_app", "-c pgguard.purpose=nonsense", "SELECT email FROM crm.customers",
			`purpose "nonsense" is not defined in the policy`, "SET pgguard.purpose"},
		{"user in no department", outsider, "-c pgguard.purpose=order_fulfilment", "SELECT email FROM crm.customers",
			`is not allowed for purpose "order_fulfilment": user "intern_app" belongs to no department`, `place user "intern_app" in a department`},
		{"the user comes first", outsider, "-c pgguard.purpose=nonsense", "SELECT email FROM crm.customers",
			`user "intern_app" belongs to no department`, "g rule"},
		{"a deny rule stays the reason", "support_app", "-c pgguard.purpose=nonsense", "SELECT iban FROM crm.customers",
			`crm.customers.iban (customer_financial) is not allowed for purpose "nonsense"`, "SET pgguard.purpose"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := w.connect(t, tc.user, tc.options)
			err := execSQL(conn, tc.sql)
			expectDenied(t, err, "")
			pe := pgErr(t, err)
			if !strings.Contains(pe.Message, tc.message) || !strings.Contains(pe.Hint, tc.hint) {
				t.Errorf("got message %q hint %q; want %q and %q", pe.Message, pe.Hint, tc.message, tc.hint)
			}
			if tc.name == "a deny rule stays the reason" && strings.Contains(pe.Message, "not defined") {
				t.Errorf("a deny rule refused the column, yet the message blames the purpose: %q", pe.Message)
			}
		})
	}
	w.addRules(t, "g, "+outsider+", interns")
	conn := w.connect(t, outsider, "-c pgguard.purpose=order_fulfilment")
	if pe := pgErr(t, execSQL(conn, "SELECT email FROM crm.customers")); !strings.Contains(pe.Message,
		`user "intern_app" belongs to no department that has rules (it belongs to interns)`) {
		t.Errorf("department without rules: %q", pe.Message)
	}
}

func TestTransactionFailsLikePostgreSQL(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	mustExec(t, conn, "BEGIN")
	mustExec(t, conn, "INSERT INTO public.notes VALUES (1, 'inside')")
	expectDenied(t, execSQL(conn, "SELECT gross_monthly FROM hr.salaries"), "hr.salaries.gross_monthly")
	if tx := conn.PgConn().TxStatus(); tx != 'E' {
		t.Fatalf("transaction status %q, want E", tx)
	}
	if pe := pgErr(t, execSQL(conn, "SELECT 1")); pe.Code != "25P02" {
		t.Fatalf("after a denial in a transaction: %s, want 25P02", pe.Code)
	}
	mustExec(t, conn, "ROLLBACK")
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM public.notes WHERE body = 'inside'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rolled-back insert visible: n=%d err=%v", n, err)
	}
}

func TestDeniedStatementNeverReachesTheDatabase(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	expectDenied(t, execSQL(conn, "UPDATE hr.salaries SET gross_monthly = 1"), "hr.salaries.gross_monthly")
	admin := w.connect(t, "payroll_app", "-c pgguard.purpose=payroll")
	var salary float64
	if err := admin.QueryRow(context.Background(), "SELECT gross_monthly FROM hr.salaries WHERE employee_id = 100").Scan(&salary); err != nil || salary != 4200 {
		t.Fatalf("salary changed or unreadable: %v %v", salary, err)
	}
}

func TestPipelineMixesVerdicts(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	ctx := context.Background()
	p := conn.PgConn().StartPipeline(ctx)
	p.SendQueryParams("SELECT email FROM crm.customers WHERE id = $1", [][]byte{[]byte("1")}, nil, nil, nil)
	_ = p.Sync()
	p.SendQueryParams("SELECT gross_monthly FROM hr.salaries", nil, nil, nil, nil)
	_ = p.Sync()
	p.SendQueryParams("SELECT status FROM crm.orders WHERE id = $1", [][]byte{[]byte("10")}, nil, nil, nil)
	_ = p.Sync()
	want := []string{"anna@example.nl", "denied", "shipped"}
	for i, w := range want {
		res, err := p.GetResults()
		if w == "denied" && err != nil {
			expectDenied(t, err, "hr.salaries.gross_monthly")
			if res, err := p.GetResults(); err != nil {
				t.Fatalf("sync after the denial: %T %v", res, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
		rr, ok := res.(*pgconn.ResultReader)
		if !ok {
			t.Fatalf("result %d: %T", i, res)
		}
		r := rr.Read()
		if w == "denied" {
			expectDenied(t, r.Err, "hr.salaries.gross_monthly")
		} else if r.Err != nil || len(r.Rows) != 1 || string(r.Rows[0][0]) != w {
			t.Fatalf("result %d: rows %q err %v", i, r.Rows, r.Err)
		}
		if res, err := p.GetResults(); err != nil || res != nil {
			if _, sync := res.(*pgconn.PipelineSync); !sync {
				t.Fatalf("after result %d: %T %v, want sync", i, res, err)
			}
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, "SELECT 1")
}

func TestPreparedStatementDecidedAgainAtBind(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	conn := w.connect(t, "payroll_app", "-c pgguard.purpose=payroll")
	ctx := context.Background()
	if _, err := conn.Prepare(ctx, "salaries", "SELECT gross_monthly FROM hr.salaries WHERE employee_id = $1"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		var s float64
		if err := conn.QueryRow(ctx, "salaries", 100).Scan(&s); err != nil || s != 4200 {
			t.Fatalf("execution %d: %v %v", i, s, err)
		}
	}
	mustExec(t, conn, "SET pgguard.purpose = 'newsletter'")
	var s float64
	expectDenied(t, conn.QueryRow(ctx, "salaries", 100).Scan(&s), "hr.salaries.")
	// SQL-level PREPARE is analysed at PREPARE and bound to its name.
	mustExec(t, conn, "SET pgguard.purpose = 'payroll'")
	mustExec(t, conn, "PREPARE p1 AS SELECT gross_monthly FROM hr.salaries")
	mustExec(t, conn, "EXECUTE p1")
	mustExec(t, conn, "SET pgguard.purpose = 'newsletter'")
	expectDenied(t, execSQL(conn, "EXECUTE p1"), "hr.salaries.gross_monthly")
	mustExec(t, conn, "DEALLOCATE p1")
	// p1 is gone: pgguard answers as the server would.
	expectServerError(t, execSQL(conn, "EXECUTE p1"), "26000", `prepared statement "p1" does not exist`, 0)
}

// TestUnnamedStatementsInTurn: the unnamed statement, parsed before every
// execution with one of a few texts in turn (JDBC, node-postgres), is
// decided at every Bind under the purpose in force.
func TestUnnamedStatementsInTurn(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	pc := conn.PgConn()
	ctx := context.Background()
	email := "SELECT email FROM crm.customers WHERE id = $1"
	status := "SELECT status FROM crm.orders WHERE id = $1"
	exec := func(sql, arg string) *pgconn.ResultReader {
		return pc.ExecParams(ctx, sql, [][]byte{[]byte(arg)}, nil, nil, nil)
	}
	want := func(sql, arg, value string) {
		t.Helper()
		r := exec(sql, arg).Read()
		if r.Err != nil || len(r.Rows) != 1 || string(r.Rows[0][0]) != value {
			t.Fatalf("%s: rows %q err %v, want %q", sql, r.Rows, r.Err, value)
		}
	}
	for range 3 {
		want(email, "1", "anna@example.nl")
		want(status, "10", "shipped")
	}
	mustExec(t, conn, "SET pgguard.purpose = 'newsletter'")
	expectDenied(t, exec(email, "1").Read().Err, "crm.customers.email")
	mustExec(t, conn, "SET pgguard.purpose = 'order_fulfilment'")
	want(email, "1", "anna@example.nl")
	want(status, "10", "shipped")
}

// TestPreparedNamesCannotBeRedefinedAroundPgguard: PostgreSQL keeps the
// first statement under a name, so pgguard must keep deciding on that one,
// whatever a later Parse, PREPARE or refused Close says.
func TestPreparedNamesCannotBeRedefinedAroundPgguard(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	ctx := context.Background()
	conn := w.connect(t, "payroll_app", "-c pgguard.purpose=payroll")
	pc := conn.PgConn()
	salaries := "SELECT gross_monthly FROM hr.salaries"
	if _, err := pc.Prepare(ctx, "s1", salaries, nil); err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, "PREPARE p1 AS "+salaries)
	mustExec(t, conn, "SET pgguard.purpose = 'newsletter'")
	// A harmless redefinition: PostgreSQL refuses it and keeps s1 and p1.
	if _, err := pc.Prepare(ctx, "s1", "SELECT 1", nil); pgErr(t, err).Code != "42P05" {
		t.Fatalf("redefining s1: %v", err)
	}
	if pe := pgErr(t, execSQL(conn, "PREPARE p1 AS SELECT 1")); pe.Code != "42P05" {
		t.Fatalf("redefining p1: %v", pe)
	}
	expectDenied(t, pc.ExecPrepared(ctx, "s1", nil, nil, nil).Read().Err, "hr.salaries.gross_monthly")
	expectDenied(t, execSQL(conn, "EXECUTE p1"), "hr.salaries.gross_monthly")
	// A denied Parse under the same name changes nothing either.
	if _, err := pc.Prepare(ctx, "s1", "SELECT bsn FROM crm.customers", nil); err == nil {
		t.Fatal("denied Parse accepted")
	}
	expectDenied(t, pc.ExecPrepared(ctx, "s1", nil, nil, nil).Read().Err, "hr.salaries.gross_monthly")
	// A Close the server ignores (its batch already failed) must not make
	// pgguard forget a statement the server still holds.
	p := pc.StartPipeline(ctx)
	p.SendQueryParams("SELECT 1/0", nil, nil, nil, nil)
	p.SendDeallocate("s1")
	_ = p.Sync()
	for {
		res, err := p.GetResults()
		if res == nil && err == nil {
			break
		}
		if _, ok := res.(*pgconn.PipelineSync); ok {
			break
		}
		if rr, ok := res.(*pgconn.ResultReader); ok {
			rr.Close()
		}
	}
	_ = p.Close()
	expectDenied(t, pc.ExecPrepared(ctx, "s1", nil, nil, nil).Read().Err, "")
}

func TestMonitorModeForwardsAndFlags(t *testing.T) {
	w := newWorld(t, alert.ModeMonitor)
	conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	var s float64
	if err := conn.QueryRow(context.Background(), "SELECT gross_monthly FROM hr.salaries WHERE employee_id = 100").Scan(&s); err != nil || s != 4200 {
		t.Fatalf("monitor mode must forward: %v %v", s, err)
	}
	events, _ := w.hook.waitFor(t, 1)
	if events[0]["event"] != "query_flagged" || events[0]["mode"] != "monitor" {
		t.Fatalf("alert %v", events[0])
	}
}

func TestAlertsCarryNoLiterals(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	conn := w.connect(t, "marketing_app", "-c pgguard.purpose=newsletter -c application_name=mailer")
	err := execSQL(conn, "SELECT email FROM crm.customers WHERE bsn = '987654321' AND last_name = 'Verhoeven' AND id > 31337")
	expectDenied(t, err, "crm.customers.bsn")
	events, raw := w.hook.waitFor(t, 1)
	ev := events[0]
	for field, want := range map[string]string{"event": "query_blocked", "user": "marketing_app", "purpose": "newsletter", "database": "postgres", "mode": "enforce"} {
		if ev[field] != want {
			t.Errorf("alert %s = %v, want %s", field, ev[field], want)
		}
	}
	for _, field := range []string{"time", "roles", "client_addr", "application_name", "statement", "fingerprint", "denied", "policy_version"} {
		if _, ok := ev[field]; !ok {
			t.Errorf("alert lacks %s: %s", field, raw[0])
		}
	}
	denied, _ := ev["denied"].([]any)
	if len(denied) == 0 {
		t.Fatalf("no denied columns in %s", raw[0])
	}
	time.Sleep(100 * time.Millisecond) // let the log sink write too
	for _, literal := range []string{"987654321", "Verhoeven", "31337"} {
		if strings.Contains(raw[0], literal) {
			t.Errorf("alert contains literal %q: %s", literal, raw[0])
		}
		if strings.Contains(w.logs.String(), literal) {
			t.Errorf("log contains literal %q", literal)
		}
	}
}

func TestPolicyEditChangesVerdictsLive(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	conn := w.connect(t, "marketing_app", "-c pgguard.purpose=campaign_analysis")
	q := "SELECT total_amount FROM crm.orders"
	mustExec(t, conn, q)
	policy, err := os.ReadFile(w.policyFile)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(policy), "p, marketing, campaign_analysis, customer_orders, read, allow\n", "", 1)
	if edited == string(policy) {
		t.Fatal("policy.csv no longer has the rule this test removes")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloaded := make(chan struct{}, 1)
	go func() {
		_ = w.engine.Watch(ctx, zerolog.Nop(), 100*time.Millisecond, func(r authz.ReloadResult) {
			if r.Swapped {
				reloaded <- struct{}{}
			}
		})
	}()
	time.Sleep(200 * time.Millisecond) // let the watcher start watching
	// Editors save by writing a new file and renaming it over the old one.
	tmp := w.policyFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, w.policyFile); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reloaded:
	case <-time.After(15 * time.Second):
		t.Fatal("the edited policy was not picked up")
	}
	// The same session, still open, now gets the new verdict.
	expectDenied(t, execSQL(conn, q), "crm.orders.total_amount")
}

func TestCatalogFollowsDDL(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", "GRANT CREATE ON SCHEMA public TO hr_app")
	conn := w.connect(t, "hr_app", "-c pgguard.purpose=personnel_admin")
	// A table created through pgguard is known to the next statement.
	mustExec(t, conn, "CREATE TABLE public.hr_scratch (id int, note text)")
	mustExec(t, conn, "INSERT INTO public.hr_scratch VALUES (1, 'x')")
	mustExec(t, conn, "SELECT note FROM public.hr_scratch")
	// A table created around pgguard is found by the refresh before refusal.
	w.pg.MustExec(t, "postgres", "CREATE TABLE public.made_elsewhere (id int); GRANT ALL ON public.made_elsewhere TO hr_app")
	mustExec(t, conn, "SELECT id FROM public.made_elsewhere")
	// A relation that exists nowhere is answered by pgguard as PostgreSQL
	// would, not forwarded; the answer is not remembered, so once the
	// table exists it is found.
	expectServerError(t, execSQL(conn, "SELECT id FROM public.later_table"), "42P01", `relation "public.later_table" does not exist`, 16)
	w.pg.MustExec(t, "postgres", "CREATE TABLE public.later_table (id int); GRANT ALL ON public.later_table TO hr_app")
	time.Sleep(1100 * time.Millisecond) // past the refresh throttle
	mustExec(t, conn, "SELECT id FROM public.later_table")
}

func TestToolsCatalogQueriesPass(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	conn := w.connect(t, "marketing_app", "")
	for _, q := range []string{
		"SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'",
		"SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'crm'",
		"SELECT datname FROM pg_catalog.pg_database",
	} {
		if err := execSQL(conn, q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	expectDenied(t, execSQL(conn, "SELECT * FROM pg_catalog.pg_stats"), "")
}

func execSQL(conn *pgx.Conn, sql string) error {
	_, err := conn.Exec(context.Background(), sql)
	return err
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if err := execSQL(conn, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestSearchPathIsFollowed(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	conn := w.connect(t, "marketing_app", "-c pgguard.purpose=newsletter")
	mustExec(t, conn, "SET search_path = crm")
	mustExec(t, conn, "SELECT email FROM customers")
	expectDenied(t, execSQL(conn, "SELECT phone FROM customers"), "crm.customers.phone")
	// Back to the default path ("$user", public): no customers there, as
	// the server would say.
	mustExec(t, conn, "RESET search_path")
	expectServerError(t, execSQL(conn, "SELECT email FROM customers"), "42P01", `relation "customers" does not exist`, 19)
	// set_config is followed too.
	mustExec(t, conn, "SELECT set_config('search_path', 'crm', false)")
	expectDenied(t, execSQL(conn, "SELECT bsn FROM customers"), "crm.customers.bsn")
	// Within one query string, a path change applies to what follows it.
	mustExec(t, conn, "RESET search_path")
	if _, err := conn.PgConn().Exec(context.Background(), "SET search_path = crm; SELECT email FROM customers").ReadAll(); err != nil {
		t.Fatalf("set then select in one string: %v", err)
	}
	_, err := conn.PgConn().Exec(context.Background(), "SET search_path = crm; SELECT bsn FROM customers").ReadAll()
	expectDenied(t, err, "crm.customers.bsn")
	// SET LOCAL ends with the transaction.
	mustExec(t, conn, "RESET search_path")
	mustExec(t, conn, "BEGIN")
	mustExec(t, conn, "SET LOCAL search_path = crm")
	mustExec(t, conn, "SELECT email FROM customers")
	mustExec(t, conn, "COMMIT")
	expectServerError(t, execSQL(conn, "SELECT email FROM customers"), "42P01", `relation "customers" does not exist`, 19)
}

func TestFunctionRulesFollowTheStatementsPurpose(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	conn := w.connect(t, "support_app", "")
	q := "SELECT public.unaccent(email) FROM crm.customers"
	expectDenied(t, execSQL(conn, q), "")
	mustExec(t, conn, q+" /*purpose='customer_support'*/")
	mustExec(t, conn, "SET pgguard.purpose = 'customer_support'")
	mustExec(t, conn, q)
	// Another department has no execute rule for the function.
	sales := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	expectDenied(t, execSQL(sales, "SELECT public.unaccent(status) FROM crm.orders"), "")
}

func TestSetRoleIsRefused(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", `DO $$BEGIN
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'crm') THEN CREATE ROLE crm; END IF;
		END$$; GRANT crm TO marketing_app`)
	conn := w.connect(t, "marketing_app", "-c pgguard.purpose=newsletter")
	// As marketing_app, "$user" names no schema: customers resolves nowhere.
	expectServerError(t, execSQL(conn, "SELECT email FROM customers"), "42P01", `relation "customers" does not exist`, 19)
	// A role the login is a member of may hold what its department may
	// not (here "$user" would become the crm schema): pgguard decides on
	// the login, and refuses the change.
	expectDenied(t, execSQL(conn, "SET ROLE crm"), "")
	var user string
	if err := conn.QueryRow(context.Background(), "SELECT current_user").Scan(&user); err != nil || user != "marketing_app" {
		t.Fatalf("current_user %q (%v), want marketing_app", user, err)
	}
}

// TestSearchPathChangeUndoneByTheServer: pipelined so that an earlier
// statement's ReadyForQuery arrives in between, a search_path change that
// the server then never runs (an error before it) or rolls back must not
// leave pgguard resolving names against a path the server does not use.
func TestSearchPathChangeUndoneByTheServer(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", `CREATE TABLE IF NOT EXISTS public.salaries (gross_monthly numeric);
		GRANT ALL ON public.salaries TO marketing_app`)
	for name, pipeline := range map[string][]string{
		"error before the SET": {"SELECT 1", "SELECT 1/0; SET search_path = public"},
		"rolled back":          {"SELECT 1", "BEGIN; SET search_path = public", "ROLLBACK"},
	} {
		t.Run(name, func(t *testing.T) {
			conn := w.connect(t, "marketing_app", "-c pgguard.purpose=newsletter")
			mustExec(t, conn, "SET search_path = hr")
			expectDenied(t, execSQL(conn, "SELECT gross_monthly FROM salaries"), "hr.salaries.gross_monthly")
			sendPipelined(t, conn, pipeline)
			// The server's path is still hr: reading salaries reads
			// hr.salaries, which must stay refused.
			var path string
			if err := conn.QueryRow(context.Background(), "SHOW search_path").Scan(&path); err != nil || path != "hr" {
				t.Fatalf("server search_path %q (%v), want hr", path, err)
			}
			expectDenied(t, execSQL(conn, "SELECT gross_monthly FROM salaries"), "hr.salaries.gross_monthly")
			// A change that commits makes the path certain again.
			mustExec(t, conn, "SET search_path = public")
			mustExec(t, conn, "SELECT gross_monthly FROM salaries")
		})
	}
}

// sendPipelined sends simple queries back to back, then reads every answer.
func sendPipelined(t *testing.T, conn *pgx.Conn, queries []string) {
	t.Helper()
	pc := conn.PgConn()
	for _, q := range queries {
		pc.Frontend().Send(&pgproto3.Query{String: q})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pc.Frontend().Flush(); err != nil {
		t.Fatal(err)
	}
	for ready := 0; ready < len(queries); {
		msg, err := pc.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			ready++
		}
	}
}

// TestSchemaChangesAroundPgguardReachVerdicts: a column added directly on
// the database, not through pgguard, is counted by SELECT * once the
// background refresh has read the catalog again.
func TestSchemaChangesAroundPgguardReachVerdicts(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	policy, err := os.ReadFile(w.policyFile)
	if err != nil {
		t.Fatal(err)
	}
	// crm.orders.* already makes it customer_orders, which sales may read:
	// a deny rule is what keeps the new column out.
	rule := "p, sales, *, crm.orders.courier_bsn, read, deny\n"
	if err := os.WriteFile(w.policyFile, append(policy, rule...), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := w.engine.Reload(); err != nil || !res.Swapped {
		t.Fatalf("reload: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.guard.RefreshCatalogs(ctx, 100*time.Millisecond)
	conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	mustExec(t, conn, "SELECT * FROM crm.orders")
	w.pg.MustExec(t, "postgres", "ALTER TABLE crm.orders ADD COLUMN courier_bsn text")
	t.Cleanup(func() { w.pg.MustExec(t, "postgres", "ALTER TABLE crm.orders DROP COLUMN courier_bsn") })
	deadline := time.Now().Add(15 * time.Second)
	for execSQL(conn, "SELECT * FROM crm.orders") == nil {
		if time.Now().After(deadline) {
			t.Fatal("SELECT * still allowed: the new column never reached the catalog")
		}
		time.Sleep(50 * time.Millisecond)
	}
	expectDenied(t, execSQL(conn, "SELECT * FROM crm.orders"), "crm.orders.courier_bsn")
}

// TestStartupPacketSettingsAreFollowed: any StartupMessage parameter is a
// setting for PostgreSQL, so a raw client can set search_path or role
// there; pgguard must resolve names as the server will.
func TestStartupPacketSettingsAreFollowed(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", `CREATE TABLE IF NOT EXISTS public.salaries (gross_monthly numeric);
		GRANT ALL ON public.salaries TO marketing_app`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig("postgres://marketing_app:" + password + "@" + w.addr + "/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = "hr"
	cfg.RuntimeParams["options"] = "-c search_path=public -c pgguard.purpose=newsletter"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var path string
	if err := conn.QueryRow(ctx, "SHOW search_path").Scan(&path); err != nil || path != "hr" {
		t.Fatalf("server search_path %q (%v): the packet parameter should win", path, err)
	}
	expectDenied(t, execSQL(conn, "SELECT gross_monthly FROM salaries"), "hr.salaries.gross_monthly")
}
