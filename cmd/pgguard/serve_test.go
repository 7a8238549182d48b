package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/internal/pgtest"
)

// TestServeEnforcesAndServesMetrics runs `pgguard serve` as an operator
// would (flags and environment), sends an allowed and a denied statement,
// and scrapes /metrics and /healthz.
func TestServeEnforcesAndServesMetrics(t *testing.T) {
	pg := pgtest.Shared(t)
	pg.MustExec(t, "postgres", "CREATE SCHEMA IF NOT EXISTS hr; CREATE TABLE IF NOT EXISTS hr.salaries (employee_id bigint, gross_monthly numeric, bank_account text)")
	pg.MustCreateRole(t, "serve_sales", "pw", pgtest.SCRAM)
	pg.MustExec(t, "postgres", "GRANT USAGE ON SCHEMA hr TO serve_sales; GRANT SELECT ON hr.salaries TO serve_sales")
	listen, metrics := pgtest.FreeAddr(t), pgtest.FreeAddr(t)
	t.Setenv("PGGUARD_UPSTREAM", "postgres://"+pg.Addr()+"/?sslmode=disable")
	t.Setenv("PGGUARD_CATALOG_URL", pg.URL(pgtest.Superuser, "", "postgres"))
	ctx, cancel := context.WithCancel(context.Background())
	logs := &pgtest.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--listen", listen, "--metrics", metrics}, io.Discard, logs)
	}()
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("serve exit %d:\n%s", code, logs.String())
		}
	}()
	conn := connectEventually(t, "postgres://serve_sales:pw@"+listen+"/postgres?sslmode=disable")
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	_, err := conn.Exec(context.Background(), "SELECT gross_monthly FROM hr.salaries")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		t.Fatalf("want 42501 for sales reading salaries, got %v", err)
	}
	body := get(t, "http://"+metrics+"/metrics")
	for _, want := range []string{
		`pgguard_statements_total{verdict="allowed"}`,
		`pgguard_statements_total{verdict="denied"} 1`,
		`pgguard_connections_open 1`,
		`pgguard_policy_version{version="`,
		`pgguard_verdict_cache_misses_total`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if h := get(t, "http://"+metrics+"/healthz"); !strings.Contains(h, "ok") {
		t.Errorf("/healthz: %q", h)
	}
	if !strings.Contains(logs.String(), `"event":"query_blocked"`) {
		t.Errorf("no alert on the log:\n%s", logs.String())
	}
}

func connectEventually(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, url)
		cancel()
		if err == nil {
			return conn
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgguard did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// servedPgguard is a `pgguard serve` running in the test.
type servedPgguard struct {
	listen, metrics string
	logs            *pgtest.SyncBuffer
	cancel          context.CancelFunc
	done            chan int
}

// startServe runs `pgguard serve` on free ports with the environment the
// test set, in front of pg, and stops it when the test ends.
func startServe(t *testing.T, pg *pgtest.Server, args ...string) *servedPgguard {
	t.Helper()
	s := &servedPgguard{listen: pgtest.FreeAddr(t), metrics: pgtest.FreeAddr(t), logs: &pgtest.SyncBuffer{}, done: make(chan int, 1)}
	t.Setenv("PGGUARD_UPSTREAM", "postgres://"+pg.Addr()+"/?sslmode=disable")
	var ctx context.Context
	ctx, s.cancel = context.WithCancel(context.Background())
	args = append([]string{"serve", "--listen", s.listen, "--metrics", s.metrics}, args...)
	go func() { s.done <- run(ctx, args, io.Discard, s.logs) }()
	t.Cleanup(func() {
		s.cancel()
		select {
		case code := <-s.done:
			if code != exitOK {
				t.Errorf("serve exit %d:\n%s", code, s.logs.String())
			}
		case <-time.After(time.Minute):
			t.Errorf("serve did not stop")
		}
	})
	eventuallyTrue(t, "pgguard to listen", func() bool {
		c, err := net.Dial("tcp", s.listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return s
}

// status GETs url and returns the status code and body.
func status(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventuallyTrue polls cond until it holds, failing the test after a
// bound generous enough for a loaded machine.
func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeCountsStartingConnectionsAndTimesThemOut: a client that
// connects and says nothing counts as starting, and --startup-timeout
// closes it.
func TestServeCountsStartingConnectionsAndTimesThemOut(t *testing.T) {
	pg := pgtest.Shared(t)
	t.Setenv("PGGUARD_CATALOG_URL", pg.URL(pgtest.Superuser, "", "postgres"))
	t.Setenv("PGGUARD_STARTUP_TIMEOUT", "500ms")
	s := startServe(t, pg)
	silent, err := net.Dial("tcp", s.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	eventuallyTrue(t, "the silent client to count as starting", func() bool {
		_, body := status(t, "http://"+s.metrics+"/metrics")
		return strings.Contains(body, `pgguard_connections_starting{stage="startup"} 1`+"\n")
	})
	// Far longer than the configured timeout, far shorter than the default.
	_ = silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := silent.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent client not closed by --startup-timeout (read %d, %v)", n, err)
	}
	eventuallyTrue(t, "the count to drop", func() bool {
		_, body := status(t, "http://"+s.metrics+"/metrics")
		return strings.Contains(body, `pgguard_connections_starting{stage="startup"} 0`+"\n")
	})
}

// TestServeHealthWhileDraining: once shutdown begins, readiness (/readyz,
// and /healthz, its older name) answers 503 while the open sessions drain;
// liveness (/livez) stays 200.
func TestServeHealthWhileDraining(t *testing.T) {
	pg := pgtest.Shared(t)
	t.Setenv("PGGUARD_CATALOG_URL", pg.URL(pgtest.Superuser, "", "postgres"))
	s := startServe(t, pg, "--shutdown-grace", "1m")
	wantStatus := func(path string, want int) {
		t.Helper()
		if code, body := status(t, "http://"+s.metrics+path); code != want {
			t.Errorf("%s = %d %q, want %d", path, code, body, want)
		}
	}
	for _, path := range []string{"/livez", "/readyz", "/healthz"} {
		wantStatus(path, http.StatusOK)
	}
	// An open session keeps the drain going.
	conn := connectEventually(t, "postgres://"+pgtest.Superuser+"@"+s.listen+"/postgres?sslmode=disable")
	s.cancel()
	eventuallyTrue(t, "/healthz to answer 503", func() bool {
		code, _ := status(t, "http://"+s.metrics+"/healthz")
		return code == http.StatusServiceUnavailable
	})
	wantStatus("/readyz", http.StatusServiceUnavailable)
	wantStatus("/livez", http.StatusOK)
	if _, body := status(t, "http://"+s.metrics+"/readyz"); !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz says %q, want the reason", body)
	}
	conn.Close(context.Background())
}

// catalogEndpoint stands between pgguard and the catalog's server: it
// relays connections to target until silence is called, and from then on
// accepts connections and never answers, as an endpoint behind a stuck
// proxy or firewall does, counting them.
func catalogEndpoint(t *testing.T, target string) (addr string, silence func(), silentDials *atomic.Int64) {
	t.Helper()
	return catalogEndpointAt(t, "127.0.0.1:0", target)
}

// catalogEndpointAt is catalogEndpoint on a given address.
func catalogEndpointAt(t *testing.T, at, target string) (addr string, silence func(), silentDials *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", at)
	if err != nil {
		t.Fatal(err)
	}
	var silent atomic.Bool
	silentDials = &atomic.Int64{}
	var mu sync.Mutex
	var conns []net.Conn
	keep := func(c ...net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		conns = append(conns, c...)
	}
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			keep(c)
			if silent.Load() {
				silentDials.Add(1)
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			keep(up)
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return l.Addr().String(), func() { silent.Store(true) }, silentDials
}

// TestServeCatalogUnavailable: with a catalog endpoint that, once pgguard
// started, accepts but never answers, the first client is refused once the catalog connect
// timeout passes, the next at once without another connection, with
// "catalog unavailable"; a catalog_unavailable alert is raised and
// readiness fails.
func TestServeCatalogUnavailable(t *testing.T) {
	pg := pgtest.Shared(t)
	catalogAddr, silence, dials := catalogEndpoint(t, pg.Addr())
	t.Setenv("PGGUARD_CATALOG_URL", "postgres://"+pgtest.Superuser+"@"+catalogAddr+"/postgres?sslmode=disable")
	t.Setenv("PGGUARD_CATALOG_CONNECT_TIMEOUT", "300ms")
	s := startServe(t, pg) // the connection checked at start works
	silence()
	url := "postgres://" + pgtest.Superuser + "@" + s.listen + "/postgres?sslmode=disable"
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		conn, err := pgx.Connect(ctx, url)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			t.Fatalf("client %d: session opened without a catalog", i+1)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57P03" || !strings.Contains(pe.Message, "catalog unavailable") {
			t.Fatalf("client %d: %v, want 57P03 catalog unavailable", i+1, err)
		}
		if strings.Contains(pe.Message, catalogAddr) {
			t.Errorf("client %d: the refusal names the catalog connection: %s", i+1, pe.Message)
		}
		if i == 0 && dials.Load() != 1 {
			t.Fatalf("%d catalog connections for the first client, want 1", dials.Load())
		}
	}
	eventuallyTrue(t, "the catalog_unavailable alert", func() bool {
		return strings.Contains(s.logs.String(), `"event":"catalog_unavailable"`)
	})
	for _, path := range []string{"/readyz", "/healthz"} {
		code, body := status(t, "http://"+s.metrics+path)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "catalog") {
			t.Errorf("%s = %d %q, want 503 naming the catalog", path, code, body)
		}
	}
	if code, _ := status(t, "http://"+s.metrics+"/livez"); code != http.StatusOK {
		t.Errorf("/livez = %d, want 200", code)
	}
}

// TestServeAddressInUse: an address that is taken, for metrics or for
// clients, ends serve with an error naming the flag, before it says it
// serves.
func TestServeAddressInUse(t *testing.T) {
	pg := pgtest.Shared(t)
	t.Setenv("PGGUARD_UPSTREAM", "postgres://"+pg.Addr()+"/?sslmode=disable")
	t.Setenv("PGGUARD_CATALOG_URL", pg.URL(pgtest.Superuser, "", "postgres"))
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	for _, tc := range []struct {
		flag string
		args []string
	}{
		{"--metrics", []string{"--listen", pgtest.FreeAddr(t), "--metrics", addr}},
		{"--listen", []string{"--listen", addr, "--metrics", pgtest.FreeAddr(t)}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		logs := &pgtest.SyncBuffer{}
		code := run(ctx, append([]string{"serve"}, tc.args...), io.Discard, logs)
		cancel()
		out := logs.String()
		if code != exitError || !strings.Contains(out, tc.flag+" "+addr+": ") || !strings.Contains(out, "address already in use") {
			t.Errorf("%s taken: exit %d, want %d naming %s %s:\n%s", tc.flag, code, exitError, tc.flag, addr, out)
		}
		if strings.Contains(out, "pgguard serving") {
			t.Errorf("%s taken: said it serves before failing:\n%s", tc.flag, out)
		}
	}
}

// TestServeChecksCatalogAtStart: serve connects with the catalog URL
// before it serves. A server that refuses the connection (wrong password,
// an upstream URL without a user) ends it with one error that names the
// URL without its password and says what to change; a server that cannot
// be reached is retried, with the error logged at each attempt and
// readiness failing, until it connects.
func TestServeChecksCatalogAtStart(t *testing.T) {
	pg := pgtest.Shared(t)
	pg.MustCreateRole(t, "serve_catalog", "rightpw", pgtest.SCRAM)
	t.Setenv("PGGUARD_UPSTREAM", "postgres://"+pg.Addr()+"/?sslmode=disable")
	t.Setenv("PGUSER", "pgguard_no_such_role")
	for _, tc := range []struct {
		name, catalogURL string
		says             []string
	}{
		{"wrong password", "postgres://serve_catalog:wrongpw@" + pg.Addr() + "/postgres?sslmode=disable",
			[]string{"postgres://serve_catalog@" + pg.Addr() + "/postgres?sslmode=disable", "28P01", "from --catalog-url", "fix: give a role that exists"}},
		{"upstream without a user", "",
			[]string{"postgres://" + pg.Addr() + "/?sslmode=disable", `as role "pgguard_no_such_role"`, "--upstream names no user", "set --catalog-url (PGGUARD_CATALOG_URL)"}},
	} {
		t.Setenv("PGGUARD_CATALOG_URL", tc.catalogURL)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		logs := &pgtest.SyncBuffer{}
		code := run(ctx, []string{"serve", "--listen", pgtest.FreeAddr(t), "--metrics", pgtest.FreeAddr(t)}, io.Discard, logs)
		cancel()
		out := logs.String()
		if code != exitError || strings.Contains(out, "pgguard serving") {
			t.Errorf("%s: exit %d, want %d before serving:\n%s", tc.name, code, exitError, out)
		}
		for _, want := range tc.says {
			if !strings.Contains(out, want) {
				t.Errorf("%s: the error lacks %q:\n%s", tc.name, want, out)
			}
		}
		if strings.Contains(out, "wrongpw") || strings.Count(out, "catalog connection") != 1 {
			t.Errorf("%s: want one error without the password:\n%s", tc.name, out)
		}
	}

	// Nothing listens at the catalog's address yet.
	down := pgtest.FreeAddr(t)
	t.Setenv("PGGUARD_CATALOG_URL", "postgres://serve_catalog:rightpw@"+down+"/postgres?sslmode=disable")
	s := startServe(t, pg)
	eventuallyTrue(t, "the error to be repeated", func() bool {
		return strings.Count(s.logs.String(), "catalog connection postgres://serve_catalog@"+down) >= 2
	})
	if code, body := status(t, "http://"+s.metrics+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "catalog connection failing") {
		t.Errorf("/readyz = %d %q while the catalog cannot be reached, want 503", code, body)
	}
	if out := s.logs.String(); strings.Contains(out, "rightpw") || !strings.Contains(out, "retrying") {
		t.Errorf("the error shows the password or does not say it retries:\n%s", out)
	}
	catalogEndpointAt(t, down, pg.Addr())
	eventuallyTrue(t, "the catalog connection to work", func() bool {
		return strings.Contains(s.logs.String(), "catalog connection works")
	})
	if code, body := status(t, "http://"+s.metrics+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d %q once the catalog connects, want 200", code, body)
	}
}

// TestServeLogsEachReloadOnceWithUnits runs serve on a copy of the policy,
// changes it well and then badly, and reads the log: one line per reload,
// and durations written with their unit.
func TestServeLogsEachReloadOnceWithUnits(t *testing.T) {
	pg := pgtest.Shared(t)
	dir := t.TempDir()
	for _, f := range []string{"model.conf", "policy.csv"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	policyFile := filepath.Join(dir, "policy.csv")
	t.Setenv("PGGUARD_UPSTREAM", "postgres://"+pg.Addr()+"/?sslmode=disable")
	t.Setenv("PGGUARD_CATALOG_URL", pg.URL(pgtest.Superuser, "", "postgres"))
	listen := pgtest.FreeAddr(t)
	logs := &pgtest.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--listen", listen, "--model", filepath.Join(dir, "model.conf"), "--policy", policyFile,
			"--policy-check-interval", "100ms", "--shutdown-grace", "2s"}, io.Discard, logs)
	}()
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("serve exit %d:\n%s", code, logs.String())
		}
	}()
	conn := connectEventually(t, "postgres://"+pgtest.Superuser+"@"+listen+"/postgres?sslmode=disable")
	conn.Close(context.Background())

	reloadLines := func() []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(strings.ToLower(l), "reload") || strings.Contains(l, "rejected") {
				out = append(out, l)
			}
		}
		return out
	}
	b, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(policyFile, []byte(strings.Replace(string(b), demoEditRule, "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, "the reload", func() bool { return strings.Contains(logs.String(), `"event":"policy_reloaded"`) })
	if err := os.WriteFile(policyFile, []byte(string(b)+"p, marketing, newsletter, customer_contact, write, Deny\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, "the rejected reload", func() bool { return strings.Contains(logs.String(), `"event":"policy_reload_failed"`) })
	time.Sleep(500 * time.Millisecond) // any further line about the same reloads
	if lines := reloadLines(); len(lines) != 2 {
		t.Errorf("%d log lines about two reloads, want one each:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	eventuallyTrue(t, "the session's end on the log", func() bool { return strings.Contains(logs.String(), `"connection closed"`) })
	if !regexp.MustCompile(`"duration":"[0-9.]+(ns|µs|ms|s|m[0-9.]+s)"`).MatchString(logs.String()) {
		t.Errorf("no duration with its unit on the log:\n%s", logs.String())
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("serve exit %d:\n%s", code, logs.String())
	}
	done <- exitOK // for the deferred check, which has nothing left to wait for
	if !strings.Contains(logs.String(), `"grace":"2s"`) {
		t.Errorf("the shutdown grace is not written as 2s:\n%s", logs.String())
	}
}

// TestConsoleLogHasNoColoursOffTerminal: --log-format console writes no
// ANSI colour codes to a file or pipe.
func TestConsoleLogHasNoColoursOffTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	for _, w := range []io.Writer{f, &buf} {
		log, err := newLogger("info", "console", w)
		if err != nil {
			t.Fatal(err)
		}
		log.Error().Str("grace", "30s").Msg("something")
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{string(b), buf.String()} {
		if strings.Contains(out, "\x1b[") || !strings.Contains(out, "something") {
			t.Errorf("console log off a terminal: %q", out)
		}
	}
}

// TestServeGrantsCheck: with --grants-check, a hand-made GRANT that lets a
// department read a column the policy forbids raises a grants_drift alert
// within a refresh interval, and putting it right is noticed too.
func TestServeGrantsCheck(t *testing.T) {
	pg := pgtest.Shared(t)
	pg.MustExec(t, "postgres", "DROP DATABASE IF EXISTS driftdb WITH (FORCE)")
	pg.MustExec(t, "postgres", "CREATE DATABASE driftdb")
	pg.MustExec(t, "driftdb", `CREATE SCHEMA crm; CREATE TABLE crm.customers (email text, iban text);
		DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sales_app') THEN CREATE ROLE sales_app LOGIN; END IF; END $$;
		GRANT USAGE ON SCHEMA crm TO sales_app; GRANT SELECT ON crm.customers TO sales_app`)
	t.Setenv("PGGUARD_UPSTREAM", "postgres://"+pg.Addr()+"/?sslmode=disable")
	t.Setenv("PGGUARD_CATALOG_URL", pg.URL(pgtest.Superuser, "", "driftdb"))
	logs := &pgtest.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--listen", pgtest.FreeAddr(t), "--grants-check", "--catalog-refresh-interval", "200ms",
			"--shutdown-grace", "1s"}, io.Discard, logs)
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitLog := func(what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if strings.Contains(logs.String(), what) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("no %q in the log:\n%s", what, logs.String())
	}
	waitLog(`"event":"grants_drift"`)
	if !strings.Contains(logs.String(), `crm.customers.iban`) || !strings.Contains(logs.String(), "held, but not allowed by the policy") {
		t.Fatalf("the alert does not name the hole:\n%s", logs.String())
	}
	before := len(logs.String())
	pg.MustExec(t, "driftdb", "REVOKE ALL ON crm.customers FROM sales_app; GRANT SELECT (email) ON crm.customers TO sales_app")
	// The next change is reported: no difference left, or (when other
	// tests left roles of the policy in this cluster) theirs without the
	// hole.
	deadline := time.Now().Add(20 * time.Second)
	for {
		after := logs.String()[before:]
		if strings.Contains(after, "grants match the policy again") || strings.Contains(after, `"event":"grants_drift"`) {
			if strings.Contains(after, "sales_app: held") {
				t.Fatalf("the hole is still reported after it was closed:\n%s", after)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the closed hole was not noticed:\n%s", after)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
