package sqlscan

import (
	pg "github.com/pganalyze/pg_query_go/v6"
)

// DDL that evaluates expressions over a table's stored rows reads the
// columns those expressions use, although it returns no rows: an error
// raised while evaluating them quotes the value (a failing cast says
// `invalid input syntax for type integer: "NL00BANK0123456789"`), and
// PostgreSQL asks only for ownership, never for SELECT, so neither a
// column grant nor the error-detail rule hides it. The forms:
//
//   - CREATE INDEX: its expressions and its WHERE predicate, evaluated for
//     every row;
//   - ALTER TABLE ... ADD CONSTRAINT and a constraint of ADD COLUMN: a
//     CHECK expression, EXCLUDE expressions and predicate; NOT VALID
//     included, since later writes to any column evaluate the constraint
//     over the whole row;
//   - ADD COLUMN ... GENERATED ALWAYS AS (expr) STORED, computed for every
//     row;
//   - ALTER COLUMN ... TYPE ... USING expr, computed for every row;
//   - VALIDATE CONSTRAINT, which checks a constraint added NOT VALID (its
//     expression is not in the catalog) against every row: the whole row
//     is read;
//   - ALTER COLUMN ... TYPE on a temporary table, which checks the
//     session's own constraints on that column again against every row:
//     the whole row is read.
//
// Plain columns as index keys, UNIQUE, PRIMARY KEY and FOREIGN KEY
// columns, a type change without USING and SET NOT NULL evaluate nothing
// that quotes a value: their failures show values only in an error's
// DETAIL, which the error-detail rule withholds, and that the statement
// fails stays, as for any constraint violation.
//
// A table created earlier in the same input has only the rows statements
// of that input wrote, each decided on its own; a temporary table reads
// its lineage like any read of it.

// storedRowReads emits the reads of a DDL statement that evaluates
// expressions over stored rows.
func (a *analyzer) storedRowReads(n *pg.Node) {
	switch x := n.GetNode().(type) {
	case *pg.Node_IndexStmt:
		s := x.IndexStmt
		var exprs []*pg.Node
		for _, p := range append(append([]*pg.Node(nil), s.GetIndexParams()...), s.GetIndexIncludingParams()...) {
			exprs = append(exprs, p.GetIndexElem().GetExpr())
		}
		exprs = append(exprs, s.GetWhereClause())
		a.evaluatedOverRows(s.GetRelation(), nil, exprs)
	case *pg.Node_AlterTableStmt:
		a.alterTableReads(x.AlterTableStmt)
	}
}

// alterTableReads handles the ALTER TABLE subcommands that evaluate
// stored rows.
func (a *analyzer) alterTableReads(s *pg.AlterTableStmt) {
	switch s.GetObjtype() {
	case pg.ObjectType_OBJECT_TABLE, pg.ObjectType_OBJECT_MATVIEW, pg.ObjectType_OBJECT_FOREIGN_TABLE:
	default:
		return
	}
	var (
		added []string   // columns this statement adds: no stored values yet
		exprs []*pg.Node // expressions evaluated over the rows
		// wholeRow: an expression the statement does not show is
		// evaluated over the rows.
		wholeRow bool
		// typeChange: the table is rewritten, and the constraints that
		// name the column are checked again against every row.
		typeChange bool
	)
	constraint := func(c *pg.Constraint) {
		switch c.GetContype() {
		case pg.ConstrType_CONSTR_CHECK, pg.ConstrType_CONSTR_GENERATED:
			exprs = append(exprs, c.GetRawExpr())
		case pg.ConstrType_CONSTR_EXCLUSION:
			for _, ex := range c.GetExclusions() {
				if items := ex.GetList().GetItems(); len(items) > 0 {
					exprs = append(exprs, items[0].GetIndexElem().GetExpr())
				}
			}
			exprs = append(exprs, c.GetWhereClause())
		}
	}
	for _, n := range s.GetCmds() {
		cmd := n.GetAlterTableCmd()
		switch cmd.GetSubtype() {
		case pg.AlterTableType_AT_AddColumn:
			cd := cmd.GetDef().GetColumnDef()
			added = append(added, cd.GetColname())
			for _, c := range cd.GetConstraints() {
				constraint(c.GetConstraint())
			}
		case pg.AlterTableType_AT_AddConstraint:
			constraint(cmd.GetDef().GetConstraint())
		case pg.AlterTableType_AT_AlterColumnType:
			exprs = append(exprs, cmd.GetDef().GetColumnDef().GetRawDefault())
			typeChange = true
		case pg.AlterTableType_AT_ValidateConstraint:
			wholeRow = true
		}
	}
	if wholeRow || typeChange {
		// A constraint added NOT VALID, which the catalog does not
		// describe, is checked against every row: all of it is read. So
		// are the constraints of a column whose type changes; on a
		// permanent table they are its owner's, on a temporary one the
		// session's own, over what was copied into it.
		if sc := a.ddlTarget(s.GetRelation(), nil); sc != nil && (wholeRow || sc.items[0].temp != nil) {
			a.readWholeRow(sc.items[0])
		}
	}
	a.evaluatedOverRows(s.GetRelation(), added, exprs)
}

// evaluatedOverRows reads what exprs use of the table rv names, whose
// every row they are evaluated over.
func (a *analyzer) evaluatedOverRows(rv *pg.RangeVar, added []string, exprs []*pg.Node) {
	if !anyNode(exprs) {
		return
	}
	sc := a.ddlTarget(rv, added)
	if sc == nil {
		return
	}
	a.withClause("ddl", func() {
		for _, e := range exprs {
			a.expr(e, sc)
		}
	})
}

func anyNode(ns []*pg.Node) bool {
	for _, n := range ns {
		if n != nil {
			return true
		}
	}
	return false
}

// ddlTarget is the scope of the table whose rows a DDL statement
// evaluates, with the columns it adds (which hold no values yet); nil when
// there is nothing to read (a table created earlier in the same input) or
// after a denial.
func (a *analyzer) ddlTarget(rv *pg.RangeVar, added []string) *scope {
	if rv == nil || a.createdEarlier(rv) {
		return nil
	}
	r := a.rangeVarRel(rv, nil)
	if r == nil {
		return nil
	}
	for _, name := range added {
		if _, ok := r.lookup(name); !ok {
			r.cols = append(r.cols, &column{name: name})
		}
	}
	return &scope{items: []*rel{r}}
}

// createdEarlier reports whether a statement earlier in the same input
// created the (non-temporary) table rv names, spelt the same way; an
// unqualified name the session's temporary schema also holds is found
// there first, and is not that table.
func (a *analyzer) createdEarlier(rv *pg.RangeVar) bool {
	if !a.s.created[rv.GetSchemaname()+"."+rv.GetRelname()] {
		return false
	}
	return rv.GetSchemaname() != "" || !a.s.temporaryName(rv.GetRelname())
}
