package guard_test

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/guard"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
	"github.com/rs/zerolog"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(idleClientsEnv); spec != "" {
		flag.Parse()
		os.Exit(idleClients(spec))
	}
	os.Exit(pgtest.RunMain(m))
}

const password = "s3cret-pw"

// departmentUsers are the logins of the example policy's departments.
var departmentUsers = []string{"hr_app", "payroll_app", "sales_app", "finance_app", "marketing_app", "support_app"}

// outsider is a login the example policy does not name at all.
const outsider = "intern_app"

var setupOnce sync.Once

// world is a PostgreSQL loaded with the demo schema, a pgguard in front of
// it, and the alerts it raised.
type world struct {
	pg         *pgtest.Server
	addr       string
	policyFile string
	engine     *authz.Engine
	guard      *guard.Guard
	hook       *webhook
	logs       *syncBuffer
	metrics    *alert.Metrics
}

// newWorld starts pgguard in mode over the shared PostgreSQL, with a copy of
// the shipped policy that the test may edit.
func newWorld(t testing.TB, mode alert.Mode, opts ...worldOption) *world {
	t.Helper()
	pg := pgtest.Shared(t)
	setupOnce.Do(func() { loadSchema(t, pg) })
	return newWorldOn(t, pg, mode, opts...)
}

// newWorldOn is newWorld over a PostgreSQL of the test's own, which holds
// the demo schema already.
func newWorldOn(t testing.TB, pg *pgtest.Server, mode alert.Mode, opts ...worldOption) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{pg: pg, policyFile: filepath.Join(dir, "policy.csv"), hook: newWebhook(t), logs: &syncBuffer{},
		metrics: alert.NewMetrics(nil)}
	copyFile(t, "../policy.csv", w.policyFile)
	copyFile(t, "../model.conf", filepath.Join(dir, "model.conf"))
	var err error
	w.engine, err = authz.NewEngine(filepath.Join(dir, "model.conf"), w.policyFile, authz.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(w.logs)
	alerts, err := alert.New(alert.Config{WebhookURL: w.hook.srv.URL, DedupWindow: -1}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alerts.Close(context.Background()) })
	gcfg := guard.Config{
		Policy:   w.engine,
		Catalogs: newCatalogCache(t, pg),
		Alerts:   alerts, Metrics: w.metrics, Mode: mode, Logger: log,
	}
	pcfg := proxy.Config{Upstream: "postgres://" + pg.Addr() + "/?sslmode=disable", Logger: log}
	for _, o := range opts {
		o(&gcfg, &pcfg)
	}
	g, err := guard.New(gcfg)
	if err != nil {
		t.Fatal(err)
	}
	w.guard = g
	pcfg.Interceptor = g
	srv, err := proxy.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { _ = srv.Close() })
	w.addr = l.Addr().String()
	return w
}

// newCatalogCache reads the catalog as pgguard serve does: whole on a new
// connection, the relations DDL named on one kept open.
func newCatalogCache(t testing.TB, pg *pgtest.Server) *catalog.Cache {
	src, err := catalog.NewSource(pg.URL(pgtest.Superuser, "", "postgres"), catalog.DialerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	c, err := catalog.NewCacheWith(catalog.CacheConfig{Load: src.Load, LoadRelations: src.LoadRelations, MaxAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// worldOption changes the guard's and the proxy's configuration of a world.
type worldOption func(*guard.Config, *proxy.Config)

func loadSchema(t testing.TB, pg *pgtest.Server) {
	ddl, err := os.ReadFile("../demo/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	pg.MustExec(t, "postgres", string(ddl))
	pg.MustExec(t, "postgres", `
		INSERT INTO crm.customers VALUES
		  (1, 'Anna', 'de Vries', 'anna@example.nl', '0612345678', 'Dorpsstraat 1', '1234 AB', 'Utrecht', '1980-02-03', '111222333', 'NL00BANK0123456789'),
		  (2, 'Bram', 'Jansen', 'bram@example.nl', '0687654321', 'Kerkweg 9', '5678 CD', 'Zwolle', '1975-06-07', '444555666', 'NL00BANK9876543210');
		INSERT INTO crm.orders VALUES (10, 1, now(), 99.95, 'shipped', 'Dorpsstraat 1'), (11, 2, now(), 12.50, 'new', 'Kerkweg 9');
		INSERT INTO hr.employees VALUES (100, 'Carla', 'Bakker', 'carla@corp.nl', '0611111111', '777888999', 'NL00BANK1111111111', '1990-01-01', '2020-01-01', 'sales');
		INSERT INTO hr.salaries VALUES (100, 4200.00, 'NL00BANK1111111111');
		INSERT INTO hr.sick_leave VALUES (100, '2024-03-01', '2024-03-05', 'flu');
		CREATE TABLE public.notes (id int, body text);
		CREATE FUNCTION public.unaccent(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1';`)
	for _, u := range append(slices.Clone(departmentUsers), outsider) {
		pg.MustCreateRole(t, u, password, pgtest.SCRAM)
		// The database lets every department see everything: pgguard is
		// what keeps them apart in these tests.
		pg.MustExec(t, "postgres", "GRANT USAGE ON SCHEMA crm, hr TO "+u+
			"; GRANT ALL ON ALL TABLES IN SCHEMA crm, hr, public TO "+u)
	}
}

// connect opens a pgx session through pgguard; options are libpq options.
func (w *world) connect(t testing.TB, user, options string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := "postgres://" + user + ":" + password + "@" + w.addr + "/postgres?sslmode=disable"
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if options != "" {
		cfg.RuntimeParams["options"] = options
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect %s: %v", user, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// webhook is an HTTP server that keeps the alerts posted to it.
type webhook struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events []map[string]any
	raw    []string
}

func newWebhook(t testing.TB) *webhook {
	h := &webhook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev map[string]any
		if err := json.Unmarshal(body, &ev); err == nil {
			h.mu.Lock()
			h.events = append(h.events, ev)
			h.raw = append(h.raw, string(body))
			h.mu.Unlock()
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// waitFor polls until n alerts arrived, and returns them.
func (h *webhook) waitFor(t *testing.T, n int) ([]map[string]any, []string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		h.mu.Lock()
		if len(h.events) >= n {
			ev, raw := append([]map[string]any(nil), h.events...), append([]string(nil), h.raw...)
			h.mu.Unlock()
			return ev, raw
		}
		h.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("webhook: fewer than %d alerts arrived", n)
	return nil, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// addRules appends rules to the world's policy and reloads it.
func (w *world) addRules(t *testing.T, rules ...string) {
	t.Helper()
	policy, err := os.ReadFile(w.policyFile)
	if err != nil {
		t.Fatal(err)
	}
	policy = append(policy, strings.Join(rules, "\n")+"\n"...)
	if err := os.WriteFile(w.policyFile, policy, 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := w.engine.Reload(); err != nil || !res.Swapped {
		t.Fatalf("reload: %v (swapped %v)", err, res.Swapped)
	}
}

// count runs a count query as the superuser, directly on the server.
func (w *world) count(t *testing.T, sql string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.pg.URL(pgtest.Superuser, "", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}
