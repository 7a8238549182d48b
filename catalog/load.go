package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// visibleSchema leaves out TOAST storage and temporary schemas: their
// contents are reachable only through the owning relation or session, never
// by a name another session could write.
const visibleSchema = `n.nspname <> 'pg_toast'
	AND NOT starts_with(n.nspname, 'pg_temp_')
	AND NOT starts_with(n.nspname, 'pg_toast_temp_')`

const schemasQuery = `SELECT n.nspname::text FROM pg_catalog.pg_namespace n WHERE ` + visibleSchema

// relationsQuery reads pg_catalog rather than information_schema, which shows
// a role only the columns it has privileges on; the analysis must know every
// column, whoever runs the loader.
const relationsQuery = `
SELECT n.nspname::text, c.relname::text, c.relkind::text,
	ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum),
	ARRAY(SELECT a.atttypid::int8 FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum),
	ARRAY(SELECT pn.nspname::text FROM pg_catalog.pg_inherits i
		JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
		JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
		WHERE i.inhrelid = c.oid ORDER BY i.inhseqno),
	ARRAY(SELECT p.relname::text FROM pg_catalog.pg_inherits i
		JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
		WHERE i.inhrelid = c.oid ORDER BY i.inhseqno),
	CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) ELSE '' END,
	c.oid::int8,
	CASE WHEN c.relkind IN ('v', 'm') THEN ARRAY(` + viewDependsOn + `) ELSE '{}' END,
	c.reltype::int8, coalesce((SELECT t.typarray FROM pg_catalog.pg_type t WHERE t.oid = c.reltype), 0)::int8
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ` + visibleSchema

// viewDependsOn lists the relations the rules of the view c.oid read,
// other than the view itself, by OID.
const viewDependsOn = `SELECT DISTINCT d.refobjid::int8 FROM pg_catalog.pg_depend d
		JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
		WHERE r.ev_class = c.oid AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
		AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> c.oid
		ORDER BY 1`

// extensionOf names the extension an object of the catalog given by its
// regclass belongs to, from pg_depend's extension dependencies.
const extensionOf = `(SELECT e.extname::text FROM pg_catalog.pg_depend d
		JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
		WHERE d.classid = '%s'::regclass AND d.objid = %s AND d.deptype = 'e'
		AND d.refclassid = 'pg_extension'::regclass LIMIT 1)`

// functionsQuery collapses overloads; their extension is kept only when all
// of them belong to the same one.
var functionsQuery = `
SELECT n.nspname::text, p.proname::text,
	string_agg(DISTINCT l.lanname::text, ',' ORDER BY l.lanname::text),
	CASE WHEN count(*) = count(x.ext) AND count(DISTINCT x.ext) = 1 THEN min(x.ext) ELSE '' END
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
CROSS JOIN LATERAL (SELECT ` + fmt.Sprintf(extensionOf, "pg_proc", "p.oid") + ` AS ext) x
WHERE ` + visibleSchema + `
GROUP BY 1, 2`

// operatorsQuery reads pg_catalog's operators too: where one matches the
// operand types exactly, PostgreSQL picks it before any other.
var operatorsQuery = `
SELECT n.nspname::text, o.oprname::text, o.oprleft::int8, o.oprright::int8,
	coalesce(` + fmt.Sprintf(extensionOf, "pg_operator", "o.oid") + `, '')
FROM pg_catalog.pg_operator o
JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
WHERE ` + visibleSchema + `
ORDER BY 1, 2, 3, 4`

// signaturesQuery reads the overloads of functions outside the built-in
// schemas, which calls are resolved against by argument types.
const signaturesQuery = `
SELECT n.nspname::text, p.proname::text, p.proargtypes::oid[]::int8[], p.pronargdefaults::int, p.provariadic <> 0
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND ` + visibleSchema + `
ORDER BY 1, 2, 3`

// typesQuery reads every type, built-ins included: operator resolution
// needs to know which are pseudo-types, domains and arrays.
const typesQuery = `
SELECT t.oid::int8, n.nspname::text, t.typname::text, t.typtype::text, t.typcategory::text
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname NOT LIKE 'pg\_toast%'`

const castsQuery = `
SELECT castsource::int8, casttarget::int8 FROM pg_catalog.pg_cast WHERE castcontext = 'i'`

// settingsQuery reads the per-database and per-role configuration a new
// session starts with; setrole 0 means every role, setdatabase 0 every
// database.
const settingsQuery = `
SELECT s.setdatabase <> 0, s.setrole = 0, COALESCE(r.rolname::text, ''), cfg
FROM pg_catalog.pg_db_role_setting s
LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
CROSS JOIN LATERAL unnest(s.setconfig) AS cfg
WHERE s.setdatabase = 0 OR s.setdatabase =
	(SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())`

// Load reads a complete Snapshot of the database conn is connected to. It
// needs no privileges beyond those every role has on pg_catalog. It sends
// one pipelined batch, one query per kind of object inside a read-only
// repeatable-read transaction (so all of them see the same catalog state),
// then ends the transaction; pgx adds a round trip to prepare the queries
// unless conn runs in QueryExecModeExec, as Dialer's connections do.
func Load(ctx context.Context, conn *pgx.Conn) (*Snapshot, error) {
	c := Contents{Complete: true}
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	// pg_get_viewdef qualifies every name not visible on the path, so with
	// pg_catalog alone the definitions resolve the same for any session.
	b.Queue("SET LOCAL search_path = pg_catalog")
	b.Queue("SELECT pg_catalog.current_database()::text").QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&c.Database); err != nil {
			return fmt.Errorf("database name: %w", err)
		}
		return nil
	})
	b.Queue(schemasQuery).Query(collect("schemas", func(rows pgx.Rows) error {
		var name string
		err := rows.Scan(&name)
		c.Schemas = append(c.Schemas, name)
		return err
	}))
	b.Queue(relationsQuery).Query(collect("relations", func(rows pgx.Rows) error {
		r, err := scanRelation(rows)
		c.Relations = append(c.Relations, r)
		return err
	}))
	b.Queue(functionsQuery).Query(collect("functions", func(rows pgx.Rows) error {
		var f Function
		err := rows.Scan(&f.Schema, &f.Name, &f.Language, &f.Extension)
		f.BuiltIn = isBuiltInSchema(f.Schema)
		c.Functions = append(c.Functions, f)
		return err
	}))
	b.Queue(operatorsQuery).Query(collect("operators", func(rows pgx.Rows) error {
		var op Operator
		var left, right int64
		err := rows.Scan(&op.Schema, &op.Name, &left, &right, &op.Extension)
		op.Left, op.Right = uint32(left), uint32(right)
		c.Operators = append(c.Operators, op)
		return err
	}))
	signatures := map[QualifiedName][]Signature{}
	b.Queue(signaturesQuery).Query(collect("signatures", func(rows pgx.Rows) error {
		var q QualifiedName
		var args []int64
		var sig Signature
		err := rows.Scan(&q.Schema, &q.Name, &args, &sig.Defaults, &sig.Variadic)
		for _, a := range args {
			sig.Args = append(sig.Args, uint32(a))
		}
		signatures[q] = append(signatures[q], sig)
		return err
	}))
	b.Queue(typesQuery).Query(collect("types", func(rows pgx.Rows) error {
		var t Type
		var oid int64
		var kind, category string
		err := rows.Scan(&oid, &t.Schema, &t.Name, &kind, &category)
		t.OID = uint32(oid)
		if len(kind) == 1 && len(category) == 1 {
			t.Kind, t.Category = kind[0], category[0]
		}
		c.Types = append(c.Types, t)
		return err
	}))
	b.Queue(castsQuery).Query(collect("casts", func(rows pgx.Rows) error {
		var src, dst int64
		err := rows.Scan(&src, &dst)
		c.ImplicitCasts = append(c.ImplicitCasts, [2]uint32{uint32(src), uint32(dst)})
		return err
	}))
	paths := pathSettings{}
	b.Queue(settingsQuery).Query(collect("search paths", paths.scan))
	if err := runBatch(ctx, conn, b); err != nil {
		return nil, err
	}
	c.SearchPaths = paths.resolve()
	for i := range c.Functions {
		c.Functions[i].Overloads = signatures[QualifiedName{c.Functions[i].Schema, c.Functions[i].Name}]
	}
	return New(c), nil
}

// runBatch sends b and ends the read-only transaction it began; there is
// nothing to commit.
func runBatch(ctx context.Context, conn *pgx.Conn, b *pgx.Batch) error {
	br := conn.SendBatch(ctx, b)
	tx := br.Tx()
	err := br.Close()
	if rbErr := tx.Rollback(ctx); rbErr != nil && !errors.Is(rbErr, pgx.ErrTxClosed) && err == nil {
		err = fmt.Errorf("end transaction: %w", rbErr)
	}
	if err != nil {
		return fmt.Errorf("load catalog: %w", err)
	}
	return nil
}

// collect turns a per-row scan into a batch callback that names what failed.
func collect(what string, scan func(pgx.Rows) error) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		for rows.Next() {
			if err := scan(rows); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
}

func scanRelation(rows pgx.Rows) (Relation, error) {
	var (
		r                    Relation
		kind                 string
		parentSchemas, names []string
	)
	var types, dependsOn []int64
	var oid, rowType, arrayType int64
	err := rows.Scan(&r.Schema, &r.Name, &kind, &r.Columns, &types, &parentSchemas, &names, &r.ViewDefinition, &oid, &dependsOn,
		&rowType, &arrayType)
	if err != nil {
		return r, err
	}
	r.OID, r.rowType, r.arrayType = uint32(oid), uint32(rowType), uint32(arrayType)
	for _, d := range dependsOn {
		r.DependsOn = append(r.DependsOn, uint32(d))
	}
	for _, t := range types {
		r.ColumnTypes = append(r.ColumnTypes, uint32(t))
	}
	if len(kind) != 1 || len(parentSchemas) != len(names) || len(types) != len(r.Columns) {
		return r, fmt.Errorf("unexpected row for %s.%s", r.Schema, r.Name)
	}
	r.Kind = RelKind(kind[0])
	for i := range names {
		r.Parents = append(r.Parents, QualifiedName{parentSchemas[i], names[i]})
	}
	if r.Kind == View || r.Kind == MaterializedView {
		r.DefinitionSearchPath = []string{"pg_catalog"}
	}
	return r, nil
}

func isBuiltInSchema(schema string) bool {
	return schema == "pg_catalog" || schema == "information_schema"
}

// pathSettings gathers configured search_path values. PostgreSQL applies a
// setting for this database over one for all databases, and a role's over
// the one for every role (key role ""), in that order of strength: role in
// this database, role anywhere, this database, everywhere.
type pathSettings map[pathKey][]string

type pathKey struct {
	role  string
	perDB bool
}

func (p pathSettings) scan(rows pgx.Rows) error {
	var (
		perDB, allRoles bool
		role, cfg       string
	)
	if err := rows.Scan(&perDB, &allRoles, &role, &cfg); err != nil {
		return err
	}
	name, value, ok := strings.Cut(cfg, "=")
	if !ok || !strings.EqualFold(name, "search_path") || (!allRoles && role == "") {
		return nil
	}
	names, ok := ParseSearchPath(value)
	if !ok {
		return fmt.Errorf("role %q: malformed search_path %q", role, value)
	}
	p[pathKey{role, perDB}] = names
	return nil
}

// resolve returns, per role, the setting that wins for a session.
func (p pathSettings) resolve() map[string][]string {
	out := map[string][]string{}
	for key, names := range p {
		if _, stronger := p[pathKey{key.role, true}]; !key.perDB && stronger {
			continue
		}
		out[key.role] = names
	}
	return out
}
