package sqlscan

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"

	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/internal/pgtree"
	"github.com/pgguard/pgguard/internal/sqldepth"
)

// Act says whether a statement learns a column's values or changes them.
type Act string

// The two acts a policy distinguishes.
const (
	Read  Act = "read"
	Write Act = "write"
)

// Access is one column a statement reads or writes, named as PostgreSQL
// stores it (unquoted identifiers folded to lower case).
type Access struct {
	Schema, Table, Column string
	Act                   Act
	// Clause says where in the statement the column is used: select, where,
	// join, group, having, order, window, distinct, limit, from, returning,
	// set, insert, values, delete, truncate, on_conflict, copy, whole_row,
	// refresh, or view:<schema.view> for columns read inside a view's
	// definition. It is for explanations; policies look only at Act.
	Clause string
}

// String renders "read schema.table.column (clause)".
func (a Access) String() string {
	return fmt.Sprintf("%s %s.%s.%s (%s)", a.Act, a.Schema, a.Table, a.Column, a.Clause)
}

// Context is what the analysis needs to know about the session.
type Context struct {
	// Database is the session's database; three-part names must name it.
	// Empty means the snapshot's database.
	Database string
	// User is the session user, for "$user" in the search path.
	User string
	// SearchPath is the session's effective search_path. nil means unknown:
	// then an unqualified name counts against every relation of that name in
	// any schema, and an unqualified function against every function of that
	// name.
	SearchPath []string
	// UsableSchemas are the schemas of the path the server confirmed it
	// searches (current_schemas): PostgreSQL skips a schema on the path
	// that does not exist or that the session may not use. nil counts
	// every schema of the catalog as usable.
	UsableSchemas []string
	// TempRelations are the names of the relations in the session's own
	// temporary schema, which PostgreSQL searches before the path for
	// relation names. pgguard does not hold their definitions, so a name
	// that may resolve to one of them is refused.
	TempRelations []string
	// TempTables are the plain tables among TempRelations, with their
	// columns as the server reports them: a name among them resolves to
	// the table (and, as PostgreSQL may find either, to any table of that
	// name on the path too). Their rows are what the session's own checked
	// statements put there: reading them reads TempLineage.
	TempTables []TempTable
	// TempLineage is what the statements that wrote any of the session's
	// temporary tables read (Statement.TempWrites). Rows move between
	// temporary tables where the analysis does not follow them (a rename,
	// inheritance, an attached partition), so reading any temporary table,
	// of the session or of this input, reads all of it.
	TempLineage []Access
	// Unsettled are relation names nothing describes with certainty: DDL
	// of the session's open transaction named them (Statement.Changes)
	// and the server has not yet reported what it did to them (the
	// guard then passes a snapshot that overlays the session's own view
	// of them, catalog.Snapshot.Overlay), or they name a kind of relation
	// the analysis does not model. A name among them is refused.
	Unsettled []string
	// ExtensionTrusted reports whether the functions and operators of an
	// extension count as known, as the built-ins do. nil trusts none.
	ExtensionTrusted func(name string) bool
	// FunctionAllowed names extra functions outside pg_catalog and
	// information_schema that may run. nil allows none.
	FunctionAllowed func(schema, name string) bool
	// Limits bound the text analysed; the zero value is the defaults.
	Limits Limits
}

// TempTable is a table of the session's temporary schema.
type TempTable struct {
	Name    string
	Columns []string
}

// Denial says why a statement cannot be analysed with certainty; the proxy
// refuses such a statement.
type Denial struct {
	// Code is one of the Code* constants.
	Code string
	// Reason is for humans. It never contains a literal value from the SQL
	// text, only names of objects and keywords.
	Reason string
	// Server is set when PostgreSQL itself would refuse the statement (a
	// syntax error, a relation or column that does not exist): the error
	// it would give, for the client to see instead of pgguard's.
	Server *ServerError
}

// ServerError is an error as PostgreSQL reports it.
type ServerError struct {
	// SQLState is the error's code, such as 42601 or 42P01.
	SQLState string
	// Message is PostgreSQL's (English) message.
	Message string
	// Position is the 1-based character position in the statement text
	// the error points at, 0 for none.
	Position int
}

// Denial codes.
const (
	CodeUnparsable       = "unparsable"        // the text does not parse
	CodeDoBlock          = "do_block"          // DO runs code we cannot see
	CodeCall             = "call"              // CALL runs a procedure we cannot see into
	CodeFunction         = "function"          // a function outside the built-ins, not allowed
	CodeUnsafeFunction   = "unsafe_function"   // a built-in that runs SQL text or reads files, logs, ...
	CodeSensitiveCatalog = "sensitive_catalog" // a catalog that exposes values or other sessions' statements
	CodeUnknownRelation  = "unknown_relation"  // a relation the catalog does not know (refresh and retry)
	CodeUnknownColumn    = "unknown_column"    // a column reference that resolves to nothing
	CodeCopyProgram      = "copy_program"      // COPY ... PROGRAM runs a shell command
	CodeCopyFile         = "copy_file"         // COPY to or from a server-side file
	CodeLexical          = "lexical"           // the text may be read differently by the server
	CodePurpose          = "purpose"           // a malformed or conflicting purpose declaration
	CodeUnsupported      = "unsupported"       // a form the analysis does not model
	CodeInternal         = "internal"          // a bug in the analysis; fail closed
	CodeTooDeep          = "too_deep"          // nests deeper than the parser can safely walk
	CodeTemporary        = "temporary"         // a name that may be the session's temporary relation
	CodeTooLarge         = "too_large"         // longer, or more tokens, than Limits allow
)

func (d *Denial) Error() string { return d.Code + ": " + d.Reason }

// Effect is a change to session state the proxy must track.
type Effect struct {
	// Kind is set, reset, reset_all, discard_all, discard_plans,
	// discard_sequences, discard_temp, prepare, execute, deallocate,
	// deallocate_all, declare, fetch, move, close, close_all, begin, commit,
	// rollback, savepoint, release, rollback_to, prepare_transaction,
	// commit_prepared or rollback_prepared.
	Kind string
	// Name is the setting (lower case) for set and reset, the prepared
	// statement, cursor (or portal) or savepoint name, or the two-phase
	// transaction id.
	Name string
	// Value is the new value of a set, as SHOW would print it ("" for
	// DEFAULT). For search_path it is the comma-joined quoted list.
	Value string
	// Local is true for SET LOCAL and set_config(..., true).
	Local bool
}

// Statement is the analysis of one statement of the input.
type Statement struct {
	// Kind classifies the statement: select, insert, update, delete, merge,
	// copy, truncate, set, reset, show, prepare, execute, deallocate, declare,
	// fetch, move, close, discard, explain, create_table_as, create_view,
	// refresh, begin, commit, rollback, savepoint, release, rollback_to,
	// prepare_transaction, commit_prepared, rollback_prepared, do, call, ddl,
	// utility, or unparsable.
	Kind string
	// Text is this statement's own slice of the input, trimmed of white space.
	Text string
	// Accesses are deduplicated and in order of first use.
	Accesses []Access
	// Purpose is the purpose declared in a sqlcommenter comment within this
	// statement's text, "" if none.
	Purpose string
	// Effect is the session change the statement makes, nil if none.
	Effect *Effect
	// Denial is set when the statement cannot be analysed with certainty.
	Denial *Denial
	// DDL is true when the statement changes the schema, so the proxy should
	// refresh its catalog afterwards.
	DDL bool
	// Attaches names the kind of code the statement attaches to the
	// database (function, procedure, cast, type, domain, operator,
	// aggregate, trigger, rule, policy, event trigger, extension, ...), ""
	// if none. Such a statement may run only where the policy allows act
	// ddl on object ddl.
	Attaches string
	// TempWrites are the temporary tables the statement writes (INSERT,
	// UPDATE, MERGE, COPY FROM, CREATE TABLE AS): what it reads flows into
	// them, and the session must add its reads to Context.TempLineage.
	TempWrites []string
	// UserCode is set when the statement may run a function or operator
	// outside the built-ins that Context.FunctionAllowed allows, whose body
	// may change session state as SET does.
	UserCode bool
	// AllowedFunctions are the functions outside the built-ins that
	// Context.FunctionAllowed allowed the statement to run, as
	// schema.name: their bodies may write temporary tables with rows of
	// anything they read.
	AllowedFunctions []string
	// ReadsTemp is set when a relation name of the statement resolves to
	// a temporary table (of the session, or created earlier in the input).
	ReadsTemp bool
	// TempOnly is set for DDL that only creates a temporary table (CREATE
	// TEMP TABLE, CREATE TEMP TABLE AS, SELECT INTO TEMP) or only names
	// the session's temporary relations (DROP, ALTER, CREATE INDEX of
	// them), naming no other relation: it changes nothing of the catalog,
	// which leaves temporary schemas out, so the catalog need not be read
	// again after it.
	TempOnly bool
	// Changes are, for a DDL statement, the relation names (without
	// schema) it creates, alters, renames (old and new names) or drops,
	// apart from temporary tables created in the same input: until the
	// catalog is read again after its transaction, no statement may be
	// decided on them (Context.Unsettled).
	Changes []string
}

// Result is the analysis of a whole query string.
type Result struct {
	Statements []Statement
}

// Denial returns the first statement's denial, or nil when every statement
// could be analysed.
func (r *Result) Denial() *Denial {
	for i := range r.Statements {
		if d := r.Statements[i].Denial; d != nil {
			return d
		}
	}
	return nil
}

// Analyze parses sql (one or more statements) and works out, for each
// statement, which columns of which relations it reads and writes, its
// declared purpose and its effect on the session. It never fails: what it
// cannot analyse with certainty carries a Denial. cat must not be nil.
func Analyze(sql string, cat *catalog.Snapshot, ctx Context) (res *Result) {
	defer func() {
		if p := recover(); p != nil {
			res = single(sql, "unparsable", &Denial{Code: CodeInternal, Reason: fmt.Sprintf("internal error while analysing the statement (%T)", p)})
		}
	}()
	if d := textDenial(sql, ctx.Limits); d != nil {
		return single(sql, "unparsable", d)
	}
	tree, err := pgtree.Parse(sql)
	if err != nil {
		d := &Denial{Code: CodeUnparsable, Reason: "the statement does not parse"}
		var pe *parser.Error
		if errors.As(err, &pe) {
			d.Server = &ServerError{SQLState: "42601", Message: pe.Message, Position: pe.Cursorpos}
		}
		return single(sql, "unparsable", d)
	}
	raws := tree.GetStmts()
	spans := statementSpans(sql, raws)
	purposes, pd := purposesBySpan(sql, spans)
	sess := newSession(sql, cat, ctx, raws)
	res = &Result{Statements: make([]Statement, 0, len(raws))}
	for i, raw := range raws {
		st := sess.statement(raw.GetStmt())
		st.Text = strings.TrimSpace(sql[spans[i].start:spans[i].end])
		st.Purpose = purposes[i].name
		if st.Denial == nil && purposes[i].denial != nil {
			st.Denial = purposes[i].denial
		}
		if st.Denial == nil && pd != nil {
			st.Denial = pd
		}
		res.Statements = append(res.Statements, st)
		sess.follow(st.Effect)
	}
	return res
}

// textDenial refuses text longer or with more tokens than lim allows,
// text the parser would not read as the server does (a NUL byte ends the C
// string pg_query sees, and pg_query reads UTF-8 only) and text nested so
// deeply that the parser's recursion could overflow its stack, which would
// end the process. Every call into pg_query that builds or walks a tree
// checks it first.
func textDenial(sql string, lim Limits) *Denial {
	if len(sql) > lim.withDefaults().MaxBytes {
		return CheckSize(sql, lim) // before any pass over the text
	}
	if strings.IndexByte(sql, 0) >= 0 {
		return &Denial{Code: CodeLexical, Reason: "the statement contains a NUL byte"}
	}
	if !utf8.ValidString(sql) {
		return &Denial{Code: CodeLexical, Reason: "the statement is not valid UTF-8"}
	}
	if d := CheckSize(sql, lim); d != nil {
		return d
	}
	if sqldepth.TooDeep(sql) {
		return &Denial{Code: CodeTooDeep, Reason: fmt.Sprintf("the statement nests more than %d levels deep", sqldepth.Limit())}
	}
	return nil
}

// single is a one-statement result, used when the text as a whole fails.
func single(sql, kind string, d *Denial) *Result {
	return &Result{Statements: []Statement{{Kind: kind, Text: strings.TrimSpace(sql), Denial: d}}}
}

// span is a statement's byte range in the input.
type span struct{ start, end int }

// statementSpans turns pg_query's statement locations into byte ranges. A
// statement's range runs from just after the previous semicolon to its own
// semicolon, so comments before a statement belong to it.
func statementSpans(sql string, raws []*pg.RawStmt) []span {
	out := make([]span, len(raws))
	for i, r := range raws {
		start := clamp(int(r.GetStmtLocation()), len(sql))
		end := len(sql)
		if l := int(r.GetStmtLen()); l > 0 {
			end = clamp(start+l, len(sql))
		}
		out[i] = span{start, end}
	}
	return out
}

func clamp(v, hi int) int {
	if v < 0 {
		return 0
	}
	if v > hi {
		return hi
	}
	return v
}
