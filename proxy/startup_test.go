package proxy_test

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
)

// superStartup is a StartupMessage for the trust superuser.
func superStartup(version uint32, extra ...string) []byte {
	return startupPacket(version, append([]string{"user", pgtest.Superuser, "database", "postgres"}, extra...)...)
}

// TestStartupGSSENCDeclined: GSSENCRequest gets 'N', then a normal startup
// on the same connection works.
func TestStartupGSSENCDeclined(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	rc := rawDial(t, p.Addr)
	if _, err := rc.Write(requestPacket(gssEncRequestCode)); err != nil {
		t.Fatal(err)
	}
	var answer [1]byte
	if _, err := io.ReadFull(rc, answer[:]); err != nil || answer[0] != 'N' {
		t.Fatalf("GSSENCRequest answer %q, %v; want 'N'", answer[0], err)
	}
	if _, err := rc.Write(superStartup(pgproto3.ProtocolVersion30)); err != nil {
		t.Fatal(err)
	}
	rc.readStartupReply(t)
	if got := rc.query(t, "SELECT 1"); !slices.Equal(got, []string{"T", "D:1", "C:SELECT 1", "Z:I"}) {
		t.Fatalf("reply %v", got)
	}
}

// TestStartupNegotiatesProtocolVersion: a 3.2 client (and one asking for
// protocol extensions) is answered with NegotiateProtocolVersion for 3.0
// and then gets a normal session.
func TestStartupNegotiatesProtocolVersion(t *testing.T) {
	cases := []struct {
		name        string
		version     uint32
		extra       []string
		wantOptions []string
	}{
		{"3.2", pgproto3.ProtocolVersion32, nil, nil},
		{"3.0_with_pq_option", pgproto3.ProtocolVersion30, []string{"_pq_.future_feature", "on"}, []string{"_pq_.future_feature"}},
		{"3.2_with_pq_option", pgproto3.ProtocolVersion32, []string{"_pq_.x", "1"}, []string{"_pq_.x"}},
	}
	p := startProxy(t, proxy.Config{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := rawDial(t, p.Addr)
			if _, err := rc.Write(superStartup(tc.version, tc.extra...)); err != nil {
				t.Fatal(err)
			}
			msg := rc.recv(t)
			npv, ok := msg.(*pgproto3.NegotiateProtocolVersion)
			if !ok {
				t.Fatalf("first reply %s, want NegotiateProtocolVersion", describe(msg))
			}
			if npv.NewestMinorProtocol != 0 || !slices.Equal(npv.UnrecognizedOptions, tc.wantOptions) {
				t.Fatalf("NegotiateProtocolVersion %+v", npv)
			}
			rc.readStartupReply(t)
			if rc.pid == 0 {
				t.Fatal("no BackendKeyData")
			}
			if got := rc.query(t, "SELECT 2"); !slices.Equal(got, []string{"T", "D:2", "C:SELECT 1", "Z:I"}) {
				t.Fatalf("reply %v", got)
			}
		})
	}
	t.Run("3.0_gets_no_negotiation", func(t *testing.T) {
		rc := rawDial(t, p.Addr)
		if _, err := rc.Write(superStartup(pgproto3.ProtocolVersion30)); err != nil {
			t.Fatal(err)
		}
		if msg := rc.recv(t); describe(msg) != "*pgproto3.AuthenticationOk" {
			t.Fatalf("first reply %s, want AuthenticationOk", describe(msg))
		}
	})
}

// TestStartupRefusals: startup packets pgguard must refuse end with a FATAL
// error and a closed connection.
func TestStartupRefusals(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	cases := []struct {
		name   string
		packet []byte
		code   string
	}{
		{"protocol_2", superStartup(2 << 16), "0A000"},
		{"protocol_4", superStartup(4 << 16), "0A000"},
		{"replication_database", superStartup(pgproto3.ProtocolVersion30, "replication", "database"), "42501"},
		{"replication_true", superStartup(pgproto3.ProtocolVersion30, "replication", "true"), "42501"},
		{"no_user", startupPacket(pgproto3.ProtocolVersion30, "database", "postgres"), "28000"},
		// Well framed, but the parameter list never ends.
		{"unterminated_parameters", []byte{0, 0, 0, 11, 0, 3, 0, 0, 'u', 's', 'e'}, "08P01"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := rawDial(t, p.Addr)
			if _, err := rc.Write(tc.packet); err != nil {
				t.Fatal(err)
			}
			e := rc.recvError(t)
			if e.Severity != "FATAL" || e.Code != tc.code {
				t.Fatalf("got %s %s %q, want FATAL %s", e.Severity, e.Code, e.Message, tc.code)
			}
			if rest := expectClosed(t, rc); len(rest) != 0 {
				t.Fatalf("%d bytes after the FATAL error", len(rest))
			}
		})
	}
	t.Run("replication_via_pgx", func(t *testing.T) {
		_, err := tryConnect(t, p.URL(appUser, appPassword, "postgres", "sslmode=disable&replication=database"), nil)
		wantPgError(t, err, "42501", "replication")
	})
	p.assertServing(t)
}

// TestStartupSSLRequestWithPlaintextInSameWrite: bytes a client sends after
// an SSLRequest, before the handshake, are never taken for the session
// (CVE-2021-23214 class): the TLS handshake consumes them and fails.
func TestStartupSSLRequestWithPlaintextInSameWrite(t *testing.T) {
	serverTLS, _ := proxyTLS(t)
	p := startProxy(t, proxy.Config{TLS: serverTLS})
	rc := rawDial(t, p.Addr)
	// The superuser is trusted: had the plaintext packet been accepted, a
	// session would follow at once.
	pkt := append(requestPacket(sslRequestCode), superStartup(pgproto3.ProtocolVersion30)...)
	if _, err := rc.Write(pkt); err != nil {
		t.Fatal(err)
	}
	var answer [1]byte
	if _, err := io.ReadFull(rc, answer[:]); err != nil || answer[0] != 'S' {
		t.Fatalf("SSLRequest answer %q, %v; want 'S'", answer[0], err)
	}
	rest := expectClosed(t, rc)
	authOK := []byte{'R', 0, 0, 0, 8, 0, 0, 0, 0}
	if bytes.Contains(rest, authOK) || bytes.Contains(rest, []byte("SELECT")) || bytes.IndexByte(rest, 'Z') == 0 {
		t.Fatalf("plaintext after SSLRequest produced a session: %q", rest)
	}
	if len(rest) > 0 && rest[0] != 0x15 { // only a TLS alert may come back
		t.Fatalf("unexpected reply after failed handshake: %q", rest)
	}
}

// TestStartupTimeout: a client that connects and sends nothing, or half a
// packet, is closed once StartupTimeout passes.
func TestStartupTimeout(t *testing.T) {
	p := startProxy(t, proxy.Config{StartupTimeout: 300 * time.Millisecond})
	cases := map[string][]byte{
		"silent":                nil,
		"half_a_packet":         superStartup(pgproto3.ProtocolVersion30)[:10],
		"after_ssl_request_N":   requestPacket(sslRequestCode),
		"after_gssenc_request_": requestPacket(gssEncRequestCode),
	}
	for name, pkt := range cases {
		t.Run(name, func(t *testing.T) {
			rc := rawDial(t, p.Addr)
			if _, err := rc.Write(pkt); err != nil {
				t.Fatal(err)
			}
			rest := expectClosed(t, rc)
			if len(pkt) == 8 && !bytes.Equal(rest, []byte{'N'}) {
				t.Fatalf("got %q, want only the 'N'", rest)
			}
			if len(pkt) != 8 && len(rest) != 0 {
				t.Fatalf("got %q, want nothing", rest)
			}
		})
	}
	// The proxy still serves clients that do speak. (Only the SSLRequest:
	// a whole login may not fit in 300ms on a loaded machine.)
	p.assertServing(t)
	rc := rawDial(t, p.Addr)
	if _, err := rc.Write(requestPacket(sslRequestCode)); err != nil {
		t.Fatal(err)
	}
	var answer [1]byte
	if _, err := io.ReadFull(rc, answer[:]); err != nil || answer[0] != 'N' {
		t.Fatalf("SSLRequest answer %q, %v", answer[0], err)
	}
}

// TestStartupBlackholeUpstream: StartupTimeout also bounds an upstream that
// accepts the connection and then never answers: the client hears why and
// the connection ends, instead of hanging forever.
func TestStartupBlackholeUpstream(t *testing.T) {
	hole := newBlackhole(t)
	p := startProxy(t, proxy.Config{
		Upstream:       "postgres://" + hole.Addr() + "/?sslmode=disable",
		StartupTimeout: 300 * time.Millisecond,
	})
	rc := rawDial(t, p.Addr)
	if _, err := rc.Write(superStartup(pgproto3.ProtocolVersion30)); err != nil {
		t.Fatal(err)
	}
	e := rc.recvError(t)
	if e.Severity != "FATAL" || e.Code != "08006" ||
		e.Message != "pgguard: upstream "+hole.Addr()+" did not complete authentication within 300ms" {
		t.Fatalf("got %s %s %q, want FATAL 08006", e.Severity, e.Code, e.Message)
	}
	expectClosed(t, rc)
	// Upstream TLS negotiation is bounded too.
	p2 := startProxy(t, proxy.Config{
		Upstream:       "postgres://" + hole.Addr() + "/?sslmode=require",
		StartupTimeout: 300 * time.Millisecond,
	})
	rc = rawDial(t, p2.Addr)
	if _, err := rc.Write(superStartup(pgproto3.ProtocolVersion30)); err != nil {
		t.Fatal(err)
	}
	if e := rc.recvError(t); e.Code != "08006" || !strings.Contains(e.Message, "could not connect to upstream "+hole.Addr()) {
		t.Fatalf("got %s %q, want 08006", e.Code, e.Message)
	}
	expectClosed(t, rc)
}

// TestStartingConnectionsCounted: connections that have not reached their
// session yet are counted by stage: before pgguard connected upstream, and
// while authentication holds a server backend; an established session
// leaves both counts.
func TestStartingConnectionsCounted(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	wantStarting := func(startup, authenticating int) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d in startup, %d authenticating", startup, authenticating), func() bool {
			s, a := p.Srv.Starting()
			return s == startup && a == authenticating
		})
	}
	silent := rawDial(t, p.Addr)
	wantStarting(1, 0)

	pending := rawDial(t, p.Addr)
	pending.send(t, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": appUser, "database": "postgres"}})
	if _, ok := pending.recv(t).(*pgproto3.AuthenticationSASL); !ok {
		t.Fatal("want the server's SCRAM challenge")
	}
	wantStarting(1, 1)

	rawStartup(t, p.Addr, pgtest.Superuser)
	wantStarting(1, 1)
	if n := p.Srv.ActiveConnections(); n != 3 {
		t.Fatalf("%d active connections, want 3", n)
	}
	silent.Close()
	pending.Close()
	wantStarting(0, 0)
}
