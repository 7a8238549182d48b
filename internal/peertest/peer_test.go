package peertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// suites are pgx's test packages that run through pgguard, at the version
// go.mod pins, from the module cache.
var suites = []string{
	"github.com/jackc/pgx/v5/pgconn",
	"github.com/jackc/pgx/v5",
	"github.com/jackc/pgx/v5/pgxpool",
}

// refusedByDesign are pgx's tests that use what pgguard refuses for every
// policy (docs/policy-guide.md lists these refusals), each with the reason
// pgguard gives, which the test must fail with in enforce mode. Everything
// else in the suites must pass through pgguard as it passes directly; in
// monitor mode these must pass too.
//
// The tests are run, not skipped: a listed test that passes through pgguard,
// or fails for another reason, fails the check, so the list cannot outlive
// the refusal it names.
var refusedByDesign = map[string]map[string]string{
	"github.com/jackc/pgx/v5/pgconn": {
		// A DO block runs procedural code that no analysis of the statement
		// can see into.
		"TestConnOnNotice": reasonDO,
		// It looks for its own cancelled query in pg_stat_activity.query,
		// which shows every session's statement text.
		"TestConnContextCanceledCancelsRunningQueryOnServer": reasonActivity,
	},
	"github.com/jackc/pgx/v5": {
		// Large objects hold data that no column policy covers; no rule
		// allows lo_create, lo_open, loread, ...
		"TestLargeObjects":                     reasonLargeObjects,
		"TestLargeObjectsSimpleProtocol":       reasonLargeObjects,
		"TestLargeObjectsMultipleTransactions": reasonLargeObjects,
	},
	"github.com/jackc/pgx/v5/pgxpool": {},
}

// The reasons pgguard gives for its refusals by design, as its error
// messages and alerts say them.
const (
	reasonDO           = "DO runs procedural code the analysis cannot see into"
	reasonActivity     = "pg_catalog.pg_stat_activity.query shows other sessions' statements and clients"
	reasonLargeObjects = "reads or writes large objects, which no column policy covers"
)

// TestPgxSuites runs pgx's own tests of pgconn, pgx and pgxpool directly
// against PostgreSQL, then through a pgguard in enforce mode and one in
// monitor mode, both with a policy that allows everything, and compares.
func TestPgxSuites(t *testing.T) {
	goBin := goTool(t)
	logPath := filepath.Join(t.TempDir(), "pgguard.log")
	logFile, err := os.Create(logPath)
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

	results := map[Target]map[string]*suiteResult{}
	// Directly first: what fails there is the environment's, and the
	// comparison means nothing until it is fixed.
	results[Direct] = runSuites(t, goBin, suites, env.Vars(Direct))
	for _, pkg := range suites {
		if r := results[Direct][pkg]; r.err != nil || len(r.failed) > 0 {
			t.Errorf("%s fails directly against PostgreSQL: %v %s\n%s", pkg, r.err, strings.Join(r.failed, ", "), r.tail(100))
		}
	}
	for _, target := range []Target{Enforce, Monitor} {
		t.Run(string(target), func(t *testing.T) {
			logStart, err := logFile.Seek(0, io.SeekCurrent)
			if err != nil {
				t.Fatal(err)
			}
			res := runSuites(t, goBin, suites, env.Vars(target))
			results[target] = res
			// A refusal, or a withheld error detail, that a test does
			// not notice (an error it only checks is there) hides from
			// the comparison: pgguard's log shows it.
			alerts, err := os.ReadFile(logPath)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range unexpectedAlerts(alerts[logStart:], target) {
				t.Errorf("pgguard changed what a client that may do everything gets: %s", a)
			}
			for _, pkg := range suites {
				t.Run(suiteName(pkg), func(t *testing.T) {
					var refused map[string]string
					if target == Enforce {
						refused = refusedByDesign[pkg]
					}
					for _, problem := range compare(res[pkg], results[Direct][pkg], refused) {
						t.Error(problem)
					}
				})
			}
		})
	}
	t.Logf("pgx's suites, pass/fail/skip (subtests included) and time:\n%s", table(results))
}

// alertLine is what unexpectedAlerts reads of a log line.
type alertLine struct {
	Target    string `json:"peertest"`
	Event     string `json:"event"`
	Statement string `json:"statement"`
	Message   string `json:"message"`
	Reason    string `json:"reason"`
	Table     string `json:"table"`
	SQLState  string `json:"sqlstate"`
	Denied    []struct {
		Column string `json:"column"`
		Act    string `json:"act"`
		Reason string `json:"reason"`
	} `json:"denied"`
}

// unexpectedAlerts lists the alerts of target's pgguard in log whose
// reasons are not refusals by design: with a policy that allows
// everything, nothing else may be refused (or, in monitor mode, flagged),
// and no error's detail withheld.
func unexpectedAlerts(log []byte, target Target) []string {
	var out []string
	for _, line := range bytes.Split(log, []byte("\n")) {
		var a alertLine
		if json.Unmarshal(line, &a) != nil || a.Target != string(target) {
			continue
		}
		if strings.HasPrefix(a.Message, "error detail withheld") {
			out = append(out, fmt.Sprintf("%s: %s error on %s: %s", a.Message, a.SQLState, a.Table, a.Reason))
			continue
		}
		if a.Event != "query_blocked" && a.Event != "query_flagged" {
			continue
		}
		for _, d := range a.Denied {
			if d.Column == "" && byDesign(d.Reason) {
				continue
			}
			out = append(out, fmt.Sprintf("%s %q: %s %s %s", a.Event, a.Statement, d.Act, d.Column, d.Reason))
		}
	}
	return out
}

// byDesign reports whether reason is one of refusedByDesign's.
func byDesign(reason string) bool {
	for _, tests := range refusedByDesign {
		for _, r := range tests {
			if strings.Contains(reason, r) {
				return true
			}
		}
	}
	return false
}

// suiteResult is one package's run.
type suiteResult struct {
	pass, skip int
	// failed are the failed tests, subtests included, by full name.
	failed []string
	// output is each top-level test's output, subtests' included.
	output map[string]*strings.Builder
	// pkgOutput is what the package printed outside any test.
	pkgOutput strings.Builder
	elapsed   time.Duration
	// done is set once the package reported its end.
	done bool
	// err is set when the package failed as a whole (no test binary, a
	// panic, a timeout) or never reported.
	err error
}

func newSuiteResult() *suiteResult {
	return &suiteResult{output: map[string]*strings.Builder{}}
}

// testEvent is one line of `go test -json`.
type testEvent struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

// runSuites runs `go test -json pkgs` with vars in place of the caller's PG*
// variables and returns each package's result.
func runSuites(t *testing.T, goBin string, pkgs []string, vars []string) map[string]*suiteResult {
	t.Helper()
	res := make(map[string]*suiteResult, len(pkgs))
	for _, pkg := range pkgs {
		res[pkg] = newSuiteResult()
	}
	// One package and one test at a time, for every target alike: pgx's
	// tests create and drop tables of the same names (foo, and others) in
	// parallel sessions, and the comparison is about what one session
	// sees, not about how pgguard orders one session's statements against
	// another's DDL (guard's own tests cover that). It also spares the
	// tests that time cancel requests to the millisecond the load of the
	// others.
	args := append([]string{"test", "-count=1", "-json", "-p", "1", "-parallel", "1", "-timeout", "12m"}, pkgs...)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Env = append(withoutPG(os.Environ()), vars...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	parseEvents(stdout, res)
	runErr := cmd.Wait()
	for _, pkg := range pkgs {
		if !res[pkg].done {
			res[pkg].err = fmt.Errorf("no result (go test: %v; %s)", runErr, strings.TrimSpace(tail(stderr.String(), 20)))
		}
	}
	return res
}

// parseEvents reads `go test -json` output into res, by package; packages
// not in res are ignored.
func parseEvents(in io.Reader, res map[string]*suiteResult) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev testEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		r := res[ev.Package]
		if r == nil {
			continue
		}
		if ev.Test == "" {
			switch ev.Action {
			case "output", "build-output":
				r.pkgOutput.WriteString(ev.Output)
			case "pass", "fail", "skip":
				r.done = true
				r.elapsed = time.Duration(ev.Elapsed * float64(time.Second))
				if ev.Action == "fail" && len(r.failed) == 0 {
					r.err = fmt.Errorf("the package failed without a failing test (build error, panic or timeout)")
				}
			}
			continue
		}
		top, _, _ := strings.Cut(ev.Test, "/")
		switch ev.Action {
		case "output":
			b := r.output[top]
			if b == nil {
				b = &strings.Builder{}
				r.output[top] = b
			}
			b.WriteString(ev.Output)
		case "pass":
			r.pass++
		case "fail":
			r.failed = append(r.failed, ev.Test)
		case "skip":
			r.skip++
		}
	}
}

// compare lists what a run through pgguard did differently from the direct
// one: every test that failed other than those refused by design, and every
// test refused by design that did not fail with its refusal.
func compare(r, direct *suiteResult, refused map[string]string) []string {
	if r.err != nil {
		return []string{fmt.Sprintf("%v\n%s", r.err, tail(r.pkgOutput.String(), 50))}
	}
	var problems []string
	failedTop := map[string]bool{}
	for _, name := range r.failed {
		top, _, _ := strings.Cut(name, "/")
		failedTop[top] = true
	}
	directFailed := map[string]bool{}
	for _, name := range direct.failed {
		directFailed[name] = true
	}
	for _, name := range r.failed {
		top, _, _ := strings.Cut(name, "/")
		if _, ok := refused[top]; ok {
			continue
		}
		also := ""
		if directFailed[name] {
			also = " (it failed directly too)"
		}
		// A parent fails with its subtests: show the output once, at the
		// top-level test.
		out := ""
		if name == top {
			out = "\n" + tail(r.testOutput(top), 40)
		}
		problems = append(problems, fmt.Sprintf("%s fails through pgguard%s%s", name, also, out))
	}
	for _, top := range slices.Sorted(maps.Keys(refused)) {
		want := refused[top]
		switch {
		case !failedTop[top]:
			problems = append(problems, fmt.Sprintf("%s is listed as refused by design (%q) but did not fail: drop it from the list", top, want))
		case !strings.Contains(r.testOutput(top), want):
			problems = append(problems, fmt.Sprintf("%s is listed as refused by design but failed without %q:\n%s", top, want, tail(r.testOutput(top), 40)))
		}
	}
	return problems
}

func (r *suiteResult) testOutput(top string) string {
	if b := r.output[top]; b != nil {
		return b.String()
	}
	return ""
}

// tail is the package's output and its failed tests' output, last n lines.
func (r *suiteResult) tail(n int) string {
	var all strings.Builder
	all.WriteString(r.pkgOutput.String())
	for _, name := range r.failed {
		if !strings.Contains(name, "/") {
			all.WriteString(r.testOutput(name))
		}
	}
	return tail(all.String(), n)
}

// table shows each package's tally per target, as docs/operations.md does.
func table(results map[Target]map[string]*suiteResult) string {
	var b strings.Builder
	targets := []Target{Direct, Enforce, Monitor}
	fmt.Fprintf(&b, "| suite |")
	for _, target := range targets {
		fmt.Fprintf(&b, " %s |", target)
	}
	b.WriteString("\n| --- | --- | --- | --- |\n")
	for _, pkg := range suites {
		fmt.Fprintf(&b, "| `%s` |", suiteName(pkg))
		for _, target := range targets {
			r := results[target][pkg]
			switch {
			case r == nil:
				b.WriteString(" not run |")
			case r.err != nil:
				fmt.Fprintf(&b, " %v |", r.err)
			default:
				fmt.Fprintf(&b, " %d/%d/%d in %s |", r.pass, len(r.failed), r.skip, r.elapsed.Round(time.Second))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// suiteName is a package's name, pgx for the module's root package.
func suiteName(pkg string) string {
	if pkg == "github.com/jackc/pgx/v5" {
		return "pgx"
	}
	return path.Base(pkg)
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

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
