package guard

import (
	"maps"

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

// heldRows is what fetching from a cursor or portal reads.
type heldRows struct {
	accesses []authz.Access
	purpose  string // from a purpose comment in the declaring text
	// code is set for a cursor whose query runs code the policy allows,
	// which may change session state at every FETCH or MOVE.
	code bool
	// functions are the functions the policy allows that its query runs.
	functions []string
	// replaced is the cursor the server may still hold under the name:
	// a DECLARE the server may have refused (the name in use) or skipped
	// (an error before it) leaves both standing until its segment ends
	// without an error.
	replaced *heldRows
	// The last decision, reused while policy and purpose stay the same.
	policy  *authz.Policy
	decided string
}

// cursorChange is a DECLARE, CLOSE, CLOSE ALL or DISCARD ALL forwarded
// whose outcome the server has not settled yet. A cursor declared WITH
// HOLD outlives errors and transactions: the server refuses a CLOSE in a
// failed transaction block, a DISCARD ALL inside any, a DECLARE of a name
// in use, and skips what follows an error in its message or segment. So
// what pgguard knows of the cursors changes only once the segment that
// changes them has ended without an error.
type cursorChange struct {
	segment uint64
	errors  uint64 // session.errors when it was forwarded
	name    string
	// rec is the cursor a DECLARE made (what it replaces hangs below it),
	// or the one a CLOSE closes.
	rec   *heldRows
	close bool
	// all are the cursors CLOSE ALL or DISCARD ALL closes.
	all map[string]*heldRows
}

// holdCursor records a cursor change (replayed when forwarded) of the sync
// segment numbered segment.
func (s *session) holdCursor(e *effect, segment uint64) {
	switch e.Kind {
	case "declare":
		if s.cursors == nil {
			s.cursors = map[string]*heldRows{}
		}
		rec := &heldRows{accesses: e.accesses, purpose: e.purpose, code: e.userCode, functions: e.functions}
		if old := s.cursors[e.Name]; old != nil {
			rec.replaced = old
			s.cursorChanges = append(s.cursorChanges, cursorChange{segment: segment, errors: s.errors, name: e.Name, rec: rec})
		}
		s.cursors[e.Name] = rec
	case "close":
		if old := s.cursors[e.Name]; old != nil {
			s.cursorChanges = append(s.cursorChanges, cursorChange{segment: segment, errors: s.errors, name: e.Name, rec: old, close: true})
		}
	case "close_all", "discard_all":
		if len(s.cursors) > 0 {
			s.cursorChanges = append(s.cursorChanges, cursorChange{segment: segment, errors: s.errors, all: maps.Clone(s.cursors)})
		}
	}
}

// cursorFunctions are the functions the policy allows that fetching from
// the cursor name may run.
func (s *session) cursorFunctions(name string) []string {
	var out []string
	for h := s.cursors[name]; h != nil; h = h.replaced {
		out = append(out, h.functions...)
	}
	return out
}

// settleCursors applies the cursor changes whose segments the server has
// ended (ready): those that met no error; the others leave every cursor
// they would have replaced or closed standing.
func (s *session) settleCursors(ready uint64) {
	if len(s.cursorChanges) == 0 {
		return
	}
	kept := s.cursorChanges[:0]
	for _, c := range s.cursorChanges {
		if c.segment > ready {
			kept = append(kept, c)
			continue
		}
		if c.errors != s.errors {
			continue
		}
		switch {
		case c.all != nil:
			for name, rec := range c.all {
				if s.cursors[name] == rec {
					delete(s.cursors, name)
				}
			}
		case c.close:
			if s.cursors[c.name] == c.rec {
				delete(s.cursors, c.name)
			}
		default:
			// The DECLARE took effect: what it replaced is gone.
			c.rec.replaced = nil
		}
	}
	clear(s.cursorChanges[len(kept):])
	s.cursorChanges = kept
}

// holdPortal records what a portal bound from p reads. The entry of a
// portal name is reused, so that drivers binding the unnamed portal for
// every statement allocate nothing.
func (s *session) holdPortal(portal []byte, p *prepared) {
	h := s.portalRows[string(portal)]
	if h == nil {
		if s.portalRows == nil {
			s.portalRows = map[string]*heldRows{}
		}
		h = &heldRows{}
		s.portalRows[string(portal)] = h
	}
	h.purpose, h.accesses = p.purpose, p.accesses
	if p.replaced != nil {
		h.accesses = nil
		for q := p; q != nil; q = q.replaced {
			h.accesses = append(h.accesses, q.accesses...)
		}
	}
	// Bind decided it under the purpose and policy in force.
	h.policy, h.decided = s.g.cfg.Policy.Policy(), s.effectivePurpose(h.purpose)
}

// fetchDenial decides fetching from the cursor or portal name under the
// purpose comment of the fetching statement, or the one in force
// (current). A name pgguard never saw declared is one a function the
// policy allows opened, or none at all, which the server refuses: its
// rows are what such a function chose, fetched only where the policy
// allows running every function it allows that ran in the session.
func (s *session) fetchDenial(name, comment, current string, pol *authz.Policy) *denial {
	h := s.cursors[name]
	if h == nil {
		h = s.portalRows[name]
	}
	if h == nil && len(s.ranFunctions) > 0 {
		h = &heldRows{}
		for _, f := range s.ranFunctions {
			h.accesses = append(h.accesses, authz.Access{Column: authz.FunctionPrefix + f, Act: authz.ActExecute})
		}
	}
	// Every cursor the server may hold under the name.
	for ; h != nil; h = h.replaced {
		purpose := comment
		if purpose == "" {
			purpose = h.purpose
		}
		if purpose == "" {
			purpose = current
		}
		if h.policy == pol && h.decided == purpose {
			continue
		}
		d := pol.Decide(s.ps.User, purpose, h.accesses)
		if !d.Allowed {
			return withHint(s.policyDenial(d, purpose, "FETCH "+name), "A cursor's or portal's rows are read when they are fetched, "+
				"under the purpose in force then: fetch them under a purpose that allows what its query reads.")
		}
		h.policy, h.decided = pol, purpose
	}
	return nil
}
