package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
)

// mustWork runs a trivial query on a fresh session through p.
func mustWork(t *testing.T, p *testProxy) {
	t.Helper()
	conn := connect(t, p.AppURL())
	var n int
	if err := conn.QueryRow(testCtx(t), "SELECT 6 * 7").Scan(&n); err != nil || n != 42 {
		t.Fatalf("a fresh session does not work: %d, %v", n, err)
	}
}

// TestFaultGarbageStartup: garbage instead of a startup packet closes that
// connection and no other.
func TestFaultGarbageStartup(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	// A session that is open throughout.
	bystander := connect(t, p.AppURL())
	// And a client stuck half-way through its startup packet.
	stuck := rawDial(t, p.Addr)
	if _, err := stuck.Write(superStartup(pgproto3.ProtocolVersion30)[:6]); err != nil {
		t.Fatal(err)
	}

	garbage := map[string][]byte{
		"http":             []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"tls_client_hello": {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03},
		"zero_length":      {0, 0, 0, 0},
		"length_4":         {0, 0, 0, 4},
		"length_7":         {0, 0, 0, 7, 1, 2, 3},
		"huge_length":      {0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0},
		"over_10000":       {0, 0, 0x27, 0x11, 0, 3, 0, 0},
		"cancel_too_short": {0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1},
		"cancel_unknown":   cancelPacket(12345, 67890),
	}
	var wg sync.WaitGroup
	for name, pkt := range garbage {
		wg.Go(func() {
			rc := rawDial(t, p.Addr)
			if _, err := rc.Write(pkt); err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			rest := expectClosed(t, rc)
			// Either nothing, or the 'N' to an SSLRequest, or a FATAL error.
			if len(rest) > 0 && rest[0] != 'N' && rest[0] != 'E' {
				t.Errorf("%s: reply %q", name, rest)
			}
			if rest := bytes.TrimPrefix(rest, []byte{'N'}); len(rest) > 0 && !bytes.Contains(rest, []byte("SFATAL")) {
				t.Errorf("%s: reply %q", name, rest)
			}
		})
	}
	wg.Wait()
	var n int
	if err := bystander.QueryRow(testCtx(t), "SELECT 1").Scan(&n); err != nil {
		t.Fatalf("the open session broke: %v", err)
	}
	mustWork(t, p)
	p.assertServing(t)
}

// TestFaultProtocolViolations: after startup, a message type a client may
// not send, or a length that cannot be, ends the session with FATAL 08P01.
func TestFaultProtocolViolations(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	cases := map[string][]byte{
		"unknown_type":           frame('z', nil),
		"password_after_startup": frame('p', []byte("secret\x00")),
		"startup_again":          superStartup(pgproto3.ProtocolVersion30),
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			rc := rawStartup(t, p.Addr, pgtest.Superuser)
			if _, err := rc.Write(msg); err != nil {
				t.Fatal(err)
			}
			e := rc.recvError(t)
			if e.Severity != "FATAL" || e.Code != "08P01" || !strings.HasPrefix(e.Message, "pgguard: invalid frontend message type") {
				t.Fatalf("got %s %s %q", e.Severity, e.Code, e.Message)
			}
			if rest := expectClosed(t, rc); len(rest) != 0 {
				t.Fatalf("after the FATAL error: %q", rest)
			}
		})
	}
	t.Run("length_below_4", func(t *testing.T) {
		rc := rawStartup(t, p.Addr, pgtest.Superuser)
		if _, err := rc.Write([]byte{'Q', 0, 0, 0, 2}); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, rc)
	})
	mustWork(t, p)
}

// TestFaultMessageTooLarge: a client message over MaxMessageSize ends that
// session with FATAL 54000; the limit is inclusive and other sessions go on.
func TestFaultMessageTooLarge(t *testing.T) {
	const limit = 64 << 10
	p := startProxy(t, proxy.Config{MaxMessageSize: limit})
	bystander := connect(t, p.AppURL())

	rc := rawStartup(t, p.Addr, pgtest.Superuser)
	// A Query right at the limit passes: body = text + NUL.
	text := "SELECT '" + strings.Repeat("x", limit-len("SELECT ''")-1) + "'"
	got := rc.query(t, text)
	if len(got) != 4 || got[0] != "T" || got[2] != "C:SELECT 1" {
		t.Fatalf("a query of exactly the limit: %v", got[:min(len(got), 1)])
	}
	// One byte more is refused as soon as the header says so. Only the
	// header is sent, so the refusal cannot be lost to a TCP reset.
	if _, err := rc.Write([]byte{'Q', 0, 1, 0, 5}); err != nil { // 65541 - 4 = limit + 1
		t.Fatal(err)
	}
	e := rc.recvError(t)
	if e.Severity != "FATAL" || e.Code != "54000" || !strings.Contains(e.Message, strconv.Itoa(limit)) {
		t.Fatalf("got %s %s %q", e.Severity, e.Code, e.Message)
	}
	expectClosed(t, rc)

	// A pgx client sending a large statement fails, and nothing else does.
	big := connect(t, p.AppURL())
	if _, err := big.Exec(testCtx(t), "SELECT '"+strings.Repeat("y", 2*limit)+"'"); err == nil {
		t.Fatal("a statement over the limit went through")
	}
	var n int
	if err := bystander.QueryRow(testCtx(t), "SELECT 1").Scan(&n); err != nil {
		t.Fatalf("another session broke: %v", err)
	}
	mustWork(t, p)
}

// closedPort returns an address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestFaultUpstreamDown: with nothing at the upstream address, each client
// gets FATAL 08006 naming it, and the proxy goes on serving.
func TestFaultUpstreamDown(t *testing.T) {
	addr := closedPort(t)
	p := startProxy(t, proxy.Config{Upstream: "postgres://" + addr + "/?sslmode=prefer"})
	for range 3 {
		_, err := tryConnect(t, p.AppURL(), nil)
		pe := wantPgError(t, err, "08006", "pgguard: could not connect to upstream "+addr)
		if pe.Severity != "FATAL" {
			t.Fatalf("severity %q", pe.Severity)
		}
	}
	p.assertServing(t)
	if n := p.Srv.ActiveConnections(); n != 0 {
		eventually(t, "refused sessions to be gone", func() bool { return p.Srv.ActiveConnections() == 0 })
	}
}

// TestFaultUpstreamCut: the network path to PostgreSQL fails mid-session;
// the client hears FATAL 08006 at once, unprompted, and new sessions work.
func TestFaultUpstreamCut(t *testing.T) {
	pg := sharedPG(t)
	fwd := newForwarder(t, pg.Addr())
	p := startProxy(t, proxy.Config{Upstream: "postgres://" + fwd.Addr() + "/?sslmode=disable"})
	rc := rawStartup(t, p.Addr, pgtest.Superuser)
	if got := rc.query(t, "SELECT 1"); !slices.Equal(got, []string{"T", "D:1", "C:SELECT 1", "Z:I"}) {
		t.Fatal(got)
	}
	fwd.cut()
	e := rc.recvError(t)
	if e.Severity != "FATAL" || e.Code != "08006" || e.Message != "pgguard: lost connection to upstream "+fwd.Addr() {
		t.Fatalf("got %s %s %q", e.Severity, e.Code, e.Message)
	}
	if rest := expectClosed(t, rc); len(rest) != 0 {
		t.Fatalf("after the FATAL error: %q", rest)
	}
	mustWork(t, p)
}

// TestFaultBackendTerminated: pg_terminate_backend reaches the client as
// PostgreSQL's own FATAL 57P01, with nothing of pgguard's added.
func TestFaultBackendTerminated(t *testing.T) {
	pg := sharedPG(t)
	super := superConn(t, pg)
	p := startProxy(t, proxy.Config{})
	rc := rawStartup(t, p.Addr, pgtest.Superuser)
	got := rc.query(t, "SELECT pg_backend_pid()")
	if len(got) != 4 {
		t.Fatal(got)
	}
	pid, _ := strconv.Atoi(got[1][2:])
	var ok bool
	if err := super.QueryRow(testCtx(t), "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate: %v %v", ok, err)
	}
	e := rc.recvError(t)
	if e.Severity != "FATAL" || e.Code != "57P01" || strings.HasPrefix(e.Message, "pgguard") {
		t.Fatalf("got %s %s %q", e.Severity, e.Code, e.Message)
	}
	if rest := expectClosed(t, rc); len(rest) != 0 {
		t.Fatalf("pgguard added %q after PostgreSQL's FATAL error", rest)
	}
	mustWork(t, p)
}

// TestFaultSlowClient: a client that stops reading a large result holds its
// own session only.
func TestFaultSlowClient(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	slow := rawStartup(t, p.Addr, pgtest.Superuser)
	slow.send(t, &pgproto3.Query{String: "SELECT repeat('x', 1000) FROM generate_series(1, 1000000)"})
	// Read a little, so the result is known to be flowing, then stop.
	if msg := slow.recv(t); describe(msg) != "T" {
		t.Fatalf("first reply %s", describe(msg))
	}
	other := connect(t, p.AppURL())
	for i := range 50 {
		var n int
		if err := other.QueryRow(testCtx(t), "SELECT $1::int", i).Scan(&n); err != nil || n != i {
			t.Fatalf("query %d beside a stalled client: %d, %v", i, n, err)
		}
	}
	mustWork(t, p)
	before := p.Srv.ActiveConnections() // slow, other and mustWork's
	slow.Close()
	eventually(t, "the stalled session to end", func() bool { return p.Srv.ActiveConnections() == before-1 })
}

// TestFaultGracefulShutdown: Shutdown stops accepting, leaves open sessions
// working until its context ends, then closes them with FATAL 57P01.
func TestFaultGracefulShutdown(t *testing.T) {
	t.Run("context_expires", func(t *testing.T) {
		p := startProxy(t, proxy.Config{})
		rc := rawStartup(t, p.Addr, pgtest.Superuser)
		conn := connect(t, p.AppURL())
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- p.Srv.Shutdown(ctx) }()
		eventually(t, "the listener to close", func() bool {
			c, err := net.DialTimeout("tcp", p.Addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err != nil
		})
		// Open sessions keep working, and Shutdown keeps waiting for them.
		for i := range 5 {
			if got := rc.query(t, "SELECT "+strconv.Itoa(i)); len(got) != 4 || got[1] != "D:"+strconv.Itoa(i) {
				t.Fatalf("raw session during shutdown: %v", got)
			}
			var n int
			if err := conn.QueryRow(testCtx(t), "SELECT $1::int", i).Scan(&n); err != nil || n != i {
				t.Fatalf("pgx session during shutdown: %v", err)
			}
		}
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with sessions open", err)
		default:
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Shutdown returned %v, want context.Canceled", err)
			}
		case <-time.After(ioTimeout):
			t.Fatal("Shutdown did not return after its context ended")
		}
		e := rc.recvError(t)
		if e.Severity != "FATAL" || e.Code != "57P01" || !strings.Contains(e.Message, "shutting down") {
			t.Fatalf("got %s %s %q", e.Severity, e.Code, e.Message)
		}
		expectClosed(t, rc)
		if _, err := conn.Exec(testCtx(t), "SELECT 1"); err == nil {
			t.Fatal("the pgx session survived the shutdown")
		}
		if n := p.Srv.ActiveConnections(); n != 0 {
			t.Fatalf("%d connections after Shutdown returned", n)
		}
	})
	t.Run("sessions_end_first", func(t *testing.T) {
		p := startProxy(t, proxy.Config{})
		rc := rawStartup(t, p.Addr, pgtest.Superuser)
		done := make(chan error, 1)
		go func() { done <- p.Srv.Shutdown(testCtx(t)) }()
		eventually(t, "the listener to close", func() bool {
			c, err := net.DialTimeout("tcp", p.Addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err != nil
		})
		rc.send(t, &pgproto3.Terminate{})
		expectClosed(t, rc)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Shutdown returned %v, want nil", err)
			}
		case <-time.After(ioTimeout):
			t.Fatal("Shutdown did not return after the last session ended")
		}
	})
}

// TestFaultShutdownWithStalledClient: a client that stopped reading in the
// middle of a large result does not keep Shutdown from returning once its
// context ends.
func TestFaultShutdownWithStalledClient(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	stalled := rawStartup(t, p.Addr, pgtest.Superuser)
	stalled.send(t, &pgproto3.Query{String: "SELECT repeat('x', 1000) FROM generate_series(1, 1000000)"})
	if msg := stalled.recv(t); describe(msg) != "T" {
		t.Fatalf("first reply %s", describe(msg))
	}
	// Let the buffers between PostgreSQL and the client fill up.
	eventually(t, "the result to back up", func() bool {
		var n int
		err := superConn(t, sharedPG(t)).QueryRow(testCtx(t), `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event = 'ClientWrite' AND query LIKE 'SELECT repeat(''x'', 1000)%'`).Scan(&n)
		return err == nil && n == 1
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- p.Srv.Shutdown(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("Shutdown hangs on a client that does not read")
	}
	if n := p.Srv.ActiveConnections(); n != 0 {
		t.Fatalf("%d connections after Shutdown returned", n)
	}
}

// TestFaultNoGoroutineLeaks: every path a session can take gives back its
// goroutines, and every interceptor session is closed.
func TestFaultNoGoroutineLeaks(t *testing.T) {
	pg := sharedPG(t)
	super := superConn(t, pg)
	serverTLS, proxyCA := proxyTLS(t)
	runtime.GC()
	baseline := runtime.NumGoroutine()

	ti := newTestInterceptor()
	srv, err := proxy.New(proxy.Config{Upstream: plainUpstream(pg), Interceptor: ti, TLS: serverTLS, StartupTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	p := &testProxy{Addr: l.Addr().String(), Srv: srv, served: served}

	func() {
		// A client that never speaks, closed by StartupTimeout meanwhile.
		silent := rawDial(t, p.Addr)
		var wg sync.WaitGroup
		for i := range 10 { // plain and TLS sessions, allowed and denied
			wg.Go(func() {
				q := "sslmode=disable"
				if i%2 == 1 {
					q = verifyFull(proxyCA)
				}
				conn, err := tryConnect(t, p.URL(appUser, appPassword, "postgres", q), cancelOnContext)
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close(context.Background())
				_, _ = conn.Exec(context.Background(), "SELECT 1")
				if pgCode(func() error { _, err := conn.Exec(context.Background(), "SELECT '"+denyMarker+"'"); return err }()) != "42501" {
					t.Error("no denial")
				}
			})
		}
		wg.Wait()
		// A cancelled statement.
		conn := connectWith(t, p.AppURL(), cancelOnContext)
		ctx, cancel := context.WithCancel(context.Background())
		marker := "SELECT pg_sleep(30) -- " + uniqueName("leak")
		errc := make(chan error, 1)
		go func() { _, err := conn.Exec(ctx, marker); errc <- err }()
		eventually(t, "the statement to run", func() bool { return activeQueries(t, super, marker) == 1 })
		cancel()
		if err := <-errc; pgCode(err) != "57014" {
			t.Errorf("cancel: %v", err)
		}
		conn.Close(context.Background())
		// Abrupt closes, garbage, a silent client, a protocol violation.
		rc := rawStartup(t, p.Addr, pgtest.Superuser)
		rc.Close()
		g := rawDial(t, p.Addr)
		_, _ = g.Write([]byte("garbage!"))
		expectClosed(t, g)
		v := rawStartup(t, p.Addr, pgtest.Superuser)
		_, _ = v.Write(frame('z', nil))
		expectClosed(t, v)
		expectClosed(t, silent)
		// A session still open when the server closes.
		open := rawStartup(t, p.Addr, pgtest.Superuser)
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, open)
	}()
	if err := <-served; !errors.Is(err, proxy.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}

	deadline := time.Now().Add(ioTimeout)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			var dump strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
			t.Fatalf("%d goroutines, baseline %d:\n%s", runtime.NumGoroutine(), baseline, dump.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ti.mu.Lock()
	opened := len(ti.sessions)
	ti.mu.Unlock()
	if closed := ti.closedSessions(); opened < 14 || closed != opened {
		t.Fatalf("interceptor sessions: %d opened, %d closed", opened, closed)
	}
}
