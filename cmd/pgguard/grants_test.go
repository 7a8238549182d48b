package main

import (
	"os"
	"path/filepath"

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

	// From a DDL file, the sequences a serial column takes its values from
	// are granted to the departments that may write it.
	dir := t.TempDir()
	ddl, err := os.ReadFile("demo/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	schema := filepath.Join(dir, "schema.sql")
	extra := "\nCREATE SEQUENCE crm.orders_id_seq OWNED BY crm.orders.id;\nALTER TABLE crm.orders ALTER COLUMN id SET DEFAULT nextval('crm.orders_id_seq');\n"
	if err := os.WriteFile(schema, append(ddl, extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = runCmd(t, "grants", "--schema", schema)
	if want := `GRANT USAGE ON SEQUENCE "crm"."orders_id_seq" TO "pgguard_dept_sales";`; code != exitOK || !strings.Contains(out, want) {
		t.Errorf("exit %d; the SQL lacks %s", code, want)
	}
	if strings.Contains(out, `GRANT USAGE ON SEQUENCE "crm"."orders_id_seq" TO "pgguard_dept_marketing";`) {
		t.Error("marketing, which may not write orders, is granted their sequence")
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
