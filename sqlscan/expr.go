package sqlscan

import (
	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// expr walks an expression and emits every read it makes, checking the
// functions and operators it calls. Node types without a case here are
// walked generically, field by field, so a new kind of expression still
// has its column references and calls seen.
func (a *analyzer) expr(n *pg.Node, sc *scope) {
	if n == nil || n.Node == nil || !a.tick() {
		return
	}
	a.depth++
	defer func() { a.depth-- }()
	if a.depth > maxExprDepth {
		a.deny(CodeUnsupported, "the statement nests too deeply to analyse")
		return
	}
	switch x := n.Node.(type) {
	case *pg.Node_AConst, *pg.Node_ParamRef, *pg.Node_String_, *pg.Node_Integer,
		*pg.Node_Float, *pg.Node_Boolean, *pg.Node_BitString, *pg.Node_SqlvalueFunction,
		*pg.Node_SetToDefault, *pg.Node_CurrentOfExpr, *pg.Node_MergeSupportFunc, *pg.Node_AStar:
		// Constants and session values read no column.
	case *pg.Node_ColumnRef:
		a.columnRef(sc, x.ColumnRef)
	case *pg.Node_AExpr:
		a.aExpr(x.AExpr, sc)
	case *pg.Node_BoolExpr:
		a.exprs(x.BoolExpr.GetArgs(), sc)
	case *pg.Node_FuncCall:
		a.funcCall(x.FuncCall, sc)
	case *pg.Node_TypeCast:
		a.expr(x.TypeCast.GetArg(), sc)
	case *pg.Node_SubLink:
		a.subLink(x.SubLink, sc)
	case *pg.Node_List:
		a.exprs(x.List.GetItems(), sc)
	case *pg.Node_CaseExpr:
		a.expr(x.CaseExpr.GetArg(), sc)
		a.exprs(x.CaseExpr.GetArgs(), sc)
		a.expr(x.CaseExpr.GetDefresult(), sc)
	case *pg.Node_CaseWhen:
		a.expr(x.CaseWhen.GetExpr(), sc)
		a.expr(x.CaseWhen.GetResult(), sc)
	case *pg.Node_NullTest:
		a.expr(x.NullTest.GetArg(), sc)
	case *pg.Node_BooleanTest:
		a.expr(x.BooleanTest.GetArg(), sc)
	case *pg.Node_CoalesceExpr:
		a.exprs(x.CoalesceExpr.GetArgs(), sc)
	case *pg.Node_MinMaxExpr:
		a.exprs(x.MinMaxExpr.GetArgs(), sc)
	case *pg.Node_AArrayExpr:
		a.exprs(x.AArrayExpr.GetElements(), sc)
	case *pg.Node_RowExpr:
		a.exprs(x.RowExpr.GetArgs(), sc)
	case *pg.Node_CollateClause:
		a.expr(x.CollateClause.GetArg(), sc)
	case *pg.Node_NamedArgExpr:
		a.expr(x.NamedArgExpr.GetArg(), sc)
	case *pg.Node_AIndirection:
		a.indirection(x.AIndirection, sc)
	case *pg.Node_AIndices:
		a.expr(x.AIndices.GetLidx(), sc)
		a.expr(x.AIndices.GetUidx(), sc)
	case *pg.Node_SortBy:
		a.checkOperator(stringList(x.SortBy.GetUseOp()))
		a.expr(x.SortBy.GetNode(), sc)
	case *pg.Node_SelectStmt:
		// A query in expression position (JSON_ARRAY(SELECT ...)): like
		// a sub-link, all of its output is used.
		a.useOutputs(a.selectStmt(x.SelectStmt, sc))
	case *pg.Node_RangeVar, *pg.Node_InsertStmt, *pg.Node_UpdateStmt,
		*pg.Node_DeleteStmt, *pg.Node_MergeStmt:
		a.deny(CodeUnsupported, "unexpected %s in an expression", nodeName(n))
	default:
		a.generic(n, sc)
	}
}

func (a *analyzer) exprs(ns []*pg.Node, sc *scope) {
	for _, n := range ns {
		if a.failed() {
			return
		}
		a.expr(n, sc)
	}
}

// aExpr walks an operator expression, checking the operator.
func (a *analyzer) aExpr(x *pg.A_Expr, sc *scope) {
	left, right := a.operandType(x.GetLexpr(), sc), operand{}
	if x.GetLexpr() == nil {
		left = none
	}
	switch x.GetKind() {
	case pg.A_Expr_Kind_AEXPR_BETWEEN, pg.A_Expr_Kind_AEXPR_NOT_BETWEEN,
		pg.A_Expr_Kind_AEXPR_BETWEEN_SYM, pg.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
		// BETWEEN is written with a keyword but runs <= and >=.
		right = a.commonOperand(x.GetRexpr().GetList().GetItems(), sc)
		a.checkOperatorOn([]string{"<="}, left, right)
		a.checkOperatorOn([]string{">="}, left, right)
	case pg.A_Expr_Kind_AEXPR_IN:
		right = a.commonOperand(x.GetRexpr().GetList().GetItems(), sc)
		a.checkOperatorOn(stringList(x.GetName()), left, right)
	case pg.A_Expr_Kind_AEXPR_OP, pg.A_Expr_Kind_AEXPR_DISTINCT, pg.A_Expr_Kind_AEXPR_NOT_DISTINCT,
		pg.A_Expr_Kind_AEXPR_NULLIF, pg.A_Expr_Kind_AEXPR_LIKE, pg.A_Expr_Kind_AEXPR_ILIKE:
		a.checkOperatorOn(stringList(x.GetName()), left, a.operandType(x.GetRexpr(), sc))
	default:
		// ANY/ALL compare with an array's elements, SIMILAR TO with a
		// rewritten pattern: the right operand's type is not followed.
		a.checkOperatorOn(stringList(x.GetName()), left, operand{})
	}
	a.expr(x.GetLexpr(), sc)
	a.expr(x.GetRexpr(), sc)
}

// funcCall checks and walks a function call, including aggregate ORDER BY,
// FILTER and window clauses.
func (a *analyzer) funcCall(fc *pg.FuncCall, sc *scope) {
	names := stringList(fc.GetFuncname())
	if a.projection(fc, names, sc) {
		return
	}
	if isSetConfig(names) && fc != a.setConfig {
		a.deny(CodeUnsafeFunction, "set_config is allowed only as a plain SELECT set_config(constant, constant, constant)")
		return
	}
	if fc != a.setConfig {
		a.checkFunctionCall(names, fc.GetArgs(), sc)
	}
	a.exprs(fc.GetArgs(), sc)
	a.exprs(fc.GetAggOrder(), sc)
	a.expr(fc.GetAggFilter(), sc)
	if w := fc.GetOver(); w != nil {
		a.windowDef(w, sc)
	}
}

// projection handles PostgreSQL's functional notation for columns:
// email(t) is t.email when t is a whole row that has a column email and no
// function email can take the row, for PostgreSQL looks for a function
// first. It reports whether the call was one.
func (a *analyzer) projection(fc *pg.FuncCall, names []string, sc *scope) bool {
	if len(names) != 1 || len(fc.GetArgs()) != 1 || len(fc.GetAggOrder()) > 0 ||
		fc.GetAggFilter() != nil || fc.GetOver() != nil || fc.GetAggStar() ||
		fc.GetAggDistinct() || fc.GetFuncVariadic() {
		return false
	}
	rels := a.wholeRowRel(sc, fc.GetArgs()[0])
	if len(rels) == 0 {
		return false
	}
	var found []*column
	for _, r := range rels {
		if cols, strong := r.lookup(names[0]); strong {
			found = append(found, cols...)
		}
	}
	if len(found) == 0 || a.mayTakeRow(names[0]) {
		return false
	}
	for _, c := range found {
		a.readColumn(c)
	}
	return true
}

// mayTakeRow reports whether an unqualified call name(row) may run a
// function. A built-in may when one of its forms takes any row
// (rowFunctions); any other function of the name may be declared for the
// row's type, as the catalog does not say. An incomplete catalog knows no
// built-ins, so the list alone decides for them.
func (a *analyzer) mayTakeRow(name string) bool {
	if rowFunctions[name] && (!a.s.cat.Complete || len(a.functionCandidates(name)) > 0) {
		return true
	}
	for _, f := range a.functionCandidates(name) {
		if !f.BuiltIn && !isBuiltinSchema(f.Schema) {
			return true
		}
	}
	return false
}

// fieldFunction checks the function a field selection (v).name may run:
// when v has no field name, PostgreSQL calls name(v).
func (a *analyzer) fieldFunction(name string) {
	if !a.s.cat.Complete || len(a.functionCandidates(name)) > 0 {
		a.checkFunction([]string{name}, 1)
	}
}

// indirection walks subscripts and field selections. (t).c on a whole row
// reads column c only, as PostgreSQL projects it; any other field name may
// be a function call on the value (fieldFunction).
func (a *analyzer) indirection(x *pg.A_Indirection, sc *scope) {
	ind := x.GetIndirection()
	if found := a.rowField(x, sc); len(found) > 0 {
		for _, c := range found {
			a.readColumn(c)
		}
		ind = ind[1:]
	} else {
		a.expr(x.GetArg(), sc)
	}
	for _, i := range ind {
		if s := i.GetString_(); s != nil {
			a.fieldFunction(s.GetSval())
			continue
		}
		a.expr(i, sc)
	}
}

// rowField finds the column (t).c selects when t is a whole row with a
// column c.
func (a *analyzer) rowField(x *pg.A_Indirection, sc *scope) []*column {
	ind := x.GetIndirection()
	if len(ind) == 0 || ind[0].GetString_() == nil {
		return nil
	}
	var found []*column
	for _, r := range a.wholeRowRel(sc, x.GetArg()) {
		if cols, strong := r.lookup(ind[0].GetString_().GetSval()); strong {
			found = append(found, cols...)
		}
	}
	return found
}

// windowDef walks a window's PARTITION BY, ORDER BY and frame offsets.
func (a *analyzer) windowDef(w *pg.WindowDef, sc *scope) {
	a.withClause("window", func() {
		a.exprs(w.GetPartitionClause(), sc)
		a.exprs(w.GetOrderClause(), sc)
		a.expr(w.GetStartOffset(), sc)
		a.expr(w.GetEndOffset(), sc)
	})
}

// subLink walks a sub-query used as an expression (EXISTS, IN, ANY, ALL,
// scalar, ARRAY). Everything it outputs is used by the expression.
func (a *analyzer) subLink(sl *pg.SubLink, sc *scope) {
	a.checkOperator(stringList(sl.GetOperName()))
	a.expr(sl.GetTestexpr(), sc)
	sel := sl.GetSubselect().GetSelectStmt()
	if sel == nil {
		a.deny(CodeUnsupported, "sub-query of an unexpected form")
		return
	}
	a.useOutputs(a.selectStmt(sel, sc))
}

// useOutputs reads a sub-query's outputs where they are used. Outside views
// the sub-query's select list was emitted already; inside a view, where
// select lists only build lineage, this is what counts them.
func (a *analyzer) useOutputs(outs []*column) {
	if a.viewDepth == 0 {
		return
	}
	for _, c := range outs {
		a.readColumn(c)
	}
}

// generic walks any other node field by field: every nested Node is
// walked as an expression.
func (a *analyzer) generic(n *pg.Node, sc *scope) {
	m := n.ProtoReflect()
	od := m.Descriptor().Oneofs().ByName("node")
	if od == nil {
		return
	}
	fd := m.WhichOneof(od)
	if fd == nil || fd.Kind() != protoreflect.MessageKind {
		return
	}
	a.genericMessage(m.Get(fd).Message(), sc)
}

func (a *analyzer) genericMessage(m protoreflect.Message, sc *scope) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len() && !a.failed(); i++ {
				a.genericValue(l.Get(i).Message(), sc)
			}
		} else {
			a.genericValue(v.Message(), sc)
		}
		return !a.failed()
	})
}

func (a *analyzer) genericValue(m protoreflect.Message, sc *scope) {
	if node, ok := m.Interface().(*pg.Node); ok {
		a.expr(node, sc)
		return
	}
	if a.tick() {
		a.genericMessage(m, sc)
	}
}

// nodeName is the protobuf name of a node's type, for messages.
func nodeName(n *pg.Node) string {
	m := n.ProtoReflect()
	od := m.Descriptor().Oneofs().ByName("node")
	if od == nil {
		return "node"
	}
	if fd := m.WhichOneof(od); fd != nil && fd.Kind() == protoreflect.MessageKind {
		return string(fd.Message().Name())
	}
	return "node"
}

// stringList extracts the names of a list of String nodes.
func stringList(ns []*pg.Node) []string {
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		if s := n.GetString_(); s != nil {
			out = append(out, s.GetSval())
		}
	}
	return out
}
