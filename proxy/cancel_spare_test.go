package proxy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
)

// cancelRunning runs a statement on rc that sleeps until cancelled, sends
// a client's CancelRequest for rc's key to addr once it runs, and fails
// unless the statement ends with 57014 and the session is ready again.
func cancelRunning(t *testing.T, rc *rawConn, addr string) {
	t.Helper()
	_ = rc.SetDeadline(time.Now().Add(ioTimeout))
	rc.send(t, &pgproto3.Query{String: waitForCancel})
	if m, ok := rc.recv(t).(*pgproto3.NoticeResponse); !ok || m.Message != "running" {
		t.Fatalf("want the statement's notice, got %s", describe(m))
	}
	sendCancel(t, addr, rc.pid, rc.key)
	if e := rc.recvError(t); e.Code != "57014" {
		t.Fatalf("statement ended with %s %s, want 57014", e.Code, e.Message)
	}
	if m, ok := rc.recv(t).(*pgproto3.ReadyForQuery); !ok {
		t.Fatalf("want ReadyForQuery, got %s", describe(m))
	}
}

// TestCancelSpare: with a session open, pgguard holds an upstream
// connection opened ahead of the next cancel, with TLS where sslmode asks
// for it, and a client's cancel goes out on it, so that PostgreSQL's fork
// of a process (and its TLS handshake) is not on the cancel's way. A
// spare opened before a session's backend started does not know that
// backend (PostgreSQL before 18 looks the key up in the list of backends
// its process was forked with): such a session's cancel goes on a fresh
// connection and still cancels, and the spare is replaced for the next.
func TestCancelSpare(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{TLS: true})
	for _, mode := range []string{"disable", "require"} {
		t.Run(mode, func(t *testing.T) {
			p := startProxy(t, proxy.Config{Upstream: "postgres://" + pg.Addr() + "/?sslmode=" + mode})
			if proxy.SpareHeld(p.Srv) {
				t.Fatal("a spare is held before any session")
			}
			rc := rawStartup(t, p.Addr, pgtest.Superuser)
			eventually(t, "a spare connection", func() bool { return proxy.SpareHeld(p.Srv) })
			for i := range 3 {
				used, opened := proxy.SparesUsed(p.Srv), proxy.SparesOpened(p.Srv)
				cancelRunning(t, rc, p.Addr)
				if got := proxy.SparesUsed(p.Srv); got != used+1 {
					t.Fatalf("cancel %d: %d cancels went out on a spare, want %d", i, got, used+1)
				}
				waitNewSpare(t, p.Srv, opened)
			}

			// A session newer than the spare: its cancel cannot use it.
			later := rawStartup(t, p.Addr, pgtest.Superuser)
			used, opened := proxy.SparesUsed(p.Srv), proxy.SparesOpened(p.Srv)
			cancelRunning(t, later, p.Addr)
			if got := proxy.SparesUsed(p.Srv); got != used {
				t.Fatalf("the cancel of a session newer than the spare went out on it (%d, was %d)", got, used)
			}
			waitNewSpare(t, p.Srv, opened)
			for _, c := range []*rawConn{later, rc} {
				opened := proxy.SparesOpened(p.Srv)
				cancelRunning(t, c, p.Addr)
				waitNewSpare(t, p.Srv, opened)
			}
			if got := proxy.SparesUsed(p.Srv); got != used+2 {
				t.Fatalf("after the renewal %d cancels went out on a spare, want 2", got-used)
			}
			if log := pg.Log(); strings.Contains(log, "did not match any process") {
				t.Fatalf("a cancel reached a process that did not know its backend:\n%s", log)
			}
		})
	}
}

// TestCancelSpareClosedByServer: PostgreSQL ends a connection that sends no
// startup packet after authentication_timeout. A spare it closed is not
// used (the cancel goes on a fresh connection and cancels), and later
// spares are kept for less than that one lived, so they serve again.
func TestCancelSpareClosedByServer(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"authentication_timeout": "1s"}})
	p := startProxy(t, proxy.Config{Upstream: plainUpstream(pg)})
	rc := rawStartup(t, p.Addr, pgtest.Superuser)
	eventually(t, "a spare connection", func() bool { return proxy.SpareHeld(p.Srv) })
	time.Sleep(1500 * time.Millisecond) // the server ends the spare meanwhile
	cancelRunning(t, rc, p.Addr)
	if got := proxy.SparesUsed(p.Srv); got != 0 {
		t.Fatalf("%d cancels went out on a spare the server had closed", got)
	}
	if age := proxy.SpareAge(p.Srv); age >= time.Second {
		t.Fatalf("spare age %s after the server closed one within 1.5s", age)
	}
	waitNewSpare(t, p.Srv, 1)
	time.Sleep(1500 * time.Millisecond) // replaced meanwhile, before the server's timeout
	cancelRunning(t, rc, p.Addr)
	if got := proxy.SparesUsed(p.Srv); got != 1 {
		t.Fatalf("%d cancels went out on a spare, want 1", got)
	}
}

// waitNewSpare waits until srv has opened a spare after the opened-th and
// holds it.
func waitNewSpare(t *testing.T, srv *proxy.Server, opened int64) {
	t.Helper()
	eventually(t, "a new spare", func() bool { return proxy.SparesOpened(srv) > opened && proxy.SpareHeld(srv) })
}
