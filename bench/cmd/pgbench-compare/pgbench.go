package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// config is one pgbench configuration of the matrix.
type config struct {
	Script  string `json:"script"`
	Mode    string `json:"mode"`
	Clients int    `json:"clients"`
	// Rate holds pgbench to this many transactions a second (-R); 0 lets
	// it run as fast as it can.
	Rate int `json:"rate,omitempty"`
	// TLS is the TLS variant (client, server, both); empty for none.
	TLS string `json:"tls,omitempty"`
}

func (c config) String() string {
	s := fmt.Sprintf("%s %s c%s", c.Script, c.Mode, c.clients())
	if c.TLS != "" {
		s += " tls=" + c.TLS
	}
	return s
}

// scriptLabel names the script in tables, with its TLS variant.
func (c config) scriptLabel() string {
	if c.TLS == "" {
		return c.Script
	}
	return c.Script + ", TLS " + c.TLS
}

// tlsVariants are the values -tls accepts.
var tlsVariants = []string{"none", "client", "server", "both"}

// clientTLS reports whether pgbench talks TLS to the target.
func (c config) clientTLS() bool { return c.TLS == "client" || c.TLS == "both" }

// serverTLS reports whether the proxy talks TLS to PostgreSQL.
func (c config) serverTLS() bool { return c.TLS == "server" || c.TLS == "both" }

// clients labels the client count, with the rate when there is one.
func (c config) clients() string {
	if c.Rate > 0 {
		return fmt.Sprintf("%d at %d/s", c.Clients, c.Rate)
	}
	return strconv.Itoa(c.Clients)
}

// runResult is one pgbench run against one target.
type runResult struct {
	Config    config  `json:"config"`
	Target    string  `json:"target"`
	Round     int     `json:"round"`
	TPS       float64 `json:"tps"`
	Tx        int64   `json:"transactions"`
	Failed    int64   `json:"failed"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	ProxyCPU  float64 `json:"proxy_cpu_seconds"`
	CPUPer10k float64 `json:"proxy_cpu_seconds_per_10k_tx"`
	CSPerTx   float64 `json:"proxy_context_switches_per_tx"`
	MigPerTx  float64 `json:"proxy_cpu_migrations_per_tx"` // -1: not published by the kernel
	ProxyRSS  int64   `json:"proxy_rss_bytes,omitempty"`   // after the run
	Err       string  `json:"error,omitempty"`
}

// Scripts -scripts accepts besides the two built into pgbench (select-only
// runs pgbench -S, tpcb its default script): script files for pgbench -f,
// each a transaction that reads one account as -S does, so that its ratio
// to direct set against select-only's shows what the session-state
// barriers around the read cost. A statement that may change the session's
// state (the purpose, search_path, the role; COMMIT and ROLLBACK, which end
// SET LOCAL) is a barrier: after its sync segment pgguard reads the state
// from the server with a hidden query before it reads the client's next
// message, one more round trip to PostgreSQL. Direct PostgreSQL and
// PgBouncer accept the setting too: pgguard.purpose is a custom (dotted)
// setting, which PostgreSQL takes without configuration.
var customScripts = map[string]string{
	// The control: the read in an explicit transaction. Its COMMIT is a
	// barrier (it would end any SET LOCAL made before it).
	"select-tx": `\set aid random(1, 100000 * :scale)
BEGIN;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
COMMIT;
`,
	// The purpose declared per transaction, as a pooled application does:
	// two barriers, SET LOCAL and COMMIT.
	"purpose-tx": `\set aid random(1, 100000 * :scale)
BEGIN;
SET LOCAL pgguard.purpose = '` + benchPurpose + `';
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
COMMIT;
`,
	// The purpose set for the session before each read, without a
	// transaction block: one barrier, the SET, although its value is the
	// one already in force from the second transaction on.
	"purpose-set": `\set aid random(1, 100000 * :scale)
SET pgguard.purpose = '` + benchPurpose + `';
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
`,
	"shapes-10k":  shapesScript(10_000),
	"shapes-200k": shapesScript(200_000),
}

// shapesScript reads one account as -S does, in one of n statement shapes
// chosen with a Zipf distribution: the column alias, an identifier, is the
// shape's number, so every shape is a distinct text to a proxy that keys
// verdicts by text and by text with literals blanked, and each first
// sighting of a shape costs pgguard a full analysis. This is what ORMs and
// reporting tools send: thousands of shapes, a few of them hot. pgbench
// puts the numbers into the text only with -M simple (the other modes make
// them parameters), so these scripts run in simple mode alone.
func shapesScript(n int) string {
	return `\set aid random(1, 100000 * :scale)
\set shape random_zipfian(1, ` + strconv.Itoa(n) + `, 1.05)
SELECT abalance AS shape_:shape FROM pgbench_accounts WHERE aid = :aid;
`
}

// isShapes reports whether script is one of the shapes scripts.
func isShapes(script string) bool { return strings.HasPrefix(script, "shapes-") }

// scriptNames lists the scripts -scripts accepts, in order.
var scriptNames = []string{"select-only", "tpcb", "select-tx", "purpose-tx", "purpose-set", "shapes-10k", "shapes-200k"}

func (o *options) configs() []config {
	var out []config
	for _, v := range o.tls {
		if v == "none" {
			v = ""
		}
		for _, s := range o.scripts {
			modes := o.modes
			if isShapes(s) {
				modes = []string{"simple"}
			}
			for _, m := range modes {
				for _, c := range o.clients {
					out = append(out, config{Script: s, Mode: m, Clients: c, TLS: v})
				}
			}
		}
	}
	if o.lightRate > 0 && has(o.scripts, "select-only") && has(o.tls, "none") {
		for _, m := range o.modes {
			out = append(out, config{Script: "select-only", Mode: m, Clients: 1, Rate: o.lightRate})
		}
	}
	return out
}

// rotate returns list starting at its k-th element, so that no target
// always runs first (or right after the same neighbour).
func rotate(list []string, k int) []string {
	k %= len(list)
	return append(append([]string{}, list[k:]...), list[:k]...)
}

// runMatrix runs every configuration against every target, round after
// round, interleaving the targets within each round.
func runMatrix(ctx context.Context, o *options, e *env, res *results) error {
	reset, err := pgx.Connect(ctx, e.superURL())
	if err != nil {
		return err
	}
	defer reset.Close(context.Background())

	configs := o.configs()
	total := len(configs) * len(o.targets) * o.rounds
	logf("matrix: %d configurations x %d targets x %d rounds = %d runs of %d s (about %s)",
		len(configs), len(o.targets), o.rounds, total, o.seconds,
		(time.Duration(total) * (time.Duration(o.seconds)*time.Second + 1500*time.Millisecond)).Round(time.Minute))

	// Warm-up: connections, caches, the verdict cache, CPU frequency.
	for _, t := range o.targets {
		for _, m := range o.modes {
			if _, err := e.pgbench(ctx, config{Script: "select-only", Mode: m, Clients: 2}, t, 2, "warmup"); err != nil {
				// A slow machine may finish no transaction in 2 s; the
				// measured runs will tell whether the target works.
				logf("warm-up through %s (%s): %v", t, m, firstLine(err.Error()))
			}
		}
	}

	// The shapes scripts' measure is after warm-up: each target runs each
	// of them once, as long as a measured run, so that the hot shapes are
	// in pgguard's cache, as they would be after minutes in production.
	for _, c := range configs {
		if !isShapes(c.Script) {
			continue
		}
		for _, t := range o.targets {
			if _, err := e.pgbench(ctx, c, t, o.seconds, "warmup"); err != nil {
				logf("warm-up of %s through %s: %v", c, t, firstLine(err.Error()))
			}
		}
	}

	n := 0
	for r := 0; r < o.rounds; r++ {
		for ci, c := range configs {
			for _, t := range rotate(o.targets, r+ci) {
				if err := ctx.Err(); err != nil {
					return err
				}
				n++
				if err := resetTables(ctx, reset); err != nil {
					return err
				}
				rr, err := e.measure(ctx, c, t, r)
				if err != nil {
					rr.Err = err.Error()
					logf("[%d/%d] round %d %-26s %-9s ERROR %v", n, total, r+1, c, t, err)
				} else {
					logf("[%d/%d] round %d %-26s %-9s %8.0f tps  p50 %.3f ms  p99 %.3f ms  cpu/10k %.3f s",
						n, total, r+1, c, t, rr.TPS, rr.P50ms, rr.P99ms, rr.CPUPer10k)
				}
				res.Runs = append(res.Runs, rr)
			}
		}
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// resetTables does what pgbench does before a run without -n, as the
// superuser and outside the measured targets, and then a checkpoint so that
// none lands in the middle of a run.
func resetTables(ctx context.Context, c *pgx.Conn) error {
	for _, sql := range []string{"VACUUM pgbench_branches", "VACUUM pgbench_tellers", "TRUNCATE pgbench_history", "CHECKPOINT"} {
		if _, err := c.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

// measure runs pgbench once and reads the proxy's CPU time around it.
func (e *env) measure(ctx context.Context, c config, target string, round int) (runResult, error) {
	rr := runResult{Config: c, Target: target, Round: round + 1}
	p := e.proxyFor(c, target)
	cpu0 := cpuSeconds(p)
	cs0, mig0 := schedCounts(p)
	out, err := e.pgbench(ctx, c, target, e.o.seconds, fmt.Sprintf("r%d", round))
	cpu1 := cpuSeconds(p)
	cs1, mig1 := schedCounts(p)
	if p != nil && p.cmd != nil && p.cmd.Process != nil {
		rr.ProxyRSS, _ = rssBytes(p.cmd.Process.Pid)
	}
	if err != nil {
		return rr, err
	}
	rr.TPS, rr.Tx, rr.Failed, rr.P50ms, rr.P99ms = out.tps, out.tx, out.failed, out.p50, out.p99
	if p != nil {
		rr.ProxyCPU = cpu1 - cpu0
		if rr.Tx > 0 {
			rr.CPUPer10k = rr.ProxyCPU / float64(rr.Tx) * 10000
			rr.CSPerTx = float64(cs1-cs0) / float64(rr.Tx)
			rr.MigPerTx = -1
			if mig0 >= 0 && mig1 >= 0 {
				rr.MigPerTx = float64(mig1-mig0) / float64(rr.Tx)
			}
		}
	}
	return rr, nil
}

// pgbenchOut is what one pgbench run reported.
type pgbenchOut struct {
	tps       float64
	tx        int64
	failed    int64
	p50, p99  float64 // ms, from the per-transaction log
	latencies int
}

var (
	reTPS    = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	reTx     = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	reFailed = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
)

// pgbench runs one pgbench against target for seconds and reads its
// summary and per-transaction log.
func (e *env) pgbench(ctx context.Context, c config, target string, seconds int, tag string) (*pgbenchOut, error) {
	logDir, err := os.MkdirTemp(e.work, "pgbench-log-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(logDir)
	prefix := filepath.Join(logDir, "tx")
	threads := 1
	if c.Clients > 1 {
		threads = min(e.o.threads, c.Clients)
	}
	args := []string{"-n", "-T", strconv.Itoa(seconds), "-c", strconv.Itoa(c.Clients), "-j", strconv.Itoa(threads),
		"-M", c.Mode, "-l", "--log-prefix=" + prefix,
		"-h", "127.0.0.1", "-p", strconv.Itoa(e.portFor(c, target)), "-U", benchUser}
	if c.Script == "select-only" {
		args = append(args, "-S")
	} else if script, ok := customScripts[c.Script]; ok {
		file := filepath.Join(logDir, c.Script+".sql")
		if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
			return nil, err
		}
		// -s sets :scale, which pgbench reads from pgbench_branches only
		// for its own scripts.
		args = append(args, "-f", file, "-s", strconv.Itoa(e.o.scale))
	}
	if c.Rate > 0 {
		args = append(args, "-R", strconv.Itoa(c.Rate))
	}
	args = append(args, benchDB)
	cmd := exec.CommandContext(ctx, "pgbench", args...)
	sslmode := "disable"
	if c.clientTLS() {
		sslmode = "require"
	}
	// Channel binding cannot span a proxy's two TLS sessions; it is off
	// for every target alike.
	cmd.Env = append(os.Environ(), "PGPASSWORD="+benchPassword, "PGSSLMODE="+sslmode, "PGCHANNELBINDING=disable",
		"PGAPPNAME=pgbench-compare-"+tag)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("pgbench %s: %v: %s", strings.Join(args, " "), err, tail(stderr.String(), 1500))
	}
	s := stdout.String()
	out := &pgbenchOut{}
	m := reTPS.FindStringSubmatch(s)
	if m == nil {
		return nil, fmt.Errorf("no tps in pgbench output:\n%s\n%s", s, tail(stderr.String(), 1500))
	}
	out.tps, _ = strconv.ParseFloat(m[1], 64)
	if m := reTx.FindStringSubmatch(s); m != nil {
		out.tx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reFailed.FindStringSubmatch(s); m != nil {
		out.failed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if out.failed > 0 || strings.Contains(stderr.String(), "error") {
		return nil, fmt.Errorf("pgbench reported failures (%d failed transactions): %s", out.failed, tail(stderr.String(), 1500))
	}
	lat, err := readLatencies(prefix)
	if err != nil {
		return nil, err
	}
	out.latencies = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		out.p50 = float64(lat[len(lat)*50/100]) / 1000
		out.p99 = float64(lat[min(len(lat)-1, len(lat)*99/100)]) / 1000
	}
	return out, nil
}

// readLatencies reads the per-transaction latencies (microseconds) of every
// log file pgbench wrote under prefix (one per thread).
func readLatencies(prefix string) ([]int64, error) {
	files, err := filepath.Glob(prefix + ".*")
	if err != nil {
		return nil, err
	}
	var lat []int64
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			// client_id transaction_no time script_no time_epoch time_us ...
			fields := bytes.Fields(sc.Bytes())
			if len(fields) < 3 {
				continue
			}
			if us, err := strconv.ParseInt(string(fields[2]), 10, 64); err == nil {
				lat = append(lat, us)
			}
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return lat, nil
}
