package proxy_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
)

// cancelOnContext makes pgx send a CancelRequest when a query's context is
// cancelled (its default only breaks the connection).
func cancelOnContext(cfg *pgx.ConnConfig) {
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: ioTimeout}
	}
}

// TestCancelByContext: pgx cancels a running statement through pgguard with
// a CancelRequest, plain and over TLS, and the session stays usable.
func TestCancelByContext(t *testing.T) {
	pg := sharedPG(t)
	super := superConn(t, pg)
	serverTLS, proxyCA := proxyTLS(t)
	p := startProxy(t, proxy.Config{TLS: serverTLS})

	// pgx sends the CancelRequest over TLS when the session uses TLS.
	for _, mode := range []struct{ name, query string }{{"plain", "sslmode=disable"}, {"tls", verifyFull(proxyCA)}} {
		t.Run(mode.name, func(t *testing.T) {
			conn := connectWith(t, p.URL(appUser, appPassword, "postgres", mode.query), cancelOnContext)
			var serverPID uint32
			if err := conn.QueryRow(testCtx(t), "SELECT pg_backend_pid()").Scan(&serverPID); err != nil {
				t.Fatal(err)
			}
			if conn.PgConn().PID() != serverPID {
				t.Fatalf("the client's key names pid %d, the server's backend is %d", conn.PgConn().PID(), serverPID)
			}
			marker := "SELECT pg_sleep(30) -- " + uniqueName("cancel")
			ctx, cancel := context.WithCancel(testCtx(t))
			done := make(chan error, 1)
			go func() {
				_, err := conn.Exec(ctx, marker)
				done <- err
			}()
			eventually(t, "the statement to run", func() bool { return activeQueries(t, super, marker) == 1 })
			cancel()
			select {
			case err := <-done:
				wantPgError(t, err, "57014", "canceling statement due to user request")
			case <-time.After(ioTimeout):
				t.Fatal("the statement was not cancelled")
			}
			var n int
			if err := conn.QueryRow(testCtx(t), "SELECT 7").Scan(&n); err != nil || n != 7 {
				t.Fatalf("session unusable after cancel: %d, %v", n, err)
			}
		})
	}
}

// TestCancelWrongKey: the client holds the server's own key; a
// CancelRequest with any other key cancels nothing, the right one does.
func TestCancelWrongKey(t *testing.T) {
	pg := sharedPG(t)
	super := superConn(t, pg)
	p := startProxy(t, proxy.Config{})
	rc := rawStartup(t, p.Addr, pgtest.Superuser)

	got := rc.query(t, "SELECT pg_backend_pid()")
	if len(got) != 4 {
		t.Fatalf("reply %v", got)
	}
	serverPID64, err := strconv.ParseUint(got[1][2:], 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	serverPID := uint32(serverPID64)
	if serverPID != rc.pid {
		t.Fatalf("BackendKeyData names pid %d, the server's backend is %d", rc.pid, serverPID)
	}

	// The session waits on a lock the test holds, so nothing but a cancel
	// can end its statement early, whatever the timing.
	lockKey := nameSeq.Add(1) + 1<<40
	if _, err := super.Exec(testCtx(t), "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		t.Fatal(err)
	}
	marker := "SELECT pg_advisory_lock(" + strconv.FormatInt(lockKey, 10) + ")"
	rc.send(t, &pgproto3.Query{String: marker})
	eventually(t, "the statement to wait", func() bool { return activeQueries(t, super, marker) == 1 })

	wrong := []struct {
		name        string
		pid, secret uint32
	}{
		{"wrong_secret", rc.pid, rc.key ^ 1},
		{"wrong_pid", rc.pid ^ 1, rc.key},
		{"zero", 0, 0},
	}
	for _, w := range wrong {
		cc := rawDial(t, p.Addr)
		if _, err := cc.Write(cancelPacket(w.pid, w.secret)); err != nil {
			t.Fatal(err)
		}
		// pgguard closes the cancel connection once the request is dealt
		// with (forwarded and acknowledged, or dropped), never answering.
		if rest := expectClosed(t, cc); len(rest) != 0 {
			t.Fatalf("%s: reply %q to a CancelRequest", w.name, rest)
		}
	}
	if n := activeQueries(t, super, marker); n != 1 {
		t.Fatalf("the statement ended after wrong-key cancels (%d active)", n)
	}
	// Releasing the lock lets the statement finish normally: had any wrong
	// key reached the backend, its pending cancel would fail it now.
	if _, err := super.Exec(testCtx(t), "SELECT pg_advisory_unlock($1)", lockKey); err != nil {
		t.Fatal(err)
	}
	if got := rc.untilReady(t); len(got) != 4 || got[2] != "C:SELECT 1" {
		t.Fatalf("statement result %v, want success", got)
	}

	// The right key cancels.
	rc.send(t, &pgproto3.Query{String: "SELECT pg_sleep(30) -- right key"})
	eventually(t, "the statement to run", func() bool { return activeQueries(t, super, "SELECT pg_sleep(30) -- right key") == 1 })
	cc := rawDial(t, p.Addr)
	if _, err := cc.Write(cancelPacket(rc.pid, rc.key)); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, cc)
	if got := rc.untilReady(t); !slices.Contains(got, "E:57014") {
		t.Fatalf("reply %v, want 57014", got)
	}
}

// TestCancelThroughAnotherPgguard: a cancel request reaches the backend
// through any pgguard in front of the server, not only the one the session
// runs through, as behind a load balancer that spreads connections.
func TestCancelThroughAnotherPgguard(t *testing.T) {
	pg := sharedPG(t)
	super := superConn(t, pg)
	first := startProxy(t, proxy.Config{})
	second := startProxy(t, proxy.Config{})
	rc := rawStartup(t, first.Addr, pgtest.Superuser)
	marker := "SELECT pg_sleep(30) -- " + uniqueName("elsewhere")
	rc.send(t, &pgproto3.Query{String: marker})
	eventually(t, "the statement to run", func() bool { return activeQueries(t, super, marker) == 1 })
	cc := rawDial(t, second.Addr)
	if _, err := cc.Write(cancelPacket(rc.pid, rc.key)); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, cc)
	if got := rc.untilReady(t); !slices.Contains(got, "E:57014") {
		t.Fatalf("reply %v, want 57014", got)
	}
}
