package guard

import (
	"slices"

	"github.com/pgguard/pgguard/authz"
)

// Rows a cursor or a portal holds reach the client when they are fetched,
// maybe long after the statement that made them was decided: under
// another purpose (a SET, a purpose comment on the FETCH), or under a
// policy that has since changed. A cursor declared WITH HOLD is a copy of
// its rows kept past its transaction, like a temporary table. So every
// FETCH, MOVE and Execute is decided again: what the cursor's query reads,
// under the purpose in force when the rows are fetched. A purpose comment
// in the cursor's or statement's own text stays its purpose, as it would
// for the statement itself.
//
// Cursors and protocol portals share one namespace in PostgreSQL: FETCH
// reads a portal, Execute runs a cursor, and a DECLARE or Bind of a name
// in use fails. So pgguard keeps one record per name, and never assumes
// that a definition or a removal it forwarded took effect: a DECLARE,
// Bind, CLOSE, Close or DISCARD ALL may fail (the name is in use, or not),
// or be skipped by the server after an earlier error of its segment, and
// a savepoint rolled back to keeps the portals made before it. Until the
// segment that carries it has ended without any error, the definitions
// the name had before stand beside the new one, and a fetch in a later
// segment is decided on all of them (see candidates).

// heldDef is one definition the server may hold under a cursor or portal
// name.
type heldDef struct {
	accesses []authz.Access // what fetching from it reads
	purpose  string         // from a purpose comment in the defining text
	// cursor: made by DECLARE, whose WITH HOLD form outlives its
	// transaction; a protocol portal ends with its transaction.
	cursor bool
	// code: running or fetching it may change session state (a SET, a
	// function the policy allows, DDL, ...).
	code bool
	// functions are the functions the policy allows that running or
	// fetching it runs.
	functions []string
	// bound is, for a protocol portal whose statement changes session
	// state, the segment that bound it (see lateStateChange); 0 otherwise.
	bound uint64
	// effects are the session effects a protocol portal's statement makes
	// when it first runs (nil once it ran).
	effects []effect
	// role is the role in force when a protocol portal was bound, under
	// purpose roles ("" otherwise).
	role string
	// segment is the sync segment that defined it.
	segment uint64
	// fetches are the cursors or portals a protocol portal's statement
	// (FETCH or MOVE) fetches from when it first runs; from is what they
	// held then, once ran: the portal keeps the rows it fetched, and
	// every later Execute reads them.
	fetches []string
	from    []heldDef
	ran     bool
	// ranSegment and ranErrors are the segment of the last Execute or
	// FETCH that may have run a FETCH portal for the first time, and the
	// session's error count then; ranSure is set once the server is known
	// to have run it (no error since, nor earlier in that segment). Until
	// then the first run may have been skipped after an error, and the
	// portal still fetches from its cursors as they stand.
	ranSegment, ranErrors uint64
	ranSure               bool
	// executes are the prepared statements a protocol portal's statement
	// (EXECUTE) runs: the utility runs when the portal does, on what the
	// name holds then, not when it was bound.
	executes []string
	// deep stands for what a chain of FETCH portals too long to follow
	// fetched: fetching from it is refused.
	deep bool
}

// heldRows is what the server may hold under one cursor or portal name.
type heldRows struct {
	name string
	// defs are every definition the server may hold under the name; the
	// last is the one forwarded last.
	defs []heldDef
	// A definition or removal forwarded that the server has not settled:
	// pendSegment is the segment of the last one, pendErrors and
	// pendFirst the error count and the segment at the first.
	pending                            bool
	pendSegment, pendFirst, pendErrors uint64
	gone                               bool // the last one forwarded removes the name
	// lost is set when the name had more possible definitions than are
	// kept: fetching from it is refused.
	lost bool
	// maybeNone is set while the server may hold nothing under the name:
	// it was free, and the segment of the definition forwarded for it had
	// an error, so the server may have skipped it, and a function the
	// policy allows may have opened a cursor under the name since.
	maybeNone bool
	// The last decision that allowed every definition, reused while the
	// policy, the fetching statement's purpose comment and the purpose in
	// force stay the same; and the same for the last definition alone.
	all, last decided
}

// decided is a decision that allowed fetching, and what it was made under.
type decided struct {
	policy           *authz.Policy
	comment, current string
}

// candidates are the definitions an Execute, FETCH or MOVE in segment may
// meet. In the segment of the last change forwarded, that change took
// effect if anything after it runs: PostgreSQL skips the rest of a segment
// after an error, a failed DECLARE or Bind of a name in use fails its
// transaction, and a Bind of the unnamed portal replaces the one before.
// Otherwise every definition since the last settled one may stand.
func (h *heldRows) candidates(segment uint64) (defs []heldDef, lastOnly bool) {
	if h.settling(segment) {
		if h.gone || len(h.defs) == 0 {
			return nil, true
		}
		return h.defs[len(h.defs)-1:], true
	}
	return h.defs, len(h.defs) == 1
}

// settling reports whether the last change forwarded for the name is of
// segment and not yet settled: nothing after it in its segment runs unless
// it took effect.
func (h *heldRows) settling(segment uint64) bool {
	return h.pending && h.pendSegment == segment
}

// maxHeldDefs bounds the definitions kept per name: a client that keeps
// redefining a name in failing segments gets its fetches refused.
const maxHeldDefs = 16

// define records a definition forwarded for name in segment.
func (s *session) define(name []byte, d heldDef, segment uint64) *heldRows {
	d.segment = segment
	h := s.held[string(name)]
	if h == nil {
		if s.held == nil {
			s.held = map[string]*heldRows{}
		}
		h = &heldRows{name: string(name)}
		s.held[h.name] = h
	}
	if n := len(h.defs); n > 0 && !h.gone && !h.lost && sameDef(&h.defs[n-1], &d) {
		// Bound again from the statement of its last definition (drivers
		// bind the unnamed portal so for every execution): whether this
		// Bind takes effect or not, the name holds what it held.
		h.defs[n-1].segment = max(h.defs[n-1].segment, segment)
		return h
	}
	h.all, h.last = decided{}, decided{}
	if len(h.defs) == 0 && !h.pending && !h.lost {
		// Nothing of the name is known to the server: either this
		// definition takes effect, or there is none (maybeNone until its
		// segment ends without an error).
		h.defs = append(h.defs, d)
		h.maybeNone = true
		s.pendHeld(h, segment)
		return h
	}
	s.pendHeld(h, segment)
	h.gone = false
	for i := range h.defs {
		if sameDef(&h.defs[i], &d) {
			// Bound again from the same statement: one definition, now
			// the last.
			h.defs = slices.Delete(h.defs, i, i+1)
			break
		}
	}
	h.defs = append(h.defs, d)
	if len(h.defs) > maxHeldDefs {
		h.defs = mergeDefs(h.defs)
		if len(h.defs) > maxHeldDefs {
			h.lost = true
			h.defs = h.defs[len(h.defs)-1:]
		}
	}
	return h
}

// mergeDefs folds the definitions before the last that differ only in
// what they read into one that reads all of it, and whose effects, if any
// had some, count as code that may change state. A pipeline that binds
// the unnamed portal from many statements before its Sync keeps a few.
func mergeDefs(defs []heldDef) []heldDef {
	last := defs[len(defs)-1]
	var out []heldDef
	for _, d := range defs[:len(defs)-1] {
		if len(d.fetches) > 0 || len(d.executes) > 0 {
			out = append(out, d) // decided on what it fetches or runs: kept apart
			continue
		}
		d.code = d.code || len(d.effects) > 0
		d.effects = nil
		i := slices.IndexFunc(out, func(o heldDef) bool {
			return len(o.fetches) == 0 && o.purpose == d.purpose && o.cursor == d.cursor && o.code == d.code && o.bound == d.bound && o.role == d.role &&
				o.segment == d.segment
		})
		if i < 0 {
			d.accesses, d.functions = slices.Clone(d.accesses), slices.Clone(d.functions)
			out = append(out, d)
			continue
		}
		for _, a := range d.accesses {
			if !slices.Contains(out[i].accesses, a) {
				out[i].accesses = append(out[i].accesses, a)
			}
		}
		for _, f := range d.functions {
			if !slices.Contains(out[i].functions, f) {
				out[i].functions = append(out[i].functions, f)
			}
		}
	}
	return append(out, last)
}

// sameDef reports whether two definitions are the same statement bound
// the same way (drivers bind the unnamed portal from a few statements in
// turn).
func sameDef(a, b *heldDef) bool {
	// The segment is left out: a driver binds the same statement again
	// in every segment, and the new definition (last) carries the new one.
	return a.purpose == b.purpose && a.cursor == b.cursor && a.code == b.code && a.bound == b.bound &&
		a.role == b.role && len(a.effects) == 0 && len(b.effects) == 0 && slices.Equal(a.functions, b.functions) &&
		len(a.fetches) == 0 && len(b.fetches) == 0 && len(a.executes) == 0 && len(b.executes) == 0 &&
		len(a.accesses) == len(b.accesses) && (len(a.accesses) == 0 || &a.accesses[0] == &b.accesses[0])
}

// forget records a removal of name (CLOSE, protocol Close) forwarded in
// segment.
func (s *session) forget(name string, segment uint64) {
	h := s.held[name]
	if h == nil || (len(h.defs) == 0 && !h.pending && !h.lost) {
		return
	}
	s.pendHeld(h, segment)
	h.gone = true
}

// forgetAll records a CLOSE ALL or DISCARD ALL forwarded in segment.
func (s *session) forgetAll(segment uint64) {
	for name := range s.held {
		s.forget(name, segment)
	}
}

// pendHeld marks h as changed by a message of segment whose outcome the
// server has not settled.
func (s *session) pendHeld(h *heldRows, segment uint64) {
	if !h.pending {
		h.pending, h.pendFirst, h.pendErrors = true, segment, s.errors
		s.heldChanges = append(s.heldChanges, h)
	}
	h.pendSegment = max(h.pendSegment, segment)
}

// settleHeld settles the changes of names whose segments the server has
// ended (ready): without an error in them, the last definition or removal
// took effect; otherwise every definition stands.
func (s *session) settleHeld(ready uint64) {
	kept := s.heldChanges[:0]
	for _, h := range s.heldChanges {
		if h.pendSegment > ready {
			kept = append(kept, h)
			continue
		}
		if s.cleanSince(h.pendFirst, h.pendErrors) {
			// The last change took effect, whatever came before it.
			h.lost, h.maybeNone = false, false
			if h.gone {
				clear(h.defs)
				h.defs = h.defs[:0]
			} else if n := len(h.defs); n > 1 {
				h.defs[0] = h.defs[n-1]
				clear(h.defs[1:])
				h.defs = h.defs[:1]
				h.all = h.last
			}
		} else {
			h.all = decided{}
		}
		h.pending, h.gone, h.pendSegment = false, false, 0
		if len(h.defs) == 0 && !h.lost && h.name != "" {
			delete(s.held, h.name)
		}
	}
	clear(s.heldChanges[len(kept):])
	s.heldChanges = kept
}

// cleanSince reports whether no error came from the server since a change
// made when s.errors was errors, in the segment numbered segment: none
// after it, nor one earlier in its segment, after which the server skips
// the rest of the segment.
func (s *session) cleanSince(segment, errors uint64) bool {
	return s.errors == errors && (s.errors == 0 || s.errorSegment < segment)
}

// endTransaction drops the protocol portals whose transaction has ended:
// those bound in the segments up to ready, after which the server is idle.
// A portal bound in a later segment, which a pipeline may have sent before
// this ReadyForQuery came, belongs to the next transaction.
func (s *session) endTransaction(ready uint64) {
	ended := func(d heldDef) bool { return !d.cursor && d.segment <= ready }
	for name, h := range s.held {
		if slices.ContainsFunc(h.defs, ended) {
			h.defs = slices.DeleteFunc(h.defs, ended)
			h.all, h.last = decided{}, decided{}
		}
		if len(h.defs) == 0 && !h.lost && !h.pending && name != "" {
			// The unnamed portal's entry is kept for the next Bind to
			// reuse: drivers bind it for every statement.
			delete(s.held, name)
		}
	}
}

// holdCursor records a cursor DECLARE made, or CLOSE or DISCARD ALL
// removed (replayed when forwarded, in segment).
func (s *session) holdCursor(e *effect, segment uint64) {
	switch e.Kind {
	case "declare":
		s.define([]byte(e.Name), heldDef{accesses: e.accesses, purpose: e.purpose, cursor: true, code: e.userCode, functions: e.functions}, segment)
	case "close":
		s.forget(e.Name, segment)
	case "close_all", "discard_all":
		s.forgetAll(segment)
	}
}

// holdPortal records the portal a Bind of p makes, in segment: what
// fetching from it reads, whether running it changes session state, the
// effects it makes when it runs, the role it was bound in.
func (s *session) holdPortal(portal []byte, p *prepared, segment uint64, stateful bool, effects []effect) {
	d := heldDef{accesses: p.accesses, purpose: p.purpose, code: stateful, effects: effects, functions: p.functions}
	if p.replaced != nil {
		d.accesses, d.functions = nil, nil
		for q := p; q != nil; q = q.replaced {
			d.accesses = append(d.accesses, q.accesses...)
			d.functions = append(d.functions, q.functions...)
		}
	}
	if stateful {
		d.bound = segment
	}
	if s.g.cfg.PurposeRole != nil {
		d.role = s.state.role
	}
	for q := p; q != nil; q = q.replaced {
		for i := range q.effects {
			if e := &q.effects[i]; e.Kind == "fetch" || e.Kind == "move" {
				d.fetches = append(d.fetches, e.Name)
			} else if e.Kind == "execute" {
				d.executes = append(d.executes, e.Name)
			}
		}
	}
	h := s.define(portal, d, segment)
	if len(d.fetches) > 0 || len(d.executes) > 0 {
		// What it fetches from or executes may be declared or prepared
		// again, under another purpose, before it runs: Bind's decision
		// holds for the Bind.
		h.all, h.last = decided{}, decided{}
		return
	}
	// Bind decided it under the purpose and policy in force.
	h.last = decided{policy: s.g.cfg.Policy.Policy(), current: s.state.purpose}
	if len(h.defs) == 1 && !h.lost {
		h.all = h.last
	}
}

// closePortal records a protocol Close of a portal.
func (s *session) closePortal(name []byte, segment uint64) {
	if h := s.held[string(name)]; h != nil {
		s.forget(h.name, segment)
	}
}

// fetchDenial decides fetching from the cursor or portal name under the
// purpose comment of the fetching statement, or the one in force
// (current): every definition the server may hold under the name. A name
// pgguard never saw defined is one a function the policy allows opened,
// or none at all, which the server refuses: its rows are what such a
// function chose, fetched only where the policy allows running every
// function it allows that ran in the session (unseenCursor).
func (s *session) fetchDenial(name, comment, current string, pol *authz.Policy) *denial {
	h := s.held[name]
	if h == nil {
		if len(s.ranFunctions) == 0 {
			return nil
		}
		return s.decideHeld(name, comment, current, s.unseenCursor(), pol)
	}
	defs, lastOnly := h.candidates(s.lastSegment)
	if h.lost && !lastOnly {
		return withHint(s.unanalysable("FETCH "+name, "the cursor or portal was redefined in failing pipelines too often for pgguard to know what it holds"),
			"Close it, and declare or bind it again after a Sync.")
	}
	if len(s.ranFunctions) > 0 && name != "" && (len(defs) == 0 || h.maybeNone && !h.settling(s.lastSegment)) {
		// The server may hold nothing pgguard saw defined under the
		// name, and then what a function opened (never the unnamed
		// portal).
		if d := s.decideHeld(name, comment, current, s.unseenCursor(), pol); d != nil {
			return d
		}
	}
	now := decided{policy: pol, comment: comment, current: current}
	cache := &h.all
	if lastOnly {
		cache = &h.last
	}
	// What a FETCH portal fetches may change until it runs: no decision
	// on it is reused.
	cacheable := len(defs) > 0 && !slices.ContainsFunc(defs, func(d heldDef) bool { return len(d.fetches) > 0 || len(d.executes) > 0 })
	if cacheable && *cache == now {
		return nil
	}
	for i := range defs {
		if d := s.decideHeld(name, comment, current, &defs[i], pol); d != nil {
			return d
		}
	}
	if cacheable {
		*cache = now
	}
	return nil
}

// unseenCursor is what fetching from a cursor pgguard never saw declared
// asks of the policy: running every function the policy allows that ran
// in the session, one of which may have opened it.
func (s *session) unseenCursor() *heldDef {
	d := &heldDef{}
	for _, f := range s.ranFunctions {
		d.accesses = append(d.accesses, authz.Access{Column: authz.FunctionPrefix + f, Act: authz.ActExecute})
	}
	return d
}

// maxFetchDepth bounds the chain of FETCH portals fetching from each
// other that a fetch is decided through.
const maxFetchDepth = 4

// fetchedDenial decides what a FETCH portal's definition fetches: before
// it ran, the cursors or portals it names, as they stand; afterwards, what
// they held when it ran, whose rows it keeps. comment is the purpose
// comment of the fetching statement, or the FETCH portal's own.
func (s *session) fetchedDenial(def *heldDef, comment, current string, pol *authz.Policy) *denial {
	if comment == "" {
		comment = def.purpose
	}
	s.checkRan(def)
	for _, name := range def.fetches {
		if def.ran {
			for j := range def.from {
				if d := s.decideHeld(name, comment, current, &def.from[j], pol); d != nil {
					return d
				}
			}
			if def.ranSure {
				continue
			}
			// Its first run may have been skipped: this one would
			// fetch what the cursor holds now.
		}
		if s.fetchDepth >= maxFetchDepth {
			return s.unanalysable("FETCH "+name, "it fetches from portals that fetch from each other")
		}
		s.fetchDepth++
		d := s.fetchDenial(name, comment, current, pol)
		s.fetchDepth--
		if d != nil {
			return d
		}
	}
	return nil
}

// fetchesRun records, for the FETCH portals h may hold, what the cursors
// they fetch from hold as they run now. A run the server may have skipped
// after an error is not the first for sure: until one is, each run adds
// what the cursors hold then.
func (s *session) fetchesRun(h *heldRows, segment uint64) {
	if h == nil {
		return
	}
	defs, _ := h.candidates(segment)
	for i := range defs {
		d := &defs[i]
		if len(d.fetches) == 0 {
			continue
		}
		s.checkRan(d)
		if d.ranSure {
			continue
		}
		d.ran, d.ranSegment, d.ranErrors = true, segment, s.errors
		for _, n := range d.fetches {
			c := s.held[n]
			if c == nil {
				continue
			}
			if s.fetchDepth >= maxFetchDepth {
				d.from = append(d.from, heldDef{deep: true})
				continue
			}
			// A FETCH portal it fetches from runs now too, if it has not
			// yet: what it keeps is what this one keeps.
			s.fetchDepth++
			s.fetchesRun(c, segment)
			s.fetchDepth--
			cs, _ := c.candidates(segment)
			for _, f := range cs {
				from := f.from
				f.effects, f.fetches, f.from = nil, nil, nil
				for _, g := range append([]heldDef{f}, from...) {
					if !slices.ContainsFunc(d.from, func(o heldDef) bool { return sameDef(&o, &g) && o.deep == g.deep }) {
						d.from = append(d.from, g)
					}
				}
			}
		}
	}
}

// decideHeld decides fetching from one definition of name.
func (s *session) decideHeld(name, comment, current string, def *heldDef, pol *authz.Policy) *denial {
	purpose := comment
	if purpose == "" {
		purpose = def.purpose
	}
	if purpose == "" {
		purpose = current
	}
	if def.deep {
		return s.unanalysable("FETCH "+name, "it fetched from portals that fetch from each other")
	}
	d := pol.Decide(s.ps.User, purpose, def.accesses)
	if !d.Allowed {
		return withHint(s.policyDenial(d, purpose, "FETCH "+name), "A cursor's or portal's rows are read when they are fetched, "+
			"under the purpose in force then: fetch them under a purpose that allows what its query reads.")
	}
	for _, n := range def.executes {
		if d := s.executedDenial(n, def, purpose, comment != "" || def.purpose != "", pol); d != nil {
			return d
		}
	}
	if len(def.fetches) > 0 {
		return s.fetchedDenial(def, comment, current, pol)
	}
	return nil
}

// executedDenial decides what a portal bound from EXECUTE name runs when
// it runs now: the statements the server may hold under the name now,
// each analysed under the state in force, under purpose (or, unless
// commented is set, the purpose comment of the prepared text). Code that
// may change session state that its Bind did not know of is refused: it
// would run behind pgguard's back.
func (s *session) executedDenial(name string, def *heldDef, purpose string, commented bool, pol *authz.Policy) *denial {
	p := s.pendingChain(s.prepared[name], []byte(name), s.lastSegment)
	if p == nil {
		return nil // the server refuses it
	}
	var accesses []authz.Access
	for q := p; q != nil; q = q.replaced {
		if q.unknown {
			return s.unanalysable("EXECUTE "+name, "the prepared statement is unknown to pgguard")
		}
		if q.text != "" {
			if d := s.reanalysePrepared(q); d != nil {
				return d
			}
		}
		accesses = unionAccesses(accesses, q.accesses)
	}
	if r := runsOf(p); r.effects || (r.code && !def.code) {
		return withHint(s.unanalysable("EXECUTE "+name, "the portal runs a prepared statement that changes session state, prepared since the portal was bound"),
			"Bind the portal again after preparing the statement.")
	}
	if p.purpose != "" && !commented {
		purpose = p.purpose
	}
	if d := pol.Decide(s.ps.User, purpose, accesses); !d.Allowed {
		return withHint(s.policyDenial(d, purpose, "EXECUTE "+name), "A portal bound from EXECUTE runs the statement prepared under the name when it runs: "+
			"run it under a purpose that allows what that statement reads.")
	}
	return nil
}

// runsCode reports whether fetching from the named cursor or portal may
// run code that changes session state: a cursor declared over a function
// the policy allows, or a protocol portal bound from a state-changing
// statement (FETCH reads protocol portals too).
func (s *session) runsCode(name string) bool {
	h := s.held[name]
	if h == nil {
		return false
	}
	defs, lastOnly := h.candidates(s.lastSegment)
	if h.lost && !lastOnly {
		return true
	}
	for i := range defs {
		if defs[i].code {
			return true
		}
		if s.fetchesCodeNow(&defs[i]) {
			// A FETCH portal that has not run yet runs the query of
			// what it fetches from as that stands now.
			return true
		}
	}
	return false
}

// checkRan sets d.ranSure once the server has ended the segment of the
// run recorded for the FETCH portal d without an error in it or since:
// that run was not skipped.
func (s *session) checkRan(d *heldDef) {
	if d.ran && !d.ranSure && s.ps.ReadyCount() >= d.ranSegment && s.cleanSince(d.ranSegment, d.ranErrors) {
		d.ranSure = true
	}
}

// stillFetches are the cursors or portals a FETCH portal's definition
// fetches from when it next runs: none once the server has run it, after
// which it returns the rows it kept.
func (s *session) stillFetches(d *heldDef) []string {
	s.checkRan(d)
	if d.ranSure {
		return nil
	}
	return d.fetches
}

// cursorFunctions are the functions the policy allows that fetching from
// the cursor or portal name may run.
func (s *session) cursorFunctions(name string) []string {
	h := s.held[name]
	if h == nil {
		return nil
	}
	var out []string
	defs, _ := h.candidates(s.lastSegment)
	for i := range defs {
		out = append(out, defs[i].functions...)
		out = append(out, s.fetchedFunctions(&defs[i])...)
	}
	return out
}

// lateStateChange refuses the Execute of a portal bound in an earlier sync
// segment whose statement changes session state. A statement runs at
// Execute, not at Bind: inside a transaction block a portal outlives its
// segment, and a SET bound in one segment and run in a later one would
// change the state after the server confirmed it, behind pgguard's back,
// for the statements after it in that segment. pgguard follows the change
// of a portal executed in the segment that binds it, where the barrier at
// the segment's end has the server report what it did.
func (s *session) lateStateChange(h *heldRows, segment uint64) *denial {
	if h == nil {
		return nil
	}
	defs, _ := h.candidates(segment)
	for i := range defs {
		if b := defs[i].bound; b != 0 && b != segment {
			return withHint(s.unanalysable("Execute", "the portal's statement changes session state, and it was bound before the server last reported that state"),
				"Execute a portal that changes settings, the transaction or the schema in the sync segment that binds it.")
		}
	}
	return nil
}

// run applies the held effects of a portal the client executes in
// segment: from now on the server runs in the state they make. When the
// name may hold several statements, which one runs decides the change:
// none is followed, and the rest of the segment waits for the server. A
// cursor over code, executed as a portal, runs its code as FETCH does.
// It reports whether the Execute is a barrier.
func (s *session) run(h *heldRows, segment uint64) bool {
	if h == nil {
		return false
	}
	defs, lastOnly := h.candidates(segment)
	if len(defs) > 1 || (h.lost && !lastOnly) {
		barrier := h.lost && !lastOnly
		var functions []string
		for i := range defs {
			if len(defs[i].effects) > 0 || defs[i].code || s.fetchesCodeNow(&defs[i]) {
				barrier = true
			}
			functions = append(functions, defs[i].functions...)
			functions = append(functions, s.fetchedFunctions(&defs[i])...)
			defs[i].effects = nil
		}
		if barrier {
			s.replay(&effect{userCode: true, functions: functions}, segment)
		}
		return barrier
	}
	if len(defs) == 0 {
		return false
	}
	d := &defs[0]
	effects := d.effects
	d.effects = nil
	for i := range effects {
		s.replay(&effects[i], segment)
	}
	if d.code && (d.cursor || len(effects) == 0) {
		// A cursor over code, or a statement whose change pgguard knows
		// only as code that may change state (one SQL PREPARE made).
		s.replay(&effect{userCode: true, functions: d.functions}, segment)
		return true
	}
	if s.fetchesCodeNow(d) {
		// A FETCH portal whose first run may have been skipped runs the
		// query of what it fetches from as that stands now.
		s.replay(&effect{userCode: true, functions: s.fetchedFunctions(d)}, segment)
		return true
	}
	return false
}

// fetchesCodeNow reports whether running the FETCH portal definition d
// may run code that changes session state: it has not run for sure, and
// what it fetches from runs such code (runsCode).
func (s *session) fetchesCodeNow(d *heldDef) bool {
	names := s.stillFetches(d)
	if len(names) == 0 {
		return false
	}
	if s.fetchDepth >= maxFetchDepth {
		return true
	}
	s.fetchDepth++
	defer func() { s.fetchDepth-- }()
	return slices.ContainsFunc(names, s.runsCode)
}

// fetchedFunctions are the functions the policy allows that running the
// FETCH portal definition d may run through what it fetches from.
func (s *session) fetchedFunctions(d *heldDef) []string {
	if s.fetchDepth >= maxFetchDepth {
		return nil
	}
	s.fetchDepth++
	defer func() { s.fetchDepth-- }()
	var out []string
	for _, n := range s.stillFetches(d) {
		out = append(out, s.cursorFunctions(n)...)
	}
	return out
}
