package grants_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/grants"
)

// TestGrantsGuardRoutinesThatRunAsTheirOwner: a SECURITY DEFINER routine
// reads with its owner's rights, whatever the caller's column privileges,
// and PUBLIC may call every new routine. Only the departments the policy
// lets call it keep EXECUTE; a routine that runs with the caller's rights
// stays callable, bounded by the caller's column privileges.
func TestGrantsGuardRoutinesThatRunAsTheirOwner(t *testing.T) {
	pg, _, _ := world(t)
	pg.MustExec(t, "postgres", `CREATE FUNCTION hr.salary_of(bigint) RETURNS numeric LANGUAGE sql SECURITY DEFINER
			AS 'SELECT gross_monthly FROM hr.salaries WHERE employee_id = $1';
		CREATE PROCEDURE hr.raise_all(numeric) LANGUAGE sql SECURITY DEFINER
			AS 'UPDATE hr.salaries SET gross_monthly = gross_monthly * $1';
		CREATE FUNCTION hr.salary_as_invoker(bigint) RETURNS numeric LANGUAGE sql
			AS 'SELECT gross_monthly FROM hr.salaries WHERE employee_id = $1'`)
	text, err := os.ReadFile("../policy.csv")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "policy.csv")
	text = append(text, "p, finance, financial_reporting, function:hr.salary_of, execute, allow\n"...)
	pol := policyAt(t, path, string(text))
	applied(t, pg, pol, load(t, pg))
	expectPrivileges(t, pg, []privilegeCase{
		{"sales_app", "SELECT hr.salary_of(100)", false},
		{"hr_app", "SELECT hr.salary_of(100)", false},
		{"hr_app", "CALL hr.raise_all(1)", false},
		{"finance_app", "SELECT hr.salary_of(100)", true},
		{"payroll_app", "SELECT hr.salary_as_invoker(100)", true}, // payroll reads salaries itself
		{"sales_app", "SELECT hr.salary_as_invoker(100)", false},  // no USAGE on hr, no column privilege
	})
}

// TestCompileRefusesNamesThatEndItsBlocks: the plan quotes its DO blocks
// with $pgguard$; a schema named to hold it would end a block early and
// have the rest of its name run as SQL by whoever applies the grants.
func TestCompileRefusesNamesThatEndItsBlocks(t *testing.T) {
	pg, pol, _ := world(t)
	pg.MustExec(t, "postgres", `CREATE SCHEMA "x$pgguard$; ALTER ROLE sales_app SUPERUSER; DO $pgguard$"`)
	t.Cleanup(func() {
		pg.MustExec(t, "postgres", `DROP SCHEMA "x$pgguard$; ALTER ROLE sales_app SUPERUSER; DO $pgguard$"`)
	})
	if _, err := grants.Compile(pol, load(t, pg), grants.Options{}); err == nil || !strings.Contains(err.Error(), "$pgguard$") {
		t.Fatalf("compiled: %v", err)
	}
}
