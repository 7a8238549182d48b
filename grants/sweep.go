package grants

import (
	"fmt"
	"slices"
	"strings"
)

// sweep takes back what earlier plans gave and this one does not. The
// roles whose names start with the plan's prefixes are pgguard's: every
// membership in one of them that the plan does not grant is revoked (a
// login the policy no longer names, a department or purpose whose rules
// are gone, a role granted by hand to a login outside the policy), as is
// the ADMIN OPTION on the memberships it does grant (with which a login
// could pass its role on) and every membership of such a role in another
// (the plan's roles hold privileges of their own only). A role of the
// prefixes the plan no longer has loses every privilege in the plan's
// schemas, as the plan's own roles do before their grants; the role
// itself is left, empty, since other databases of the cluster may still
// use it. A user loses its memberships in roles outside the plan through
// which it could use privileges in the plan's schemas: the policy is
// what its logins may use there. Default privileges that would give
// relations created later to PUBLIC, the users or the prefixes' roles are
// revoked, and a role that default privileges name counts as reaching
// privileges.
func (p *Plan) sweep(b *strings.Builder) {
	var roles, planRoles, planMembers []string
	for _, d := range p.Departments {
		roles = append(roles, d.Role)
	}
	for _, pr := range p.Purposes {
		roles = append(roles, pr.Role)
	}
	for _, user := range sortedKeys(p.Users) {
		for _, d := range p.Departments {
			if slices.Contains(p.Users[user], d.Name) {
				planRoles, planMembers = append(planRoles, d.Role), append(planMembers, user)
			}
		}
		for _, role := range p.userPurposes[user] {
			planRoles, planMembers = append(planRoles, role), append(planMembers, user)
		}
	}
	ours := func(col string) string {
		var or []string
		// Department roles keep the prefix as given, the others lower it.
		prefixes := slices.Compact([]string{p.rolePrefix, strings.ToLower(p.rolePrefix), strings.ToLower(p.purposePrefix)})
		for _, prefix := range prefixes {
			or = append(or, "pg_catalog.starts_with("+col+", "+quoteLiteral(prefix)+")")
		}
		return "(" + strings.Join(or, " OR ") + ")"
	}
	role, member := ours("g.rolname"), ours("m.rolname")
	fmt.Fprintf(b, "\n-- roles of earlier plans, and memberships the plan does not grant\n")
	fmt.Fprintf(b, "DO $pgguard$\nDECLARE r record;\nBEGIN\n")
	fmt.Fprintf(b, `	FOR r IN SELECT g.rolname AS role, m.rolname AS member, a.admin_option,
			(g.rolname, m.rolname) IN (SELECT * FROM unnest(%s::text[], %s::text[])) AS planned
		FROM pg_catalog.pg_auth_members a
		JOIN pg_catalog.pg_roles g ON g.oid = a.roleid
		JOIN pg_catalog.pg_roles m ON m.oid = a.member
		WHERE %s OR %s
	LOOP
		IF NOT r.planned THEN
			EXECUTE pg_catalog.format('REVOKE %%I FROM %%I', r.role, r.member);
		ELSIF r.admin_option THEN
			EXECUTE pg_catalog.format('REVOKE ADMIN OPTION FOR %%I FROM %%I', r.role, r.member);
		END IF;
	END LOOP;
`, textArray(planRoles), textArray(planMembers), role, member)
	// A user's membership in a role outside the plan through which it
	// reaches privileges in the plan's schemas: a role that owns a
	// relation there or holds a privilege on one (another login's
	// department role included), a superuser, pg_read_all_data or
	// pg_write_all_data, or one it may become from there.
	if len(p.Schemas) > 0 {
		fmt.Fprintf(b, `	FOR r IN
		WITH rel AS (
			SELECT c.oid, c.relowner, c.relacl
			FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = ANY (%s::text[])
		), privileged AS (
			SELECT relowner AS oid FROM rel
			UNION SELECT e.grantee FROM rel, LATERAL pg_catalog.aclexplode(rel.relacl) e
			UNION SELECT e.grantee FROM rel JOIN pg_catalog.pg_attribute a ON a.attrelid = rel.oid, LATERAL pg_catalog.aclexplode(a.attacl) e
			UNION SELECT oid FROM pg_catalog.pg_roles WHERE rolsuper OR rolname IN ('pg_read_all_data', 'pg_write_all_data')
			UNION SELECT e.grantee FROM pg_catalog.pg_default_acl d
				LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace, LATERAL pg_catalog.aclexplode(d.defaclacl) e
			WHERE d.defaclobjtype IN ('r', 'S') AND (d.defaclnamespace = 0 OR n.nspname = ANY (%s::text[]))
		)
		SELECT g.rolname AS role, m.rolname AS member
		FROM pg_catalog.pg_auth_members a
		JOIN pg_catalog.pg_roles g ON g.oid = a.roleid
		JOIN pg_catalog.pg_roles m ON m.oid = a.member
		WHERE m.rolname = ANY (%s::text[]) AND NOT %s
		  AND EXISTS (SELECT FROM privileged x JOIN pg_catalog.pg_roles xr ON xr.oid = x.oid
			WHERE pg_catalog.pg_has_role(g.oid, x.oid, 'MEMBER'))
	LOOP
		EXECUTE pg_catalog.format('REVOKE %%I FROM %%I', r.role, r.member);
		RAISE NOTICE 'pgguard grants: %% is no longer a member of %%, through which it reached privileges the policy does not give', r.member, r.role;
	END LOOP;
`, textArray(p.Schemas), textArray(p.Schemas), textArray(sortedKeys(p.Users)), role)
		// Default privileges that would give a table or sequence created
		// later to PUBLIC, a user or a role of the prefixes, in the plan's
		// schemas or in all: each opens the new relation before the grants
		// run again.
		fmt.Fprintf(b, `	FOR r IN SELECT d.defaclrole::pg_catalog.regrole::text AS owner, n.nspname AS schema,
			CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' ELSE 'SEQUENCES' END AS kind,
			CASE WHEN e.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(g.rolname) END AS grantee
		FROM pg_catalog.pg_default_acl d
		LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace
		CROSS JOIN LATERAL pg_catalog.aclexplode(d.defaclacl) e
		LEFT JOIN pg_catalog.pg_roles g ON g.oid = e.grantee
		WHERE d.defaclobjtype IN ('r', 'S') AND (d.defaclnamespace = 0 OR n.nspname = ANY (%s::text[]))
		  AND (e.grantee = 0 OR g.rolname = ANY (%s::text[]) OR %s)
	LOOP
		EXECUTE pg_catalog.format('ALTER DEFAULT PRIVILEGES FOR ROLE %%s %%s REVOKE ALL ON %%s FROM %%s', r.owner,
			CASE WHEN r.schema IS NULL THEN '' ELSE 'IN SCHEMA ' || pg_catalog.quote_ident(r.schema) END, r.kind, r.grantee);
	END LOOP;
`, textArray(p.Schemas), textArray(sortedKeys(p.Users)), role)
	}
	if len(p.Schemas) > 0 {
		fmt.Fprintf(b, `	FOR r IN SELECT g.rolname AS role FROM pg_catalog.pg_roles g
		WHERE %s AND g.rolname <> ALL (%s::text[])
	LOOP
		EXECUTE pg_catalog.format('REVOKE ALL ON ALL TABLES IN SCHEMA %%s FROM %%I', %s, r.role);
		EXECUTE pg_catalog.format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %%s FROM %%I', %s, r.role);
		EXECUTE pg_catalog.format('REVOKE USAGE ON SCHEMA %%s FROM %%I', %s, r.role);
		EXECUTE pg_catalog.format('REVOKE ALL ON ALL ROUTINES IN SCHEMA %%s FROM %%I', %s, r.role);
	END LOOP;
`, role, textArray(roles), p.schemaList(), p.schemaList(), p.schemaList(), p.schemaList())
	}
	b.WriteString("END $pgguard$;\n")
}

// textArray is an ARRAY constructor of string constants, typed by the
// caller's cast.
func textArray(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = quoteLiteral(s)
	}
	return "ARRAY[" + strings.Join(q, ", ") + "]"
}
