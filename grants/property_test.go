package grants_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/grants"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/sqlscan"
)

// The property the second lock promises: whatever the policy, once its
// grants are applied PostgreSQL lets no login read or write a column the
// policy refuses it, through any role the login can use (its own, the
// roles it inherits, and those it may SET ROLE to). Random policies are
// applied one after the other on the same database, so each run also
// checks that the grants take back what the policy before gave.

// propertySchema has two schemas of tables sharing column names (so that
// wildcard patterns reach several), an inheriting table, a partitioned
// table and a view that filters on a column it does not show.
const propertySchema = `
CREATE SCHEMA pa;
CREATE SCHEMA pb;
CREATE TABLE pa.people (id serial PRIMARY KEY, name text, email text, iban text);
CREATE TABLE pa.orders (id int, email text, total numeric, note text);
CREATE TABLE pa.vip (tier int, note text) INHERITS (pa.people);
CREATE TABLE pb.staff (id int, name text, salary numeric, health text);
CREATE TABLE pb.events (id int, at date, note text) PARTITION BY RANGE (at);
CREATE TABLE pb.events_2026 PARTITION OF pb.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE VIEW pb.contacts AS SELECT id, name, email FROM pa.people WHERE iban IS NOT NULL;
CREATE MATERIALIZED VIEW pb.totals AS SELECT email, total FROM pa.orders;
CREATE FUNCTION pb.salary_of(int) RETURNS numeric LANGUAGE sql SECURITY DEFINER AS 'SELECT salary FROM pb.staff WHERE id = $1';
`

// propertyPitfalls are what an unprepared database holds besides the
// logins' own privileges: grants to PUBLIC, a group of readers a login is
// a member of, PostgreSQL's pg_read_all_data, a login that is a member of
// another, default privileges for tables created later, and CREATEROLE.
const propertyPitfalls = `
GRANT SELECT ON ALL TABLES IN SCHEMA pa TO PUBLIC;
GRANT USAGE ON SCHEMA pa, pb TO prop_readers;
GRANT SELECT ON ALL TABLES IN SCHEMA pb TO prop_readers;
GRANT prop_readers TO prop_u1;
GRANT pg_read_all_data TO prop_u2;
GRANT prop_u4 TO prop_u3;
ALTER DEFAULT PRIVILEGES IN SCHEMA pa GRANT SELECT ON TABLES TO prop_u5, PUBLIC;
ALTER ROLE prop_u5 CREATEROLE;
`

// propertyLogins are the logins the random policies place in departments;
// a policy may leave some out.
var propertyLogins = []string{"prop_u1", "prop_u2", "prop_u3", "prop_u4", "prop_u5"}

const (
	propertyDB            = "pgguard_property"
	propertyRolePrefix    = "pgguard_prop_dept_"
	propertyPurposePrefix = "pgguard_prop_purpose_"
)

// propertyPolicies is PGGUARD_PROPERTY_POLICIES, or a number CI affords.
func propertyPolicies() int {
	if n, err := strconv.Atoi(os.Getenv("PGGUARD_PROPERTY_POLICIES")); err == nil && n > 0 {
		return n
	}
	return 40
}

// propertyWorld makes the property database afresh on pg, with the logins
// holding every privilege on every table, as in a database nobody has
// prepared, and returns its catalog and a superuser connection to it.
func propertyWorld(t *testing.T, pg *pgtest.Server) (*catalog.Snapshot, *pgx.Conn) {
	t.Helper()
	pg.MustExec(t, "postgres", "DROP DATABASE IF EXISTS "+propertyDB+" WITH (FORCE)")
	pg.MustExec(t, "postgres", "CREATE DATABASE "+propertyDB)
	for _, u := range append([]string{"prop_readers"}, propertyLogins...) {
		pg.MustExec(t, "postgres", fmt.Sprintf("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN CREATE ROLE %s LOGIN; END IF; END $$", u, u))
	}
	pg.MustExec(t, propertyDB, propertySchema)
	for _, u := range propertyLogins {
		pg.MustExec(t, propertyDB, "GRANT USAGE ON SCHEMA pa, pb TO "+u+"; GRANT ALL ON ALL TABLES IN SCHEMA pa, pb TO "+u)
	}
	pg.MustExec(t, propertyDB, propertyPitfalls)
	ctx := context.Background()
	snap, err := catalog.Dialer(pg.URL(pgtest.Superuser, "", propertyDB))(ctx, propertyDB)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pg.URL(pgtest.Superuser, "", propertyDB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return snap, conn
}

func TestGrantsNeverExceedRandomPolicies(t *testing.T) {
	pg := pgtest.Shared(t)
	snap, super := propertyWorld(t, pg)
	ctx := context.Background()
	seqs, err := grants.LoadSequences(ctx, super)
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(2026, 12))
	dir := t.TempDir()
	held := 0
	for i := 0; i < propertyPolicies(); i++ {
		text, unclassified, purposeRoles := randomPolicy(rnd, i == 0)
		path := filepath.Join(dir, fmt.Sprintf("policy%d.csv", i))
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		pol, err := authz.Load("../model.conf", path, authz.Options{Unclassified: unclassified})
		if err != nil {
			t.Fatalf("policy %d: %v\n%s", i, err, text)
		}
		opts := grants.Options{RolePrefix: propertyRolePrefix, PurposePrefix: propertyPurposePrefix, PurposeRoles: purposeRoles, Sequences: seqs}
		plan, err := grants.Compile(pol, snap, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := plan.Apply(ctx, super); err != nil {
			t.Fatalf("policy %d: %v", i, err)
		}
		holes, n := exceeding(t, super, pol, snap, purposeRoles)
		held += n
		if len(holes) > 0 {
			t.Fatalf("policy %d (--unclassified %s, purpose roles %v):\n%s\nPostgreSQL allows what the policy refuses:\n%s",
				i, unclassified, purposeRoles, text, strings.Join(holes[:min(len(holes), 20)], "\n"))
		}
		// Now and then a table is created after the grants ran, as a
		// migration would: closed until they run again.
		if rnd.IntN(4) == 0 {
			pg.MustExec(t, propertyDB, fmt.Sprintf("CREATE TABLE pa.later%d (id int, email text, iban text)", i))
			if snap, err = catalog.Dialer(pg.URL(pgtest.Superuser, "", propertyDB))(ctx, propertyDB); err != nil {
				t.Fatal(err)
			}
			if holes, _ := exceeding(t, super, pol, snap, purposeRoles); len(holes) > 0 {
				t.Fatalf("policy %d, a table created after the grants:\n%s\nPostgreSQL allows what the policy refuses:\n%s",
					i, text, strings.Join(holes[:min(len(holes), 20)], "\n"))
			}
		}
	}
	t.Logf("%d policies: %d privileges held, each within the policy", propertyPolicies(), held)
	if held == 0 {
		t.Fatal("no policy gave any privilege: the property proves nothing")
	}
}

// randomPolicy writes a policy over the property schema: departments that
// may nest, logins in one or two of them (or, unless all, none: a login
// the policy drops), categories by exact and wildcard patterns, purposes
// in a tree, allow and deny rules on categories and patterns, now and
// then a routine's execute, under a random --unclassified. The grants manage the policy's users only, so
// the first policy names every login, whose direct privileges it takes.
func randomPolicy(rnd *rand.Rand, all bool) (text, unclassified string, purposeRoles bool) {
	var b strings.Builder
	depts := []string{"d1", "d2", "d3", "d4"}
	for i := 1; i < len(depts); i++ {
		if rnd.IntN(3) == 0 {
			fmt.Fprintf(&b, "g, %s, %s\n", depts[i], depts[rnd.IntN(i)])
		}
	}
	placed := map[string]bool{}
	member := func(u, d string) {
		fmt.Fprintf(&b, "g, %s, %s\n", u, d)
		placed[d] = true
	}
	var in []string
	for _, u := range propertyLogins {
		switch rnd.IntN(6) {
		case 0:
			if !all { // dropped from this policy
				continue
			}
			member(u, depts[rnd.IntN(len(depts))])
		case 1, 2:
			a, c := rnd.IntN(len(depts)), rnd.IntN(len(depts)-1)
			if c >= a {
				c++
			}
			member(u, depts[a])
			member(u, depts[c])
		default:
			member(u, depts[rnd.IntN(len(depts))])
		}
		in = append(in, u)
	}
	// Every department has a member, or the policy's rules on it name no
	// one the policy knows.
	for _, d := range depts {
		if !placed[d] {
			if len(in) == 0 {
				in = append(in, propertyLogins[rnd.IntN(len(propertyLogins))])
			}
			member(in[rnd.IntN(len(in))], d)
		}
	}
	// Each category classifies something, each purpose is in the tree
	// (a misspelt one is a lint error on a deny rule).
	categories := []string{"c1", "c2", "c3"}
	for i := 0; i < len(categories)+rnd.IntN(5); i++ {
		category := categories[rnd.IntN(len(categories))]
		if i < len(categories) {
			category = categories[i]
		}
		fmt.Fprintf(&b, "g2, %s, %s\n", randomPattern(rnd), category)
	}
	purposes := []string{"q1", "q2", "q3", "q4"}
	for i := 1; i < len(purposes); i++ {
		fmt.Fprintf(&b, "g3, %s, %s\n", purposes[i], purposes[rnd.IntN(i)])
	}
	// Each department has a rule: a sub-department with neither rules nor
	// members would read as a login.
	for i := 0; i < len(depts)+2+rnd.IntN(8); i++ {
		subject := depts[rnd.IntN(len(depts))]
		if i < len(depts) {
			subject = depts[i]
		}
		purpose := "*"
		if rnd.IntN(3) > 0 {
			purpose = purposes[rnd.IntN(len(purposes))]
		}
		obj := categories[rnd.IntN(len(categories))]
		if rnd.IntN(3) == 0 {
			obj = randomPattern(rnd)
		}
		act := []string{"read", "write"}[rnd.IntN(2)]
		eft := "allow"
		if i > 0 && rnd.IntN(4) == 0 {
			eft = "deny"
		}
		fmt.Fprintf(&b, "p, %s, %s, %s, %s, %s\n", subject, purpose, obj, act, eft)
	}
	if rnd.IntN(3) == 0 {
		fmt.Fprintf(&b, "p, %s, %s, function:pb.salary_of, execute, allow\n", depts[rnd.IntN(len(depts))], []string{"*", "q1", "q3"}[rnd.IntN(3)])
	}
	unclassified = []string{authz.UnclassifiedAllow, authz.UnclassifiedDeny}[rnd.IntN(2)]
	return b.String(), unclassified, rnd.IntN(2) == 0
}

// propertyTables are the property schema's relations and their columns,
// for patterns.
var propertyTables = map[string]map[string][]string{
	"pa": {"people": {"id", "name", "email", "iban"}, "orders": {"id", "email", "total", "note"}, "vip": {"tier", "note", "iban"}},
	"pb": {"staff": {"id", "name", "salary", "health"}, "events": {"id", "at", "note"}, "events_2026": {"note"}, "contacts": {"name", "email"}},
}

// randomPattern is a column pattern: each of its three names is a
// wildcard now and then.
func randomPattern(rnd *rand.Rand) string {
	schema := []string{"pa", "pb"}[rnd.IntN(2)]
	tables := make([]string, 0, len(propertyTables[schema]))
	for t := range propertyTables[schema] {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	table := tables[rnd.IntN(len(tables))]
	cols := propertyTables[schema][table]
	col := cols[rnd.IntN(len(cols))]
	if rnd.IntN(5) == 0 {
		schema = "*"
	}
	if rnd.IntN(4) == 0 {
		table = "*"
	}
	if rnd.IntN(4) == 0 {
		col = "*"
	}
	return schema + "." + table + "." + col
}

// exceeding lists every privilege a login can use, through any role it is
// a member of, that the policy refuses it: under every purpose for a role
// the login holds for no one purpose, under its purpose for a purpose
// role. It also returns how many privileges were held in all.
func exceeding(t *testing.T, conn *pgx.Conn, pol *authz.Policy, snap *catalog.Snapshot, purposeRoles bool) ([]string, int) {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, `
		SELECT l.rolname::text, r.rolname::text, n.nspname::text, c.relname::text, a.attname::text, p
		FROM pg_catalog.pg_roles l
		JOIN pg_catalog.pg_roles r ON pg_catalog.pg_has_role(l.oid, r.oid, 'MEMBER')
		CROSS JOIN pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE']) p
		WHERE l.rolname = ANY($1) AND n.nspname IN ('pa', 'pb') AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
		  AND pg_catalog.has_column_privilege(r.oid, c.oid, a.attnum, p)
		UNION ALL
		SELECT l.rolname::text, r.rolname::text, n.nspname::text, c.relname::text, '', p
		FROM pg_catalog.pg_roles l
		JOIN pg_catalog.pg_roles r ON pg_catalog.pg_has_role(l.oid, r.oid, 'MEMBER')
		CROSS JOIN pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		CROSS JOIN unnest(ARRAY['DELETE', 'TRUNCATE']) p
		WHERE l.rolname = ANY($1) AND n.nspname IN ('pa', 'pb') AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
		  AND pg_catalog.has_table_privilege(r.oid, c.oid, p)
		ORDER BY 1, 2, 3, 4, 5, 6`, propertyLogins)
	if err != nil {
		t.Fatal(err)
	}
	type held struct{ login, role, schema, table, column, privilege string }
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (held, error) {
		var h held
		err := r.Scan(&h.login, &h.role, &h.schema, &h.table, &h.column, &h.privilege)
		return h, err
	})
	if err != nil {
		t.Fatal(err)
	}
	purposes := append(slices.Compact(policyPurposes(pol)), "no_rule_names_this")
	// Routines that run as their owner: EXECUTE is what they read.
	rows, err = conn.Query(ctx, `
		SELECT DISTINCT l.rolname::text, n.nspname::text, p.proname::text
		FROM pg_catalog.pg_roles l
		JOIN pg_catalog.pg_roles r ON pg_catalog.pg_has_role(l.oid, r.oid, 'MEMBER')
		CROSS JOIN pg_catalog.pg_proc p
		JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		WHERE l.rolname = ANY($1) AND n.nspname IN ('pa', 'pb') AND p.prosecdef
		  AND pg_catalog.has_function_privilege(r.oid, p.oid, 'EXECUTE')`, propertyLogins)
	if err != nil {
		t.Fatal(err)
	}
	var holes []string
	for rows.Next() {
		var login, schema, name string
		if err := rows.Scan(&login, &schema, &name); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(purposes, func(p string) bool { return pol.FunctionAllowed(login, p, schema, name) }) {
			holes = append(holes, fmt.Sprintf("%s: EXECUTE on %s.%s", login, schema, name))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	namer := grants.NewNamer(pol, propertyPurposePrefix)
	accesses := map[string][]authz.Access{}
	for _, h := range all {
		sql := privilegeStatement(h.privilege, h.schema, h.table, h.column)
		acc, ok := accesses[sql]
		if !ok {
			res := sqlscan.Analyze(sql, snap, sqlscan.Context{Database: propertyDB, SearchPath: []string{}})
			if d := res.Denial(); d == nil {
				acc = []authz.Access{}
				for _, s := range res.Statements {
					for _, a := range s.Accesses {
						acc = append(acc, authz.Access{Column: a.Schema + "." + a.Table + "." + a.Column, Act: authz.Act(a.Act)})
					}
				}
			}
			accesses[sql] = acc
		}
		// The purposes the role stands for: those whose purpose role it is,
		// else any (a role the login may use whatever it declares).
		var mine []string
		if purposeRoles {
			for _, p := range purposes {
				if r, ok := namer.Role(h.login, p); ok && r == h.role {
					mine = append(mine, p)
				}
			}
		}
		allowed := acc != nil && slices.ContainsFunc(purposes, func(p string) bool { return pol.Decide(h.login, p, acc).Allowed })
		if len(mine) > 0 {
			allowed = acc != nil && !slices.ContainsFunc(mine, func(p string) bool { return !pol.Decide(h.login, p, acc).Allowed })
		}
		if !allowed {
			via := ""
			if h.role != h.login {
				via = " through " + h.role
			}
			holes = append(holes, fmt.Sprintf("%s%s: %s (purposes %v)", h.login, via, sql, mine))
		}
	}
	return holes, len(all)
}

// privilegeStatement is the statement a privilege allows: what pgguard's
// analysis and the policy decide for it.
func privilegeStatement(privilege, schema, table, column string) string {
	rel := pgx.Identifier{schema, table}.Sanitize()
	col := pgx.Identifier{column}.Sanitize()
	switch privilege {
	case "SELECT":
		return "SELECT " + col + " FROM " + rel
	case "INSERT":
		return "INSERT INTO " + rel + " (" + col + ") VALUES (NULL)"
	case "UPDATE":
		return "UPDATE " + rel + " SET " + col + " = NULL"
	case "DELETE":
		return "DELETE FROM " + rel
	}
	return "TRUNCATE " + rel
}
