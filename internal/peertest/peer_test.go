package peertest

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// refusedByDesign are pgx's tests that use what pgguard refuses for every
// policy, each with the reason. Everything else in the suites must pass
// through pgguard as it passes directly.
var refusedByDesign = map[string]map[string]string{
	"github.com/jackc/pgx/v5/pgconn": {
		// A DO block runs procedural code that no analysis of the statement
		// can see into.
		"TestConnOnNotice": "DO block",
		// It looks for its own cancelled query in pg_stat_activity.query,
		// which shows every session's statement text.
		"TestConnContextCanceledCancelsRunningQueryOnServer": "pg_stat_activity.query",
	},
	"github.com/jackc/pgx/v5/pgxpool": {},
}

// TestPgxSuitesThroughGuard runs pgx's own tests of pgconn and pgxpool, from
// the module cache, against a pgguard whose policy allows everything.
func TestPgxSuitesThroughGuard(t *testing.T) {
	goBin := goTool(t)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "pgguard.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	env, err := Start(ctx, "../../model.conf", logFile)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	for _, pkg := range []string{"github.com/jackc/pgx/v5/pgconn", "github.com/jackc/pgx/v5/pgxpool"} {
		t.Run(filepath.Base(pkg), func(t *testing.T) {
			runSuite(t, goBin, pkg, env.Vars(true), refusedByDesign[pkg])
		})
	}
}

// runSuite runs `go test pkg` with vars in place of the caller's PG*
// variables and skipping the named tests, and fails t with every failing
// test of the suite.
func runSuite(t *testing.T, goBin, pkg string, vars []string, skip map[string]string) {
	args := []string{"test", "-count=1", "-v", "-timeout", "8m"}
	if len(skip) > 0 {
		names := make([]string, 0, len(skip))
		for name := range skip {
			names = append(names, regexp.QuoteMeta(name))
		}
		args = append(args, "-skip", "^("+strings.Join(names, "|")+")$")
	}
	args = append(args, pkg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Env = append(withoutPG(os.Environ()), vars...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	runErr := cmd.Run()
	pass, fail, skipped := count(out.Bytes())
	t.Logf("%s through pgguard: %d passed, %d failed, %d skipped (subtests included) in %s",
		pkg, pass, len(fail), skipped, time.Since(start).Round(time.Second))
	if runErr == nil && len(fail) == 0 {
		return
	}
	t.Errorf("go %s: %v; failed: %s", strings.Join(args, " "), runErr, strings.Join(fail, ", "))
	t.Logf("output (last 200 lines):\n%s", tail(out.String(), 200))
}

// goTool finds the go command: on PATH, or in $GOROOT/bin when GOROOT is
// set.
func goTool(t *testing.T) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no go command on PATH or in %s", filepath.Dir(p))
	}
	return p
}

// withoutPG drops the variables libpq and pgx's tests read (PG*), so that
// only the suite's own point anywhere.
func withoutPG(environ []string) []string {
	var kept []string
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "PG") {
			kept = append(kept, kv)
		}
	}
	return kept
}

var resultLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+)`)

// count tallies `go test -v` results, subtests included, and names the
// failed tests.
func count(out []byte) (pass int, fail []string, skip int) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := resultLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		switch m[1] {
		case "PASS":
			pass++
		case "FAIL":
			fail = append(fail, m[2])
		case "SKIP":
			skip++
		}
	}
	return pass, fail, skip
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
