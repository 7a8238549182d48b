package replicatest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/internal/pgtest"
)

// pgguardBin is the pgguard binary TestMain builds.
var pgguardBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pgguard-replicatest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pgguardBin = filepath.Join(dir, "pgguard")
	goBin, err := goTool()
	if err == nil {
		cmd := exec.Command(goBin, "build", "-o", pgguardBin, "github.com/pgguard/pgguard/cmd/pgguard")
		var out []byte
		if out, err = cmd.CombinedOutput(); err != nil {
			err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "replicatest:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := pgtest.RunMain(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// goTool finds the go command: on PATH, or in $GOROOT/bin.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no go command on PATH or in %s", filepath.Dir(p))
	}
	return p, nil
}

// haproxyTool finds haproxy, which Debian installs in /usr/sbin. A missing
// haproxy fails the test: CI installs it (.ci/run).
func haproxyTool(t *testing.T) string {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	}
	t.Fatal("haproxy is not installed (apt-get install haproxy; .ci/run does)")
	return ""
}

// process is a child process the test stops at its end.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *pgtest.SyncBuffer
	done chan struct{}
}

func startProcess(t *testing.T, name string, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(bin, args...), out: &pgtest.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = withoutPGGUARD(os.Environ())
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output (last 40 lines):\n%s", name, lastLines(p.out.String(), 40))
		}
	})
	return p
}

func withoutPGGUARD(env []string) []string {
	var kept []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PGGUARD_") {
			kept = append(kept, kv)
		}
	}
	return kept
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitUntil polls cond every 10ms until it holds or the bound passes.
func waitUntil(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", bound, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// replica is one pgguard serve process.
type replica struct {
	*process
	id, listen, metrics string
}

func (r *replica) get(path string) (int, string) {
	resp, err := http.Get("http://" + r.metrics + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric is the value of the first series of /metrics that starts with
// prefix, or -1.
func (r *replica) metric(prefix string) float64 {
	_, body := r.get("/metrics")
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, prefix) {
			v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// count is how many lines of the replica's log contain s.
func (r *replica) count(s string) int { return strings.Count(r.out.String(), s) }

// fixture is the whole set-up: PostgreSQL (database and policy store),
// the relay the replicas reach the store through, three replicas and
// HAProxy in front of them.
type fixture struct {
	pg                *pgtest.Server
	storeURL          string // direct, for pushes and status
	store             *relay
	replicas          []*replica
	haproxy           string // address clients connect to
	granted, revoked  string // policy files
	regranted, model  string
	ctx               context.Context
	clientURL         string
	sessionsByReplica []*pgx.Conn
}

const financeQuery = "/*purpose='financial_reporting'*/ SELECT sum(gross_monthly) FROM hr.salaries"

func setUp(t *testing.T) *fixture {
	f := &fixture{ctx: context.Background()}
	f.pg = pgtest.Start(t, pgtest.Options{})
	f.pg.MustExec(t, "postgres", `
		CREATE SCHEMA hr;
		CREATE TABLE hr.salaries (employee_id bigint, gross_monthly numeric, bank_account text);
		INSERT INTO hr.salaries SELECT g, 4000 + g, 'NL00BANK' || g FROM generate_series(1, 100) g;
		CREATE ROLE finance_app LOGIN PASSWORD 'pw';
		GRANT USAGE ON SCHEMA hr TO finance_app; GRANT SELECT ON hr.salaries TO finance_app`)
	f.pg.MustExec(t, "postgres", "CREATE DATABASE policystore")
	f.storeURL = f.pg.URL(pgtest.Superuser, "", "policystore")
	var err error
	if f.store, err = newRelay(f.pg.Addr()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.store.stop)

	shipped, err := os.ReadFile("../../policy.csv")
	if err != nil {
		t.Fatal(err)
	}
	const grant = "p, finance, financial_reporting, employee_salary, read, allow\n"
	if !bytes.Contains(shipped, []byte(grant)) {
		t.Fatalf("policy.csv lost the rule %q", grant)
	}
	dir := t.TempDir()
	f.model = "../../model.conf"
	f.granted = filepath.Join(dir, "granted.csv")
	f.revoked = filepath.Join(dir, "revoked.csv")
	f.regranted = filepath.Join(dir, "regranted.csv")
	for file, text := range map[string]string{
		f.granted:   string(shipped),
		f.revoked:   strings.Replace(string(shipped), grant, "", 1),
		f.regranted: string(shipped) + "# granted again after review\n",
	} {
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f.push(t, f.granted)

	storeViaRelay := fmt.Sprintf("postgres://%s@%s/policystore?sslmode=disable", pgtest.Superuser, f.store.addr)
	for i := 1; i <= 3; i++ {
		r := &replica{id: fmt.Sprintf("replica-%d", i), listen: pgtest.FreeAddr(t), metrics: pgtest.FreeAddr(t)}
		r.process = startProcess(t, r.id, pgguardBin, "serve",
			"--listen", r.listen, "--metrics", r.metrics,
			"--upstream", "postgres://"+f.pg.Addr()+"/?sslmode=disable",
			"--catalog-url", f.pg.URL(pgtest.Superuser, "", "postgres"),
			"--policy-store", storeViaRelay, "--replica-id", r.id, "--policy-max-age", "7s",
			"--log-level", "debug", "--shutdown-grace", "2s")
		f.replicas = append(f.replicas, r)
	}
	for _, r := range f.replicas {
		waitUntil(t, 30*time.Second, r.id+" to be ready", func() bool { code, _ := r.get("/readyz"); return code == 200 })
	}

	f.haproxy = pgtest.FreeAddr(t)
	cfg := fmt.Sprintf(`global
	maxconn 512
defaults
	mode tcp
	timeout connect 2s
	timeout client 120s
	timeout server 120s
frontend postgres
	bind %s
	default_backend pgguard
backend pgguard
	balance roundrobin
`, f.haproxy)
	for _, r := range f.replicas {
		cfg += fmt.Sprintf("\tserver %s %s\n", r.id, r.listen)
	}
	cfgFile := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "haproxy", haproxyTool(t), "-db", "-f", cfgFile)
	waitUntil(t, 10*time.Second, "haproxy to listen", func() bool {
		c, err := net.Dial("tcp", f.haproxy)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	f.clientURL = "postgres://finance_app:pw@" + f.haproxy + "/postgres?sslmode=disable"
	f.sessionsByReplica = f.onePerReplica(t)
	return f
}

// push runs pgguard policy push with the policy file.
func (f *fixture) push(t *testing.T, policy string) string {
	t.Helper()
	out, err := exec.Command(pgguardBin, "policy", "push", "--to", f.storeURL, "--model", f.model, "--policy", policy).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "pushed version") {
		t.Fatalf("policy push %s: %v\n%s", policy, err, out)
	}
	return string(out)
}

// onePerReplica opens sessions through HAProxy until every replica has
// one, telling where each landed by the replicas' session counters.
func (f *fixture) onePerReplica(t *testing.T) []*pgx.Conn {
	t.Helper()
	byReplica := make([]*pgx.Conn, len(f.replicas))
	for attempt := 0; attempt < 12; attempt++ {
		before := make([]float64, len(f.replicas))
		for i, r := range f.replicas {
			before[i] = r.metric("pgguard_connections_total")
		}
		conn, err := pgx.Connect(f.ctx, f.clientURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		for i, r := range f.replicas {
			if r.metric("pgguard_connections_total") > before[i] && byReplica[i] == nil {
				byReplica[i] = conn
			}
		}
		full := true
		for _, c := range byReplica {
			full = full && c != nil
		}
		if full {
			return byReplica
		}
	}
	t.Fatal("HAProxy did not spread sessions over the three replicas")
	return nil
}

// sslRequestAndClose connects, asks for TLS, reads the one-byte answer
// and hangs up.
func sslRequestAndClose(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil {
		t.Fatal(err)
	}
	answer := make([]byte, 1)
	if _, err := io.ReadFull(c, answer); err != nil || answer[0] != 'N' {
		t.Fatalf("SSLRequest through HAProxy: %q, %v", answer, err)
	}
}

func refused(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42501"
}

// untilEach runs the finance query on every replica's session until ok
// holds of its error, and returns how long each took from start.
func (f *fixture) untilEach(t *testing.T, start time.Time, bound time.Duration, ok func(error) bool) []time.Duration {
	t.Helper()
	took := make([]time.Duration, len(f.sessionsByReplica))
	var wg sync.WaitGroup
	for i, conn := range f.sessionsByReplica {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < bound {
				_, err := conn.Exec(f.ctx, financeQuery)
				if ok(err) {
					took[i] = time.Since(start)
					return
				}
				time.Sleep(time.Millisecond)
			}
			took[i] = -1
		}()
	}
	wg.Wait()
	return took
}

func TestReplicasBehindHAProxy(t *testing.T) {
	f := setUp(t)
	for i, conn := range f.sessionsByReplica {
		if _, err := conn.Exec(f.ctx, financeQuery); err != nil {
			t.Fatalf("%s: allowed by version 1: %v", f.replicas[i].id, err)
		}
	}

	t.Run("a revocation is in force on every replica within a second of the push", func(t *testing.T) {
		done := make(chan []time.Duration, 1)
		start := time.Now()
		go func() { done <- f.untilEach(t, start, 10*time.Second, refused) }()
		f.push(t, f.revoked)
		pushed := time.Since(start)
		took := <-done
		for i, d := range took {
			t.Logf("%s: first refusal %s after the push began (the push command took %s)", f.replicas[i].id, d.Round(time.Millisecond), pushed.Round(time.Millisecond))
			if d < 0 || d > time.Second {
				t.Errorf("%s: revocation took %s, want under 1s", f.replicas[i].id, d)
			}
		}
	})

	t.Run("a cancel through HAProxy reaches the backend whichever replica it lands on", func(t *testing.T) {
		// Every pair (the session's replica, the replica the cancel lands
		// on), the same one included, is tried. HAProxy's round robin
		// hands each new connection to the next replica; the replica that
		// relayed a cancel says so on its log, which tells where the
		// round robin stands, and connections made in between steer it.
		n := len(f.replicas)
		done := map[[2]int]bool{}
		next := -1 // the replica HAProxy picks next; unknown at first
		for trial := 0; len(done) < n*n && trial < 2*n*n; trial++ {
			session, target := -1, -1
			for p := 0; p < n*n && session < 0; p++ {
				if !done[[2]int{p / n, p % n}] {
					session, target = p/n, p%n
				}
			}
			conn := f.sessionsByReplica[session]
			result := make(chan error, 1)
			started := time.Now()
			go func() { _, err := conn.Exec(f.ctx, "SELECT pg_sleep(30)"); result <- err }()
			waitUntil(t, 10*time.Second, "pg_sleep to run", func() bool {
				c, err := pgx.Connect(f.ctx, f.pg.URL(pgtest.Superuser, "", "postgres"))
				if err != nil {
					return false
				}
				defer c.Close(f.ctx)
				var running int
				_ = c.QueryRow(f.ctx, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'").Scan(&running)
				return running == 1
			})
			if next >= 0 {
				// An SSLRequest answered makes sure a steering connection
				// reached a replica before it is closed.
				for range (target - next + n) % n {
					sslRequestAndClose(t, f.haproxy)
				}
			}
			before := make([]int, n)
			for i, r := range f.replicas {
				before[i] = r.count("cancel request relayed")
			}
			ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
			err := conn.PgConn().CancelRequest(ctx)
			cancel()
			if err != nil {
				t.Fatalf("cancel request: %v", err)
			}
			var pe *pgconn.PgError
			select {
			case err := <-result:
				if !errors.As(err, &pe) || pe.Code != "57014" {
					t.Fatalf("session on %s: pg_sleep ended with %v, want 57014", f.replicas[session].id, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("session on %s: the cancel did not end pg_sleep", f.replicas[session].id)
			}
			via := -1
			waitUntil(t, 5*time.Second, "the relaying replica's log line", func() bool {
				for i, r := range f.replicas {
					if r.count("cancel request relayed") > before[i] {
						via = i
						return true
					}
				}
				return false
			})
			done[[2]int{session, via}] = true
			next = (via + 1) % n
			t.Logf("session on %s, cancel through %s: pg_sleep ended with 57014 %s after it started",
				f.replicas[session].id, f.replicas[via].id, time.Since(started).Round(time.Millisecond))
		}
		if len(done) < n*n {
			t.Errorf("cancels tried for %d of the %d pairs of session replica and cancel replica: %v", len(done), n*n, done)
		}
	})

	t.Run("ten seconds without the store lose no policy and the replicas converge after", func(t *testing.T) {
		stopped := time.Now()
		f.store.stop()
		for _, r := range f.replicas {
			waitUntil(t, 5*time.Second, r.id+" to report the store lost", func() bool {
				code, body := r.get("/healthz")
				return code == 200 && strings.Contains(body, "connection lost") && r.metric("pgguard_policy_store_up") == 0
			})
		}
		f.push(t, f.regranted) // straight to PostgreSQL: the replicas cannot hear it
		for time.Since(stopped) < 10*time.Second {
			for i, conn := range f.sessionsByReplica {
				if _, err := conn.Exec(f.ctx, financeQuery); !refused(err) {
					t.Fatalf("%s without the store: %v, want the revocation kept", f.replicas[i].id, err)
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		for _, r := range f.replicas {
			if r.count(`"event":"policy_stale"`) != 1 {
				t.Errorf("%s: want one policy_stale alert after 10s without the store (--policy-max-age 7s)", r.id)
			}
		}
		if err := f.store.start(); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		took := f.untilEach(t, back, 30*time.Second, func(err error) bool { return err == nil })
		for i, d := range took {
			t.Logf("%s: the push made while the store was away in force %s after the store returned", f.replicas[i].id, d.Round(time.Millisecond))
			if d < 0 {
				t.Errorf("%s did not converge", f.replicas[i].id)
			}
		}
		waitUntil(t, 15*time.Second, "policy status to show three current replicas", func() bool {
			out, err := exec.Command(pgguardBin, "policy", "status", "--store", f.storeURL).CombinedOutput()
			return err == nil && strings.Contains(string(out), "3 live replica(s), 0 behind")
		})
		for _, r := range f.replicas {
			for _, want := range []string{"policy store connection lost", "policy store connection restored", `"event":"policy_confirmed"`} {
				waitUntil(t, 5*time.Second, r.id+" to log "+want, func() bool { return r.count(want) > 0 })
			}
			if v := r.metric(`pgguard_policy_info{checksum=`); v != 1 || !strings.Contains(func() string { _, b := r.get("/metrics"); return b }(), `version="3"`) {
				t.Errorf("%s: pgguard_policy_info does not show version 3", r.id)
			}
		}
	})
}
