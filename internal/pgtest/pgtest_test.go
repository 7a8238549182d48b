package pgtest

import (
	"context"
	"crypto/tls"
	"fmt"
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

func TestBouncerServesTLSClients(t *testing.T) {
	s := Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.CreateDatabase(ctx, "bouncer_db"); err != nil {
		t.Fatal(err)
	}
	s.MustCreateRole(t, "bouncer_user", "bouncer-pw", SCRAM)
	cert, err := GenerateCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := LaunchBouncer(ctx, s, BouncerOptions{Database: "bouncer_db", User: "bouncer_user", Password: "bouncer-pw", ClientTLS: cert})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://bouncer_user:bouncer-pw@%s/bouncer_db?sslmode=require", b.Addr()))
	if err != nil {
		t.Fatalf("connect through pgbouncer: %v\n%s", err, b.Log())
	}
	defer conn.Close(ctx)
	var user string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != "bouncer_user" {
		t.Fatalf("current_user = %q, err %v", user, err)
	}
	if !conn.PgConn().Conn().(interface{ ConnectionState() tls.ConnectionState }).ConnectionState().HandshakeComplete {
		t.Fatal("client session with pgbouncer is not TLS")
	}
}
