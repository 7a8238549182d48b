package catalog

import (
	"fmt"
	"slices"
	"sort"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// ddlRel is a relation while a DDL file is replayed. local holds the
// columns it declares itself (attislocal in PostgreSQL): those stay when a
// parent drops its column of the same name.
type ddlRel struct {
	Relation
	local map[string]bool
}

func newRel(q QualifiedName, kind RelKind, columns []string) *ddlRel {
	r := &ddlRel{Relation: Relation{Schema: q.Schema, Name: q.Name, Kind: kind}, local: map[string]bool{}}
	for _, c := range columns {
		r.addColumn(c, true)
	}
	return r
}

func (r *ddlRel) q() QualifiedName { return QualifiedName{r.Schema, r.Name} }

// snapshot copies the relation, so the Snapshot shares nothing with the
// replay state.
func (r *ddlRel) snapshot() Relation {
	out := r.Relation
	out.Columns = slices.Clone(r.Columns)
	out.Parents = slices.Clone(r.Parents)
	out.DefinitionSearchPath = slices.Clone(r.DefinitionSearchPath)
	return out
}

func (r *ddlRel) has(col string) bool { return slices.Contains(r.Columns, col) }

// addColumn appends col, or merges it with a column of that name, as
// PostgreSQL merges inherited and declared columns.
func (r *ddlRel) addColumn(col string, local bool) {
	if !r.has(col) {
		r.Columns = append(r.Columns, col)
	}
	if local {
		r.local[col] = true
	}
}

func (r *ddlRel) removeColumn(col string) {
	r.Columns = slices.DeleteFunc(r.Columns, func(c string) bool { return c == col })
	delete(r.local, col)
}

func (r *ddlRel) renameColumn(from, to string) {
	if i := slices.Index(r.Columns, from); i >= 0 {
		r.Columns[i] = to
	}
	if r.local[from] {
		delete(r.local, from)
		r.local[to] = true
	}
}

// isTable reports kinds that can be inherited from.
func (r *ddlRel) isTable() bool {
	return r.Kind == Table || r.Kind == PartitionedTable || r.Kind == ForeignTable
}

// find resolves a relation name as PostgreSQL would at this point of the
// file: qualified as given, unqualified through the search_path.
func (d *ddl) find(schema, name string) *ddlRel {
	if schema != "" {
		return d.rels[QualifiedName{schema, name}]
	}
	for _, s := range d.path {
		if r := d.rels[QualifiedName{s, name}]; r != nil && !isPseudoSchema(s) {
			return r
		}
	}
	return nil
}

// findVar resolves rv and fails when the file has not declared it.
func (d *ddl) findVar(rv *pg_query.RangeVar) (*ddlRel, error) {
	if r := d.find(rv.GetSchemaname(), rv.GetRelname()); r != nil {
		return r, nil
	}
	return nil, notDeclared(rv.GetSchemaname(), rv.GetRelname())
}

// findOrSkip resolves rv; with IF EXISTS a missing relation is no error,
// and both results are nil.
func (d *ddl) findOrSkip(rv *pg_query.RangeVar, missingOK bool) (*ddlRel, error) {
	r, err := d.findVar(rv)
	if err != nil && missingOK {
		return nil, nil
	}
	return r, err
}

func notDeclared(schema, name string) error {
	if schema != "" {
		name = schema + "." + name
	}
	return fmt.Errorf("relation %s is not declared earlier in the file", name)
}

// add registers a new relation.
func (d *ddl) add(r *ddlRel, ifNotExists, replace bool) error {
	if old := d.rels[r.q()]; old != nil {
		switch {
		case ifNotExists:
			return nil
		case !replace || old.Kind != r.Kind:
			return fmt.Errorf("relation %s already exists", r.q())
		}
	}
	d.rels[r.q()] = r
	return nil
}

// children lists the direct heirs and partitions of q, in name order so
// that replay does not depend on map order.
func (d *ddl) children(q QualifiedName) []*ddlRel {
	var out []*ddlRel
	for _, r := range d.rels {
		if slices.Contains(r.Parents, q) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].q().String() < out[j].q().String() })
	return out
}

// descendants lists every relation below q, each once.
func (d *ddl) descendants(q QualifiedName) []*ddlRel {
	seen := map[QualifiedName]bool{q: true}
	var out []*ddlRel
	queue := []QualifiedName{q}
	for len(queue) > 0 {
		for _, c := range d.children(queue[0]) {
			if !seen[c.q()] {
				seen[c.q()] = true
				out = append(out, c)
				queue = append(queue, c.q())
			}
		}
		queue = queue[1:]
	}
	return out
}

func (d *ddl) createTable(cs *pg_query.CreateStmt, kind RelKind) error {
	rv := cs.GetRelation()
	if rv.GetRelpersistence() == "t" {
		return nil // lives in one session's pg_temp, never in the schema
	}
	q, err := d.newName(rv.GetSchemaname(), rv.GetRelname())
	if err != nil {
		return fmt.Errorf("CREATE TABLE: %w", err)
	}
	if d.rels[q] != nil && cs.GetIfNotExists() {
		return nil
	}
	if cs.GetOfTypename() != nil {
		return fmt.Errorf("CREATE TABLE %s OF a type: the type's columns are not known here", q)
	}
	if cs.GetPartspec() != nil && kind == Table {
		kind = PartitionedTable
	}
	r := newRel(q, kind, nil)
	if err := d.inherit(r, cs.GetInhRelations()); err != nil {
		return fmt.Errorf("CREATE TABLE %s: %w", q, err)
	}
	// A partition has exactly its parent's columns; column entries in
	// PARTITION OF only add options to them.
	if cs.GetPartbound() == nil {
		if err := d.declareColumns(r, cs.GetTableElts()); err != nil {
			return fmt.Errorf("CREATE TABLE %s: %w", q, err)
		}
	}
	return d.add(r, false, false)
}

// inherit gives r the parents' columns first, in order, as PostgreSQL lays
// out an heir's columns.
func (d *ddl) inherit(r *ddlRel, parents []*pg_query.Node) error {
	for _, n := range parents {
		p, err := d.findVar(n.GetRangeVar())
		if err != nil {
			return err
		}
		if !p.isTable() {
			return fmt.Errorf("cannot inherit from %s: not a table", p.q())
		}
		if slices.Contains(r.Parents, p.q()) {
			return fmt.Errorf("%s would be inherited from more than once", p.q())
		}
		r.Parents = append(r.Parents, p.q())
		for _, c := range p.Columns {
			r.addColumn(c, false)
		}
	}
	return nil
}

// declareColumns adds a table's own columns and those it copies with LIKE.
func (d *ddl) declareColumns(r *ddlRel, elts []*pg_query.Node) error {
	for _, e := range elts {
		if col := e.GetColumnDef(); col != nil {
			r.addColumn(col.GetColname(), true)
			continue
		}
		if like := e.GetTableLikeClause(); like != nil {
			src, err := d.findVar(like.GetRelation())
			if err != nil {
				return fmt.Errorf("LIKE: %w", err)
			}
			for _, c := range src.Columns {
				r.addColumn(c, true)
			}
		}
	}
	return nil
}

func (d *ddl) createTableAs(cta *pg_query.CreateTableAsStmt, st stmtText) error {
	kind := Table
	if cta.GetObjtype() == pg_query.ObjectType_OBJECT_MATVIEW {
		kind = MaterializedView
	}
	return d.createFromQuery(cta.GetInto(), cta.GetQuery(), kind, st, cta.GetIfNotExists())
}

// createFromQuery handles CREATE TABLE AS, SELECT INTO and CREATE
// MATERIALIZED VIEW: columns come from the INTO list, else from the query.
func (d *ddl) createFromQuery(into *pg_query.IntoClause, query *pg_query.Node, kind RelKind, st stmtText, ifNotExists bool) error {
	what := "CREATE TABLE AS"
	if kind == MaterializedView {
		what = "CREATE MATERIALIZED VIEW"
	}
	rv := into.GetRel()
	if rv.GetRelpersistence() == "t" {
		return nil
	}
	q, err := d.newName(rv.GetSchemaname(), rv.GetRelname())
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if d.rels[q] != nil && ifNotExists {
		return nil
	}
	cols, err := d.queryColumns(query, nil)
	if err == nil {
		cols, err = renameColumns(cols, stringList(into.GetColNames()))
	}
	if err == nil {
		err = uniqueColumns(cols)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, q, err)
	}
	r := newRel(q, kind, cols)
	if kind == MaterializedView {
		if r.ViewDefinition, err = st.definition(int(rv.GetLocation()), query, withData); err != nil {
			return fmt.Errorf("%s %s: %w", what, q, err)
		}
		r.DefinitionSearchPath = slices.Clone(d.path)
	}
	return d.add(r, false, false)
}

func (d *ddl) createView(vs *pg_query.ViewStmt, st stmtText) error {
	rv := vs.GetView()
	if rv.GetRelpersistence() == "t" {
		return nil
	}
	q, err := d.newName(rv.GetSchemaname(), rv.GetRelname())
	if err != nil {
		return fmt.Errorf("CREATE VIEW: %w", err)
	}
	cols, err := d.queryColumns(vs.GetQuery(), nil)
	if err == nil {
		cols, err = renameColumns(cols, stringList(vs.GetAliases()))
	}
	if err == nil {
		err = uniqueColumns(cols)
	}
	if err != nil {
		return fmt.Errorf("CREATE VIEW %s: %w", q, err)
	}
	tail := noTrailer
	if opt := vs.GetWithCheckOption(); opt == pg_query.ViewCheckOption_LOCAL_CHECK_OPTION ||
		opt == pg_query.ViewCheckOption_CASCADED_CHECK_OPTION {
		tail = checkOption
	}
	if isRecursiveView(vs) {
		// The text as written names the view inside itself; the parser's
		// WITH RECURSIVE rewrite is what PostgreSQL stores and shows.
		st = stmtText{version: d.version}
	}
	r := newRel(q, View, cols)
	if r.ViewDefinition, err = st.definition(int(rv.GetLocation()), vs.GetQuery(), tail); err != nil {
		return fmt.Errorf("CREATE VIEW %s: %w", q, err)
	}
	r.DefinitionSearchPath = slices.Clone(d.path)
	return d.add(r, false, vs.GetReplace())
}

// isRecursiveView spots CREATE RECURSIVE VIEW, which the parser turns into
// a WITH RECURSIVE query whose CTE, named after the view, has no position
// in the text.
func isRecursiveView(vs *pg_query.ViewStmt) bool {
	with := vs.GetQuery().GetSelectStmt().GetWithClause()
	if !with.GetRecursive() || len(with.GetCtes()) != 1 {
		return false
	}
	cte := with.GetCtes()[0].GetCommonTableExpr()
	return cte.GetCtename() == vs.GetView().GetRelname() && cte.GetLocation() < 0
}

// uniqueColumns refuses what PostgreSQL refuses: a relation made from a
// query whose columns share a name.
func uniqueColumns(cols []string) error {
	seen := make(map[string]bool, len(cols))
	for _, c := range cols {
		if seen[c] {
			return fmt.Errorf("column %s specified more than once", c)
		}
		seen[c] = true
	}
	return nil
}

// renameColumns applies an explicit column list over the first columns.
func renameColumns(cols, names []string) ([]string, error) {
	if len(names) > len(cols) {
		return nil, fmt.Errorf("%d column names given for %d columns", len(names), len(cols))
	}
	out := slices.Clone(cols)
	copy(out, names)
	return out, nil
}
