// Command pgbench-compare measures what pgguard costs: pgbench throughput,
// latency and proxy CPU through pgguard, through PgBouncer (session mode) and
// directly against PostgreSQL, interleaved and repeated; memory per idle
// client connection; and a large COPY ... TO STDOUT.
//
// Run it from the repository root (bench/run.sh does):
//
//	go run ./bench/cmd/pgbench-compare -T 10 -rounds 3
//
// It starts a throwaway PostgreSQL (internal/pgtest), PgBouncer and a freshly
// built pgguard, and writes bench/results/latest.{md,png,json}.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command line.
type options struct {
	seconds   int
	rounds    int
	scale     int
	threads   int
	out       string
	targets   []string
	scripts   []string
	modes     []string
	clients   []int
	lightRate int
	tls       []string // TLS variants: none, client, server, both
	idle      []int    // idle connection counts, ascending; empty skips the measurement
	idlePool  int
	copyMiB   int
	perf      bool
	perfC     int
	pgguard   string
	guardEnv  []string
	keep      bool
}

func parseOptions(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("pgbench-compare", flag.ContinueOnError)
	fs.IntVar(&o.seconds, "T", 10, "seconds per pgbench run")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; every round runs every target once per configuration")
	fs.IntVar(&o.scale, "scale", 10, "pgbench -i scale factor")
	fs.IntVar(&o.threads, "j", 2, "pgbench threads (-j) for runs with more than one client")
	fs.StringVar(&o.out, "out", "bench/results", "folder for latest.md, latest.png, latest.json and profiles")
	targets := fs.String("targets", "direct,pgbouncer,pgguard", "targets, comma-separated: direct, pgbouncer, pgguard")
	scripts := fs.String("scripts", "select-only,tpcb", "pgbench scripts: select-only (-S), tpcb (the default script); "+
		"select-tx (-S's read in BEGIN ... COMMIT), purpose-tx (the same with SET LOCAL pgguard.purpose), "+
		"purpose-set (SET pgguard.purpose, then the read): what session-state barriers cost")
	modes := fs.String("modes", "simple,extended,prepared", "pgbench query modes (-M)")
	clients := fs.String("clients", "1,8", "client counts (-c)")
	fs.IntVar(&o.lightRate, "light-rate", 200, "also run select-only with one client held to this many transactions a second (pgbench -R), in every mode: what a lightly used proxy costs (0 skips it)")
	tls := fs.String("tls", "none", "TLS variants, comma-separated: none, client (TLS between pgbench and the target), "+
		"server (between the proxy and PostgreSQL), both; direct PostgreSQL uses TLS whenever the client leg does")
	idle := fs.String("idle", "2000", "idle client connections for the memory measurement (0 skips it); "+
		"a comma-separated list (2000,5000,10000) opens them in steps on one proxy process, RSS at each")
	fs.IntVar(&o.idlePool, "idle-pool", 0, "put a transaction-mode PgBouncer with this many server connections between "+
		"the idle measurement's proxies and PostgreSQL, which then needs that many backends instead of one per connection (0: none)")
	fs.IntVar(&o.copyMiB, "copy-mib", 1024, "size of the COPY TO STDOUT measurement in MiB (0 skips it)")
	fs.BoolVar(&o.perf, "perf", false, "also profile pgguard (and PgBouncer once) with perf during extra runs (needs perf; writes perf-*.txt)")
	fs.IntVar(&o.perfC, "perf-clients", 8, "client count of the -perf runs")
	fs.StringVar(&o.pgguard, "pgguard", "", "pgguard binary to use instead of building ./cmd/pgguard")
	guardEnv := fs.String("pgguard-env", "", "extra environment for pgguard, space-separated NAME=VALUE (e.g. GOMAXPROCS=1)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work folder (logs, configuration) for inspection")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.guardEnv = strings.Fields(*guardEnv)
	for _, c := range splitList(*idle) {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 || (len(o.idle) > 0 && n <= o.idle[len(o.idle)-1]) {
			return nil, fmt.Errorf("-idle: %q is not a connection count above the previous one", c)
		}
		if n > 0 {
			o.idle = append(o.idle, n)
		}
	}
	if o.idlePool < 0 {
		return nil, errors.New("-idle-pool must not be negative")
	}
	o.targets = splitList(*targets)
	o.scripts = splitList(*scripts)
	o.modes = splitList(*modes)
	o.tls = splitList(*tls)
	for _, v := range o.tls {
		if !has(tlsVariants, v) {
			return nil, fmt.Errorf("-tls: unknown variant %q (known: %s)", v, strings.Join(tlsVariants, ", "))
		}
	}
	for _, c := range splitList(*clients) {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-clients: %q is not a client count", c)
		}
		o.clients = append(o.clients, n)
	}
	for _, t := range o.targets {
		if t != "direct" && t != "pgbouncer" && t != "pgguard" {
			return nil, fmt.Errorf("-targets: unknown target %q", t)
		}
	}
	for _, s := range o.scripts {
		if !has(scriptNames, s) {
			return nil, fmt.Errorf("-scripts: unknown script %q (known: %s)", s, strings.Join(scriptNames, ", "))
		}
	}
	for _, m := range o.modes {
		if m != "simple" && m != "extended" && m != "prepared" {
			return nil, fmt.Errorf("-modes: unknown mode %q", m)
		}
	}
	if o.lightRate < 0 {
		return nil, errors.New("-light-rate must not be negative")
	}
	if o.seconds < 1 || o.rounds < 1 {
		return nil, errors.New("-T and -rounds must be at least 1")
	}
	return o, nil
}

// maxIdle is the largest idle connection count measured, 0 for none.
func (o *options) maxIdle() int {
	if len(o.idle) == 0 {
		return 0
	}
	return o.idle[len(o.idle)-1]
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func main() {
	o, err := parseOptions(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "pgbench-compare:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "pgbench-compare:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// run is the whole measurement.
func run(ctx context.Context, o *options) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if err := os.Chdir(root); err != nil {
		return err
	}
	if err := checkTools(o); err != nil {
		return err
	}
	raiseFileLimit(o.maxIdle())

	work, err := os.MkdirTemp("", "pgbench-compare-")
	if err != nil {
		return err
	}
	// Readable by the postgres user, who runs PgBouncer when we are root.
	_ = os.Chmod(work, 0o755)
	if o.keep {
		logf("work folder: %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}

	env, err := setUp(ctx, o, root, work)
	if err != nil {
		if env != nil {
			env.close()
		}
		return err
	}
	defer env.close()

	res := &results{Started: time.Now(), Options: *o, Machine: machineInfo(env)}
	if err := runMatrix(ctx, o, env, res); err != nil {
		return err
	}
	if o.copyMiB > 0 {
		if err := measureCopy(ctx, o, env, res); err != nil {
			logf("COPY measurement failed: %v", err)
			res.Notes = append(res.Notes, "COPY measurement failed: "+err.Error())
		}
	}
	if len(o.idle) > 0 {
		if err := measureIdle(ctx, o, env, res); err != nil {
			logf("idle-connection measurement failed: %v", err)
			res.Notes = append(res.Notes, "idle-connection measurement failed: "+err.Error())
		}
	}
	if o.perf && has(o.targets, "pgguard") {
		if err := profileProxies(ctx, o, env, res); err != nil {
			logf("perf profile failed: %v", err)
			res.Notes = append(res.Notes, "perf profile failed: "+err.Error())
		}
	}
	res.Finished = time.Now()
	return writeResults(o, res)
}

// repoRoot finds the module root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/pgguard/pgguard\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the pgguard repository")
		}
		dir = parent
	}
}

// checkTools makes sure pgbench and (when measured) pgbouncer and perf exist;
// as root it installs PgBouncer, otherwise it says how.
func checkTools(o *options) error {
	if _, err := exec.LookPath("pgbench"); err != nil {
		return errors.New("pgbench not found: apt-get install -y postgresql-client (or postgresql)")
	}
	if has(o.targets, "pgbouncer") {
		if _, err := exec.LookPath("pgbouncer"); err != nil {
			if os.Geteuid() != 0 {
				return errors.New("pgbouncer not found: run `sudo apt-get install -y pgbouncer`, " +
					"or leave it out with -targets direct,pgguard")
			}
			logf("installing pgbouncer: apt-get install -y pgbouncer")
			cmd := exec.Command("apt-get", "install", "-y", "pgbouncer")
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("apt-get install -y pgbouncer: %v\n%s", err, tail(string(out), 2000))
			}
		}
	}
	if o.perf {
		if _, err := exec.LookPath("perf"); err != nil {
			return errors.New("-perf needs perf: apt-get install -y linux-perf")
		}
	}
	return nil
}

// raiseFileLimit lifts the open-file limit for us and our children (pgguard
// holds two sockets per client session, PgBouncer too).
func raiseFileLimit(idle int) {
	want := uint64(2*idle + 1024)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Max < want && os.Geteuid() == 0 {
		lim.Max = want
	}
	lim.Cur = lim.Max
	// Setting it explicitly also makes Go pass it on to child processes.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		logf("cannot raise the open-file limit: %v", err)
	}
	if lim.Cur < want {
		logf("open-file limit %d is below the %d the idle test needs: raise it with ulimit -n (as root) or use -idle %d",
			lim.Cur, want, (lim.Cur-1024)/2)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
