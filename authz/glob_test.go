package authz

import "testing"

func TestMatchPattern(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"crm.customers.email", "crm.customers.email", true},
		{"crm.customers.email", "crm.customers.emails", false},
		{"crm.customers.*", "crm.customers.email", true},
		{"crm.*.email", "crm.orders.email", true},
		{"*.*.*", "hr.salaries.gross_monthly", true},
		{"hr.*.*", "hr.sick_leave.diagnosis_note", true},
		// '*' never crosses a '.': part counts must agree.
		{"hr.*", "hr.salaries.gross_monthly", false},
		{"*", "hr.salaries.gross_monthly", false},
		{"crm.*", "crm.customers", true},
		{"hr.*.*", "hr.salaries", false},
		{"hr.*.*", "hr.a.b.c", false},
		{"crm.customers.e*l", "crm.customers.email", true},
		{"crm.customers.e*l", "crm.customers.e.l", false},
		{"crm.customers.*_name", "crm.customers.first_name", true},
		{"crm.customers.*_name", "crm.customers.name", false},
		{"crm.customers.*a*e*", "crm.customers.last_name", true},
		{"crm.customers.**", "crm.customers.x", true},
		{"crm.customers.*", "crm.customers.", true},
		// path.Match metacharacters are literal here.
		{"crm.customers.?mail", "crm.customers.email", false},
		{"crm.customers.[e]mail", "crm.customers.email", false},
		{"crm.customers.[e]mail", "crm.customers.[e]mail", true},
		{`crm.customers.\*`, "crm.customers.x", false},
		{"crm/customers/*", "crm/customers/email", true}, // '/' is an ordinary character...
		{"crm/*", "crm/customers/email", true},           // ...so '*' may cross it
		// Case matters: PostgreSQL folds unquoted names before we see them.
		{"CRM.customers.email", "crm.customers.email", false},
		{"function:public.*", "function:public.unaccent", true},
		{"function:*.*", "function:crm.format_name", true},
		{"function:public.*", "function:public.a.b", false},
		{"", "", true},
		{"", "x", false},
		{"*", "", true},
	}
	for _, tt := range tests {
		if got := MatchPattern(tt.pattern, tt.name); got != tt.want {
			t.Errorf("MatchPattern(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestObjectKind(t *testing.T) {
	tests := []struct {
		in   string
		want objKind
	}{
		{"customer_contact", objCategory},
		{"crm.customers.email", objColumn},
		{"crm.*.*", objColumn},
		{"function:public.unaccent", objFunction},
		{"function:public", objInvalid},
		{"function:a.b.c", objInvalid},
		{"crm.customers", objInvalid},
		{"a.b.c.d", objInvalid},
		{"crm..email", objInvalid},
		{"contact*", objInvalid},
		{"x:y", objInvalid},
		{"has space", objInvalid},
		{"", objInvalid},
	}
	for _, tt := range tests {
		if got, _ := objectKind(tt.in); got != tt.want {
			t.Errorf("objectKind(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
