package main

import (
	"strings"
	"testing"
)

// TestGrantsPrintsStableSQL: without --apply, grants prints the SQL for a
// DBA to review, the same text every time; --apply needs a database.
func TestGrantsPrintsStableSQL(t *testing.T) {
	args := []string{"grants", "--schema", "demo/schema.sql"}
	code, out := runCmd(t, args...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{
		`CREATE ROLE "pgguard_dept_sales" NOLOGIN`,
		`GRANT "pgguard_dept_sales" TO "sales_app";`,
		`REVOKE ALL ON ALL TABLES IN SCHEMA "crm", "hr", "public" FROM "sales_app";`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s", want)
		}
	}
	if strings.Contains(out, `"iban") ON "crm"."customers" TO "pgguard_dept_sales"`) {
		t.Error("sales is granted customers' IBANs")
	}
	if _, again := runCmd(t, args...); again != out {
		t.Error("two runs printed different SQL")
	}
	if code, _ := runCmd(t, append(args, "--apply")...); code != exitError {
		t.Errorf("--apply without --upstream: exit %d", code)
	}
	// --database-url is --upstream by another name: given with --schema,
	// it is refused the same way.
	if code, _ := runCmd(t, append(args, "--database-url", "postgres://127.0.0.1:1/x")...); code != exitError {
		t.Errorf("--schema with --database-url: exit %d", code)
	}
}
