package grants_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/grants"
)

// TestGrantsCloseWhatOtherRolesOpen: privileges the plan does not manage
// reach a login from PUBLIC, and from roles outside the plan it is a member
// of: a group that reads every table, a chain through a NOINHERIT group
// (SET ROLE passes it), PostgreSQL's pg_read_all_data, another login. The
// grants take each of them away; a group that holds nothing in the
// catalog's schemas (one pg_hba.conf names, say) stays.
func TestGrantsCloseWhatOtherRolesOpen(t *testing.T) {
	pg, pol, _ := world(t)
	pg.MustExec(t, "postgres", `DROP ROLE IF EXISTS legacy_readers, legacy_chain, departments_hba;
		CREATE ROLE legacy_readers NOLOGIN;
		GRANT USAGE ON SCHEMA crm, hr TO legacy_readers;
		GRANT SELECT ON ALL TABLES IN SCHEMA crm, hr TO legacy_readers;
		CREATE ROLE legacy_chain NOLOGIN NOINHERIT;
		GRANT legacy_readers TO legacy_chain;
		CREATE ROLE departments_hba NOLOGIN;
		GRANT legacy_readers TO sales_app;
		GRANT legacy_chain TO marketing_app;
		GRANT pg_read_all_data TO hr_app;
		GRANT support_app TO finance_app;
		GRANT departments_hba TO sales_app, marketing_app`)
	t.Cleanup(func() {
		pg.MustExec(t, "postgres", `REVOKE support_app FROM finance_app; REVOKE pg_read_all_data FROM hr_app;
			DROP OWNED BY legacy_readers, legacy_chain, departments_hba; DROP ROLE legacy_readers, legacy_chain, departments_hba`)
	})
	_, super := applied(t, pg, pol, load(t, pg))
	ctx := context.Background()
	for _, c := range []struct{ user, rel, column string }{
		{"sales_app", "crm.customers", "iban"},
		{"sales_app", "hr.salaries", "gross_monthly"},
		{"marketing_app", "hr.employees", "bsn"},
		{"hr_app", "crm.customers", "iban"},
		{"finance_app", "crm.customers", "birth_date"}, // support_app's, for identity_verification
	} {
		if roles := rolesReading(t, super, c.user, c.rel, c.column); len(roles) > 0 {
			t.Errorf("%s reads %s.%s through %v", c.user, c.rel, c.column, roles)
		}
	}
	var kept bool
	if err := super.QueryRow(ctx, "SELECT pg_has_role('sales_app', 'departments_hba', 'MEMBER')").Scan(&kept); err != nil || !kept {
		t.Errorf("sales_app lost a group that holds nothing: %v %v", kept, err)
	}
}

// TestGrantsTakeRoleAdministration: a login with CREATEROLE may grant
// itself any role that is not a superuser's, another department's or
// pg_read_all_data, and a superuser is checked for no privilege at all.
// The grants take CREATEROLE, and refuse to run for a superuser login.
func TestGrantsTakeRoleAdministration(t *testing.T) {
	pg, pol, snap := world(t)
	pg.MustExec(t, "postgres", "ALTER ROLE sales_app CREATEROLE")
	applied(t, pg, pol, snap)
	for _, sql := range []string{"GRANT pgguard_dept_finance TO sales_app", "GRANT pg_read_all_data TO sales_app"} {
		if err := runAs(t, pg.URL("sales_app", password, "postgres"), sql); !refusedForPrivilege(err) {
			t.Errorf("sales_app: %s: %v", sql, err)
		}
	}
	pg.MustExec(t, "postgres", "ALTER ROLE marketing_app SUPERUSER")
	t.Cleanup(func() { pg.MustExec(t, "postgres", "ALTER ROLE marketing_app NOSUPERUSER") })
	plan, err := grants.Compile(pol, snap, grants.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Apply(context.Background(), superConn(t, pg)); err == nil || !strings.Contains(err.Error(), "marketing_app is a superuser") {
		t.Fatalf("applied for a superuser login: %v", err)
	}
}
