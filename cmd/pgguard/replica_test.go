package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/policystore"
)

func TestStaleAlarm(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	held := policystore.Record{Version: 4, Checksum: strings.Repeat("ab", 32)}
	down := errors.New("connection refused")
	steps := []struct {
		name     string
		now      time.Time
		status   policystore.Status
		wantKind alert.Kind // "" for no alert
		wantText string
	}{
		{"connected and confirmed", t0, policystore.Status{Up: true, Confirmed: t0, Held: held}, "", ""},
		{"lost, within the max age", t0.Add(4 * time.Minute), policystore.Status{Err: down, Confirmed: t0, Held: held}, "", ""},
		{"lost beyond the max age", t0.Add(5*time.Minute + time.Second), policystore.Status{Err: down, Confirmed: t0, Held: held},
			alert.KindPolicyStale, "version 4 not confirmed current for 5m1s, longer than --policy-max-age 5m0s: the store is unreachable: connection refused"},
		{"still lost: one alert only", t0.Add(10 * time.Minute), policystore.Status{Err: down, Confirmed: t0, Held: held}, "", ""},
		{"confirmed again", t0.Add(11 * time.Minute), policystore.Status{Up: true, Confirmed: t0.Add(11 * time.Minute), Held: held}, alert.KindPolicyConfirmed, ""},
		{"connected but the newest version rejected", t0.Add(17 * time.Minute), policystore.Status{Up: true, Confirmed: t0.Add(11 * time.Minute), Held: held, Rejected: "ff"},
			alert.KindPolicyStale, "the store's newest version was rejected"},
	}
	alarm := staleAlarm{maxAge: 5 * time.Minute}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			ev, ok := alarm.step(s.now, s.status)
			if ok != (s.wantKind != "") || ev.Kind != s.wantKind {
				t.Fatalf("alert %v %q, want %q", ok, ev.Kind, s.wantKind)
			}
			if ok && (ev.PolicyVersion != held.Short() || !strings.Contains(ev.Error, s.wantText)) {
				t.Fatalf("event %+v, want policy_version %s and error containing %q", ev, held.Short(), s.wantText)
			}
			if ok {
				ev.Time = s.now
				if err := ev.Validate(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestServeFollowsPolicyStore: serve --policy-store enforces the store's
// policy, swaps in a push within a second, reports it in metrics, /healthz
// and its heartbeat, and keeps it across a lost store connection.
func TestServeFollowsPolicyStore(t *testing.T) {
	pg := pgtest.Shared(t)
	const db = "cmd_serve_store"
	store := storeDatabase(t, db)
	pg.MustExec(t, db, "CREATE SCHEMA hr; CREATE TABLE hr.salaries (employee_id bigint, gross_monthly numeric, bank_account text)")
	pg.MustCreateRole(t, "store_finance", "pw", pgtest.SCRAM)
	pg.MustExec(t, db, "GRANT USAGE ON SCHEMA hr TO store_finance; GRANT SELECT ON hr.salaries TO store_finance")
	shipped, err := os.ReadFile("policy.csv")
	if err != nil {
		t.Fatal(err)
	}
	const grant = "p, finance, financial_reporting, employee_salary, read, allow\n"
	if !strings.Contains(string(shipped), grant) {
		t.Fatalf("policy.csv lost the rule %q", grant)
	}
	dir := t.TempDir()
	granted, revoked := filepath.Join(dir, "granted", "policy.csv"), filepath.Join(dir, "revoked", "policy.csv")
	for file, text := range map[string]string{
		granted: string(shipped) + "g, store_finance, finance\n",
		revoked: strings.Replace(string(shipped), grant, "", 1) + "g, store_finance, finance\n",
	} {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if code, out := runCmd(t, "policy", "push", "--to", store, "--policy", granted); code != exitOK {
		t.Fatalf("push: %d %s", code, out)
	}
	t.Setenv("PGGUARD_CATALOG_URL", pg.URL(pgtest.Superuser, "", "postgres"))
	s := startServe(t, pg, "--policy-store", store, "--replica-id", "replica-under-test", "--policy", "does-not-exist.csv")
	conn := connectEventually(t, "postgres://store_finance:pw@"+s.listen+"/"+db+"?sslmode=disable")
	defer conn.Close(context.Background())
	query := func() error {
		_, err := conn.Exec(context.Background(), "/*purpose='financial_reporting'*/ SELECT gross_monthly FROM hr.salaries")
		return err
	}
	if err := query(); err != nil {
		t.Fatalf("allowed by version 1: %v", err)
	}
	eventuallyTrue(t, "the first heartbeat", func() bool {
		code, out := runCmd(t, "policy", "status", "--store", store)
		return code == exitOK && strings.Contains(out, "replica-under-test")
	})

	pushed := time.Now()
	code, out := runCmd(t, "policy", "push", "--to", store, "--policy", revoked)
	if code != exitOK || !strings.Contains(out, "pushed version 2, checksum ") {
		t.Fatalf("push: %d %s", code, out)
	}
	sum := strings.TrimSpace(out[strings.LastIndex(out, " ")+1:])
	var pe *pgconn.PgError
	eventuallyTrue(t, "the revocation", func() bool { return errors.As(query(), &pe) && pe.Code == "42501" })
	if took := time.Since(pushed); took > 5*time.Second { // the bound of the replica test is 1s; this one only guards against polling
		t.Errorf("revocation took %s", took)
	}
	metrics := get(t, "http://"+s.metrics+"/metrics")
	for _, want := range []string{
		`pgguard_policy_info{checksum="` + sum + `",version="2"} 1`,
		`pgguard_policy_store_up{store="` + pg.Addr() + "/" + db + `"} 1`,
		`pgguard_policy_loaded_timestamp_seconds `,
		`pgguard_policy_confirmed_timestamp_seconds{store=`,
		`pgguard_policy_reloads_total{outcome="success"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, body := status(t, "http://"+s.metrics+"/healthz"); code != 200 || !strings.HasPrefix(body, "ok\n") ||
		!strings.Contains(body, "connected; version 2 (checksum "+sum[:12]+")") {
		t.Errorf("/healthz %d %q", code, body)
	}
	if !strings.Contains(s.logs.String(), `"event":"policy_reloaded"`) {
		t.Errorf("no policy_reloaded alert:\n%s", s.logs.String())
	}

	// A lost store connection keeps the policy and is said on the log,
	// /healthz and the metric until the watcher is back.
	// The watcher's is the one superuser connection to the store database
	// (the catalog is read in postgres, the client is store_finance).
	pg.MustExec(t, "postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+db+
		"' AND usename = '"+pgtest.Superuser+"' AND pid <> pg_backend_pid()")
	eventuallyTrue(t, "the loss to be logged", func() bool { return strings.Contains(s.logs.String(), "policy store connection lost") })
	eventuallyTrue(t, "the reconnection", func() bool {
		return strings.Contains(s.logs.String(), "policy store connection restored")
	})
	if err := query(); !errors.As(err, &pe) || pe.Code != "42501" {
		t.Errorf("after the reconnection: %v, want the revocation kept", err)
	}
}

// TestServeStoreStartErrors: serve with --policy-store exits with status 2
// and says why when it has no policy to start with, or a max age the
// heartbeat cannot keep.
func TestServeStoreStartErrors(t *testing.T) {
	empty := storeDatabase(t, "cmd_serve_store_empty")
	upstream := "postgres://127.0.0.1:1/"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"max age within the heartbeat", []string{"--policy-store", empty, "--policy-max-age", "5s"}, "--policy-max-age 5s: must be longer than the policy store heartbeat (5s)"},
		{"store unreachable", []string{"--policy-store", "postgres://pgguard@127.0.0.1:1/store?sslmode=disable&connect_timeout=2"}, "policy: policy store postgres://pgguard@127.0.0.1:1/store"},
		{"empty store", []string{"--policy-store", empty}, "holds no policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--upstream", upstream, "--listen", "127.0.0.1:0"}, tc.args...)
			code, out := runCmd(t, args...)
			if code != exitError || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want %d, and output with %q:\n%s", code, exitError, tc.want, out)
			}
		})
	}
}
