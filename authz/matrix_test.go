package authz

import (
	"slices"
	"testing"
)

// cell finds the row of a matrix for department, purpose and data.
func cell(rows []MatrixRow, dept, purpose, data string) (MatrixRow, bool) {
	for _, r := range rows {
		if r.Department == dept && r.Purpose == purpose && r.Data == data {
			return r, true
		}
	}
	return MatrixRow{}, false
}

func TestMatrixOfTheShippedPolicy(t *testing.T) {
	rows := loadShipped(t, Options{}).Matrix()
	allow, deny, none := OutcomeAllow, OutcomeDeny, OutcomeNone
	tests := []struct {
		dept, purpose, data string
		want                [4]Outcome // read, write, execute, ddl
	}{
		{"sales", "order_fulfilment", "customer_orders", [4]Outcome{allow, allow, none, none}},
		{"sales", "returns", "customer_contact", [4]Outcome{allow, none, none, none}},
		{"marketing", AnyPurpose, "customer_identity", [4]Outcome{deny, none, none, none}},
		{"marketing", "newsletter", "crm.customers.phone", [4]Outcome{deny, none, none, none}},
		{"payroll_clerk", "sick_leave_admin", "employee_health", [4]Outcome{deny, allow, none, none}},
		{"customer_service", "customer_support", "text_search_functions", [4]Outcome{none, none, allow, none}},
	}
	for _, tt := range tests {
		r, ok := cell(rows, tt.dept, tt.purpose, tt.data)
		if !ok || r.Outcomes != tt.want {
			t.Errorf("%s, %s, %s: %v (found %v), want %v", tt.dept, tt.purpose, tt.data, r.Outcomes, ok, tt.want)
		}
	}
	r, _ := cell(rows, "payroll_clerk", "payroll", "employee_salary")
	if !slices.Equal(r.DepartmentPath, []string{"payroll_clerk", "hr"}) || !slices.Equal(r.PurposePath, []string{"payroll", "personnel_admin"}) {
		t.Errorf("paths %v %v", r.DepartmentPath, r.PurposePath)
	}
	// Left out: no rule at all, and a purpose that adds nothing to "*".
	for _, c := range [][3]string{{"sales", "newsletter", "customer_contact"}, {"marketing", "newsletter", "customer_identity"}} {
		if _, ok := cell(rows, c[0], c[1], c[2]); ok {
			t.Errorf("%v is in the matrix", c)
		}
	}
}

func TestMatrixOrdersPurposeTreesAndObjects(t *testing.T) {
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy.csv", `g, app, dept
g2, crm.customers.email, contact
g3, child, root
g3, grandchild, child
p, dept, grandchild, contact, read, allow
p, dept, root, contact, write, allow
p, dept, flat, crm.customers.*, read, allow
p, dept, *, ddl, ddl, deny
`)
	p, err := Load(shippedModel, policy, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range p.Matrix() {
		got = append(got, r.Purpose+" "+r.Data)
	}
	want := []string{"* ddl", "root contact", "child contact", "grandchild contact", "flat crm.customers.*"}
	if !slices.Equal(got, want) {
		t.Errorf("rows %q, want %q", got, want)
	}
	if r, _ := cell(p.Matrix(), "dept", "grandchild", "contact"); r.Outcomes != [4]Outcome{OutcomeAllow, OutcomeAllow} ||
		!slices.Equal(r.PurposePath, []string{"grandchild", "child", "root"}) {
		t.Errorf("grandchild row %+v", r)
	}
}
