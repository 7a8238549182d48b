package pgtest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(RunMain(m)) }

func TestSharedServerAnswers(t *testing.T) {
	s := Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL(Superuser, "", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil {
		t.Fatal(err)
	}
	if fsync != "off" {
		t.Fatalf("fsync = %q, want off", fsync)
	}
	if Shared(t) != s {
		t.Fatal("Shared returned a second server")
	}
}

func TestRolesByStorageMethod(t *testing.T) {
	s := Shared(t)
	ctx := context.Background()
	s.MustCreateRole(t, "pgtest_md5", "secret-md5", MD5)
	s.MustCreateRole(t, "pgtest_scram", "secret-scram", SCRAM)
	for _, tc := range []struct{ role, pass, prefix string }{
		{"pgtest_md5", "secret-md5", "md5"},
		{"pgtest_scram", "secret-scram", "SCRAM-SHA-256$"},
	} {
		conn, err := pgx.Connect(ctx, s.URL(tc.role, tc.pass, "postgres"))
		if err != nil {
			t.Fatalf("%s: %v", tc.role, err)
		}
		conn.Close(ctx)
		if _, err := pgx.Connect(ctx, s.URL(tc.role, "wrong", "postgres")); err == nil {
			t.Fatalf("%s: wrong password accepted", tc.role)
		}
		su, err := pgx.Connect(ctx, s.URL(Superuser, "", "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		var stored string
		err = su.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", tc.role).Scan(&stored)
		su.Close(ctx)
		if err != nil || !strings.HasPrefix(stored, tc.prefix) {
			t.Fatalf("%s: stored %q (err %v), want prefix %q", tc.role, stored, err, tc.prefix)
		}
	}
}

func TestTLSServerAndCleanup(t *testing.T) {
	s, err := Launch(Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	url := strings.Replace(s.URL(Superuser, "", "postgres"), "sslmode=disable",
		"sslmode=verify-full&sslrootcert="+s.CAFile, 1)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	var ssl bool
	err = conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl)
	conn.Close(ctx)
	s.Close()
	if err != nil || !ssl {
		t.Fatalf("ssl = %v, err %v", ssl, err)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Fatalf("cluster folder %s still there after Close (stat err %v)", s.Dir, err)
	}
}
