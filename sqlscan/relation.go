package sqlscan

import (
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/internal/pgtree"
)

// viewResult is a view's definition, analysed once per input: the
// lineage of each of its columns, and the reads its definition makes
// whatever columns are used (WHERE, JOIN, GROUP BY, ...).
type viewResult struct {
	cols   []*column
	always []Access
	denial *Denial
	busy   bool
}

// rangeVarRel turns a relation name in FROM or a DML target into a range
// entry, expanding views. It returns nil after a denial.
func (a *analyzer) rangeVarRel(rv *pg.RangeVar, sc *scope) *rel {
	if rv.GetCatalogname() == "" && rv.GetSchemaname() == "" && sc != nil {
		if c := sc.findCTE(rv.GetRelname()); c != nil {
			return a.cteRel(c, rv.GetAlias())
		}
	}
	a.loc = rv.GetLocation()
	res, ok := a.resolveRelation(rv.GetCatalogname(), rv.GetSchemaname(), rv.GetRelname())
	if !ok {
		return nil
	}
	r := a.relationRel(res, rv.GetInh())
	if r == nil {
		return nil
	}
	r.refname = rv.GetRelname()
	if len(res.rels) == 1 && res.temp == nil {
		r.schema = res.rels[0].Schema
	} else if res.builtin != nil {
		r.schema = res.builtin.Schema
	}
	applyAlias(r, rv.GetAlias())
	return r
}

func (a *analyzer) cteRel(c *cte, alias *pg.Alias) *rel {
	r := &rel{refname: c.name, cols: c.cols}
	if c.pending && len(c.cols) == 0 {
		// A recursive reference before the non-recursive term is known.
		r.anyCols = true
	}
	applyAlias(r, alias)
	return r
}

// applyAlias renames the entry and, positionally, its columns. On an entry
// whose columns are not all known (a function's), names past the known
// columns name columns that exist all the same.
func applyAlias(r *rel, alias *pg.Alias) {
	if alias == nil {
		return
	}
	r.refname = alias.GetAliasname()
	r.schema = ""
	names := stringList(alias.GetColnames())
	if len(names) == 0 {
		return
	}
	cols := make([]*column, len(r.cols))
	copy(cols, r.cols)
	for i, n := range names {
		switch {
		case i < len(cols):
			cols[i] = &column{name: n, lineage: cols[i].lineage, typ: cols[i].typ}
		case r.anyCols:
			cols = append(cols, &column{name: n, lineage: r.anyLineage})
		}
	}
	r.cols = cols
}

// relationRel builds the entry for resolved catalog relations: one column
// per distinct column name across the candidates, each carrying the
// lineage of every candidate that has it.
func (a *analyzer) relationRel(res resolvedRelation, inh bool) *rel {
	r := &rel{rels: res.rels, systemCols: len(res.rels) > 0}
	if res.builtin != nil {
		if a.checkSensitiveRelation(res.builtin.Schema, res.builtin.Name) {
			return nil
		}
		r.unknownSelf = res.builtin
		r.systemCols = false
		return r
	}
	if len(res.rels) == 1 && res.temp == nil && !expandsAsView(res.rels[0]) {
		// The common case: one stored relation, whose columns are shared
		// by every analysis under this snapshot. Nothing changes a column
		// or lineage it did not create, and the shared slices are full,
		// so appending to them copies.
		cr := res.rels[0]
		if a.checkSensitiveRelation(cr.Schema, cr.Name) {
			return nil
		}
		r.cols = storedColumns(a.s.cat, cr, inh)
		return r
	}
	byName := map[string]*column{}
	for _, cr := range res.rels {
		if a.checkSensitiveRelation(cr.Schema, cr.Name) {
			return nil
		}
		var cols []*column
		if expandsAsView(cr) {
			cols = a.viewColumns(cr)
		} else {
			cols = storedColumns(a.s.cat, cr, inh)
		}
		for _, c := range cols {
			if prev, ok := byName[c.name]; ok {
				prev.lineage = dedup(append(prev.lineage, c.lineage...))
				if prev.typ != c.typ {
					prev.typ = 0
				}
				continue
			}
			cp := &column{name: c.name, lineage: append([]Access(nil), c.lineage...), typ: c.typ}
			byName[c.name] = cp
			r.cols = append(r.cols, cp)
		}
		if a.failed() {
			return nil
		}
	}
	if t := res.temp; t != nil {
		r.temp = t
		a.readsTemp = true
		lineage := append([]Access(nil), a.s.tempLineage...)
		if t.cols == nil {
			r.anyCols, r.anyLineage = true, lineage
		}
		for _, name := range t.cols {
			if c, ok := byName[name]; ok {
				c.lineage = dedup(append(c.lineage, lineage...))
				c.typ = 0
				continue
			}
			c := &column{name: name, lineage: lineage}
			byName[name] = c
			r.cols = append(r.cols, c)
		}
	}
	return r
}

// expandsAsView reports whether a relation's columns come from its
// definition: a view not read as stored, or a materialized view whose
// definition is known.
func expandsAsView(cr *catalog.Relation) bool {
	return (cr.Kind == catalog.View && !readAsStored(cr)) || (cr.Kind == catalog.MaterializedView && cr.ViewDefinition != "")
}

// storedKey is the key of a relation's stored columns among what a
// snapshot keeps for sqlscan (catalog.Snapshot.Derived). It holds a single
// pointer, so making it an interface value allocates nothing.
type storedKey struct{ r *catalog.Relation }

// storedColumns gives a stored relation's columns with their lineage
// (storedColumnsOf), read with ONLY (inh false) or without. They are
// built once per snapshot and shared: callers must not change them.
func storedColumns(cat *catalog.Snapshot, cr *catalog.Relation, inh bool) []*column {
	i := 0
	if inh {
		i = 1
	}
	if v, ok := cat.Derived(storedKey{cr}); ok {
		return v.(*[2][]*column)[i]
	}
	both := &[2][]*column{storedColumnsOf(cat, cr, false), storedColumnsOf(cat, cr, true)}
	return cat.StoreDerived(storedKey{cr}, both).(*[2][]*column)[i]
}

// storedColumnsOf builds a stored relation's columns with their lineage: a
// column is itself, its parents' column of the same name (so policies on
// a parent cover its partitions and children) and, when read without ONLY,
// its partitions' and children's column. Every slice is full (length
// equals capacity), so an append by a user of the shared result copies.
func storedColumnsOf(cat *catalog.Snapshot, cr *catalog.Relation, inh bool) []*column {
	cols := make([]*column, len(cr.Columns))
	for i, name := range cr.Columns {
		lin := []Access{{Schema: cr.Schema, Table: cr.Name, Column: name, Act: Read}}
		lin = ancestorColumns(cat, cr, name, lin, 0)
		if inh {
			// Without ONLY, the rows of partitions and inheritance children
			// are read too: policies on them apply.
			lin = descendantColumns(cat, cr, name, lin, 0)
		}
		cols[i] = &column{name: name, lineage: lin[:len(lin):len(lin)]}
		if i < len(cr.ColumnTypes) {
			cols[i].typ = cr.ColumnTypes[i]
		}
	}
	return cols
}

func ancestorColumns(cat *catalog.Snapshot, cr *catalog.Relation, name string, lin []Access, depth int) []Access {
	if depth > maxViewDepth {
		return lin
	}
	for _, p := range cr.Parents {
		pr, ok := cat.Relation(p.Schema, p.Name)
		if !ok {
			// The parent is named but not described: still report it, so a
			// policy on it applies.
			lin = append(lin, Access{Schema: p.Schema, Table: p.Name, Column: name, Act: Read})
			continue
		}
		if hasColumn(pr, name) {
			lin = append(lin, Access{Schema: pr.Schema, Table: pr.Name, Column: name, Act: Read})
		}
		lin = ancestorColumns(cat, pr, name, lin, depth+1)
	}
	return lin
}

func descendantColumns(cat *catalog.Snapshot, cr *catalog.Relation, name string, lin []Access, depth int) []Access {
	if depth > maxViewDepth {
		return lin
	}
	for _, ch := range cat.Children(cr.Schema, cr.Name) {
		if hasColumn(ch, name) {
			lin = append(lin, Access{Schema: ch.Schema, Table: ch.Name, Column: name, Act: Read})
		}
		lin = descendantColumns(cat, ch, name, lin, depth+1)
	}
	return lin
}

func hasColumn(r *catalog.Relation, name string) bool {
	for _, c := range r.Columns {
		if c == name {
			return true
		}
	}
	return false
}

// viewColumns expands a view: each of its columns is the view's own column
// (so a policy can classify the view) plus the lineage its definition
// gives it; the reads the definition makes regardless are emitted now.
func (a *analyzer) viewColumns(cr *catalog.Relation) []*column {
	vr := a.expandView(cr)
	if vr == nil {
		return nil
	}
	a.emitAll(vr.always)
	cols := make([]*column, len(cr.Columns))
	for i, name := range cr.Columns {
		lin := []Access{{Schema: cr.Schema, Table: cr.Name, Column: name, Act: Read}}
		if i < len(vr.cols) {
			lin = append(lin, vr.cols[i].lineage...)
		}
		cols[i] = &column{name: name, lineage: lin}
		if i < len(cr.ColumnTypes) {
			cols[i].typ = cr.ColumnTypes[i]
		}
	}
	return cols
}

// expandView analyses a view's definition once per input. Views nest up
// to maxViewDepth; a view reached again while being expanded is a cycle.
func (a *analyzer) expandView(cr *catalog.Relation) *viewResult {
	if vr, ok := a.s.views[cr]; ok {
		if vr.busy {
			a.deny(CodeUnsupported, "view %s.%s refers to itself", cr.Schema, cr.Name)
			return nil
		}
		if vr.denial != nil {
			a.deny(vr.denial.Code, "%s", vr.denial.Reason)
			return nil
		}
		return vr
	}
	if a.viewDepth >= maxViewDepth || len(a.s.views) >= maxViews {
		a.deny(CodeUnsupported, "views nest too deeply to analyse (at %s.%s)", cr.Schema, cr.Name)
		return nil
	}
	sel := parseViewDefinition(cr.ViewDefinition)
	if sel == nil {
		a.deny(CodeUnsupported, "the definition of view %s.%s cannot be analysed", cr.Schema, cr.Name)
		return nil
	}
	if a.s.views == nil {
		a.s.views = map[*catalog.Relation]*viewResult{}
	}
	vr := &viewResult{busy: true}
	a.s.views[cr] = vr
	a.inView(cr, func() {
		var outs []*column
		vr.always = a.collect(func() { outs = a.selectStmt(sel, nil) })
		vr.cols = outs
	})
	vr.busy = false
	if a.denial != nil {
		vr.denial = a.denial
		return nil
	}
	if len(vr.cols) < len(cr.Columns) {
		a.deny(CodeUnsupported, "the definition of view %s.%s does not match its columns", cr.Schema, cr.Name)
		vr.denial = a.denial
		return nil
	}
	return vr
}

// inView runs f in the name space and attribution of view cr's definition.
func (a *analyzer) inView(cr *catalog.Relation, f func()) {
	savedPath, savedClause, savedView := a.path, a.clause, a.viewClause
	a.path = relationPath(a.s.cat, cr.DefinitionSearchPath, "")
	a.viewClause = "view:" + cr.Schema + "." + cr.Name
	a.clause = "select"
	a.viewDepth++
	f()
	a.viewDepth--
	a.path, a.clause, a.viewClause = savedPath, savedClause, savedView
}

// parseViewDefinition parses a stored view definition, which must be a
// single query.
func parseViewDefinition(def string) *pg.SelectStmt {
	if textDenial(def, Limits{}) != nil {
		return nil // refused as if unparsable: the view's reads stay unknown
	}
	tree, err := pgtree.Parse(def)
	if err != nil || len(tree.GetStmts()) != 1 {
		return nil
	}
	return tree.GetStmts()[0].GetStmt().GetSelectStmt()
}
