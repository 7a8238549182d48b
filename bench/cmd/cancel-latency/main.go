// Command cancel-latency measures how long a client waits for a cancelled
// statement to end, directly against PostgreSQL, through pgguard and
// through PgBouncer, under a pgbench load on the same target, in
// interleaved rounds.
//
// Run it from the repository root:
//
//	go run ./bench/cmd/cancel-latency -rounds 5 -cancels 100
//
// It starts a throwaway PostgreSQL with TLS on (internal/pgtest, an ECDSA
// P-256 certificate) and, for each upstream sslmode asked for, a freshly
// built pgguard and a PgBouncer in session mode, both with a certificate of
// the same key type. Each round runs every target once, in an order that
// rotates with the round: pgbench -S with the load's clients against the
// target, and meanwhile one session that runs a statement (pg_sleep), sees
// its backend (pg_backend_pid) start it (pg_stat_activity, read directly as
// the superuser) and cancels it, -cancels times. A cancel is timed as a
// client sees it: from the start of pgx's CancelRequest (connect, TLS
// handshake when the session uses TLS, as pgx and libpq 17 do, the request
// and the server's close) until the statement's 57014 error arrives on the
// session.
//
// -stages splits each CancelRequest into its waits as the client's socket
// sees them; -cgroup runs everything in a CPU cgroup of its own, outside
// the root group where the kernel's autogroup scheduling applies (see
// sched.go). The report names the autogroup setting and the cgroup.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/internal/pgtest"
)

const (
	benchDB       = "bench"
	benchUser     = "bench"
	benchPassword = "bench-Secret-42"
)

// policy lets the bench role read and write the pgbench tables.
const policy = `g, bench, bench_app
g2, public.*.*, bench_data
p, bench_app, *, bench_data, read, allow
p, bench_app, *, bench_data, write, allow
`

type options struct {
	rounds, cancels  int
	clients, threads int
	scale            int
	sslmodes         []string // client sslmode of the measured sessions and the load
	upstreams        []string // pgguard's upstream sslmodes
	pgguard          string
	guardEnv         []string
	perf             string
	keep             bool
	noSpare          bool
	bouncer          bool
	warmup, pause    time.Duration
	out              string
	loadSSLMode      string
	stages           bool
	cgroup           string
}

// target is one way to the server.
type target struct {
	name string
	port int
	pid  int // pgguard's process, 0 for direct
}

func main() {
	o, err := parseOptions(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "cancel-latency:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "cancel-latency:", err)
		os.Exit(1)
	}
}

func parseOptions(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("cancel-latency", flag.ContinueOnError)
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; each runs every target once, in an order rotating with the round")
	fs.IntVar(&o.cancels, "cancels", 100, "cancels measured per target and round")
	fs.IntVar(&o.clients, "c", 8, "pgbench clients of the load (0: no load)")
	fs.IntVar(&o.threads, "j", 2, "pgbench threads of the load")
	fs.IntVar(&o.scale, "scale", 10, "pgbench -i scale factor")
	sslmodes := fs.String("sslmode", "require", "client sslmodes to measure, comma-separated (disable, require); each is a set of targets")
	fs.StringVar(&o.loadSSLMode, "load-sslmode", "", "sslmode of the pgbench load (default: the measured client's)")
	upstreams := fs.String("upstream", "disable,require", "pgguard's upstream sslmodes, comma-separated; one pgguard each")
	fs.StringVar(&o.pgguard, "pgguard", "", "pgguard binary to use instead of building ./cmd/pgguard")
	guardEnv := fs.String("pgguard-env", "", "extra environment for pgguard, space-separated NAME=VALUE")
	fs.BoolVar(&o.noSpare, "no-spare", false, "also measure each pgguard with --cancel-spare-age 0: every cancel on a connection of its own")
	fs.BoolVar(&o.bouncer, "pgbouncer", true, "also measure PgBouncer (session mode, TLS to clients), one per upstream sslmode")
	fs.StringVar(&o.perf, "perf", "", "folder for perf record profiles of each pgguard during its measured runs (needs perf, as root)")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before the first measured cancel of a run")
	fs.DurationVar(&o.pause, "pause", 20*time.Millisecond, "pause between a cancel and the next statement")
	fs.StringVar(&o.out, "out", "", "also write the report to this file")
	fs.StringVar(&o.cgroup, "cgroup", "", "CPU cgroup folder (e.g. /sys/fs/cgroup/cpu/cancelbench, or a cgroup v2 folder) to run in with everything started, outside the root group where autogroup applies (needs root)")
	fs.BoolVar(&o.stages, "stages", false, "log, per run, where the client's CancelRequest waited (connect, the reply to the SSLRequest, the TLS handshake, the request until the close)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work folder")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.sslmodes, o.upstreams = strings.Split(*sslmodes, ","), strings.Split(*upstreams, ",")
	o.guardEnv = strings.Fields(*guardEnv)
	for _, m := range append(slices.Clone(o.sslmodes), o.upstreams...) {
		if m != "disable" && m != "prefer" && m != "require" {
			return nil, fmt.Errorf("sslmode %q: want disable, prefer or require", m)
		}
	}
	if o.rounds < 1 || o.cancels < 1 {
		return nil, errors.New("-rounds and -cancels must be at least 1")
	}
	return o, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func run(ctx context.Context, o *options) error {
	if o.cgroup != "" {
		if err := enterCgroup(o.cgroup); err != nil {
			return err
		}
	}
	logf("scheduling: %s", schedulingContext())
	work, err := os.MkdirTemp("", "pgguard-cancel-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("work folder %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	logf("starting PostgreSQL with TLS")
	pg, err := pgtest.Launch(pgtest.Options{TLS: true, Settings: map[string]string{"max_connections": "200"}})
	if err != nil {
		return err
	}
	defer pg.Close()
	if err := prepare(ctx, pg, o.scale); err != nil {
		return err
	}
	bin := o.pgguard
	if bin == "" {
		bin = filepath.Join(work, "pgguard")
		logf("go build -o %s ./cmd/pgguard", bin)
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pgguard").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	cert, err := pgtest.GenerateCert(work)
	if err != nil {
		return err
	}
	targets := []target{{name: "direct", port: pg.Port}}
	variants := []string{""}
	if o.noSpare {
		variants = append(variants, "0")
	}
	for _, spare := range variants {
		for _, up := range o.upstreams {
			g, err := startGuard(ctx, o, pg, bin, work, cert, up, spare)
			if err != nil {
				return err
			}
			defer g.stop()
			name := "pgguard upstream " + up
			if spare != "" {
				name += ", no spare"
			}
			targets = append(targets, target{name: name, port: g.port, pid: g.cmd.Process.Pid})
		}
	}
	if o.bouncer {
		for _, up := range o.upstreams {
			b, err := pgtest.LaunchBouncer(ctx, pg, pgtest.BouncerOptions{
				Database: benchDB, User: benchUser, Password: benchPassword,
				MaxClients: o.clients + 20, ClientTLS: cert, ServerTLS: up == "require",
			})
			if err != nil {
				return err
			}
			defer b.Close()
			logf("pgbouncer (server TLS %v) on port %d, pid %d", up == "require", b.Port, b.PID())
			targets = append(targets, target{name: "pgbouncer upstream " + up, port: b.Port})
		}
	}
	var report strings.Builder
	fmt.Fprintf(&report, "cancel-latency: %d rounds, %d cancels per target and round, load pgbench -S -c %d -j %d, GOMAXPROCS of pgguard from its environment %q\n%s\n\n",
		o.rounds, o.cancels, o.clients, o.threads, o.guardEnv, schedulingContext())
	for _, mode := range o.sslmodes {
		res, req, err := measure(ctx, o, targets, mode, pg.URL(pgtest.Superuser, "", benchDB))
		if err != nil {
			return err
		}
		writeTable(&report, mode, o, targets, res, req)
	}
	fmt.Print(report.String())
	if o.out != "" {
		return os.WriteFile(o.out, []byte(report.String()), 0o644)
	}
	return nil
}

// prepare creates the bench database, role and tables.
func prepare(ctx context.Context, pg *pgtest.Server, scale int) error {
	if err := pg.CreateDatabase(ctx, benchDB); err != nil {
		return err
	}
	if err := pg.CreateRole(ctx, benchUser, benchPassword, pgtest.SCRAM); err != nil {
		return err
	}
	logf("pgbench -i -s %d", scale)
	init := exec.CommandContext(ctx, "pgbench", "-i", "-q", "-s", strconv.Itoa(scale),
		"-h", pg.Host, "-p", strconv.Itoa(pg.Port), "-U", pgtest.Superuser, benchDB)
	init.Env = append(os.Environ(), "PGSSLMODE=disable")
	if out, err := init.CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	for _, sql := range []string{"GRANT ALL ON ALL TABLES IN SCHEMA public TO " + benchUser, "VACUUM ANALYZE", "CHECKPOINT"} {
		if err := pg.Exec(ctx, benchDB, sql); err != nil {
			return err
		}
	}
	return nil
}

// guardProc is a pgguard we started.
type guardProc struct {
	cmd  *exec.Cmd
	port int
	done chan struct{}
}

func (g *guardProc) stop() {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
}

// startGuard starts pgguard in front of pg with upstream sslmode
// upstreamMode; spareAge, when set, is its --cancel-spare-age.
func startGuard(ctx context.Context, o *options, pg *pgtest.Server, bin, work string, cert pgtest.CertFiles, upstreamMode, spareAge string) (*guardProc, error) {
	dir := filepath.Join(work, "pgguard-"+upstreamMode+"-"+spareAge)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	model, err := os.ReadFile("model.conf")
	if err != nil {
		return nil, fmt.Errorf("run from the repository root: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.conf"), model, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.csv"), []byte(policy), 0o644); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "pgguard.out"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "serve",
		"--listen", "127.0.0.1:"+strconv.Itoa(port),
		"--upstream", fmt.Sprintf("postgres://%s/?sslmode=%s", pg.Addr(), upstreamMode),
		"--catalog-url", pg.URL(pgtest.Superuser, "", benchDB),
		"--model", filepath.Join(dir, "model.conf"),
		"--policy", filepath.Join(dir, "policy.csv"),
		"--tls-cert", cert.CertFile, "--tls-key", cert.KeyFile,
		"--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), o.guardEnv...)
	if spareAge != "" {
		cmd.Env = append(cmd.Env, "PGGUARD_CANCEL_SPARE_AGE="+spareAge)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := &guardProc{cmd: cmd, port: port, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(g.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := connect(ctx, port, "disable", nil)
		if err == nil {
			c.Close(ctx)
			logf("pgguard (upstream sslmode=%s, spare age %q) on port %d, pid %d", upstreamMode, spareAge, port, cmd.Process.Pid)
			return g, nil
		}
		if time.Now().After(deadline) {
			g.stop()
			b, _ := os.ReadFile(logFile.Name())
			return nil, fmt.Errorf("pgguard not ready: %v\n%s", err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// connect opens a session as the bench role.
func connect(ctx context.Context, port int, sslmode string, rec *stageRecorder) (*pgconn.PgConn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Channel binding cannot span pgguard's two TLS sessions (pgguard
	// offers no SCRAM-SHA-256-PLUS); pgx would insist on it when the server
	// is reached directly over TLS, so it is off for every target alike.
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=%s&channel_binding=disable",
		benchUser, benchPassword, port, benchDB, sslmode))
	if err != nil {
		return nil, err
	}
	if rec != nil {
		cfg.DialFunc = rec.dial
	}
	return pgconn.ConnectConfig(ctx, cfg)
}

// backendPID asks the session for its backend's pid.
func backendPID(ctx context.Context, conn *pgconn.PgConn) (uint32, error) {
	res, err := conn.Exec(ctx, "SELECT pg_backend_pid()").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("pg_backend_pid: %w", err)
	}
	pid, err := strconv.ParseUint(string(res[0].Rows[0][0]), 10, 32)
	return uint32(pid), err
}

// waitSleeping polls the server directly, as the superuser, until the
// backend pid sleeps in pg_sleep: a cancel sent earlier could find the
// statement not started and be lost.
func waitSleeping(ctx context.Context, watch *pgconn.PgConn, pid uint32, done <-chan error) error {
	q := fmt.Sprintf("SELECT 1 FROM pg_stat_activity WHERE pid = %d AND wait_event = 'PgSleep'", pid)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return fmt.Errorf("statement ended before its cancel: %v", err)
		default:
		}
		rows, err := watch.Exec(ctx, q).ReadAll()
		if err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		if len(rows) == 1 && len(rows[0].Rows) == 1 {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("statement did not start within 10 s")
}

// results[target][round] are the cancel latencies of that run, sorted.
type results [][][]time.Duration

// runTimes are one run's cancels: how long each took in all, and how long the
// client's CancelRequest alone took (connect, TLS when the session has it,
// the request and the server's close; the rest is the statement's error
// on its way back on the session).
type runTimes struct{ total, request []time.Duration }

func measure(ctx context.Context, o *options, targets []target, sslmode, superURL string) (res, req results, err error) {
	res, req = make(results, len(targets)), make(results, len(targets))
	for i := range res {
		res[i], req[i] = make([][]time.Duration, o.rounds), make([][]time.Duration, o.rounds)
	}
	for round := range o.rounds {
		for k := range targets {
			i := (k + round) % len(targets)
			t := targets[i]
			r, err := measureRun(ctx, o, t, sslmode, superURL, round)
			if err != nil {
				return nil, nil, fmt.Errorf("%s, sslmode %s, round %d: %w", t.name, sslmode, round+1, err)
			}
			slices.Sort(r.total)
			slices.Sort(r.request)
			res[i][round], req[i][round] = r.total, r.request
			logf("sslmode %s round %d %-36s p50 %6.2f ms  p99 %6.2f ms  (request p50 %6.2f ms  p99 %6.2f ms)", sslmode, round+1, t.name,
				ms(pct(r.total, 50)), ms(pct(r.total, 99)), ms(pct(r.request, 50)), ms(pct(r.request, 99)))
		}
	}
	return res, req, nil
}

// measureRun runs the load against t and cancels o.cancels statements of
// one session meanwhile.
func measureRun(ctx context.Context, o *options, t target, sslmode, superURL string, round int) (runTimes, error) {
	loadMode := o.loadSSLMode
	if loadMode == "" {
		loadMode = sslmode
	}
	if o.clients > 0 {
		load := exec.CommandContext(ctx, "pgbench", "-n", "-S", "-c", strconv.Itoa(o.clients), "-j", strconv.Itoa(o.threads),
			"-T", "3600", "-h", "127.0.0.1", "-p", strconv.Itoa(t.port), "-U", benchUser, benchDB)
		load.Env = append(os.Environ(), "PGPASSWORD="+benchPassword, "PGSSLMODE="+loadMode, "PGCHANNELBINDING=disable")
		load.Stdout, load.Stderr = io.Discard, io.Discard
		if err := load.Start(); err != nil {
			return runTimes{}, fmt.Errorf("pgbench: %w", err)
		}
		defer func() { _ = load.Process.Signal(syscall.SIGINT); _ = load.Wait() }()
	}
	time.Sleep(o.warmup)
	if o.perf != "" && t.pid != 0 {
		out := filepath.Join(o.perf, fmt.Sprintf("perf-%s-%s-r%d.data", strings.ReplaceAll(t.name, " ", "-"), sslmode, round+1))
		rec := exec.Command("perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-p", strconv.Itoa(t.pid), "-o", out)
		rec.Stdout, rec.Stderr = io.Discard, io.Discard
		if err := rec.Start(); err != nil {
			return runTimes{}, fmt.Errorf("perf: %w", err)
		}
		defer func() { _ = rec.Process.Signal(syscall.SIGINT); _ = rec.Wait() }()
	}
	var rec *stageRecorder
	var seen []stages
	if o.stages {
		rec = &stageRecorder{}
		defer func() { logf("%s, round %d, stages of the CancelRequest:\n%s", t.name, round+1, stageSummary(seen)) }()
	}
	conn, err := connect(ctx, t.port, sslmode, rec)
	if err != nil {
		return runTimes{}, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	watch, err := pgconn.Connect(ctx, superURL)
	if err != nil {
		return runTimes{}, fmt.Errorf("connect to watch: %w", err)
	}
	defer watch.Close(context.Background())
	// PgBouncer hands out keys of its own, so the backend's pid is asked for.
	pid, err := backendPID(ctx, conn)
	if err != nil {
		return runTimes{}, err
	}
	var r runTimes
	for range o.cancels {
		done := make(chan error, 1)
		go func() {
			_, err := conn.Exec(ctx, "SELECT pg_sleep(60)").ReadAll()
			done <- err
		}()
		if err := waitSleeping(ctx, watch, pid, done); err != nil {
			return runTimes{}, err
		}
		if rec != nil {
			rec.arm()
		}
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := conn.CancelRequest(cctx)
		requested := time.Since(start)
		cancel()
		if rec != nil {
			if s, ok := rec.result(); ok {
				seen = append(seen, s)
			}
		}
		if err != nil {
			return runTimes{}, fmt.Errorf("cancel request: %w", err)
		}
		var pe *pgconn.PgError
		select {
		case err := <-done:
			if !errors.As(err, &pe) || pe.Code != "57014" {
				return runTimes{}, fmt.Errorf("statement ended with %v, want 57014", err)
			}
		case <-time.After(10 * time.Second):
			return runTimes{}, errors.New("statement not cancelled within 10 s")
		}
		r.total = append(r.total, time.Since(start))
		r.request = append(r.request, requested)
		time.Sleep(o.pause)
	}
	return r, nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// writeTable reports, per target, the latencies of all rounds pooled and
// the median of the per-round ratios to direct, with their range.
func writeTable(w io.Writer, sslmode string, o *options, targets []target, res, req results) {
	load := o.loadSSLMode
	if load == "" {
		load = sslmode
	}
	fmt.Fprintf(w, "client sslmode=%s (load sslmode=%s)\n\n", sslmode, load)
	fmt.Fprintln(w, "| target | p50 ms | p99 ms | p50 × direct | p99 × direct | request p50 / p99 ms |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|")
	for i, t := range targets {
		var all, reqs []time.Duration
		var r50, r99 []float64
		for round := range o.rounds {
			all = append(all, res[i][round]...)
			reqs = append(reqs, req[i][round]...)
			d, g := res[0][round], res[i][round]
			r50 = append(r50, ms(pct(g, 50))/ms(pct(d, 50)))
			r99 = append(r99, ms(pct(g, 99))/ms(pct(d, 99)))
		}
		slices.Sort(all)
		slices.Sort(reqs)
		ratio := func(rs []float64) string {
			if i == 0 {
				return "1"
			}
			return fmt.Sprintf("%.2f (%.2f–%.2f)", median(rs), slices.Min(rs), slices.Max(rs))
		}
		fmt.Fprintf(w, "| %s | %.2f | %.2f | %s | %s | %.2f / %.2f |\n", t.name, ms(pct(all, 50)), ms(pct(all, 99)), ratio(r50), ratio(r99),
			ms(pct(reqs, 50)), ms(pct(reqs, 99)))
	}
	fmt.Fprintln(w)
}
