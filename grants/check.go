package grants

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/jackc/pgx/v5"
)

// Drift is one difference between the privileges a user holds in the
// database and those the plan gives it.
type Drift struct {
	User, Privilege, Column string // column is schema.table.column
	// Sequence is true when Column is a sequence's schema.name.
	Sequence bool
	// Extra is true for a privilege the user holds that the plan does not
	// give (a hole: an error); false for one it gives that the user lacks
	// (a warning: the second lock is stricter than the policy).
	Extra bool
}

func (d Drift) String() string {
	on := d.Column
	if d.Sequence {
		on = "sequence " + on
	}
	if d.Extra {
		return fmt.Sprintf("error: %s holds %s on %s, which the policy does not allow", d.User, d.Privilege, on)
	}
	return fmt.Sprintf("warning: %s lacks %s on %s, which the policy allows", d.User, d.Privilege, on)
}

// Check compares every column privilege (SELECT, INSERT, UPDATE,
// REFERENCES) and table privilege (DELETE, TRUNCATE, TRIGGER) the plan's
// users (and purpose roles) hold, directly or through any role, on the
// relations of the plan's schemas, and every sequence privilege on its
// sequences, with what the plan gives them, and returns the differences,
// errors first. A user the database does not have is skipped.
func (p *Plan) Check(ctx context.Context, conn *pgx.Conn) ([]Drift, error) {
	want := p.expected()
	// Column privileges, and the table-wide ones, with Column the table's
	// schema.name. REFERENCES lets a foreign key probe a column's values,
	// TRIGGER attaches code that sees whole rows: the plan gives neither.
	out, err := p.checkRelations(ctx, conn, want, `
		SELECT u.rolname::text, n.nspname || '.' || c.relname || '.' || a.attname, pr,
			has_column_privilege(u.oid, c.oid, a.attnum, pr)
		FROM pg_catalog.pg_roles u
		CROSS JOIN pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) pr
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND u.rolname = ANY($1) AND n.nspname = ANY($2)
		UNION ALL
		SELECT u.rolname::text, n.nspname || '.' || c.relname, pr,
			has_table_privilege(u.oid, c.oid, pr)
		FROM pg_catalog.pg_roles u
		CROSS JOIN pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		CROSS JOIN unnest(ARRAY['DELETE', 'TRUNCATE', 'TRIGGER']) pr
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND u.rolname = ANY($1) AND n.nspname = ANY($2)
		ORDER BY 1, 2, 3`)
	if err != nil {
		return nil, err
	}
	seqs, err := p.checkSequences(ctx, conn)
	if err != nil {
		return nil, err
	}
	out = append(out, seqs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Extra && !out[j].Extra })
	return out, nil
}

// checkRelations runs query, which lists (role, object, privilege, held),
// and returns where held differs from want.
func (p *Plan) checkRelations(ctx context.Context, conn *pgx.Conn, want map[grantKey]bool, query string) ([]Drift, error) {
	rows, err := conn.Query(ctx, query, p.checkedRoles(), p.Schemas)
	if err != nil {
		return nil, fmt.Errorf("read privileges: %w", err)
	}
	var out []Drift
	for rows.Next() {
		var user, col, priv string
		var has bool
		if err := rows.Scan(&user, &col, &priv, &has); err != nil {
			return nil, fmt.Errorf("read privileges: %w", err)
		}
		if should := want[grantKey{user, priv, col}]; has != should {
			out = append(out, Drift{User: user, Privilege: priv, Column: col, Extra: has})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read privileges: %w", err)
	}
	return out, nil
}

type grantKey struct{ user, privilege, column string }

// expectTables adds what the tables' privileges give role.
func expectTables(out map[grantKey]bool, role string, tables []Table) {
	for _, t := range tables {
		rel := t.Schema + "." + t.Name
		for _, g := range []struct {
			privilege string
			cols      []string
		}{{"SELECT", t.Select}, {"INSERT", t.Insert}, {"UPDATE", t.Update}} {
			for _, c := range g.cols {
				out[grantKey{role, g.privilege, rel + "." + c}] = true
			}
		}
		if t.Delete {
			out[grantKey{role, "DELETE", rel}] = true
		}
		if t.Truncate {
			out[grantKey{role, "TRUNCATE", rel}] = true
		}
	}
}

// expected lists what the plan gives each user through its departments.
func (p *Plan) expected() map[grantKey]bool {
	out := map[grantKey]bool{}
	if p.purposeMode {
		p.expectPurposes(out)
		return out
	}
	for _, d := range p.Departments {
		for user, depts := range p.Users {
			if slices.Contains(depts, d.Name) {
				expectTables(out, user, d.Tables)
			}
		}
	}
	return out
}
