package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/internal/pgtest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeEnforcesAndServesMetrics runs `pgguard serve` as an operator
// would (flags and environment), sends an allowed and a denied statement,
// and scrapes /metrics and /healthz.
func TestServeEnforcesAndServesMetrics(t *testing.T) {
	pg := pgtest.Shared(t)
	pg.MustExec(t, "postgres", "CREATE SCHEMA IF NOT EXISTS hr; CREATE TABLE IF NOT EXISTS hr.salaries (employee_id bigint, gross_monthly numeric, bank_account text)")
	pg.MustCreateRole(t, "serve_sales", "pw", pgtest.SCRAM)
	pg.MustExec(t, "postgres", "GRANT USAGE ON SCHEMA hr TO serve_sales; GRANT SELECT ON hr.salaries TO serve_sales")
	listen, metrics := freeAddr(t), freeAddr(t)
	t.Setenv("PGGUARD_UPSTREAM", "postgres://"+pg.Addr()+"/?sslmode=disable")
	t.Setenv("PGGUARD_CATALOG_URL", pg.URL(pgtest.Superuser, "", "postgres"))
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
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
