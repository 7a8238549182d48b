package catalog

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgguard/pgguard/internal/sqldepth"
)

// FromDDL builds a Snapshot of database from a schema file, such as the
// output of pg_dump --schema-only, by parsing it with PostgreSQL's own
// parser and replaying the statements that shape names:
//
//   - CREATE SCHEMA (with its elements), CREATE TABLE (columns, LIKE,
//     INHERITS, PARTITION OF), CREATE FOREIGN TABLE, CREATE TABLE AS and
//     SELECT INTO, CREATE [MATERIALIZED] VIEW;
//   - ALTER TABLE ADD/DROP COLUMN, ATTACH/DETACH PARTITION, [NO] INHERIT,
//     RENAME (column, relation, schema), SET SCHEMA, DROP TABLE/VIEW/SCHEMA;
//   - CREATE FUNCTION/PROCEDURE/AGGREGATE, CREATE OPERATOR;
//   - SET search_path and pg_dump's set_config('search_path', ...), which
//     decide where unqualified names go (public by default); ALTER DATABASE
//     and ALTER ROLE ... SET search_path, which become the snapshot's
//     configured paths when they concern database (any, if it is empty).
//
// Other statements (data, grants, indexes, comments, ...) are skipped, and
// so are psql backslash commands. Errors name the line of the statement
// that caused them. The snapshot is not Complete: it knows nothing the file
// does not declare, built-ins included.
func FromDDL(database, sql string) (*Snapshot, error) {
	sql = blankMetaCommands(sql)
	if sqldepth.TooDeep(sql) {
		return nil, fmt.Errorf("a statement nests more than %d levels deep", sqldepth.Limit())
	}
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil, parseError(sql, err)
	}
	d := newDDL(database, tree.GetVersion())
	for _, raw := range tree.GetStmts() {
		st := textOf(sql, raw, d.version)
		if err := d.statement(raw.GetStmt(), st); err != nil {
			return nil, fmt.Errorf("line %d: %w", st.line(), err)
		}
	}
	return New(d.contents()), nil
}

// ddl is the schema state while a file is replayed.
type ddl struct {
	database string
	version  int32    // of the parser, for deparsing
	path     []string // the session search_path at this point in the file
	schemas  map[string]bool
	rels     map[QualifiedName]*ddlRel
	funcs    map[QualifiedName]*Function
	ops      map[QualifiedName]bool
	settings pathSettings
}

func newDDL(database string, version int32) *ddl {
	return &ddl{
		database: database,
		version:  version,
		path:     defaultSearchPath(),
		schemas:  map[string]bool{"public": true},
		rels:     map[QualifiedName]*ddlRel{},
		funcs:    map[QualifiedName]*Function{},
		ops:      map[QualifiedName]bool{},
		settings: pathSettings{},
	}
}

func (d *ddl) contents() Contents {
	c := Contents{Database: d.database, SearchPaths: d.settings.resolve()}
	for name := range d.schemas {
		c.Schemas = append(c.Schemas, name)
	}
	for _, r := range d.rels {
		c.Relations = append(c.Relations, r.snapshot())
	}
	for _, f := range d.funcs {
		c.Functions = append(c.Functions, *f)
	}
	for op := range d.ops {
		c.Operators = append(c.Operators, Operator{Schema: op.Schema, Name: op.Name})
	}
	return c
}

// statement replays one statement; st is its text, empty for an element of
// CREATE SCHEMA.
func (d *ddl) statement(n *pg_query.Node, st stmtText) error {
	switch n := n.GetNode().(type) {
	case *pg_query.Node_CreateSchemaStmt:
		return d.createSchema(n.CreateSchemaStmt)
	case *pg_query.Node_CreateStmt:
		return d.createTable(n.CreateStmt, Table)
	case *pg_query.Node_CreateForeignTableStmt:
		return d.createTable(n.CreateForeignTableStmt.GetBaseStmt(), ForeignTable)
	case *pg_query.Node_CreateTableAsStmt:
		return d.createTableAs(n.CreateTableAsStmt, st)
	case *pg_query.Node_ViewStmt:
		return d.createView(n.ViewStmt, st)
	case *pg_query.Node_SelectStmt:
		return d.selectStatement(n.SelectStmt)
	case *pg_query.Node_AlterTableStmt:
		return d.alterTable(n.AlterTableStmt)
	case *pg_query.Node_RenameStmt:
		return d.rename(n.RenameStmt)
	case *pg_query.Node_AlterObjectSchemaStmt:
		return d.setSchema(n.AlterObjectSchemaStmt)
	case *pg_query.Node_DropStmt:
		return d.drop(n.DropStmt)
	case *pg_query.Node_CreateFunctionStmt:
		return d.createFunction(n.CreateFunctionStmt)
	case *pg_query.Node_DefineStmt:
		return d.define(n.DefineStmt)
	case *pg_query.Node_VariableSetStmt:
		return d.setSessionPath(n.VariableSetStmt)
	case *pg_query.Node_AlterDatabaseSetStmt:
		return d.alterDatabaseSet(n.AlterDatabaseSetStmt)
	case *pg_query.Node_AlterRoleSetStmt:
		return d.alterRoleSet(n.AlterRoleSetStmt)
	}
	return nil
}

func (d *ddl) createSchema(cs *pg_query.CreateSchemaStmt) error {
	name := cs.GetSchemaname()
	if name == "" {
		name = cs.GetAuthrole().GetRolename()
	}
	if name == "" {
		return errors.New("CREATE SCHEMA: no name")
	}
	// A repeated CREATE SCHEMA changes nothing here, so it is not worth
	// refusing a file for.
	d.schemas[name] = true
	// PostgreSQL creates the elements with the new schema first on the path.
	saved := d.path
	d.path = append([]string{name}, saved...)
	defer func() { d.path = saved }()
	for _, elt := range cs.GetSchemaElts() {
		if err := d.statement(elt, stmtText{version: d.version}); err != nil {
			return err
		}
	}
	return nil
}

// creationSchema is where an unqualified new object goes: the first schema
// on the path that exists, as in PostgreSQL; failing that the first one
// named, since a partial file may rely on schemas it does not create.
func (d *ddl) creationSchema() (string, error) {
	for _, s := range d.path {
		if d.schemas[s] && !isPseudoSchema(s) {
			return s, nil
		}
	}
	for _, s := range d.path {
		if !isPseudoSchema(s) {
			return s, nil
		}
	}
	return "", errors.New("no schema has been selected to create in (search_path is empty)")
}

// isPseudoSchema reports path entries that name no fixed schema.
func isPseudoSchema(s string) bool { return s == "$user" || s == "pg_temp" || s == "" }

// newName qualifies the name of an object being created.
func (d *ddl) newName(schema, name string) (QualifiedName, error) {
	if schema == "" {
		var err error
		if schema, err = d.creationSchema(); err != nil {
			return QualifiedName{}, err
		}
	}
	d.schemas[schema] = true
	return QualifiedName{schema, name}, nil
}

// objectName qualifies a function or operator name given as a list.
func (d *ddl) objectName(parts []*pg_query.Node) (QualifiedName, error) {
	names := stringList(parts)
	switch len(names) {
	case 1:
		return d.newName("", names[0])
	case 2, 3:
		return d.newName(names[len(names)-2], names[len(names)-1])
	}
	return QualifiedName{}, fmt.Errorf("improper qualified name %q", strings.Join(names, "."))
}

// stringList reads a list of String nodes, as names and aliases come.
func stringList(nodes []*pg_query.Node) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.GetString_().GetSval())
	}
	return out
}

func (d *ddl) createFunction(fs *pg_query.CreateFunctionStmt) error {
	q, err := d.objectName(fs.GetFuncname())
	if err != nil {
		return fmt.Errorf("CREATE FUNCTION: %w", err)
	}
	lang := ""
	for _, opt := range fs.GetOptions() {
		if e := opt.GetDefElem(); e.GetDefname() == "language" {
			lang = e.GetArg().GetString_().GetSval()
		}
	}
	if lang == "" && fs.GetSqlBody() != nil {
		lang = "sql"
	}
	if lang == "" {
		return fmt.Errorf("CREATE FUNCTION %s: no LANGUAGE", q)
	}
	d.addFunction(q, lang)
	return nil
}

// addFunction records an overload, merging its language with the others'.
func (d *ddl) addFunction(q QualifiedName, lang string) {
	f := d.funcs[q]
	if f == nil {
		d.funcs[q] = &Function{Schema: q.Schema, Name: q.Name, Language: lang, BuiltIn: isBuiltInSchema(q.Schema)}
		return
	}
	langs := strings.Split(f.Language, ",")
	if !slices.Contains(langs, lang) {
		langs = append(langs, lang)
		sort.Strings(langs)
		f.Language = strings.Join(langs, ",")
	}
}

// define handles CREATE OPERATOR and CREATE AGGREGATE; an aggregate is a
// function in pg_proc, written in "internal" like every aggregate.
func (d *ddl) define(ds *pg_query.DefineStmt) error {
	switch ds.GetKind() {
	case pg_query.ObjectType_OBJECT_OPERATOR:
		q, err := d.objectName(ds.GetDefnames())
		if err != nil {
			return fmt.Errorf("CREATE OPERATOR: %w", err)
		}
		if q.Schema != "pg_catalog" {
			d.ops[q] = true
		}
	case pg_query.ObjectType_OBJECT_AGGREGATE:
		q, err := d.objectName(ds.GetDefnames())
		if err != nil {
			return fmt.Errorf("CREATE AGGREGATE: %w", err)
		}
		d.addFunction(q, "internal")
	}
	return nil
}

// setSessionPath follows SET search_path, which decides where the
// following unqualified names go.
func (d *ddl) setSessionPath(vs *pg_query.VariableSetStmt) error {
	if !strings.EqualFold(vs.GetName(), "search_path") {
		return nil
	}
	switch vs.GetKind() {
	case pg_query.VariableSetKind_VAR_SET_VALUE:
		d.path = setValue(vs)
	case pg_query.VariableSetKind_VAR_SET_DEFAULT, pg_query.VariableSetKind_VAR_RESET:
		d.path = defaultSearchPath()
	}
	return nil
}

// setValue reads the names of SET search_path = a, "B", 'c d'. Each item is
// one name, even a quoted string holding commas, as PostgreSQL reads it.
func setValue(vs *pg_query.VariableSetStmt) []string {
	names := []string{}
	for _, arg := range vs.GetArgs() {
		if name := arg.GetAConst().GetSval().GetSval(); name != "" {
			names = append(names, name)
		}
	}
	return names
}

// selectStatement handles SELECT ... INTO, which creates a table, and
// the set_config call on search_path that opens pg_dump's output.
func (d *ddl) selectStatement(s *pg_query.SelectStmt) error {
	if into := s.GetIntoClause(); into != nil {
		return d.createFromQuery(into, &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: s}},
			Table, stmtText{}, false)
	}
	for _, t := range s.GetTargetList() {
		call := t.GetResTarget().GetVal().GetFuncCall()
		names := stringList(call.GetFuncname())
		args := call.GetArgs()
		if len(names) == 0 || names[len(names)-1] != "set_config" || len(args) != 3 {
			continue
		}
		setting := args[0].GetAConst().GetSval()
		value := args[1].GetAConst().GetSval()
		if setting == nil || value == nil || !strings.EqualFold(setting.GetSval(), "search_path") {
			continue
		}
		path, ok := ParseSearchPath(value.GetSval())
		if !ok {
			return fmt.Errorf("set_config: malformed search_path %q", value.GetSval())
		}
		d.path = path
	}
	return nil
}

// alterDatabaseSet records ALTER DATABASE this SET search_path.
func (d *ddl) alterDatabaseSet(s *pg_query.AlterDatabaseSetStmt) error {
	if d.database != "" && s.GetDbname() != d.database {
		return nil
	}
	d.configure(pathKey{role: "", perDB: true}, s.GetSetstmt())
	return nil
}

// alterRoleSet records ALTER ROLE r|ALL [IN DATABASE this] SET search_path.
func (d *ddl) alterRoleSet(s *pg_query.AlterRoleSetStmt) error {
	role := ""
	if spec := s.GetRole(); spec != nil {
		if spec.GetRoletype() != pg_query.RoleSpecType_ROLESPEC_CSTRING {
			return nil // CURRENT_USER and the like: unknown who that is here
		}
		role = spec.GetRolename()
	}
	db := s.GetDatabase()
	if db != "" && d.database != "" && db != d.database {
		return nil
	}
	d.configure(pathKey{role: role, perDB: db != ""}, s.GetSetstmt())
	return nil
}

func (d *ddl) configure(key pathKey, vs *pg_query.VariableSetStmt) {
	if !strings.EqualFold(vs.GetName(), "search_path") {
		return
	}
	switch vs.GetKind() {
	case pg_query.VariableSetKind_VAR_SET_VALUE:
		d.settings[key] = setValue(vs)
	case pg_query.VariableSetKind_VAR_SET_DEFAULT, pg_query.VariableSetKind_VAR_RESET:
		delete(d.settings, key)
	}
}
