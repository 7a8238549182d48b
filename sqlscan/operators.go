package sqlscan

import (
	"strconv"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgguard/pgguard/catalog"
)

// Operator resolution, as far as soundness needs it. An extension installed
// in a schema of the path (hstore, citext, PostGIS in public) adds
// operators such as = that PostgreSQL may pick for an ordinary comparison.
// pgguard cannot see into them, so it must know that PostgreSQL picks a
// built-in (or an allowed) operator instead, from the operand types, as
// PostgreSQL's oper_select_candidate does:
//
//  1. an operand of type unknown (a string literal, NULL) is taken to have
//     the other operand's type, and an operator declared on exactly the
//     operand types is looked up schema by schema along the path: the first
//     one found is the one that runs;
//  2. otherwise only operators whose operand types the operands can be
//     coerced to implicitly are candidates.
//
// The analysis follows step 1 where it knows both types for certain, and
// step 2 by ruling a candidate out only where an operand's type certainly
// cannot be coerced to it. Everything it cannot tell counts as a candidate.

// Type OIDs PostgreSQL fixes for constants.
const (
	oidBool    = 16
	oidInt8    = 20
	oidInt4    = 23
	oidUnknown = 705
	oidBit     = 1560
	oidNumeric = 1700
)

// operand is what the analysis knows of an operand's type: oid is certain
// when known is true (oidUnknown for an untyped literal); otherwise the
// operand may be of any type.
type operand struct {
	oid   uint32
	known bool
}

// none is the missing left operand of a prefix operator.
var none = operand{known: true}

// operandType infers n's type where it is certain: constants, casts to a
// type the catalog resolves, and columns of stored relations.
func (a *analyzer) operandType(n *pg.Node, sc *scope) operand {
	if n == nil || !a.s.cat.KnowsTypes() {
		return operand{}
	}
	switch x := n.GetNode().(type) {
	case *pg.Node_AConst:
		return constType(x.AConst)
	case *pg.Node_TypeCast:
		if oid, ok := a.typeNamed(x.TypeCast.GetTypeName()); ok {
			return operand{oid: oid, known: true}
		}
	case *pg.Node_ColumnRef:
		if c := a.uniqueColumn(sc, x.ColumnRef); c != nil && c.typ != 0 {
			return operand{oid: c.typ, known: true}
		}
	}
	return operand{}
}

// constType is the type PostgreSQL's parser gives a constant.
func constType(c *pg.A_Const) operand {
	switch {
	case c.GetIsnull(), c.GetSval() != nil:
		return operand{oid: oidUnknown, known: true}
	case c.GetIval() != nil:
		return operand{oid: oidInt4, known: true}
	case c.GetBoolval() != nil:
		return operand{oid: oidBool, known: true}
	case c.GetBsval() != nil:
		return operand{oid: oidBit, known: true}
	case c.GetFval() != nil:
		// An integer too large for int4 arrives as a float literal: it is
		// int8 when it fits, numeric otherwise.
		if _, err := strconv.ParseInt(c.GetFval().GetFval(), 10, 64); err == nil {
			return operand{oid: oidInt8, known: true}
		}
		return operand{oid: oidNumeric, known: true}
	}
	return operand{}
}

// typeNamed resolves a type name to the one type it can denote: a
// qualified name, or an unqualified one that only one schema of the path
// (pg_catalog included) defines. Array types and %TYPE are left alone.
func (a *analyzer) typeNamed(tn *pg.TypeName) (uint32, bool) {
	if tn == nil || len(tn.GetArrayBounds()) > 0 || tn.GetPctType() || tn.GetSetof() {
		return 0, false
	}
	names := stringList(tn.GetNames())
	if len(names) == 0 || len(names) > 2 {
		return 0, false
	}
	name := names[len(names)-1]
	var found *catalog.Type
	for _, t := range a.s.cat.TypesNamed(name) {
		if len(names) == 2 && t.Schema != names[0] {
			continue
		}
		if len(names) == 1 && !a.onPath(t.Schema) {
			continue
		}
		if found != nil {
			return 0, false
		}
		found = t
	}
	if found == nil {
		return 0, false
	}
	return found.OID, true
}

// uniqueColumn finds the one column a reference c or t.c denotes, without
// reading it; nil when it may denote more than one, or a whole row.
func (a *analyzer) uniqueColumn(sc *scope, cr *pg.ColumnRef) *column {
	names, star := fieldNames(cr, new(nameBuf)[:])
	if star || len(names) == 0 || len(names) > 2 {
		return nil
	}
	if len(names) == 1 {
		strong, weak := lookupColumn(sc, names[0])
		if len(strong) == 1 && len(weak) == 0 {
			return strong[0]
		}
		return nil
	}
	for level := sc; level != nil; level = level.parent {
		var found []*column
		for _, r := range level.items {
			if r.refname != names[0] {
				continue
			}
			cols, strong := r.lookup(names[1])
			if !strong {
				return nil
			}
			found = append(found, cols...)
		}
		if len(found) == 1 {
			return found[0]
		}
		if len(found) > 1 {
			return nil
		}
	}
	return nil
}

// checkOperatorOn denies an unqualified operator PostgreSQL may resolve to
// one outside pg_catalog that is neither allowed nor of a trusted
// extension, given what is known of its operands (left is none for a
// prefix operator).
func (a *analyzer) checkOperatorOn(names []string, left, right operand) {
	if len(names) != 1 {
		a.checkOperator(names)
		return
	}
	sym := names[0]
	var suspects []catalog.Operator
	for _, op := range a.s.cat.UserOperators(sym) {
		if a.onPath(op.Schema) && !a.operatorMayRun(op) {
			suspects = append(suspects, op)
		}
	}
	if len(suspects) == 0 || a.failed() {
		return
	}
	if l, r := unknownTakesOther(left, right); l.known && r.known && l.oid != oidUnknown && r.oid != oidUnknown {
		if winner, ok := a.exactOperator(sym, l.oid, r.oid); ok {
			if !winner.builtin && !a.operatorMayRun(winner.op) {
				a.deny(CodeFunction, "operator %s runs %s.%s, which is not a built-in and is not allowed", sym, winner.op.Schema, sym)
			}
			return
		}
	}
	for _, op := range suspects {
		if a.mayApply(op, left, right) && !a.shadowedByBuiltin(op) {
			a.deny(CodeFunction, "operator %s may run %s.%s, which is not a built-in and is not allowed", sym, op.Schema, sym)
			return
		}
	}
}

// unknownTakesOther applies PostgreSQL's first rule: an untyped literal
// is taken to have the other operand's type.
func unknownTakesOther(left, right operand) (operand, operand) {
	switch {
	case left.known && left.oid == oidUnknown && right.known && right.oid != oidUnknown && right.oid != 0:
		left = right
	case right.known && right.oid == oidUnknown && left.known && left.oid != oidUnknown && left.oid != 0:
		right = left
	}
	return left, right
}

// exactMatch is the operator an exact lookup along the path finds.
type exactMatch struct {
	op      catalog.Operator
	builtin bool
}

// exactOperator finds the first schema of the path that declares the
// operator on exactly these operand types. With the path unknown, only a
// match no user operator can precede counts.
func (a *analyzer) exactOperator(sym string, left, right uint32) (exactMatch, bool) {
	builtin := a.s.cat.BuiltinOperator(sym, left, right)
	var users []catalog.Operator
	for _, op := range a.s.cat.UserOperators(sym) {
		if op.Left == left && op.Right == right {
			users = append(users, op)
		}
	}
	if a.path.unknown {
		if builtin && len(users) == 0 {
			return exactMatch{builtin: true}, true
		}
		return exactMatch{}, false
	}
	for _, schema := range a.path.schemas {
		if schema == pgCatalog && builtin {
			return exactMatch{builtin: true}, true
		}
		for _, op := range users {
			if op.Schema == schema {
				return exactMatch{op: op}, true
			}
		}
	}
	return exactMatch{}, false
}

// shadowedByBuiltin reports whether pg_catalog declares the operator with
// the same operand types earlier on the path: PostgreSQL keeps only the
// first of candidates with one signature, so op can never be picked.
func (a *analyzer) shadowedByBuiltin(op catalog.Operator) bool {
	if a.path.unknown || !a.s.cat.KnowsTypes() || !a.s.cat.BuiltinOperator(op.Name, op.Left, op.Right) {
		return false
	}
	for _, schema := range a.path.schemas {
		switch schema {
		case pgCatalog:
			return true
		case op.Schema:
			return false
		}
	}
	return false
}

// mayApply reports whether PostgreSQL might pick op for these operands:
// false only when an operand certainly cannot be coerced implicitly to the
// operator's type for it, or the operator is prefix and the use is not.
func (a *analyzer) mayApply(op catalog.Operator, left, right operand) bool {
	if !a.s.cat.KnowsTypes() {
		return true
	}
	prefix := left == none
	if (op.Left == 0) != prefix {
		return false
	}
	return (prefix || a.mayCoerce(left, op.Left)) && a.mayCoerce(right, op.Right)
}

// mayCoerce errs on the side of yes: pseudo-types (anyelement, record),
// domains, arrays and composite types follow rules of their own, so only a
// plain type without an implicit cast to the target is ruled out.
func (a *analyzer) mayCoerce(src operand, dst uint32) bool {
	if !src.known || src.oid == oidUnknown || src.oid == dst || a.s.cat.ImplicitCast(src.oid, dst) {
		return true
	}
	st, ok1 := a.s.cat.Type(src.oid)
	dt, ok2 := a.s.cat.Type(dst)
	if !ok1 || !ok2 {
		return true
	}
	special := func(t *catalog.Type) bool {
		return t.Kind == 'p' || t.Kind == 'd' || t.Kind == 'c' || t.Category == 'A'
	}
	return special(st) || special(dt)
}

// operatorMayRun: an operator outside pg_catalog runs when its extension is
// trusted or the policy allows it as a function (function:schema.symbol).
func (a *analyzer) operatorMayRun(op catalog.Operator) bool {
	return a.extensionTrusted(op.Extension) || a.functionMayRun(op.Schema, op.Name, false)
}

// extensionTrusted reports whether the context trusts the extension.
func (a *analyzer) extensionTrusted(name string) bool {
	return name != "" && a.s.ctx.ExtensionTrusted != nil && a.s.ctx.ExtensionTrusted(name)
}

// operands gives the types of a list's items when they all have the same
// certain one (the right side of IN, the bounds of BETWEEN).
func (a *analyzer) commonOperand(items []*pg.Node, sc *scope) operand {
	var out operand
	for i, n := range items {
		t := a.operandType(n, sc)
		if !t.known || (i > 0 && t != out) {
			return operand{}
		}
		out = t
	}
	return out
}
