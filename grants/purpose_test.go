package grants_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/grants"
)

// TestPurposeRolesMakePostgreSQLEnforceThePurpose applies the shipped
// policy with purpose roles twice, and checks as each login what
// PostgreSQL itself lets it do: nothing classified in its own role
// (NOINHERIT), and under each purpose role exactly what the purpose
// allows, the purpose tree applied.
func TestPurposeRolesMakePostgreSQLEnforceThePurpose(t *testing.T) {
	pg, pol, _ := world(t)
	// An unclassified table with a serial key: every purpose role may
	// insert into it, and so needs USAGE on its sequence.
	pg.MustExec(t, "postgres", "CREATE TABLE crm.tickets (id serial PRIMARY KEY, subject text)")
	t.Cleanup(func() { pg.MustExec(t, "postgres", "DROP TABLE IF EXISTS crm.tickets") })
	snap := load(t, pg)
	super := superConn(t, pg)
	ctx := context.Background()
	seqs, err := grants.LoadSequences(ctx, super)
	if err != nil || len(seqs) == 0 {
		t.Fatalf("sequences: %v %v", seqs, err)
	}
	opts := grants.Options{PurposeRoles: true, Sequences: seqs}
	plan, err := grants.Compile(pol, snap, opts)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := grants.Compile(pol, snap, opts)
	if again.SQL() != plan.SQL() {
		t.Fatal("the same policy and catalog compiled to different SQL")
	}
	if err := plan.Apply(ctx, super); err != nil {
		t.Fatal(err)
	}
	first := privileges(t, super)
	if err := plan.Apply(ctx, super); err != nil {
		t.Fatal(err)
	}
	if second := privileges(t, super); second != first {
		t.Fatalf("applying twice changed the privileges:\n%s\nthen\n%s", first, second)
	}
	if first != "" {
		t.Fatalf("NOINHERIT logins hold privileges of their own:\n%s", first)
	}
	if drift, err := plan.Check(ctx, super); err != nil || len(drift) != 0 {
		t.Fatalf("after apply: %v %v", drift, err)
	}
	namer := grants.NewNamer(pol, "")
	cases := []struct {
		user, purpose, sql string
		allowed            bool
	}{
		{"sales_app", "-", "SELECT email FROM crm.customers", false},
		{"sales_app", "order_fulfilment", "SELECT email, city FROM crm.customers", true},
		{"sales_app", "shipping", "SELECT email FROM crm.customers", true}, // a child of order_fulfilment
		{"sales_app", "order_fulfilment", "SELECT iban FROM crm.customers", false},
		{"sales_app", "", "SELECT email FROM crm.customers", false},
		{"sales_app", "newsletter", "SELECT email FROM crm.customers", false},
		{"sales_app", "no_such_purpose", "SELECT email FROM crm.customers", false},
		{"marketing_app", "newsletter", "SELECT email FROM crm.customers", true},
		{"marketing_app", "newsletter", "SELECT phone FROM crm.customers", false}, // deny on the parent purpose
		{"marketing_app", "campaign_analysis", "SELECT email FROM crm.customers", false},
		{"payroll_app", "payroll", "SELECT gross_monthly FROM hr.salaries", true},
		{"payroll_app", "personnel_admin", "SELECT first_name FROM hr.employees", true}, // through hr
		{"payroll_app", "personnel_admin", "SELECT gross_monthly FROM hr.salaries", false},
		{"hr_app", "payroll", "SELECT first_name FROM hr.employees", true}, // payroll is below personnel_admin
		{"hr_app", "sick_leave_admin", "SELECT bsn FROM hr.employees", true},
		{"hr_app", "", "SELECT bsn FROM hr.employees", false},
		{"sales_app", "order_fulfilment", "INSERT INTO crm.tickets (subject) VALUES ('x')", true}, // nextval on the serial default
		{"sales_app", "-", "INSERT INTO crm.tickets (subject) VALUES ('x')", false},
	}
	for _, c := range cases {
		conn, err := pgx.Connect(ctx, pg.URL(c.user, password, "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		if c.purpose != "-" {
			role, ok := namer.Role(c.user, c.purpose)
			if !ok {
				t.Fatalf("%s has no purpose role", c.user)
			}
			if _, err := conn.Exec(ctx, "SET ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
				t.Fatalf("%s: SET ROLE %s: %v", c.user, role, err)
			}
		}
		_, err = conn.Exec(ctx, c.sql)
		conn.Close(ctx)
		var pe *pgconn.PgError
		denied := errors.As(err, &pe) && pe.Code == "42501"
		if err != nil && !denied {
			t.Fatalf("%s: %s: %v", c.user, c.sql, err)
		}
		if denied == c.allowed {
			t.Errorf("%s under %q: %s: allowed %v, want %v", c.user, c.purpose, c.sql, !denied, c.allowed)
		}
	}

	// A hand-made grant to a purpose role, and a login made INHERIT again,
	// are differences.
	pg.MustExec(t, "postgres", "GRANT SELECT (iban) ON crm.customers TO "+pgx.Identifier{mustRole(t, namer, "sales_app", "order_fulfilment")}.Sanitize()+"; ALTER ROLE hr_app INHERIT")
	drift, err := plan.Check(ctx, super)
	if err != nil {
		t.Fatal(err)
	}
	text := ""
	for _, d := range drift {
		if !d.Extra {
			t.Errorf("unexpected warning: %s", d)
		}
		text += d.String() + "\n"
	}
	for _, want := range []string{"holds SELECT on crm.customers.iban", "error: hr_app holds SELECT on hr.employees.bsn"} {
		if !strings.Contains(text, want) {
			t.Errorf("drift lacks %q:\n%s", want, text)
		}
	}
	// Without purpose roles the logins inherit their ceilings again.
	if _, super := applied(t, pg, pol, snap); privileges(t, super) == "" {
		t.Fatal("after a plan without purpose roles the logins hold nothing")
	}
}

func mustRole(t *testing.T, n *grants.Namer, user, purpose string) string {
	t.Helper()
	role, ok := n.Role(user, purpose)
	if !ok {
		t.Fatalf("%s has no purpose role", user)
	}
	return role
}

// TestPurposeRoleNames: names are lower case, within PostgreSQL's 63
// bytes, stable, and distinct for names that read alike once made safe.
func TestPurposeRoleNames(t *testing.T) {
	long := strings.Repeat("department", 10)
	cases := []struct {
		depts   []string
		purpose string
	}{
		{[]string{"sales"}, "order_fulfilment"},
		{[]string{"Sales"}, "order_fulfilment"},
		{[]string{"sales"}, "Order-Fulfilment"},
		{[]string{"sales"}, "order_fulfilment_"},
		{[]string{"sales"}, ""},
		{[]string{"sales"}, "none"},
		{[]string{"sales", "marketing"}, "newsletter"},
		{[]string{"sales__marketing"}, "newsletter"},
		{[]string{long}, long},
		{[]string{long + "x"}, long},
	}
	seen := map[string]int{}
	for i, c := range cases {
		name := grants.PurposeRoleName("", c.depts, c.purpose)
		if len(name) > 63 || name != strings.ToLower(name) || !strings.HasPrefix(name, grants.DefaultPurposePrefix) {
			t.Errorf("%v %q: bad name %q", c.depts, c.purpose, name)
		}
		if j, ok := seen[name]; ok {
			t.Errorf("cases %d and %d share the role %q", j, i, name)
		}
		seen[name] = i
		if again := grants.PurposeRoleName("", c.depts, c.purpose); again != name {
			t.Errorf("unstable name: %q then %q", name, again)
		}
	}
}

// TestPurposeRolesOfUsersInSeveralDepartments: a user of two departments
// is decided on both (deny wins), which neither department's role says:
// it gets roles of its own set.
func TestPurposeRolesOfUsersInSeveralDepartments(t *testing.T) {
	dir := t.TempDir()
	policy := `g, both_app, sales
g, both_app, marketing
g, sales_app, sales
g2, crm.customers.email, customer_contact
g2, crm.customers.phone, customer_contact
g3, newsletter, marketing
p, sales, *, customer_contact, read, allow
p, marketing, newsletter, customer_contact, read, allow
p, marketing, *, crm.customers.phone, read, deny
`
	path := filepath.Join(dir, "policy.csv")
	pol := policyAt(t, path, policy)
	_, _, snap := world(t)
	plan, err := grants.Compile(pol, snap, grants.Options{PurposeRoles: true})
	if err != nil {
		t.Fatal(err)
	}
	namer := grants.NewNamer(pol, "")
	both := mustRole(t, namer, "both_app", "newsletter")
	sales := mustRole(t, namer, "sales_app", "newsletter")
	if both == sales {
		t.Fatal("a user of two departments shares a department's role")
	}
	selects := func(role string) string {
		for _, pr := range plan.Purposes {
			if pr.Role == role {
				for _, tb := range pr.Tables {
					if tb.Schema == "crm" && tb.Name == "customers" {
						return strings.Join(tb.Select, ",")
					}
				}
				return ""
			}
		}
		t.Fatalf("no purpose role %s in the plan", role)
		return ""
	}
	// sales alone reads both; with marketing's deny, phone is gone.
	if got := selects(sales); !strings.Contains(got, "email") || !strings.Contains(got, "phone") {
		t.Errorf("sales under newsletter reads %q", got)
	}
	if got := selects(both); !strings.Contains(got, "email") || strings.Contains(got, "phone") {
		t.Errorf("sales + marketing under newsletter reads %q", got)
	}
	if !strings.Contains(plan.SQL(), "GRANT "+pgx.Identifier{both}.Sanitize()+" TO \"both_app\"") {
		t.Error("both_app is not granted its own set's role")
	}
}
