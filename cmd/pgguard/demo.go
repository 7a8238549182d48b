package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/demo"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/rs/zerolog"
)

// demoStep is one narrated step of the scenario and the outcome it must have.
// A direct step bypasses pgguard and connects to PostgreSQL itself, where
// only the grants compiled from the policy stand in the way.
type demoStep struct {
	say, user, purpose, sql string
	allow, direct           bool
}

var demoScenario = []demoStep{
	{"Sales reads customer contact details to ship an order.",
		"sales_app", "order_fulfilment", "SELECT first_name, last_name, email FROM crm.customers ORDER BY id LIMIT 3", true, false},
	{"Sales tries to look at salaries: another department's personal data.",
		"sales_app", "order_fulfilment", "SELECT e.last_name, s.gross_monthly FROM hr.employees e JOIN hr.salaries s ON s.employee_id = e.id WHERE s.gross_monthly > 5000", false, false},
	{"Payroll may, for payroll.",
		"payroll_app", "payroll", "SELECT e.last_name, s.gross_monthly FROM hr.employees e JOIN hr.salaries s ON s.employee_id = e.id ORDER BY e.id LIMIT 3", true, false},
	{"Marketing reads e-mail addresses for the newsletter.",
		"marketing_app", "newsletter", "SELECT email FROM crm.customers ORDER BY id LIMIT 3", true, false},
	{"Marketing switches purpose to campaign analysis: the same query is now refused.",
		"marketing_app", "campaign_analysis", "SELECT email FROM crm.customers ORDER BY id LIMIT 3", false, false},
	{"Payroll may not read sick-leave diagnoses (health data, GDPR art. 9).",
		"payroll_app", "payroll", "SELECT diagnosis_note FROM hr.sick_leave", false, false},
	{"Sales bypasses pgguard and asks PostgreSQL directly for customers' bank accounts: the database's own column privileges, compiled from the same policy (the second lock), refuse it.",
		"sales_app", "", "SELECT first_name, iban FROM crm.customers ORDER BY id LIMIT 3", false, true},
}

// demoEditRule is the rule the live policy edit removes.
const demoEditRule = "p, marketing, newsletter, customer_contact, read, allow\n"

// demoConfig is what `pgguard demo` is configured with.
type demoConfig struct {
	scriptOnly                     bool
	listen, metrics, model, policy string
}

func demoFlags(c *demoConfig) *flag.FlagSet {
	fs := newFlagSet("demo", "pgguard demo [flags]\n\nPlays the scenario, then keeps running until Ctrl-C for you to try it with psql.")
	fs.BoolVar(&c.scriptOnly, "script-only", false, "play the scenario and exit (for CI): exit 0 when every step turned out as expected")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:6432", "address pgguard listens on")
	fs.StringVar(&c.metrics, "metrics", "127.0.0.1:9187", "address for /metrics and the health checks")
	fs.StringVar(&c.model, "model", "model.conf", "Casbin model to start from")
	fs.StringVar(&c.policy, "policy", "policy.csv", "policy to start from (the demo edits a copy)")
	return fs
}

// runDemo starts a throwaway PostgreSQL with the demo data and a pgguard in
// front of it, plays the scenario, and then, unless --script-only, prints
// how to connect and keeps running until ctx ends (Ctrl-C).
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c demoConfig
	fs := demoFlags(&c)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := noArguments(fs, rest); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Starting a throwaway PostgreSQL ...")
	pg, err := pgtest.Launch(pgtest.Options{})
	if err != nil {
		if errors.Is(err, pgtest.ErrNoPostgres) {
			return errors.New("the demo needs the PostgreSQL server binaries: apt-get install -y postgresql")
		}
		return err
	}
	defer pg.Close()
	if err := pg.Exec(ctx, "postgres", demo.Schema+demo.SetupSQL()); err != nil {
		return fmt.Errorf("load demo data: %w", err)
	}
	// The second lock: the logins start with every privilege on every
	// table; the policy's grants take away what their departments may not
	// use, as `pgguard grants --apply` does in production.
	if _, err := runGrants(ctx, []string{"--apply", "--upstream", pg.URL(pgtest.Superuser, "", "postgres"),
		"--model", c.model, "--policy", c.policy}, io.Discard); err != nil {
		return fmt.Errorf("apply the policy's grants: %w", err)
	}
	fmt.Fprintln(stdout, "Applied the policy's grants: PostgreSQL's own privileges give each department at most what the policy lets it use.")
	d, err := startDemoProxy(ctx, pg, &c, stderr)
	if err != nil {
		return err
	}
	defer d.stop()
	d.direct = pg.Addr()
	fmt.Fprintf(stdout, "pgguard listens on %s in front of it.\n", d.addr)
	if err := d.play(ctx, stdout); err != nil {
		return err
	}
	if c.scriptOnly {
		fmt.Fprintln(stdout, "\nAll steps turned out as expected.")
		return nil
	}
	if err := d.restorePolicy(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\nAll steps turned out as expected. The policy is back as it was; now try it yourself.")
	d.printLogins(stdout)
	return d.showAlertsUntil(ctx, stdout)
}

// demoProxy is a pgguard serving the demo database.
type demoProxy struct {
	addr, metrics, policy string
	direct                string // PostgreSQL's own address
	original              []byte // the policy as the demo started it
	app                   *app
	alerts                *alertRecorder
	stop                  func()
}

func startDemoProxy(ctx context.Context, pg *pgtest.Server, dc *demoConfig, stderr io.Writer) (*demoProxy, error) {
	dir, err := os.MkdirTemp("", "pgguard-demo-")
	if err != nil {
		return nil, err
	}
	d := &demoProxy{policy: filepath.Join(dir, "policy.csv"), alerts: newAlertRecorder()}
	for from, to := range map[string]string{dc.model: filepath.Join(dir, "model.conf"), dc.policy: d.policy} {
		b, err := os.ReadFile(from)
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("%w (run the demo from the repository root, or pass --model and --policy)", err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if to == d.policy {
			d.original = b
		}
	}
	c := serveConfig{
		upstream: "postgres://" + pg.Addr() + "/?sslmode=disable", catalogURL: pg.URL(pgtest.Superuser, "", "postgres"),
		model: filepath.Join(dir, "model.conf"), policy: d.policy, mode: "enforce", unclassified: "allow",
		alertWebhook: d.alerts.srv.URL, maxMessageSize: 64 << 20, shutdownGrace: time.Second,
		catalogMaxAge: time.Minute, reloadInterval: time.Second,
	}
	// Errors go to stderr; the alerts, which the alert package puts on the
	// log at warn, are left out: the demo prints them itself.
	log, _ := newLogger("error", "console", stderr)
	log = log.Hook(zerolog.HookFunc(func(e *zerolog.Event, level zerolog.Level, _ string) {
		if level == zerolog.WarnLevel {
			e.Discard()
		}
	}))
	if d.app, err = build(&c, log); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c.listen, c.metrics = dc.listen, dc.metrics
	ls, err := listen(&c)
	if err != nil {
		d.app.close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w (another pgguard or demo running? pass --listen and --metrics)", err)
	}
	d.addr, d.metrics = ls.clients.Addr().String(), ls.metrics.Addr().String()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = d.app.serveOn(runCtx, ls, &c); close(done) }()
	d.stop = func() {
		cancel()
		<-done
		d.app.close()
		d.alerts.srv.Close()
		os.RemoveAll(dir)
	}
	return d, nil
}

func (d *demoProxy) url(user, purpose string) string {
	host, port, _ := net.SplitHostPort(d.addr)
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=postgres sslmode=disable options='-c pgguard.purpose=%s'",
		host, port, user, demo.Password, purpose)
}

// directURL connects to PostgreSQL itself, around pgguard.
func (d *demoProxy) directURL(user string) string {
	host, port, _ := net.SplitHostPort(d.direct)
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=postgres sslmode=disable", host, port, user, demo.Password)
}

// printLogins says how to try the demo: a psql line per department, where
// the metrics are, where the alerts go, and which policy file to edit.
func (d *demoProxy) printLogins(w io.Writer) {
	fmt.Fprintf(w, "\npgguard keeps running on %s until Ctrl-C. One login per department:\n\n", d.addr)
	for _, l := range demo.Logins {
		fmt.Fprintf(w, "  %-20s psql \"%s\"\n", l.Department+":", d.url(l.User, l.Purpose))
	}
	fmt.Fprintf(w, "\nTry, as sales:  SELECT first_name, email FROM crm.customers LIMIT 3;   (allowed)\n")
	fmt.Fprintf(w, "                SELECT gross_monthly FROM hr.salaries;                (ERROR 42501)\n")
	fmt.Fprintf(w, "\nAround pgguard, PostgreSQL itself refuses it too (the grants compiled from the policy at start):\n\n")
	fmt.Fprintf(w, "  psql \"%s\" -c 'SELECT iban FROM crm.customers LIMIT 3'\n", d.directURL("sales_app"))
	fmt.Fprintf(w, "\nThe grants stay as compiled: loosen the policy and PostgreSQL refuses what pgguard now lets through,\n")
	fmt.Fprintf(w, "which raises a query_blocked_by_database alert (re-run pgguard grants --apply to follow a policy change).\n")
	fmt.Fprintf(w, "\nMetrics: http://%s/metrics   (health: http://%s/readyz)\n", d.metrics, d.metrics)
	fmt.Fprintf(w, "Alerts:  printed below as they arrive; each is also POSTed as JSON to %s, the demo's webhook receiver\n", d.alerts.srv.URL)
	fmt.Fprintf(w, "Policy:  edit %s and the verdicts change live\n", d.policy)
	fmt.Fprintln(w, "\nCtrl-C stops pgguard and removes the throwaway PostgreSQL.")
}

// restorePolicy undoes the scenario's policy edit and waits for pgguard to
// reload it.
func (d *demoProxy) restorePolicy() error {
	old, alerts := d.app.engine.Policy().Version(), d.alerts.count()
	if err := os.WriteFile(d.policy, d.original, 0o644); err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for d.app.engine.Policy().Version() == old {
		if time.Now().After(deadline) {
			return errors.New("demo: pgguard did not reload the restored policy")
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.alerts.waitAfter(alerts, 10*time.Second) // its policy_reloaded alert, part of the scenario
	return nil
}

// showAlertsUntil prints each alert that arrives after the scenario, until
// ctx ends.
func (d *demoProxy) showAlertsUntil(ctx context.Context, w io.Writer) error {
	shown := d.alerts.count()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(w, "\nStopping.")
			return nil
		case <-tick.C:
		}
		for _, ev := range d.alerts.since(shown) {
			fmt.Fprintf(w, "alert: %s\n", ev)
			shown++
		}
	}
}

// play runs the scenario and fails if any step's outcome is not the one it
// must have.
func (d *demoProxy) play(ctx context.Context, w io.Writer) error {
	fmt.Fprintln(w, "\nScenario")
	failed := 0
	for i, st := range demoScenario {
		if !d.step(ctx, w, i+1, st) {
			failed++
		}
	}
	if !d.liveEdit(ctx, w, len(demoScenario)+1) {
		failed++
	}
	if !d.mistakenEdit(ctx, w, len(demoScenario)+3) {
		failed++
	}
	if failed > 0 {
		return fmt.Errorf("demo: %d step(s) did not turn out as expected", failed)
	}
	return nil
}

// step runs one statement and reports whether the outcome was as expected.
func (d *demoProxy) step(ctx context.Context, w io.Writer, n int, st demoStep) bool {
	url := d.url(st.user, st.purpose)
	if st.direct {
		url = d.directURL(st.user)
		fmt.Fprintf(w, "\n%d. %s\n   %s, straight to PostgreSQL on %s: %s\n", n, st.say, st.user, d.direct, st.sql)
	} else {
		fmt.Fprintf(w, "\n%d. %s\n   %s (purpose %s): %s\n", n, st.say, st.user, st.purpose, st.sql)
	}
	before := d.alerts.count()
	rows, err := d.query(ctx, url, st.sql)
	var pe *pgconn.PgError
	switch {
	case err == nil:
		fmt.Fprintf(w, "   allowed: %d row(s), first: %s\n", len(rows), strings.Join(first(rows), " | "))
	case st.direct && errors.As(err, &pe) && pe.Code == "42501":
		// pgguard never saw the statement, so there is no alert.
		fmt.Fprintf(w, "   refused by PostgreSQL: ERROR %s %s\n", pe.Code, pe.Message)
	case errors.As(err, &pe) && pe.Code == "42501":
		fmt.Fprintf(w, "   refused: ERROR %s %s\n", pe.Code, pe.Message)
		if ev, ok := d.alerts.waitAfter(before, 10*time.Second); ok {
			fmt.Fprintf(w, "   alert:   %s\n", ev)
		} else {
			fmt.Fprintln(w, "   alert:   none arrived (unexpected)")
			return false
		}
	default:
		fmt.Fprintf(w, "   error: %v (unexpected)\n", err)
		return false
	}
	ok := (err == nil) == st.allow
	if !ok {
		fmt.Fprintln(w, "   UNEXPECTED outcome")
	}
	return ok
}

// liveEdit removes a rule from the policy file and waits for the running
// pgguard to pick it up.
func (d *demoProxy) liveEdit(ctx context.Context, w io.Writer, n int) bool {
	fmt.Fprintf(w, "\n%d. The security team removes a rule from policy.csv while pgguard runs:\n   - %s", n, demoEditRule)
	if !d.rewritePolicy(w, func(p string) (string, bool) {
		return strings.Replace(p, demoEditRule, "", 1), strings.Contains(p, demoEditRule)
	}) {
		return false
	}
	return d.step(ctx, w, n+1, demoStep{say: "Marketing's newsletter query, once allowed, is now refused.",
		user: "marketing_app", purpose: "newsletter", sql: "SELECT first_name, email FROM crm.customers ORDER BY id LIMIT 3"})
}

// demoMistake is the rule of the mistaken edit: it gives sales another
// department's data.
const demoMistake = "p, sales, order_fulfilment, customer_financial, read, allow\n"

// mistakenEdit adds a rule that should never have been written. pgguard,
// which follows the policy, lets the statement through; PostgreSQL, whose
// grants were compiled from the policy before the mistake, refuses it, and
// pgguard raises query_blocked_by_database.
func (d *demoProxy) mistakenEdit(ctx context.Context, w io.Writer, n int) bool {
	fmt.Fprintf(w, "\n%d. A mistaken edit gives sales the customers' bank accounts:\n   + %s", n, demoMistake)
	if !d.rewritePolicy(w, func(p string) (string, bool) { return p + demoMistake, true }) {
		return false
	}
	return d.step(ctx, w, n+1, demoStep{say: "pgguard now lets sales read IBANs; PostgreSQL's own column privileges (the second lock) still refuse it, and pgguard raises an alert for the gap.",
		user: "sales_app", purpose: "order_fulfilment", sql: "SELECT first_name, iban FROM crm.customers ORDER BY id LIMIT 3"})
}

// rewritePolicy changes the policy file and waits for the running pgguard
// to reload it; change reports whether it applies to the policy.
func (d *demoProxy) rewritePolicy(w io.Writer, change func(string) (string, bool)) bool {
	b, err := os.ReadFile(d.policy)
	if err != nil {
		fmt.Fprintln(w, "   cannot read the policy (unexpected):", err)
		return false
	}
	changed, ok := change(string(b))
	if !ok {
		fmt.Fprintln(w, "   the policy does not contain the rule (unexpected)")
		return false
	}
	old, alerts := d.app.engine.Policy().Version(), d.alerts.count()
	if err := os.WriteFile(d.policy, []byte(changed), 0o644); err != nil {
		fmt.Fprintln(w, "   cannot write the policy:", err)
		return false
	}
	deadline := time.Now().Add(15 * time.Second)
	for d.app.engine.Policy().Version() == old && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	v := d.app.engine.Policy().Version()
	if v == old {
		fmt.Fprintln(w, "   pgguard did not reload the policy (unexpected)")
		return false
	}
	fmt.Fprintf(w, "   pgguard reloaded: policy %s -> %s\n", old, v)
	d.alerts.waitAfter(alerts, 10*time.Second) // the policy_reloaded alert, before the next step's
	return true
}

// query runs sql in a fresh session on url. The simple protocol returns
// every value as text, which is what the narration prints.
func (d *demoProxy) query(ctx context.Context, url, sql string) ([][]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]string, error) {
		var out []string
		for _, v := range r.RawValues() {
			out = append(out, string(v))
		}
		return out, nil
	})
}

func first(rows [][]string) []string {
	if len(rows) == 0 {
		return nil
	}
	return rows[0]
}

// alertRecorder is the demo's webhook receiver: it shows the security
// team's view.
type alertRecorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events []string
}

func newAlertRecorder() *alertRecorder {
	a := &alertRecorder{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev map[string]any
		if json.Unmarshal(b, &ev) == nil {
			brief, _ := json.Marshal(map[string]any{"event": ev["event"], "user": ev["user"], "purpose": ev["purpose"],
				"statement": ev["statement"], "denied": ev["denied"]})
			a.mu.Lock()
			a.events = append(a.events, string(brief))
			a.mu.Unlock()
		}
	}))
	return a
}

func (a *alertRecorder) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.events)
}

// since returns the events received after the first n.
func (a *alertRecorder) since(n int) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n >= len(a.events) {
		return nil
	}
	return append([]string(nil), a.events[n:]...)
}

func (a *alertRecorder) waitAfter(n int, timeout time.Duration) (string, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		if len(a.events) > n {
			ev := a.events[n]
			a.mu.Unlock()
			return ev, true
		}
		a.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	return "", false
}
