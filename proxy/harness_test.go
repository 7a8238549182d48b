package proxy_test

// The harness: a proxy.Server on 127.0.0.1:0 in front of a throwaway
// PostgreSQL, clients (pgx, raw pgproto3 frontends) and small helpers that
// every test file shares. Nothing here skips: a missing PostgreSQL fails.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
)

// relayEnv selects the relay under test. TestMain runs the package's tests
// on the event loops, then once more in a child process on per-session
// goroutines (the relay of TLS sessions and of other systems), so every
// test covers both.
const relayEnv = "PGGUARD_TEST_RELAY"

func TestMain(m *testing.M) {
	flag.Parse()
	// Tests poison released buffers so a use after release fails at once;
	// benchmarks measure the path users run.
	proxy.PoisonReleasedBuffers(!flagSet("test.bench"))
	code := pgtest.RunMain(m)
	if code != 0 || os.Getenv(relayEnv) != "" || runtime.GOOS != "linux" || !rerunnable() {
		os.Exit(code)
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), relayEnv+"=goroutines")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	fmt.Println("proxy tests again, relaying on goroutines:")
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "proxy tests on goroutines: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// rerunnable is false for fuzzing, benchmarks and listings, which one run
// serves.
func rerunnable() bool {
	return !flagSet("test.fuzz") && !flagSet("test.bench") && !flagSet("test.list")
}

// flagSet reports whether the test flag name has a value.
func flagSet(name string) bool {
	f := flag.Lookup(name)
	return f != nil && f.Value.String() != ""
}

// onGoroutines reports whether this run relays on per-session goroutines.
func onGoroutines() bool { return os.Getenv(relayEnv) == "goroutines" || runtime.GOOS != "linux" }

// Generous bounds that only keep a broken build from hanging; no test asserts
// on how long anything takes.
const (
	testTimeout = 90 * time.Second
	ioTimeout   = 30 * time.Second
)

// appUser is a SCRAM role on the shared cluster, created once.
const (
	appUser     = "app"
	appPassword = "app_pw"
)

var appRoleOnce sync.Once

// sharedPG returns the shared cluster with appUser created.
func sharedPG(t testing.TB) *pgtest.Server {
	t.Helper()
	pg := pgtest.Shared(t)
	appRoleOnce.Do(func() {
		pg.MustCreateRole(t, appUser, appPassword, pgtest.SCRAM)
		pg.MustExec(t, "postgres", "GRANT pg_read_server_files, pg_signal_backend TO "+appUser+"; GRANT CREATE ON SCHEMA public TO "+appUser)
	})
	return pg
}

// testProxy is a running proxy.Server.
type testProxy struct {
	Addr   string
	Srv    *proxy.Server
	served chan error // Serve's result
}

// plainUpstream is the upstream URL of pg without TLS.
func plainUpstream(pg *pgtest.Server) string {
	return "postgres://" + pg.Addr() + "/?sslmode=disable"
}

// startProxy starts a proxy with cfg (Upstream defaults to the shared
// cluster) and closes it when the test ends.
func startProxy(t testing.TB, cfg proxy.Config) *testProxy {
	t.Helper()
	if cfg.Upstream == "" {
		cfg.Upstream = plainUpstream(sharedPG(t))
	}
	if cfg.EventLoops == 0 && onGoroutines() {
		cfg.EventLoops = -1
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{Addr: l.Addr().String(), Srv: srv, served: make(chan error, 1)}
	go func() { p.served <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-p.served:
			if !errors.Is(err, proxy.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(ioTimeout):
			t.Errorf("Serve did not return after Close")
		}
	})
	return p
}

// assertServing fails the test if Serve has returned.
func (p *testProxy) assertServing(t testing.TB) {
	t.Helper()
	select {
	case err := <-p.served:
		t.Fatalf("Serve returned early: %v", err)
	default:
	}
}

// URL builds a client URL for the proxy. query is appended raw
// ("sslmode=disable" when empty).
func (p *testProxy) URL(user, password, database, query string) string {
	u := url.URL{Scheme: "postgres", Host: p.Addr, Path: "/" + database}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	if query == "" {
		query = "sslmode=disable"
	}
	u.RawQuery = query
	return u.String()
}

// AppURL is the URL for appUser on database postgres.
func (p *testProxy) AppURL() string { return p.URL(appUser, appPassword, "postgres", "") }

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a pgx connection and closes it when the test ends.
func connect(t testing.TB, connString string) *pgx.Conn {
	t.Helper()
	return connectWith(t, connString, nil)
}

// connectWith is connect with a hook to adjust the configuration.
func connectWith(t testing.TB, connString string, tweak func(*pgx.ConnConfig)) *pgx.Conn {
	t.Helper()
	conn, err := tryConnect(t, connString, tweak)
	if err != nil {
		t.Fatalf("connect %s: %v", connString, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		conn.Close(ctx)
	})
	return conn
}

func tryConnect(t testing.TB, connString string, tweak func(*pgx.ConnConfig)) (*pgx.Conn, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		t.Fatalf("parse %s: %v", connString, err)
	}
	cfg.ConnectTimeout = ioTimeout
	if tweak != nil {
		tweak(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// superConn connects straight to pg as the superuser, bypassing the proxy.
func superConn(t testing.TB, pg *pgtest.Server) *pgx.Conn {
	t.Helper()
	return connect(t, pg.URL(pgtest.Superuser, "", "postgres"))
}

// pgCode is the SQLSTATE of a PostgreSQL error in err's chain, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// wantPgError fails unless err carries SQLSTATE code and its message contains
// every fragment.
func wantPgError(t testing.TB, err error, code string, fragments ...string) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("want PostgreSQL error %s, got %v", code, err)
	}
	if pe.Code != code {
		t.Fatalf("want SQLSTATE %s, got %s (%s: %s)", code, pe.Code, pe.Severity, pe.Message)
	}
	for _, f := range fragments {
		if !strings.Contains(pe.Message, f) {
			t.Fatalf("error message %q does not contain %q", pe.Message, f)
		}
	}
	return pe
}

// eventually polls cond until it holds or the bound passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var nameSeq atomic.Int64

// uniqueName makes an identifier no other test uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), nameSeq.Add(1))
}

// proxyTLS makes a certificate for the proxy's client side and returns its
// server config and the CA file clients verify it with.
func proxyTLS(t testing.TB) (*tls.Config, string) {
	t.Helper()
	files, err := pgtest.GenerateCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, files.CAFile
}

// rawConn is a hand-driven client: a socket and a pgproto3 frontend on it.
type rawConn struct {
	net.Conn
	fe  *pgproto3.Frontend
	pid uint32 // from BackendKeyData, when seen
	key uint32
}

// rawDial opens a socket to addr with a generous deadline.
func rawDial(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	_ = nc.SetDeadline(time.Now().Add(ioTimeout))
	t.Cleanup(func() { nc.Close() })
	return &rawConn{Conn: nc, fe: pgproto3.NewFrontend(nc, nc)}
}

// rawStartup connects to addr as a trust user and reads up to the first
// ReadyForQuery.
func rawStartup(t testing.TB, addr, user string) *rawConn {
	t.Helper()
	rc := rawDial(t, addr)
	rc.send(t, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": user, "database": "postgres"}})
	rc.readStartupReply(t)
	return rc
}

// readStartupReply reads authentication (trust only) up to ReadyForQuery.
func (rc *rawConn) readStartupReply(t testing.TB) {
	t.Helper()
	for {
		msg := rc.recv(t)
		switch m := msg.(type) {
		case *pgproto3.AuthenticationOk, *pgproto3.ParameterStatus, *pgproto3.NoticeResponse:
		case *pgproto3.BackendKeyData:
			rc.pid, rc.key = m.ProcessID, binary32(m.SecretKey)
		case *pgproto3.ReadyForQuery:
			return
		default:
			t.Fatalf("unexpected startup reply %s", describe(msg))
		}
	}
}

func binary32(b []byte) uint32 {
	if len(b) != 4 {
		return 0
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func (rc *rawConn) send(t testing.TB, msgs ...pgproto3.FrontendMessage) {
	t.Helper()
	for _, m := range msgs {
		rc.fe.Send(m)
	}
	if err := rc.fe.Flush(); err != nil {
		t.Fatalf("send: %v", err)
	}
}

func (rc *rawConn) recv(t testing.TB) pgproto3.BackendMessage {
	t.Helper()
	msg, err := rc.fe.Receive()
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return msg
}

// untilReady reads messages up to and including ReadyForQuery and returns
// them summarised by describe.
func (rc *rawConn) untilReady(t testing.TB) []string {
	t.Helper()
	var out []string
	for {
		msg := rc.recv(t)
		out = append(out, describe(msg))
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return out
		}
	}
}

// query runs a simple query and returns the summarised reply.
func (rc *rawConn) query(t testing.TB, sql string) []string {
	t.Helper()
	rc.send(t, &pgproto3.Query{String: sql})
	return rc.untilReady(t)
}

// expectClosed reads until the peer closes the connection and returns what
// arrived before. A read that runs into the deadline fails the test.
func expectClosed(t testing.TB, c net.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	var got bytes.Buffer
	_, err := io.Copy(&got, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s (read %d bytes)", ioTimeout, got.Len())
	}
	return got.Bytes()
}

// describe is a compact, comparable form of a backend message: the type,
// and for the messages tests care about, the part that matters.
func describe(msg pgproto3.BackendMessage) string {
	switch m := msg.(type) {
	case *pgproto3.ReadyForQuery:
		return "Z:" + string(m.TxStatus)
	case *pgproto3.ErrorResponse:
		return "E:" + m.Code
	case *pgproto3.CommandComplete:
		return "C:" + string(m.CommandTag)
	case *pgproto3.DataRow:
		var vals []string
		for _, v := range m.Values {
			vals = append(vals, string(v))
		}
		return "D:" + strings.Join(vals, ",")
	case *pgproto3.ParseComplete:
		return "1"
	case *pgproto3.BindComplete:
		return "2"
	case *pgproto3.CloseComplete:
		return "3"
	case *pgproto3.RowDescription:
		return "T"
	case *pgproto3.NoData:
		return "n"
	case *pgproto3.ParameterDescription:
		return "t"
	case *pgproto3.NoticeResponse:
		return "N:" + m.Code
	case *pgproto3.ParameterStatus:
		return "S:" + m.Name
	case *pgproto3.FunctionCallResponse:
		return "V:" + string(m.Result)
	case *pgproto3.EmptyQueryResponse:
		return "I"
	default:
		return fmt.Sprintf("%T", msg)
	}
}

// recvError reads up to the next ErrorResponse, skipping notices and
// parameter reports, and returns a copy of it.
func (rc *rawConn) recvError(t testing.TB) *pgproto3.ErrorResponse {
	t.Helper()
	for {
		msg := rc.recv(t)
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			cp := *m
			return &cp
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			t.Fatalf("want ErrorResponse, got %s", describe(msg))
		}
	}
}

// startupPacket encodes a StartupMessage with any protocol version.
func startupPacket(version uint32, params ...string) []byte {
	var body []byte
	body = append(body, byte(version>>24), byte(version>>16), byte(version>>8), byte(version))
	for _, p := range params {
		body = append(body, p...)
		body = append(body, 0)
	}
	body = append(body, 0)
	n := len(body) + 4
	return append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

// requestPacket encodes an 8-byte request (SSLRequest, GSSENCRequest).
func requestPacket(code uint32) []byte {
	return []byte{0, 0, 0, 8, byte(code >> 24), byte(code >> 16), byte(code >> 8), byte(code)}
}

const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
)

// cancelPacket encodes a CancelRequest.
func cancelPacket(pid, secret uint32) []byte {
	b, _ := (&pgproto3.CancelRequest{ProcessID: pid,
		SecretKey: []byte{byte(secret >> 24), byte(secret >> 16), byte(secret >> 8), byte(secret)}}).Encode(nil)
	return b
}

// frame encodes one typed message.
func frame(typ byte, body []byte) []byte {
	n := len(body) + 4
	return append([]byte{typ, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

// activeQueries counts backends on pg running a statement that starts with
// prefix.
func activeQueries(t testing.TB, super *pgx.Conn, prefix string) int {
	t.Helper()
	var n int
	err := super.QueryRow(testCtx(t), `SELECT count(*) FROM pg_stat_activity
		WHERE state = 'active' AND query LIKE $1 || '%' AND pid <> pg_backend_pid()`, prefix).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// tcpForwarder relays TCP connections to target until cut, standing in for
// a network path between pgguard and PostgreSQL that can fail.
type tcpForwarder struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func newForwarder(t testing.TB, target string) *tcpForwarder {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &tcpForwarder{l: l, target: target}
	t.Cleanup(func() { l.Close(); f.cut() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, in, out)
			f.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return f
}

func (f *tcpForwarder) Addr() string { return f.l.Addr().String() }

// cut closes every relayed connection at once.
func (f *tcpForwarder) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

// blackhole accepts TCP connections and never answers.
type blackhole struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newBlackhole(t testing.TB) *blackhole {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{l: l}
	t.Cleanup(func() {
		l.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
		}
	}()
	return b
}

func (b *blackhole) Addr() string { return b.l.Addr().String() }
