package main

import (
	"github.com/pgguard/pgguard/grants"
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
}

// TestGrantsPurposeRoles: --purpose-roles adds a role per department and
// purpose, with the users NOINHERIT members of their own; without it the
// users inherit their departments' ceilings.
func TestGrantsPurposeRoles(t *testing.T) {
	_, plain := runCmd(t, "grants", "--schema", "demo/schema.sql")
	code, out := runCmd(t, "grants", "--purpose-roles", "--schema", "demo/schema.sql")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	fulfil := grants.PurposeRoleName("", []string{"sales"}, "order_fulfilment")
	cases := []struct {
		text         string
		plain, roles bool
	}{
		{`ALTER ROLE "sales_app" INHERIT;`, true, false},
		{`ALTER ROLE "sales_app" NOINHERIT;`, false, true},
		{`CREATE ROLE "` + fulfil + `" NOLOGIN`, false, true},
		{`GRANT "` + fulfil + `" TO "sales_app";`, false, true},
		{`REVOKE "` + fulfil + `" FROM "hr_app";`, false, true},
		{`"email"`, true, true},
	}
	for _, c := range cases {
		if strings.Contains(plain, c.text) != c.plain || strings.Contains(out, c.text) != c.roles {
			t.Errorf("%s: in the plain SQL %v (want %v), with purpose roles %v (want %v)",
				c.text, strings.Contains(plain, c.text), c.plain, strings.Contains(out, c.text), c.roles)
		}
	}
	if _, again := runCmd(t, "grants", "--purpose-roles", "--schema", "demo/schema.sql"); again != out {
		t.Error("two runs printed different SQL")
	}
}
