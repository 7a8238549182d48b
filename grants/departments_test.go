package grants_test

import (
	"path/filepath"
	"testing"

	"github.com/pgguard/pgguard/authz"
)

// TestGrantsDecideOnAllOfAUsersDepartments: the policy decides a user's
// statement on all of its departments at once, so a deny of one of them
// holds against an allow of another, and a child department's deny against
// its parent's allow. A user holding its departments' roles side by side
// would hold the allows without the denies.
func TestGrantsDecideOnAllOfAUsersDepartments(t *testing.T) {
	pg, shipped, _ := world(t)
	dir := t.TempDir()
	// sales and marketing as in the shipped policy, and a login in both:
	// sales may read the phone numbers, marketing may never.
	path := filepath.Join(dir, "policy.csv")
	policy := `g, sales_app, sales
g, marketing_app, sales
g, marketing_app, marketing
g2, crm.customers.email, customer_contact
g2, crm.customers.phone, customer_contact
p, sales, order_fulfilment, customer_contact, read, allow
p, marketing, *, crm.customers.phone, read, deny
`
	both := policyAt(t, path, policy)
	cases := []struct {
		pol       *authz.Policy
		user, sql string
		allowed   bool
	}{
		// payroll_clerk is below hr, which reads sick leave for
		// sick_leave_admin; payroll clerks may never.
		{shipped, "payroll_app", "SELECT diagnosis_note FROM hr.sick_leave", false},
		{shipped, "payroll_app", "SELECT first_name FROM hr.employees", true},
		{shipped, "payroll_app", "SELECT gross_monthly FROM hr.salaries", true},
		{shipped, "hr_app", "SELECT diagnosis_note FROM hr.sick_leave", true},
		{both, "marketing_app", "SELECT phone FROM crm.customers", false},
		{both, "marketing_app", "SELECT email FROM crm.customers", true},
		{both, "sales_app", "SELECT phone FROM crm.customers", true},
	}
	for _, c := range cases {
		applied(t, pg, c.pol, load(t, pg))
		expectPrivilege(t, pg, privilegeCase{c.user, c.sql, c.allowed})
	}
}

// TestGrantsKeepDepartmentsOfLikeNamesApart: "hr-eu" and "hr_eu" read
// alike once made fit for a role name; sharing one role, each
// department's section took back what the other's gave, and the users of
// one of them lost everything.
func TestGrantsKeepDepartmentsOfLikeNamesApart(t *testing.T) {
	pg, _, _ := world(t)
	path := filepath.Join(t.TempDir(), "policy.csv")
	policy := `g, hr_app, hr_eu
g, sales_app, hr-eu
g2, hr.employees.bsn, employee_identity
g2, hr.employees.first_name, employee_record
p, hr_eu, *, employee_identity, read, allow
p, hr-eu, *, employee_record, read, allow
`
	pol := policyAt(t, path, policy)
	applied(t, pg, pol, load(t, pg))
	expectPrivileges(t, pg, []privilegeCase{
		{"sales_app", "SELECT bsn FROM hr.employees", false},
		{"sales_app", "SELECT first_name FROM hr.employees", true},
		{"hr_app", "SELECT bsn FROM hr.employees", true},
		{"hr_app", "SELECT first_name FROM hr.employees", false},
	})
}
