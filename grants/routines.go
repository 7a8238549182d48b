package grants

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
)

// Routines that run with their owner's rights (SECURITY DEFINER) read and
// write whatever their owner may, whatever the caller's column privileges:
// such a routine in the plan's schemas, executable by PUBLIC as every new
// routine is, would let any login around pgguard read what the routine
// reads. pgguard runs a routine outside the built-in schemas only where
// the policy allows it (act execute on function:schema.name, or an
// extension the policy trusts), so EXECUTE on every SECURITY DEFINER
// routine of the plan's schemas is taken from PUBLIC, the plan's roles and
// its users, and given to the roles whose department (and purpose) may
// call it. A routine that runs with the caller's rights is left as it is:
// the column privileges bound what it can read.

// routinesFor lists the routines of snap outside PostgreSQL's own schemas
// that subject may call under one of purposes: "schema.name", sorted.
func routinesFor(pol *authz.Policy, snap *catalog.Snapshot, subject string, purposes []string) []string {
	var out []string
	for _, f := range snap.Functions() {
		if f.BuiltIn || builtinSchema(f.Schema) {
			continue
		}
		if slices.ContainsFunc(purposes, func(p string) bool {
			return pol.FunctionAllowed(subject, p, f.Schema, f.Name) || (f.Extension != "" && pol.ExtensionTrusted(subject, p, f.Extension))
		}) {
			out = append(out, f.Schema+"."+f.Name)
		}
	}
	return out
}

// revokeDefiners writes a DO block that takes EXECUTE on every SECURITY
// DEFINER routine of the plan's schemas from PUBLIC, the users and the
// plan's roles (those that exist yet: a role the plan creates holds
// nothing).
func (p *Plan) revokeDefiners(b *strings.Builder) {
	if len(p.Schemas) == 0 {
		return
	}
	roles := sortedKeys(p.Users)
	for _, d := range p.Departments {
		roles = append(roles, d.Role)
	}
	for _, pr := range p.Purposes {
		roles = append(roles, pr.Role)
	}
	b.WriteString("\n-- routines that run with their owner's rights: EXECUTE only where the policy allows a call\n")
	fmt.Fprintf(b, `DO $pgguard$
DECLARE r record; g text;
BEGIN
	FOR r IN SELECT p.oid::pg_catalog.regprocedure AS f
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		WHERE p.prosecdef AND n.nspname = ANY (%s::text[])
	LOOP
		EXECUTE pg_catalog.format('REVOKE EXECUTE ON ROUTINE %%s FROM PUBLIC', r.f);
		FOR g IN SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY (%s::text[]) LOOP
			EXECUTE pg_catalog.format('REVOKE EXECUTE ON ROUTINE %%s FROM %%I', r.f, g);
		END LOOP;
	END LOOP;
END $pgguard$;
`, textArray(p.Schemas), textArray(roles))
}

// grantDefiners writes a DO block that gives role EXECUTE on the SECURITY
// DEFINER routines among routines.
func (p *Plan) grantDefiners(b *strings.Builder, routines []string, role string) {
	if len(p.Schemas) == 0 || len(routines) == 0 {
		return
	}
	fmt.Fprintf(b, `DO $pgguard$
DECLARE r record;
BEGIN
	FOR r IN SELECT p.oid::pg_catalog.regprocedure AS f
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		WHERE p.prosecdef AND n.nspname = ANY (%s::text[]) AND n.nspname || '.' || p.proname = ANY (%s::text[])
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %%s TO %%I', r.f, %s);
	END LOOP;
END $pgguard$;
`, textArray(p.Schemas), textArray(routines), quoteLiteral(role))
}
