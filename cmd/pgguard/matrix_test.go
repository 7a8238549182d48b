package main

import (
	"strings"
	"testing"
)

// TestPolicyMatrixGolden pins the matrix of the shipped policy in each
// format; the golden files are reviewed like the policy itself.
func TestPolicyMatrixGolden(t *testing.T) {
	for format, file := range map[string]string{"text": "matrix.txt", "markdown": "matrix.md", "html": "matrix.html"} {
		code, out := runCmd(t, "policy", "matrix", "--format", format)
		if code != exitOK {
			t.Fatalf("%s: exit %d:\n%s", format, code, out)
		}
		golden(t, file, out)
	}
}

func TestPolicyMatrixShowsDenyRulesAndPurposeTree(t *testing.T) {
	_, out := runCmd(t, "policy", "matrix")
	for _, want := range []string{
		// a "*" deny rule, once for every purpose
		"marketing           *                                         customer_identity         deny ",
		// a deny rule on a pattern, inherited by a child purpose
		"marketing           newsletter < marketing                    crm.customers.phone       deny ",
		// a child purpose inherits its parent's allow
		"sales               shipping < order_fulfilment               customer_orders           allow  allow",
		// a role inherits its department's allow, and its own deny wins
		"payroll_clerk < hr  sick_leave_admin < personnel_admin        employee_health           deny   allow",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("matrix lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "sales               newsletter") {
		t.Errorf("sales has no rule for newsletter, yet the matrix shows one:\n%s", out)
	}
	if code, out := runCmd(t, "policy", "matrix", "--format", "pdf"); code != exitError {
		t.Errorf("unknown format: exit %d:\n%s", code, out)
	}
}
