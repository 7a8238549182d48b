package sqlscan

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// figureColname names an unaliased select-list item as PostgreSQL's
// FigureColname does. A NATURAL join matches on these names, so they must
// be PostgreSQL's exactly: sure is false for a form whose name the
// analysis does not work out.
func figureColname(n *pg.Node) (name string, sure bool) {
	name, _, sure = figureName(n)
	if name == "" {
		name = "?column?"
	}
	return name, sure
}

// figureName returns an item's name and how strongly it holds: 2 for a
// name as good as a column's or function's, 1 for a fallback (CASE, a
// cast's type) that an enclosing cast or CASE may override, 0 for none.
func figureName(n *pg.Node) (string, int, bool) {
	switch x := n.GetNode().(type) {
	case nil:
		return "", 0, true
	case *pg.Node_ColumnRef:
		if names, _ := fieldNames(x.ColumnRef, new(nameBuf)[:]); len(names) > 0 {
			return names[len(names)-1], 2, true
		}
	case *pg.Node_AIndirection:
		return indirectionName(x.AIndirection)
	case *pg.Node_FuncCall:
		if names := stringList(x.FuncCall.GetFuncname()); len(names) > 0 {
			return names[len(names)-1], 2, true
		}
	case *pg.Node_AExpr:
		if x.AExpr.GetKind() == pg.A_Expr_Kind_AEXPR_NULLIF {
			return "nullif", 2, true
		}
	case *pg.Node_TypeCast:
		return castName(x.TypeCast)
	case *pg.Node_CollateClause:
		return figureName(x.CollateClause.GetArg())
	case *pg.Node_GroupingFunc:
		return "grouping", 2, true
	case *pg.Node_SubLink:
		return subLinkName(x.SubLink)
	case *pg.Node_CaseExpr:
		name, strength, sure := figureName(x.CaseExpr.GetDefresult())
		if sure && strength <= 1 {
			return "case", 1, true
		}
		return name, strength, sure
	case *pg.Node_AArrayExpr:
		return "array", 2, true
	case *pg.Node_RowExpr:
		return "row", 2, true
	case *pg.Node_CoalesceExpr:
		return "coalesce", 2, true
	case *pg.Node_MinMaxExpr:
		if x.MinMaxExpr.GetOp() == pg.MinMaxOp_IS_GREATEST {
			return "greatest", 2, true
		}
		return "least", 2, true
	case *pg.Node_SqlvalueFunction:
		return sqlValueName(x.SqlvalueFunction.GetOp())
	case *pg.Node_XmlExpr:
		if x.XmlExpr.GetOp() == pg.XmlExprOp_IS_DOCUMENT {
			return "", 0, true
		}
		name := strings.ToLower(strings.TrimPrefix(x.XmlExpr.GetOp().String(), "IS_"))
		return name, 2, !strings.Contains(name, "undefined")
	case *pg.Node_XmlSerialize:
		return "xmlserialize", 2, true
	default:
		// SQL/JSON constructors and MERGE's support function are named by
		// newer servers in ways not modelled here.
		if name := nodeName(n); strings.HasPrefix(name, "Json") || name == "MergeSupportFunc" {
			return "", 0, false
		}
	}
	return "", 0, true
}

// indirectionName: the last field selected, ignoring subscripts; without
// one, the name of what is subscripted.
func indirectionName(x *pg.A_Indirection) (string, int, bool) {
	field := ""
	for _, i := range x.GetIndirection() {
		if s := i.GetString_(); s != nil {
			field = s.GetSval()
		}
	}
	if field != "" {
		return field, 2, true
	}
	return figureName(x.GetArg())
}

// castName: the operand's name unless it is only a fallback, then the
// type's.
func castName(x *pg.TypeCast) (string, int, bool) {
	name, strength, sure := figureName(x.GetArg())
	if !sure {
		return "", 0, false
	}
	if strength <= 1 {
		if names := stringList(x.GetTypeName().GetNames()); len(names) > 0 {
			return names[len(names)-1], 1, true
		}
	}
	return name, strength, true
}

// subLinkName: EXISTS and ARRAY name themselves; a scalar sub-query takes
// its one output's name.
func subLinkName(x *pg.SubLink) (string, int, bool) {
	switch x.GetSubLinkType() {
	case pg.SubLinkType_EXISTS_SUBLINK:
		return "exists", 2, true
	case pg.SubLinkType_ARRAY_SUBLINK:
		return "array", 2, true
	case pg.SubLinkType_EXPR_SUBLINK:
		name, sure := firstOutputName(x.GetSubselect().GetSelectStmt())
		return name, 2, sure
	}
	return "", 0, true
}

// firstOutputName is the name of a query's first output column, which a
// set operation takes from its leftmost branch.
func firstOutputName(sel *pg.SelectStmt) (string, bool) {
	for sel != nil && sel.GetLarg() != nil {
		sel = sel.GetLarg()
	}
	if sel == nil {
		return "", false
	}
	if len(sel.GetValuesLists()) > 0 {
		return "column1", true
	}
	tl := sel.GetTargetList()
	if len(tl) == 0 {
		return "", false
	}
	rt := tl[0].GetResTarget()
	if rt.GetName() != "" {
		return rt.GetName(), true
	}
	if cr := rt.GetVal().GetColumnRef(); cr != nil {
		if _, star := fieldNames(cr, new(nameBuf)[:]); star {
			return "", false // the first column * expands to
		}
	}
	return figureColname(rt.GetVal())
}

// sqlValueName names CURRENT_DATE, CURRENT_USER and the like as the
// keywords they are written with.
func sqlValueName(op pg.SQLValueFunctionOp) (string, int, bool) {
	name := strings.TrimPrefix(op.String(), "SVFOP_")
	name = strings.ToLower(strings.TrimSuffix(name, "_N"))
	if name == "" || strings.Contains(name, "undefined") {
		return "", 0, false
	}
	return name, 2, true
}
