package sqlscan

import (
	"slices"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// topLevel analyses one statement and returns its kind.
func (a *analyzer) topLevel(n *pg.Node) string {
	switch x := n.GetNode().(type) {
	case *pg.Node_SelectStmt:
		return a.topSelect(x.SelectStmt)
	case *pg.Node_InsertStmt, *pg.Node_UpdateStmt, *pg.Node_DeleteStmt, *pg.Node_MergeStmt:
		kind, _ := a.dataModifying(n, nil)
		return kind
	case *pg.Node_CopyStmt:
		a.copyStmt(x.CopyStmt)
		return "copy"
	case *pg.Node_VariableSetStmt:
		return a.setStmt(x.VariableSetStmt)
	case *pg.Node_VariableShowStmt:
		return "show"
	case *pg.Node_ExplainStmt:
		// Without ANALYZE nothing runs, with it everything does: a
		// set_config inside is refused rather than followed either way.
		a.noEffects = true
		a.topLevel(x.ExplainStmt.GetQuery())
		return "explain"
	case *pg.Node_CreateTableAsStmt:
		return a.createTableAs(x.CreateTableAsStmt)
	case *pg.Node_ViewStmt:
		a.ddl = true
		a.dataModifying(x.ViewStmt.GetQuery(), nil)
		return "create_view"
	case *pg.Node_DoStmt:
		a.deny(CodeDoBlock, "DO runs procedural code the analysis cannot see into")
		return "do"
	case *pg.Node_CallStmt:
		// A procedure is decided as a function is: allowed by an execute
		// rule (or from a trusted extension), its arguments read. What it
		// runs may end the transaction or change settings, so it is a
		// barrier (UserCode).
		fc := x.CallStmt.GetFunccall()
		if fc == nil {
			a.deny(CodeCall, "CALL without a procedure")
			return "call"
		}
		a.funcCall(fc, nil)
		a.userCode = true
		return "call"
	case *pg.Node_TruncateStmt:
		a.truncate(x.TruncateStmt)
		return "truncate"
	case *pg.Node_RefreshMatViewStmt:
		a.refresh(x.RefreshMatViewStmt.GetRelation())
		return "refresh"
	}
	if kind, ok := a.sessionStmt(n); ok {
		return kind
	}
	return a.utility(n)
}

// topSelect handles a top-level SELECT, which may be SELECT INTO (a table
// is created) or the one recognised form of set_config.
func (a *analyzer) topSelect(s *pg.SelectStmt) string {
	if s.GetIntoClause() != nil {
		a.ddl = true
		a.writesTemp(s.GetIntoClause().GetRel())
		a.selectStmt(s, nil)
		return "create_table_as"
	}
	if !a.noEffects {
		a.recognizeSetConfig(s)
	}
	if !a.failed() {
		a.selectStmt(s, nil)
	}
	return "select"
}

func (a *analyzer) createTableAs(s *pg.CreateTableAsStmt) string {
	a.ddl = true
	a.writesTemp(s.GetInto().GetRel())
	q := s.GetQuery()
	if ex := q.GetExecuteStmt(); ex != nil {
		// CREATE TABLE AS EXECUTE: the prepared statement's reads apply.
		a.effect = &Effect{Kind: "execute", Name: ex.GetName()}
		a.withClause("values", func() { a.exprs(ex.GetParams(), nil) })
	} else {
		a.dataModifying(q, nil)
	}
	if s.GetObjtype() == pg.ObjectType_OBJECT_MATVIEW {
		return "create_view"
	}
	return "create_table_as"
}

// writesTemp records a temporary table CREATE TABLE AS or SELECT INTO
// creates and fills: one it declares temporary, or one it may create in
// the temporary schema without saying so (mayCreateInTemp).
func (a *analyzer) writesTemp(rv *pg.RangeVar) {
	if rv != nil && (rv.GetRelpersistence() == "t" || strings.HasPrefix(rv.GetSchemaname(), "pg_temp") || a.s.mayCreateInTemp(rv)) {
		a.tempWrites = append(a.tempWrites, rv.GetRelname())
	}
}

// mayCreateInTemp reports whether PostgreSQL may create the relation an
// unqualified CREATE names in the session's temporary schema. It creates
// an unqualified relation in the first schema of the path that exists and
// that the session may use, and a table created in the temporary schema is
// a temporary table, TEMP or not: so with pg_temp (or the session's own
// pg_temp_N) on the path after schemas the server skips, or first, CREATE
// TABLE AS and SELECT INTO fill a temporary table. Any pg_temp on the path
// counts, and so does a path not known.
func (s *session) mayCreateInTemp(rv *pg.RangeVar) bool {
	if rv.GetSchemaname() != "" || rv.GetCatalogname() != "" {
		return false
	}
	if s.path.unknown {
		return true
	}
	return slices.ContainsFunc(s.pathList, func(schema string) bool {
		return schema == "pg_temp" || strings.HasPrefix(schema, "pg_temp_")
	})
}

// copyStmt: COPY t TO reads the columns, COPY t FROM writes them,
// COPY (query) TO reads what the query reads. Only STDIN/STDOUT are
// allowed: a server-side file or program is outside what a policy on
// columns can describe.
func (a *analyzer) copyStmt(s *pg.CopyStmt) {
	if s.GetIsProgram() {
		a.deny(CodeCopyProgram, "COPY ... PROGRAM runs a command on the database server")
		return
	}
	if s.GetFilename() != "" {
		a.deny(CodeCopyFile, "COPY to or from a file on the database server")
		return
	}
	if q := s.GetQuery(); q != nil {
		_, outs := a.dataModifying(q, nil)
		a.withClause("copy", func() {
			for _, c := range outs {
				a.readColumn(c)
			}
		})
		return
	}
	target := a.targetRel(s.GetRelation())
	if target == nil {
		return
	}
	cols := a.insertColumns(target, nil)
	if names := stringList(s.GetAttlist()); len(names) > 0 {
		cols = cols[:0:0]
		for _, name := range names {
			cols = append(cols, a.targetColumn(target, name))
		}
	}
	act := Read
	if s.GetIsFrom() {
		act = Write
	}
	a.withClause("copy", func() {
		for _, c := range cols {
			a.useColumn(c, act)
		}
	})
	a.withClause("where", func() {
		a.expr(s.GetWhereClause(), &scope{items: []*rel{target}})
	})
}

// refresh rewrites a materialized view's stored rows: its own columns are
// written. The query it runs hands nothing to the client, so its
// definition is not expanded here; reading the view later expands it.
func (a *analyzer) refresh(rv *pg.RangeVar) {
	if rv == nil {
		return
	}
	res, ok := a.resolveRelation(rv.GetCatalogname(), rv.GetSchemaname(), rv.GetRelname())
	if !ok {
		return
	}
	for _, cr := range res.rels {
		for _, c := range cr.Columns {
			a.emit(Access{Schema: cr.Schema, Table: cr.Name, Column: c, Act: Write, Clause: "refresh"})
		}
	}
}

// truncate empties tables: every column is written. CASCADE also empties
// tables that reference them, which the catalog does not describe.
func (a *analyzer) truncate(s *pg.TruncateStmt) {
	if s.GetBehavior() == pg.DropBehavior_DROP_CASCADE {
		a.deny(CodeUnsupported, "TRUNCATE ... CASCADE empties referencing tables the catalog does not name")
		return
	}
	for _, n := range s.GetRelations() {
		if rv := n.GetRangeVar(); rv != nil {
			if r := a.targetRel(rv); r != nil {
				a.writeAll(r, "truncate")
				a.writeChildrenOwn(r, rv.GetInh(), "truncate")
			}
		}
	}
}

// recognizeSetConfig accepts `SELECT set_config(name, value, is_local)`
// with constant arguments and nothing else in the query as a session
// effect. Any other use of set_config is denied where it is called.
func (a *analyzer) recognizeSetConfig(s *pg.SelectStmt) {
	tl := s.GetTargetList()
	if len(tl) != 1 || len(s.GetFromClause()) > 0 || s.GetWhereClause() != nil ||
		s.GetHavingClause() != nil || len(s.GetGroupClause()) > 0 || s.GetWithClause() != nil ||
		s.GetLimitCount() != nil || s.GetLimitOffset() != nil || len(s.GetSortClause()) > 0 ||
		len(s.GetDistinctClause()) > 0 {
		return
	}
	fc := tl[0].GetResTarget().GetVal().GetFuncCall()
	if fc == nil || !isSetConfig(stringList(fc.GetFuncname())) || fc.GetOver() != nil {
		return
	}
	args := fc.GetArgs()
	if len(args) != 3 {
		return
	}
	name, ok1 := constString(args[0])
	value, ok2 := constString(args[1])
	local, ok3 := constBool(args[2])
	if !ok1 || !ok2 || !ok3 {
		return
	}
	name = strings.ToLower(name)
	if strings.HasPrefix(name, "pgguard.") {
		a.deny(CodePurpose, "pgguard settings can be changed only with SET, not set_config")
		return
	}
	if value == "" && listQuoted[name] {
		// An empty list shows as "" (and Value "" means DEFAULT).
		value = `""`
	}
	a.setConfig = fc
	a.effect = &Effect{Kind: "set", Name: name, Value: value, Local: local}
}

func isSetConfig(names []string) bool {
	if len(names) == 0 || names[len(names)-1] != "set_config" {
		return false
	}
	return len(names) == 1 || (len(names) == 2 && names[0] == pgCatalog)
}

// constString reads a string constant, possibly cast to text.
func constString(n *pg.Node) (string, bool) {
	if tc := n.GetTypeCast(); tc != nil {
		n = tc.GetArg()
	}
	c := n.GetAConst()
	if c == nil || c.GetIsnull() || c.GetSval() == nil {
		return "", false
	}
	return c.GetSval().GetSval(), true
}

// constBool reads true/false, or a string PostgreSQL accepts as a boolean.
func constBool(n *pg.Node) (bool, bool) {
	if tc := n.GetTypeCast(); tc != nil {
		n = tc.GetArg()
	}
	c := n.GetAConst()
	if c == nil || c.GetIsnull() {
		return false, false
	}
	if b := c.GetBoolval(); b != nil {
		return b.GetBoolval(), true
	}
	if s := c.GetSval(); s != nil {
		switch strings.ToLower(strings.TrimSpace(s.GetSval())) {
		case "t", "true", "on", "yes", "y", "1":
			return true, true
		case "f", "false", "off", "no", "n", "0":
			return false, true
		}
	}
	return false, false
}
