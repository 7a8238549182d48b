package catalog

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Name strengths, as in PostgreSQL's FigureColnameInternal: a type cast
// names its column after the type only when its operand has no strong name.
const (
	noName     = 0
	weakName   = 1
	strongName = 2
)

// figure derives the column name PostgreSQL gives an unnamed select-list
// expression; "" when it would fall back to "?column?".
func (d *ddl) figure(n *pg_query.Node, scope *cteScope) (string, int, error) {
	switch v := n.GetNode().(type) {
	case *pg_query.Node_ColumnRef:
		return strongIfAny(lastString(v.ColumnRef.GetFields()))
	case *pg_query.Node_AIndirection:
		if name := lastString(v.AIndirection.GetIndirection()); name != "" {
			return name, strongName, nil
		}
		return d.figure(v.AIndirection.GetArg(), scope)
	case *pg_query.Node_FuncCall:
		return strongIfAny(lastString(v.FuncCall.GetFuncname()))
	case *pg_query.Node_AExpr:
		if v.AExpr.GetKind() == pg_query.A_Expr_Kind_AEXPR_NULLIF {
			return "nullif", strongName, nil
		}
	case *pg_query.Node_TypeCast:
		name, strength, err := d.figure(v.TypeCast.GetArg(), scope)
		if strength <= weakName && v.TypeCast.GetTypeName() != nil {
			return lastString(v.TypeCast.GetTypeName().GetNames()), weakName, err
		}
		return name, strength, err
	case *pg_query.Node_CollateClause:
		return d.figure(v.CollateClause.GetArg(), scope)
	case *pg_query.Node_CaseExpr:
		name, strength, err := d.figure(v.CaseExpr.GetDefresult(), scope)
		if strength <= weakName {
			return "case", weakName, err
		}
		return name, strength, err
	case *pg_query.Node_SubLink:
		return d.figureSubLink(v.SubLink, scope)
	}
	return strongIfAny(functionLikeName(n))
}

func strongIfAny(name string) (string, int, error) {
	if name == "" {
		return "", noName, nil
	}
	return name, strongName, nil
}

// figureSubLink names EXISTS and ARRAY after themselves and a scalar
// sub-select after its single column.
func (d *ddl) figureSubLink(s *pg_query.SubLink, scope *cteScope) (string, int, error) {
	switch s.GetSubLinkType() {
	case pg_query.SubLinkType_EXISTS_SUBLINK:
		return "exists", strongName, nil
	case pg_query.SubLinkType_ARRAY_SUBLINK:
		return "array", strongName, nil
	case pg_query.SubLinkType_EXPR_SUBLINK:
		cols, err := d.queryColumns(s.GetSubselect(), scope)
		if err != nil || len(cols) == 0 {
			return "", noName, err
		}
		return cols[0], strongName, nil
	}
	return "", noName, nil
}

// functionLikeName names the expressions PostgreSQL treats like function
// calls: ARRAY[], ROW(), COALESCE, GREATEST, CURRENT_DATE, XML and JSON
// constructors.
func functionLikeName(n *pg_query.Node) string {
	switch v := n.GetNode().(type) {
	case *pg_query.Node_GroupingFunc:
		return "grouping"
	case *pg_query.Node_MergeSupportFunc:
		return "merge_action"
	case *pg_query.Node_AArrayExpr:
		return "array"
	case *pg_query.Node_RowExpr:
		return "row"
	case *pg_query.Node_CoalesceExpr:
		return "coalesce"
	case *pg_query.Node_MinMaxExpr:
		return enumName(v.MinMaxExpr.GetOp().String(), "IS_")
	case *pg_query.Node_SqlvalueFunction:
		return enumName(strings.TrimSuffix(v.SqlvalueFunction.GetOp().String(), "_N"), "SVFOP_")
	case *pg_query.Node_XmlExpr:
		if op := v.XmlExpr.GetOp(); op != pg_query.XmlExprOp_IS_DOCUMENT {
			return enumName(op.String(), "IS_")
		}
	case *pg_query.Node_XmlSerialize:
		return "xmlserialize"
	case *pg_query.Node_JsonFuncExpr:
		if op := v.JsonFuncExpr.GetOp(); op != pg_query.JsonExprOp_JSON_TABLE_OP {
			return enumName(strings.TrimSuffix(op.String(), "_OP"), "")
		}
	}
	return jsonConstructorName(n)
}

func jsonConstructorName(n *pg_query.Node) string {
	switch n.GetNode().(type) {
	case *pg_query.Node_JsonParseExpr:
		return "json"
	case *pg_query.Node_JsonScalarExpr:
		return "json_scalar"
	case *pg_query.Node_JsonSerializeExpr:
		return "json_serialize"
	case *pg_query.Node_JsonObjectConstructor:
		return "json_object"
	case *pg_query.Node_JsonArrayConstructor, *pg_query.Node_JsonArrayQueryConstructor:
		return "json_array"
	case *pg_query.Node_JsonObjectAgg:
		return "json_objectagg"
	case *pg_query.Node_JsonArrayAgg:
		return "json_arrayagg"
	}
	return ""
}

// enumName turns a parse-tree enum such as SVFOP_CURRENT_DATE into the
// name PostgreSQL uses, current_date. Values outside the enum's known
// prefix (the "undefined" zero) give no name.
func enumName(value, prefix string) string {
	if !strings.HasPrefix(value, prefix) || strings.Contains(value, "UNDEFINED") {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(value, prefix))
}
