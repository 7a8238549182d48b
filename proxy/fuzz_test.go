package proxy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
)

// The fuzz targets run against a cluster of their own: fuzzed bytes may
// well form statements, and they should not land in the shared cluster.
// The fuzzer role is trusted and has a statement timeout, so a fuzzed
// session authenticates at once and no fuzzed statement runs for long.
const fuzzUser = "fuzzer"

func fuzzCluster(f *testing.F) *pgtest.Server {
	f.Helper()
	pg := pgtest.Start(f, pgtest.Options{HBA: []string{"host all " + fuzzUser + " 127.0.0.1/32 trust"}})
	pg.MustCreateRole(f, fuzzUser, "unused", pgtest.SCRAM)
	pg.MustExec(f, "postgres", "ALTER ROLE "+fuzzUser+" SET statement_timeout = '2s'; CREATE TABLE fuzz_t (v text); GRANT ALL ON fuzz_t TO "+fuzzUser)
	return pg
}

// fuzzStartup is a valid StartupMessage for the fuzzer role.
func fuzzStartup(version uint32, extra ...string) []byte {
	return startupPacket(version, append([]string{"user", fuzzUser, "database", "postgres"}, extra...)...)
}

func encoded(msgs ...pgproto3.FrontendMessage) []byte {
	var out []byte
	for _, m := range msgs {
		var err error
		if out, err = m.Encode(out); err != nil {
			panic(err)
		}
	}
	return out
}

// exchange writes data, half-closes and reads until pgguard closes the
// connection. A connection still open after the deadline is a hang.
func exchange(t *testing.T, c net.Conn, data []byte) []byte {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	_, _ = c.Write(data) // pgguard may close before reading it all
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	var got bytes.Buffer
	_, err := io.Copy(&got, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("pgguard neither answered nor closed within %s (%d bytes read)", ioTimeout, got.Len())
	}
	return got.Bytes()
}

// FuzzStartup feeds arbitrary bytes as the first packets of a connection.
// mode picks the proxy: bit 0 a client TLS certificate, bit 1 a closed
// upstream port instead of PostgreSQL. pgguard must neither panic nor hang.
func FuzzStartup(f *testing.F) {
	pg := fuzzCluster(f)
	serverTLS, _ := proxyTLS(f)
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()
	var proxies [4]*testProxy
	for mode := range proxies {
		cfg := proxy.Config{Upstream: plainUpstream(pg), StartupTimeout: 2 * time.Second, Interceptor: newTestInterceptor()}
		if mode&1 != 0 {
			cfg.TLS = serverTLS
		}
		if mode&2 != 0 {
			cfg.Upstream = "postgres://" + closed + "/?sslmode=prefer"
		}
		proxies[mode] = startProxy(f, cfg)
	}

	startup := fuzzStartup(pgproto3.ProtocolVersion30)
	seeds := [][]byte{
		startup,
		append(fuzzStartup(pgproto3.ProtocolVersion30), encoded(&pgproto3.Query{String: "SELECT 1"}, &pgproto3.Terminate{})...),
		requestPacket(sslRequestCode),
		append(requestPacket(sslRequestCode), startup...),
		requestPacket(gssEncRequestCode),
		append(requestPacket(gssEncRequestCode), startup...),
		append(requestPacket(gssEncRequestCode), requestPacket(sslRequestCode)...),
		cancelPacket(1, 2),
		cancelPacket(1, 2)[:10],
		{0, 0, 0},
		{0, 0, 0, 3},
		{0, 0, 0, 8},
		{0xff, 0xff, 0xff, 0xff, 0, 3, 0, 0},
		{0, 0, 0x27, 0x11, 0, 3, 0, 0},
		startup[:len(startup)-1],
		append([]byte{0, 0, 0, 100}, startup[4:]...),
		fuzzStartup(pgproto3.ProtocolVersion32),
		fuzzStartup(pgproto3.ProtocolVersion30, "_pq_.x", "y"),
		fuzzStartup(2 << 16),
		fuzzStartup(pgproto3.ProtocolVersion30, "replication", "database"),
		startupPacket(pgproto3.ProtocolVersion30, "database", "postgres"),
		fuzzStartup(pgproto3.ProtocolVersion30, "database", "no_such_db"),
		startupPacket(pgproto3.ProtocolVersion30, "user", appUser, "database", "postgres"), // md5 line: password asked
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03},
	}
	for _, s := range seeds {
		for mode := range uint8(4) {
			f.Add(s, mode)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		p := proxies[mode%4]
		c, err := net.DialTimeout("tcp", p.Addr, ioTimeout)
		if err != nil {
			t.Fatalf("pgguard stopped accepting: %v", err)
		}
		defer c.Close()
		exchange(t, c, data)
	})
}

// FuzzFraming feeds arbitrary bytes after a successful startup. pgguard must
// neither panic nor hang, and what it sends back must be well-framed
// protocol messages (the last one may be cut short when the session ends).
func FuzzFraming(f *testing.F) {
	pg := fuzzCluster(f)
	p := startProxy(f, proxy.Config{Upstream: plainUpstream(pg), MaxMessageSize: 64 << 10, Interceptor: newTestInterceptor()})

	q := func(s string) []byte { return encoded(&pgproto3.Query{String: s}) }
	seeds := [][]byte{
		q("SELECT 1"),
		encoded(&pgproto3.Terminate{}),
		encoded(&pgproto3.Parse{Query: "SELECT $1::int"}, &pgproto3.Bind{Parameters: [][]byte{[]byte("7")}},
			&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}),
		q("INSERT INTO fuzz_t VALUES ('x') -- " + denyMarker),
		append(q("BEGIN"), append(q("SELECT '"+denyMarker+"'"), q("SELECT 1")...)...),
		encoded(&pgproto3.Parse{Query: "SELECT '" + denyMarker + "'"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}),
		encoded(&pgproto3.CopyData{Data: []byte("stray")}),
		append(q("COPY fuzz_t FROM STDIN"), encoded(&pgproto3.CopyData{Data: []byte("a\n" + denyMarker + "\n")}, &pgproto3.CopyDone{})...),
		append(q("COPY fuzz_t FROM STDIN"), encoded(&pgproto3.CopyFail{Message: "no"})...),
		q("COPY (SELECT 1) TO STDOUT"),
		encoded(&pgproto3.FunctionCall{Function: 1317, ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte("abc")}}),
		encoded(&pgproto3.Flush{}),
		encoded(&pgproto3.Sync{}),
		frame('z', nil),
		frame('p', []byte("pw\x00")),
		{'Q', 0, 0},
		{'Q', 0, 0, 0, 2},
		{'Q', 0xff, 0xff, 0xff, 0xff},
		{'Q', 0, 1, 0, 5},
		{'Q', 0, 0, 0, 9, 'S', 'E', 'L'},
		q("SELECT pg_sleep(0.01); LISTEN c; NOTIFY c, 'p'"),
		q("SET application_name = 'fuzz'"),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rc := rawStartup(t, p.Addr, fuzzUser)
		got := exchange(t, rc.Conn, data)
		fe := pgproto3.NewFrontend(bytes.NewReader(got), io.Discard)
		for {
			_, err := fe.Receive()
			if err == nil {
				continue
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return
			}
			t.Fatalf("pgguard sent a malformed message stream: %v", err)
		}
	})
}
