package sqlscan

import (
	pg "github.com/pganalyze/pg_query_go/v6"
	"slices"
	"strings"

	"github.com/pgguard/pgguard/catalog"
)

// Built-in schemas: their functions are PostgreSQL's own.
const (
	pgCatalog  = "pg_catalog"
	infoSchema = "information_schema"
)

func isBuiltinSchema(s string) bool { return s == pgCatalog || s == infoSchema }

// searchPath is the list of schemas unqualified names resolve through.
type searchPath struct {
	// schemas in search order, pg_catalog included where PostgreSQL
	// searches it. Schemas the catalog does not know are kept: a relation
	// found after one of them might be shadowed by a relation created since
	// the snapshot.
	schemas []string
	// unknown is true when the session's path is not known: then every
	// relation or function of the name is a candidate.
	unknown bool
}

// relationPath builds the effective path from a search_path list as
// PostgreSQL does: "$user" becomes the user's own schema (skipped silently
// when there is none, as PostgreSQL does), temporary schemas are left to the
// temp-table logic, and pg_catalog is searched first unless listed.
func relationPath(cat *catalog.Snapshot, list []string, user string) searchPath {
	if list == nil {
		return searchPath{unknown: true}
	}
	out := make([]string, 0, len(list)+1)
	listed := false
	for _, s := range list {
		if s == pgCatalog {
			listed = true
		}
	}
	if !listed {
		out = append(out, pgCatalog)
	}
	for _, s := range list {
		switch {
		case s == "$user":
			if user == "" || !cat.HasSchema(user) {
				continue
			}
			s = user
		case s == "pg_temp" || strings.HasPrefix(s, "pg_temp_"):
			continue
		}
		out = append(out, s)
	}
	return searchPath{schemas: out}
}

// resolvedRelation is what a relation name in FROM or a DML target means.
type resolvedRelation struct {
	rels []*catalog.Relation
	temp *tempTable
	// builtin is set for a pg_catalog or information_schema relation an
	// incomplete (DDL file) snapshot does not describe.
	builtin *catalog.QualifiedName
}

// resolveRelation finds the catalog relations a (possibly qualified) name
// may denote. It denies cross-database names and unknown relations.
func (a *analyzer) resolveRelation(catalogName, schema, name string) (resolvedRelation, bool) {
	if catalogName != "" && catalogName != a.s.database {
		a.deny(CodeUnsupported, "cross-database reference to %s.%s.%s", catalogName, schema, name)
		return resolvedRelation{}, false
	}
	if schema != "" {
		return a.resolveQualified(schema, name)
	}
	var res resolvedRelation
	if !a.settled(name) || !a.notTemporary(name) {
		return res, false
	}
	res.temp = a.s.temps[name]
	if res.temp == nil {
		res.temp = a.sessionTempTable(name)
	}
	res.rels = a.searchRelation(name)
	if len(res.rels) == 0 && res.temp == nil {
		if !a.s.cat.Complete && strings.HasPrefix(name, "pg_") {
			res.builtin = &catalog.QualifiedName{Schema: pgCatalog, Name: name}
			return res, true
		}
		a.denyAsServer(CodeUnknownRelation, "42P01", a.loc, "relation \""+name+"\" does not exist", "relation %s is not in the catalog", name)
		return res, false
	}
	return res, true
}

func (a *analyzer) resolveQualified(schema, name string) (resolvedRelation, bool) {
	var res resolvedRelation
	if !a.settled(name) {
		return res, false
	}
	if schema == "pg_temp" || strings.HasPrefix(schema, "pg_temp_") {
		if !a.notTemporary(name) {
			return res, false
		}
		if t := a.s.temps[name]; t != nil {
			res.temp = t
			return res, true
		}
		if t := a.sessionTempTable(name); t != nil {
			res.temp = t
			return res, true
		}
		a.deny(CodeUnknownRelation, "temporary relation %s is not known", name)
		return res, false
	}
	if r, ok := a.s.cat.Relation(schema, name); ok {
		res.rels = []*catalog.Relation{r}
		return res, true
	}
	if !a.s.cat.Complete && isBuiltinSchema(schema) {
		res.builtin = &catalog.QualifiedName{Schema: schema, Name: name}
		return res, true
	}
	a.denyAsServer(CodeUnknownRelation, "42P01", a.loc, "relation \""+schema+"."+name+"\" does not exist", "relation %s.%s is not in the catalog", schema, name)
	return res, false
}

// settled refuses a relation name that DDL earlier in the same input
// named, or that Context.Unsettled lists: nothing describes it with
// certainty yet.
func (a *analyzer) settled(name string) bool {
	if a.s.changed[name] || a.s.changed[AllRelations] ||
		slices.Contains(a.s.ctx.Unsettled, name) || slices.Contains(a.s.ctx.Unsettled, AllRelations) {
		a.deny(CodeTemporary, "relation %s was changed by DDL earlier in this message or sync segment, or is not a table or view; pgguard decides on it once the server has reported what the change did", name)
		return false
	}
	return true
}

// notTemporary refuses a name of the session's temporary schema, which the
// server reports at every confirmation and PostgreSQL searches before the
// path (so it also hides any table of the same name): pgguard does not
// hold its definition.
func (a *analyzer) notTemporary(name string) bool {
	if a.s.temps[name] != nil || a.sessionTempTable(name) != nil {
		return true
	}
	if slices.Contains(a.s.ctx.TempRelations, name) {
		a.deny(CodeTemporary, "relation %s may be the session's temporary relation, whose definition pgguard does not read", name)
		return false
	}
	return true
}

// sessionTempTable is the session's temporary table of that name, created
// before this input, or nil.
func (a *analyzer) sessionTempTable(name string) *tempTable {
	for _, t := range a.s.ctx.TempTables {
		if t.Name == name {
			return &tempTable{name: name, cols: t.Columns}
		}
	}
	return nil
}

// searchRelation resolves an unqualified name through the path. When the
// path is unknown, or a schema before the match is missing from the
// catalog, every relation of that name is a candidate. PostgreSQL skips a
// schema the session may not use (no USAGE): a match in a schema not
// confirmed usable (Context.UsableSchemas) leaves the next match on the
// path a candidate too.
func (a *analyzer) searchRelation(name string) []*catalog.Relation {
	all := a.s.cat.RelationsNamed(name)
	if a.path.unknown {
		return all
	}
	shaky := false
	var found []*catalog.Relation
	for _, s := range a.path.schemas {
		if !a.s.cat.HasSchema(s) {
			shaky = true
			continue
		}
		if r, ok := a.s.cat.Relation(s, name); ok {
			if shaky {
				return all
			}
			found = append(found, r)
			if a.usable(s) {
				return found
			}
		}
	}
	if shaky {
		return all
	}
	return found
}

// usable reports whether the server is known to search schema s of the
// path: pg_catalog always, others when the session's state lists them.
func (a *analyzer) usable(s string) bool {
	u := a.s.ctx.UsableSchemas
	return u == nil || s == pgCatalog || slices.Contains(u, s)
}

// functionCandidates lists the functions an unqualified call may run:
// those of that name in schemas on the path, or anywhere when the path is
// unknown.
func (a *analyzer) functionCandidates(name string) []*catalog.Function {
	all := a.s.cat.FunctionsNamed(name)
	if a.path.unknown || len(all) == 0 {
		return all
	}
	var out []*catalog.Function
	for _, f := range all {
		for _, s := range a.path.schemas {
			if f.Schema == s {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// checkFunction denies a call that may run something we cannot see into:
// a deny-listed built-in, or a function outside the built-in schemas that
// the context does not allow. names is the call's name as written.
func (a *analyzer) checkFunction(names []string, nargs int) {
	args := make([]operand, nargs)
	a.checkCall(names, args)
}

// checkFunctionCall is checkFunction with what is known of the arguments'
// types, so that an overload they cannot reach does not count.
func (a *analyzer) checkFunctionCall(names []string, argNodes []*pg.Node, sc *scope) {
	args := make([]operand, len(argNodes))
	for i, n := range argNodes {
		args[i] = a.operandType(n, sc)
	}
	a.checkCall(names, args)
}

func (a *analyzer) checkCall(names []string, args []operand) {
	nargs := len(args)
	if len(names) == 0 || a.failed() {
		return
	}
	name := names[len(names)-1]
	schema := ""
	if len(names) >= 2 {
		schema = names[len(names)-2]
	}
	if len(names) >= 3 && names[len(names)-3] != a.s.database {
		a.deny(CodeUnsupported, "cross-database function reference %s", strings.Join(names, "."))
		return
	}
	if reason, bad := unsafeFunction(name, nargs); bad && !a.inReviewedView() {
		a.deny(CodeUnsafeFunction, "%s %s", qualify(schema, name), reason)
		return
	}
	if schema != "" {
		a.checkQualifiedFunction(schema, name)
		return
	}
	cands := a.functionCandidates(name)
	if len(cands) == 0 {
		if a.s.cat.Complete {
			a.deny(CodeFunction, "function %s is not in the catalog", name)
		}
		// An incomplete snapshot knows no built-ins: the name is assumed to
		// be one of pg_catalog's, and the deny list above applied to it.
		return
	}
	for _, f := range cands {
		if !a.functionMayRun(f.Schema, f.Name, f.BuiltIn) && !a.extensionTrusted(f.Extension) && a.callMayReach(f, args) {
			a.deny(CodeFunction, "function %s.%s is not a built-in and is not allowed", f.Schema, f.Name)
			return
		}
	}
}

// callMayReach reports whether some overload of f may take the arguments:
// false only when each overload certainly cannot, by its number of
// arguments or by an argument's type (see mayCoerce).
func (a *analyzer) callMayReach(f *catalog.Function, args []operand) bool {
	if f.Overloads == nil || !a.s.cat.KnowsTypes() {
		return true
	}
	for _, sig := range f.Overloads {
		if sig.Variadic {
			return true
		}
		if len(args) > len(sig.Args) || len(args) < len(sig.Args)-sig.Defaults {
			continue
		}
		fits := true
		for i, arg := range args {
			if !a.mayCoerce(arg, sig.Args[i]) {
				fits = false
				break
			}
		}
		if fits {
			return true
		}
	}
	return false
}

func (a *analyzer) checkQualifiedFunction(schema, name string) {
	f, ok := a.s.cat.Function(schema, name)
	switch {
	case isBuiltinSchema(schema):
		if !ok && a.s.cat.Complete {
			a.deny(CodeFunction, "function %s.%s is not in the catalog", schema, name)
		}
	case ok && (f.BuiltIn || a.extensionTrusted(f.Extension)):
	case !a.functionMayRun(schema, name, false):
		a.deny(CodeFunction, "function %s.%s is not a built-in and is not allowed", schema, name)
	}
}

// functionMayRun: built-ins may; others when the context allows them, or
// inside a view definition, which the database owner wrote and which the
// analysis expands rather than trusts.
func (a *analyzer) functionMayRun(schema, name string, builtin bool) bool {
	if builtin || isBuiltinSchema(schema) {
		return true
	}
	if a.viewDepth > 0 {
		// The view's owner chose it; it runs, but its body may change the
		// session's state as a function the policy allows may.
		a.userCode = true
		return true
	}
	if a.s.ctx.FunctionAllowed != nil && a.s.ctx.FunctionAllowed(schema, name) {
		// Its body may change the session's state (set_config, SET in a
		// function): the statement is one after which the state is read
		// again.
		a.userCode = true
		if f := schema + "." + name; !slices.Contains(a.allowed, f) {
			a.allowed = append(a.allowed, f)
		}
		return true
	}
	return false
}

// checkOperator denies operators that may be user-defined: an explicitly
// qualified one outside pg_catalog, or a symbol some schema on the path
// defines (operator resolution picks by argument types, so any of them may
// be the one that runs).
func (a *analyzer) checkOperator(names []string) {
	if len(names) == 0 || a.failed() {
		return
	}
	sym := names[len(names)-1]
	if len(names) >= 2 {
		schema := names[len(names)-2]
		if schema != pgCatalog && !a.qualifiedOperatorMayRun(schema, sym) {
			a.deny(CodeFunction, "operator %s.%s is not a built-in and is not allowed", schema, sym)
		}
		return
	}
	for _, op := range a.s.cat.UserOperators(sym) {
		if !a.onPath(op.Schema) {
			continue
		}
		if !a.operatorMayRun(op) {
			a.deny(CodeFunction, "operator %s may run %s.%s, which is not a built-in and is not allowed", sym, op.Schema, op.Name)
			return
		}
	}
}

// qualifiedOperatorMayRun: OPERATOR(schema.sym) runs one of the schema's
// operators of that symbol; all of them must be allowed.
func (a *analyzer) qualifiedOperatorMayRun(schema, sym string) bool {
	found := false
	for _, op := range a.s.cat.UserOperators(sym) {
		if op.Schema != schema {
			continue
		}
		found = true
		if !a.operatorMayRun(op) {
			return false
		}
	}
	return found || a.functionMayRun(schema, sym, false)
}

func (a *analyzer) onPath(schema string) bool {
	if a.path.unknown {
		return true
	}
	for _, s := range a.path.schemas {
		if s == schema {
			return true
		}
	}
	return false
}

func qualify(schema, name string) string {
	if schema == "" {
		return name
	}
	return schema + "." + name
}

// rowFunctions are the built-ins with a form that one argument of any row
// type can call (its parameter is record, "any", anyelement, anynonarray,
// anycompatible or anycompatiblenonarray, the others defaulted): for them
// name(t) runs the function, not t.name. TestRowFunctionsCoverTheServer
// checks the list against the server's pg_proc.
var rowFunctions = map[string]bool{
	"any_out": true, "any_value": true, "anycompatible_out": true, "anycompatiblenonarray_out": true,
	"anyelement_out": true, "anynonarray_out": true, "array_agg": true, "concat": true, "count": true,
	"cume_dist": true, "dense_rank": true, "first_value": true, "hash_record": true,
	"hash_record_extended": true, "json_agg": true, "json_agg_strict": true, "json_build_array": true,
	"json_build_object": true, "jsonb_agg": true, "jsonb_agg_strict": true, "jsonb_build_array": true,
	"jsonb_build_object": true, "lag": true, "last_value": true, "lead": true, "mode": true,
	"num_nonnulls": true, "num_nulls": true, "percent_rank": true, "pg_collation_for": true,
	"pg_column_compression": true, "pg_column_size": true, "pg_column_toast_chunk_id": true,
	"pg_typeof": true, "quote_literal": true, "quote_nullable": true, "rank": true, "record_out": true,
	"record_send": true, "row_to_json": true, "to_json": true, "to_jsonb": true,
}

// inReviewedView reports whether the analysis is inside the definition of
// a built-in view whose sensitive columns are listed (sensitiveRelations):
// its functions may show other sessions' data, but only through those
// columns, which are refused where they are read.
func (a *analyzer) inReviewedView() bool {
	view, ok := strings.CutPrefix(a.viewClause, "view:")
	if !ok || a.viewDepth != 1 {
		return false
	}
	schema, name, _ := strings.Cut(view, ".")
	s, ok := lookupSensitive(schema, name)
	return ok && s.columns != nil && schema == pgCatalog
}
