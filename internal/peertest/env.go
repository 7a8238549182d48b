// Package peertest runs a peer's own test suite, pgx's, through pgguard: the
// suite is the check that pgguard is transparent to a real client library.
//
// An Env is a throwaway PostgreSQL set up as pgx's CI sets up its test
// database (database pgx_test, the hstore and ltree extensions, the uint64
// domain, superuser roles per authentication method), plus two pgguards in
// front of it, one in enforce mode and one in monitor mode, whose policy lets
// those roles do everything: every column is in a category the roles'
// department may read and write, every function and extension may be
// executed, and attaching code (ddl) is allowed. What the suite then shows is
// what pgguard changes for a client that is allowed everything.
package peertest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/guard"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
	"github.com/rs/zerolog"
)

// Password is the password of every test role.
const Password = "secret"

// Database is the database pgx's tests use.
const Database = "pgx_test"

// Policy lets the department pgx, which holds every test role, do everything
// a policy can allow.
const Policy = `g, pgx_md5, pgx
g, pgx_ssl, pgx
g, pgx_scram, pgx
g, pgx_pw, pgx
g2, *.*.*, all_columns
g2, function:*.*, all_functions
g2, extension:*, all_extensions
p, pgx, *, all_columns, read, allow
p, pgx, *, all_columns, write, allow
p, pgx, *, all_functions, execute, allow
p, pgx, *, all_extensions, execute, allow
p, pgx, *, ddl, ddl, allow
`

// setupSQL is pgx's testsetup/postgresql_setup.sql for a cluster whose
// pg_hba.conf asks every role but postgres for a password (md5, which also
// negotiates SCRAM for SCRAM-stored passwords).
const setupSQL = `
create extension hstore;
create extension ltree;
create domain uint64 as numeric(20,0);
set password_encryption = md5;
create user pgx_md5 with superuser password 'secret';
set password_encryption = 'scram-sha-256';
create user pgx_ssl with superuser password 'secret';
create user pgx_scram with superuser password 'secret';
create user pgx_pw with superuser password 'secret';
create user " tricky, ' } "" \\ test user " superuser password 'secret';
`

// Target is where a run of the suite connects.
type Target string

const (
	// Direct is PostgreSQL itself.
	Direct Target = "direct"
	// Enforce is the pgguard that refuses denied statements.
	Enforce Target = "enforce"
	// Monitor is the pgguard in monitor mode, which forwards every statement
	// and only alerts.
	Monitor Target = "monitor"
)

// Env is a PostgreSQL prepared for pgx's tests and two pgguards in front of
// it, one per mode, each with a catalog cache of its own as separate pgguard
// processes would have.
type Env struct {
	PG *pgtest.Server
	// GuardAddrs are where each pgguard accepts clients, host:port, by
	// Enforce and Monitor.
	GuardAddrs map[Target]string
	// GuardCAFile signs the certificate the pgguards show their TLS clients.
	GuardCAFile string
	// PolicyFile and ModelFile are what pgguard runs with.
	PolicyFile, ModelFile string

	dir   string
	stops []func()
}

// Start launches PostgreSQL (with TLS), prepares it, and starts a pgguard in
// each mode with Policy and the model at modelFile. pgguard's log goes to
// logW.
func Start(ctx context.Context, modelFile string, logW io.Writer) (*Env, error) {
	pg, err := pgtest.Launch(pgtest.Options{TLS: true, Settings: map[string]string{
		// pgx's tests open many connections at once, each through pgguard
		// (which reads the catalog on connections of its own).
		"max_connections": "500",
	}})
	if err != nil {
		return nil, err
	}
	e := &Env{PG: pg}
	if err := e.start(ctx, modelFile, logW); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func (e *Env) start(ctx context.Context, modelFile string, logW io.Writer) error {
	if err := e.PG.CreateDatabase(ctx, Database); err != nil {
		return err
	}
	if err := e.PG.Exec(ctx, Database, setupSQL); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "pgguard-peertest-")
	if err != nil {
		return err
	}
	e.dir = dir
	model, err := os.ReadFile(modelFile)
	if err != nil {
		return err
	}
	e.ModelFile = filepath.Join(dir, "model.conf")
	e.PolicyFile = filepath.Join(dir, "policy.csv")
	if err := os.WriteFile(e.ModelFile, model, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(e.PolicyFile, []byte(Policy), 0o600); err != nil {
		return err
	}
	certs, err := pgtest.GenerateCert(dir)
	if err != nil {
		return err
	}
	e.GuardCAFile = certs.CAFile
	cert, err := tls.LoadX509KeyPair(certs.CertFile, certs.KeyFile)
	if err != nil {
		return err
	}
	engine, err := authz.NewEngine(e.ModelFile, e.PolicyFile, authz.Options{})
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	log := zerolog.New(logW).With().Timestamp().Logger()
	e.GuardAddrs = map[Target]string{}
	for target, mode := range map[Target]alert.Mode{Enforce: alert.ModeEnforce, Monitor: alert.ModeMonitor} {
		addr, err := e.startGuard(engine, cert, mode, log.With().Str("peertest", string(target)).Logger())
		if err != nil {
			return fmt.Errorf("pgguard in %s mode: %w", mode, err)
		}
		e.GuardAddrs[target] = addr
	}
	return nil
}

// startGuard starts one pgguard in mode and returns where it listens.
func (e *Env) startGuard(engine *authz.Engine, cert tls.Certificate, mode alert.Mode, log zerolog.Logger) (string, error) {
	alerts, err := alert.New(alert.Config{}, log, nil)
	if err != nil {
		return "", err
	}
	e.stops = append(e.stops, func() { _ = alerts.Close(context.Background()) })
	cache := catalog.NewCache(catalog.Dialer(e.PG.URL(pgtest.Superuser, "", "postgres")), time.Minute)
	e.stops = append(e.stops, cache.Close)
	g, err := guard.New(guard.Config{
		Policy: engine, Catalogs: cache, Alerts: alerts, Metrics: alert.NewMetrics(nil),
		Mode: mode, Logger: log,
	})
	if err != nil {
		return "", err
	}
	// The upstream leg is TLS too: pgx's TLS test asks pg_stat_ssl whether
	// its backend's connection is encrypted.
	srv, err := proxy.New(proxy.Config{
		Upstream:    "postgres://" + e.PG.Addr() + "/?sslmode=require",
		TLS:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Interceptor: g, Logger: log,
	})
	if err != nil {
		return "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go func() { _ = srv.Serve(l) }()
	e.stops = append(e.stops, func() { _ = srv.Close() })
	return l.Addr().String(), nil
}

// Vars are the PGX_TEST_* variables for the suite, pointing at target.
//
// Two are left out for both runs, because no TLS-terminating proxy can serve
// them and pgguard says so by design: PGX_TEST_SCRAM_PLUS_CONN_STRING (channel
// binding binds authentication to the client's own TLS session with the
// server; pgguard withdraws SCRAM-SHA-256-PLUS) and
// PGX_TEST_TLS_CLIENT_CONN_STRING (a client certificate authenticates to
// whoever ends the client's TLS, here pgguard, not PostgreSQL).
func (e *Env) Vars(target Target) []string {
	host, port := e.PG.Host, fmt.Sprint(e.PG.Port)
	ca := e.PG.CAFile
	if target != Direct {
		h, p, _ := net.SplitHostPort(e.GuardAddrs[target])
		host, port, ca = h, p, e.GuardCAFile
	}
	conn := func(user string, extra ...string) string {
		parts := append([]string{"host=" + host, "port=" + port, "user=" + user, "password=" + Password,
			"dbname=" + Database}, extra...)
		return strings.Join(parts, " ")
	}
	tlsConn := func(user string) string {
		return strings.Join([]string{"host=localhost", "port=" + port, "user=" + user, "password=" + Password,
			"dbname=" + Database, "sslmode=verify-full", "sslrootcert=" + ca, "channel_binding=disable"}, " ")
	}
	return []string{
		"PGX_TEST_DATABASE=" + conn("pgx_md5", "sslmode=disable"),
		"PGX_TEST_TCP_CONN_STRING=" + conn("pgx_md5", "sslmode=disable"),
		"PGX_TEST_MD5_PASSWORD_CONN_STRING=" + conn("pgx_md5", "sslmode=disable"),
		"PGX_TEST_SCRAM_PASSWORD_CONN_STRING=" + conn("pgx_scram", "sslmode=disable", "channel_binding=disable"),
		"PGX_TEST_PLAIN_PASSWORD_CONN_STRING=" + conn("pgx_pw", "sslmode=disable"),
		"PGX_TEST_TLS_CONN_STRING=" + tlsConn("pgx_ssl"),
	}
}

// Close stops pgguard and PostgreSQL and removes their files.
func (e *Env) Close() {
	// Servers first (they were started after their alert pipelines).
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
	if e.PG != nil {
		e.PG.Close()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}
