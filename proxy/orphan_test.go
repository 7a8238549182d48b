package proxy_test

// Orphaned server work: a statement whose client is gone, or whose pgguard
// is shutting down, must not run on in PostgreSQL.

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
)

// backendGoneWithin is how long a test waits for PostgreSQL to end an
// orphaned backend; its statements sleep for longer.
const backendGoneWithin = 10 * time.Second

// serverPID is the pid of the PostgreSQL backend behind rc.
func serverPID(t *testing.T, rc *rawConn) int {
	t.Helper()
	got := rc.query(t, "SELECT pg_backend_pid()")
	if len(got) != 4 {
		t.Fatalf("reply %v", got)
	}
	pid, err := strconv.Atoi(got[1][2:])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// backendAlive reports whether PostgreSQL still has a backend with pid.
func backendAlive(t *testing.T, super *pgx.Conn, pid int) bool {
	t.Helper()
	var n int
	if err := super.QueryRow(testCtx(t), "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// waitBackendGone fails the test unless the backend with pid has ended
// within backendGoneWithin.
func waitBackendGone(t *testing.T, super *pgx.Conn, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(backendGoneWithin)
	for backendAlive(t, super, pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: backend %d still there after %s", what, pid, backendGoneWithin)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startSleep has rc's backend run a long pg_sleep, in one of the ways a
// client may ask for it, and waits until it runs.
func startSleep(t *testing.T, super *pgx.Conn, rc *rawConn, how string) {
	t.Helper()
	marker := "SELECT pg_sleep(30) -- " + uniqueName("orphan")
	switch how {
	case "simple":
		rc.send(t, &pgproto3.Query{String: marker})
	case "extended":
		rc.send(t, &pgproto3.Parse{Query: marker}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	case "extended_no_sync":
		rc.send(t, &pgproto3.Parse{Query: marker}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
	case "idle":
		return
	default:
		t.Fatalf("unknown way %q", how)
	}
	eventually(t, "the statement to run", func() bool { return activeQueries(t, super, marker) == 1 })
}

// TestOrphanClientGone: when a client's socket closes, by FIN or by reset,
// while its statement runs, pgguard cancels the statement and the backend
// ends; an idle session's backend ends too.
func TestOrphanClientGone(t *testing.T) {
	pg := sharedPG(t)
	super := superConn(t, pg)
	p := startProxy(t, proxy.Config{})
	for _, how := range []string{"simple", "extended", "extended_no_sync", "idle"} {
		for _, reset := range []bool{false, true} {
			name := how + "/close"
			if reset {
				name = how + "/reset"
			}
			t.Run(name, func(t *testing.T) {
				rc := rawStartup(t, p.Addr, pgtest.Superuser)
				pid := serverPID(t, rc)
				startSleep(t, super, rc, how)
				if reset {
					// No FIN: the peer sees a reset.
					if err := rc.Conn.(*net.TCPConn).SetLinger(0); err != nil {
						t.Fatal(err)
					}
				}
				rc.Close()
				waitBackendGone(t, super, pid, "after the client left")
			})
		}
	}
	mustWork(t, p)
}

// TestOrphanShutdown: when pgguard stops with a statement running, by
// Shutdown's deadline or by Close, the statement is cancelled and its
// backend ends, as does an idle session's.
func TestOrphanShutdown(t *testing.T) {
	pg := sharedPG(t)
	super := superConn(t, pg)
	for _, how := range []string{"shutdown_deadline", "close"} {
		t.Run(how, func(t *testing.T) {
			p := startProxy(t, proxy.Config{})
			busy := rawStartup(t, p.Addr, pgtest.Superuser)
			busyPID := serverPID(t, busy)
			idle := rawStartup(t, p.Addr, pgtest.Superuser)
			idlePID := serverPID(t, idle)
			startSleep(t, super, busy, "simple")

			if how == "close" {
				if err := p.Srv.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				if err := p.Srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Shutdown returned %v, want its deadline", err)
				}
			}
			waitBackendGone(t, super, busyPID, "busy session after "+how)
			waitBackendGone(t, super, idlePID, "idle session after "+how)
			for _, rc := range []*rawConn{busy, idle} {
				if code := lastFatal(t, rc); code != "57P01" {
					t.Fatalf("the client's last error is %q, want FATAL 57P01", code)
				}
			}
		})
	}
}

// lastFatal reads rc until pgguard closes it and returns the SQLSTATE of the
// last FATAL error it got, or "".
func lastFatal(t *testing.T, rc *rawConn) string {
	t.Helper()
	_ = rc.SetReadDeadline(time.Now().Add(ioTimeout))
	code := ""
	for {
		msg, err := rc.fe.Receive()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open after %s", ioTimeout)
			}
			return code
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok && e.Severity == "FATAL" {
			code = e.Code
		}
	}
}
