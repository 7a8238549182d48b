package grants_test

import "testing"

// TestGrantsDecideViewWritesOnWhatTheViewReads: a write through a view
// reads what the view's WHERE reads (which rows it changes tells about
// them), as pgguard decides it. Customer service may write customers'
// e-mail addresses, and never read their IBANs: an UPDATE through a view
// that keeps the customers with an IBAN is refused, one through a view
// that keeps all of them is not.
func TestGrantsDecideViewWritesOnWhatTheViewReads(t *testing.T) {
	pg, pol, _ := world(t)
	pg.MustExec(t, "postgres", `CREATE VIEW crm.paying_contacts AS SELECT id, email FROM crm.customers WHERE iban IS NOT NULL;
		CREATE VIEW crm.all_contacts AS SELECT id, email FROM crm.customers`)
	applied(t, pg, pol, load(t, pg))
	expectPrivileges(t, pg, []privilegeCase{
		{"support_app", "UPDATE crm.paying_contacts SET email = NULL WHERE false", false},
		{"support_app", "INSERT INTO crm.paying_contacts (id, email) SELECT 1, NULL WHERE false", false},
		{"support_app", "DELETE FROM crm.paying_contacts WHERE false", false},
		{"support_app", "UPDATE crm.all_contacts SET email = NULL WHERE false", true},
		{"support_app", "SELECT email FROM crm.all_contacts", true},
		{"support_app", "SELECT email FROM crm.paying_contacts", false},
	})
}
