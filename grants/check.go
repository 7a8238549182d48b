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

// Check compares every column privilege (SELECT, INSERT, UPDATE) the
// plan's users (and purpose roles) hold, directly or through any role, on
// the relations of the plan's schemas, and every sequence privilege on its
// sequences, with what the plan gives them, and returns the differences,
// errors first. A user the database does not have is skipped.
func (p *Plan) Check(ctx context.Context, conn *pgx.Conn) ([]Drift, error) {
	want := p.expected()
	rows, err := conn.Query(ctx, `
		SELECT u.rolname::text, c.table_schema || '.' || c.table_name || '.' || c.column_name, pr,
			has_column_privilege(u.oid, quote_ident(c.table_schema) || '.' || quote_ident(c.table_name), c.column_name, pr)
		FROM pg_catalog.pg_roles u
		CROSS JOIN information_schema.columns c
		CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE']) pr
		WHERE u.rolname = ANY($1) AND c.table_schema = ANY($2)
		ORDER BY 1, 2, 3`, p.checkedRoles(), p.Schemas)
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
	seqs, err := p.checkSequences(ctx, conn)
	if err != nil {
		return nil, err
	}
	out = append(out, seqs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Extra && !out[j].Extra })
	return out, nil
}

type grantKey struct{ user, privilege, column string }

// expected lists what the plan gives each user through its departments.
func (p *Plan) expected() map[grantKey]bool {
	out := map[grantKey]bool{}
	if p.purposeMode {
		p.expectPurposes(out)
		return out
	}
	for _, d := range p.Departments {
		for user, depts := range p.Users {
			if !slices.Contains(depts, d.Name) {
				continue
			}
			for _, t := range d.Tables {
				for _, g := range []struct {
					privilege string
					cols      []string
				}{{"SELECT", t.Select}, {"INSERT", t.Insert}, {"UPDATE", t.Update}} {
					for _, c := range g.cols {
						out[grantKey{user, g.privilege, t.Schema + "." + t.Name + "." + c}] = true
					}
				}
			}
		}
	}
	return out
}
