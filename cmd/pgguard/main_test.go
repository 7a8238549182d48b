package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/pgtest"
)

func TestMain(m *testing.M) {
	// The subcommands read model.conf and policy.csv from the repository
	// root by default, as a user running from a checkout would.
	if err := os.Chdir("../.."); err != nil {
		panic(err)
	}
	os.Exit(pgtest.RunMain(m))
}

func runCmd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String() + errOut.String()
}

func TestEnvironmentFillsFlagsAndFlagsWin(t *testing.T) {
	if envName("alert-webhook") != "PGGUARD_ALERT_WEBHOOK" {
		t.Fatalf("envName = %s", envName("alert-webhook"))
	}
	var c serveConfig
	fs := serveFlags(&c)
	t.Setenv("PGGUARD_MODE", "monitor")
	t.Setenv("PGGUARD_LISTEN", "127.0.0.1:7000")
	if _, err := parseFlags(fs, []string{"--listen", "127.0.0.1:7001"}); err != nil {
		t.Fatal(err)
	}
	if c.mode != "monitor" || c.listen != "127.0.0.1:7001" {
		t.Fatalf("mode %q listen %q", c.mode, c.listen)
	}
	t.Setenv("PGGUARD_MAX_MESSAGE_SIZE", "lots")
	if _, err := parseFlags(serveFlags(&c), nil); err == nil || !strings.Contains(err.Error(), "PGGUARD_MAX_MESSAGE_SIZE") {
		t.Fatalf("bad environment value: %v", err)
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	for _, args := range [][]string{
		{"serve"},
		{"serve", "--upstream", "postgres://127.0.0.1:1/", "--mode", "block"},
		{"serve", "--upstream", "postgres://127.0.0.1:1/", "--tls-cert", "x.pem"},
		{"serve", "--upstream", "postgres://127.0.0.1:1/", "--startup-timeout", "0s"},
		{"serve", "--upstream", "postgres://127.0.0.1:1/", "--cancel-spare-age", "100ms"},
		{"serve", "--upstream", "postgres://127.0.0.1:1/", "--cancel-spare-age", "-1s"},
		{"bogus"},
	} {
		if code, out := runCmd(t, args...); code != exitError {
			t.Errorf("%v: exit %d, want %d\n%s", args, code, exitError, out)
		}
	}
}

func TestCheckExitCodes(t *testing.T) {
	base := []string{"check", "--schema", "demo/schema.sql", "--user", "sales_app"}
	cases := []struct {
		purpose, sql string
		code         int
		says         string
	}{
		{"order_fulfilment", "SELECT email FROM crm.customers", exitOK, "ALLOWED"},
		{"order_fulfilment", "SELECT bsn FROM crm.customers", exitDenied, "crm.customers.bsn"},
		{"", "SELECT gross_monthly FROM hr.salaries", exitDenied, "hr.salaries.gross_monthly"},
		{"order_fulfilment", "SELEC nonsense", exitDenied, "cannot be analysed"},
	}
	for _, tc := range cases {
		args := append(append([]string{}, base...), "--purpose", tc.purpose, tc.sql)
		code, out := runCmd(t, args...)
		if code != tc.code || !strings.Contains(out, tc.says) {
			t.Errorf("%q: exit %d, want %d; output:\n%s", tc.sql, code, tc.code, out)
		}
	}
	if code, _ := runCmd(t, "check", "--user", "x", "SELECT 1"); code != exitError {
		t.Errorf("check without a catalog: exit %d, want %d", code, exitError)
	}
}

func TestShippedPolicyTestsHold(t *testing.T) {
	code, out := runCmd(t, "policy", "test", "--schema", "demo/schema.sql", "policy_tests.txt")
	if code != exitOK || !strings.Contains(out, " 0 failed") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestShippedPolicyLintsClean(t *testing.T) {
	code, out := runCmd(t, "policy", "lint", "--schema", "demo/schema.sql")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "policy is clean") || strings.Contains(out, "skipped") {
		t.Errorf("with a catalog, lint runs every check:\n%s", out)
	}
	code, out = runCmd(t, "policy", "lint", "--policy", "authz/testdata/lint/bad_effect_case.csv")
	if code != exitDenied || !strings.Contains(out, "bad_effect_case.csv:") || !strings.Contains(out, "skipped 2 check(s)") {
		t.Fatalf("bad policy: exit %d:\n%s", code, out)
	}
}

func TestLintWithoutCatalogSaysWhatItSkipped(t *testing.T) {
	code, out := runCmd(t, "policy", "lint")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	want := "no findings\n" +
		"skipped 2 check(s) that need the catalog (give --schema FILE.sql or --upstream URL):\n" +
		"  pattern-matches-nothing: g2 and p column patterns that match no column of the database\n" +
		"  unclassified-personal-data: columns that look like personal data but no g2 rule classifies\n"
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestDemoScenarioEndToEnd(t *testing.T) {
	code, out := runCmd(t, "demo", "--script-only", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0")
	if code != exitOK {
		t.Fatalf("demo exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"allowed: 3 row(s)",
		"refused: ERROR 42501 pgguard:",
		`"event":"query_blocked"`,
		"pgguard reloaded: policy",
		"Applied the policy's grants",
		// Around pgguard, PostgreSQL's own privileges refuse the column.
		"refused by PostgreSQL: ERROR 42501 permission denied for table customers",
		// A mistaken policy edit lets a statement past pgguard; PostgreSQL
		// refuses it and pgguard raises the alert for the gap.
		"refused: ERROR 42501 permission denied for table customers",
		`"event":"query_blocked_by_database"`,
		"All steps turned out as expected",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "UNEXPECTED") || strings.Contains(out, "unexpected") {
		t.Errorf("demo reported an unexpected outcome:\n%s", out)
	}
}

// versions hides the policy and catalog versions, which change with every
// edit of policy.csv or demo/schema.sql, from golden output.
var versions = regexp.MustCompile(`(policy |catalog |"policy_version": "|"catalog_version": ")[0-9a-f]+`)

// TestCheckExplainsEachColumnGolden: a refused statement shows every column
// on a line of its own with its categories and the rule that decided it;
// --json keeps its shape.
func TestCheckExplainsEachColumnGolden(t *testing.T) {
	base := []string{"check", "--schema", "demo/schema.sql"}
	cases := []struct{ file, user, purpose, sql string }{
		{"check_refused.txt", "marketing_app", "newsletter", "SELECT id, email, phone FROM crm.customers WHERE city = 'Utrecht'"},
		{"check_unknown_purpose.txt", "payroll_app", "payrol", "SELECT e.last_name, s.gross_monthly FROM hr.employees e JOIN hr.salaries s ON s.employee_id = e.id"},
		{"check_allowed.txt", "sales_app", "shipping", "SELECT email, status FROM crm.customers c JOIN crm.orders o ON o.customer_id = c.id"},
	}
	for _, tc := range cases {
		_, out := runCmd(t, append(append([]string{}, base...), "--user", tc.user, "--purpose", tc.purpose, tc.sql)...)
		golden(t, tc.file, versions.ReplaceAllString(out, "${1}VERSION"))
	}
	_, out := runCmd(t, append(append([]string{}, base...), "--json", "--user", "marketing_app", "--purpose", "newsletter", cases[0].sql)...)
	golden(t, "check_refused.json", versions.ReplaceAllString(out, "${1}VERSION"))
}

// runSplit runs a command and returns its exit code, standard output and
// standard error apart.
func runSplit(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestHelpExitsZero: every way of asking for help prints the usage on
// standard output and exits 0, without calling it an error.
func TestHelpExitsZero(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--help"}, "pgguard check [flags]"},
		{[]string{"-h"}, "pgguard check [flags]"},
		{[]string{"help"}, "pgguard check [flags]"},
		{[]string{"help", "check"}, "-user"},
		{[]string{"serve", "--help"}, "-catalog-url"},
		{[]string{"check", "--help"}, "-user"},
		{[]string{"check", "-h"}, "-purpose"},
		{[]string{"check", "--user", "x", "--help"}, "-json"},
		{[]string{"policy", "--help"}, "pgguard policy lint"},
		{[]string{"policy", "-h"}, "pgguard policy test"},
		{[]string{"policy", "lint", "--help"}, "-schema"},
		{[]string{"policy", "test", "-h"}, "-schema"},
		{[]string{"demo", "--help"}, "-listen"},
	} {
		code, stdout, stderr := runSplit(t, tc.args...)
		if code != exitOK || !strings.Contains(stdout, tc.says) || !strings.Contains(stdout, "usage:") {
			t.Errorf("%q: exit %d, want 0, and usage naming %q on stdout:\n%s", tc.args, code, tc.says, stdout)
		}
		if stderr != "" || strings.Contains(stdout, "help requested") {
			t.Errorf("%q: help reported as an error: stdout %q stderr %q", tc.args, stdout, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		code, stdout, _ := runSplit(t, args...)
		if code != exitOK || !strings.HasPrefix(stdout, "pgguard ") || strings.Contains(stdout, "pgguard dev") {
			t.Errorf("%q: exit %d: %q", args, code, stdout)
		}
	}
	info := func(main string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Path: "github.com/pgguard/pgguard", Version: main}, Settings: settings}, true
		}
	}
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef0123"}
	dirty := debug.BuildSetting{Key: "vcs.modified", Value: "true"}
	for _, tc := range []struct {
		ldflags string
		info    func() (*debug.BuildInfo, bool)
		want    string
	}{
		{"1.4.0", info("v1.3.0"), "1.4.0"},
		{"", info("v1.3.0"), "v1.3.0"},
		{"", info("v0.0.0-20250101120000-0123456789ab"), "v0.0.0-20250101120000-0123456789ab"},
		{"", info("(devel)", rev), "(devel) 0123456789ab"},
		{"", info("(devel)", rev, dirty), "(devel) 0123456789ab-dirty"},
		{"", info("(devel)"), "(devel)"},
		{"", func() (*debug.BuildInfo, bool) { return nil, false }, "(devel)"},
	} {
		if got := versionOf(tc.ldflags, tc.info); got != tc.want {
			t.Errorf("versionOf(%q, ...) = %q, want %q", tc.ldflags, got, tc.want)
		}
	}
}

// TestFlagsAfterArguments: flags may follow the SQL or the test file, and
// what cannot be understood is named.
func TestFlagsAfterArguments(t *testing.T) {
	code, out := runCmd(t, "check", "SELECT bsn FROM crm.customers", "--schema", "demo/schema.sql", "--user", "sales_app", "--purpose", "order_fulfilment", "--json")
	if code != exitDenied || !strings.Contains(out, `"allowed": false`) {
		t.Errorf("check with flags after the SQL: exit %d:\n%s", code, out)
	}
	code, out = runCmd(t, "policy", "test", "policy_tests.txt", "--schema", "demo/schema.sql")
	if code != exitOK || !strings.Contains(out, " 0 failed") {
		t.Errorf("policy test with flags after the file: exit %d:\n%s", code, out)
	}
	// "--" ends the flags, so a statement may start with a dash.
	code, out = runCmd(t, "check", "--schema", "demo/schema.sql", "--user", "sales_app", "--", "--comment\nSELECT 1")
	if code != exitOK {
		t.Errorf("check -- SQL: exit %d:\n%s", code, out)
	}
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"check", "--schema", "demo/schema.sql", "SELECT 1", "--json"}, "check needs --user"},
		{[]string{"check", "--schema", "demo/schema.sql", "--user", "x"}, `check needs one "SQL" argument`},
		{[]string{"check", "--schema", "demo/schema.sql", "--user", "x", "SELECT", "1"}, `got 2: ["SELECT" "1"]`},
		{[]string{"check", "--schema", "demo/schema.sql", "--user", "x", "SELECT 1", "--jsn"}, "flag provided but not defined: -jsn"},
		{[]string{"policy", "lint", "policy.csv"}, `takes no arguments, got ["policy.csv"]`},
		{[]string{"serve", "127.0.0.1:6432"}, `takes no arguments`},
	} {
		code, out := runCmd(t, tc.args...)
		if code != exitError || !strings.Contains(out, tc.says) {
			t.Errorf("%q: exit %d, want %d saying %q:\n%s", tc.args, code, exitError, tc.says, out)
		}
	}
}

// TestEveryCommandReadsTheEnvironment: every command takes a flag it was
// not given from PGGUARD_<FLAG>, and the command line wins; a catalog
// source given on the command line (--schema) keeps the environment's
// other one (PGGUARD_UPSTREAM, meant for the proxy) out.
func TestEveryCommandReadsTheEnvironment(t *testing.T) {
	t.Setenv("PGGUARD_UPSTREAM", "postgres://127.0.0.1:1/?sslmode=disable")
	t.Setenv("PGGUARD_LISTEN", "127.0.0.1:1")
	for _, args := range [][]string{
		{"check", "--schema", "demo/schema.sql", "--user", "sales_app", "--purpose", "order_fulfilment", "SELECT email FROM crm.customers"},
		{"policy", "lint", "--schema", "demo/schema.sql"},
		{"policy", "test", "--schema", "demo/schema.sql", "policy_tests.txt"},
	} {
		if code, out := runCmd(t, args...); code != exitOK {
			t.Errorf("%q with PGGUARD_UPSTREAM set: exit %d:\n%s", args, code, out)
		}
	}
	t.Setenv("PGGUARD_POLICY", "does-not-exist.csv")
	if code, out := runCmd(t, "policy", "lint", "--schema", "demo/schema.sql"); code != exitError || !strings.Contains(out, "does-not-exist.csv") {
		t.Errorf("policy lint with PGGUARD_POLICY=does-not-exist.csv: exit %d:\n%s", code, out)
	}
	if code, out := runCmd(t, "policy", "lint", "--schema", "demo/schema.sql", "--policy", "policy.csv"); code != exitOK {
		t.Errorf("policy lint --policy policy.csv did not win over PGGUARD_POLICY: exit %d:\n%s", code, out)
	}
	t.Setenv("PGGUARD_USER", "payroll_app")
	t.Setenv("PGGUARD_PURPOSE", "payroll")
	if code, out := runCmd(t, "check", "--policy", "policy.csv", "--schema", "demo/schema.sql", "SELECT gross_monthly FROM hr.salaries"); code != exitOK {
		t.Errorf("check with PGGUARD_USER=payroll_app, PGGUARD_PURPOSE=payroll: exit %d:\n%s", code, out)
	}
	for name, fs := range commandFlagSets() {
		fs.SetOutput(io.Discard)
		if _, err := parseFlags(fs, nil); err != nil && !strings.Contains(err.Error(), "PGGUARD_") {
			t.Errorf("%s: %v", name, err)
		}
		if got := fs.Lookup("listen"); got != nil && got.Value.String() != "127.0.0.1:1" {
			t.Errorf("%s --listen = %q, PGGUARD_LISTEN is 127.0.0.1:1", name, got.Value)
		}
	}
	var c serveConfig
	if _, err := parseFlags(serveFlags(&c), nil); err != nil || c.policy != "does-not-exist.csv" || c.upstream == "" {
		t.Errorf("serve does not read the environment: %v, policy %q, upstream %q", err, c.policy, c.upstream)
	}
}

// TestDemoKeepsRunning runs the demo as the README says, without
// --script-only: once the scenario is played it keeps running, and the
// psql lines, the metrics URL and the alerts it prints work, with the real
// psql, until it is stopped.
func TestDemoKeepsRunning(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
		if len(matches) == 0 {
			t.Fatal("psql not found: apt-get install -y postgresql-client")
		}
		psql = matches[len(matches)-1]
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &pgtest.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"}, out, out)
	}()
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(out.String(), "Ctrl-C stops pgguard") {
		select {
		case code := <-done:
			t.Fatalf("the demo ended (exit %d) instead of running on:\n%s", code, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not get ready:\n%s", out.String())
		}
	}
	printed := out.String()
	sales := regexp.MustCompile(`sales:\s+psql "([^"]+)"`).FindStringSubmatch(printed)
	metrics := regexp.MustCompile(`Metrics: (http://\S+/metrics)`).FindStringSubmatch(printed)
	if sales == nil || metrics == nil {
		t.Fatalf("no psql line for sales or no metrics URL:\n%s", printed)
	}
	runPsql := func(sql string) (string, error) {
		cmd := exec.Command(psql, "-X", "-v", "ON_ERROR_STOP=1", sales[1], "-c", sql)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if got, err := runPsql("SELECT first_name, email FROM crm.customers LIMIT 3"); err != nil || !strings.Contains(got, "(3 rows)") {
		t.Errorf("psql as sales, allowed query: %v\n%s", err, got)
	}
	if got, err := runPsql("SELECT gross_monthly FROM hr.salaries"); err == nil || !strings.Contains(got, "pgguard:") {
		t.Errorf("psql as sales reading salaries: %v, want a pgguard refusal:\n%s", err, got)
	}
	eventuallyTrue(t, "the alert to be printed", func() bool {
		return strings.Contains(out.String(), `alert: {"denied":[{"act":"read","category":"employee_salary","column":"hr.salaries.gross_monthly"`)
	})
	if body := get(t, metrics[1]); !strings.Contains(body, `pgguard_statements_total{verdict="denied"}`) {
		t.Errorf("%s lacks the statements counter", metrics[1])
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("demo exit %d after Ctrl-C:\n%s", code, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("the demo did not stop")
	}
}
