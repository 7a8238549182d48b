package sqlscan

import (
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgguard/pgguard/catalog"
)

// dataModifying analyses a query that may change data: INSERT, UPDATE,
// DELETE, MERGE (or a plain SELECT), wherever it stands (top level, WITH,
// COPY, EXPLAIN, PREPARE). It returns the statement kind and the RETURNING
// (or select list) columns.
func (a *analyzer) dataModifying(n *pg.Node, parent *scope) (string, []*column) {
	switch x := n.GetNode().(type) {
	case *pg.Node_SelectStmt:
		return "select", a.selectStmt(x.SelectStmt, parent)
	case *pg.Node_InsertStmt:
		return "insert", a.insert(x.InsertStmt, parent)
	case *pg.Node_UpdateStmt:
		return "update", a.update(x.UpdateStmt, parent)
	case *pg.Node_DeleteStmt:
		return "delete", a.delete(x.DeleteStmt, parent)
	case *pg.Node_MergeStmt:
		return "merge", a.merge(x.MergeStmt, parent)
	}
	a.deny(CodeUnsupported, "%s cannot be analysed here", nodeName(n))
	return "", nil
}

// targetRel resolves the relation a DML statement changes. Target names
// never refer to CTEs.
func (a *analyzer) targetRel(rv *pg.RangeVar) *rel {
	if rv == nil {
		a.deny(CodeUnsupported, "statement without a target relation")
		return nil
	}
	r := a.rangeVarRel(rv, nil)
	if r != nil && r.temp != nil {
		a.tempWrites = append(a.tempWrites, r.temp.name)
	}
	return r
}

// insert: the listed columns (or all) are written; the source query is
// read; ON CONFLICT reads the conflict columns and may update.
func (a *analyzer) insert(s *pg.InsertStmt, parent *scope) []*column {
	sc := &scope{parent: parent}
	a.withCTEs(s.GetWithClause(), sc)
	target := a.targetRel(s.GetRelation())
	if target == nil {
		return nil
	}
	cols := a.insertColumns(target, s.GetCols())
	a.withClause("insert", func() {
		for _, c := range cols {
			a.writeColumn(c)
		}
		a.targetIndirections(s.GetCols(), target, sc)
	})
	var src []*column
	if sel := s.GetSelectStmt().GetSelectStmt(); sel != nil {
		src = a.selectStmt(sel, sc)
	}
	if oc := s.GetOnConflictClause(); oc != nil {
		a.onConflict(oc, target, cols, src, sc)
	}
	rsc := &scope{parent: parent, ctes: sc.ctes, items: []*rel{target}}
	return a.targetList(s.GetReturningList(), rsc, "returning", true)
}

// insertColumns maps an INSERT column list (or none: every column) to the
// target's columns.
func (a *analyzer) insertColumns(target *rel, list []*pg.Node) []*column {
	if len(list) == 0 {
		return target.cols
	}
	var out []*column
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil {
			continue
		}
		out = append(out, a.targetColumn(target, rt.GetName()))
	}
	return out
}

// targetIndirections walks the subscripts and field names of INSERT
// target columns (INSERT INTO t (arr[i], comp.f)): see partialTarget.
func (a *analyzer) targetIndirections(list []*pg.Node, target *rel, sc *scope) {
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil || a.failed() {
			continue
		}
		a.partialTarget(target, rt, sc)
	}
}

// partialTarget handles an assignment to part of a column (arr[i] = v,
// comp.f = v): the subscript expressions are evaluated and may read
// anything, and the new value is built from the column's old one, so
// whether the assignment fails (a subscript outside a multi-dimensional
// array's bounds, a jsonb path through a scalar, a domain's CHECK on the
// whole value) tells about it: the column counts as read.
func (a *analyzer) partialTarget(target *rel, rt *pg.ResTarget, sc *scope) {
	if len(rt.GetIndirection()) == 0 {
		return
	}
	a.readColumn(a.targetColumn(target, rt.GetName()))
	a.exprs(rt.GetIndirection(), sc)
}

// targetColumn finds a column the statement assigns to.
func (a *analyzer) targetColumn(target *rel, name string) *column {
	cols, strong := target.lookup(name)
	if len(cols) == 0 || (!strong && !target.anyCols) {
		a.deny(CodeUnknownColumn, "column %s of relation %s does not exist", name, target.refname)
		return &column{name: name}
	}
	if len(cols) == 1 {
		return cols[0]
	}
	merged := &column{name: name}
	for _, c := range cols {
		merged.lineage = dedup(append(merged.lineage, c.lineage...))
	}
	return merged
}

// onConflict: the arbiter columns are read (whether a row conflicts tells
// about the stored values); EXCLUDED.c reads what the source put into c;
// DO UPDATE writes its SET columns and reads its expressions.
func (a *analyzer) onConflict(oc *pg.OnConflictClause, target *rel, cols, src []*column, sc *scope) {
	excluded := &rel{refname: "excluded"}
	for _, c := range target.cols {
		ex := &column{name: c.name}
		for i, ins := range cols {
			if ins.name == c.name && i < len(src) {
				ex.lineage = dedup(append(ex.lineage, src[i].lineage...))
			}
		}
		excluded.cols = append(excluded.cols, ex)
	}
	tsc := &scope{parent: sc.parent, ctes: sc.ctes, items: []*rel{target}}
	isc := &scope{parent: sc.parent, ctes: sc.ctes, items: []*rel{target, excluded}}
	a.withClause("on_conflict", func() {
		if inf := oc.GetInfer(); inf != nil {
			if inf.GetConname() != "" {
				// The constraint's columns are not in the catalog: count all.
				for _, c := range target.cols {
					a.readColumn(c)
				}
			}
			for _, e := range inf.GetIndexElems() {
				ie := e.GetIndexElem()
				if ie.GetName() != "" {
					a.readColumn(a.targetColumn(target, ie.GetName()))
				}
				a.expr(ie.GetExpr(), tsc)
			}
			a.expr(inf.GetWhereClause(), tsc)
		}
		a.setList(oc.GetTargetList(), target, isc)
		a.expr(oc.GetWhereClause(), isc)
	})
}

// setList walks SET assignments: each column is written, each expression
// read. A multi-column assignment's source is walked once.
//
// An updated row is checked as a whole: its CHECK constraints and stored
// generated columns are evaluated over every column, old values included,
// and a failing cast among them quotes the value. On the session's own
// temporary tables the session attached those expressions itself, so an
// update reads every column of the rows it changes, and with them what
// was copied into the tables (a table's owner wrote a permanent table's).
func (a *analyzer) setList(items []*pg.Node, target *rel, sc *scope) {
	if target.temp != nil && len(items) > 0 {
		a.readWholeRow(target)
	}
	for _, n := range items {
		rt := n.GetResTarget()
		if rt == nil || a.failed() {
			continue
		}
		a.writeColumn(a.targetColumn(target, rt.GetName()))
		a.partialTarget(target, rt, sc)
		val := rt.GetVal()
		if m := val.GetMultiAssignRef(); m != nil {
			if m.GetColno() == 1 {
				a.expr(m.GetSource(), sc)
			}
			continue
		}
		a.expr(val, sc)
	}
}

// update: SET columns are written; their expressions, FROM and WHERE read.
func (a *analyzer) update(s *pg.UpdateStmt, parent *scope) []*column {
	sc := &scope{parent: parent}
	a.withCTEs(s.GetWithClause(), sc)
	target := a.targetRel(s.GetRelation())
	if target == nil {
		return nil
	}
	sc.items = []*rel{target}
	a.fromClause(s.GetFromClause(), sc)
	a.withClause("set", func() { a.setList(s.GetTargetList(), target, sc) })
	a.withClause("where", func() { a.expr(s.GetWhereClause(), sc) })
	return a.targetList(s.GetReturningList(), sc, "returning", true)
}

// delete writes every column of the target: the rows are gone. Deleting
// from a temporary table reads it as a whole as well: a foreign key of
// another temporary table may update the rows that referenced the deleted
// ones (ON DELETE SET NULL, SET DEFAULT), checking them as an UPDATE does
// (see setList).
func (a *analyzer) delete(s *pg.DeleteStmt, parent *scope) []*column {
	sc := &scope{parent: parent}
	a.withCTEs(s.GetWithClause(), sc)
	target := a.targetRel(s.GetRelation())
	if target == nil {
		return nil
	}
	a.writeAll(target, "delete")
	a.writeChildrenOwn(target, s.GetRelation().GetInh(), "delete")
	if target.temp != nil {
		a.readWholeRow(target)
	}
	sc.items = []*rel{target}
	a.fromClause(s.GetUsingClause(), sc)
	a.withClause("where", func() { a.expr(s.GetWhereClause(), sc) })
	return a.targetList(s.GetReturningList(), sc, "returning", true)
}

func (a *analyzer) writeAll(target *rel, clause string) {
	a.withClause(clause, func() {
		for _, c := range target.cols {
			a.writeColumn(c)
		}
	})
}

// writeChildrenOwn writes the columns that only the descendants of a
// target have, when the statement reaches them (no ONLY): deleting from
// or truncating a parent removes its children's rows, every column of
// them. The columns they share with the parent are written through the
// parent's own (their lineage names each descendant).
func (a *analyzer) writeChildrenOwn(target *rel, inh bool, clause string) {
	if !inh {
		return
	}
	a.withClause(clause, func() {
		for _, cr := range target.rels {
			a.writeDescendantsOwn(cr, cr, 0)
		}
	})
}

func (a *analyzer) writeDescendantsOwn(top, cr *catalog.Relation, depth int) {
	if depth > maxViewDepth {
		return
	}
	for _, ch := range a.s.cat.Children(cr.Schema, cr.Name) {
		for _, name := range ch.Columns {
			if !hasColumn(top, name) {
				a.emit(Access{Schema: ch.Schema, Table: ch.Name, Column: name, Act: Write, Clause: a.curClause()})
			}
		}
		a.writeDescendantsOwn(top, ch, depth+1)
	}
}

// merge: the source and the ON condition are read; WHEN conditions are
// read; each action writes what it assigns (DELETE: every column).
func (a *analyzer) merge(s *pg.MergeStmt, parent *scope) []*column {
	sc := &scope{parent: parent}
	a.withCTEs(s.GetWithClause(), sc)
	target := a.targetRel(s.GetRelation())
	if target == nil {
		return nil
	}
	src := a.fromItem(s.GetSourceRelation(), sc, nil)
	sc.items = append([]*rel{target}, src...)
	a.withClause("join", func() { a.expr(s.GetJoinCondition(), sc) })
	srcOnly := &scope{parent: parent, ctes: sc.ctes, items: src}
	for _, n := range s.GetMergeWhenClauses() {
		w := n.GetMergeWhenClause()
		if w == nil || a.failed() {
			continue
		}
		a.withClause("where", func() { a.expr(w.GetCondition(), sc) })
		switch w.GetCommandType() {
		case pg.CmdType_CMD_UPDATE:
			a.withClause("set", func() { a.setList(w.GetTargetList(), target, sc) })
		case pg.CmdType_CMD_INSERT:
			cols := a.insertColumns(target, w.GetTargetList())
			a.withClause("insert", func() {
				for _, c := range cols {
					a.writeColumn(c)
				}
				a.targetIndirections(w.GetTargetList(), target, srcOnly)
			})
			a.withClause("values", func() { a.exprs(w.GetValues(), srcOnly) })
		case pg.CmdType_CMD_DELETE:
			a.writeAll(target, "delete")
			if target.temp != nil {
				a.readWholeRow(target) // as delete does
			}
		}
	}
	return a.targetList(s.GetReturningList(), sc, "returning", true)
}
