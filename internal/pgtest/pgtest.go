// Package pgtest runs throwaway PostgreSQL clusters for pgguard's tests and demo.
//
// A cluster lives in a fresh temporary folder, listens only on 127.0.0.1 on a free
// port, runs with fsync off, and is removed when it stops. PostgreSQL refuses to
// run as root, so when the caller is root the server runs as the "postgres" user
// in a folder that user owns.
//
// Tests use Start (one cluster per call) or Shared (one cluster per test binary,
// stopped by RunMain). Non-test code, such as `pgguard demo`, uses Launch.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the name of the bootstrap superuser of every cluster.
const Superuser = "postgres"

// Options shape a cluster. The zero value is a plain cluster with trust for the
// superuser and md5 (which also negotiates SCRAM for SCRAM-stored passwords) for
// everyone else.
type Options struct {
	// HBA lines are placed before the defaults in pg_hba.conf, so they win.
	HBA []string
	// TLS turns on ssl=on with a freshly generated CA and server certificate.
	TLS bool
	// Settings are extra `-c name=value` server settings.
	Settings map[string]string
	// BinDir holds initdb and postgres; empty means the newest of
	// /usr/lib/postgresql/*/bin, or the PATH.
	BinDir string
	// StartTimeout bounds initdb plus start; default 60s.
	StartTimeout time.Duration
}

// Server is one running throwaway cluster.
type Server struct {
	// Host is always 127.0.0.1.
	Host string
	// Port is the TCP port the server listens on.
	Port int
	// Dir is the temporary folder holding the data directory.
	Dir string
	// CAFile is the PEM file of the CA that signed the server certificate (TLS only).
	CAFile string

	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce sync.Once
}

// Launch initialises and starts a cluster. The caller must Close it.
func Launch(opts Options) (*Server, error) {
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	bin, err := findBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	runAs, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgguard-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("create cluster folder: %w", err)
	}
	s := &Server{Host: "127.0.0.1", Dir: dir, exited: make(chan struct{})}
	if err := s.boot(bin, runAs, opts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) boot(bin string, runAs *syscall.Credential, opts Options) error {
	if err := chownTree(s.Dir, runAs); err != nil {
		return err
	}
	data := s.DataDir()
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", Superuser,
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: runAs}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	if err := writeHBA(data, opts.HBA); err != nil {
		return err
	}
	settings := baseSettings(opts.Settings)
	if opts.TLS {
		if err := s.setupTLS(settings); err != nil {
			return err
		}
		if err := chownTree(s.Dir, runAs); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.StartTimeout)
	defer cancel()
	return s.startOnFreePort(ctx, bin, runAs, settings)
}

// startOnFreePort retries when another process grabbed the port between our
// probe and the server's bind.
func (s *Server) startOnFreePort(ctx context.Context, bin string, runAs *syscall.Credential, settings map[string]string) error {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		if lastErr = s.start(ctx, bin, runAs, port, settings); lastErr == nil {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return lastErr
}

func (s *Server) start(ctx context.Context, bin string, runAs *syscall.Credential, port int, settings map[string]string) error {
	args := []string{"-D", s.DataDir(), "-p", strconv.Itoa(port)}
	for _, k := range sortedKeys(settings) {
		args = append(args, "-c", k+"="+settings[k])
	}
	logFile, err := os.Create(filepath.Join(s.Dir, "server.log"))
	if err != nil {
		return fmt.Errorf("create server log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group: a Ctrl-C aimed at the test binary must not kill the
	// server before Close had a chance to stop it cleanly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: runAs, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited, s.Port = cmd, exited, port
	if err := s.waitReady(ctx); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		s.cmd = nil
		return fmt.Errorf("%w\nserver log:\n%s", err, s.Log())
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context) error {
	for {
		conn, err := pgx.Connect(ctx, s.URL(Superuser, "", "postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-s.exited:
			return errors.New("postgres exited during start")
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// DataDir is the cluster's data directory.
func (s *Server) DataDir() string { return filepath.Join(s.Dir, "data") }

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Log returns what the server wrote to its log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
	return string(b)
}

// URL is a connection URL for user (and password, when not empty) to database,
// with sslmode=disable.
func (s *Server) URL(user, password, database string) string {
	u := url.URL{Scheme: "postgres", Host: s.Addr(), Path: "/" + database, RawQuery: "sslmode=disable"}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

// Exec runs statements as the superuser in database db.
func (s *Server) Exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, s.URL(Superuser, "", db))
	if err != nil {
		return fmt.Errorf("connect as %s to %s: %w", Superuser, db, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("exec in %s: %w", db, err)
	}
	return nil
}

// AuthMethod says how a role's password is stored, which decides what the
// server asks for under an md5 pg_hba line.
type AuthMethod string

// Password storage methods.
const (
	MD5   AuthMethod = "md5"
	SCRAM AuthMethod = "scram-sha-256"
)

// CreateRole creates a login role whose password is stored with method.
func (s *Server) CreateRole(ctx context.Context, name, password string, method AuthMethod) error {
	sql := fmt.Sprintf("SET password_encryption = '%s'; CREATE ROLE %s LOGIN PASSWORD %s",
		method, pgx.Identifier{name}.Sanitize(), quoteLiteral(password))
	return s.Exec(ctx, "postgres", sql)
}

// CreateDatabase creates a database owned by the superuser.
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	return s.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// Close stops the server (fast shutdown, then kill) and removes its folder.
func (s *Server) Close() {
	s.stopOnce.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			_ = s.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-s.exited:
			case <-time.After(15 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.exited
			}
		}
		_ = os.RemoveAll(s.Dir)
	})
}

func quoteLiteral(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

func baseSettings(extra map[string]string) map[string]string {
	s := map[string]string{
		"listen_addresses":          "127.0.0.1",
		"unix_socket_directories":   "",
		"fsync":                     "off",
		"synchronous_commit":        "off",
		"full_page_writes":          "off",
		"max_connections":           "300",
		"shared_buffers":            "64MB",
		"log_min_messages":          "warning",
		"log_min_error_statement":   "panic",
		"password_encryption":       "scram-sha-256",
		"max_prepared_transactions": "0",
	}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

func writeHBA(data string, extra []string) error {
	lines := append([]string{"# written by pgtest"}, extra...)
	lines = append(lines,
		"host all "+Superuser+" 127.0.0.1/32 trust",
		"host all all 127.0.0.1/32 md5",
	)
	path := filepath.Join(data, "pg_hba.conf")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// findBinDir picks the directory holding initdb and postgres.
func findBinDir(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(dirs) > 0 {
		sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
				return d, nil
			}
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoPostgres
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// ErrNoPostgres says the PostgreSQL server binaries are not installed.
var ErrNoPostgres = errors.New("PostgreSQL server binaries (initdb, postgres) not found; " +
	"install them with: apt-get install -y postgresql")

// serverCredential returns the identity the server must run as: nil (ourselves)
// unless we are root, then the postgres user.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs a postgres user to run the server: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func chownTree(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
		return nil
	})
}
