package sqlscan

import (
	"slices"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// sessionStmt handles statements that change session state the proxy
// follows: prepared statements, cursors, DISCARD and transaction control.
func (a *analyzer) sessionStmt(n *pg.Node) (string, bool) {
	switch x := n.GetNode().(type) {
	case *pg.Node_PrepareStmt:
		a.dataModifying(x.PrepareStmt.GetQuery(), nil)
		a.effect = &Effect{Kind: "prepare", Name: x.PrepareStmt.GetName()}
		return "prepare", true
	case *pg.Node_ExecuteStmt:
		a.withClause("values", func() { a.exprs(x.ExecuteStmt.GetParams(), nil) })
		a.effect = &Effect{Kind: "execute", Name: x.ExecuteStmt.GetName()}
		return "execute", true
	case *pg.Node_DeallocateStmt:
		a.effect = &Effect{Kind: "deallocate", Name: x.DeallocateStmt.GetName()}
		if x.DeallocateStmt.GetIsall() || x.DeallocateStmt.GetName() == "" {
			a.effect = &Effect{Kind: "deallocate_all"}
		}
		return "deallocate", true
	case *pg.Node_DeclareCursorStmt:
		a.dataModifying(x.DeclareCursorStmt.GetQuery(), nil)
		a.effect = &Effect{Kind: "declare", Name: x.DeclareCursorStmt.GetPortalname()}
		return "declare", true
	case *pg.Node_FetchStmt:
		// Fetching runs the cursor's query further, and with it whatever
		// code it calls: the proxy knows which cursors those are.
		kind := "fetch"
		if x.FetchStmt.GetIsmove() {
			kind = "move"
		}
		a.effect = &Effect{Kind: kind, Name: x.FetchStmt.GetPortalname()}
		return kind, true
	case *pg.Node_ClosePortalStmt:
		a.effect = &Effect{Kind: "close", Name: x.ClosePortalStmt.GetPortalname()}
		if x.ClosePortalStmt.GetPortalname() == "" {
			a.effect = &Effect{Kind: "close_all"}
		}
		return "close", true
	case *pg.Node_DiscardStmt:
		a.effect = &Effect{Kind: discardKinds[x.DiscardStmt.GetTarget()]}
		return "discard", true
	case *pg.Node_TransactionStmt:
		return a.transaction(x.TransactionStmt), true
	}
	return "", false
}

var discardKinds = map[pg.DiscardMode]string{
	pg.DiscardMode_DISCARD_ALL:       "discard_all",
	pg.DiscardMode_DISCARD_PLANS:     "discard_plans",
	pg.DiscardMode_DISCARD_SEQUENCES: "discard_sequences",
	pg.DiscardMode_DISCARD_TEMP:      "discard_temp",
}

var transactionKinds = map[pg.TransactionStmtKind]string{
	pg.TransactionStmtKind_TRANS_STMT_BEGIN:             "begin",
	pg.TransactionStmtKind_TRANS_STMT_START:             "begin",
	pg.TransactionStmtKind_TRANS_STMT_COMMIT:            "commit",
	pg.TransactionStmtKind_TRANS_STMT_ROLLBACK:          "rollback",
	pg.TransactionStmtKind_TRANS_STMT_SAVEPOINT:         "savepoint",
	pg.TransactionStmtKind_TRANS_STMT_RELEASE:           "release",
	pg.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:       "rollback_to",
	pg.TransactionStmtKind_TRANS_STMT_PREPARE:           "prepare_transaction",
	pg.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED:   "commit_prepared",
	pg.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED: "rollback_prepared",
}

func (a *analyzer) transaction(t *pg.TransactionStmt) string {
	kind := transactionKinds[t.GetKind()]
	if kind == "" {
		kind = "utility"
		return kind
	}
	name := t.GetSavepointName()
	if name == "" {
		name = t.GetGid()
	}
	a.effect = &Effect{Kind: kind, Name: name}
	return kind
}

// setStmt turns SET / RESET into an effect.
func (a *analyzer) setStmt(s *pg.VariableSetStmt) string {
	name := strings.ToLower(s.GetName())
	switch s.GetKind() {
	case pg.VariableSetKind_VAR_SET_VALUE:
		args := s.GetArgs()
		if strings.HasPrefix(name, "pgguard.") && len(args) != 1 {
			a.deny(CodePurpose, "SET %s takes exactly one value", name)
			return "set"
		}
		value, ok := flattenSetArgs(args, listQuoted[name])
		if !ok {
			a.deny(CodeUnsupported, "SET %s with a value of an unexpected form", name)
			return "set"
		}
		a.effect = &Effect{Kind: "set", Name: name, Value: value, Local: s.GetIsLocal()}
	case pg.VariableSetKind_VAR_SET_DEFAULT:
		a.effect = &Effect{Kind: "set", Name: name, Local: s.GetIsLocal()}
	case pg.VariableSetKind_VAR_RESET:
		a.effect = &Effect{Kind: "reset", Name: name}
		return "reset"
	case pg.VariableSetKind_VAR_RESET_ALL:
		a.effect = &Effect{Kind: "reset_all"}
		return "reset"
	}
	// SET TRANSACTION ... and SET ... FROM CURRENT change nothing the
	// proxy follows.
	return "set"
}

// listQuoted are the settings whose list elements PostgreSQL quotes as
// identifiers when it shows them (GUC_LIST_QUOTE).
var listQuoted = map[string]bool{
	"search_path": true, "temp_tablespaces": true, "session_preload_libraries": true,
	"shared_preload_libraries": true, "local_preload_libraries": true,
}

// flattenSetArgs renders SET arguments as PostgreSQL's SHOW would.
func flattenSetArgs(args []*pg.Node, quote bool) (string, bool) {
	parts := make([]string, 0, len(args))
	for _, arg := range args {
		if tc := arg.GetTypeCast(); tc != nil {
			arg = tc.GetArg()
		}
		c := arg.GetAConst()
		if c == nil {
			return "", false
		}
		var v string
		switch {
		case c.GetSval() != nil:
			v = c.GetSval().GetSval()
			if quote {
				v = quoteIdent(v)
			}
		case c.GetIval() != nil:
			v = strconv.FormatInt(int64(c.GetIval().GetIval()), 10)
		case c.GetFval() != nil:
			v = c.GetFval().GetFval()
		case c.GetBoolval() != nil:
			v = strconv.FormatBool(c.GetBoolval().GetBoolval())
		default:
			return "", false
		}
		parts = append(parts, v)
	}
	return strings.Join(parts, ", "), true
}

// quoteIdent quotes an identifier as PostgreSQL's quote_ident does: not
// when it is lower-case letters, digits and underscores starting with a
// letter or underscore and is not a keyword that needs quoting.
func quoteIdent(s string) string {
	safe := s != ""
	for i := 0; i < len(s) && safe; i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case c >= '0' && c <= '9':
			safe = i > 0
		default:
			safe = false
		}
	}
	if safe && isReservedWord(s) {
		safe = false
	}
	if safe {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// isReservedWord asks PostgreSQL's own scanner whether s is a keyword
// that must be quoted to be used as a name.
func isReservedWord(s string) bool {
	res, err := pg.Scan(s)
	if err != nil || len(res.GetTokens()) != 1 {
		return false
	}
	k := res.GetTokens()[0].GetKeywordKind()
	return k != pg.KeywordKind_NO_KEYWORD && k != pg.KeywordKind_UNRESERVED_KEYWORD
}

// utility classifies the remaining statements: maintenance and
// notification statements change no schema; everything else is DDL, whose
// embedded expressions (defaults, checks, index expressions) still have
// their functions checked, since those run later on every write.
func (a *analyzer) utility(n *pg.Node) string {
	switch n.GetNode().(type) {
	case *pg.Node_VacuumStmt, *pg.Node_ClusterStmt, *pg.Node_ReindexStmt,
		*pg.Node_CheckPointStmt, *pg.Node_LockStmt, *pg.Node_ListenStmt,
		*pg.Node_UnlistenStmt, *pg.Node_NotifyStmt, *pg.Node_ConstraintsSetStmt,
		*pg.Node_AlterSystemStmt:
		return "utility"
	case *pg.Node_LoadStmt:
		a.deny(CodeUnsupported, "LOAD loads code into the database server")
		return "utility"
	case *pg.Node_ReturnStmt, *pg.Node_PlassignStmt:
		a.deny(CodeUnsupported, "%s is not a top-level statement", nodeName(n))
		return "utility"
	case *pg.Node_CreateFunctionStmt:
		// The body is stored, not run; calling the function is checked.
		a.ddl = true
		a.attaches = attachedCode(n)
		return "ddl"
	}
	a.ddl = true
	a.attaches = attachedCode(n)
	a.ddlCalls(n.ProtoReflect())
	if !a.failed() {
		a.storedRowReads(n)
	}
	return "ddl"
}

// ddlCalls checks every function call and operator anywhere inside a DDL
// statement.
func (a *analyzer) ddlCalls(m protoreflect.Message) {
	walkMessages(m, func(msg proto.Message) bool {
		if !a.tick() {
			return false
		}
		node, ok := msg.(*pg.Node)
		if !ok {
			return true
		}
		switch x := node.GetNode().(type) {
		case *pg.Node_FuncCall:
			a.checkFunction(stringList(x.FuncCall.GetFuncname()), len(x.FuncCall.GetArgs()))
		case *pg.Node_AExpr:
			a.checkOperator(stringList(x.AExpr.GetName()))
		case *pg.Node_CreateFunctionStmt:
			return false // the body is stored, not run
		}
		return !a.failed()
	})
}

// collectTemps finds the temporary tables the input creates, so later
// statements in it can use them. CREATE ... IF NOT EXISTS creates nothing
// when the session's temporary schema already holds a relation of that
// name (existing, as the server reported, or made earlier in the input):
// then the name keeps meaning that relation, perhaps a temporary view over
// anything, and is not taken for the new table.
func collectTemps(raws []*pg.RawStmt, existing []string) map[string]*tempTable {
	temps := map[string]*tempTable{}
	made := map[string]bool{}
	add := func(rv *pg.RangeVar, cols []string, ifNotExists bool) {
		if rv == nil || (rv.GetRelpersistence() != "t" && !strings.HasPrefix(rv.GetSchemaname(), "pg_temp")) {
			return
		}
		name := rv.GetRelname()
		if ifNotExists && (made[name] || slices.Contains(existing, name)) {
			return
		}
		made[name] = true
		temps[name] = &tempTable{name: name, cols: cols}
	}
	for _, r := range raws {
		switch x := r.GetStmt().GetNode().(type) {
		case *pg.Node_CreateStmt:
			add(x.CreateStmt.GetRelation(), createColumns(x.CreateStmt), x.CreateStmt.GetIfNotExists())
		case *pg.Node_CreateTableAsStmt:
			into := x.CreateTableAsStmt.GetInto()
			add(into.GetRel(), nilIfEmpty(stringList(into.GetColNames())), x.CreateTableAsStmt.GetIfNotExists())
		case *pg.Node_SelectStmt:
			if into := x.SelectStmt.GetIntoClause(); into != nil {
				add(into.GetRel(), nilIfEmpty(stringList(into.GetColNames())), false)
			}
		case *pg.Node_ViewStmt:
			markTemp(made, x.ViewStmt.GetView())
		case *pg.Node_CreateSeqStmt:
			markTemp(made, x.CreateSeqStmt.GetSequence())
		}
	}
	return temps
}

// markTemp notes a temporary relation other than a table that the input
// creates.
func markTemp(made map[string]bool, rv *pg.RangeVar) {
	if rv != nil && (rv.GetRelpersistence() == "t" || strings.HasPrefix(rv.GetSchemaname(), "pg_temp")) {
		made[rv.GetRelname()] = true
	}
}

// createColumns lists a CREATE TABLE's columns, or nil when some come
// from elsewhere (LIKE, INHERITS, OF type, PARTITION OF).
func createColumns(c *pg.CreateStmt) []string {
	if len(c.GetInhRelations()) > 0 || c.GetOfTypename() != nil || c.GetPartbound() != nil {
		return nil
	}
	var cols []string
	for _, e := range c.GetTableElts() {
		switch {
		case e.GetColumnDef() != nil:
			cols = append(cols, e.GetColumnDef().GetColname())
		case e.GetTableLikeClause() != nil:
			return nil
		}
	}
	return nilIfEmpty(cols)
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
