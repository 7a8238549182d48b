package proxy_test

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }

func TestSmoke(t *testing.T) {
	pg := pgtest.Shared(t)
	srv, err := proxy.New(proxy.Config{Upstream: "postgres://" + pg.Addr() + "/?sslmode=disable"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	pg.MustCreateRole(t, "smoke", "pw", pgtest.SCRAM)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgres://smoke:pw@"+l.Addr().String()+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT $1::int + 1", 41).Scan(&n); err != nil || n != 42 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	conn.Close(ctx)
}
