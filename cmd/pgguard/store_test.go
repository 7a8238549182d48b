package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/policystore"
)

// storeDatabase makes a fresh database on the shared cluster and returns
// the superuser's URL to it.
func storeDatabase(t *testing.T, name string) string {
	t.Helper()
	pg := pgtest.Shared(t)
	pg.MustExec(t, "postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") // left by an earlier -count
	if err := pg.CreateDatabase(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return pg.URL(pgtest.Superuser, "", name)
}

func TestPolicyPushAndStatus(t *testing.T) {
	url := storeDatabase(t, "cmd_push_status")
	dir := t.TempDir()
	failing := filepath.Join(dir, "failing_tests.txt")
	if err := os.WriteFile(failing, []byte("allow marketing_app newsletter : SELECT iban FROM crm.customers\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile("policy.csv")
	if err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(dir, "policy.csv")
	if err := os.WriteFile(edited, append(shipped, []byte("\n# reviewed again\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"status of an empty store is an error", []string{"policy", "status", "--store", url}, exitError, "holds no policy"},
		{"lint errors refuse", []string{"policy", "push", "--to", url, "--policy", "authz/testdata/lint/bad_effect_case.csv"}, exitDenied, "not pushed: lint found"},
		{"failing tests refuse", []string{"policy", "push", "--to", url, "--tests", failing, "--schema", "demo/schema.sql"}, exitDenied, "not pushed: 1 policy test(s) failed"},
		{"tests without a catalog are an error", []string{"policy", "push", "--to", url, "--tests", "policy_tests.txt"}, exitError, "--schema"},
		{"a clean, tested policy is pushed", []string{"policy", "push", "--to", url, "--tests", "policy_tests.txt", "--schema", "demo/schema.sql"}, exitOK, "pushed version 1, checksum "},
		{"the same files again push nothing", []string{"policy", "push", "--to", url}, exitOK, "version 1, checksum "},
		{"no replica reported yet", []string{"policy", "status", "--store", url}, exitDenied, "0 live replica(s)"},
		{"an edit is the next version", []string{"policy", "push", "--to", url, "--policy", edited}, exitOK, "pushed version 2"},
		{"push needs --to", []string{"policy", "push"}, exitError, "needs --to"},
		{"status needs --store", []string{"policy", "status"}, exitError, "needs --store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runCmd(t, tc.args...)
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) {
				t.Fatalf("exit %d, want %d; output lacks %q:\n%s", code, tc.wantCode, tc.wantOut, out)
			}
		})
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	newest, err := policystore.Latest(ctx, conn)
	if err != nil || newest.Version != 2 || newest.PolicyName != "policy.csv" || !strings.HasSuffix(newest.Policy, "# reviewed again\n") {
		t.Fatalf("newest %d %q, %v", newest.Version, newest.PolicyName, err)
	}
	beat := func(id string, version int64, sum string, ttl time.Duration) {
		t.Helper()
		if err := policystore.Beat(ctx, conn, policystore.Heartbeat{ReplicaID: id, Version: version, Checksum: sum, StartedAt: time.Now(), TTL: ttl}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name     string
		beat     func()
		wantCode int
		wantOut  []string
	}{
		{"every live replica current", func() { beat("pod-a", 2, newest.Checksum, time.Minute) }, exitOK,
			[]string{"pod-a live 2", "1 live replica(s), 0 behind the newest version, 0 expired"}},
		{"an expired replica behind does not count", func() { beat("pod-b", 1, "0123456789abcdef", -time.Second) }, exitOK,
			[]string{"pod-b expired", "1 live replica(s), 0 behind the newest version, 1 expired"}},
		{"a live replica behind", func() { beat("pod-b", 1, "0123456789abcdef", time.Minute) }, exitDenied,
			[]string{"pod-b live 1 0123456789ab no", "2 live replica(s), 1 behind"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.beat()
			code, out := runCmd(t, "policy", "status", "--store", url)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.wantCode, out)
			}
			spaced := regexp.MustCompile(` +`).ReplaceAllString(out, " ")
			for _, want := range tc.wantOut {
				if !strings.Contains(spaced, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
	code, out := runCmd(t, "policy", "status", "--store", url, "--json")
	var st struct {
		Version  int64 `json:"version"`
		Replicas []struct {
			ID      string `json:"replica_id"`
			State   string `json:"state"`
			Current bool   `json:"current"`
		} `json:"replicas"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != exitDenied || st.Version != 2 || len(st.Replicas) != 2 ||
		st.Replicas[0].ID != "pod-a" || !st.Replicas[0].Current || st.Replicas[1].State != "live" || st.Replicas[1].Current {
		t.Fatalf("--json: exit %d, %v: %s", code, err, out)
	}
}
