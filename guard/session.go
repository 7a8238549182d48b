package guard

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/proxy"
	"github.com/pgguard/pgguard/sqlscan"
	"github.com/rs/zerolog"
)

// session is the guard's view of one client session. The client pump calls
// ClientMessage and the server pump ServerMessage, so state sits behind mu.
type session struct {
	g   *Guard
	ps  *proxy.Session
	log zerolog.Logger

	mu         sync.Mutex
	purpose    setting
	searchPath setting // comma-joined schema list
	// prepared maps statement names (protocol Parse and SQL PREPARE share
	// one namespace in PostgreSQL) to what they access.
	prepared map[string]*prepared
	// recent are the last records made, found again when a driver parses a
	// text it parsed before as the unnamed statement (see record).
	recent     [recentRecords]*prepared
	recentNext int
	// Transaction outcome, from the server's messages.
	lastTagCommit bool
	sawError      bool
	ddlPending    bool
	// roleChanged is set after SET ROLE or SET SESSION AUTHORIZATION.
	roleChanged bool
	// The search_path pgguard follows is applied when a statement is sent.
	// Until every ReadyForQuery owed up to that point has come, an error
	// may mean the server never ran the change: then pgguard cannot know
	// the path, and counts unqualified names against every candidate.
	readyOwed, readySeen uint64 // Query, Sync and FunctionCall sent; ReadyForQuery received
	pathPending          bool   // a path change not yet known to have committed
	pathPendingUntil     uint64 // the ReadyForQuery that ends its statement
	pathUncertain        bool
	replayingBind        bool // effects being replayed come from a Bind, before its Sync

	// stateGen counts changes of purpose and search_path.
	stateGen uint64

	// The verdict table of the current context, and the inputs it was
	// built from.
	table       *textVerdicts
	ctxPolicy   *authz.Policy
	ctxSnap     *catalog.Snapshot
	ctxGen      uint64
	ctxSCS      string
	ctxEncoding string

	// Scratch space for shape keys, reused from statement to statement.
	spans    []span
	shapeBuf []byte
}

// prepared is a statement analysed once, at Parse or PREPARE time.
type prepared struct {
	accesses []authz.Access
	purpose  string // from a purpose comment in its text
	text     string // raw; normalized only for an alert
	effects  []effect
	from     *verdict // the verdict it was recorded from
	// The last decision, reused while the policy and purpose stay the same.
	policy  *authz.Policy
	decided string
	allowed bool
}

func newSession(g *Guard, ps *proxy.Session) *session {
	s := &session{g: g, ps: ps, log: ps.Logger, prepared: make(map[string]*prepared)}
	p, _ := startupSetting(ps.StartupParameters, PurposeParameter)
	s.purpose = newSetting(p, true)
	s.warnUnknownPurpose(p)
	if path, ok := startupSetting(ps.StartupParameters, "search_path"); ok {
		s.searchPath = newSetting(joinPath(sqlscan.ParseSearchPath(path)), true)
	} else {
		s.searchPath = newSetting("", false) // resolved from the catalog per role
	}
	// Differently cased copies of one parameter: which one the server
	// applied is lost with the packet's order.
	s.pathUncertain = countSetting(ps.StartupParameters, "search_path") > 1
	_, role := startupSetting(ps.StartupParameters, "role")
	_, auth := startupSetting(ps.StartupParameters, "session_authorization")
	s.roleChanged = role || auth
	return s
}

func countSetting(params map[string]string, name string) int {
	n := 0
	for k := range params {
		if strings.EqualFold(k, name) {
			n++
		}
	}
	return n
}

// startupSetting is the value a run-time parameter starts the session
// with: PostgreSQL takes any StartupMessage parameter besides user,
// database, options and replication as a setting, applied after those in
// options, so it wins over `-c name=value` there.
func startupSetting(params map[string]string, name string) (string, bool) {
	for k, v := range params {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return startupOption(params["options"], name)
}

// ClientMessage implements proxy.SessionInterceptor.
func (s *session) ClientMessage(m proxy.ClientMessage) proxy.Verdict {
	switch m.Type {
	case 'Q':
		v, _ := s.query(cstring(m.Body), false)
		return v
	case 'P':
		v, _ := s.parse(m.Body, false)
		return v
	case 'B':
		return s.bind(m.Body)
	case 'C':
		s.close(m.Body)
	case 'S':
		s.mu.Lock()
		s.readyOwed++
		s.mu.Unlock()
	case 'F':
		s.mu.Lock()
		defer s.mu.Unlock()
		s.readyOwed++
		return s.apply(&verdict{denied: s.unanalysable("fast-path function call", "function calls through the fast-path interface are not allowed")})
	}
	return proxy.Allow
}

// TryClientMessage implements proxy.QuickSessionInterceptor: a Query or
// Parse whose verdict is cached under the current catalog snapshot is
// decided at once; so is every other message, which needs no analysis.
func (s *session) TryClientMessage(m proxy.ClientMessage) (proxy.Verdict, bool) {
	switch m.Type {
	case 'Q':
		return s.query(cstring(m.Body), true)
	case 'P':
		return s.parse(m.Body, true)
	}
	return s.ClientMessage(m), true
}

// ServerMessage implements proxy.SessionInterceptor: it follows transaction
// boundaries so that SET LOCAL ends and rolled-back SETs are undone.
func (s *session) ServerMessage(typ byte, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch typ {
	case 'C':
		s.lastTagCommit = bytes.HasPrefix(body, []byte("COMMIT"))
		if bytes.HasPrefix(body, []byte("ROLLBACK")) { // also ROLLBACK TO SAVEPOINT
			s.sawError = true
			s.pathMayBeUndone()
		}
	case 'E':
		s.sawError = true
		s.pathMayBeUndone()
	case 'Z':
		s.readySeen++
		if s.pathPending && len(body) == 1 && body[0] == 'I' && s.readySeen >= s.pathPendingUntil {
			s.pathPending = false // its transaction committed without an error
		}
		if len(body) == 1 && body[0] == 'I' {
			committed := !s.sawError || s.lastTagCommit
			purposeChanged := s.purpose.end(committed)
			if s.searchPath.end(committed) || purposeChanged {
				s.stateGen++
			}
			s.sawError, s.lastTagCommit = false, false
			if s.ddlPending {
				s.ddlPending = false
				s.g.cfg.Catalogs.Invalidate(s.ps.Database)
			}
		}
	}
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
func (s *session) query(text []byte, quick bool) (proxy.Verdict, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v *verdict
	if quick {
		if v = s.cachedVerdict(text); v == nil {
			return proxy.Verdict{}, false
		}
	}
	s.readyOwed++ // denied or not, a ReadyForQuery comes for it
	s.beginTx()
	if v == nil {
		v = s.verdictFor(text)
	}
	return s.apply(v), true
}

// parse decides on a Parse and binds what its statement accesses to the
// statement's name, so Bind need not analyse again. quick is as for query.
func (s *session) parse(body []byte, quick bool) (proxy.Verdict, bool) {
	name, text, ok := parseMessage(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		return s.apply(&verdict{denied: s.unanalysable("malformed Parse message", "the Parse message is malformed")}), true
	}
	var v *verdict
	if quick {
		if v = s.cachedVerdict(text); v == nil {
			return proxy.Verdict{}, false
		}
	}
	s.beginTx()
	if v == nil {
		v = s.verdictFor(text)
	}
	// The statement runs at Execute, perhaps many times, perhaps never: its
	// session effects wait for Bind.
	out := s.decide(v)
	// A denied Parse never reaches the server, and PostgreSQL refuses to
	// redefine a named statement: in both cases the statement the server
	// holds under that name, and what pgguard knows of it, stand.
	if out.Action == proxy.Forward {
		s.record(name, text, v)
	}
	return out, true
}

// record binds a forwarded Parse's statement to its name. Drivers that use
// the unnamed statement (JDBC, node-postgres, pgbench -M extended) parse
// before every execution, often a handful of texts in turn; the record of
// a text parsed before is reused, with its last decision, so that such a
// Parse allocates nothing and its Bind asks the policy only when the
// policy or the purpose has changed.
func (s *session) record(name, text []byte, v *verdict) {
	old := s.prepared[string(name)]
	switch {
	case old != nil && len(name) > 0:
		return
	case old != nil && old.from == v && old.text == string(text):
		return
	}
	p := s.recentRecord(text, v)
	if p == nil {
		p = &prepared{purpose: v.purpose, text: string(text), effects: v.effects, from: v}
		if v.single {
			p.accesses = v.accesses
		}
		if len(text) <= recentTextMax {
			s.recent[s.recentNext] = p
			s.recentNext = (s.recentNext + 1) % recentRecords
		}
	}
	s.prepared[string(name)] = p
}

// The records kept for reuse are bounded in number (enough for a
// transaction's worth of statements, few enough to search one by one) and
// in text size, so that a session holds at most 16 KiB of their texts; a
// longer text costs a little more to record each time, as it did before.
const (
	recentRecords = 16
	recentTextMax = 1 << 10
)

// recentRecord returns a record made from the same verdict for the same
// text, or nil. A record depends on nothing else: a changed catalog or
// session context yields another verdict, and its decision is checked
// against the policy and purpose at every Bind.
func (s *session) recentRecord(text []byte, v *verdict) *prepared {
	for _, p := range &s.recent {
		if p != nil && p.from == v && p.text == string(text) {
			return p
		}
	}
	return nil
}

// parseMessage splits a Parse message into statement name and text,
// without copying.
func parseMessage(body []byte) (name, text []byte, ok bool) {
	name, rest, ok := bytes.Cut(body, []byte{0})
	if !ok {
		return nil, nil, false
	}
	text, rest, ok = bytes.Cut(rest, []byte{0})
	if !ok || len(rest) < 2 {
		return nil, nil, false
	}
	oids := int(rest[0])<<8 | int(rest[1])
	if len(rest)-2 < 4*oids {
		return nil, nil, false
	}
	return name, text, true
}

// bind re-decides a prepared statement under the purpose in force now.
func (s *session) bind(body []byte) proxy.Verdict {
	_, rest, ok := bytes.Cut(body, []byte{0}) // portal name
	if !ok {
		return proxy.Allow // malformed: PostgreSQL itself refuses it
	}
	name, _, _ := bytes.Cut(rest, []byte{0})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beginTx()
	p := s.prepared[string(name)]
	if p == nil {
		// pgguard forgets a statement when the client closes it; had the
		// server ignored that Close (inside a failed batch), it would still
		// run the statement. Unknown names are therefore refused.
		return s.apply(&verdict{denied: s.unanalysable("Bind", "the prepared statement is unknown to pgguard")})
	}
	purpose := s.effectivePurpose(p.purpose)
	pol := s.g.cfg.Policy.Policy()
	if p.policy != pol || p.decided != purpose || !p.allowed {
		d := pol.Decide(s.ps.User, purpose, p.accesses)
		p.policy, p.decided, p.allowed = pol, purpose, d.Allowed
		if !d.Allowed {
			return s.apply(&verdict{denied: s.policyDenial(d, purpose, p.text), effects: p.effects})
		}
	}
	s.replayingBind = true
	for i := range p.effects {
		s.replay(&p.effects[i])
	}
	s.replayingBind = false
	return proxy.Allow
}

// pathMayBeUndone: an error or a rollback while a search_path change is
// not known to have committed leaves pgguard unsure of the path.
func (s *session) pathMayBeUndone() {
	if s.pathPending && !s.pathUncertain {
		s.pathUncertain = true
		s.stateGen++
	}
}

// close forgets a statement the client closes.
func (s *session) close(body []byte) {
	if len(body) < 2 || body[0] != 'S' {
		return
	}
	s.mu.Lock()
	delete(s.prepared, string(cstring(body[1:])))
	s.mu.Unlock()
}

// beginTx marks that statements run from here on belong to a transaction
// (implicit, if no BEGIN), whose outcome ServerMessage will learn.
func (s *session) beginTx() {
	s.purpose.begin()
	s.searchPath.begin()
}

func (s *session) effectivePurpose(comment string) string {
	if comment != "" {
		return comment
	}
	p, _ := s.purpose.current()
	return p
}

// currentPath is the search_path in force, nil when pgguard cannot be sure
// of it (then analysis counts a name against every candidate).
func (s *session) currentPath(snap *catalog.Snapshot) []string {
	v, known := s.searchPath.current()
	var path []string
	switch {
	case known:
		path = splitPath(v)
	case snap != nil:
		path = snap.SearchPath(s.ps.User)
	default:
		return nil
	}
	if s.pathUncertain || (s.roleChanged && slices.Contains(path, "$user")) {
		return nil
	}
	return path
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
	pol := s.g.cfg.Policy.Policy()
	s.useContext(snap, pol)
	return snap, pol
}

// useContext points the session at the verdict table of the context made
// of snap, pol and its own state. The key is rebuilt only when an input
// changed, so the hot path compares a few pointers and strings and
// allocates nothing.
func (s *session) useContext(snap *catalog.Snapshot, pol *authz.Policy) {
	scs, enc := s.ps.Parameter("standard_conforming_strings"), s.ps.Parameter("client_encoding")
	if s.table != nil && !s.table.dropped.Load() && pol == s.ctxPolicy && snap == s.ctxSnap && s.stateGen == s.ctxGen &&
		scs == s.ctxSCS && enc == s.ctxEncoding {
		return
	}
	purpose, _ := s.purpose.current()
	k := contextKey{
		user:          s.ps.User,
		purpose:       purpose,
		searchPath:    pathKey(s.currentPath(snap)),
		policyVersion: pol.Version(),
		lexical:       scs + "/" + enc,
	}
	if snap != nil {
		k.catalogVersion = snap.Version()
	}
	s.table = s.g.cache.forContext(k)
	s.ctxPolicy, s.ctxSnap, s.ctxGen, s.ctxSCS, s.ctxEncoding = pol, snap, s.stateGen, scs, enc
}

func cstring(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

func joinPath(p []string) string { return strings.Join(p, ",") }

func splitPath(v string) []string {
	if v == "" {
		return []string{}
	}
	return strings.Split(v, ",")
}

// pathKey distinguishes an unknown path (nil) from an empty one.
func pathKey(p []string) string {
	if p == nil {
		return "\x00unknown"
	}
	return joinPath(p)
}
