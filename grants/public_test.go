package grants_test

import "testing"

// TestGrantsTakeWhatPUBLICHolds: a privilege granted to PUBLIC is every
// login's, and a table-wide SELECT to PUBLIC opens every column whatever
// the column grants say.
func TestGrantsTakeWhatPUBLICHolds(t *testing.T) {
	pg, pol, _ := world(t)
	pg.MustExec(t, "postgres", `GRANT SELECT ON hr.salaries TO PUBLIC;
		GRANT SELECT (iban), UPDATE (iban) ON crm.customers TO PUBLIC;
		CREATE SEQUENCE crm.invoice_numbers; GRANT ALL ON SEQUENCE crm.invoice_numbers TO PUBLIC`)
	applied(t, pg, pol, load(t, pg))
	cases := []struct {
		user, sql string
		allowed   bool
	}{
		{"sales_app", "SELECT gross_monthly FROM hr.salaries", false},
		{"sales_app", "SELECT iban FROM crm.customers", false},
		{"marketing_app", "UPDATE crm.customers SET iban = NULL WHERE false", false},
		{"marketing_app", "SELECT nextval('crm.invoice_numbers')", false},
		{"finance_app", "SELECT iban FROM crm.customers", true},
	}
	for _, c := range cases {
		err := runAs(t, pg.URL(c.user, password, "postgres"), c.sql)
		if err != nil && !refusedForPrivilege(err) {
			t.Fatalf("%s: %s: %v", c.user, c.sql, err)
		}
		if allowed := err == nil; allowed != c.allowed {
			t.Errorf("%s: %s: allowed %v, want %v (%v)", c.user, c.sql, allowed, c.allowed, err)
		}
	}
}
