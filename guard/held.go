package guard

import (
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
	// The last decision, reused while policy and purpose stay the same.
	policy  *authz.Policy
	decided string
}

// holdCursor records a cursor DECLARE made (replayed when forwarded).
func (s *session) holdCursor(e *effect) {
	switch e.Kind {
	case "declare":
		if s.cursors == nil {
			s.cursors = map[string]*heldRows{}
		}
		s.cursors[e.Name] = &heldRows{accesses: e.accesses, purpose: e.purpose}
	case "close":
		delete(s.cursors, e.Name)
	case "close_all", "discard_all":
		clear(s.cursors)
	}
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
// (current). A name pgguard never saw declared (one a function opened, or
// none at all, which the server refuses) is left to the server.
func (s *session) fetchDenial(name, comment, current string, pol *authz.Policy) *denial {
	h := s.cursors[name]
	if h == nil {
		h = s.portalRows[name]
	}
	if h == nil {
		return nil
	}
	purpose := comment
	if purpose == "" {
		purpose = h.purpose
	}
	if purpose == "" {
		purpose = current
	}
	if h.policy == pol && h.decided == purpose {
		return nil
	}
	d := pol.Decide(s.ps.User, purpose, h.accesses)
	if !d.Allowed {
		return withHint(s.policyDenial(d, purpose, "FETCH "+name), "A cursor's or portal's rows are read when they are fetched, "+
			"under the purpose in force then: fetch them under a purpose that allows what its query reads.")
	}
	h.policy, h.decided = pol, purpose
	return nil
}
