package guard

import (
	"context"
	"net"
	"slices"

	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/proxy"
	"github.com/pgguard/pgguard/sqlscan"
)

// Explanation is the decision on a statement text, with the reasons, as
// `pgguard check` and `pgguard policy test` show it.
type Explanation struct {
	// Allowed is true when the proxy would forward the text in enforce mode.
	Allowed bool `json:"allowed"`
	// Message, Detail and Hint are the error a client would receive.
	Message string `json:"message,omitempty"`
	Detail  string `json:"detail,omitempty"`
	Hint    string `json:"hint,omitempty"`
	// Denied lists the refused accesses.
	Denied []alert.Denial `json:"denied,omitempty"`
	// Statements are what the analysis found, statement by statement.
	Statements []ExplainedStatement `json:"statements"`
	// PolicyVersion is the policy that decided.
	PolicyVersion string `json:"policy_version"`
	// CatalogVersion is the schema snapshot the analysis used.
	CatalogVersion string `json:"catalog_version"`
}

// ExplainedStatement is one statement's analysis.
type ExplainedStatement struct {
	Statement string          `json:"statement"` // normalized: no literal values
	Purpose   string          `json:"purpose"`
	Accesses  []ExplainAccess `json:"accesses"`
	Refused   string          `json:"refused,omitempty"` // why it cannot be analysed
}

// ExplainAccess is one column access with the data categories of the column.
type ExplainAccess struct {
	Column     string   `json:"column"`
	Act        string   `json:"act"`
	Clause     string   `json:"clause"`
	Categories []string `json:"categories"`
	// Allowed and DecidedBy are the policy's verdict on this access under
	// the statement's purpose, and the rule (or missing allow) behind it,
	// for people; the JSON output leaves them out.
	Allowed   bool   `json:"-"`
	DecidedBy string `json:"-"`
}

// Explain decides on sql for user connected to database with purpose
// declared at connection time, exactly as a fresh session through the proxy
// would, and says why.
func (g *Guard) Explain(ctx context.Context, user, database, purpose, sql string) Explanation {
	ps := &proxy.Session{
		User: user, Database: database,
		ClientAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)},
		Logger:     g.cfg.Logger,
	}
	ps.SetStartupParameter("user", user)
	ps.SetStartupParameter("database", database)
	s := newSession(g, ps)
	s.mu.Lock()
	defer s.mu.Unlock()
	// What a server reports for a fresh session of user: the purpose
	// declared at connection time, the role's default search_path.
	s.state = state{known: true, purpose: purpose, role: user, scs: "on", encoding: "UTF8"}
	if snap, err := g.cfg.Catalogs.Get(ctx, database); err == nil && snap != nil {
		s.state.path = slices.Clone(snap.SearchPath(user))
	}
	snap, pol := s.refreshContext(ctx)
	v := s.evaluate(ctx, sql, snap, pol)
	out := Explanation{Allowed: v.denied == nil, PolicyVersion: pol.Version()}
	if v.denied != nil {
		out.Message, out.Detail, out.Hint = v.denied.err.Message, v.denied.err.Detail, v.denied.err.Hint
		out.Denied = v.denied.denied
	}
	if snap == nil {
		return out
	}
	out.CatalogVersion = snap.Version()
	res := sqlscan.Analyze(sql, snap, s.scanContext(pol, s.currentPath(), s.effectivePurpose("")))
	for _, st := range res.Statements {
		es := ExplainedStatement{Statement: sqlscan.Normalize(st.Text), Purpose: s.effectivePurpose(st.Purpose)}
		if st.Denial != nil {
			es.Refused = st.Denial.Reason
		}
		for _, a := range st.Accesses {
			col := a.Schema + "." + a.Table + "." + a.Column
			allowed, why := pol.Why(user, es.Purpose, authz.Access{Column: col, Act: authz.Act(a.Act)})
			es.Accesses = append(es.Accesses, ExplainAccess{Column: col, Act: string(a.Act), Clause: a.Clause,
				Categories: pol.Categories(col), Allowed: allowed, DecidedBy: why})
		}
		out.Statements = append(out.Statements, es)
	}
	return out
}
