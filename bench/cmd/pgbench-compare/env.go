package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/pgtest"
)

const (
	benchDB       = "bench"
	benchUser     = "bench"
	benchPassword = "bench-Secret-42"
)

// env is everything the measurement runs against.
type env struct {
	work    string
	pg      *pgtest.Server
	bouncer *proc
	guard   *proc
	// With -tls variants that encrypt the proxies' leg to PostgreSQL:
	// a PgBouncer and a pgguard that talk TLS to it.
	bouncerTLS, guardTLS *proc
	// cert is the proxies' certificate for TLS towards clients; empty
	// without TLS variants.
	cert     pgtest.CertFiles
	guardBin string
	commit   string              // of the tree pgguard was built from
	runAs    *syscall.Credential // PgBouncer's identity when we are root
	o        *options
	// upstream is the port the proxies started next connect to:
	// PostgreSQL's, or the idle measurement's pool (-idle-pool).
	upstream int
}

// proc is a server process we started.
type proc struct {
	name string
	cmd  *exec.Cmd
	port int
	log  string
	done chan struct{}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	// SIGTERM: PgBouncer's immediate shutdown (SIGINT waits for clients);
	// pgguard drains, and no client is left by now.
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (e *env) close() {
	e.guard.stop()
	e.bouncer.stop()
	e.guardTLS.stop()
	e.bouncerTLS.stop()
	if e.pg != nil {
		e.pg.Close()
	}
}

// port of a target.
func (e *env) port(target string) int {
	switch target {
	case "pgbouncer":
		return e.bouncer.port
	case "pgguard":
		return e.guard.port
	}
	return e.pg.Port
}

// proxyProc is the proxy process of a target, nil for direct.
func (e *env) proxyProc(target string) *proc {
	switch target {
	case "pgbouncer":
		return e.bouncer
	case "pgguard":
		return e.guard
	}
	return nil
}

// portFor is the port of target for configuration c: a proxy that talks
// TLS to PostgreSQL for the variants that want it.
func (e *env) portFor(c config, target string) int {
	if p := e.proxyFor(c, target); p != nil {
		return p.port
	}
	return e.pg.Port
}

// proxyFor is the proxy process of target for configuration c, nil for
// direct.
func (e *env) proxyFor(c config, target string) *proc {
	if !c.serverTLS() {
		return e.proxyProc(target)
	}
	switch target {
	case "pgbouncer":
		return e.bouncerTLS
	case "pgguard":
		return e.guardTLS
	}
	return nil
}

// benchURL connects as the pgbench role to the bench database via target.
func (e *env) benchURL(target string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", benchUser, benchPassword, e.port(target), benchDB)
}

func (e *env) superURL() string { return e.pg.URL(pgtest.Superuser, "", benchDB) }

func setUp(ctx context.Context, o *options, root, work string) (*env, error) {
	e := &env{work: work, o: o}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		e.runAs = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}

	e.commit = commitOf(root)
	if o.pgguard != "" {
		e.commit = "prebuilt " + o.pgguard
	}
	if has(o.targets, "pgguard") {
		e.guardBin = o.pgguard
		if e.guardBin == "" {
			e.guardBin = filepath.Join(work, "bin", "pgguard")
			logf("building pgguard: go build -o %s ./cmd/pgguard", e.guardBin)
			cmd := exec.CommandContext(ctx, "go", "build", "-o", e.guardBin, "./cmd/pgguard")
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				return e, fmt.Errorf("go build ./cmd/pgguard: %v\n%s", err, out)
			}
		}
	}

	anyTLS := slices.ContainsFunc(o.tls, func(v string) bool { return v != "none" })
	serverTLS := has(o.tls, "server") || has(o.tls, "both")
	if anyTLS {
		if err := os.MkdirAll(filepath.Join(work, "certs"), 0o755); err != nil {
			return e, err
		}
		cert, err := pgtest.GenerateCert(filepath.Join(work, "certs"))
		if err != nil {
			return e, err
		}
		e.cert = cert
		if e.runAs != nil { // PgBouncer, as postgres, reads the key
			for _, f := range []string{filepath.Join(work, "certs"), e.cert.CertFile, e.cert.KeyFile} {
				if err := os.Chown(f, int(e.runAs.Uid), int(e.runAs.Gid)); err != nil {
					return e, err
				}
			}
		}
	}
	// Room for the idle-connection test behind a session-mode proxy, or
	// for its pool.
	maxConns := max(300, o.maxIdle()+100)
	if o.idlePool > 0 {
		maxConns = max(300, o.idlePool+100)
	}
	logf("starting PostgreSQL (max_connections %d, TLS %v)", maxConns, anyTLS)
	pg, err := pgtest.Launch(pgtest.Options{TLS: anyTLS, Settings: map[string]string{
		"max_connections": strconv.Itoa(maxConns),
		// The pgbench tables (scale 10: ~160 MB) stay in shared buffers.
		"shared_buffers": "512MB",
		// Checkpoints only when the harness asks, between runs.
		"max_wal_size":       "4GB",
		"checkpoint_timeout": "1h",
	}})
	if err != nil {
		return e, err
	}
	e.pg = pg
	e.upstream = pg.Port
	logf("PostgreSQL on %s", pg.Addr())

	if err := pg.CreateDatabase(ctx, benchDB); err != nil {
		return e, err
	}
	if err := pg.CreateRole(ctx, benchUser, benchPassword, pgtest.SCRAM); err != nil {
		return e, err
	}
	logf("pgbench -i -s %d", o.scale)
	initCmd := exec.CommandContext(ctx, "pgbench", "-i", "-q", "-s", strconv.Itoa(o.scale),
		"-h", pg.Host, "-p", strconv.Itoa(pg.Port), "-U", pgtest.Superuser, benchDB)
	initCmd.Env = append(os.Environ(), "PGSSLMODE=disable")
	if out, err := initCmd.CombinedOutput(); err != nil {
		return e, fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	for _, sql := range []string{"GRANT ALL ON ALL TABLES IN SCHEMA public TO " + benchUser, "VACUUM ANALYZE", "CHECKPOINT"} {
		if err := pg.Exec(ctx, benchDB, sql); err != nil {
			return e, err
		}
	}

	if has(o.targets, "pgbouncer") {
		if e.bouncer, err = e.startBouncer(ctx, "pgbouncer", o.maxIdle(), false, "session"); err != nil {
			return e, err
		}
		if serverTLS {
			if e.bouncerTLS, err = e.startBouncer(ctx, "pgbouncer-tls", 0, true, "session"); err != nil {
				return e, err
			}
		}
	}
	if has(o.targets, "pgguard") {
		if e.guard, err = e.startGuard(ctx, "pgguard", "", false); err != nil {
			return e, err
		}
		if serverTLS {
			if e.guardTLS, err = e.startGuard(ctx, "pgguard-tls", "", true); err != nil {
				return e, err
			}
		}
	}
	return e, nil
}

// startBouncer starts PgBouncer in mode (session, as measured; transaction
// for the idle measurement's pool) in front of the bench database, as the
// postgres user when we are root (PgBouncer refuses root). It offers TLS to
// clients when the run has TLS variants, and talks TLS to PostgreSQL when
// serverTLS. A session-mode PgBouncer may open a server connection per
// client; the pool opens at most -idle-pool.
func (e *env) startBouncer(ctx context.Context, name string, clients int, serverTLS bool, mode string) (*proc, error) {
	dir := filepath.Join(e.work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	poolSize := clients + 100
	if mode != "session" {
		poolSize = e.o.idlePool
	}
	// A plain-text password lets PgBouncer answer the client's SCRAM
	// exchange and run its own SCRAM exchange with PostgreSQL.
	userlist := fmt.Sprintf("%q %q\n", benchUser, benchPassword)
	ini := fmt.Sprintf(`[databases]
%[1]s = host=127.0.0.1 port=%[2]d dbname=%[1]s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %[3]d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %[4]s/userlist.txt
pool_mode = %[6]s
max_client_conn = %[5]d
default_pool_size = %[7]d
logfile = %[4]s/pgbouncer.log
pidfile = %[4]s/pgbouncer.pid
log_connections = 0
log_disconnections = 0
ignore_startup_parameters = extra_float_digits
`, benchDB, e.upstream, port, dir, clients+100, mode, poolSize)
	if e.cert.CertFile != "" {
		ini += fmt.Sprintf("client_tls_sslmode = prefer\nclient_tls_cert_file = %s\nclient_tls_key_file = %s\n", e.cert.CertFile, e.cert.KeyFile)
	}
	if serverTLS {
		ini += "server_tls_sslmode = require\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(userlist), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "pgbouncer.ini"), []byte(ini), 0o600); err != nil {
		return nil, err
	}
	if e.runAs != nil {
		for _, f := range []string{dir, filepath.Join(dir, "userlist.txt"), filepath.Join(dir, "pgbouncer.ini")} {
			if err := os.Chown(f, int(e.runAs.Uid), int(e.runAs.Gid)); err != nil {
				return nil, err
			}
		}
	}
	p, err := e.start(name, dir, e.runAs, nil, "pgbouncer", filepath.Join(dir, "pgbouncer.ini"))
	if err != nil {
		return nil, err
	}
	p.port = port
	return p, e.waitReady(ctx, p)
}

// Policy lets the pgbench role read and write every pgbench table, with
// every column classified, so each statement takes the full decision path.
// The purpose the purpose-* scripts declare is named in a rule: pgguard
// warns in its log whenever a client declares a purpose the policy does not
// know, and would do so in every transaction.
const benchPolicy = `# pgbench-compare: the pgbench role may use all pgbench tables for any purpose
g, bench, bench_app
g2, public.pgbench_accounts.*, bench_accounts
g2, public.pgbench_branches.*, bench_branches
g2, public.pgbench_tellers.*, bench_tellers
g2, public.pgbench_history.*, bench_history
p, bench_app, *, bench_accounts, read, allow
p, bench_app, *, bench_accounts, write, allow
p, bench_app, *, bench_branches, read, allow
p, bench_app, *, bench_branches, write, allow
p, bench_app, *, bench_tellers, read, allow
p, bench_app, *, bench_tellers, write, allow
p, bench_app, *, bench_history, read, allow
p, bench_app, *, bench_history, write, allow
# the purpose the purpose-* scripts declare, named so that pgguard knows it
g3, ` + benchPurpose + `, bench_work
p, bench_app, bench_work, bench_accounts, read, allow
`

// benchPurpose is what the purpose-tx and purpose-set scripts set
// pgguard.purpose to.
const benchPurpose = "bench_report"

// startGuard starts pgguard in enforce mode with the bench policy; metrics
// is an address for --metrics, or empty. It offers TLS to clients when the
// run has TLS variants, and talks TLS to PostgreSQL when serverTLS.
func (e *env) startGuard(ctx context.Context, name, metrics string, serverTLS bool) (*proc, error) {
	dir := filepath.Join(e.work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	model, err := os.ReadFile("model.conf")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "model.conf"), model, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.csv"), []byte(benchPolicy), 0o644); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"serve",
		"--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--upstream", fmt.Sprintf("postgres://127.0.0.1:%d/?sslmode=%s", e.upstream, map[bool]string{false: "disable", true: "require"}[serverTLS]),
		"--catalog-url", e.superURL(),
		"--model", filepath.Join(dir, "model.conf"),
		"--policy", filepath.Join(dir, "policy.csv"),
		"--mode", "enforce",
		"--log-level", "warn",
	}
	if metrics != "" {
		args = append(args, "--metrics", metrics)
	}
	if e.cert.CertFile != "" {
		args = append(args, "--tls-cert", e.cert.CertFile, "--tls-key", e.cert.KeyFile)
	}
	p, err := e.start(name, dir, nil, e.o.guardEnv, e.guardBin, args...)
	if err != nil {
		return nil, err
	}
	p.port = port
	return p, e.waitReady(ctx, p)
}

// start runs a server process with its output in dir/NAME.out.
func (e *env) start(name, dir string, cred *syscall.Credential, extraEnv []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".out")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// waitReady polls until the pgbench role can run a query through p.
func (e *env) waitReady(ctx context.Context, p *proc) error {
	url := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", benchUser, benchPassword, p.addr(), benchDB)
	deadline := time.Now().Add(30 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.log)
			return fmt.Errorf("%s exited: %s", p.name, tail(string(b), 2000))
		default:
		}
		if lastErr = tryQuery(ctx, url); lastErr == nil {
			logf("%s ready on %s (pid %d)", p.name, p.addr(), p.pid())
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	b, _ := os.ReadFile(p.log)
	return fmt.Errorf("%s not ready: %v\n%s", p.name, lastErr, tail(string(b), 2000))
}

func tryQuery(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	// The simple protocol: a prepared statement of pgx's would stay on a
	// transaction-mode pool's server connection (-idle-pool), and the next
	// client's of the same name fail.
	var n int
	return conn.QueryRow(ctx, "SELECT count(*) FROM pgbench_branches", pgx.QueryExecModeSimpleProtocol).Scan(&n)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cpuTicks is a process's user plus system CPU time in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/PID/stat")
	}
	// After "pid (comm) ": state is field 3; utime and stime are 14 and 15.
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed CPU times in /proc/PID/stat")
	}
	return ut + st, nil
}

// clockTicks is USER_HZ, which /proc reports CPU times in.
var clockTicks = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
}()

// cpuSeconds reads a process's CPU time in seconds.
func cpuSeconds(p *proc) float64 {
	if p == nil {
		return 0
	}
	t, err := cpuTicks(p.pid())
	if err != nil {
		return 0
	}
	return float64(t) / clockTicks
}

// schedCounts sums the context switches (voluntary and involuntary, from
// /proc/PID/task/*/status) and the CPU migrations (se.nr_migrations, from
// /proc/PID/task/*/sched; -1 when the kernel does not publish it) of all of
// a process's threads. A migration makes a wake-up cost an inter-processor
// interrupt, in a VM an exit to the hypervisor: two proxies with the same
// system calls can differ there.
func schedCounts(p *proc) (switches, migrations int64) {
	if p == nil {
		return 0, 0
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", p.pid()))
	for _, t := range tasks {
		sw := sumFields(filepath.Join(t, "status"), func(k string) bool { return strings.HasSuffix(k, "ctxt_switches") })
		if sw < 0 {
			continue // the thread ended since the listing
		}
		switches += sw
		if migrations >= 0 {
			m := sumFields(filepath.Join(t, "sched"), func(k string) bool { return k == "se.nr_migrations" })
			if m < 0 {
				migrations = -1
			} else {
				migrations += m
			}
		}
	}
	return switches, migrations
}

// sumFields adds the integer values of the "key: value" lines of path
// whose key matches; -1 if the file cannot be read or has none.
func sumFields(path string, match func(string) bool) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	n, found := int64(0), false
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && match(strings.TrimSpace(k)) {
			x, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				n, found = n+x, true
			}
		}
	}
	if !found {
		return -1
	}
	return n
}

// rssBytes reads a process's resident set size.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, errors.New("no VmRSS")
}
