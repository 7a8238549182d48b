package grants_test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestGrantsTakeDefaultPrivileges: ALTER DEFAULT PRIVILEGES gives tables
// created later to whom it names as they are created, before the grants
// run again: to a login, to PUBLIC, or to a group a login is a member of.
// The grants take such defaults away, so a new table is closed until the
// grants give what the policy allows on it.
func TestGrantsTakeDefaultPrivileges(t *testing.T) {
	pg, _, _ := world(t)
	pg.MustExec(t, "postgres", `DROP ROLE IF EXISTS legacy_defaults; CREATE ROLE legacy_defaults NOLOGIN;
		ALTER DEFAULT PRIVILEGES IN SCHEMA crm GRANT SELECT ON TABLES TO sales_app;
		ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC;
		ALTER DEFAULT PRIVILEGES IN SCHEMA crm GRANT SELECT ON TABLES TO legacy_defaults;
		GRANT legacy_defaults TO marketing_app`)
	t.Cleanup(func() {
		pg.MustExec(t, "postgres", `ALTER DEFAULT PRIVILEGES IN SCHEMA crm REVOKE ALL ON TABLES FROM sales_app;
			ALTER DEFAULT PRIVILEGES REVOKE ALL ON TABLES FROM PUBLIC;
			DROP OWNED BY legacy_defaults; DROP ROLE legacy_defaults`)
	})
	text, err := os.ReadFile("../policy.csv")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "policy.csv")
	text = append(text, "g2, crm.notes.*, customer_identity\n"...)
	pol := policyAt(t, path, string(text))
	applied(t, pg, pol, load(t, pg))
	pg.MustExec(t, "postgres", "CREATE TABLE crm.notes (customer_id bigint, note text)")
	for _, user := range []string{"sales_app", "marketing_app", "finance_app"} {
		err := runAs(t, pg.URL(user, password, "postgres"), "SELECT note FROM crm.notes")
		if !refusedForPrivilege(err) {
			t.Errorf("%s reads a table created after the grants: %v", user, err)
		}
	}
}
