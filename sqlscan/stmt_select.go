package sqlscan

import (
	"strconv"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// selectStmt analyses a query at a new level below parent and returns its
// output columns with their lineage.
//
// Outside views every select-list item counts as read where it stands:
// the person writing the query chose it, and an item the outer query
// ignores can still leak through errors or row counts. Inside a view the
// select list only builds lineage, counted when the view's column is
// used — except under DISTINCT or a set operation, where every output
// shapes which rows come back.
func (a *analyzer) selectStmt(s *pg.SelectStmt, parent *scope) []*column {
	if s == nil || !a.tick() {
		return nil
	}
	sc := &scope{parent: parent}
	a.withCTEs(s.GetWithClause(), sc)
	if op := s.GetOp(); op != pg.SetOperation_SETOP_NONE && op != pg.SetOperation_SET_OPERATION_UNDEFINED {
		return a.setOperation(s, sc, nil)
	}
	if len(s.GetValuesLists()) > 0 {
		outs := a.valuesLists(s.GetValuesLists(), sc)
		a.orderAndLimit(s, sc, outs)
		return outs
	}
	a.fromClause(s.GetFromClause(), sc)
	a.withClause("where", func() { a.expr(s.GetWhereClause(), sc) })
	distinct := isPlainDistinct(s.GetDistinctClause())
	outs := a.targetList(s.GetTargetList(), sc, "select", a.viewDepth == 0 || distinct)
	a.groupBy(s, sc, outs)
	a.withClause("having", func() { a.expr(s.GetHavingClause(), sc) })
	for _, w := range s.GetWindowClause() {
		if wd := w.GetWindowDef(); wd != nil {
			a.windowDef(wd, sc)
		}
	}
	if !distinct {
		a.withClause("distinct", func() { a.outputExprs(s.GetDistinctClause(), sc, outs, true) })
	}
	a.orderAndLimit(s, sc, outs)
	return outs
}

// isPlainDistinct: DISTINCT without ON is a list holding one empty node.
func isPlainDistinct(l []*pg.Node) bool {
	return len(l) == 1 && (l[0] == nil || l[0].Node == nil)
}

func (a *analyzer) orderAndLimit(s *pg.SelectStmt, sc *scope, outs []*column) {
	a.withClause("order", func() { a.outputExprs(s.GetSortClause(), sc, outs, true) })
	a.withClause("limit", func() {
		a.expr(s.GetLimitCount(), sc)
		a.expr(s.GetLimitOffset(), sc)
	})
}

// groupBy walks GROUP BY, whose bare names prefer input columns.
func (a *analyzer) groupBy(s *pg.SelectStmt, sc *scope, outs []*column) {
	a.withClause("group", func() { a.outputExprs(s.GetGroupClause(), sc, outs, false) })
}

// outputExprs walks ORDER BY / GROUP BY / DISTINCT ON items, which may
// name an output column or give its position.
func (a *analyzer) outputExprs(items []*pg.Node, sc *scope, outs []*column, outputsFirst bool) {
	for _, it := range items {
		if a.failed() || it == nil || it.Node == nil {
			continue
		}
		n := it
		if sb := it.GetSortBy(); sb != nil {
			a.checkOperator(stringList(sb.GetUseOp()))
			n = sb.GetNode()
		}
		if gs := n.GetGroupingSet(); gs != nil {
			a.outputExprs(gs.GetContent(), sc, outs, outputsFirst)
			continue
		}
		if c := outputRef(n, sc, outs, outputsFirst); c != nil {
			a.readColumn(c)
			continue
		}
		a.expr(n, sc)
	}
}

// outputRef finds the output column an ORDER BY / GROUP BY item names by
// position (ORDER BY 2) or by output name (ORDER BY alias).
func outputRef(n *pg.Node, sc *scope, outs []*column, outputsFirst bool) *column {
	if c := n.GetAConst(); c != nil && c.GetIval() != nil {
		i := int(c.GetIval().GetIval())
		if i >= 1 && i <= len(outs) {
			return outs[i-1]
		}
		return nil
	}
	cr := n.GetColumnRef()
	if cr == nil {
		return nil
	}
	names, star := fieldNames(cr, new(nameBuf)[:])
	if star || len(names) != 1 {
		return nil
	}
	if !outputsFirst {
		for _, r := range sc.items {
			if _, strong := r.lookup(names[0]); strong {
				return nil
			}
		}
	}
	var found *column
	for _, o := range outs {
		if o.name == names[0] {
			if found != nil {
				// Several outputs of that name: let the input column
				// resolution count them all.
				return nil
			}
			found = o
		}
	}
	return found
}

// targetList walks a select list. Each item's reads become its output
// column's lineage and, when emit is set, count as read now.
func (a *analyzer) targetList(items []*pg.Node, sc *scope, clause string, emit bool) []*column {
	var outs []*column
	a.withClause(clause, func() {
		for _, it := range items {
			if a.failed() {
				return
			}
			rt := it.GetResTarget()
			if rt == nil {
				continue
			}
			if cr := rt.GetVal().GetColumnRef(); cr != nil {
				if names, star := fieldNames(cr, new(nameBuf)[:]); star {
					outs = append(outs, a.expandStar(sc, names, emit)...)
					continue
				}
			}
			lin := a.collect(func() { a.expr(rt.GetVal(), sc) })
			if emit {
				a.emitAll(lin)
			}
			name, sure := rt.GetName(), true
			if name == "" {
				name, sure = figureColname(rt.GetVal())
			}
			outs = append(outs, &column{name: name, lineage: dedup(lin), unsure: !sure})
		}
	})
	return outs
}

// expandStar expands * or t.* in a select list into output columns.
func (a *analyzer) expandStar(sc *scope, qual []string, emit bool) []*column {
	var rels []*rel
	if len(qual) == 0 {
		rels = sc.items
		if len(rels) == 0 {
			a.deny(CodeUnknownColumn, "SELECT * with no FROM clause")
			return nil
		}
	} else if rels = a.findRels(sc, qual); len(rels) == 0 {
		a.unknownEntry(qual)
		return nil
	}
	var outs []*column
	for _, r := range rels {
		for _, c := range r.cols {
			lin := a.collect(func() { a.readColumn(c) })
			if emit {
				a.emitAll(lin)
			}
			outs = append(outs, &column{name: c.name, lineage: dedup(lin), unsure: c.unsure})
		}
		if r.anyCols || r.unknownSelf != nil {
			lin := a.collect(func() { a.readColumn(&column{lineage: r.anyLineage}) })
			if emit {
				a.emitAll(lin)
			}
			outs = append(outs, &column{lineage: dedup(lin)})
		}
	}
	return outs
}

// valuesLists analyses VALUES rows; column i's lineage is what the rows
// put in position i.
func (a *analyzer) valuesLists(rows []*pg.Node, sc *scope) []*column {
	var outs []*column
	a.withClause("values", func() {
		for _, row := range rows {
			for i, e := range row.GetList().GetItems() {
				for len(outs) <= i {
					outs = append(outs, &column{name: "column" + strconv.Itoa(len(outs)+1)})
				}
				lin := a.collect(func() { a.expr(e, sc) })
				a.emitAll(lin)
				outs[i].lineage = dedup(append(outs[i].lineage, lin...))
			}
		}
	})
	return outs
}

// setOperation analyses UNION / INTERSECT / EXCEPT. Output i's lineage is
// both sides' output i. afterLeft, for a recursive CTE, learns the columns
// from the non-recursive side before the recursive side is analysed.
func (a *analyzer) setOperation(s *pg.SelectStmt, sc *scope, afterLeft func([]*column)) []*column {
	left := a.selectStmt(s.GetLarg(), sc)
	if afterLeft != nil {
		afterLeft(left)
	}
	right := a.selectStmt(s.GetRarg(), sc)
	outs := make([]*column, len(left))
	for i, c := range left {
		lin := append([]Access(nil), c.lineage...)
		if i < len(right) {
			lin = append(lin, right[i].lineage...)
		}
		outs[i] = &column{name: c.name, lineage: dedup(lin), unsure: c.unsure}
	}
	if a.viewDepth > 0 {
		// Set operations compare whole rows: every output shapes the result.
		a.withClause("select", func() {
			for _, c := range outs {
				a.readColumn(c)
			}
		})
	}
	osc := &scope{parent: sc.parent, ctes: sc.ctes, items: []*rel{{cols: outs}}}
	a.orderAndLimit(s, osc, outs)
	return outs
}

// withCTEs analyses a WITH clause into sc. In WITH RECURSIVE every CTE is
// visible to itself and the others; otherwise each sees those before it.
func (a *analyzer) withCTEs(w *pg.WithClause, sc *scope) {
	if w == nil {
		return
	}
	for _, n := range w.GetCtes() {
		c := n.GetCommonTableExpr()
		if c == nil || a.failed() {
			continue
		}
		def := &cte{name: c.GetCtename(), pending: w.GetRecursive()}
		if w.GetRecursive() {
			sc.ctes = append(sc.ctes, def)
		}
		aliases := stringList(c.GetAliascolnames())
		outs := a.cteQuery(c, sc, def, aliases)
		def.cols = renameColumns(outs, aliases)
		def.cols = append(def.cols, cteExtraColumns(c, def.cols)...)
		def.pending = false
		if !w.GetRecursive() {
			sc.ctes = append(sc.ctes, def)
		}
	}
}

func (a *analyzer) cteQuery(c *pg.CommonTableExpr, sc *scope, def *cte, aliases []string) []*column {
	q := c.GetCtequery()
	if sel := q.GetSelectStmt(); sel != nil {
		op := sel.GetOp()
		if def.pending && op != pg.SetOperation_SETOP_NONE && op != pg.SetOperation_SET_OPERATION_UNDEFINED {
			inner := &scope{parent: sc}
			a.withCTEs(sel.GetWithClause(), inner)
			return a.setOperation(sel, inner, func(left []*column) {
				def.cols = renameColumns(left, aliases)
			})
		}
		return a.selectStmt(sel, sc)
	}
	_, outs := a.dataModifying(q, sc)
	return outs
}

// cteExtraColumns adds the columns SEARCH and CYCLE clauses define, whose
// values come from the columns they list.
func cteExtraColumns(c *pg.CommonTableExpr, cols []*column) []*column {
	var out []*column
	from := func(names []*pg.Node) []Access {
		var lin []Access
		for _, n := range stringList(names) {
			for _, col := range cols {
				if col.name == n {
					lin = append(lin, col.lineage...)
				}
			}
		}
		return lin
	}
	if s := c.GetSearchClause(); s != nil {
		out = append(out, &column{name: s.GetSearchSeqColumn(), lineage: from(s.GetSearchColList())})
	}
	if cy := c.GetCycleClause(); cy != nil {
		lin := from(cy.GetCycleColList())
		out = append(out, &column{name: cy.GetCycleMarkColumn(), lineage: lin},
			&column{name: cy.GetCyclePathColumn(), lineage: lin})
	}
	return out
}

// renameColumns applies a column alias list positionally.
func renameColumns(cols []*column, names []string) []*column {
	if len(names) == 0 {
		return cols
	}
	out := make([]*column, len(cols))
	for i, c := range cols {
		out[i] = c
		if i < len(names) {
			out[i] = &column{name: names[i], lineage: c.lineage}
		}
	}
	return out
}
