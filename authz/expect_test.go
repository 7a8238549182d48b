package authz

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseExpectations(t *testing.T) {
	src := `# comment

allow sales_app order_fulfilment : SELECT email FROM crm.customers WHERE note = 'a: b'
deny  marketing_app - crm.customers.bsn : SELECT bsn::text FROM crm.customers
deny  x  y:   SELECT 1
allow payroll_app payroll :
    SELECT gross_monthly
	FROM hr.salaries
deny a b function:public.unaccent : SELECT unaccent('x')
`
	xs, err := ParseExpectations(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []Expectation{
		{Line: 3, Allow: true, User: "sales_app", Purpose: "order_fulfilment", SQL: "SELECT email FROM crm.customers WHERE note = 'a: b'"},
		{Line: 4, User: "marketing_app", Column: "crm.customers.bsn", SQL: "SELECT bsn::text FROM crm.customers"},
		{Line: 5, User: "x", Purpose: "y", SQL: "SELECT 1"},
		{Line: 6, Allow: true, User: "payroll_app", Purpose: "payroll", SQL: "SELECT gross_monthly\nFROM hr.salaries"},
		{Line: 9, User: "a", Purpose: "b", Column: "function:public.unaccent", SQL: "SELECT unaccent('x')"},
	}
	if len(xs) != len(want) {
		t.Fatalf("got %d expectations, want %d: %+v", len(xs), len(want), xs)
	}
	for i := range want {
		if xs[i] != want[i] {
			t.Errorf("expectation %d:\n got %+v\nwant %+v", i, xs[i], want[i])
		}
	}
}

func TestParseExpectationsErrors(t *testing.T) {
	tests := []struct{ src, err string }{
		{"allow a b SELECT 1", "line 1: missing"},
		{"# c\nperhaps a b : SELECT 1", "line 2: expectation \"perhaps\""},
		{"allow a : SELECT 1", "line 1: header"},
		{"deny a b c d e : SELECT 1", "line 1: header"},
		{"allow a b crm.t.c : SELECT 1", "line 1: a column only goes with deny"},
		{"deny a b notacolumn : SELECT 1", "line 1: column \"notacolumn\""},
		{"  SELECT 1", "line 1: continuation line"},
		{"\n\nallow a b :\n\ndeny a b : x", "line 3: no SQL"},
	}
	for _, tt := range tests {
		_, err := ParseExpectations(strings.NewReader(tt.src))
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("ParseExpectations(%q) error %v, want %q", tt.src, err, tt.err)
		}
	}
}

// The shipped test file parses, and each column it expects denied is indeed
// denied by the shipped policy for that user and purpose (for the read or
// the write the statement makes). Whole statements need the SQL analysis,
// which "pgguard policy test" brings.
func TestShippedPolicyTests(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "policy_tests.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	xs, err := ParseExpectations(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(xs) < 25 {
		t.Fatalf("only %d expectations", len(xs))
	}
	p := loadShipped(t, Options{})
	users := map[string]bool{}
	for _, x := range xs {
		users[x.User] = true
		if x.Purpose != "" && !p.KnownPurpose(x.Purpose) {
			t.Errorf("line %d: purpose %q is unknown to the policy", x.Line, x.Purpose)
		}
		if x.Column == "" {
			if !x.Allow {
				t.Errorf("line %d: deny without a column", x.Line)
			}
			continue
		}
		read := p.Decide(x.User, x.Purpose, []Access{{Column: x.Column, Act: ActRead}})
		write := p.Decide(x.User, x.Purpose, []Access{{Column: x.Column, Act: ActWrite}})
		writes := strings.HasPrefix(x.SQL, "UPDATE") || strings.HasPrefix(x.SQL, "DELETE")
		if read.Allowed && (!writes || write.Allowed) {
			t.Errorf("line %d: %s is allowed to %s for %q", x.Line, x.User, x.Column, x.Purpose)
		}
	}
	for _, u := range []string{"hr_app", "payroll_app", "sales_app", "finance_app", "marketing_app", "support_app"} {
		if !users[u] {
			t.Errorf("no expectation for %s", u)
		}
	}
}
