package proxy_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
)

// traced makes pgx trace every protocol message into buf, so a test can see
// which authentication request the server sent through the proxy.
func traced(buf io.Writer) func(*pgx.ConnConfig) {
	return func(cfg *pgx.ConnConfig) {
		cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
			fe := pgproto3.NewFrontend(r, w)
			fe.Trace(buf, pgproto3.TracerOptions{SuppressTimestamps: true})
			return fe
		}
	}
}

// TestAuthMethods: every authentication method PostgreSQL offers over TCP
// passes through the proxy untouched, and PostgreSQL's own refusals reach the
// client.
func TestAuthMethods(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{HBA: []string{
		"host all trust_user 127.0.0.1/32 trust",
		"host all cleartext_user 127.0.0.1/32 password",
		"host all scram_user 127.0.0.1/32 scram-sha-256",
		// md5_user falls through to pgtest's "host all all md5" line.
	}})
	pg.MustCreateRole(t, "trust_user", "unused", pgtest.SCRAM)
	pg.MustCreateRole(t, "cleartext_user", "clear_pw", pgtest.SCRAM)
	pg.MustCreateRole(t, "md5_user", "md5_pw", pgtest.MD5)
	pg.MustCreateRole(t, "scram_user", "scram_pw", pgtest.SCRAM)
	p := startProxy(t, proxy.Config{Upstream: plainUpstream(pg)})

	cases := []struct {
		user, password string
		authMessage    string // the request the client must have seen
	}{
		{"trust_user", "", "AuthenticationOk"},
		{"cleartext_user", "clear_pw", "AuthenticationCleartextPassword"},
		{"md5_user", "md5_pw", "AuthenticationMD5Password"},
		{"scram_user", "scram_pw", "AuthenticationSASLFinal"},
	}
	for _, tc := range cases {
		t.Run(tc.user, func(t *testing.T) {
			var trace pgtest.SyncBuffer
			conn := connectWith(t, p.URL(tc.user, tc.password, "postgres", ""), traced(&trace))
			var who string
			if err := conn.QueryRow(testCtx(t), "SELECT current_user").Scan(&who); err != nil {
				t.Fatal(err)
			}
			if who != tc.user {
				t.Fatalf("current_user = %q, want %q", who, tc.user)
			}
			if !strings.Contains(trace.String(), "\t"+tc.authMessage+"\t") {
				t.Fatalf("client never saw %s; trace:\n%s", tc.authMessage, trace.String())
			}
			if tc.authMessage != "AuthenticationOk" && strings.Count(trace.String(), "AuthenticationOk") != 1 {
				t.Fatalf("want exactly one AuthenticationOk; trace:\n%s", trace.String())
			}
		})
	}

	for _, user := range []string{"cleartext_user", "md5_user", "scram_user"} {
		t.Run("wrong_password_"+user, func(t *testing.T) {
			_, err := tryConnect(t, p.URL(user, "not-the-password", "postgres", ""), nil)
			wantPgError(t, err, "28P01", `password authentication failed for user "`+user+`"`)
		})
	}

	t.Run("unknown_database", func(t *testing.T) {
		_, err := tryConnect(t, p.URL("scram_user", "scram_pw", "no_such_db", ""), nil)
		wantPgError(t, err, "3D000", `database "no_such_db" does not exist`)
	})

	t.Run("unknown_user", func(t *testing.T) {
		_, err := tryConnect(t, p.URL("nobody", "pw", "postgres", ""), nil)
		wantPgError(t, err, "28P01", `"nobody"`)
	})

	// The proxy is still serving after all the refusals.
	p.assertServing(t)
	conn := connect(t, p.URL("md5_user", "md5_pw", "postgres", ""))
	if _, err := conn.Exec(testCtx(t), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

// TestAuthSessionIdentity: the interceptor's Session carries the user,
// database and startup parameters of the authenticated client.
func TestAuthSessionIdentity(t *testing.T) {
	ti := newTestInterceptor()
	p := startProxy(t, proxy.Config{Interceptor: ti})
	conn := connect(t, p.URL(appUser, appPassword, "postgres", "sslmode=disable&application_name=idcheck&options=-c%20pgguard.purpose%3Dbilling"))
	var purpose string
	if err := conn.QueryRow(testCtx(t), "SELECT current_setting('pgguard.purpose')").Scan(&purpose); err != nil {
		t.Fatal(err)
	}
	if purpose != "billing" {
		t.Fatalf("startup option did not reach PostgreSQL: %q", purpose)
	}
	s := ti.lastSession(t)
	if s.User != appUser || s.Database != "postgres" {
		t.Fatalf("session user/database = %q/%q", s.User, s.Database)
	}
	if got := s.StartupParameter("options"); got != "-c pgguard.purpose=billing" {
		t.Fatalf("options = %q", got)
	}
	if got := s.Parameter("application_name"); got != "idcheck" {
		t.Fatalf("application_name = %q", got)
	}
	if s.ClientAddr == nil || !strings.HasPrefix(s.ClientAddr.String(), "127.0.0.1:") {
		t.Fatalf("client addr = %v", s.ClientAddr)
	}
}

// failingInterceptor refuses every session.
type failingInterceptor struct{}

func (failingInterceptor) OpenSession(context.Context, *proxy.Session) (proxy.SessionInterceptor, error) {
	return nil, errors.New("policy not loaded")
}

// TestAuthOpenSessionError: an interceptor that cannot open a session ends
// it with FATAL XX000, and the upstream session is closed with it.
func TestAuthOpenSessionError(t *testing.T) {
	pg := sharedPG(t)
	super := superConn(t, pg)
	p := startProxy(t, proxy.Config{Interceptor: failingInterceptor{}})
	app := uniqueName("refused")
	rc := rawDial(t, p.Addr)
	rc.send(t, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": pgtest.Superuser, "database": "postgres", "application_name": app}})
	// Authentication succeeded upstream, but the client never sees
	// ReadyForQuery: the session fails before it could start.
	var e *pgproto3.ErrorResponse
	for e == nil {
		switch m := rc.recv(t).(type) {
		case *pgproto3.AuthenticationOk, *pgproto3.ParameterStatus, *pgproto3.BackendKeyData, *pgproto3.NoticeResponse:
		case *pgproto3.ErrorResponse:
			e = m
		default:
			t.Fatalf("unexpected startup reply %s", describe(m))
		}
	}
	if e.Severity != "FATAL" || e.Code != "XX000" || e.Message != "pgguard: cannot open session: policy not loaded" {
		t.Fatalf("got %s %s %q", e.Severity, e.Code, e.Message)
	}
	expectClosed(t, rc)
	eventually(t, "the upstream session to end", func() bool {
		var n int
		err := super.QueryRow(testCtx(t), "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n)
		return err == nil && n == 0
	})
}
