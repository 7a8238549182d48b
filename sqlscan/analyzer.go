package sqlscan

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgguard/pgguard/catalog"
)

// Limits that bound the work one input can cause. Past them the statement is
// denied rather than analysed partially.
const (
	// maxNodes bounds the expression and FROM nodes visited per input,
	// view expansions included.
	maxNodes = 500_000
	// maxViewDepth bounds views nested in views.
	maxViewDepth = 16
	// maxViews bounds the distinct views expanded per input.
	maxViews = 512
	// maxExprDepth bounds expression nesting.
	maxExprDepth = 3000
)

// session is what the statements of one input share: the catalog, the
// session context, temporary tables created earlier in the same input and
// the views already expanded.
type session struct {
	sql      string // the whole input, which error positions count in
	cat      *catalog.Snapshot
	ctx      Context
	database string
	path     searchPath
	temps    map[string]*tempTable
	// tempLineage is what was ever written into any of the session's
	// temporary tables: rows move between them (renames, inheritance,
	// attached partitions) where the analysis does not follow, so reading
	// any one reads all of it.
	tempLineage []Access
	// changed are the relation names DDL earlier in the same input named:
	// the catalog no longer describes them with certainty.
	changed map[string]bool
	// created are the tables (not temporary) created earlier in the same
	// input, as "schema.name" spelt in their CREATE ("" schema when
	// unqualified).
	created map[string]bool
	views   map[*catalog.Relation]*viewResult
	budget  int
	// pathList, role and pathChanged follow SET search_path and SET ROLE
	// made earlier in the same input.
	pathList    []string
	role        string
	pathChanged bool
}

// tempTable is a temporary table created in the same input, or earlier in
// the session. cols is nil when its columns are not known.
type tempTable struct {
	name string
	cols []string
}

func newSession(sql string, cat *catalog.Snapshot, ctx Context, raws []*pg.RawStmt) *session {
	s := &session{sql: sql, cat: cat, ctx: ctx, database: ctx.Database, budget: maxNodes, pathList: ctx.SearchPath}
	if s.database == "" {
		s.database = cat.Database
	}
	s.path = relationPath(cat, ctx.SearchPath, ctx.User)
	s.temps = collectTemps(raws, ctx.TempRelations)
	s.tempLineage = append([]Access(nil), ctx.TempLineage...)
	return s
}

// follow applies a statement's effect on name resolution to the statements
// after it in the same input, which the proxy cannot re-analyse in
// between. A new search_path or role is followed when its value is known;
// anything that restores an earlier value the analysis cannot see (RESET,
// DISCARD ALL, the end of a transaction or a rollback to a savepoint after
// such a change) makes the path unknown, so every candidate counts.
func (s *session) follow(e *Effect) {
	if e == nil {
		return
	}
	switch {
	case e.Kind == "set" && e.Name == "search_path":
		s.pathChanged = true
		// "" is SET ... TO DEFAULT: the session default, not known here.
		if list := ParseSearchPath(e.Value); list != nil && e.Value != "" {
			s.pathList = list
			s.path = relationPath(s.cat, list, s.user())
			return
		}
		s.path = searchPath{unknown: true}
	case e.Kind == "set" && (e.Name == "role" || e.Name == "session_authorization"):
		s.pathChanged = true
		s.role = e.Value
		if e.Value == "" || e.Value == "none" || e.Value == "default" {
			s.path = searchPath{unknown: true}
			return
		}
		s.path = relationPath(s.cat, s.pathList, s.user())
	case e.Kind == "reset" && (e.Name == "search_path" || e.Name == "role" || e.Name == "session_authorization"),
		e.Kind == "reset_all", e.Kind == "discard_all":
		s.pathChanged = true
		s.path = searchPath{unknown: true}
	case s.pathChanged && (e.Kind == "commit" || e.Kind == "rollback" || e.Kind == "rollback_to" ||
		e.Kind == "prepare_transaction"):
		s.path = searchPath{unknown: true}
	}
}

// user is the name "$user" stands for: the role set in this input, or the
// session's.
func (s *session) user() string {
	if s.role != "" {
		return s.role
	}
	return s.ctx.User
}

// analyzer walks one statement. Its fields that change while walking
// (sink, clause, view state) are saved and restored around nested parts.
type analyzer struct {
	s *session
	// sink receives accesses; select-list items of views collect into their
	// output column's lineage instead of the statement's list.
	sink *[]Access
	// clause names the part of the statement being walked.
	clause string
	// viewClause, inside a view's definition, overrides clause.
	viewClause string
	viewDepth  int
	// path resolves unqualified names: the session's, or a view
	// definition's own.
	path   searchPath
	denial *Denial
	effect *Effect
	ddl    bool
	// attaches names the code a DDL statement attaches (see attachedCode).
	attaches string
	// userCode is set when a function or operator outside the built-ins
	// that the context allows may run; allowed names those functions.
	userCode bool
	allowed  []string
	// readsTemp is set when a name resolves to a temporary table.
	readsTemp bool
	// tempWrites are the temporary tables the statement writes.
	tempWrites []string
	// loc is the byte offset of the name being resolved, for the position
	// of an error the server would give; -1 for none.
	loc int32
	// setConfig is the one set_config call recognised as a session effect.
	setConfig *pg.FuncCall
	// noEffects is set under EXPLAIN, where a session change may or may
	// not happen.
	noEffects bool
	depth     int
}

// statement analyses one top-level statement.
func (s *session) statement(n *pg.Node) Statement {
	// Room for a typical statement's accesses up front, rather than
	// growing through 1, 2, 4, 8.
	acc := make([]Access, 0, 8)
	a := &analyzer{s: s, sink: &acc, path: s.path, loc: -1}
	kind := a.topLevel(n)
	st := Statement{Kind: kind, Effect: a.effect, DDL: a.ddl, Attaches: a.attaches, UserCode: a.userCode}
	if a.ddl {
		var temp bool
		st.Changes, temp = s.ddlChanges(n)
		st.TempOnly = len(st.Changes) == 0 && (temp || createsTemp(n))
		s.noteCreated(n)
	}
	if a.denial == nil {
		a.checkSensitiveColumns(acc)
	}
	if a.denial != nil {
		st.Denial = a.denial
		return st
	}
	st.Accesses = dedup(acc)
	st.TempWrites = a.tempWrites
	st.AllowedFunctions = a.allowed
	st.ReadsTemp = a.readsTemp
	s.flowIntoTemps(a.tempWrites, st.Accesses)
	return st
}

// flowIntoTemps adds what a statement that writes a temporary table read
// to the lineage of the session's temporary tables, for the statements
// after it.
func (s *session) flowIntoTemps(names []string, accesses []Access) {
	if len(names) == 0 {
		return
	}
	for _, a := range accesses {
		if a.Act == Read {
			a.Clause = ""
			s.tempLineage = append(s.tempLineage, a)
		}
	}
	s.tempLineage = dedup(s.tempLineage)
}

// denyAsServer is deny for a statement PostgreSQL itself refuses: it also
// records the error the server would give, pointing at loc (a byte offset
// in the input, -1 for none).
func (a *analyzer) denyAsServer(code, sqlstate string, loc int32, message, format string, args ...any) {
	if a.denial != nil {
		return
	}
	a.deny(code, format, args...)
	a.denial.Server = &ServerError{SQLState: sqlstate, Message: message, Position: a.s.position(loc)}
}

// position turns a byte offset in the input into PostgreSQL's 1-based
// character position; 0 when there is none.
func (s *session) position(loc int32) int {
	if loc < 0 || int(loc) > len(s.sql) {
		return 0
	}
	return utf8.RuneCountInString(s.sql[:loc]) + 1
}

// deny records the first reason the statement cannot be analysed.
func (a *analyzer) deny(code, format string, args ...any) {
	if a.denial == nil {
		a.denial = &Denial{Code: code, Reason: fmt.Sprintf(format, args...)}
	}
}

// failed reports whether analysis already ended in a denial; walkers stop
// early then.
func (a *analyzer) failed() bool { return a.denial != nil }

// tick spends one unit of the node budget.
func (a *analyzer) tick() bool {
	if a.denial != nil {
		return false
	}
	a.s.budget--
	if a.s.budget < 0 {
		a.deny(CodeUnsupported, "the statement is too complex to analyse")
		return false
	}
	return true
}

// curClause is the clause an access made now is attributed to.
func (a *analyzer) curClause() string {
	if a.viewClause != "" {
		return a.viewClause
	}
	return a.clause
}

// withClause runs f with the clause set to c.
func (a *analyzer) withClause(c string, f func()) {
	saved := a.clause
	a.clause = c
	f()
	a.clause = saved
}

// collect runs f with a fresh sink and returns what it emitted.
func (a *analyzer) collect(f func()) []Access {
	var out []Access
	saved := a.sink
	a.sink = &out
	f()
	a.sink = saved
	return out
}

// emit records an access. Each one spends budget, so a statement that
// repeats wide references cannot grow the list without bound.
func (a *analyzer) emit(acc Access) {
	a.s.budget--
	if a.s.budget < 0 {
		a.deny(CodeUnsupported, "the statement is too complex to analyse")
		return
	}
	*a.sink = append(*a.sink, acc)
}

// emitAll emits accesses already attributed to a clause (as collected).
func (a *analyzer) emitAll(accs []Access) {
	a.s.budget -= len(accs)
	if a.s.budget < 0 {
		a.deny(CodeUnsupported, "the statement is too complex to analyse")
		return
	}
	*a.sink = append(*a.sink, accs...)
}

// readColumn emits the reads a reference to c makes here.
func (a *analyzer) readColumn(c *column) { a.useColumn(c, Read) }

// writeColumn emits the writes an assignment to c makes here: the column
// itself and, through a view, the stored columns behind it.
func (a *analyzer) writeColumn(c *column) { a.useColumn(c, Write) }

func (a *analyzer) useColumn(c *column, act Act) {
	cl := a.curClause()
	for _, l := range c.lineage {
		l.Act = act
		if !strings.HasPrefix(l.Clause, "view:") {
			l.Clause = cl
		}
		a.emit(l)
	}
}

// readWholeRow emits reads of every column of r.
func (a *analyzer) readWholeRow(r *rel) {
	saved := a.clause
	a.clause = "whole_row"
	for _, c := range r.cols {
		a.readColumn(c)
	}
	if r.anyCols || r.unknownSelf != nil {
		a.readColumn(&column{lineage: r.anyLineage})
	}
	a.clause = saved
}

// dedup keeps the first of equal accesses, in order. Lineage lists are
// deduplicated wherever they merge, so they stay as small as the set of
// distinct columns behind them however often a query repeats a reference.
func dedup(in []Access) []Access {
	if len(in) < 2 {
		return in
	}
	if len(in) <= 16 {
		out := in[:0:0]
	next:
		for _, x := range in {
			for _, y := range out {
				if x == y {
					continue next
				}
			}
			out = append(out, x)
		}
		return out
	}
	seen := make(map[Access]bool, len(in))
	out := in[:0:0]
	for _, x := range in {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// noteCreated records a table that n creates, not temporary, for
// createdEarlier.
func (s *session) noteCreated(n *pg.Node) {
	var rv *pg.RangeVar
	switch x := n.GetNode().(type) {
	case *pg.Node_CreateStmt:
		rv = x.CreateStmt.GetRelation()
	case *pg.Node_CreateTableAsStmt:
		rv = x.CreateTableAsStmt.GetInto().GetRel()
	case *pg.Node_SelectStmt:
		rv = x.SelectStmt.GetIntoClause().GetRel()
	}
	if rv == nil || createsTemp(n) {
		return
	}
	if s.created == nil {
		s.created = map[string]bool{}
	}
	s.created[rv.GetSchemaname()+"."+rv.GetRelname()] = true
}

// temporaryName reports whether an unqualified name may denote a relation
// of the session's temporary schema.
func (s *session) temporaryName(name string) bool {
	return s.temps[name] != nil || slices.Contains(s.ctx.TempRelations, name)
}
