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
	expectPrivileges(t, pg, []privilegeCase{
		{"sales_app", "SELECT gross_monthly FROM hr.salaries", false},
		{"sales_app", "SELECT iban FROM crm.customers", false},
		{"marketing_app", "UPDATE crm.customers SET iban = NULL WHERE false", false},
		{"marketing_app", "SELECT nextval('crm.invoice_numbers')", false},
		{"finance_app", "SELECT iban FROM crm.customers", true},
	})
}
