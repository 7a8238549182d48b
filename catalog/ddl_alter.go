package catalog

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

func (d *ddl) alterTable(as *pg_query.AlterTableStmt) error {
	rv := as.GetRelation()
	r, err := d.findOrSkip(rv, as.GetMissingOk())
	if r == nil {
		if err != nil {
			return fmt.Errorf("ALTER TABLE: %w", err)
		}
		return nil
	}
	for _, n := range as.GetCmds() {
		if err := d.alterCmd(r, n.GetAlterTableCmd(), rv.GetInh()); err != nil {
			return fmt.Errorf("ALTER TABLE %s: %w", r.q(), err)
		}
	}
	return nil
}

// alterCmd applies the subcommands that change columns or parents;
// recurse is false under ALTER TABLE ONLY.
func (d *ddl) alterCmd(r *ddlRel, cmd *pg_query.AlterTableCmd, recurse bool) error {
	switch cmd.GetSubtype() {
	case pg_query.AlterTableType_AT_AddColumn, pg_query.AlterTableType_AT_AddColumnToView:
		return d.addColumn(r, cmd.GetDef().GetColumnDef().GetColname(), cmd.GetMissingOk())
	case pg_query.AlterTableType_AT_DropColumn:
		return d.dropColumn(r, cmd.GetName(), cmd.GetMissingOk(), recurse)
	case pg_query.AlterTableType_AT_AttachPartition:
		child, err := d.findVar(cmd.GetDef().GetPartitionCmd().GetName())
		if err != nil {
			return fmt.Errorf("ATTACH PARTITION: %w", err)
		}
		return d.attach(child, r)
	case pg_query.AlterTableType_AT_DetachPartition:
		child, err := d.findVar(cmd.GetDef().GetPartitionCmd().GetName())
		if err != nil {
			return fmt.Errorf("DETACH PARTITION: %w", err)
		}
		return detach(child, r)
	case pg_query.AlterTableType_AT_AddInherit:
		parent, err := d.findVar(cmd.GetDef().GetRangeVar())
		if err != nil {
			return fmt.Errorf("INHERIT: %w", err)
		}
		return d.attach(r, parent)
	case pg_query.AlterTableType_AT_DropInherit:
		parent, err := d.findVar(cmd.GetDef().GetRangeVar())
		if err != nil {
			return fmt.Errorf("NO INHERIT: %w", err)
		}
		return detach(r, parent)
	}
	return nil
}

// addColumn adds a column to r and, as PostgreSQL always does, to every
// relation below it.
func (d *ddl) addColumn(r *ddlRel, name string, ifNotExists bool) error {
	if name == "" {
		return errors.New("ADD COLUMN without a name")
	}
	if r.has(name) {
		if ifNotExists {
			return nil
		}
		return fmt.Errorf("column %s already exists", name)
	}
	r.addColumn(name, true)
	for _, c := range d.descendants(r.q()) {
		c.addColumn(name, false)
	}
	return nil
}

func (d *ddl) dropColumn(r *ddlRel, name string, ifExists, recurse bool) error {
	if !r.has(name) {
		if ifExists {
			return nil
		}
		return fmt.Errorf("column %s does not exist", name)
	}
	r.removeColumn(name)
	d.dropInherited(r.q(), name, recurse, map[QualifiedName]bool{r.q(): true})
	return nil
}

// dropInherited follows a dropped column down: an heir loses it unless it
// declares it itself or still inherits it from another parent; under ONLY
// the heirs keep it as their own.
func (d *ddl) dropInherited(parent QualifiedName, name string, recurse bool, seen map[QualifiedName]bool) {
	for _, c := range d.children(parent) {
		if seen[c.q()] || !c.has(name) {
			continue
		}
		seen[c.q()] = true
		switch {
		case !recurse:
			c.local[name] = true
		case c.local[name] || d.inheritsElsewhere(c, parent, name):
		default:
			c.removeColumn(name)
			d.dropInherited(c.q(), name, true, seen)
		}
	}
}

func (d *ddl) inheritsElsewhere(c *ddlRel, except QualifiedName, name string) bool {
	for _, p := range c.Parents {
		if pr := d.rels[p]; p != except && pr != nil && pr.has(name) {
			return true
		}
	}
	return false
}

// attach makes child inherit from (or be a partition of) parent, which
// PostgreSQL allows only when child already has the parent's columns.
func (d *ddl) attach(child, parent *ddlRel) error {
	if child == parent || slices.Contains(d.descendants(child.q()), parent) {
		return fmt.Errorf("circular inheritance between %s and %s", child.q(), parent.q())
	}
	if !parent.isTable() {
		return fmt.Errorf("cannot inherit from %s: not a table", parent.q())
	}
	if slices.Contains(child.Parents, parent.q()) {
		return fmt.Errorf("%s already inherits from %s", child.q(), parent.q())
	}
	for _, col := range parent.Columns {
		if !child.has(col) {
			return fmt.Errorf("%s lacks column %s of %s", child.q(), col, parent.q())
		}
	}
	if parent.Kind == PartitionedTable {
		if len(child.Columns) != len(parent.Columns) {
			return fmt.Errorf("partition %s has columns %s lacks", child.q(), parent.q())
		}
		clear(child.local) // a partition's columns all come from its parent
	}
	child.Parents = append(child.Parents, parent.q())
	return nil
}

// detach ends inheritance; the columns stay, now the child's own.
func detach(child, parent *ddlRel) error {
	i := slices.Index(child.Parents, parent.q())
	if i < 0 {
		return fmt.Errorf("%s does not inherit from %s", child.q(), parent.q())
	}
	child.Parents = slices.Delete(child.Parents, i, i+1)
	for _, col := range child.Columns {
		child.local[col] = true
	}
	return nil
}

func (d *ddl) rename(rs *pg_query.RenameStmt) error {
	switch rs.GetRenameType() {
	case pg_query.ObjectType_OBJECT_COLUMN:
		return d.renameColumn(rs)
	case pg_query.ObjectType_OBJECT_TABLE, pg_query.ObjectType_OBJECT_VIEW,
		pg_query.ObjectType_OBJECT_MATVIEW, pg_query.ObjectType_OBJECT_FOREIGN_TABLE:
		r, err := d.findOrSkip(rs.GetRelation(), rs.GetMissingOk())
		if r == nil {
			return wrapIf("RENAME", err)
		}
		return wrapIf("RENAME", d.move(r, QualifiedName{r.Schema, rs.GetNewname()}))
	case pg_query.ObjectType_OBJECT_SCHEMA:
		return wrapIf("ALTER SCHEMA RENAME", d.renameSchema(rs.GetSubname(), rs.GetNewname()))
	}
	return nil
}

func wrapIf(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// renameColumn renames a column in the relation and, unless ONLY, in every
// relation that inherits it.
func (d *ddl) renameColumn(rs *pg_query.RenameStmt) error {
	r, err := d.findOrSkip(rs.GetRelation(), rs.GetMissingOk())
	if r == nil {
		return wrapIf("RENAME COLUMN", err)
	}
	from, to := rs.GetSubname(), rs.GetNewname()
	switch {
	case !r.has(from):
		return fmt.Errorf("RENAME COLUMN: column %s of %s does not exist", from, r.q())
	case r.has(to):
		return fmt.Errorf("RENAME COLUMN: column %s of %s already exists", to, r.q())
	}
	r.renameColumn(from, to)
	if rs.GetRelation().GetInh() {
		for _, c := range d.descendants(r.q()) {
			if c.has(from) && !c.has(to) {
				c.renameColumn(from, to)
			}
		}
	}
	return nil
}

// move renames or re-schemas a relation, keeping its heirs pointing at it.
func (d *ddl) move(r *ddlRel, to QualifiedName) error {
	from := r.q()
	if from == to {
		return nil
	}
	if d.rels[to] != nil {
		return fmt.Errorf("relation %s already exists", to)
	}
	delete(d.rels, from)
	r.Schema, r.Name = to.Schema, to.Name
	d.rels[to] = r
	d.schemas[to.Schema] = true
	for _, o := range d.rels {
		for i, p := range o.Parents {
			if p == from {
				o.Parents[i] = to
			}
		}
	}
	return nil
}

func (d *ddl) renameSchema(from, to string) error {
	if !d.schemas[from] {
		return fmt.Errorf("schema %s is not declared", from)
	}
	if d.schemas[to] {
		return fmt.Errorf("schema %s already exists", to)
	}
	d.schemas[to] = true
	delete(d.schemas, from)
	for _, r := range d.relationsIn(from) {
		if err := d.move(r, QualifiedName{to, r.Name}); err != nil {
			return err
		}
	}
	for q, f := range d.funcs {
		if q.Schema == from {
			delete(d.funcs, q)
			f.Schema = to
			d.funcs[QualifiedName{to, q.Name}] = f
		}
	}
	for q := range d.ops {
		if q.Schema == from {
			delete(d.ops, q)
			d.ops[QualifiedName{to, q.Name}] = true
		}
	}
	return nil
}

func (d *ddl) relationsIn(schema string) []*ddlRel {
	var out []*ddlRel
	for q, r := range d.rels {
		if q.Schema == schema {
			out = append(out, r)
		}
	}
	return out
}

// setSchema handles ALTER TABLE/VIEW ... SET SCHEMA.
func (d *ddl) setSchema(s *pg_query.AlterObjectSchemaStmt) error {
	switch s.GetObjectType() {
	case pg_query.ObjectType_OBJECT_TABLE, pg_query.ObjectType_OBJECT_VIEW,
		pg_query.ObjectType_OBJECT_MATVIEW, pg_query.ObjectType_OBJECT_FOREIGN_TABLE:
	default:
		return nil
	}
	r, err := d.findOrSkip(s.GetRelation(), s.GetMissingOk())
	if r == nil {
		return wrapIf("SET SCHEMA", err)
	}
	return wrapIf("SET SCHEMA", d.move(r, QualifiedName{s.GetNewschema(), r.Name}))
}

// drop handles DROP TABLE/VIEW/MATERIALIZED VIEW/FOREIGN TABLE/SCHEMA.
// CASCADE takes heirs along; views that used a dropped relation stay, and
// their definitions then name something unknown, which analysis refuses.
func (d *ddl) drop(ds *pg_query.DropStmt) error {
	cascade := ds.GetBehavior() == pg_query.DropBehavior_DROP_CASCADE
	switch ds.GetRemoveType() {
	case pg_query.ObjectType_OBJECT_TABLE, pg_query.ObjectType_OBJECT_VIEW,
		pg_query.ObjectType_OBJECT_MATVIEW, pg_query.ObjectType_OBJECT_FOREIGN_TABLE:
		for _, obj := range ds.GetObjects() {
			if err := d.dropRelation(stringList(obj.GetList().GetItems()), ds.GetMissingOk(), cascade); err != nil {
				return fmt.Errorf("DROP: %w", err)
			}
		}
	case pg_query.ObjectType_OBJECT_SCHEMA:
		for _, obj := range ds.GetObjects() {
			if err := d.dropSchema(obj.GetString_().GetSval(), ds.GetMissingOk(), cascade); err != nil {
				return fmt.Errorf("DROP SCHEMA: %w", err)
			}
		}
	}
	return nil
}

func (d *ddl) dropRelation(names []string, ifExists, cascade bool) error {
	var r *ddlRel
	switch len(names) {
	case 1:
		r = d.find("", names[0])
	case 2, 3:
		r = d.find(names[len(names)-2], names[len(names)-1])
	}
	if r == nil {
		if ifExists {
			return nil
		}
		return fmt.Errorf("relation %s is not declared earlier in the file", strings.Join(names, "."))
	}
	heirs := d.descendants(r.q())
	if len(heirs) > 0 && !cascade {
		return fmt.Errorf("other relations inherit from %s (CASCADE would drop them)", r.q())
	}
	for _, h := range append(heirs, r) {
		delete(d.rels, h.q())
	}
	return nil
}

func (d *ddl) dropSchema(name string, ifExists, cascade bool) error {
	if !d.schemas[name] {
		if ifExists {
			return nil
		}
		return fmt.Errorf("schema %s is not declared", name)
	}
	members := d.relationsIn(name)
	if !cascade && (len(members) > 0 || d.hasRoutinesIn(name)) {
		return fmt.Errorf("schema %s is not empty (CASCADE would drop its contents)", name)
	}
	for _, r := range members {
		for _, h := range append(d.descendants(r.q()), r) {
			delete(d.rels, h.q())
		}
	}
	for q := range d.funcs {
		if q.Schema == name {
			delete(d.funcs, q)
		}
	}
	for q := range d.ops {
		if q.Schema == name {
			delete(d.ops, q)
		}
	}
	delete(d.schemas, name)
	return nil
}

func (d *ddl) hasRoutinesIn(schema string) bool {
	for q := range d.funcs {
		if q.Schema == schema {
			return true
		}
	}
	for q := range d.ops {
		if q.Schema == schema {
			return true
		}
	}
	return false
}
