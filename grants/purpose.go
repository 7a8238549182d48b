package grants

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/pgguard/pgguard/authz"
)

// Purpose roles make PostgreSQL enforce the purpose too, not only the
// department ceiling. There is one NOLOGIN role per department and purpose
// (and one for the empty purpose, which only "*" rules match), holding the
// column privileges that department may use under that purpose, with the
// purpose tree applied. The users are members of their purpose roles but
// NOINHERIT, so that a session holds nothing of them until pgguard runs
// SET ROLE to the role of the statement's purpose.
//
// A statement is decided on all of a user's departments at once (an allow
// of one and a deny of another: deny wins), which no single department's
// role expresses. A user whose departments are not those of one department
// and the departments above it gets roles of its own set of departments,
// shared with every user of the same set.

// DefaultPurposePrefix starts every purpose role's name. It differs from
// DefaultRolePrefix so that the two kinds of role cannot clash.
const DefaultPurposePrefix = "pgguard_purpose_"

// maxRoleName is PostgreSQL's limit on names (NAMEDATALEN - 1 bytes).
const maxRoleName = 63

// PurposeRole is the role of one set of departments under one purpose.
type PurposeRole struct {
	Role string
	// Departments are the departments whose rules decide, sorted: one
	// department (and, through the policy, those above it), or the set of
	// a user in several.
	Departments []string
	// Purpose is "" for the role of the empty purpose (and of every
	// purpose the policy does not name).
	Purpose string
	// Tables are sorted by schema and name; only those with a privilege.
	Tables []Table
	// Routines are those the departments may call under the purpose, as
	// Department.Routines.
	Routines []string
}

// PurposeRoleName is the role of departments under purpose. The name is the
// prefix, the names made safe (lower case letters, digits and
// underscores), and always a short hash of the exact names: two spellings
// that read alike, or names cut to fit PostgreSQL's 63 bytes, never share
// a role.
func PurposeRoleName(prefix string, departments []string, purpose string) string {
	if prefix == "" {
		prefix = DefaultPurposePrefix
	}
	p := "none"
	if purpose != "" {
		p = roleSafe(purpose)
	}
	return hashedRoleName(prefix, safeNames(departments)+"__"+p, strings.Join(departments, "\x00")+"\x01"+purpose)
}

// setRoleName is the department role of a set of departments, named as
// purpose roles are: the names made safe and a hash of the exact names.
func setRoleName(prefix string, departments []string) string {
	return hashedRoleName(prefix, safeNames(departments), strings.Join(departments, "\x00")+"\x02")
}

// safeNames are names made safe, joined by "__".
func safeNames(names []string) string {
	parts := make([]string, len(names))
	for i, d := range names {
		parts[i] = roleSafe(d)
	}
	return strings.Join(parts, "__")
}

// hashedRoleName is prefix, readable cut to fit, and 8 hex digits of a
// hash of key, in lower case.
func hashedRoleName(prefix, readable, key string) string {
	sum := sha256.Sum256([]byte(key))
	tail := "_" + hex.EncodeToString(sum[:4])
	if room := maxRoleName - len(prefix) - len(tail); len(readable) > room {
		readable = readable[:max(room, 0)]
	}
	return strings.ToLower(prefix) + readable + tail
}

// Namer tells which purpose role a user's statements under a purpose run
// in, from the policy alone: what pgguard serve needs to switch roles.
type Namer struct {
	pol      *authz.Policy
	prefix   string
	depts    []string
	purposes []string
}

// NewNamer reads the policy's departments and purposes.
func NewNamer(pol *authz.Policy, prefix string) *Namer {
	rs := parseRules(pol.Rules())
	return &Namer{pol: pol, prefix: prefix, depts: rs.departments(), purposes: rs.purposes()}
}

// Role is the role for user's statements under purpose; ok is false for a
// user no department of the policy holds, whose sessions pgguard leaves in
// their own role. A purpose no rule names can match only "*" rules, like
// the empty purpose, and shares its role.
func (n *Namer) Role(user, purpose string) (role string, ok bool) {
	set := n.departmentSet(user)
	if len(set) == 0 {
		return "", false
	}
	if !slices.Contains(n.purposes, purpose) {
		purpose = ""
	}
	return PurposeRoleName(n.prefix, set, purpose), true
}

// departmentSet is the set of departments that decides for subject, in
// its shortest form: one department when the subject's departments are
// exactly that one and those above it.
func (n *Namer) departmentSet(subject string) []string {
	var all []string
	for _, r := range append([]string{subject}, n.pol.Roles(subject)...) {
		if slices.Contains(n.depts, r) && !slices.Contains(all, r) {
			all = append(all, r)
		}
	}
	sort.Strings(all)
	for _, d := range all {
		if slices.Equal(n.closure(d), all) {
			return []string{d}
		}
	}
	return all
}

// closure is a department and the departments above it, sorted.
func (n *Namer) closure(dept string) []string {
	out := []string{dept}
	for _, r := range n.pol.Roles(dept) {
		if slices.Contains(n.depts, r) && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

// PurposeRoleFunc returns a function that names purpose roles under the
// policy it is given, for pgguard serve: the naming is worked out once per
// policy (a reload brings a new one) and is safe for concurrent use.
func PurposeRoleFunc(prefix string) func(pol *authz.Policy, user, purpose string) (string, bool) {
	var mu sync.Mutex
	var last *Namer
	return func(pol *authz.Policy, user, purpose string) (string, bool) {
		mu.Lock()
		if last == nil || last.pol != pol {
			last = NewNamer(pol, prefix)
		}
		n := last
		mu.Unlock()
		return n.Role(user, purpose)
	}
}

// compilePurposes adds the purpose roles: one per department and purpose,
// and one per purpose for every set of departments a user holds that no
// single department stands for.
func (p *Plan) compilePurposes(pol *authz.Policy, an *analysis, rs rules, opts Options) {
	p.purposeMode = true
	prefix := opts.PurposePrefix
	if prefix == "" {
		prefix = DefaultPurposePrefix
	}
	n := NewNamer(pol, prefix)
	type set struct {
		depts   []string
		subject string // decides for the set: the department, or a user of the set
	}
	var sets []set
	seen := map[string]bool{}
	for _, d := range n.depts {
		sets = append(sets, set{[]string{d}, d})
		seen[d] = true
	}
	for _, u := range rs.users() {
		ds := n.departmentSet(u)
		key := strings.Join(ds, "\x00")
		if len(ds) > 1 && !seen[key] {
			seen[key] = true
			sets = append(sets, set{ds, u})
		}
	}
	for _, s := range sets {
		for _, purpose := range n.purposes {
			pr := PurposeRole{Role: PurposeRoleName(prefix, s.depts, purpose), Departments: s.depts, Purpose: purpose}
			allowed := func(a []authz.Access) bool { return pol.Decide(s.subject, purpose, a).Allowed }
			pr.Tables = relationPrivileges(an, allowed)
			pr.Routines = routinesFor(pol, an.snap, s.subject, []string{purpose})
			p.Purposes = append(p.Purposes, pr)
		}
	}
	sort.Slice(p.Purposes, func(i, j int) bool { return p.Purposes[i].Role < p.Purposes[j].Role })
	p.userPurposes = map[string][]string{}
	for _, u := range rs.users() {
		for _, purpose := range n.purposes {
			if role, ok := n.Role(u, purpose); ok {
				p.userPurposes[u] = append(p.userPurposes[u], role)
			}
		}
		sort.Strings(p.userPurposes[u])
	}
}

// purposeSQL writes the purpose roles and their privileges.
func (p *Plan) purposeSQL(b *strings.Builder) {
	for _, pr := range p.Purposes {
		purpose := pr.Purpose
		if purpose == "" {
			purpose = "(none)"
		}
		label := fmt.Sprintf("%s, purpose %s", strings.Join(pr.Departments, " + "), purpose)
		p.department(b, Department{Name: label, Role: pr.Role, Tables: pr.Tables, Routines: pr.Routines})
	}
}

// userPurposeSQL writes how a login holds its roles. With purpose roles it
// is NOINHERIT, a member of exactly its own purpose roles, and so holds
// nothing of them until pgguard sets the role of a statement's purpose;
// without, it inherits its departments' ceilings (and a login made
// NOINHERIT by an earlier plan with purpose roles gets them back).
func (p *Plan) userPurposeSQL(b *strings.Builder, user string) {
	if !p.purposeMode {
		fmt.Fprintf(b, "ALTER ROLE %s INHERIT;\n", quoteIdent(user))
		return
	}
	fmt.Fprintf(b, "ALTER ROLE %s NOINHERIT;\n", quoteIdent(user))
	mine := p.userPurposes[user]
	for _, pr := range p.Purposes {
		verb := "REVOKE %s FROM %s;\n"
		if slices.Contains(mine, pr.Role) {
			verb = "GRANT %s TO %s;\n"
		}
		fmt.Fprintf(b, verb, quoteIdent(pr.Role), quoteIdent(user))
	}
}

// checkedRoles are the roles whose privileges Check compares: the users,
// and the purpose roles.
func (p *Plan) checkedRoles() []string {
	out := sortedKeys(p.Users)
	for _, pr := range p.Purposes {
		out = append(out, pr.Role)
	}
	return out
}

// expectPurposes adds what each purpose role should hold. The users, being
// NOINHERIT, should hold nothing themselves: a privilege a user holds
// (an INHERIT user holds all of its purpose roles') is a difference.
func (p *Plan) expectPurposes(out map[grantKey]bool) {
	for _, pr := range p.Purposes {
		expectTables(out, pr.Role, pr.Tables)
	}
}
