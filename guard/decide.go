package guard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/proxy"
	"github.com/pgguard/pgguard/sqlscan"
)

// verdict is the cached outcome of one statement text in one context.
// It is immutable once cached.
type verdict struct {
	denied *denial // nil when every statement is allowed
	// effects are replayed on the session when the text is forwarded.
	effects []effect
	// For a text of exactly one statement (what Parse carries): what it
	// accesses and the purpose its comment declares, bound to the statement
	// name at Parse.
	single   bool
	accesses []authz.Access
	purpose  string
	// cacheable is false when the verdict depends on session state outside
	// the cache key (EXECUTE of a prepared statement).
	cacheable bool
	// barrier is set when running the text may change session state that
	// verdicts depend on: the server's state is read again after it.
	barrier bool
	// purposes are those the text's statements run under, but for
	// transaction control and SET, which need no purpose role.
	purposes []string
	// text is the statement, kept (when short) for the alert raised if the
	// database refuses what pgguard let through; a verdict shared by
	// texts of one shape keeps the first, whose normalized form they share.
	text string
}

// keptTextMax is the longest text a verdict keeps for an alert.
const keptTextMax = 1 << 10

// effect is a session change a statement makes.
type effect struct {
	sqlscan.Effect
	ddl      bool
	userCode bool // runs a function the policy allows (sqlscan.Statement.UserCode)
	// functions are the functions outside the built-ins the policy allowed
	// it to run (sqlscan.Statement.AllowedFunctions), as schema.name.
	functions []string
	tempOnly  bool // DDL that only creates a temporary table (sqlscan.Statement.TempOnly)
	// tempWrites are the temporary tables the statement writes, into which
	// what it reads (tempReads) flows.
	tempWrites []string
	tempReads  []sqlscan.Access
	changes    []string       // relation names the DDL named (sqlscan.Statement.Changes)
	accesses   []authz.Access // of PREPARE
	purpose    string
	text       string // raw, as verdict.text
}

// denial is why a text is refused, with what its alert needs.
type denial struct {
	err *pgproto3.ErrorResponse
	// quiet is set for a statement the server would refuse anyway: it is
	// answered, counted and logged, but raises no alert.
	quiet       bool
	denied      []alert.Denial
	roles       []string
	purpose     string
	statement   string // normalized
	fingerprint string
	policy      string
}

// verdictFor answers from the cache or analyses and decides. s.mu is held.
func (s *session) verdictFor(text []byte) *verdict {
	ctx := s.ps.Context()
	snap, pol := s.refreshContext(ctx)
	v, shape := s.lookup(text)
	if v != nil {
		return v
	}
	s.count(func(m *alert.Metrics) { m.VerdictCacheMisses.Inc() })
	table := s.table
	k := keyOf(text)
	var shapeKey *textKey
	if shape != nil {
		sk := keyOf(shape) // before evaluate, which may use the session's shape buffer
		shapeKey = &sk
	}
	f, leader := table.join(k)
	if !leader {
		<-f.done
		if f.v.cacheable {
			return f.v
		}
		// The leader's verdict depended on its own session: decide anew.
		return s.evaluate(ctx, string(text), snap, pol)
	}
	str := string(text)
	defer func() {
		if v == nil { // evaluate panicked: followers must not wait forever
			v = &verdict{denied: s.unanalysable(str, "internal error")}
		}
		table.land(k, f, v)
	}()
	v = s.evaluate(ctx, str, snap, pol)
	if v.denied == nil && len(str) <= keptTextMax {
		v.text = str
	}
	if v.cacheable {
		s.g.cache.put(table, k, v)
		// Only an allowed verdict without session effects holds for every
		// text of the shape (see shape.go).
		if shapeKey != nil && v.denied == nil && len(v.effects) == 0 {
			s.g.cache.put(table, *shapeKey, v)
		}
	}
	return v
}

// cachedVerdict answers from the cache under the current catalog snapshot,
// without loading, analysing or waiting; nil when it cannot. s.mu is held.
func (s *session) cachedVerdict(text []byte) *verdict {
	snap, ok := s.g.cfg.Catalogs.Current(s.ps.Database)
	if !ok {
		return nil
	}
	s.notePending(nil)
	s.useContext(s.withOwn(snap), s.g.cfg.Policy.Policy())
	v, _ := s.lookup(text)
	return v
}

// lookup finds text's verdict in the table of the session's context: by
// the exact text, then by its shape, which it also returns (nil when the
// text has none).
func (s *session) lookup(text []byte) (*verdict, []byte) {
	v := s.table.get(text)
	var shape []byte
	if v == nil {
		if shape = s.shape(text); shape != nil {
			v = s.table.get(shape)
		}
	}
	if v != nil {
		s.count(func(m *alert.Metrics) { m.VerdictCacheHits.Inc() })
	}
	return v, shape
}

// shape returns text's shape key when it has literals and the session's
// settings let it be cut with certainty, else nil. The key lives in a
// buffer of the session's, valid until the next call.
func (s *session) shape(text []byte) []byte {
	if s.state.scs != "on" || s.state.encoding != "UTF8" || len(text) > shapeTextMax {
		return nil
	}
	spans, ok := literalSpans(text, s.spans[:0])
	if !ok || len(spans) == 0 {
		return nil
	}
	s.spans = spans
	s.shapeBuf = shapeKey(text, spans, s.shapeBuf[:0])
	return s.shapeBuf
}

// shapeTextMax is the longest text looked up by its shape, which bounds
// the session's scratch space for shapes. Texts longer than this are rare
// enough to be analysed each time they change.
const shapeTextMax = 64 << 10

// evaluate analyses text and decides on each of its statements in order,
// following the purpose and search_path changes the text itself makes.
func (s *session) evaluate(ctx context.Context, text string, snap *catalog.Snapshot, pol *authz.Policy) *verdict {
	if d := sqlscan.CheckLexical(text, s.state.scs, s.state.encoding); d != nil {
		return &verdict{denied: s.unanalysable(text, d.Reason), cacheable: true}
	}
	if snap == nil {
		var err error
		if snap, err = s.g.cfg.Catalogs.Get(ctx, s.ps.Database); err != nil || snap == nil {
			return &verdict{denied: s.unanalysable(text, "the database's catalog could not be loaded")}
		}
		snap = s.withOwn(snap)
	}
	res, refreshed := s.analyse(ctx, text, snap, pol)
	// An unknown relation or column may exist by the next statement: such a
	// refusal is not cached, so the next attempt looks again.
	v := &verdict{cacheable: !refreshed && !unknownName(res.Denial()), single: len(res.Statements) == 1}
	// The analysis itself follows search_path and role changes from one
	// statement of the text to the next; the guard follows the purpose.
	analysed := s.effectivePurpose("")
	sim := simState{purpose: analysed, settled: s.settled}
	for i := range res.Statements {
		st := &res.Statements[i]
		purpose := sim.purpose
		if st.Purpose != "" {
			purpose = st.Purpose
		}
		if st.Denial != nil && st.Denial.Code == sqlscan.CodeFunction && purpose != analysed {
			// Function rules depend on the purpose, and this statement
			// runs under another one than the text was analysed with.
			// Analysed alone, it cannot see path changes made before it
			// in the text: then every candidate counts.
			path := s.currentPath()
			if sim.pathMoved {
				path = nil
			}
			st = s.reanalyse(st, snap, pol, path, purpose)
		}
		if d := s.decideStatement(st, pol, &sim, v); d != nil {
			v.denied = d
			return v
		}
	}
	return v
}

// simState is the session state as it evolves through one text.
type simState struct {
	// settled starts as session.settled and ends with the first change
	// in the text: while it holds, transaction control is no barrier.
	settled   bool
	purpose   string
	pathMoved bool // an earlier statement changed search_path or role
	// unknown is set after a change pgguard does not follow (RESET,
	// DISCARD, COMMIT, ROLLBACK, a role or lexical setting, ...): the
	// statements after it in the same text are refused, since only the
	// server can say what state they run in.
	unknown bool
	// cursors are those the text declared (nil: closed) before the
	// statement at hand; closedAll is set after a CLOSE ALL or DISCARD
	// ALL in it. The session's own records change only once the text is
	// forwarded.
	cursors   map[string]*heldDef
	closedAll bool
	// statements are those the text prepared (nil: deallocated) before
	// the statement at hand; deallocatedAll is set after a DEALLOCATE ALL
	// or DISCARD ALL in it.
	statements     map[string]*prepared
	deallocatedAll bool
}

// hold follows a cursor or prepared statement the text makes or removes;
// table is the verdicts' context.
func (sim *simState) hold(e *effect, table *textVerdicts) {
	switch e.Kind {
	case "prepare", "deallocate":
		if sim.statements == nil {
			sim.statements = map[string]*prepared{}
		}
		var p *prepared
		if e.Kind == "prepare" {
			p = &prepared{accesses: e.accesses, purpose: e.purpose, text: e.text, table: table, sqlPrepare: true, barrier: e.userCode,
				writesTemp: len(e.tempWrites) > 0, functions: e.functions}
		}
		sim.statements[e.Name] = p
	case "deallocate_all":
		sim.deallocatedAll = true
		clear(sim.statements)
	case "declare", "close":
		if sim.cursors == nil {
			sim.cursors = map[string]*heldDef{}
		}
		var d *heldDef
		if e.Kind == "declare" {
			d = &heldDef{accesses: e.accesses, purpose: e.purpose, cursor: true, code: e.userCode, functions: e.functions}
		}
		sim.cursors[e.Name] = d
	case "close_all":
		sim.closedAll = true
		clear(sim.cursors)
	case "discard_all":
		sim.closedAll, sim.deallocatedAll = true, true
		clear(sim.cursors)
		clear(sim.statements)
	}
}

// statement returns what name holds for a statement after the text's
// earlier ones, and whether the text itself decided that (nil: none).
func (sim *simState) statement(name string) (*prepared, bool) {
	if p, ok := sim.statements[name]; ok {
		return p, true
	}
	return nil, sim.deallocatedAll
}

// cursor returns what name holds for a statement after the text's earlier
// ones, and whether the text itself decided that (nil: no cursor).
func (sim *simState) cursor(name string) (*heldDef, bool) {
	if d, ok := sim.cursors[name]; ok {
		return d, true
	}
	return nil, sim.closedAll
}

// decideStatement decides one statement and records its effect; it returns
// the denial, if any.
func (s *session) decideStatement(st *sqlscan.Statement, pol *authz.Policy, sim *simState, v *verdict) *denial {
	if st.Denial != nil {
		return s.refusal(st.Text, st.Denial)
	}
	if !s.state.known && !stateFree(st) {
		return s.unknownStateDenial(st.Text, !sim.unknown, v)
	}
	if d := s.roleChangeDenial(st); d != nil {
		return d
	}
	if st.Effect != nil && (st.Effect.Kind == "fetch" || st.Effect.Kind == "move") {
		// Whether it runs code depends on the session's cursors, which no
		// cache key holds.
		v.cacheable = false
		name := st.Effect.Name
		def, inText := sim.cursor(name)
		code := false
		if inText {
			// Declared or closed earlier in the same text: if that did
			// not run, neither does this.
			if def != nil {
				code = def.code
				if d := s.decideHeld(name, st.Purpose, sim.purpose, def, pol); d != nil {
					return d
				}
			}
		} else {
			code = s.runsCode(name)
			if d := s.fetchDenial(name, st.Purpose, sim.purpose, pol); d != nil {
				return d
			}
		}
		if code {
			cp := *st
			cp.UserCode = true
			st = &cp
		}
	}
	if sim.unknown && !stateFree(st) {
		return withHint(s.unanalysable(st.Text, "it follows, in the same message, a session change that pgguard follows only by asking the server; send it as a statement of its own"), stateHint)
	}
	var runs runsPrepared
	var held *prepared // what EXECUTE may run
	if st.Effect != nil && st.Effect.Kind == "execute" {
		// EXECUTE runs the prepared statement: what it changes, the
		// EXECUTE changes.
		v.cacheable = false
		held = s.pendingChain(s.prepared[st.Effect.Name], []byte(st.Effect.Name), s.lastSegment)
		if p, inText := sim.statement(st.Effect.Name); inText {
			// Prepared or deallocated earlier in the same text: if that
			// did not run, neither does this.
			held = p
		}
		for q := held; q != nil; q = q.replaced {
			// Under a new context the server plans it again: what it
			// runs then counts.
			if q.text != "" && !q.unknown {
				if d := s.reanalysePrepared(q); d != nil {
					return d
				}
			}
		}
		runs = runsOf(held)
		if runs.effects {
			return withHint(s.unanalysable(st.Text, "the prepared statement changes session state (a setting, a cursor, a prepared statement, the transaction or the schema), which pgguard follows only at its Bind and Execute"),
				"Run it with Bind and Execute, or send its statement itself.")
		}
		if runs.code || len(runs.tempWrites) > 0 {
			cp := *st
			cp.UserCode = cp.UserCode || runs.code
			cp.TempWrites = append(slices.Clip(cp.TempWrites), runs.tempWrites...)
			st = &cp
		}
		if len(st.TempWrites) > 0 {
			// What the prepared statement reads flows into a temporary
			// table (one it writes, or CREATE TABLE AS EXECUTE), which
			// the analysis of this text did not see: a statement after it
			// in the text would be decided on the lineage before it. (Code
			// it runs makes it a barrier below, as the statement itself.)
			defer func() { sim.unknown = true }()
		}
	}
	switch c := change(st); {
	case c == changeUnknown && sim.settled && txControl(st):
		// Nothing to end or undo: the state stays what the server
		// reported outside any transaction.
	case c == changeFollowed:
		v.barrier, sim.settled = true, false
	case c == changeUnknown:
		v.barrier, sim.settled = true, false
		defer func() { sim.unknown = true }()
	}
	purpose := sim.purpose
	if st.Purpose != "" {
		purpose = st.Purpose
	}
	accesses := toAuthz(st.Accesses)
	if s.g.blindForTest {
		accesses = nil
	}
	if st.Attaches != "" {
		accesses = append([]authz.Access{attachAccess}, accesses...)
	}
	if st.ReadsTemp {
		// What functions the policy allows wrote into temporary tables
		// is read under their rules (see tempCode).
		accesses = append(accesses, s.tempCode()...)
	}
	// What flows into temporary tables: the statement's reads, and with
	// EXECUTE (also CREATE TABLE AS EXECUTE) the prepared statement's.
	tempReads := st.Accesses
	if st.Effect != nil && st.Effect.Kind == "execute" {
		v.cacheable = false
		p := held
		if p == nil {
			return s.noSuchStatement(st.Effect.Name)
		}
		// As at Bind: every statement the server may hold under the name,
		// each analysed under the state in force now as well.
		for q := p; q != nil; q = q.replaced {
			if q.unknown {
				p = nil
			}
		}
		if p == nil {
			return s.unanalysable(st.Text, "the prepared statement is unknown to pgguard")
		}
		accesses = nil
		for q := p; q != nil; q = q.replaced {
			if q.text != "" {
				if d := s.reanalysePrepared(q); d != nil {
					return d
				}
			}
			accesses = unionAccesses(accesses, q.accesses)
		}
		if p.purpose != "" && st.Purpose == "" {
			purpose = p.purpose
		}
		if len(st.TempWrites) > 0 {
			// What the prepared statement reads, as analysed again now,
			// flows into the temporary tables it or this statement
			// writes.
			tempReads = append(slices.Clone(st.Accesses), runs.tempReads...)
			tempReads = append(tempReads, lineageOf(accesses)...)
		}
	}
	start := time.Now()
	d := pol.Decide(s.ps.User, purpose, accesses)
	s.count(func(m *alert.Metrics) { m.DecisionDuration.Observe(time.Since(start).Seconds()) })
	if !d.Allowed {
		return s.policyDenial(d, purpose, st.Text)
	}
	if v.single {
		v.accesses, v.purpose = accesses, st.Purpose
	}
	if s.g.cfg.PurposeRole != nil && !roleFree(st) {
		v.purposes = addPurpose(v.purposes, purpose)
	}
	if st.Effect != nil || st.DDL || st.UserCode || len(st.TempWrites) > 0 {
		e := effect{ddl: st.DDL, tempOnly: st.TempOnly, userCode: st.UserCode, changes: st.Changes, accesses: accesses, purpose: st.Purpose,
			tempWrites: st.TempWrites, tempReads: tempReads, functions: st.AllowedFunctions}
		if runs.code {
			e.functions = append(slices.Clip(e.functions), runs.functions...)
		}
		if st.Effect != nil {
			e.Effect = *st.Effect
			sim.apply(st.Effect, s)
		}
		if e.Kind == "prepare" {
			e.text = st.Text
		}
		sim.hold(&e, s.table)
		v.effects = append(v.effects, e)
	}
	return nil
}

// runsPrepared is what running a prepared statement does besides what it
// reads: for EXECUTE, which runs it where Bind and Execute would.
type runsPrepared struct {
	// effects: it changes a setting, a cursor, a prepared statement, the
	// transaction or the schema (a statement parsed through the protocol,
	// which may hold any statement).
	effects bool
	// code: it runs code that may change session state, or a statement
	// pgguard does not know.
	code bool
	// functions are the functions the policy allows that it runs.
	functions []string
	// tempWrites are the temporary tables it writes, into which
	// tempReads flow (for a statement whose analysis found it writing
	// one, its text stands for them: only whether any is written counts).
	tempWrites []string
	tempReads  []sqlscan.Access
}

// runsOf looks at every statement the server may run for p.
func runsOf(p *prepared) runsPrepared {
	var r runsPrepared
	for q := p; q != nil; q = q.replaced {
		r.code = r.code || q.barrier || q.unknown
		r.functions = append(r.functions, q.functions...)
		if q.writesTemp {
			// Its analysis, now or when it was planned again, found it
			// writing a temporary table.
			r.tempWrites = append(r.tempWrites, q.text)
		}
		for i := range q.effects {
			e := &q.effects[i]
			r.effects = r.effects || e.Kind != "" || e.ddl
			r.code = r.code || e.userCode
			r.tempWrites = append(r.tempWrites, e.tempWrites...)
			if len(e.tempWrites) > 0 {
				r.tempReads = append(r.tempReads, e.tempReads...)
			}
		}
	}
	return r
}

// apply changes the simulated state like the effect will change the
// session's.
func (sim *simState) apply(e *sqlscan.Effect, s *session) {
	if e.Kind == "set" && e.Name == PurposeParameter {
		sim.purpose = e.Value
	}
	switch e.Name {
	case "search_path", "role", "session_authorization":
		sim.pathMoved = true
	}
	if e.Kind == "reset_all" || e.Kind == "discard_all" {
		sim.pathMoved = true
	}
}

// analyse runs the analysis, refreshing the catalog once when the text
// names a relation the catalog does not know.
func (s *session) analyse(ctx context.Context, text string, snap *catalog.Snapshot, pol *authz.Policy) (*sqlscan.Result, bool) {
	start := time.Now()
	defer s.count(func(m *alert.Metrics) { m.AnalysisDuration.Observe(time.Since(start).Seconds()) })
	res := sqlscan.Analyze(text, snap, s.scanContext(pol, s.currentPath(), s.effectivePurpose("")))
	if d := res.Denial(); d != nil && d.Code == sqlscan.CodeTemporary && len(s.catPending) > 0 {
		// The statement may name a relation another transaction's DDL
		// changed: wait for the catalog to read it again, and decide on that.
		fresh, err := s.g.cfg.Catalogs.AwaitPending(ctx, s.ps.Database)
		if err != nil || fresh == nil {
			return res, false
		}
		// fresh has read every name pending when the statement arrived;
		// names DDL marked since came after it, and do not hold it back.
		s.notePending(nil)
		return sqlscan.Analyze(text, s.withOwn(fresh), s.scanContext(pol, s.currentPath(), s.effectivePurpose(""))), true
	}
	if !unknownName(res.Denial()) {
		return res, false
	}
	if !s.g.mayRefresh(s.ps.Database) {
		return res, false
	}
	fresh, err := s.g.cfg.Catalogs.Refresh(ctx, s.ps.Database)
	if err != nil || fresh == nil {
		return res, false
	}
	if fresh = s.withOwn(fresh); fresh.Version() == snap.Version() {
		return res, false
	}
	return sqlscan.Analyze(text, fresh, s.scanContext(pol, s.currentPath(), s.effectivePurpose(""))), true
}

// unknownName reports a refusal for a name the catalog does not know, which
// a catalog refresh may resolve.
func unknownName(d *sqlscan.Denial) bool {
	return d != nil && (d.Code == sqlscan.CodeUnknownRelation || d.Code == sqlscan.CodeUnknownColumn)
}

func (s *session) reanalyse(st *sqlscan.Statement, snap *catalog.Snapshot, pol *authz.Policy, path []string, purpose string) *sqlscan.Statement {
	res := sqlscan.Analyze(st.Text, snap, s.scanContext(pol, path, purpose))
	if len(res.Statements) != 1 {
		return &sqlscan.Statement{Text: st.Text, Denial: &sqlscan.Denial{Code: sqlscan.CodeUnsupported, Reason: "statement could not be re-analysed after a search_path change"}}
	}
	return &res.Statements[0]
}

// scanContext is what the analysis needs of the session; which functions
// may run depends on the purpose the statement runs under.
func (s *session) scanContext(pol *authz.Policy, path []string, purpose string) sqlscan.Context {
	user := s.ps.User
	role := s.state.role
	lineage, _ := s.lineage()
	if role == "" {
		role = user
	}
	return sqlscan.Context{
		Database: s.ps.Database,
		User:     role, // what "$user" in the path names

		SearchPath:    path,
		UsableSchemas: s.usableSchemas(),
		TempRelations: s.state.temps,
		TempTables:    s.state.tempTables,
		TempLineage:   lineage,
		Unsettled:     s.undecidable(),
		FunctionAllowed: func(schema, name string) bool {
			return pol.FunctionAllowed(user, purpose, schema, name)
		},
		ExtensionTrusted: func(name string) bool {
			return pol.ExtensionTrusted(user, purpose, name)
		},
		Limits: sqlscan.Limits{MaxBytes: s.g.cfg.MaxStatementSize, MaxTokens: s.g.cfg.MaxStatementTokens},
	}
}

// attachAccess is the access of a statement that attaches code to the
// database: decided like a column, so that a prepared statement is decided
// again under the purpose in force at each Bind.
var attachAccess = authz.Access{Column: authz.ObjectDDL, Act: authz.ActDDL}

func toAuthz(in []sqlscan.Access) []authz.Access {
	out := make([]authz.Access, len(in))
	for i, a := range in {
		out[i] = authz.Access{Column: a.Schema + "." + a.Table + "." + a.Column, Act: authz.Act(a.Act)}
	}
	return out
}

// policyDenial turns a policy decision into the client's error and the
// alert's content.
func (s *session) policyDenial(d authz.Decision, purpose, text string) *denial {
	first := d.Denied[0]
	what := "without a declared purpose"
	if purpose != "" {
		what = fmt.Sprintf("for purpose %q", purpose)
	}
	category := first.Category
	if category == "" {
		category = "unclassified"
	}
	detail := first.Reason
	if n := len(d.Denied) - 1; n > 0 {
		detail += fmt.Sprintf(" (and %d more denied column access%s)", n, plural(n))
	}
	msg, hint := fmt.Sprintf("pgguard: %s access to column %s (%s) is not allowed %s", first.Act, first.Column, category, what), purposeHint
	if first.Act == authz.ActDDL {
		msg, hint = "pgguard: the statement attaches code to the database (a function, procedure, trigger, rule, type, "+
			"operator, cast, policy, extension, ...), which is not allowed "+what, ddlHint
	}
	if cause, causeHint := s.unknownCause(d, purpose); cause != "" {
		msg, hint = msg+": "+cause, causeHint
	}
	out := &denial{
		err: &pgproto3.ErrorResponse{
			Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42501",
			Message: msg, Detail: detail, Hint: hint,
		},
		roles: d.Roles, purpose: purpose, policy: d.PolicyVersion,
	}
	out.statement, out.fingerprint = alertText(text)
	for _, x := range d.Denied {
		out.denied = append(out.denied, alert.Denial{Column: x.Column, Category: x.Category, Act: string(x.Act), Reason: x.Reason})
	}
	return out
}

// unknownCause names what of the request the policy does not know, when
// that is why the statement was refused, and what to do about it: the
// user (no rule names it or any of its departments) before the purpose
// (no rule names it), since no purpose helps a user the policy ignores.
func (s *session) unknownCause(d authz.Decision, purpose string) (cause, hint string) {
	user := s.ps.User
	switch {
	case d.UnknownSubject && len(d.Roles) == 0:
		return fmt.Sprintf("user %q belongs to no department", user), fmt.Sprintf(unknownUserHint, user)
	case d.UnknownSubject:
		return fmt.Sprintf("user %q belongs to no department that has rules (it belongs to %s)", user, strings.Join(d.Roles, ", ")),
			fmt.Sprintf(unknownUserHint, user)
	case d.UnknownPurpose:
		hint = purposeHint
		if similar := s.g.cfg.Policy.Policy().SimilarPurpose(purpose); similar != "" {
			hint = fmt.Sprintf("Did you mean %q? ", similar) + hint
		}
		return fmt.Sprintf("purpose %q is not defined in the policy", purpose), hint
	}
	return "", ""
}

// unknownUserHint is the hint for a user no rule applies to; %q is the user.
const unknownUserHint = "Ask the security team to place user %q in a department of the policy (a g rule), or connect as a user that has one."

// refusal refuses a statement the analysis could not clear. Most such
// refusals are pgguard's own (42501); a statement nested too deeply for the
// parser gets PostgreSQL's own answer to it, and one beyond pgguard's
// bounds on work the code PostgreSQL gives when a limit is exceeded.
func (s *session) refusal(text string, d *sqlscan.Denial) *denial {
	if d.Server != nil {
		return s.serverRefusal(text, d)
	}
	out := s.unanalysable(text, d.Reason)
	if hint, ok := refusalHints[d.Code]; ok {
		out.err.Hint = hint
	}
	switch d.Code {
	case sqlscan.CodeTooDeep:
		out.err = limitError(out.err, "54001", "pgguard: stack depth limit exceeded: "+d.Reason,
			"Split the statement, or nest its expressions less deeply.")
	case sqlscan.CodeTooLarge:
		out.err = limitError(out.err, "54000", "pgguard: statement too large to analyse: "+d.Reason,
			"Split the statement, send bulk data with COPY, or raise --max-statement-size and --max-statement-tokens.")
	}
	return out
}

// serverRefusal answers a statement PostgreSQL itself would refuse (a
// syntax error, a relation or column that does not exist) with the error
// the server would give. Nothing of it runs, and no alert is raised: such
// a statement touches no data.
func (s *session) serverRefusal(text string, d *sqlscan.Denial) *denial {
	out := s.unanalysable(text, d.Reason)
	out.err = &pgproto3.ErrorResponse{
		Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: d.Server.SQLState,
		Message: d.Server.Message, Position: int32(d.Server.Position),
	}
	out.quiet = true
	return out
}

// abortedMessage is PostgreSQL's own message for a statement in a failed
// transaction block.
const abortedMessage = "current transaction is aborted, commands ignored until end of transaction block"

// unknownStateDenial refuses a statement that needs the session's state
// while the server could not be asked for it. In a failed transaction
// block, where asking fails, the server would refuse the statement itself
// with 25P02: so does pgguard, as long as nothing earlier in the text
// (asIs) may have ended the block. The answer depends on the transaction
// status, which the verdict cache's key does not hold: v, when given, is
// not cached.
func (s *session) unknownStateDenial(text string, asIs bool, v *verdict) *denial {
	if v != nil {
		v.cacheable = false
	}
	if asIs && s.ps.TxStatus() == 'E' {
		return s.serverRefusal(text, &sqlscan.Denial{Reason: abortedMessage,
			Server: &sqlscan.ServerError{SQLState: "25P02", Message: abortedMessage}})
	}
	return s.unanalysable(text, "the session's state could not be read from the server (in a failed transaction block, only ROLLBACK runs)")
}

// noSuchStatement answers a Bind or EXECUTE of a prepared statement the
// server does not hold, as the server would.
func (s *session) noSuchStatement(name string) *denial {
	msg := "prepared statement \"" + name + "\" does not exist"
	if name == "" {
		msg = "unnamed prepared statement does not exist"
	}
	return s.serverRefusal("EXECUTE "+name, &sqlscan.Denial{Code: sqlscan.CodeUnknownRelation, Reason: msg,
		Server: &sqlscan.ServerError{SQLState: "26000", Message: msg}})
}

// withHint sets a refusal's hint.
func withHint(d *denial, hint string) *denial {
	d.err.Hint = hint
	return d
}

// limitError is e with another code, message and hint.
func limitError(e *pgproto3.ErrorResponse, code, message, hint string) *pgproto3.ErrorResponse {
	out := *e
	out.Code, out.Message, out.Hint = code, message, hint
	return &out
}

// sizeDenial refuses a text longer than the guard decides on, before it
// is copied, hashed or scanned; nil when it is not.
func (s *session) sizeDenial(text []byte) *denial {
	max := s.g.cfg.MaxStatementSize
	if len(text) <= max {
		return nil
	}
	reason := fmt.Sprintf("the statement is %d bytes long, more than the limit of %d", len(text), max)
	return s.refusal(tooLongToShow(len(text)), &sqlscan.Denial{Code: sqlscan.CodeTooLarge, Reason: reason})
}

// preparedDenial refuses a statement that would make the session's
// prepared statements hold more than the bound of text, n bytes more.
func (s *session) preparedDenial(n int) *denial {
	max := s.g.cfg.SessionPreparedBytes
	if n == 0 || s.preparedBytes+int64(n) <= max {
		return nil
	}
	s.preparedBytes = s.recountPrepared()
	if s.preparedBytes+int64(n) <= max {
		return nil
	}
	reason := fmt.Sprintf("the session's prepared statements would hold more than %d bytes of text", max)
	out := s.unanalysable(tooLongToShow(n), reason)
	out.err = limitError(out.err, "54000", "pgguard: "+reason,
		"Deallocate the prepared statements the session no longer needs, or raise --session-prepared-bytes.")
	return out
}

// prepareBytes is the text a verdict's PREPAREs will hold.
func prepareBytes(v *verdict) int {
	n := 0
	for i := range v.effects {
		if v.effects[i].Kind == "prepare" {
			n += len(v.effects[i].text)
		}
	}
	return n
}

// alertTextMax is the longest text normalized and fingerprinted for an
// alert: both cost time and memory in proportion to the text, and an
// alert needs no more to be recognised.
const alertTextMax = 64 << 10

// alertText is what an alert shows of text, and its fingerprint.
func alertText(text string) (statement, fingerprint string) {
	if len(text) > alertTextMax {
		return tooLongToShow(len(text)), ""
	}
	return sqlscan.Normalize(text), sqlscan.Fingerprint(text)
}

// tooLongToShow stands in for a text of n bytes that alerts do not show.
func tooLongToShow(n int) string {
	return fmt.Sprintf("/* pgguard: a statement of %d bytes, too long to show */", n)
}

// unanalysable refuses what pgguard cannot analyse with certainty.
func (s *session) unanalysable(text, reason string) *denial {
	purpose := s.effectivePurpose("")
	pol := s.g.cfg.Policy.Policy()
	out := &denial{
		err: &pgproto3.ErrorResponse{
			Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42501",
			Message: "pgguard: statement refused because it cannot be analysed with certainty: " + reason,
			Hint:    "pgguard refuses what it cannot decide with certainty; the message says why.",
		},
		denied:  []alert.Denial{{Reason: reason}},
		roles:   pol.Roles(s.ps.User),
		purpose: purpose, policy: pol.Version(),
	}
	out.statement, out.fingerprint = alertText(text)
	return out
}

// refusalHints say, per reason for a refusal, what the client can do.
var refusalHints = map[string]string{
	sqlscan.CodeFunction: "The function is not a built-in: ask the security team to allow it for this purpose " +
		"(act execute on function:schema.name), or trust its extension (execute on extension:name).",
	sqlscan.CodeUnsafeFunction: "This built-in runs SQL given as text, or reads files, logs or other sessions' data; " +
		"it is never allowed through pgguard.",
	sqlscan.CodeSensitiveCatalog: "This catalog shows stored values or other sessions' statements; it is not available through pgguard.",
	sqlscan.CodeDoBlock:          "Procedural code runs where pgguard cannot see into it: send its statements one by one.",
	sqlscan.CodeCall:             "Procedures run where pgguard cannot see into them: send their statements one by one.",
	sqlscan.CodeCopyProgram:      "Use COPY ... FROM STDIN or TO STDOUT: the client sends or receives the data.",
	sqlscan.CodeCopyFile:         "Use COPY ... FROM STDIN or TO STDOUT: the client sends or receives the data.",
	sqlscan.CodeLexical:          "Use client_encoding UTF8 and standard_conforming_strings on, PostgreSQL's defaults.",
	sqlscan.CodePurpose:          "Declare one purpose: SET pgguard.purpose = 'name', or one comment /*purpose='name'*/ in the statement.",
	sqlscan.CodeTemporary: "pgguard reads temporary tables, not temporary views or sequences, and reads a relation " +
		"changed in the open transaction from the server once the DDL's message has been answered: send the statement " +
		"in a message of its own after the DDL, use a temporary table, or commit first.",
	sqlscan.CodeUnknownRelation: "The catalog is read again before such a refusal; if the relation was just made outside pgguard, retry.",
	sqlscan.CodeUnknownColumn:   "The catalog is read again before such a refusal; if the column was just added outside pgguard, retry.",
	sqlscan.CodeUnsupported:     "pgguard does not model this form; rewrite it with plain table and column references.",
}

// stateHint is the hint of a statement refused because the state it would
// run in is not yet confirmed.
const stateHint = "Send the statement on its own, once the server has answered the change before it."

const ddlHint = "Code attached to the database runs inside later statements, where pgguard cannot see it. " +
	"Run such migrations as a role whose department the policy allows it: p, department, *, ddl, ddl, allow."

const purposeHint = "Declare a purpose that allows this data: SET pgguard.purpose = 'name'; " +
	"or a comment /*purpose='name'*/ in the statement; or the connection option -c pgguard.purpose=name."

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "es"
}

// apply carries out a verdict: alert and refuse (or, in monitor mode, flag
// and forward), or forward and replay the text's session effects, which
// belong to the sync segment numbered segment.
func (s *session) apply(v *verdict, segment uint64) proxy.Verdict {
	out := s.decide(v)
	if out.Action == proxy.Forward {
		s.lastText = v.text
		for i := range v.effects {
			s.replay(&v.effects[i], segment)
		}
		out.Barrier = v.barrier
	}
	return out
}

// decide alerts and counts a verdict and says whether to forward, without
// touching session state.
func (s *session) decide(v *verdict) proxy.Verdict {
	if v.denied != nil && v.denied.quiet {
		s.count(func(m *alert.Metrics) { m.CountStatement(alert.VerdictInvalid) })
		s.ps.Logger.Debug().Str("sqlstate", v.denied.err.Code).Str("fingerprint", v.denied.fingerprint).Msg("statement the server would refuse, answered as the server would")
		if s.g.cfg.Mode == alert.ModeMonitor {
			return proxy.Allow
		}
		return proxy.Verdict{Action: proxy.Deny, Error: v.denied.err}
	}
	if v.denied != nil {
		s.raise(v.denied)
		if s.g.cfg.Mode != alert.ModeMonitor {
			s.count(func(m *alert.Metrics) { m.CountStatement(alert.VerdictDenied) })
			return proxy.Verdict{Action: proxy.Deny, Error: v.denied.err}
		}
		s.count(func(m *alert.Metrics) { m.CountStatement(alert.VerdictFlagged) })
	} else {
		s.count(func(m *alert.Metrics) { m.CountStatement(alert.VerdictAllowed) })
	}
	return proxy.Allow
}

// replay applies one effect of a forwarded statement to the session: the
// changes pgguard follows move the state at once (the rest of the segment
// is decided on them); any other change leaves the segment unknown until
// the server's state is read after it.
func (s *session) replay(e *effect, segment uint64) {
	if e.ddl {
		// A temporary table is read from the server, not the catalog:
		// other sessions need not wait for the catalog after it.
		s.ddlPending = s.ddlPending || !e.tempOnly
		s.ddlWide = s.ddlWide || (!e.tempOnly && len(e.changes) == 0)
		s.unsettle(e.changes)
	}
	s.flowIntoTemps(e.tempWrites, e.tempReads)
	switch e.Kind {
	case "commit_prepared":
		// What the prepared transaction changed is unknown: every
		// relation waits for the catalog once this has ended.
		s.ddlPending, s.ddlWide = true, true
	case "prepare":
		// A function the policy allows in it runs, and may change session
		// state, whenever the statement is executed; what it reads flows
		// into the temporary tables it writes each time.
		rec := &prepared{accesses: e.accesses, purpose: e.purpose, text: e.text, table: s.table, sqlPrepare: true, writesTemp: len(e.tempWrites) > 0,
			barrier: e.userCode, functions: e.functions}
		s.preparedBytes += int64(len(e.text))
		if old := s.prepared[e.Name]; old != nil {
			s.changes = append(s.changes, recordChange{segment: segment, errors: s.errors, name: e.Name, rec: rec, prev: old})
		}
		s.setPrepared(e.Name, rec)
	case "deallocate":
		s.closeRecord(e.Name, segment)
	case "deallocate_all", "discard_all":
		for name := range s.prepared {
			s.closeRecord(name, segment)
		}
	}
	s.holdCursor(e, segment)
	if e.Kind == "fetch" || e.Kind == "move" {
		s.fetchesRun(s.held[e.Name], segment)
	}
	if (e.Kind == "fetch" || e.Kind == "move") && s.runsCode(e.Name) || e.Kind == "execute" && s.preparedRunsCode(e.Name) {
		// The code of the cursor's query, or of the prepared statement,
		// runs now (and was maybe declared or prepared after this
		// statement was parsed).
		cp := *e
		cp.userCode = true
		if e.Kind == "execute" {
			cp.functions = s.preparedFunctions(e.Name)
		} else {
			cp.functions = s.cursorFunctions(e.Name)
		}
		e = &cp
	}
	if e.userCode {
		s.ranCode(e.functions)
	}
	st := sqlscan.Statement{DDL: e.ddl, UserCode: e.userCode}
	if e.Kind != "" {
		st.Effect = &e.Effect
	}
	c := change(&st)
	if c == changeUnknown && s.settled && txControlKind(e.Kind) {
		return // as decideStatement decided: no barrier, nothing unknown
	}
	if (c != changeNone || e.ddl) && s.settled {
		s.settled = false
		s.stateGen++
	}
	switch c {
	case changeFollowed:
		s.follow(e)
	case changeUnknown:
		s.segmentUnknown = true
	}
}

// flowIntoTemps adds what a forwarded statement that writes a temporary
// table read to the session's temporary lineage: reading any temporary
// table later, under any purpose, reads what it may hold. It is kept while
// the session lasts, which errs towards refusing.
func (s *session) flowIntoTemps(names []string, reads []sqlscan.Access) {
	if len(names) == 0 {
		return
	}
	grew := false
	for _, a := range reads {
		if a.Act != sqlscan.Read {
			continue
		}
		a.Clause = ""
		if o := s.ownState(); !slices.Contains(o.tempLineage, a) {
			o.tempLineage, grew = append(o.tempLineage, a), true
		}
	}
	if grew {
		s.own.lineageKey = lineageDigest(s.own.tempLineage, s.own.tempFunctions)
		s.stateGen++
	}
}

// lineageOf is what a statement that reads accesses adds to the
// temporary lineage when it writes a temporary table: the columns it reads.
func lineageOf(accesses []authz.Access) []sqlscan.Access {
	var out []sqlscan.Access
	for _, a := range accesses {
		if a.Act != authz.ActRead {
			continue
		}
		// schema.table.column, as toAuthz joined it; the parts need only
		// join back to the same text.
		parts := strings.SplitN(a.Column, ".", 3)
		if len(parts) != 3 {
			continue // not a column: a function, the act ddl
		}
		out = append(out, sqlscan.Access{Schema: parts[0], Table: parts[1], Column: parts[2], Act: sqlscan.Read})
	}
	return out
}

// ranCode notes functions the policy allows that a forwarded statement
// runs: their bodies may write temporary tables with rows of anything
// they read, which the next confirmation decides on (takeCode).
func (s *session) ranCode(functions []string) {
	for _, f := range functions {
		if !slices.Contains(s.pendingCode, f) {
			s.pendingCode = append(s.pendingCode, f)
		}
		if !slices.Contains(s.ranFunctions, f) {
			s.ranFunctions = append(s.ranFunctions, f)
		}
	}
}

// takeCode adds the functions that ran since the last confirmation to
// those whose rules the session's temporary tables carry, when the server
// reports any temporary table: what such a function copied into one is
// read, later and under any purpose, only where the policy allows running
// the function. Without a temporary table nothing it wrote is left.
func (s *session) takeCode() {
	if len(s.pendingCode) == 0 {
		return
	}
	if len(s.state.temps) > 0 {
		o := s.ownState()
		grew := false
		for _, f := range s.pendingCode {
			if !slices.Contains(o.tempFunctions, f) {
				o.tempFunctions, grew = append(o.tempFunctions, f), true
			}
		}
		if grew {
			o.lineageKey = lineageDigest(o.tempLineage, o.tempFunctions)
			s.stateGen++
		}
	}
	s.pendingCode = s.pendingCode[:0]
}

// tempCode is what reading the session's temporary tables asks of the
// policy besides their lineage: running each function that may have
// written them.
func (s *session) tempCode() []authz.Access {
	if s.own == nil || len(s.own.tempFunctions) == 0 {
		return nil
	}
	out := make([]authz.Access, len(s.own.tempFunctions))
	for i, f := range s.own.tempFunctions {
		out[i] = authz.Access{Column: authz.FunctionPrefix + f, Act: authz.ActExecute}
	}
	return out
}

// functions are the functions the policy allows that v's statements run.
func (v *verdict) functions() []string {
	var out []string
	for i := range v.effects {
		for _, f := range v.effects[i].functions {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// writesTemp reports whether a statement of v writes a temporary table.
func (v *verdict) writesTemp() bool {
	for i := range v.effects {
		if len(v.effects[i].tempWrites) > 0 {
			return true
		}
	}
	return false
}

// lineageDigest identifies the content of a session's temporary lineage
// and the functions whose rules its temporary tables carry.
func lineageDigest(lineage []sqlscan.Access, code []string) string {
	h := sha256.New()
	for _, a := range lineage {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", a.Schema, a.Table, a.Column, a.Act)
	}
	for _, f := range code {
		fmt.Fprintf(h, "%s\x01", f)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// unsettle adds relation names to those DDL of the open transaction
// named. Nothing is decided on them until the server's state, which holds
// their definitions as the transaction sees them, has been read after the
// DDL: a name DDL names again waits for the confirmation after that.
func (s *session) unsettle(names []string) {
	added := false
	for _, name := range names {
		if !slices.Contains(s.unsettled, name) {
			s.unsettled = append(s.unsettled, name)
			added = true
		}
		if !slices.Contains(s.unread, name) {
			s.unread = append(s.unread, name)
			added = true
		}
	}
	if added {
		slices.Sort(s.unsettled)
		slices.Sort(s.unread)
		s.stateGen++
	}
}

// undecidable are the relation names the analysis refuses: changed by DDL
// since the server last reported the session's own view of them, or
// reported as something pgguard does not model.
func (s *session) undecidable() []string {
	if len(s.state.ownRefused) == 0 && len(s.catPending) == 0 {
		return s.unread
	}
	if len(s.unread) == 0 && len(s.catPending) == 0 {
		return s.state.ownRefused
	}
	out := append(slices.Clone(s.unread), s.state.ownRefused...)
	return append(out, s.catPending...)
}

// follow applies a change pgguard follows exactly: a literal SET or SET
// LOCAL of the purpose or search_path.
func (s *session) follow(e *effect) {
	switch e.Name {
	case PurposeParameter:
		s.warnUnknownPurpose(e.Value)
		s.state.purpose = e.Value
		if !slices.Contains(s.purposes, e.Value) {
			s.purposes = append(s.purposes, e.Value)
		}
	case "search_path":
		s.state.path = sqlscan.ParseSearchPath(e.Value)
	}
	s.stateGen++
}

// changeKind says how a statement changes the state verdicts depend on.
type changeKind int

const (
	changeNone     changeKind = iota
	changeFollowed            // exactly followed; confirmed after the segment
	changeUnknown             // only the server can say: nothing more is decided until it has
)

// stateSettings are the settings verdicts depend on; changes of any other
// setting (statement_timeout, DateStyle, ...) change nothing pgguard reads.
func stateSetting(name string) bool {
	switch name {
	case "search_path", "role", "session_authorization", "standard_conforming_strings",
		"client_encoding", "backslash_quote":
		return true
	}
	return strings.HasPrefix(name, "pgguard.")
}

// change classifies st's effect on the session state.
func change(st *sqlscan.Statement) changeKind {
	if st.UserCode {
		// A function the policy allows may call set_config or run SET:
		// only the server can say what the state is after it.
		return changeUnknown
	}
	if st.DDL {
		// The analysis follows relations created earlier in the same text;
		// the catalog, and the state, are read again after it.
		return changeFollowed
	}
	e := st.Effect
	if e == nil {
		return changeNone
	}
	switch e.Kind {
	case "execute", "declare", "fetch", "move", "close", "close_all", "begin", "savepoint", "release",
		"discard_plans", "discard_sequences":
		return changeNone
	case "prepare", "deallocate", "deallocate_all":
		return changeFollowed
	case "set":
		if !stateSetting(e.Name) {
			return changeNone
		}
		if (e.Name == PurposeParameter || e.Name == "search_path") && e.Value != "" &&
			(e.Name != "search_path" || sqlscan.ParseSearchPath(e.Value) != nil) {
			return changeFollowed
		}
	case "reset":
		if !stateSetting(e.Name) {
			return changeNone
		}
	}
	return changeUnknown
}

// txControl reports whether st only controls the transaction: it changes
// session state only by ending a transaction or rolling back to a
// savepoint, undoing what was set since.
func txControl(st *sqlscan.Statement) bool {
	return st.Effect != nil && len(st.Accesses) == 0 && !st.DDL && txControlKind(st.Effect.Kind)
}

// COMMIT PREPARED is not among them: it commits another transaction's
// changes, DDL included, which pgguard saw end (at its PREPARE
// TRANSACTION) before they were committed, so it is always a barrier and
// makes the catalog be read again.
func txControlKind(kind string) bool {
	switch kind {
	case "begin", "commit", "rollback", "savepoint", "release", "rollback_to",
		"prepare_transaction", "rollback_prepared":
		return true
	}
	return false
}

// stateFree reports whether st can run in any state without pgguard
// deciding anything about it: transaction control and changes of settings.
func stateFree(st *sqlscan.Statement) bool {
	if st.Effect == nil || len(st.Accesses) > 0 {
		return false
	}
	switch st.Effect.Kind {
	case "execute", "prepare", "fetch", "move":
		return false
	}
	return true
}

// raiseDatabaseRefusal reports a statement PostgreSQL refused for want of
// a privilege after pgguard let it through: the last one forwarded, which
// in a pipeline may not be the one that failed.
func (s *session) raiseDatabaseRefusal(f *proxy.ErrorFields) {
	s.count(func(m *alert.Metrics) { m.DatabaseRefusals.Inc() })
	pol := s.g.cfg.Policy.Policy()
	statement, fingerprint := "", ""
	if s.lastText != "" {
		statement, fingerprint = alertText(s.lastText)
	}
	ev := alert.Event{
		Kind: alert.KindQueryBlockedByDatabase, User: s.ps.User, Roles: pol.Roles(s.ps.User),
		Purpose: s.effectivePurpose(""), Database: s.ps.Database, ClientAddr: s.ps.ClientAddr.String(),
		ApplicationName: s.ps.Parameter("application_name"), Statement: statement, Fingerprint: fingerprint,
		Denied:        []alert.Denial{{Reason: "PostgreSQL refused it: " + string(f.Message)}},
		PolicyVersion: pol.Version(), Mode: s.g.cfg.Mode, SessionID: fmt.Sprint(s.ps.ID),
		Error: string(f.Code) + " " + string(f.Message),
	}
	s.ps.Logger.Warn().Str("sqlstate", string(f.Code)).Str("fingerprint", fingerprint).
		Msg("PostgreSQL refused a statement pgguard let through: a gap in the analysis the database's privileges closed")
	if s.g.cfg.Alerts != nil {
		s.g.cfg.Alerts.Emit(ev)
	}
}

// raise sends the alert of a denial and counts it.
func (s *session) raise(d *denial) {
	s.count(func(m *alert.Metrics) {
		roles := d.roles
		if len(roles) == 0 {
			roles = []string{"none"}
		}
		for _, role := range roles {
			for _, x := range d.denied {
				m.Denials.WithLabelValues(role, x.Category).Inc()
			}
		}
	})
	ev := alert.Event{
		Kind:            alert.KindForMode(s.g.cfg.Mode),
		User:            s.ps.User,
		Roles:           d.roles,
		Purpose:         d.purpose,
		Database:        s.ps.Database,
		ClientAddr:      s.ps.ClientAddr.String(),
		ApplicationName: s.ps.Parameter("application_name"),
		Statement:       d.statement,
		Fingerprint:     d.fingerprint,
		Denied:          d.denied,
		PolicyVersion:   d.policy,
		Mode:            s.g.cfg.Mode,
		SessionID:       fmt.Sprint(s.ps.ID),
	}
	if s.g.cfg.Alerts != nil {
		s.g.cfg.Alerts.Emit(ev)
	}
}

func (s *session) count(f func(*alert.Metrics)) {
	if m := s.g.cfg.Metrics; m != nil {
		f(m)
	}
}

// warnUnknownPurpose logs a purpose the policy never names: every
// statement that needs one will be refused, and the cause is most likely a
// typo in the application's configuration.
func (s *session) warnUnknownPurpose(purpose string) {
	pol := s.g.cfg.Policy.Policy()
	if purpose != "" && !pol.KnownPurpose(purpose) {
		ev := s.ps.Logger.Warn().Str("purpose", purpose)
		if similar := pol.SimilarPurpose(purpose); similar != "" {
			ev = ev.Str("did_you_mean", similar)
		}
		ev.Msg("client declared a purpose the policy does not know")
	}
}
