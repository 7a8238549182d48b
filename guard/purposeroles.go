package guard

import (
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/proxy"
	"github.com/pgguard/pgguard/sqlscan"
)

// Purpose roles: PostgreSQL enforces the purpose too. With
// Config.PurposeRole set, every statement runs in the role of the purpose
// it is decided under (package grants makes those roles, and the users
// their NOINHERIT members). Before a statement whose purpose needs another
// role than the one the server last reported (current_user in the state
// query), the guard asks the proxy for a Switch: the proxy holds the
// message, runs SET ROLE unseen by the client, reads the state again, and
// shows the guard the same message, now decided on the role the server
// reports. The role is thus confirmed, never assumed: a SET ROLE that a
// rollback undid, or that the server refused, shows in the next state read,
// and the next statement switches again (or is refused).
//
// Only the first message of a sync segment can wait for a switch: the
// server may still be running the segment's earlier messages. A statement
// that needs another role than the one in force, after other messages of
// its segment, is refused: two statements with different purposes in one
// Query message, or in one pipeline before a Sync. Transaction control and
// SET need no role, so `SET pgguard.purpose = 'x'; SELECT ...` in one
// message switches to x's role before the message.
//
// Clients may not change role themselves, with or without purpose roles:
// the department ceiling (and the purpose role) is the login's, and
// pgguard decides on the login. SET ROLE, SET SESSION AUTHORIZATION, their
// RESET, SET LOCAL, set_config, and a session that starts in another role
// (the startup option -c role=..., or ALTER ROLE ... SET role) are refused.
// RESET ALL and DISCARD ALL return to the login's role: they are barriers,
// and the next statement switches again.

// roleState is what a session keeps about roles: for purpose roles
// (Config.PurposeRole) and for a session that started in another role than
// its user's. It sits behind one pointer, made at the first need, so that
// other sessions hold none of it.
type roleState struct {
	// roles caches purposeRole's answers under rolesPolicy ("": the
	// login keeps its own role).
	roles       map[string]string
	rolesPolicy *authz.Policy
	// switchTried is the role a Switch asked for and not yet seen in
	// force, preludeErr the server's error for it; startRole the role a
	// session started in other than its user's, which pgguard refuses.
	switchTried string
	preludeErr  string
	startRole   string
}

// roleState returns the session's roleState, making it at the first call.
func (s *session) roleState() *roleState {
	if s.roles == nil {
		s.roles = new(roleState)
	}
	return s.roles
}

// roleFor works out whether the statements about to run under purposes
// need a role switch first. It returns the Switch verdict, a denial, or
// neither (run as things are). With optional (Parse, which reads no data),
// it never refuses. s.mu is held.
func (s *session) roleFor(purposes []string, segment uint64, raw []byte, str string, optional bool) (*proxy.Verdict, *denial) {
	if s.g.cfg.PurposeRole == nil || len(purposes) == 0 || !s.state.known || s.segmentUnknown {
		return nil, nil
	}
	text := func() string {
		if raw != nil {
			return string(raw)
		}
		return str
	}
	rs := s.roleState()
	want, wantPurpose := "", ""
	for _, p := range purposes {
		r, ok := s.purposeRole(p)
		if !ok {
			return nil, nil // the login keeps its own role
		}
		if want != "" && r != want {
			if optional {
				return nil, nil
			}
			return nil, withHint(s.unanalysable(text(), fmt.Sprintf("its statements run under the purposes %q and %q, whose roles differ, and pgguard switches the session's role only between messages",
				wantPurpose, p)), "Send statements of different purposes as messages of their own (after a Sync in a pipeline).")
		}
		want, wantPurpose = r, p
	}
	if want == s.state.role {
		rs.switchTried, rs.preludeErr = "", ""
		return nil, nil
	}
	if s.openSegment == segment {
		if optional {
			return nil, nil
		}
		return nil, withHint(s.unanalysable(text(), fmt.Sprintf("its purpose %q needs the role %s, but earlier messages of its pipeline run as %s, and pgguard switches the session's role only between sync segments",
			wantPurpose, want, s.state.role)), "Send it after a Sync, or as a message of its own.")
	}
	if rs.switchTried == want {
		// The switch was asked for, and the server reports another role.
		why := rs.preludeErr
		rs.switchTried, rs.preludeErr = "", ""
		if optional {
			return nil, nil
		}
		if why == "" {
			why = "the server reports the role " + s.state.role
		}
		return nil, withHint(s.unanalysable(text(), fmt.Sprintf("the session could not switch to the role %s of the purpose %q: %s", want, wantPurpose, why)),
			"The purpose roles are made by `pgguard grants --purpose-roles --apply`; `pgguard grants check --purpose-roles` shows what is missing.")
	}
	rs.switchTried, rs.preludeErr = want, ""
	return &proxy.Verdict{Action: proxy.Switch, Prelude: "SET ROLE " + quoteIdent(want)}, nil
}

// purposeRole is the role of the session's user under purpose, worked out
// once per policy and purpose: the hot path pays one map lookup.
func (s *session) purposeRole(purpose string) (string, bool) {
	pol := s.g.cfg.Policy.Policy()
	rs := s.roleState()
	if rs.rolesPolicy != pol {
		rs.rolesPolicy, rs.roles = pol, map[string]string{}
	}
	if r, ok := rs.roles[purpose]; ok {
		return r, r != ""
	}
	r, ok := s.g.cfg.PurposeRole(pol, s.ps.User, purpose)
	if !ok {
		r = ""
	}
	if len(rs.roles) < maxCachedRoles {
		rs.roles[purpose] = r
	}
	return r, ok
}

// maxCachedRoles bounds a session's cache of purpose roles: clients choose
// the purposes they declare.
const maxCachedRoles = 64

// execute refuses an Execute of a portal whose statement changes session
// state in a later segment than the one that bound it (lateStateChange),
// and one of a portal bound in another role than the one in force: its
// statement would run with the privileges of another purpose than it was
// decided under. Otherwise the portal's statement runs, and the session
// effects its Bind held (pend) take effect.
func (s *session) execute(m proxy.ClientMessage) proxy.Verdict {
	name, ok := m.Portal()
	if !ok {
		return proxy.Allow // PostgreSQL itself refuses it
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen(m.Segment)
	h := s.held[string(name)]
	if d := s.lateStateChange(h, m.Segment); d != nil {
		return s.apply(&verdict{denied: d}, m.Segment)
	}
	if h != nil || len(s.ranFunctions) > 0 {
		// A name pgguard never saw defined may be a cursor a function
		// the policy allows opened (fetchDenial).
		if d := s.fetchDenial(string(name), "", s.state.purpose, s.g.cfg.Policy.Policy()); d != nil {
			return s.apply(&verdict{denied: d}, m.Segment)
		}
	}
	if s.g.cfg.PurposeRole != nil && h != nil {
		// PostgreSQL checks the privileges of a SELECT when it binds it,
		// but those of an INSERT, UPDATE, DELETE or MERGE when it first
		// executes it, in the role then in force.
		defs, _ := h.candidates(m.Segment)
		for i := range defs {
			if role := defs[i].role; role != "" && role != s.state.role {
				return s.apply(&verdict{denied: withHint(s.unanalysable("Execute", fmt.Sprintf("the portal was bound in the role %s, and the session has since switched to %s for another purpose", role, s.state.role)),
					"Execute a portal in the segment that binds it, or under the same purpose.")}, m.Segment)
			}
		}
	}
	s.fetchesRun(h, m.Segment)
	if s.run(h, m.Segment) {
		return proxy.Verdict{Action: proxy.Forward, Barrier: true}
	}
	return proxy.Allow
}

// noteSegment records, for a message the proxy forwards or denies, whether
// its sync segment is still open after it.
func (s *session) noteSegment(m proxy.ClientMessage, v proxy.Verdict) {
	if s.g.cfg.PurposeRole == nil || v.Action == proxy.Switch {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch m.Type {
	case 'Q', 'S', 'F':
		s.openSegment = 0
	default:
		s.openSegment = m.Segment
	}
}

// PreludeDone implements proxy.PreludeObserver: why a SET ROLE failed, for
// the refusal that follows.
func (s *session) PreludeDone(e *pgproto3.ErrorResponse) {
	if e == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roleState().preludeErr = e.Code + " " + e.Message
}

// roleChangeDenial refuses a client's own change of role or session
// authorization.
func (s *session) roleChangeDenial(st *sqlscan.Statement) *denial {
	e := st.Effect
	if e == nil || (e.Kind != "set" && e.Kind != "reset") || (e.Name != "role" && e.Name != "session_authorization") {
		return nil
	}
	return withHint(s.unanalysable(st.Text, "clients may not change the session's role or authorization through pgguard"),
		"pgguard decides on the login; connect as the user whose rights you need.")
}

// startRoleDenial refuses everything in a session that started in another
// role than its login's: the role's privileges are not the department's.
func (s *session) startRoleDenial(text []byte) *denial {
	if s.roles == nil || s.roles.startRole == "" {
		return nil
	}
	return withHint(s.unanalysable(string(text), fmt.Sprintf("the session started in the role %s, not as its user %s", s.roles.startRole, s.ps.User)),
		"Remove the role setting from the connection options (-c role=...) or from ALTER ROLE ... SET role.")
}

// noteStartRole records, at the first state read, a session that starts in
// another role than its user's.
func (s *session) noteStartRole(role string) {
	if s.confirmed {
		return
	}
	s.confirmed = true
	if role != s.ps.User {
		s.roleState().startRole = role
	}
}

// roleFree reports whether st needs no purpose role: transaction control,
// settings and cursor or statement housekeeping, which read no data.
func roleFree(st *sqlscan.Statement) bool {
	if st.Effect == nil || len(st.Accesses) > 0 || st.DDL || st.UserCode {
		return false
	}
	switch st.Effect.Kind {
	case "set", "reset", "reset_all", "discard_all", "discard_plans", "discard_sequences", "discard_temp",
		"close", "close_all", "deallocate", "deallocate_all", "commit_prepared":
		return true
	}
	return txControlKind(st.Effect.Kind)
}

func addPurpose(list []string, p string) []string {
	if slices.Contains(list, p) {
		return list
	}
	return append(list, p)
}

// quoteIdent quotes a role name for SQL, always.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
