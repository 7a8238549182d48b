package grants

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Sequences are the second lock's other half: an INSERT that leaves a
// serial column to its default calls nextval, which PostgreSQL checks
// against the sequence's own privileges, not the table's. A department
// that may write a column therefore gets USAGE on the sequences the column
// takes values from (its default's nextval, its identity) or owns (OWNED BY,
// for applications that call nextval themselves). USAGE is what nextval,
// currval and lastval need, and nothing more: SELECT would also show the
// sequence's last_value to anyone, and UPDATE allows setval, with which
// one writer could make every other writer's inserts collide. Every other
// privilege on the schemas' sequences is revoked.

// SequenceUse is one column's use of a sequence.
type SequenceUse struct {
	// Schema and Name name the sequence.
	Schema, Name string
	// TableSchema, Table and Column name the column that takes values from
	// it or owns it.
	TableSchema, Table, Column string
}

// sequencesQuery finds, for every sequence outside PostgreSQL's own
// schemas, the columns whose default calls it (pg_attrdef's normal
// dependency on it) and the column that owns it (serial's automatic
// dependency, or an identity's internal one).
const sequencesQuery = `
WITH uses AS (
	SELECT d.refobjid AS seq, ad.adrelid AS rel, ad.adnum AS att
	FROM pg_catalog.pg_attrdef ad
	JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid
		AND d.refclassid = 'pg_catalog.pg_class'::regclass
	UNION
	SELECT d.objid, d.refobjid, d.refobjsubid
	FROM pg_catalog.pg_depend d
	WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
		AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
)
SELECT sn.nspname::text, s.relname::text, tn.nspname::text, t.relname::text, a.attname::text
FROM uses u
JOIN pg_catalog.pg_class s ON s.oid = u.seq AND s.relkind = 'S'
JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_catalog.pg_class t ON t.oid = u.rel
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = u.rel AND a.attnum = u.att AND NOT a.attisdropped
WHERE sn.nspname NOT IN ('pg_catalog', 'information_schema') AND sn.nspname NOT LIKE 'pg\_%'
ORDER BY 1, 2, 3, 4, 5`

// LoadSequences reads which columns use which sequences in the database
// conn is connected to. It needs no privileges beyond reading pg_catalog.
func LoadSequences(ctx context.Context, conn *pgx.Conn) ([]SequenceUse, error) {
	rows, err := conn.Query(ctx, sequencesQuery)
	if err != nil {
		return nil, fmt.Errorf("read sequences: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SequenceUse, error) {
		var s SequenceUse
		err := r.Scan(&s.Schema, &s.Name, &s.TableSchema, &s.Table, &s.Column)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("read sequences: %w", err)
	}
	return out, nil
}

// sequences are the sequences the department gets USAGE on, sorted: those
// a column it may insert or update uses.
func (p *Plan) sequences(d Department) []seqName {
	var out []seqName
	for _, s := range p.Sequences {
		for _, t := range d.Tables {
			if t.Schema == s.TableSchema && t.Name == s.Table &&
				(slices.Contains(t.Insert, s.Column) || slices.Contains(t.Update, s.Column)) {
				if n := (seqName{s.Schema, s.Name}); !slices.Contains(out, n) {
					out = append(out, n)
				}
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b seqName) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// seqName is a sequence's schema and name.
type seqName struct{ schema, name string }

// String is schema.name as grants check reports it, unquoted like its
// columns.
func (n seqName) String() string { return n.schema + "." + n.name }

// grantSequences writes the department's sequence grants, and USAGE on the
// schemas those sequences are in where its tables did not already need it.
func (p *Plan) grantSequences(b *strings.Builder, d Department, role string) {
	seqs := p.sequences(d)
	if len(seqs) == 0 {
		return
	}
	have := d.schemas()
	var extra, quoted []string
	for _, s := range seqs {
		if !slices.Contains(have, s.schema) && !slices.Contains(extra, s.schema) {
			extra = append(extra, s.schema)
		}
		quoted = append(quoted, quoteIdent(s.schema)+"."+quoteIdent(s.name))
	}
	sort.Strings(extra)
	for _, s := range extra {
		fmt.Fprintf(b, "GRANT USAGE ON SCHEMA %s TO %s;\n", quoteIdent(s), role)
	}
	fmt.Fprintf(b, "GRANT USAGE ON SEQUENCE %s TO %s;\n", strings.Join(quoted, ", "), role)
}

// checkSequences compares the USAGE, SELECT and UPDATE privileges the
// plan's users (and purpose roles) hold on every sequence of the plan's schemas with the plan's:
// USAGE where a department of theirs writes a column that uses the
// sequence, nothing else. Which column uses which sequence is read from the
// database itself, so a sequence added since the plan was compiled counts.
func (p *Plan) checkSequences(ctx context.Context, conn *pgx.Conn) ([]Drift, error) {
	uses, err := LoadSequences(ctx, conn)
	if err != nil {
		return nil, err
	}
	live := *p
	live.Sequences = uses
	want := map[grantKey]bool{}
	if p.purposeMode {
		// NOINHERIT users hold nothing themselves; each purpose role holds
		// USAGE on what its own writable columns use.
		for _, pr := range p.Purposes {
			for _, s := range live.sequences(Department{Tables: pr.Tables}) {
				want[grantKey{pr.Role, "USAGE", s.String()}] = true
			}
		}
	} else {
		for _, d := range p.Departments {
			seqs := live.sequences(d)
			for user, depts := range p.Users {
				if slices.Contains(depts, d.Name) {
					for _, s := range seqs {
						want[grantKey{user, "USAGE", s.String()}] = true
					}
				}
			}
		}
	}
	rows, err := conn.Query(ctx, `
		SELECT u.rolname::text, n.nspname || '.' || s.relname, pr,
			has_sequence_privilege(u.oid, s.oid, pr)
		FROM pg_catalog.pg_roles u
		CROSS JOIN pg_catalog.pg_class s
		JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
		CROSS JOIN unnest(ARRAY['SELECT', 'UPDATE', 'USAGE']) pr
		WHERE s.relkind = 'S' AND u.rolname = ANY($1) AND n.nspname = ANY($2)
		ORDER BY 1, 2, 3`, p.checkedRoles(), p.Schemas)
	if err != nil {
		return nil, fmt.Errorf("read sequence privileges: %w", err)
	}
	var out []Drift
	for rows.Next() {
		var user, seq, priv string
		var has bool
		if err := rows.Scan(&user, &seq, &priv, &has); err != nil {
			return nil, fmt.Errorf("read sequence privileges: %w", err)
		}
		if should := want[grantKey{user, priv, seq}]; has != should {
			out = append(out, Drift{User: user, Privilege: priv, Column: seq, Extra: has, Sequence: true})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read sequence privileges: %w", err)
	}
	return out, nil
}
