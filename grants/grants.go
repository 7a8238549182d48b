// Package grants compiles a policy into PostgreSQL's own privileges: the
// second lock. Each department gets a NOLOGIN role holding column
// privileges on exactly the columns it may use for some purpose, and the
// policy's users become its members, so that a statement that got past
// pgguard's analysis still meets the database's column privileges.
//
// The plan is computed from the same decisions pgguard takes: each
// privilege is granted where the policy allows, for some purpose, what
// pgguard's analysis says the statement it permits reads and writes
// (SELECT col, INSERT and UPDATE of col, DELETE and TRUNCATE, which write
// every column): a view's column is traced to what the view computes it
// from and reads what the view's WHERE reads.
package grants

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/sqlscan"
)

// DefaultRolePrefix starts every department role's name, so that it cannot
// clash with the roles a database already has.
const DefaultRolePrefix = "pgguard_dept_"

// Options shape a plan.
type Options struct {
	// RolePrefix starts department role names; DefaultRolePrefix when empty.
	RolePrefix string
	// Sequences are the columns' sequences (LoadSequences), of which each
	// department gets USAGE on those its writable columns use. Without them
	// no sequence is granted, and an INSERT that leaves a serial column to
	// its default is refused.
	Sequences []SequenceUse
	// PurposeRoles adds a role per department and purpose, of which the
	// users become NOINHERIT members (see purpose.go).
	PurposeRoles bool
	// PurposePrefix starts purpose role names; DefaultPurposePrefix when
	// empty.
	PurposePrefix string
}

// Plan is what the policy compiles to.
type Plan struct {
	// Departments are sorted by name.
	Departments []Department
	// Users maps each user of the policy to the Name of the department
	// whose role it is a member of: its department, when its departments
	// are one and those above it, else the set of its departments; none
	// for a user in no department.
	Users map[string][]string
	// Schemas are the schemas the plan's REVOKEs sweep: every schema of the
	// catalog outside PostgreSQL's own.
	Schemas []string
	// Sequences are the uses of sequences by the plan schemas' columns.
	Sequences []SequenceUse
	// Purposes are the purpose roles, sorted by role name; nil without
	// Options.PurposeRoles.
	Purposes []PurposeRole
	// purposeMode records Options.PurposeRoles: the users are NOINHERIT.
	purposeMode bool
	// userPurposes are each user's purpose roles, sorted.
	userPurposes map[string][]string
	// rolePrefix and purposePrefix start the names of the roles the plan
	// manages, its own and those earlier plans made (see sweep).
	rolePrefix, purposePrefix string
}

// Department is one department's role and privileges, or those of a set
// of departments some user belongs to.
type Department struct {
	// Name is the department's, or the set's names joined by " + ".
	Name, Role string
	// Departments are the departments whose rules decide, sorted: the one
	// department (and, through the policy, those above it), or the set of
	// a user in several.
	Departments []string
	// Tables are sorted by schema and name; only those with a privilege.
	Tables []Table
	// Routines are the routines outside PostgreSQL's own schemas that the
	// department may call for some purpose, schema.name, sorted; those
	// among them that run with their owner's rights get EXECUTE.
	Routines []string
}

// Table is a department's privileges on one relation.
type Table struct {
	Schema, Name           string
	Select, Insert, Update []string // columns, in the relation's order
	Delete, Truncate       bool
}

// Compile works out the plan for pol over the relations of snap.
func Compile(pol *authz.Policy, snap *catalog.Snapshot, opts Options) (*Plan, error) {
	if opts.RolePrefix == "" {
		opts.RolePrefix = DefaultRolePrefix
	}
	rules := parseRules(pol.Rules())
	purposes := rules.purposes()
	if opts.PurposePrefix == "" {
		opts.PurposePrefix = DefaultPurposePrefix
	}
	an := newAnalysis(snap)
	plan := &Plan{Users: map[string][]string{}, rolePrefix: opts.RolePrefix, purposePrefix: opts.PurposePrefix}
	for _, dept := range rules.departments() {
		allowed := func(a []authz.Access) bool { return allowedForSome(pol, dept, purposes, a) }
		plan.Departments = append(plan.Departments, Department{Name: dept, Role: departmentRoleName(opts.RolePrefix, dept),
			Departments: []string{dept}, Tables: relationPrivileges(an, allowed), Routines: routinesFor(pol, snap, dept, purposes)})
	}
	// A user is decided on all of its departments at once: an allow of
	// one and a deny of another is a deny, and so is an allow of a parent
	// department and a deny of the child. A user in one department (and
	// those above it) is a member of that department's role alone, whose
	// privileges are decided on the department with its parents' rules; a
	// user in several is a member of the role of its set of departments,
	// decided on the user, as every user with the same set would be.
	namer := NewNamer(pol, "")
	for _, user := range rules.users() {
		if err := quotable("user", user); err != nil {
			return nil, err
		}
		set := namer.departmentSet(user)
		if len(set) < 2 {
			plan.Users[user] = set
			continue
		}
		name := strings.Join(set, " + ")
		if !slices.ContainsFunc(plan.Departments, func(d Department) bool { return d.Name == name }) {
			allowed := func(a []authz.Access) bool { return allowedForSome(pol, user, purposes, a) }
			plan.Departments = append(plan.Departments, Department{Name: name, Role: setRoleName(opts.RolePrefix, set),
				Departments: set, Tables: relationPrivileges(an, allowed), Routines: routinesFor(pol, snap, user, purposes)})
		}
		plan.Users[user] = []string{name}
	}
	sort.Slice(plan.Departments, func(i, j int) bool { return plan.Departments[i].Name < plan.Departments[j].Name })
	for _, s := range snap.Schemas() {
		if !builtinSchema(s) {
			if err := quotable("schema", s); err != nil {
				return nil, err
			}
			plan.Schemas = append(plan.Schemas, s)
		}
	}
	for _, d := range plan.Departments {
		for _, r := range d.Routines {
			if err := quotable("routine", r); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range opts.Sequences {
		if slices.Contains(plan.Schemas, s.Schema) {
			plan.Sequences = append(plan.Sequences, s)
		}
	}
	if opts.PurposeRoles {
		plan.compilePurposes(pol, an, rules, opts)
	}
	// Two roles of one name would be one role holding what the plan gives
	// both: never, whatever the names.
	seen := map[string]string{}
	for _, d := range plan.Departments {
		if other, ok := seen[d.Role]; ok {
			return nil, fmt.Errorf("departments %q and %q would share the role %s", other, d.Name, d.Role)
		}
		seen[d.Role] = d.Name
	}
	for _, pr := range plan.Purposes {
		if other, ok := seen[pr.Role]; ok {
			return nil, fmt.Errorf("%q and a purpose role of %v would share the role %s", other, pr.Departments, pr.Role)
		}
		seen[pr.Role] = strings.Join(pr.Departments, " + ") + " under " + pr.Purpose
	}
	return plan, nil
}

// departmentRoleName is the role of one department: the prefix and the
// name, when the name is already lower case letters, digits and
// underscores and fits PostgreSQL's 63 bytes; else named as set and
// purpose roles are, with a hash of the exact name, so that "hr-eu" and
// "hr_eu", or two long names PostgreSQL would cut alike, never share a
// role (and with it each other's privileges).
func departmentRoleName(prefix, dept string) string {
	if roleSafe(dept) == dept && len(prefix)+len(dept) <= maxRoleName {
		return prefix + dept
	}
	return hashedRoleName(prefix, roleSafe(dept), dept+"\x03")
}

// quotable refuses a name that the plan's DO blocks, quoted by
// $pgguard$, cannot hold: such a name would end the block early and run
// the rest of it as SQL of its own.
func quotable(kind, name string) error {
	if strings.Contains(name, "$pgguard$") {
		return fmt.Errorf("%s %q: the name holds $pgguard$, which quotes the plan's DO blocks", kind, name)
	}
	return nil
}

// relationPrivileges decides every relation of the analysis's catalog
// outside PostgreSQL's own schemas by allowed, and returns those with a
// privilege.
func relationPrivileges(an *analysis, allowed func([]authz.Access) bool) []Table {
	var out []Table
	for _, r := range an.snap.Relations() {
		if builtinSchema(r.Schema) {
			continue
		}
		if t, ok := tablePrivileges(an.of(r), allowed, r); ok {
			out = append(out, t)
		}
	}
	return out
}

// tablePrivileges decides each privilege on r by allowed, on what the
// statement the privilege lets a role run does.
func tablePrivileges(ra *relationAccesses, allowed func([]authz.Access) bool, r *catalog.Relation) (Table, bool) {
	t := Table{Schema: r.Schema, Name: r.Name}
	may := func(s statementAccesses) bool { return s.ok && allowed(s.accesses) }
	for i, col := range r.Columns {
		if may(ra.sel[i]) {
			t.Select = append(t.Select, col)
		}
		if may(ra.ins[i]) {
			t.Insert = append(t.Insert, col)
		}
		if may(ra.upd[i]) {
			t.Update = append(t.Update, col)
		}
	}
	t.Delete, t.Truncate = may(ra.del), may(ra.trunc)
	return t, len(t.Select)+len(t.Insert)+len(t.Update) > 0 || t.Delete || t.Truncate
}

// analysis holds what pgguard's analysis says of each relation's
// privileges, worked out once per relation for all the roles of a plan.
type analysis struct {
	snap *catalog.Snapshot
	rels map[*catalog.Relation]*relationAccesses
}

func newAnalysis(snap *catalog.Snapshot) *analysis {
	return &analysis{snap: snap, rels: map[*catalog.Relation]*relationAccesses{}}
}

// relationAccesses are, for each privilege on a relation, what the
// statement it allows does: per column, SELECT col FROM r, INSERT INTO r
// (col) VALUES (NULL) and UPDATE r SET col = NULL; DELETE FROM r and
// TRUNCATE r. A privilege is decided on exactly what pgguard decides that
// statement on: a view's column writes what the view computes it from and
// reads what its WHERE reads, an inheriting table's or a partition's
// column writes the parents' column of the same name, a parent's the
// children's, and DELETE and TRUNCATE write every column.
type relationAccesses struct {
	sel, ins, upd []statementAccesses // by column
	del, trunc    statementAccesses
}

// statementAccesses is what one statement reads and writes; ok is false
// when the analysis refuses it (or the relation cannot take it), and then
// the privilege is never granted.
type statementAccesses struct {
	accesses []authz.Access
	ok       bool
}

func (an *analysis) of(r *catalog.Relation) *relationAccesses {
	if ra, ok := an.rels[r]; ok {
		return ra
	}
	stored := r.Kind == catalog.Table || r.Kind == catalog.PartitionedTable || r.Kind == catalog.ForeignTable
	writable := stored || r.Kind == catalog.View
	rel := quoteIdent(r.Schema) + "." + quoteIdent(r.Name)
	ra := &relationAccesses{}
	for _, col := range r.Columns {
		c := quoteIdent(col)
		ra.sel = append(ra.sel, an.statement("SELECT "+c+" FROM "+rel, true))
		ra.ins = append(ra.ins, an.statement("INSERT INTO "+rel+" ("+c+") VALUES (NULL)", writable))
		ra.upd = append(ra.upd, an.statement("UPDATE "+rel+" SET "+c+" = NULL", writable))
	}
	ra.del = an.statement("DELETE FROM "+rel, writable && len(r.Columns) > 0)
	ra.trunc = an.statement("TRUNCATE "+rel, stored && len(r.Columns) > 0)
	an.rels[r] = ra
	return ra
}

// statement asks the analysis what sql reads and writes, when applies.
func (an *analysis) statement(sql string, applies bool) statementAccesses {
	if !applies {
		return statementAccesses{}
	}
	res := sqlscan.Analyze(sql, an.snap, sqlscan.Context{Database: an.snap.Database, SearchPath: []string{}})
	if res.Denial() != nil || len(res.Statements) != 1 {
		return statementAccesses{}
	}
	out := statementAccesses{accesses: []authz.Access{}, ok: true}
	for _, a := range res.Statements[0].Accesses {
		out.accesses = append(out.accesses, authz.Access{Column: a.Schema + "." + a.Table + "." + a.Column, Act: authz.Act(a.Act)})
	}
	return out
}

// allowedForSome reports whether some purpose (or none) allows all of the
// accesses to the department.
func allowedForSome(pol *authz.Policy, dept string, purposes []string, accesses []authz.Access) bool {
	for _, p := range purposes {
		if pol.Decide(dept, p, accesses).Allowed {
			return true
		}
	}
	return false
}

func builtinSchema(s string) bool {
	return s == "pg_catalog" || s == "information_schema" || strings.HasPrefix(s, "pg_toast") || strings.HasPrefix(s, "pg_temp")
}

// rules are a policy's rules, split into fields.
type rules [][]string

func parseRules(texts []string) rules {
	var out rules
	for _, t := range texts {
		f := strings.Split(t, ",")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		out = append(out, f)
	}
	return out
}

// departments are the subjects of p rules, sorted.
func (rs rules) departments() []string {
	var out []string
	for _, r := range rs {
		if r[0] == "p" && len(r) > 1 && !slices.Contains(out, r[1]) {
			out = append(out, r[1])
		}
	}
	sort.Strings(out)
	return out
}

// users are the members of g rules that are no department or group
// themselves: the database logins.
func (rs rules) users() []string {
	groups := map[string]bool{}
	for _, d := range rs.departments() {
		groups[d] = true
	}
	for _, r := range rs {
		if r[0] == "g" && len(r) > 2 {
			groups[r[2]] = true
		}
	}
	var out []string
	for _, r := range rs {
		if r[0] == "g" && len(r) > 2 && !groups[r[1]] && !slices.Contains(out, r[1]) {
			out = append(out, r[1])
		}
	}
	sort.Strings(out)
	return out
}

// purposes are none, and every purpose a rule names.
func (rs rules) purposes() []string {
	out := []string{""}
	add := func(p string) {
		if p != "" && p != "*" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, r := range rs {
		switch {
		case r[0] == "p" && len(r) > 2:
			add(r[2])
		case r[0] == "g3" && len(r) > 2:
			add(r[1])
			add(r[2])
		}
	}
	sort.Strings(out[1:])
	return out
}

// roleSafe turns a department name into the tail of a role name: lower
// case letters, digits and underscores.
func roleSafe(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// quoteIdent quotes a name for SQL, always.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// quoteLiteral quotes a string constant.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// String summarises the plan.
func (p *Plan) String() string {
	return fmt.Sprintf("%d departments, %d users", len(p.Departments), len(p.Users))
}
