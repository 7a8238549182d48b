package guard

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/proxy"
	"github.com/pgguard/pgguard/sqlscan"
)

// session is the guard's view of one client session. The client pump calls
// ClientMessage and the server pump ServerMessage, so state sits behind mu.
type session struct {
	g  *Guard
	ps *proxy.Session

	mu sync.Mutex
	// state is the server's, as last confirmed, moved only by the changes
	// pgguard follows exactly within the current sync segment.
	state state
	// purposes are the purposes the session had since the server last
	// confirmed its state: the confirmed one and those followed since. An
	// error the server sends meanwhile may come from a statement that ran
	// under any of them.
	purposes []string
	// segmentUnknown is set when a message of the current sync segment
	// made a change pgguard does not follow: nothing more is decided
	// until the server's state is confirmed after the segment.
	segmentUnknown bool
	// prepared maps statement names (protocol Parse and SQL PREPARE share
	// one namespace in PostgreSQL) to what they access; nil until the first.
	prepared map[string]*prepared
	// changes are Parse, Close, PREPARE and DEALLOCATE forwarded whose
	// outcome the server has not yet settled.
	changes []recordChange
	// recent are the last records made, found again when a driver parses a
	// text it parsed before as the unnamed statement (see record); nil
	// until the first, so that sessions of the simple protocol hold none.
	recent *recentRing
	// preparedBytes bounds from above the statement text the records
	// hold: each new record adds its text, and preparedDenial counts
	// again when the sum would pass Config.SessionPreparedBytes.
	preparedBytes int64
	errors        uint64 // ErrorResponses seen
	ddlPending    bool
	ddlWide       bool // a DDL statement of the open transaction named no relation
	// catPending are the relation names other transactions' DDL changed
	// that the shared catalog has not read again yet (catalog.Cache.Pending).
	catPending []string
	// lastText is the last statement forwarded, for an alert when the
	// database refuses it ("" when not kept).
	lastText string
	// unsettled are the relation names DDL of the open transaction named
	// (sorted): the shared catalog cannot see uncommitted changes, so each
	// confirmation reads them from the session itself (state.own). unread
	// are those named since the last confirmation, which nothing is
	// decided on until the next; queried are the names the confirmation
	// on its way asks about.
	unsettled []string
	unread    []string
	queried   []string
	// own is what the session's own relations add (DDL of its open
	// transaction, temporary tables); nil until the first.
	own *ownState

	// Purpose roles (purposeroles.go). openSegment is the segment of the
	// last message forwarded that did not end it (0: none open); roles is
	// nil until the session needs any of the rest.
	openSegment uint64
	// held are the cursors and protocol portals the server may hold, by
	// name (held.go): what fetching from each reads, whether it runs code
	// that changes session state, the effects a portal makes when it
	// runs. heldChanges are those changed by messages whose segment the
	// server has not ended yet.
	held        map[string]*heldRows
	heldChanges []*heldRows
	// lastSegment is the segment of the last client message decided.
	lastSegment uint64
	// fetchDepth is how deep fetchDenial is in FETCH portals.
	fetchDepth int
	// errorSegment is the segment the last ErrorResponse came in.
	errorSegment uint64
	// pendingCode are the functions the policy allows that ran since the
	// last confirmation (takeCode); ranFunctions all that ran in the
	// session, which may have opened cursors pgguard never saw declared.
	pendingCode  []string
	ranFunctions []string
	roles        *roleState
	confirmed    bool

	// stateGen counts changes of the state.
	stateGen uint64
	// settled is true while the state is the one the server reported
	// outside a transaction block and nothing forwarded since may have
	// changed it: then ending, rolling back or chaining the transaction
	// has nothing to undo, and transaction control is no barrier.
	settled bool

	// The verdict table of the current context, and the inputs it was
	// built from.
	table     *textVerdicts
	ctxPolicy *authz.Policy
	ctxSnap   *catalog.Snapshot
	ctxGen    uint64

	// Scratch space for shape keys, reused from statement to statement.
	spans    []span
	shapeBuf []byte
}

// prepared is a statement analysed at Parse or PREPARE time.
type prepared struct {
	accesses []authz.Access
	purpose  string // from a purpose comment in its text
	text     string // raw; normalized only for an alert
	effects  []effect
	barrier  bool // running it may change session state
	// functions are the functions the policy allows it to run.
	functions []string
	// writesTemp: an analysis of it found it writing a temporary table,
	// so what it reads flows into the temporary lineage each time it runs.
	writesTemp bool
	// sqlPrepare: made by SQL PREPARE, whose text is the PREPARE statement
	// (re-analysing it yields the inner statement's accesses).
	sqlPrepare bool
	from       *verdict // the verdict it was recorded from
	table      *textVerdicts
	// replaced is the statement the server may still hold under the name
	// after a Parse or PREPARE it may have refused (a name in use, an error
	// earlier in its segment). Every use is decided on both.
	replaced *prepared
	closing  bool // a Close or DEALLOCATE is on its way
	// needsRole: the statement runs in its purpose's role (it is no
	// transaction control or SET).
	needsRole bool
	unknown   bool // the server holds it, pgguard never saw its text
	// The last decision, reused while the policy, purpose and context
	// stay the same.
	policy  *authz.Policy
	decided string
	allowed bool
}

// recordChange is a change of the prepared statements that the server may
// still refuse. It settles at the ReadyForQuery of its segment: cleanly if
// no error came in between, else the old and new statements both stand.
type recordChange struct {
	segment uint64
	errors  uint64 // s.errors when it was made
	name    string
	rec     *prepared
	prev    *prepared // what the name held before a Parse or PREPARE
	close   bool
}

// newSession starts a session whose state is unknown until the server
// confirms it (Confirmed), which the proxy does before the client may send
// anything.
func newSession(g *Guard, ps *proxy.Session) *session {
	return &session{g: g, ps: ps}
}

// ClientMessage implements proxy.SessionInterceptor.
func (s *session) ClientMessage(m proxy.ClientMessage) proxy.Verdict {
	v := s.clientMessage(m)
	s.noteSegment(m, v)
	return v
}

// seen records the segment of a client message about to be decided.
// s.mu is held.
func (s *session) seen(segment uint64) {
	s.lastSegment = max(s.lastSegment, segment)
}

func (s *session) clientMessage(m proxy.ClientMessage) proxy.Verdict {
	switch m.Type {
	case 'Q':
		text, _ := m.QueryText()
		v, _ := s.query(text, m.Segment, false)
		return v
	case 'P':
		v, _ := s.parse(m, false)
		return v
	case 'B':
		v, _ := s.bind(m, false)
		return v
	case 'C':
		s.close(m)
	case 'E':
		return s.execute(m)
	case 'F':
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.apply(&verdict{denied: withHint(s.unanalysable("fast-path function call", "function calls through the fast-path interface are not allowed"),
			"Call the function in a SELECT, where pgguard can check it.")}, 0)
	}
	return proxy.Allow
}

// TryClientMessage implements proxy.QuickSessionInterceptor: a Query,
// Parse or Bind whose verdict is cached under the current catalog snapshot
// is decided at once; so is every other message, which needs no analysis.
func (s *session) TryClientMessage(m proxy.ClientMessage) (v proxy.Verdict, ok bool) {
	switch m.Type {
	case 'Q':
		text, _ := m.QueryText()
		v, ok = s.query(text, m.Segment, true)
	case 'P':
		v, ok = s.parse(m, true)
	case 'B':
		v, ok = s.bind(m, true)
	default:
		return s.ClientMessage(m), true
	}
	if ok {
		s.noteSegment(m, v)
	}
	return v, ok
}

// ServerMessage implements proxy.SessionInterceptor: errors and
// ReadyForQuery settle the prepared statements' changes; the end of a
// transaction that changed the schema makes the catalog reload.
func (s *session) ServerMessage(m proxy.ServerMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch m.Type {
	case 'E':
		s.errors++
		s.errorSegment = s.ps.ReadyCount() + 1
		if f, ok := proxy.DecodeErrorFields(m.Body); ok && string(f.Code) == "42501" {
			s.raiseDatabaseRefusal(&f)
		}
	case 'Z':
		ready := s.ps.ReadyCount()
		s.settle(ready)
		s.settleHeld(ready)
		if m.TxStatus == 'I' {
			// Every portal ends with its transaction.
			s.endTransaction(ready)
		}
		if s.ddlPending && m.TxStatus == 'I' {
			// The transaction is over: its changes are committed, or gone.
			// When every DDL statement of it named the relations it
			// changed, only statements that name them wait for the
			// catalog to be read again; any other DDL (a function, a
			// type, a schema, a setting) makes every statement wait.
			s.ddlPending = false
			if s.ddlWide {
				s.g.cfg.Catalogs.Invalidate(s.ps.Database)
			} else {
				s.g.cfg.Catalogs.InvalidateRelations(s.ps.Database, s.unsettled)
			}
			s.ddlWide = false
			if s.unsettled != nil || s.unread != nil {
				s.unsettled, s.unread = nil, nil
				s.stateGen++
			}
		}
	}
}

// settle applies the changes whose segments the server has ended.
func (s *session) settle(ready uint64) {
	kept := s.changes[:0]
	for _, c := range s.changes {
		if c.segment > ready {
			kept = append(kept, c)
			continue
		}
		clean := s.cleanSince(c.segment, c.errors)
		switch {
		case c.close && clean:
			if s.prepared[c.name] == c.rec {
				delete(s.prepared, c.name)
			}
		case c.close:
			c.rec.closing = false // the server may have skipped it
		case !clean && c.prev != nil && s.prepared[c.name] == c.rec:
			// The server may have refused or skipped the Parse: both stand.
			both := *c.rec
			both.replaced, both.table = c.prev, nil
			s.setPrepared(c.name, &both)
		}
	}
	clear(s.changes[len(kept):])
	s.changes = kept
}

// Close implements proxy.SessionInterceptor.
func (s *session) Close() {
	if m := s.g.cfg.Metrics; m != nil {
		m.ConnectionsOpen.Dec()
	}
}

// query decides on a simple-protocol Query: every statement in it. With
// quick, it answers only from the verdict cache and otherwise declines
// (false) before changing anything.
func (s *session) query(text []byte, segment uint64, quick bool) (proxy.Verdict, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen(segment)
	if d := s.textDenial(text); d != nil {
		return s.apply(&verdict{denied: d}, segment), true
	}
	var v *verdict
	if quick {
		if v = s.cachedVerdict(text); v == nil {
			return proxy.Verdict{}, false
		}
	}
	if v == nil {
		v = s.verdictFor(text)
	}
	if v.denied == nil && len(v.effects) > 0 {
		if d := s.preparedDenial(prepareBytes(v)); d != nil {
			v = &verdict{denied: d}
		}
	}
	if v.denied == nil && s.g.cfg.PurposeRole != nil {
		if rv, d := s.roleFor(v.purposes, segment, text, "", false); d != nil {
			v = &verdict{denied: d}
		} else if rv != nil {
			return *rv, true
		}
	}
	return s.apply(v, segment), true
}

// textDenial refuses a text before any lookup: a text longer than the
// guard decides on, or any text while the state is unknown.
func (s *session) textDenial(text []byte) *denial {
	if len(text) > s.g.cfg.MaxStatementSize {
		return s.sizeDenial(text)
	}
	if s.segmentUnknown {
		return s.stateDenial(text)
	}
	return s.startRoleDenial(text)
}

// stateDenial refuses a statement while pgguard does not know the state it
// would run under: after a change it does not follow, earlier in the same
// sync segment. (When the server could not be asked, decideStatement lets
// only transaction control through: in a failed transaction block the
// server itself refuses everything else.)
func (s *session) stateDenial(text []byte) *denial {
	switch {
	case s.segmentUnknown:
		return withHint(s.unanalysable(string(text), "it follows, in the same pipeline, a session change that pgguard follows only by asking the server; send it after a Sync"), stateHint)
	}
	return nil
}

// parse decides on a Parse and binds what its statement accesses to the
// statement's name, so Bind need not analyse again. quick is as for query.
func (s *session) parse(m proxy.ClientMessage, quick bool) (proxy.Verdict, bool) {
	name, text, ok := m.Parse()
	segment := m.Segment
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen(segment)
	if !ok {
		return s.apply(&verdict{denied: s.unanalysable("malformed Parse message", "the Parse message is malformed")}, segment), true
	}
	if d := s.textDenial(text); d != nil {
		return s.apply(&verdict{denied: d}, segment), true
	}
	var v *verdict
	if quick {
		if v = s.cachedVerdict(text); v == nil {
			return proxy.Verdict{}, false
		}
	}
	if v == nil {
		v = s.verdictFor(text)
	}
	if v.denied == nil {
		if d := s.preparedDenial(len(text)); d != nil {
			v = &verdict{denied: d}
		}
	}
	if v.denied == nil && s.g.cfg.PurposeRole != nil {
		// Parse reads no data, but resolves names, which needs the USAGE
		// of schemas the statement's purpose role holds: switch when it
		// costs no refusal, at the start of a segment.
		if rv, _ := s.roleFor(v.purposes, segment, text, "", true); rv != nil {
			return *rv, true
		}
	}
	// The statement runs at Execute, perhaps many times, perhaps never: its
	// session effects wait for the Execute of a portal bound from it.
	out := s.decide(v)
	// A denied Parse never reaches the server: the statement the server
	// holds under that name, and what pgguard knows of it, stand.
	if out.Action == proxy.Forward {
		s.record(string(name), text, v, segment)
	}
	return out, true
}

// record binds a forwarded Parse's statement to its name. Drivers that use
// the unnamed statement (JDBC, node-postgres, pgbench -M extended) parse
// before every execution, often a handful of texts in turn; the record of
// a text parsed before is reused, with its last decision, so that such a
// Parse allocates nothing and its Bind asks the policy only when the
// policy or the purpose has changed.
//
// The server may refuse the Parse (a name in use, an error earlier in the
// segment): until its segment settles cleanly, the statement held before
// under the name counts too.
func (s *session) record(name string, text []byte, v *verdict, segment uint64) {
	old := s.prepared[name]
	if old != nil && old.from == v && old.text == string(text) && old.replaced == nil && !old.unknown && !old.closing {
		return
	}
	p := s.recentRecord(text, v)
	if p == nil || p == old {
		p = s.newRecord(text, v)
	}
	if old != nil {
		s.changes = append(s.changes, recordChange{segment: segment, errors: s.errors, name: name, rec: p, prev: old})
	}
	s.setPrepared(name, p)
}

// pendingChain returns p, the record of name, for a use in segment: while
// a Parse or PREPARE that made it waits for the server to end an earlier
// segment, the server may have refused it (the name was in use) and still
// hold the statement before, which the returned copy then also chains.
// In the segment of the Parse itself nothing after a refused one runs.
func (s *session) pendingChain(p *prepared, name []byte, segment uint64) *prepared {
	if p == nil || len(s.changes) == 0 {
		return p
	}
	var head, tail *prepared
	cur := p
	for i := len(s.changes) - 1; i >= 0; i-- {
		c := &s.changes[i]
		if c.close || c.prev == nil || c.rec != cur || c.segment == segment || c.name != string(name) {
			continue
		}
		if head == nil {
			cp := *p
			head, tail = &cp, &cp
		}
		for tail.replaced != nil {
			cp := *tail.replaced
			tail.replaced = &cp
			tail = &cp
		}
		prev := *c.prev
		tail.replaced = &prev
		tail, cur = &prev, c.prev
	}
	if head == nil {
		return p
	}
	head.table = nil // decided afresh, as a whole
	return head
}

// setPrepared records p under name, making the map at the first: sessions
// of the simple protocol never need one.
func (s *session) setPrepared(name string, p *prepared) {
	if s.prepared == nil {
		s.prepared = make(map[string]*prepared)
	}
	s.prepared[name] = p
}

// newRecord makes the record of a statement parsed with verdict v.
func (s *session) newRecord(text []byte, v *verdict) *prepared {
	p := &prepared{purpose: v.purpose, text: string(text), effects: v.effects, from: v, barrier: v.barrier, table: s.table, needsRole: len(v.purposes) > 0,
		writesTemp: v.writesTemp(), functions: v.functions()}
	s.preparedBytes += int64(len(text))
	if v.single {
		p.accesses = v.accesses
	}
	if len(text) <= recentTextMax {
		if s.recent == nil {
			s.recent = new(recentRing)
		}
		s.recent.recs[s.recent.next] = p
		s.recent.next = (s.recent.next + 1) % recentRecords
	}
	return p
}

// recountPrepared sums the text of every record the session holds: by
// name (with the statements each may have replaced), in changes not yet
// settled, and kept for reuse. A record held twice counts twice.
func (s *session) recountPrepared() int64 {
	var n int64
	chain := func(p *prepared) {
		for ; p != nil; p = p.replaced {
			n += int64(len(p.text))
		}
	}
	for _, p := range s.prepared {
		chain(p)
	}
	for _, c := range s.changes {
		chain(c.rec)
		chain(c.prev)
	}
	if s.recent != nil {
		for _, p := range &s.recent.recs {
			chain(p)
		}
	}
	return n
}

// The records kept for reuse are bounded in number (enough for a
// transaction's worth of statements, few enough to search one by one) and
// in text size, so that a session holds at most 16 KiB of their texts; a
// longer text costs a little more to record each time, as it did before.
const (
	recentRecords = 16
	recentTextMax = 1 << 10
)

// recentRing holds the last records made; next is where the next goes.
type recentRing struct {
	recs [recentRecords]*prepared
	next int
}

// recentRecord returns a record made from the same verdict for the same
// text, or nil. A record depends on nothing else: a changed catalog or
// session context yields another verdict, and its decision is checked
// against the policy and purpose at every Bind.
func (s *session) recentRecord(text []byte, v *verdict) *prepared {
	if s.recent == nil {
		return nil
	}
	for _, p := range &s.recent.recs {
		if p != nil && p.from == v && p.text == string(text) && p.replaced == nil && !p.closing {
			return p
		}
	}
	return nil
}

// bind decides a prepared statement under the state in force now. The
// server re-resolves a statement's names when search_path or a referenced
// object changed since it was planned, and keeps its old resolution
// otherwise: what the statement may touch is the union over every context
// pgguard has seen it used in, and each use under a new context re-analyses
// the text. With quick, it declines (false) when that takes an analysis.
func (s *session) bind(m proxy.ClientMessage, quick bool) (proxy.Verdict, bool) {
	portal, name, ok := m.Bind()
	if !ok {
		return proxy.Allow, true // PostgreSQL itself refuses it
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen(m.Segment)
	if d := s.stateDenial([]byte("Bind")); d != nil {
		return s.apply(&verdict{denied: d}, 0), true
	}
	if d := s.startRoleDenial([]byte("Bind")); d != nil {
		return s.apply(&verdict{denied: d}, 0), true
	}
	p := s.pendingChain(s.prepared[string(name)], name, m.Segment)
	if !s.state.known && !endsTransaction(p) {
		return s.apply(&verdict{denied: s.unknownStateDenial("Bind", true, nil)}, 0), true
	}
	if p == nil {
		// Every Parse passes pgguard, and every name the server holds is
		// recorded at each confirmation: the server has no such statement.
		return s.apply(&verdict{denied: s.noSuchStatement(string(name))}, 0), true
	}
	if p.unknown {
		// A statement pgguard has no text of: it may have been made where
		// pgguard could not see it, or survive a Close the server skipped.
		return s.apply(&verdict{denied: s.unanalysable("Bind", "the prepared statement is unknown to pgguard")}, 0), true
	}
	if quick && !s.bindIsQuick(p) {
		return proxy.Verdict{}, false
	}
	if !quick {
		// The state the server confirmed, or the catalog, may have moved
		// since the session's last statement: bring the context up to
		// date (bindIsQuick does on the quick path), or the statements
		// would be decided on what they touched under the old one.
		s.refreshContext(s.ps.Context())
	}
	pol := s.g.cfg.Policy.Policy()
	barrier := false
	for q := p; q != nil; q = q.replaced {
		if q.unknown {
			return s.apply(&verdict{denied: s.unanalysable("Bind", "the prepared statement is unknown to pgguard")}, 0), true
		}
		if d := s.decidePrepared(q, pol); d != nil {
			return s.apply(&verdict{denied: d}, 0), true
		}
		for _, e := range q.effects {
			if e.Kind == "fetch" || e.Kind == "move" {
				if d := s.fetchDenial(e.Name, q.purpose, s.state.purpose, pol); d != nil {
					return s.apply(&verdict{denied: d}, 0), true
				}
			}
		}
		// A transaction control statement parsed while the state was
		// settled is a barrier where it no longer is.
		barrier = barrier || q.barrier || (!s.settled && endsTransaction(q)) || s.fetchesCode(q)
	}
	if s.g.cfg.PurposeRole != nil {
		var purposes []string
		for q := p; q != nil; q = q.replaced {
			if q.needsRole {
				purposes = addPurpose(purposes, s.effectivePurpose(q.purpose))
			}
		}
		if rv, d := s.roleFor(purposes, m.Segment, nil, p.text, false); d != nil {
			return s.apply(&verdict{denied: d}, 0), true
		} else if rv != nil {
			return *rv, true
		}
	}
	s.count(func(m *alert.Metrics) { m.CountStatement(alert.VerdictAllowed) })
	// The portal's session effects wait until it runs. What it writes into
	// temporary tables counts at once: which rows a statement bound later
	// sees is the server's to decide. A statement whose analysis found it
	// writing one copies its reads as they stand now, which a re-analysis
	// may have added to since it was parsed.
	effects := p.effects
	for q := p; q != nil; q = q.replaced {
		for i := range q.effects {
			s.flowIntoTemps(q.effects[i].tempWrites, q.effects[i].tempReads)
		}
		if q.writesTemp {
			s.flowIntoTemps([]string{string(name)}, lineageOf(q.accesses))
		}
	}
	if p.replaced != nil && barrier {
		// Which of the statements runs decides the change: follow none.
		s.segmentUnknown = true
		effects = nil
	}
	s.lastText = p.text
	s.holdPortal(portal, p, m.Segment, barrier || changesState(p), effects)
	return proxy.Verdict{Action: proxy.Forward, Barrier: barrier}, true
}

// changesState reports whether running p (or a statement the server may
// hold under its name instead) may change the session's state: a SET, a
// transaction's end, DDL, a function the policy allows.
func changesState(p *prepared) bool {
	for q := p; q != nil; q = q.replaced {
		if q.barrier {
			return true
		}
		for i := range q.effects {
			e := &q.effects[i]
			st := sqlscan.Statement{DDL: e.ddl, UserCode: e.userCode}
			if e.Kind != "" {
				st.Effect = &e.Effect
			}
			if e.ddl || change(&st) != changeNone {
				return true
			}
		}
	}
	return false
}

// fetchesCode reports whether p fetches from a cursor or portal that runs
// code (runsCode), or executes a prepared statement that may change
// session state (preparedRunsCode).
func (s *session) fetchesCode(p *prepared) bool {
	for _, e := range p.effects {
		if (e.Kind == "fetch" || e.Kind == "move") && s.runsCode(e.Name) || e.Kind == "execute" && s.preparedRunsCode(e.Name) {
			return true
		}
	}
	return false
}

// preparedFunctions are the functions the policy allows that EXECUTE of
// the prepared statement name may run.
func (s *session) preparedFunctions(name string) []string {
	return runsOf(s.prepared[name]).functions
}

// preparedRunsCode reports whether EXECUTE of the prepared statement name
// may change session state: a statement the server may hold under the
// name calls a function the policy allows, or is a change of state itself,
// or is unknown (runsOf).
func (s *session) preparedRunsCode(name string) bool {
	return runsOf(s.prepared[name]).code
}

// endsTransaction reports whether p is certainly a statement that only
// controls the transaction (ROLLBACK, COMMIT, ROLLBACK TO SAVEPOINT, ...),
// which may run while the state is unknown: drivers send ROLLBACK through
// the extended protocol too.
func endsTransaction(p *prepared) bool {
	if p == nil || p.unknown || p.replaced != nil || len(p.accesses) > 0 || len(p.effects) == 0 {
		return false
	}
	for _, e := range p.effects {
		switch e.Kind {
		case "commit", "rollback", "rollback_to", "release", "savepoint", "begin":
		default:
			return false
		}
	}
	return true
}

// bindIsQuick reports whether bind can decide from what it holds: the
// catalog snapshot is current and each statement the name may hold was
// analysed in this context, or its text's verdict here is cached.
func (s *session) bindIsQuick(p *prepared) bool {
	snap, ok := s.g.cfg.Catalogs.Current(s.ps.Database)
	if !ok {
		return false
	}
	s.notePending(nil)
	s.useContext(s.withOwn(snap), s.g.cfg.Policy.Policy())
	for q := p; q != nil; q = q.replaced {
		if (q.table != s.table && s.table.get([]byte(q.text)) == nil) || executesPrepared(q) {
			return false
		}
	}
	return true
}

// decidePrepared decides one statement the server may run at a Bind.
func (s *session) decidePrepared(p *prepared, pol *authz.Policy) *denial {
	if d := s.reanalysePrepared(p); d != nil {
		return d
	}
	purpose := s.effectivePurpose(p.purpose)
	if p.policy != pol || p.decided != purpose || !p.allowed {
		d := pol.Decide(s.ps.User, purpose, p.accesses)
		p.policy, p.decided, p.allowed = pol, purpose, d.Allowed
		if !d.Allowed {
			return s.policyDenial(d, purpose, p.text)
		}
	}
	return nil
}

// reanalysePrepared brings a prepared statement's accesses up to the
// session's context, which the caller has brought up to date: under another context than the one it was analysed in
// (a changed search_path, role or catalog) the server may resolve its
// names anew, so the text is analysed again (from the cache, usually) and
// what it touches now is added to what it touched before.
func (s *session) reanalysePrepared(p *prepared) *denial {
	runsOther := executesPrepared(p)
	if p.table == s.table && !runsOther {
		return nil
	}
	table := s.table
	v := s.verdictFor([]byte(p.text))
	if v.denied != nil {
		return v.denied
	}
	if runsOther {
		// An EXECUTE (or CREATE TABLE AS EXECUTE) parsed through the
		// protocol runs whatever the name it executes holds now, which
		// SQL PREPARE and DEALLOCATE may have changed in any context: its
		// effects are those of the statement it runs now.
		p.effects, p.barrier = v.effects, p.barrier || v.barrier
	}
	p.accesses = unionAccesses(p.accesses, v.accesses)
	p.barrier = p.barrier || (v.barrier && !p.sqlPrepare)
	// The server plans the statement again in the new context too: a
	// temporary table created since may now be what it writes.
	p.writesTemp = p.writesTemp || v.writesTemp()
	for _, f := range v.functions() {
		if !slices.Contains(p.functions, f) {
			p.functions = append(p.functions, f)
		}
	}
	for i := range v.effects {
		e := &v.effects[i]
		// A function it now resolves to may change session state; what it
		// now reads flows into the temporary tables it writes, whichever
		// statement runs it (Bind, EXECUTE, CREATE TABLE AS EXECUTE).
		p.barrier = p.barrier || e.userCode
		s.flowIntoTemps(e.tempWrites, e.tempReads)
	}
	p.table, p.policy = table, nil
	return nil
}

// executesPrepared reports whether p's statement runs another prepared
// statement (EXECUTE).
func executesPrepared(p *prepared) bool {
	for i := range p.effects {
		if p.effects[i].Kind == "execute" {
			return true
		}
	}
	return false
}

// unionAccesses adds to a what b has that a lacks.
func unionAccesses(a, b []authz.Access) []authz.Access {
	var out []authz.Access
	for _, x := range b {
		if !slices.Contains(a, x) {
			if out == nil {
				out = append(out, a...)
			}
			out = append(out, x)
		}
	}
	if out == nil {
		return a
	}
	return out
}

// close marks a statement or portal the client closes; it is forgotten
// once the server has surely done so.
func (s *session) close(m proxy.ClientMessage) {
	kind, name, ok := m.Target()
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen(m.Segment)
	if kind == 'P' {
		s.closePortal(name, m.Segment)
		return
	}
	s.closeRecord(string(name), m.Segment)
}

func (s *session) closeRecord(name string, segment uint64) {
	if p := s.prepared[name]; p != nil {
		p.closing = true
		s.changes = append(s.changes, recordChange{segment: segment, errors: s.errors, name: name, rec: p, close: true})
	}
}

func (s *session) effectivePurpose(comment string) string {
	if comment != "" {
		return comment
	}
	return s.state.purpose
}

// currentPath is the search_path in force, nil when pgguard cannot be sure
// of it (then analysis counts a name against every candidate).
func (s *session) currentPath() []string {
	if !s.state.known {
		return nil
	}
	return s.state.path
}

// usableSchemas are the schemas the server confirmed it searches; none
// (not nil) while the state is unknown, when the path is unknown anyway.
// A session the server never confirmed (pgguard check's) has nil: it
// decides on the catalog's view of the path.
func (s *session) usableSchemas() []string {
	if !s.state.known {
		return []string{}
	}
	return s.state.usable
}

// refreshContext points the session at the verdict table of its current
// context, loading the catalog snapshot if it is not current.
func (s *session) refreshContext(ctx context.Context) (*catalog.Snapshot, *authz.Policy) {
	snap, err := s.g.cfg.Catalogs.Get(ctx, s.ps.Database)
	if err != nil {
		// A failed reload leaves the previous snapshot, which may lack what
		// DDL since added: deciding on it could let data out.
		snap = nil
	}
	s.notePending(s.g.cfg.Catalogs.Pending(s.ps.Database))
	snap = s.withOwn(snap)
	pol := s.g.cfg.Policy.Policy()
	s.useContext(snap, pol)
	return snap, pol
}

// notePending records the relation names the shared catalog has yet to
// read again: verdicts are decided, and cached, with them refused.
func (s *session) notePending(names []string) {
	if !slices.Equal(s.catPending, names) {
		s.catPending = names
		s.stateGen++
	}
}

// withOwn is the snapshot the session's statements are decided on: the
// shared one with the relations the session's open transaction changed
// as the server showed them to the session at the last confirmation. The
// overlay is kept while neither changes.
func (s *session) withOwn(snap *catalog.Snapshot) *catalog.Snapshot {
	if snap == nil || len(s.state.ownNames) == 0 {
		return snap
	}
	o := s.ownState()
	if o.overBase != snap || o.overKey != s.state.ownKey {
		o.overBase, o.overKey, o.overSnap = snap, s.state.ownKey, snap.Overlay(s.state.ownNames, s.state.own)
	}
	return o.overSnap
}

// ownState is what a session keeps about its own relations, behind one
// pointer: most sessions change no relation and write no temporary table.
type ownState struct {
	// The overlay of the session's own relations on the shared snapshot
	// it was last built on (see withOwn).
	overBase *catalog.Snapshot
	overKey  string
	overSnap *catalog.Snapshot
	// tempLineage is what the statements that wrote any temporary table
	// read (sqlscan.Context.TempLineage); lineageKey is a digest of it,
	// for the cache key: sessions share verdicts only with the same one.
	tempLineage []sqlscan.Access
	lineageKey  string
	// tempFunctions are the functions the policy allows that ran while,
	// or before, the server reported temporary tables (takeCode).
	tempFunctions []string
}

// ownState returns the session's ownState, making it at the first call.
func (s *session) ownState() *ownState {
	if s.own == nil {
		s.own = new(ownState)
	}
	return s.own
}

// lineage returns the session's temporary lineage and its digest.
func (s *session) lineage() ([]sqlscan.Access, string) {
	if s.own == nil {
		return nil, ""
	}
	return s.own.tempLineage, s.own.lineageKey
}

// useContext points the session at the verdict table of the context made
// of snap, pol and its own state. The key holds every input of a verdict,
// the whole state included; it is rebuilt only when an input changed, so
// the hot path compares a few pointers and allocates nothing.
func (s *session) useContext(snap *catalog.Snapshot, pol *authz.Policy) {
	if s.table != nil && !s.table.dropped.Load() && pol == s.ctxPolicy && snap == s.ctxSnap && s.stateGen == s.ctxGen {
		return
	}
	_, lineageKey := s.lineage()
	k := contextKey{
		user:       s.ps.User,
		role:       s.state.role,
		purpose:    s.state.purpose,
		searchPath: pathKey(s.currentPath()) + "\x00" + strings.Join(s.usableSchemas(), ","),
		temps: s.state.tempKey + "\x00" + strings.Join(s.unsettled, "\x00") + "\x00" + strings.Join(s.unread, "\x00") +
			"\x00" + lineageKey + "\x00" + s.state.ownKey + "\x00" + strings.Join(s.catPending, "\x00"),
		policyVersion: pol.Version(),
		lexical:       s.state.scs + "/" + s.state.encoding,
		settled:       s.settled,
	}
	if !s.state.known {
		k.lexical = "\x00unknown"
	}
	if snap != nil {
		k.catalogVersion = snap.Version()
	}
	s.table = s.g.cache.forContext(k)
	s.ctxPolicy, s.ctxSnap, s.ctxGen = pol, snap, s.stateGen
}

func joinPath(p []string) string { return strings.Join(p, ",") }

// pathKey distinguishes an unknown path (nil) from an empty one.
func pathKey(p []string) string {
	if p == nil {
		return "\x00unknown"
	}
	return joinPath(p)
}
