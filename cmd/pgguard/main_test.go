package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

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
	if err := parseFlags(fs.FlagSet, []string{"--listen", "127.0.0.1:7001"}); err != nil {
		t.Fatal(err)
	}
	if c.mode != "monitor" || c.listen != "127.0.0.1:7001" {
		t.Fatalf("mode %q listen %q", c.mode, c.listen)
	}
	t.Setenv("PGGUARD_MAX_MESSAGE_SIZE", "lots")
	if err := parseFlags(serveFlags(&c).FlagSet, nil); err == nil || !strings.Contains(err.Error(), "PGGUARD_MAX_MESSAGE_SIZE") {
		t.Fatalf("bad environment value: %v", err)
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	for _, args := range [][]string{
		{"serve"},
		{"serve", "--upstream", "postgres://127.0.0.1:1/", "--mode", "block"},
		{"serve", "--upstream", "postgres://127.0.0.1:1/", "--tls-cert", "x.pem"},
		{"serve", "--upstream", "postgres://127.0.0.1:1/", "--startup-timeout", "0s"},
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
	code, out := runCmd(t, "demo", "--listen", "127.0.0.1:0")
	if code != exitOK {
		t.Fatalf("demo exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"psql \"host=127.0.0.1",
		"allowed: 3 row(s)",
		"refused: ERROR 42501 pgguard:",
		`"event":"query_blocked"`,
		"pgguard reloaded: policy",
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
