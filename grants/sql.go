package grants

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// SQL renders the plan as statements a DBA can review and run in one
// transaction. Running them twice changes nothing: roles are created only
// when missing, and every department role and user first loses all its
// table privileges in the plan's schemas, then gets exactly the plan's. The
// text depends only on the plan, in a fixed order, so it diffs well.
func (p *Plan) SQL() string {
	var b strings.Builder
	b.WriteString("-- pgguard grants: PostgreSQL's own privileges, compiled from the policy.\n")
	b.WriteString("-- Run as a superuser or the tables' owner, in one transaction.\n")
	p.revokePublic(&b)
	for _, d := range p.Departments {
		p.department(&b, d)
	}
	p.purposeSQL(&b)
	for _, user := range sortedKeys(p.Users) {
		p.user(&b, user)
	}
	p.sweep(&b)
	return b.String()
}

// revokePublic takes every table and sequence privilege in the plan's
// schemas from PUBLIC: a grant to PUBLIC is one to every login, and a
// table-wide SELECT to PUBLIC would make the column grants meaningless.
// The schemas' USAGE, which opens nothing by itself, stays.
func (p *Plan) revokePublic(b *strings.Builder) {
	if len(p.Schemas) == 0 {
		return
	}
	b.WriteString("\n-- PUBLIC, which every role is a member of\n")
	fmt.Fprintf(b, "REVOKE ALL ON ALL TABLES IN SCHEMA %s FROM PUBLIC;\n", p.schemaIdents())
	fmt.Fprintf(b, "REVOKE ALL ON ALL SEQUENCES IN SCHEMA %s FROM PUBLIC;\n", p.schemaIdents())
	p.revokeDefiners(b)
}

// department writes one department's role and privileges.
func (p *Plan) department(b *strings.Builder, d Department) {
	role := quoteIdent(d.Role)
	fmt.Fprintf(b, "\n-- department %s\n", d.Name)
	fmt.Fprintf(b, "DO $pgguard$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = %s) THEN CREATE ROLE %s NOLOGIN; END IF; END $pgguard$;\n",
		quoteLiteral(d.Role), role)
	p.revokeTables(b, role)
	for _, s := range d.schemas() {
		fmt.Fprintf(b, "GRANT USAGE ON SCHEMA %s TO %s;\n", quoteIdent(s), role)
	}
	for _, t := range d.Tables {
		rel := quoteIdent(t.Schema) + "." + quoteIdent(t.Name)
		for _, g := range []struct {
			privilege string
			cols      []string
		}{{"SELECT", t.Select}, {"INSERT", t.Insert}, {"UPDATE", t.Update}} {
			if len(g.cols) > 0 {
				fmt.Fprintf(b, "GRANT %s (%s) ON %s TO %s;\n", g.privilege, columnList(g.cols), rel, role)
			}
		}
		switch {
		case t.Delete && t.Truncate:
			fmt.Fprintf(b, "GRANT DELETE, TRUNCATE ON %s TO %s;\n", rel, role)
		case t.Delete:
			fmt.Fprintf(b, "GRANT DELETE ON %s TO %s;\n", rel, role)
		}
	}
	p.grantSequences(b, d, role)
	p.grantDefiners(b, d.Routines, d.Role)
}

// user writes one login's memberships: its departments' roles, and no
// privileges of its own in the plan's schemas.
func (p *Plan) user(b *strings.Builder, user string) {
	fmt.Fprintf(b, "\n-- user %s\n", user)
	// PostgreSQL checks no privilege of a superuser, and a role with
	// CREATEROLE may grant itself any role that is not a superuser's, the
	// other departments' and pg_read_all_data included.
	fmt.Fprintf(b, "DO $pgguard$ BEGIN IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = %s) THEN RAISE EXCEPTION 'pgguard grants: the login %% is a superuser, of which PostgreSQL checks no privilege', %s; END IF; END $pgguard$;\n",
		quoteLiteral(user), quoteLiteral(user))
	fmt.Fprintf(b, "ALTER ROLE %s NOCREATEROLE;\n", quoteIdent(user))
	p.revokeTables(b, quoteIdent(user))
	mine := p.Users[user]
	for _, d := range p.Departments {
		verb := "REVOKE %s FROM %s;\n"
		if slices.Contains(mine, d.Name) {
			verb = "GRANT %s TO %s;\n"
		}
		fmt.Fprintf(b, verb, quoteIdent(d.Role), quoteIdent(user))
	}
	p.userPurposeSQL(b, user)
}

// revokeTables takes every table and sequence privilege in the plan's
// schemas from a role (column privileges go with the table's), and the
// schemas' USAGE;
// CREATE on a schema, which migrations need, is left as it is.
func (p *Plan) revokeTables(b *strings.Builder, role string) {
	if len(p.Schemas) == 0 {
		return
	}
	list := p.schemaIdents()
	fmt.Fprintf(b, "REVOKE ALL ON ALL TABLES IN SCHEMA %s FROM %s;\n", list, role)
	fmt.Fprintf(b, "REVOKE ALL ON ALL SEQUENCES IN SCHEMA %s FROM %s;\n", list, role)
	fmt.Fprintf(b, "REVOKE USAGE ON SCHEMA %s FROM %s;\n", list, role)
}

// schemaIdents lists the plan's schemas, quoted, for REVOKE ... IN SCHEMA.
func (p *Plan) schemaIdents() string {
	schemas := make([]string, len(p.Schemas))
	for i, s := range p.Schemas {
		schemas[i] = quoteIdent(s)
	}
	return strings.Join(schemas, ", ")
}

// schemaList is schemaIdents as a string constant, for format() in a DO
// block.
func (p *Plan) schemaList() string { return quoteLiteral(p.schemaIdents()) }

// schemas are the schemas the department has a privilege in.
func (d Department) schemas() []string {
	var out []string
	for _, t := range d.Tables {
		if !slices.Contains(out, t.Schema) {
			out = append(out, t.Schema)
		}
	}
	return out
}

// Apply runs the plan's SQL on conn in one transaction.
func (p *Plan) Apply(ctx context.Context, conn *pgx.Conn) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, p.SQL()); err != nil {
		return fmt.Errorf("apply grants: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit grants: %w", err)
	}
	return nil
}

func columnList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quoteIdent(c)
	}
	return strings.Join(q, ", ")
}

func sortedKeys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
