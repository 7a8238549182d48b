package catalog

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// This file works out the column names of a view or CREATE TABLE AS query
// the way PostgreSQL does: explicit names, else names derived from the
// expressions (FigureColname in parse_target.c), with `*` expanded against
// the relations declared so far.

// cteScope is a chain of WITH queries visible at one point of a query. Each
// link resolves its own columns on demand, once.
type cteScope struct {
	name   string
	query  *pg_query.Node
	alias  []string
	scope  *cteScope // what the CTE's own query sees
	parent *cteScope
	cols   []string
	state  cteState
}

type cteState int

const (
	cteUnresolved cteState = iota
	cteResolving
	cteResolved
)

func (s *cteScope) lookup(name string) *cteScope {
	for c := s; c != nil; c = c.parent {
		if c.name == name {
			return c
		}
	}
	return nil
}

// withScope adds a WITH clause's queries to outer. A plain WITH query sees
// the ones before it; under RECURSIVE every one sees all of them.
func withScope(w *pg_query.WithClause, outer *cteScope) *cteScope {
	scope := outer
	var links []*cteScope
	for _, n := range w.GetCtes() {
		cte := n.GetCommonTableExpr()
		link := &cteScope{name: cte.GetCtename(), query: cte.GetCtequery(),
			alias: stringList(cte.GetAliascolnames()), scope: scope, parent: scope}
		scope = link
		links = append(links, link)
	}
	if w.GetRecursive() {
		for _, l := range links {
			l.scope = scope
		}
	}
	return scope
}

func (d *ddl) cteColumns(c *cteScope) ([]string, error) {
	switch c.state {
	case cteResolved:
		return c.cols, nil
	case cteResolving:
		return nil, fmt.Errorf("WITH query %s needs its own columns to know them", c.name)
	}
	c.state = cteResolving
	cols, err := d.queryColumns(c.query, c.scope)
	if err == nil {
		cols, err = renameColumns(cols, c.alias)
	}
	if err != nil {
		c.state = cteUnresolved
		return nil, err
	}
	c.cols, c.state = cols, cteResolved
	return cols, nil
}

// queryColumns returns the output column names of a query.
func (d *ddl) queryColumns(n *pg_query.Node, scope *cteScope) ([]string, error) {
	s := n.GetSelectStmt()
	if s == nil {
		return nil, fmt.Errorf("cannot tell the columns of a %s", nodeKind(n))
	}
	return d.selectColumns(s, scope)
}

func nodeKind(n *pg_query.Node) string {
	if n.GetNode() == nil {
		return "missing query"
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", n.GetNode()), "*pg_query.Node_")
}

func (d *ddl) selectColumns(s *pg_query.SelectStmt, outer *cteScope) ([]string, error) {
	scope := withScope(s.GetWithClause(), outer)
	if op := s.GetOp(); op != pg_query.SetOperation_SETOP_NONE && op != pg_query.SetOperation_SET_OPERATION_UNDEFINED {
		// A set operation's columns are named by its leftmost query.
		return d.selectColumns(s.GetLarg(), scope)
	}
	if rows := s.GetValuesLists(); len(rows) > 0 {
		cols := make([]string, len(rows[0].GetList().GetItems()))
		for i := range cols {
			cols[i] = fmt.Sprintf("column%d", i+1)
		}
		return cols, nil
	}
	var (
		cols []string
		from *fromScope
	)
	for _, t := range s.GetTargetList() {
		col, err := d.targetColumns(t.GetResTarget(), s, scope, &from)
		if err != nil {
			return nil, err
		}
		cols = append(cols, col...)
	}
	return cols, nil
}

// targetColumns names one select-list entry: its alias, its expansion when
// it is a star, or the name derived from its expression. The FROM clause
// is resolved only when a star needs it, so views over relations the file
// does not declare still load as long as they name their columns.
func (d *ddl) targetColumns(rt *pg_query.ResTarget, s *pg_query.SelectStmt, scope *cteScope, from **fromScope) ([]string, error) {
	if rt.GetName() != "" {
		return []string{rt.GetName()}, nil
	}
	qual, star := starOf(rt.GetVal())
	if !star {
		name, _, err := d.figure(rt.GetVal(), scope)
		if name == "" {
			name = "?column?"
		}
		return []string{name}, err
	}
	if *from == nil {
		f, err := d.fromClause(s.GetFromClause(), scope)
		if err != nil {
			return nil, err
		}
		*from = f
	}
	return (*from).expand(qual)
}

// starOf reports whether n is `*` or `t.*`, and the qualifier before it.
func starOf(n *pg_query.Node) ([]string, bool) {
	fields := n.GetColumnRef().GetFields()
	if len(fields) == 0 || fields[len(fields)-1].GetAStar() == nil {
		return nil, false
	}
	return stringList(fields[:len(fields)-1]), true
}

// fromItem is one name a star can be qualified with.
type fromItem struct {
	schema, name string
	cols         []string
}

// fromScope is a FROM clause: what `*` yields and what `t.*` can name.
type fromScope struct {
	cols  []string
	items []fromItem
}

func (f *fromScope) expand(qual []string) ([]string, error) {
	if len(qual) == 0 {
		return f.cols, nil
	}
	name, schema := qual[len(qual)-1], ""
	if len(qual) > 1 {
		schema = qual[len(qual)-2]
	}
	for _, it := range f.items {
		if it.name == name && (schema == "" || it.schema == schema) {
			return it.cols, nil
		}
	}
	return nil, fmt.Errorf("%s.* names nothing in FROM", strings.Join(qual, "."))
}

func (d *ddl) fromClause(nodes []*pg_query.Node, scope *cteScope) (*fromScope, error) {
	if len(nodes) == 0 {
		return nil, errors.New("SELECT * with no tables")
	}
	f := &fromScope{}
	for _, n := range nodes {
		cols, items, err := d.fromNode(n, scope)
		if err != nil {
			return nil, err
		}
		f.cols = append(f.cols, cols...)
		f.items = append(f.items, items...)
	}
	return f, nil
}

// fromNode returns the columns one FROM entry contributes to `*` and the
// names it can be referred to by.
func (d *ddl) fromNode(n *pg_query.Node, scope *cteScope) ([]string, []fromItem, error) {
	switch v := n.GetNode().(type) {
	case *pg_query.Node_RangeVar:
		return d.fromRelation(v.RangeVar, scope)
	case *pg_query.Node_RangeTableSample:
		return d.fromNode(v.RangeTableSample.GetRelation(), scope)
	case *pg_query.Node_RangeSubselect:
		cols, err := d.queryColumns(v.RangeSubselect.GetSubquery(), scope)
		if err != nil {
			return nil, nil, err
		}
		return aliased(v.RangeSubselect.GetAlias(), "", "", cols)
	case *pg_query.Node_RangeFunction:
		return fromFunction(v.RangeFunction)
	case *pg_query.Node_JoinExpr:
		return d.fromJoin(v.JoinExpr, scope)
	}
	return nil, nil, fmt.Errorf("cannot tell the columns of a %s in FROM", nodeKind(n))
}

func (d *ddl) fromRelation(rv *pg_query.RangeVar, scope *cteScope) ([]string, []fromItem, error) {
	if rv.GetSchemaname() == "" {
		if cte := scope.lookup(rv.GetRelname()); cte != nil {
			cols, err := d.cteColumns(cte)
			if err != nil {
				return nil, nil, err
			}
			return aliased(rv.GetAlias(), "", rv.GetRelname(), cols)
		}
	}
	r, err := d.findVar(rv)
	if err != nil {
		return nil, nil, err
	}
	return aliased(rv.GetAlias(), r.Schema, r.Name, r.Columns)
}

// fromFunction knows a function's columns only from a column definition
// list: what a function returns is not in the file's tables.
func fromFunction(rf *pg_query.RangeFunction) ([]string, []fromItem, error) {
	if len(rf.GetColdeflist()) == 0 {
		return nil, nil, errors.New("cannot tell the columns of a function in FROM without a column definition list")
	}
	var cols []string
	for _, c := range rf.GetColdeflist() {
		cols = append(cols, c.GetColumnDef().GetColname())
	}
	if rf.GetOrdinality() {
		cols = append(cols, "ordinality")
	}
	name := ""
	if fns := rf.GetFunctions(); len(fns) > 0 {
		if parts := fns[0].GetList().GetItems(); len(parts) > 0 {
			name = lastString(parts[0].GetFuncCall().GetFuncname())
		}
	}
	return aliased(rf.GetAlias(), "", name, cols)
}

// fromJoin lays out a join's columns: USING (or NATURAL) columns once,
// first, then the rest of the left side, then the rest of the right. An
// alias hides the joined relations' own names.
func (d *ddl) fromJoin(j *pg_query.JoinExpr, scope *cteScope) ([]string, []fromItem, error) {
	left, litems, err := d.fromNode(j.GetLarg(), scope)
	if err != nil {
		return nil, nil, err
	}
	right, ritems, err := d.fromNode(j.GetRarg(), scope)
	if err != nil {
		return nil, nil, err
	}
	using := stringList(j.GetUsingClause())
	if j.GetIsNatural() {
		using = nil
		for _, c := range left {
			if slices.Contains(right, c) {
				using = append(using, c)
			}
		}
	}
	notUsing := func(c string) bool { return slices.Contains(using, c) }
	cols := slices.Concat(using, slices.DeleteFunc(slices.Clone(left), notUsing),
		slices.DeleteFunc(slices.Clone(right), notUsing))
	items := append(litems, ritems...)
	if alias := j.GetJoinUsingAlias(); alias != nil {
		items = append(items, fromItem{name: alias.GetAliasname(), cols: using})
	}
	if j.GetAlias() == nil {
		return cols, items, nil
	}
	return aliased(j.GetAlias(), "", "", cols)
}

// aliased applies an alias (name and column names) to a FROM entry.
func aliased(alias *pg_query.Alias, schema, name string, cols []string) ([]string, []fromItem, error) {
	if alias != nil {
		var err error
		if cols, err = renameColumns(cols, stringList(alias.GetColnames())); err != nil {
			return nil, nil, err
		}
		schema, name = "", alias.GetAliasname()
	}
	return cols, []fromItem{{schema: schema, name: name, cols: cols}}, nil
}

func lastString(nodes []*pg_query.Node) string {
	name := ""
	for _, n := range nodes {
		if s := n.GetString_(); s != nil {
			name = s.GetSval()
		}
	}
	return name
}
