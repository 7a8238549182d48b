package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BouncerOptions shape a PgBouncer in front of a Server, the peer pgguard's
// benchmarks measure against.
type BouncerOptions struct {
	// Database is the one database PgBouncer serves, under the same name.
	Database string
	// User and Password are the one role PgBouncer knows. PgBouncer holds the
	// password in plain text, so that it can answer the client's SCRAM
	// exchange and run its own with PostgreSQL.
	User, Password string
	// MaxClients bounds client connections and, in session mode, server
	// connections; default 100.
	MaxClients int
	// ClientTLS, when its files are set, lets clients ask for TLS
	// (client_tls_sslmode = prefer).
	ClientTLS CertFiles
	// ServerTLS makes PgBouncer talk TLS to PostgreSQL
	// (server_tls_sslmode = require).
	ServerTLS bool
	// Extra lines are appended to the [pgbouncer] section.
	Extra []string
}

// Bouncer is a running PgBouncer in session mode.
type Bouncer struct {
	// Host is always 127.0.0.1.
	Host string
	// Port is the TCP port PgBouncer listens on.
	Port int
	// Dir holds its configuration and log.
	Dir string

	cmd    *exec.Cmd
	exited chan struct{}
}

// LaunchBouncer starts PgBouncer in session mode in front of pg, as the
// postgres user when we are root (PgBouncer refuses to run as root), and
// waits until it accepts connections. The caller must Close it.
func LaunchBouncer(ctx context.Context, pg *Server, opts BouncerOptions) (*Bouncer, error) {
	if opts.MaxClients == 0 {
		opts.MaxClients = 100
	}
	if _, err := exec.LookPath("pgbouncer"); err != nil {
		return nil, errors.New("pgbouncer not found; install it with: apt-get install -y pgbouncer")
	}
	runAs, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgguard-pgbouncer-")
	if err != nil {
		return nil, fmt.Errorf("create pgbouncer folder: %w", err)
	}
	b := &Bouncer{Host: "127.0.0.1", Dir: dir, exited: make(chan struct{})}
	if err := b.start(ctx, pg, opts, runAs); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *Bouncer) start(ctx context.Context, pg *Server, opts BouncerOptions, runAs *syscall.Credential) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	b.Port = port
	ini := filepath.Join(b.Dir, "pgbouncer.ini")
	if err := os.WriteFile(filepath.Join(b.Dir, "userlist.txt"), []byte(fmt.Sprintf("%q %q\n", opts.User, opts.Password)), 0o600); err != nil {
		return err
	}
	// PgBouncer runs as another user, who may not read the caller's files.
	if opts.ClientTLS.CertFile != "" {
		if opts.ClientTLS, err = copyCert(opts.ClientTLS, b.Dir); err != nil {
			return err
		}
	}
	if err := os.WriteFile(ini, []byte(bouncerINI(pg, b, opts)), 0o600); err != nil {
		return err
	}
	if err := chownTree(b.Dir, runAs); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(b.Dir, "pgbouncer.out"))
	if err != nil {
		return err
	}
	defer log.Close()
	b.cmd = exec.Command("pgbouncer", ini)
	b.cmd.Stdout, b.cmd.Stderr = log, log
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: runAs}
	if err := b.cmd.Start(); err != nil {
		return fmt.Errorf("start pgbouncer: %w", err)
	}
	go func() { _ = b.cmd.Wait(); close(b.exited) }()
	return b.waitListening(ctx)
}

// copyCert copies the certificate and key into dir.
func copyCert(c CertFiles, dir string) (CertFiles, error) {
	out := c
	for _, f := range []struct {
		from, name string
		to         *string
	}{
		{c.CertFile, "client.crt", &out.CertFile}, {c.KeyFile, "client.key", &out.KeyFile},
	} {
		data, err := os.ReadFile(f.from)
		if err != nil {
			return c, err
		}
		*f.to = filepath.Join(dir, f.name)
		if err := os.WriteFile(*f.to, data, 0o600); err != nil {
			return c, err
		}
	}
	return out, nil
}

func bouncerINI(pg *Server, b *Bouncer, opts BouncerOptions) string {
	lines := []string{
		"[databases]",
		fmt.Sprintf("%s = host=%s port=%d dbname=%s", opts.Database, pg.Host, pg.Port, opts.Database),
		"[pgbouncer]",
		"listen_addr = " + b.Host,
		"listen_port = " + strconv.Itoa(b.Port),
		"unix_socket_dir =",
		"auth_type = scram-sha-256",
		"auth_file = " + filepath.Join(b.Dir, "userlist.txt"),
		"pool_mode = session",
		"max_client_conn = " + strconv.Itoa(opts.MaxClients),
		"default_pool_size = " + strconv.Itoa(opts.MaxClients),
		"logfile = " + filepath.Join(b.Dir, "pgbouncer.log"),
		"pidfile = " + filepath.Join(b.Dir, "pgbouncer.pid"),
		"log_connections = 0",
		"log_disconnections = 0",
		"ignore_startup_parameters = extra_float_digits",
	}
	if opts.ClientTLS.CertFile != "" {
		lines = append(lines, "client_tls_sslmode = prefer",
			"client_tls_cert_file = "+opts.ClientTLS.CertFile,
			"client_tls_key_file = "+opts.ClientTLS.KeyFile)
	}
	if opts.ServerTLS {
		lines = append(lines, "server_tls_sslmode = require")
	}
	return strings.Join(append(lines, opts.Extra...), "\n") + "\n"
}

// waitListening polls until PgBouncer accepts TCP connections, or fails
// with its log when it exits first.
func (b *Bouncer) waitListening(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-b.exited:
			return fmt.Errorf("pgbouncer exited: %s", b.Log())
		case <-ctx.Done():
			return fmt.Errorf("pgbouncer not listening on %s: %w\n%s", b.Addr(), err, b.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Addr is host:port of the listener.
func (b *Bouncer) Addr() string { return net.JoinHostPort(b.Host, strconv.Itoa(b.Port)) }

// PID is PgBouncer's process id.
func (b *Bouncer) PID() int { return b.cmd.Process.Pid }

// Log returns PgBouncer's log and output so far.
func (b *Bouncer) Log() string {
	var out strings.Builder
	for _, f := range []string{"pgbouncer.out", "pgbouncer.log"} {
		data, _ := os.ReadFile(filepath.Join(b.Dir, f))
		out.Write(data)
	}
	return out.String()
}

// Close stops PgBouncer and removes its folder.
func (b *Bouncer) Close() {
	if b.cmd != nil && b.cmd.Process != nil {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.exited:
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.exited
		}
	}
	os.RemoveAll(b.Dir)
}
