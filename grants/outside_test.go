package grants_test

import (
	"context"
	"testing"
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
