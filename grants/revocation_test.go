package grants_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/grants"
)

// TestGrantsTakeBackWhatTheLastPolicyGave: the grants are run again after
// each policy change, and must leave exactly the new policy's privileges.
// A login the policy no longer names, a department whose rules are gone,
// a purpose no rule names any more, and a department role granted by hand
// to a login outside the policy keep nothing.
func TestGrantsTakeBackWhatTheLastPolicyGave(t *testing.T) {
	pg, shipped, _ := world(t)
	pg.MustExec(t, "postgres", "DROP ROLE IF EXISTS bystander_app; CREATE ROLE bystander_app LOGIN PASSWORD '"+password+"'")
	t.Cleanup(func() { pg.MustExec(t, "postgres", "DROP OWNED BY bystander_app; DROP ROLE bystander_app") })
	text, err := os.ReadFile("../policy.csv")
	if err != nil {
		t.Fatal(err)
	}
	// The new policy: marketing_app left the company, finance lost its
	// rules (its login stays, in no department with rules), and the
	// sick_leave_admin purpose is gone, with hr's right to read sick leave.
	var kept []string
	for _, line := range strings.Split(string(text), "\n") {
		if line == "g, marketing_app, marketing" {
			line = "g, marketing, staff" // the department stays, without its login
		}
		if strings.HasPrefix(line, "p, finance,") || strings.Contains(line, "sick_leave_admin") {
			continue
		}
		kept = append(kept, line)
	}
	path := filepath.Join(t.TempDir(), "policy.csv")
	changed := policyAt(t, path, strings.Join(kept, "\n"))
	ctx := context.Background()
	for _, purposeRoles := range []bool{false, true} {
		snap := load(t, pg)
		super := superConn(t, pg)
		old, err := grants.Compile(shipped, snap, grants.Options{PurposeRoles: purposeRoles})
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Apply(ctx, super); err != nil {
			t.Fatal(err)
		}
		pg.MustExec(t, "postgres", "GRANT pgguard_dept_hr TO bystander_app")
		plan, err := grants.Compile(changed, snap, grants.Options{PurposeRoles: purposeRoles})
		if err != nil {
			t.Fatal(err)
		}
		if err := plan.Apply(ctx, super); err != nil {
			t.Fatal(err)
		}
		// What each login can still reach, through any role it may set.
		for _, c := range []struct{ user, column string }{
			{"marketing_app", "crm.customers.email"},
			{"finance_app", "crm.customers.iban"},
			{"bystander_app", "hr.employees.bsn"},
			{"hr_app", "hr.sick_leave.diagnosis_note"},
		} {
			rel, col := c.column[:strings.LastIndex(c.column, ".")], c.column[strings.LastIndex(c.column, ".")+1:]
			if roles := rolesReading(t, super, c.user, rel, col); len(roles) > 0 {
				t.Errorf("purpose roles %v: after the policy change %s still reads %s through %v", purposeRoles, c.user, c.column, roles)
			}
		}
		// And what the new policy gives still works.
		conn, err := pgx.Connect(ctx, pg.URL("hr_app", password, "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		if purposeRoles {
			_, err = conn.Exec(ctx, "SET ROLE "+pgx.Identifier{mustRole(t, grants.NewNamer(changed, ""), "hr_app", "personnel_admin")}.Sanitize())
		}
		if err == nil {
			_, err = conn.Exec(ctx, "SELECT bsn FROM hr.employees")
		}
		conn.Close(ctx)
		if err != nil {
			t.Errorf("purpose roles %v: hr_app: %v", purposeRoles, err)
		}
	}
	// Back to the shipped policy's departments for the tests after this one.
	applied(t, pg, shipped, load(t, pg))
}

// rolesReading lists the roles through which user may read column of rel:
// itself, the roles it inherits, and those it may SET ROLE to.
func rolesReading(t *testing.T, conn *pgx.Conn, user, rel, column string) []string {
	t.Helper()
	var roles []string
	err := conn.QueryRow(context.Background(), `
		SELECT coalesce(array_agg(r.rolname::text ORDER BY r.rolname), '{}')
		FROM pg_catalog.pg_roles u
		JOIN pg_catalog.pg_roles r ON pg_catalog.pg_has_role(u.oid, r.oid, 'MEMBER')
		WHERE u.rolname = $1 AND pg_catalog.has_column_privilege(r.oid, $2::regclass, $3, 'SELECT')`,
		user, rel, column).Scan(&roles)
	if err != nil {
		t.Fatal(err)
	}
	return roles
}

// TestGrantsTakeTheAdminOption: a login holding its department's role
// WITH ADMIN OPTION could grant it to a login outside the department; the
// grants keep the membership and take the option.
func TestGrantsTakeTheAdminOption(t *testing.T) {
	pg, pol, snap := world(t)
	applied(t, pg, pol, snap)
	pg.MustExec(t, "postgres", "GRANT pgguard_dept_sales TO sales_app WITH ADMIN OPTION; GRANT pgguard_dept_hr TO sales_app WITH ADMIN OPTION")
	_, super := applied(t, pg, pol, snap)
	if err := runAs(t, pg.URL("sales_app", password, "postgres"), "GRANT pgguard_dept_sales TO marketing_app"); !refusedForPrivilege(err) {
		t.Errorf("sales_app passed its role on: %v", err)
	}
	var sales, hr bool
	err := super.QueryRow(context.Background(), `SELECT pg_has_role('sales_app', 'pgguard_dept_sales', 'MEMBER'),
		pg_has_role('sales_app', 'pgguard_dept_hr', 'MEMBER')`).Scan(&sales, &hr)
	if err != nil || !sales || hr {
		t.Errorf("sales_app: member of its department %v, of hr %v (%v)", sales, hr, err)
	}
}
