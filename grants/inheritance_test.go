package grants_test

import (
	"testing"
)

// TestGrantsFollowInheritance: rows of an inheriting table are rows of its
// parent, so writing one of its columns writes the parent's column of the
// same name, as pgguard's analysis counts it, whatever the child's own
// classification (here none).
func TestGrantsFollowInheritance(t *testing.T) {
	pg, pol, _ := world(t)
	pg.MustExec(t, "postgres", `CREATE TABLE crm.vip_customers (tier int) INHERITS (crm.customers);
		INSERT INTO crm.vip_customers (id, first_name, last_name, iban, tier) VALUES (2, 'Bo', 'Smit', 'NL00BANK9', 1)`)
	applied(t, pg, pol, load(t, pg))
	expectPrivileges(t, pg, []privilegeCase{
		{"finance_app", "SELECT iban FROM crm.vip_customers", true},
		{"finance_app", "UPDATE crm.vip_customers SET iban = 'x' WHERE id = 0", false}, // finance reads IBANs, never writes them
		{"sales_app", "DELETE FROM crm.vip_customers WHERE id = 0", false},
		{"sales_app", "UPDATE crm.vip_customers SET tier = 2 WHERE id = 0", true}, // tier is the child's own, unclassified
		{"support_app", "DELETE FROM crm.vip_customers WHERE id = 0", true},       // erasure requests write every customer column
		{"support_app", "UPDATE crm.vip_customers SET email = 'x' WHERE id = 0", true},
		{"marketing_app", "UPDATE crm.vip_customers SET email = 'x' WHERE id = 0", false},
	})
}
