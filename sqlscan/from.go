package sqlscan

import (
	pg "github.com/pganalyze/pg_query_go/v6"
)

// fromClause adds the entries of a FROM list to sc, left to right, so
// LATERAL items and functions see those before them.
func (a *analyzer) fromClause(items []*pg.Node, sc *scope) {
	for _, it := range items {
		if a.failed() {
			return
		}
		sc.items = append(sc.items, a.fromItem(it, sc, sc.items)...)
	}
}

// fromItem turns one FROM item into range entries. left are the entries
// before it at the same level, which LATERAL items may reference.
func (a *analyzer) fromItem(n *pg.Node, sc *scope, left []*rel) []*rel {
	if n == nil || !a.tick() {
		return nil
	}
	switch x := n.Node.(type) {
	case *pg.Node_RangeVar:
		if r := a.rangeVarRel(x.RangeVar, sc); r != nil {
			return []*rel{r}
		}
	case *pg.Node_RangeSubselect:
		return a.rangeSubselect(x.RangeSubselect, sc, left)
	case *pg.Node_RangeFunction:
		return a.rangeFunction(x.RangeFunction, sc, left)
	case *pg.Node_JoinExpr:
		return a.join(x.JoinExpr, sc, left)
	case *pg.Node_RangeTableSample:
		rels := a.fromItem(x.RangeTableSample.GetRelation(), sc, left)
		a.withClause("from", func() {
			a.exprs(x.RangeTableSample.GetArgs(), sc.lateral(left))
			a.expr(x.RangeTableSample.GetRepeatable(), sc.lateral(left))
		})
		return rels
	case *pg.Node_RangeTableFunc, *pg.Node_JsonTable:
		// XMLTABLE and JSON_TABLE: their columns come from a document the
		// expressions compute; walk every expression in them.
		return []*rel{a.tableFunction(n, sc, left)}
	default:
		a.deny(CodeUnsupported, "FROM item of an unexpected form (%s)", nodeName(n))
	}
	return nil
}

func (a *analyzer) rangeSubselect(x *pg.RangeSubselect, sc *scope, left []*rel) []*rel {
	parent := sc.detached()
	if x.GetLateral() {
		parent = sc.lateral(left)
	}
	sel := x.GetSubquery().GetSelectStmt()
	if sel == nil {
		a.deny(CodeUnsupported, "sub-query in FROM of an unexpected form")
		return nil
	}
	outs := a.selectStmt(sel, parent)
	r := relFromOutputs("", outs)
	applyAlias(r, x.GetAlias())
	return []*rel{r}
}

// relFromOutputs makes an entry from a query's output columns. Outputs
// with no known name (an unknown function's columns through *) make the
// entry accept any name.
func relFromOutputs(name string, outs []*column) *rel {
	r := &rel{refname: name, cols: outs}
	for _, c := range outs {
		if c.name == "" {
			r.anyCols = true
			r.anyLineage = dedup(append(r.anyLineage, c.lineage...))
		}
	}
	return r
}

// rangeFunction handles functions in FROM. Their result columns are not
// known, so the entry accepts any column name, each carrying the reads of
// the arguments.
func (a *analyzer) rangeFunction(x *pg.RangeFunction, sc *scope, left []*rel) []*rel {
	fsc := sc.lateral(left)
	refname := ""
	var lineage []Access
	a.withClause("from", func() {
		lineage = a.collect(func() {
			for _, f := range x.GetFunctions() {
				items := f.GetList().GetItems()
				if len(items) == 0 {
					continue
				}
				if refname == "" {
					if fc := items[0].GetFuncCall(); fc != nil {
						if names := stringList(fc.GetFuncname()); len(names) > 0 {
							refname = names[len(names)-1]
						}
					}
				}
				a.expr(items[0], fsc)
			}
		})
	})
	a.emitAll(lineage)
	r := &rel{refname: refname, anyLineage: dedup(lineage)}
	names, exact := functionColumns(x)
	r.anyCols = !exact
	for _, n := range names {
		r.cols = append(r.cols, &column{name: n, lineage: r.anyLineage})
	}
	applyAlias(r, x.GetAlias())
	return []*rel{r}
}

// functionColumns names the result columns of functions in FROM as far as
// the statement itself fixes them. A column definition list (f() AS r(a
// int), or one per function in ROWS FROM) names all of a function's
// columns; otherwise how many columns a function returns, and their names,
// come from its result type, which the catalog does not hold: exact is
// false and only the alias's column names are certain.
func functionColumns(x *pg.RangeFunction) (names []string, exact bool) {
	exact = true
	for _, f := range x.GetFunctions() {
		items := f.GetList().GetItems()
		var defs []*pg.Node
		if len(items) > 1 {
			defs = items[1].GetList().GetItems()
		}
		if len(defs) == 0 && !x.GetIsRowsfrom() {
			defs = x.GetColdeflist()
		}
		if len(defs) == 0 {
			return nil, false
		}
		for _, d := range defs {
			names = append(names, d.GetColumnDef().GetColname())
		}
	}
	if x.GetOrdinality() {
		names = append(names, "ordinality")
	}
	return names, exact
}

func (a *analyzer) tableFunction(n *pg.Node, sc *scope, left []*rel) *rel {
	var lineage []Access
	a.withClause("from", func() {
		lineage = a.collect(func() { a.generic(n, sc.lateral(left)) })
	})
	a.emitAll(lineage)
	r := &rel{anyLineage: dedup(lineage)}
	var alias *pg.Alias
	if t := n.GetRangeTableFunc(); t != nil {
		// XMLTABLE lists its columns, ordinality ones included.
		alias = t.GetAlias()
		for _, c := range t.GetColumns() {
			r.cols = append(r.cols, &column{name: c.GetRangeTableFuncCol().GetColname(), lineage: r.anyLineage})
		}
	} else if t := n.GetJsonTable(); t != nil {
		// JSON_TABLE's NESTED columns are not modelled: its names stay
		// open.
		alias = t.GetAlias()
		r.anyCols = true
	}
	applyAlias(r, alias)
	return r
}

// join handles JOIN: both sides' entries, the columns USING or NATURAL
// compare, and the ON condition, which sees only the join's own inputs
// (and outer queries). An aliased join hides its inputs behind one entry.
func (a *analyzer) join(x *pg.JoinExpr, sc *scope, left []*rel) []*rel {
	lrels := a.fromItem(x.GetLarg(), sc, left)
	rrels := a.fromItem(x.GetRarg(), sc, append(append([]*rel(nil), left...), lrels...))
	if a.failed() {
		return nil
	}
	both := append(append([]*rel(nil), lrels...), rrels...)
	using := stringList(x.GetUsingClause())
	if x.GetIsNatural() {
		if !namesKnown(lrels) || !namesKnown(rrels) {
			// A name the analysis cannot see might match: the columns
			// compared would be unknown.
			a.deny(CodeUnsupported, "NATURAL JOIN against a FROM item whose column names are not all known")
			return nil
		}
		using = commonColumns(lrels, rrels)
	}
	a.withClause("join", func() {
		for _, name := range using {
			a.readUsing(name, lrels)
			a.readUsing(name, rrels)
		}
		qsc := &scope{parent: sc.parent, ctes: sc.ctes, items: both}
		a.expr(x.GetQuals(), qsc)
	})
	merged := mergeJoin(using, lrels, rrels)
	if x.GetAlias() != nil {
		applyAlias(merged, x.GetAlias())
		return []*rel{merged}
	}
	if ua := x.GetJoinUsingAlias(); ua != nil {
		u := &rel{refname: ua.GetAliasname(), cols: merged.cols[:len(using)]}
		return append(both, u)
	}
	return both
}

// readUsing reads a USING column on one side of a join.
func (a *analyzer) readUsing(name string, rels []*rel) {
	found := false
	for _, r := range rels {
		cols, strong := r.lookup(name)
		if strong || r.anyCols {
			found = true
			for _, c := range cols {
				a.readColumn(c)
			}
		}
	}
	if !found {
		a.deny(CodeUnknownColumn, "column %s named in USING does not exist", name)
	}
}

// namesKnown reports whether every column name of the entries is known as
// PostgreSQL names it, as a NATURAL join needs.
func namesKnown(rels []*rel) bool {
	for _, r := range rels {
		if r.anyCols || r.unknownSelf != nil {
			return false
		}
		for _, c := range r.cols {
			if c.unsure || c.name == "" {
				return false
			}
		}
	}
	return true
}

// commonColumns lists the column names both sides of a NATURAL join have.
func commonColumns(l, r []*rel) []string {
	right := map[string]bool{}
	for _, x := range r {
		for _, c := range x.cols {
			right[c.name] = true
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, x := range l {
		for _, c := range x.cols {
			if right[c.name] && !seen[c.name] && c.name != "" {
				seen[c.name] = true
				out = append(out, c.name)
			}
		}
	}
	return out
}

// mergeJoin builds the single entry an aliased join presents: the merged
// USING columns first, then the other columns of each side.
func mergeJoin(using []string, l, r []*rel) *rel {
	m := &rel{}
	isUsing := map[string]bool{}
	for _, name := range using {
		isUsing[name] = true
		c := &column{name: name}
		for _, x := range append(append([]*rel(nil), l...), r...) {
			cols, _ := x.lookup(name)
			for _, cc := range cols {
				c.lineage = dedup(append(c.lineage, cc.lineage...))
			}
		}
		m.cols = append(m.cols, c)
	}
	for _, x := range append(append([]*rel(nil), l...), r...) {
		for _, c := range x.cols {
			if !isUsing[c.name] {
				m.cols = append(m.cols, c)
			}
		}
		if x.anyCols {
			m.anyCols = true
			m.anyLineage = dedup(append(m.anyLineage, x.anyLineage...))
		}
	}
	return m
}
