package authz

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// decisionCase is one access judged against the shipped policy.
type decisionCase struct {
	name            string
	user, purpose   string
	column          string
	act             Act
	allowed         bool
	category        string // expected Denial.Category when denied
	reasonSubstring string // expected in Denial.Reason when denied
}

func TestDecideShippedPolicy(t *testing.T) {
	const (
		bsnDeny     = `deny rule "p, marketing, *, customer_identity, read, deny" (policy.csv:`
		phoneDeny   = `deny rule "p, marketing, marketing, crm.customers.phone, read, deny"`
		healthDeny  = `deny rule "p, payroll_clerk, *, employee_health, read, deny"`
		addressDeny = `deny rule "p, finance, financial_reporting, customer_address, read, deny"`
	)
	tests := []decisionCase{
		// sales
		{"sales reads contact for fulfilment", "sales_app", "order_fulfilment", "crm.customers.email", ActRead, true, "", ""},
		{"child purpose covered by parent's rule", "sales_app", "shipping", "crm.customers.street", ActRead, true, "", ""},
		{"sales never reads the IBAN", "sales_app", "order_fulfilment", "crm.customers.iban", ActRead, false, "customer_financial", `no allow for category customer_financial with purpose "order_fulfilment"`},
		{"sales with a wrong purpose", "sales_app", "newsletter", "crm.customers.email", ActRead, false, "customer_contact", `with purpose "newsletter"`},
		{"sales without a purpose", "sales_app", "", "crm.customers.email", ActRead, false, "customer_contact", "without a declared purpose"},
		{"sales updates order status", "sales_app", "order_fulfilment", "crm.orders.status", ActWrite, true, "", ""},
		{"sales may read but not write contact", "sales_app", "order_fulfilment", "crm.customers.email", ActWrite, false, "customer_contact", "no allow for category customer_contact"},
		{"unclassified column allowed by default", "sales_app", "", "crm.customers.id", ActRead, true, "", ""},
		// customer service
		{"support reads phone", "support_app", "customer_support", "crm.customers.phone", ActRead, true, "", ""},
		{"child purpose gets parent's contact rule", "support_app", "identity_verification", "crm.customers.email", ActRead, true, "", ""},
		{"child purpose's own column rule", "support_app", "identity_verification", "crm.customers.birth_date", ActRead, true, "", ""},
		{"parent not covered by child's rule", "support_app", "customer_support", "crm.customers.birth_date", ActRead, false, "customer_identity", "no allow for category customer_identity"},
		{"identity check never shows the BSN", "support_app", "identity_verification", "crm.customers.bsn", ActRead, false, "customer_identity", "no allow"},
		{"erasure writes every customer column", "support_app", "erasure_request", "crm.customers.bsn", ActWrite, true, "", ""},
		{"erasure pattern covers unclassified id", "support_app", "erasure_request", "crm.customers.id", ActWrite, true, "", ""},
		{"no erasure outside erasure_request", "support_app", "customer_support", "crm.customers.bsn", ActWrite, false, "customer_identity", "no allow"},
		{"explicit deny on financial data", "support_app", "customer_support", "crm.customers.iban", ActRead, false, "customer_financial", `deny rule "p, customer_service, *, customer_financial, read, deny"`},
		// finance
		{"invoicing reads the IBAN", "finance_app", "invoicing", "crm.customers.iban", ActRead, true, "", ""},
		{"dunning inherits invoicing", "finance_app", "dunning", "crm.customers.iban", ActRead, true, "", ""},
		{"reporting reads order totals", "finance_app", "financial_reporting", "crm.orders.total_amount", ActRead, true, "", ""},
		{"deny overrides allow on a two-category column", "finance_app", "financial_reporting", "crm.orders.shipping_address", ActRead, false, "customer_address", addressDeny},
		{"same column allowed for invoicing", "finance_app", "invoicing", "crm.orders.shipping_address", ActRead, true, "", ""},
		{"reporting reads salaries", "finance_app", "financial_reporting", "hr.salaries.gross_monthly", ActRead, true, "", ""},
		{"but never bank accounts", "finance_app", "financial_reporting", "hr.salaries.bank_account", ActRead, false, "employee_financial", `deny rule "p, finance, *, employee_financial, read, deny"`},
		{"column pattern rule", "finance_app", "financial_reporting", "hr.employees.department", ActRead, true, "", ""},
		{"deny category beats column pattern allow", "finance_app", "financial_reporting", "hr.employees.bsn", ActRead, false, "employee_identity", `deny rule "p, finance, *, employee_identity, read, deny"`},
		{"finance writes order status only", "finance_app", "invoicing", "crm.orders.status", ActWrite, true, "", ""},
		{"finance cannot write totals", "finance_app", "invoicing", "crm.orders.total_amount", ActWrite, false, "customer_orders", "no allow"},
		// marketing
		{"newsletter reads email", "marketing_app", "newsletter", "crm.customers.email", ActRead, true, "", ""},
		{"deny on parent purpose covers child", "marketing_app", "newsletter", "crm.customers.phone", ActRead, false, "customer_contact", phoneDeny},
		{"deny on parent purpose covers other child", "marketing_app", "campaign_analysis", "crm.customers.phone", ActRead, false, "customer_contact", phoneDeny},
		{"deny on parent purpose covers parent", "marketing_app", "marketing", "crm.customers.phone", ActRead, false, "customer_contact", phoneDeny},
		{"parent purpose lacks child's allow", "marketing_app", "marketing", "crm.customers.email", ActRead, false, "customer_contact", `no allow for category customer_contact with purpose "marketing"`},
		{"campaign analysis reads totals", "marketing_app", "campaign_analysis", "crm.orders.total_amount", ActRead, true, "", ""},
		{"address deny beats orders allow", "marketing_app", "campaign_analysis", "crm.orders.shipping_address", ActRead, false, "customer_address", `deny rule "p, marketing, *, customer_address, read, deny"`},
		{"star purpose deny", "marketing_app", "newsletter", "crm.customers.bsn", ActRead, false, "customer_identity", bsnDeny},
		{"star purpose covers no purpose", "marketing_app", "", "crm.customers.bsn", ActRead, false, "customer_identity", bsnDeny},
		{"star purpose covers unknown purpose", "marketing_app", "nwsletter", "crm.customers.bsn", ActRead, false, "customer_identity", bsnDeny},
		{"marketing and employee data", "marketing_app", "newsletter", "hr.employees.email", ActRead, false, "employee_record", "no allow for category employee_record"},
		// hr and nested roles
		{"hr reads the employee BSN", "hr_app", "personnel_admin", "hr.employees.bsn", ActRead, true, "", ""},
		{"hr child purpose", "hr_app", "payroll", "hr.employees.email", ActRead, true, "", ""},
		{"hr is not payroll", "hr_app", "payroll", "hr.salaries.gross_monthly", ActRead, false, "employee_salary", "no allow"},
		{"health data for sick leave admin", "hr_app", "sick_leave_admin", "hr.sick_leave.diagnosis_note", ActRead, true, "", ""},
		{"health data needs the child purpose", "hr_app", "personnel_admin", "hr.sick_leave.diagnosis_note", ActRead, false, "employee_health", "no allow"},
		{"hr writes sick leave", "hr_app", "sick_leave_admin", "hr.sick_leave.end_date", ActWrite, true, "", ""},
		{"nested role's own rule", "payroll_app", "payroll", "hr.salaries.bank_account", ActRead, true, "", ""},
		{"nested role inherits hr", "payroll_app", "personnel_admin", "hr.employees.last_name", ActRead, true, "", ""},
		{"deny on nested role beats inherited allow", "payroll_app", "sick_leave_admin", "hr.sick_leave.diagnosis_note", ActRead, false, "employee_health", healthDeny},
		{"payroll purpose does not open health data", "payroll_app", "payroll", "hr.sick_leave.start_date", ActRead, false, "employee_health", healthDeny},
		// strangers and malformed input
		{"unknown user", "intruder", "personnel_admin", "hr.employees.email", ActRead, false, "employee_record", "no allow"},
		{"unknown user, unclassified column", "intruder", "", "crm.orders.id", ActRead, false, "customer_orders", "no allow"},
		{"role name as user", "hr", "personnel_admin", "hr.employees.email", ActRead, true, "", ""},
		{"unknown act", "hr_app", "personnel_admin", "hr.employees.email", Act("delete"), false, "", `unknown act "delete"`},
		{"two-part column", "hr_app", "personnel_admin", "employees.email", ActRead, false, "", "is not a schema.table.column"},
		{"dotted quoted name", "sales_app", "", "crm.customers.a.b", ActRead, false, "", "is not a schema.table.column"},
	}
	p := loadShipped(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDecision(t, p, tt)
			checkDecision(t, p, tt) // second time from the cache
		})
	}
}

func checkDecision(t *testing.T, p *Policy, tt decisionCase) {
	t.Helper()
	d := p.Decide(tt.user, tt.purpose, []Access{{Column: tt.column, Act: tt.act}})
	if d.Allowed != tt.allowed {
		t.Fatalf("Decide(%s, %q, %s %s).Allowed = %v, want %v (%+v)", tt.user, tt.purpose, tt.act, tt.column, d.Allowed, tt.allowed, d.Denied)
	}
	if d.PolicyVersion != p.Version() {
		t.Errorf("PolicyVersion = %q, want %q", d.PolicyVersion, p.Version())
	}
	if tt.allowed {
		if len(d.Denied) != 0 {
			t.Errorf("allowed decision has denials %+v", d.Denied)
		}
		return
	}
	if len(d.Denied) != 1 {
		t.Fatalf("want one denial, got %+v", d.Denied)
	}
	got := d.Denied[0]
	if got.Column != tt.column || got.Act != tt.act || got.Category != tt.category {
		t.Errorf("denial = %+v, want column %s act %s category %q", got, tt.column, tt.act, tt.category)
	}
	if !strings.Contains(got.Reason, tt.reasonSubstring) {
		t.Errorf("reason %q does not contain %q", got.Reason, tt.reasonSubstring)
	}
}

func TestDecideReasonNamesPolicyLine(t *testing.T) {
	p := loadShipped(t, Options{})
	d := p.Decide("marketing_app", "newsletter", []Access{{Column: "crm.customers.bsn", Act: ActRead}})
	line := 0
	for i, l := range strings.Split(readFile(t, shippedPolicy), "\n") {
		if l == "p, marketing, *, customer_identity, read, deny" {
			line = i + 1
		}
	}
	want := `deny rule "p, marketing, *, customer_identity, read, deny" (policy.csv:` + itoa(line) + ")"
	if line == 0 || len(d.Denied) != 1 || d.Denied[0].Reason != want {
		t.Fatalf("denial %+v, want reason %s", d.Denied, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestDecideStatement(t *testing.T) {
	p := loadShipped(t, Options{})
	accesses := []Access{
		{Column: "crm.customers.email", Act: ActRead},
		{Column: "crm.customers.bsn", Act: ActRead},
		{Column: "crm.customers.id", Act: ActRead},
		{Column: "crm.customers.bsn", Act: ActRead}, // same column again, e.g. in WHERE
		{Column: "crm.customers.iban", Act: ActRead},
	}
	d := p.Decide("marketing_app", "newsletter", accesses)
	if d.Allowed {
		t.Fatal("statement allowed")
	}
	var cols []string
	for _, x := range d.Denied {
		cols = append(cols, x.Column)
	}
	if want := []string{"crm.customers.bsn", "crm.customers.iban"}; !slices.Equal(cols, want) {
		t.Errorf("denied columns %v, want %v", cols, want)
	}
	if !slices.Equal(d.Roles, []string{"marketing"}) {
		t.Errorf("roles %v", d.Roles)
	}
	if d := p.Decide("marketing_app", "newsletter", nil); !d.Allowed || d.Denied != nil {
		t.Errorf("empty statement: %+v", d)
	}
}

func TestUnclassifiedOption(t *testing.T) {
	tests := []struct {
		opt, user, purpose, column string
		act                        Act
		allowed                    bool
	}{
		{UnclassifiedAllow, "sales_app", "order_fulfilment", "crm.customers.id", ActRead, true},
		{"", "intruder", "", "crm.customers.id", ActRead, true},
		{UnclassifiedDeny, "sales_app", "order_fulfilment", "crm.customers.id", ActRead, false},
		{UnclassifiedDeny, "intruder", "", "public.t.x", ActRead, false},
		// an allow rule with a column pattern still allows an unclassified column
		{UnclassifiedDeny, "support_app", "erasure_request", "crm.customers.id", ActWrite, true},
		// classified columns are unaffected
		{UnclassifiedDeny, "sales_app", "order_fulfilment", "crm.customers.email", ActRead, true},
		{UnclassifiedAllow, "sales_app", "order_fulfilment", "crm.customers.iban", ActRead, false},
	}
	for _, tt := range tests {
		p := loadShipped(t, Options{Unclassified: tt.opt})
		d := p.Decide(tt.user, tt.purpose, []Access{{Column: tt.column, Act: tt.act}})
		if d.Allowed != tt.allowed {
			t.Errorf("unclassified=%q %s %s %s: allowed=%v, want %v %+v", tt.opt, tt.user, tt.act, tt.column, d.Allowed, tt.allowed, d.Denied)
		}
		if !tt.allowed && tt.column == "crm.customers.id" && !strings.Contains(d.Denied[0].Reason, "not classified") {
			t.Errorf("reason %q does not say the column is unclassified", d.Denied[0].Reason)
		}
	}
	if _, err := Load(shippedModel, shippedPolicy, Options{Unclassified: "maybe"}); err == nil {
		t.Error("Load accepted unclassified=maybe")
	}
}

func TestFunctionAllowed(t *testing.T) {
	tests := []struct {
		user, purpose, schema, name string
		unclassified                string
		want                        bool
	}{
		{"support_app", "customer_support", "public", "unaccent", "", true},
		{"support_app", "identity_verification", "public", "unaccent", "", true}, // child purpose
		{"support_app", "", "public", "unaccent", "", false},
		{"sales_app", "order_fulfilment", "public", "unaccent", "", false},
		{"support_app", "customer_support", "public", "unaccent_all", "", false},
		{"support_app", "customer_support", "crm", "unaccent", "", false},
		// functions are never "unclassified": no allow, no call
		{"support_app", "customer_support", "public", "my_func", UnclassifiedAllow, false},
	}
	for _, tt := range tests {
		p := loadShipped(t, Options{Unclassified: tt.unclassified})
		if got := p.FunctionAllowed(tt.user, tt.purpose, tt.schema, tt.name); got != tt.want {
			t.Errorf("FunctionAllowed(%s, %q, %s.%s) = %v, want %v", tt.user, tt.purpose, tt.schema, tt.name, got, tt.want)
		}
	}
	p := loadShipped(t, Options{})
	d := p.Decide("sales_app", "order_fulfilment", []Access{{Column: "function:public.unaccent", Act: ActExecute}})
	if d.Allowed || d.Denied[0].Category != "text_search_functions" || !strings.Contains(d.Denied[0].Reason, "no allow for category text_search_functions") {
		t.Errorf("function denial %+v", d)
	}
}

func TestRolesCategoriesPurposes(t *testing.T) {
	p := loadShipped(t, Options{})
	roles := []struct {
		user string
		want []string
	}{
		{"payroll_app", []string{"hr", "payroll_clerk"}},
		{"payroll_clerk", []string{"hr"}},
		{"hr_app", []string{"hr"}},
		{"support_app", []string{"customer_service"}},
		{"hr", nil},
		{"intruder", nil},
	}
	for _, tt := range roles {
		if got := p.Roles(tt.user); !slices.Equal(got, tt.want) {
			t.Errorf("Roles(%s) = %v, want %v", tt.user, got, tt.want)
		}
	}
	cats := []struct {
		column string
		want   []string
	}{
		{"crm.customers.email", []string{"customer_contact"}},
		{"crm.orders.shipping_address", []string{"customer_orders", "customer_address"}},
		{"hr.employees.bsn", []string{"employee_record", "employee_identity"}},
		{"hr.sick_leave.diagnosis_note", []string{"employee_health"}},
		{"function:public.unaccent", []string{"text_search_functions"}},
		{"crm.customers.id", nil},
		{"hr.employees", nil},
		{"nodots", nil},
	}
	for _, tt := range cats {
		if got := p.Categories(tt.column); !slices.Equal(got, tt.want) {
			t.Errorf("Categories(%s) = %v, want %v", tt.column, got, tt.want)
		}
	}
	purposes := map[string]bool{
		"newsletter": true, "marketing": true, "order_fulfilment": true, "accounting": true,
		"sick_leave_admin": true, "nwsletter": false, "": false, "*": false, "hr": false,
	}
	for name, want := range purposes {
		if got := p.KnownPurpose(name); got != want {
			t.Errorf("KnownPurpose(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestCategoryNesting(t *testing.T) {
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy.csv", `g, doctor_app, medical
g, hr_app, hr
g2, hr.sick_leave.*, employee_health
g2, hr.*.*_note, free_text
g2, employee_health, special_category
g2, free_text, special_category
g3, treatment, care
p, medical, care, special_category, read, allow
p, hr, *, special_category, read, deny
p, hr, care, hr.employees.*, read, allow
`)
	p, err := Load(shippedModel, policy, Options{Unclassified: UnclassifiedDeny})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Categories("hr.sick_leave.diagnosis_note"), []string{"employee_health", "free_text", "special_category"}; !slices.Equal(got, want) {
		t.Errorf("Categories = %v, want %v", got, want)
	}
	tests := []struct {
		user, purpose, column string
		want                  bool
	}{
		{"doctor_app", "treatment", "hr.sick_leave.start_date", true}, // parent category's rule
		{"doctor_app", "treatment", "hr.employees.review_note", true}, // glob * within a name
		{"doctor_app", "treatment", "hr.employees.email", false},      // unclassified, denied by the option
		{"doctor_app", "care", "hr.sick_leave.end_date", true},
		{"hr_app", "care", "hr.employees.email", true},
		{"hr_app", "care", "hr.employees.review_note", false}, // deny on the parent category
	}
	for _, tt := range tests {
		d := p.Decide(tt.user, tt.purpose, []Access{{Column: tt.column, Act: ActRead}})
		if d.Allowed != tt.want {
			t.Errorf("%s %s %s: allowed=%v, want %v %+v", tt.user, tt.purpose, tt.column, d.Allowed, tt.want, d.Denied)
		}
	}
}

func TestCacheIsBoundedInBytes(t *testing.T) {
	const bound = 64 << 10
	p := loadShipped(t, Options{CacheBytes: bound})
	for i := 0; i < 20000; i++ {
		p.Decide("sales_app", "purpose"+itoa(i%1000), []Access{{Column: "crm.customers.email", Act: ActRead}, {Column: "crm.t" + itoa(i%997) + ".c", Act: ActRead}})
	}
	if n := p.CacheBytes(); n > bound || n == 0 {
		t.Errorf("cache holds %d bytes, bound %d", n, bound)
	}
	var sum int64
	for i := range p.cache.shards {
		for _, e := range p.cache.shards[i].m {
			sum += e.size
		}
	}
	if sum != p.CacheBytes() {
		t.Errorf("entries add up to %d bytes, cache reports %d", sum, p.CacheBytes())
	}
}

// TestCacheKeepsItsHotSet streams ten times the cache's room of questions
// asked once past a small set asked all the time: the hot set must stay
// cached (a cache that empties itself when full would lose it each time).
func TestCacheKeepsItsHotSet(t *testing.T) {
	p := loadShipped(t, Options{CacheBytes: 256 << 10})
	hot := make([]cacheKey, 64)
	for i := range hot {
		hot[i] = cacheKey{subject: "sales_app", purpose: "order_fulfilment", object: "crm.hot" + itoa(i) + ".c", act: ActRead}
	}
	ask := func(k cacheKey) { p.verdict(k.subject, k.purpose, k.object, k.act) }
	for _, k := range hot {
		ask(k)
	}
	misses := 0
	for i := 0; i < 20000; i++ {
		ask(cacheKey{subject: "sales_app", purpose: "order_fulfilment", object: "crm.cold" + itoa(i) + ".c", act: ActRead})
		if i%10 == 0 {
			for _, k := range hot {
				if _, ok := p.cache.get(k); !ok {
					misses++
					ask(k)
				}
			}
		}
	}
	if misses > 0 {
		t.Errorf("the hot set missed %d times while cold questions streamed past", misses)
	}
}

func TestDecideNamesUnknownSubjectAndPurpose(t *testing.T) {
	p := loadShipped(t, Options{})
	email := []Access{{Column: "crm.customers.email", Act: ActRead}}
	iban := []Access{{Column: "crm.customers.iban", Act: ActRead}}
	tests := []struct {
		name, user, purpose string
		accesses            []Access
		subject, purpose2   bool
	}{
		{"known user, known purpose", "sales_app", "newsletter", email, false, false},
		{"unknown purpose", "sales_app", "nonsense", email, false, true},
		{"unknown user", "mallory", "order_fulfilment", email, true, false},
		{"unknown user and purpose", "mallory", "nonsense", email, true, true},
		{"a department as the login", "sales", "nonsense", email, false, true},
		{"only a deny rule refused: it is the reason", "support_app", "nonsense", iban, false, false},
	}
	for _, tt := range tests {
		d := p.Decide(tt.user, tt.purpose, tt.accesses)
		if d.Allowed || d.UnknownSubject != tt.subject || d.UnknownPurpose != tt.purpose2 {
			t.Errorf("%s: allowed %v, unknown subject %v purpose %v; want false %v %v", tt.name, d.Allowed, d.UnknownSubject, d.UnknownPurpose, tt.subject, tt.purpose2)
		}
	}
	if d := p.Decide("mallory", "nonsense", []Access{{Column: "crm.customers.id", Act: ActRead}}); !d.Allowed || d.UnknownSubject || d.UnknownPurpose {
		t.Errorf("an allowed decision names nothing unknown: %+v", d)
	}
	if got := p.SimilarPurpose("newsleter"); got != "newsletter" {
		t.Errorf("SimilarPurpose(newsleter) = %q", got)
	}
	if got := p.SimilarPurpose("nonsense"); got != "" {
		t.Errorf("SimilarPurpose(nonsense) = %q", got)
	}
	if !p.HasRules("payroll_app") || p.HasRules("mallory") {
		t.Error("HasRules: payroll_app has hr's rules, mallory none")
	}
}

func TestWhyNamesTheDecidingRule(t *testing.T) {
	p := loadShipped(t, Options{})
	tests := []struct {
		user, purpose, column string
		allowed               bool
		reason                string
	}{
		{"sales_app", "shipping", "crm.customers.email", true, `allow rule "p, sales, order_fulfilment, customer_contact, read, allow" (policy.csv:`},
		{"sales_app", "shipping", "crm.customers.id", true, "unclassified"},
		{"sales_app", "shipping", "crm.customers.bsn", false, `no allow for category customer_identity with purpose "shipping"`},
		{"marketing_app", "newsletter", "crm.customers.phone", false, `deny rule "p, marketing, marketing, crm.customers.phone, read, deny"`},
	}
	for _, tt := range tests {
		allowed, reason := p.Why(tt.user, tt.purpose, Access{Column: tt.column, Act: ActRead})
		if allowed != tt.allowed || !strings.Contains(reason, tt.reason) {
			t.Errorf("%s %s %s: %v %q, want %v %q", tt.user, tt.purpose, tt.column, allowed, reason, tt.allowed, tt.reason)
		}
	}
}
