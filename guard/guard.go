// Package guard enforces pgguard's policy on the wire: it implements
// proxy.Interceptor with the statement analysis of sqlscan, the schema of
// catalog, the decisions of authz, and raises alerts through alert.
//
// For each statement a client sends, the guard
//
//  1. checks that the session's encoding settings let the analysis read the
//     text as PostgreSQL will (standard_conforming_strings, client_encoding);
//  2. looks the exact text up in the verdict cache, keyed by everything the
//     verdict depends on (user, purpose, search_path, catalog and policy
//     versions, lexical settings) — never by a fingerprint;
//  3. on a miss, analyses which columns the statement reads and writes,
//     refreshing the catalog once when it names an unknown relation, and asks
//     the policy about them, statement by statement, following the purpose
//     and search_path changes the text itself makes;
//  4. forwards the statement, or answers with a 42501 error and raises an
//     alert (monitor mode forwards and flags instead).
//
// The server's errors pass through the guard too (details.go): the DETAIL
// of a constraint violation shows row values, and is withheld unless the
// session may read every column of the table the error names.
//
// Session state it follows: the declared purpose (startup option, SET,
// SET LOCAL, RESET, DISCARD ALL), the search_path, prepared statements (by
// protocol Parse or SQL PREPARE) with the accesses bound to their names, and
// transaction boundaries from the server's ReadyForQuery, so that SET LOCAL
// ends with its transaction and a rollback undoes a SET. With purpose roles
// (Config.PurposeRole) it also puts each statement in the role of its
// purpose, confirmed by the server (purposeroles.go).
package guard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/proxy"
	"github.com/pgguard/pgguard/sqlscan"
	"github.com/rs/zerolog"
)

// Config wires the guard to its collaborators.
type Config struct {
	// Policy holds the current policy; required.
	Policy *authz.Engine
	// Catalogs gives each database's schema snapshot; required.
	Catalogs *catalog.Cache
	// Alerts receives one event per denied (or flagged) statement; nil
	// drops them (tests of other concerns).
	Alerts *alert.Dispatcher
	// Metrics, when set, are updated on the data path.
	Metrics *alert.Metrics
	// Mode is alert.ModeEnforce (default) or alert.ModeMonitor.
	Mode alert.Mode
	// Logger is the parent of every session's logger.
	Logger zerolog.Logger
	// CacheBytes bounds the verdict cache, shared by all sessions
	// (default DefaultCacheBytes).
	CacheBytes int64
	// MaxStatementSize is the longest statement text (a Query message's,
	// or a Parse's) decided on; longer ones are refused (54000) before any
	// other work. Default sqlscan.DefaultMaxBytes.
	MaxStatementSize int
	// MaxStatementTokens is the most tokens a statement text may have;
	// beyond it the text is refused (54000) before it is parsed. Default
	// sqlscan.DefaultMaxTokens.
	MaxStatementTokens int
	// SessionPreparedBytes bounds the statement texts one session's
	// prepared statements hold (default DefaultSessionPreparedBytes); a
	// Parse or PREPARE beyond it is refused (54000).
	SessionPreparedBytes int64
	// PurposeRole, when set, names the role a user's statements under a
	// purpose run in (grants.PurposeRoleFunc), and ok is false for a user
	// whose sessions keep their own role. The guard then switches the
	// session's role before each statement whose purpose needs another
	// one (purposeroles.go). Nil: roles are never switched.
	PurposeRole func(pol *authz.Policy, user, purpose string) (role string, ok bool)
}

// Defaults of the byte bounds in Config.
const (
	DefaultCacheBytes           = 64 << 20
	DefaultSessionPreparedBytes = 32 << 20
)

// Guard is the policy-enforcing proxy.Interceptor.
type Guard struct {
	cfg   Config
	cache *verdictCache

	refreshMu   sync.Mutex
	lastRefresh map[string]time.Time // by database
	databases   map[string]bool      // every database a session used

	// blindForTest makes every analysed statement touch nothing, as an
	// analysis that misses everything would: tests show with it that the
	// database's own privileges (package grants) still hold. Only tests
	// set it; there is no flag.
	blindForTest bool
}

// minRefreshGap keeps clients that name unknown relations in a loop from
// turning every statement into a catalog load.
const minRefreshGap = time.Second

// mayRefresh reports whether an unknown relation may trigger a catalog
// refresh of database now.
func (g *Guard) mayRefresh(database string) bool {
	g.refreshMu.Lock()
	defer g.refreshMu.Unlock()
	now := time.Now()
	if now.Sub(g.lastRefresh[database]) < minRefreshGap {
		return false
	}
	g.lastRefresh[database] = now
	return true
}

// New checks cfg and returns a Guard.
func New(cfg Config) (*Guard, error) {
	switch {
	case cfg.Policy == nil:
		return nil, errors.New("guard: no policy")
	case cfg.Catalogs == nil:
		return nil, errors.New("guard: no catalog cache")
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = alert.ModeEnforce
	case alert.ModeEnforce, alert.ModeMonitor:
	default:
		return nil, fmt.Errorf("guard: mode %q: must be enforce or monitor", cfg.Mode)
	}
	cfg.setDefaults()
	g := &Guard{cfg: cfg, cache: newVerdictCache(cfg.CacheBytes),
		lastRefresh: make(map[string]time.Time), databases: make(map[string]bool)}
	if m := cfg.Metrics; m != nil {
		g.cache.onSize = func(n int64) { m.VerdictCacheBytes.Set(float64(n)) }
	}
	return g, nil
}

func (cfg *Config) setDefaults() {
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	if cfg.MaxStatementSize <= 0 {
		cfg.MaxStatementSize = sqlscan.DefaultMaxBytes
	}
	if cfg.MaxStatementTokens <= 0 {
		cfg.MaxStatementTokens = sqlscan.DefaultMaxTokens
	}
	if cfg.SessionPreparedBytes <= 0 {
		cfg.SessionPreparedBytes = DefaultSessionPreparedBytes
	}
}

// OpenSession implements proxy.Interceptor.
func (g *Guard) OpenSession(ctx context.Context, ps *proxy.Session) (proxy.SessionInterceptor, error) {
	s := newSession(g, ps)
	g.refreshMu.Lock()
	g.databases[ps.Database] = true
	g.refreshMu.Unlock()
	if g.cfg.Metrics != nil {
		g.cfg.Metrics.ConnectionsTotal.Inc()
	}
	// Load the database's catalog now, so the first statement does not pay
	// for it. Without one, enforce mode refuses the session, telling the
	// client why at once rather than refusing each statement; monitor mode
	// lets it go on, flagging what it cannot decide.
	if _, err := g.cfg.Catalogs.Get(ctx, ps.Database); err != nil {
		if g.cfg.Mode == alert.ModeEnforce {
			s.ps.Logger.Warn().Err(err).Msg("session refused: catalog not available")
			return nil, unavailableError{ps.Database}
		}
		s.ps.Logger.Warn().Err(err).Msg("catalog not available; statements that touch relations are flagged")
	}
	if g.cfg.Metrics != nil {
		g.cfg.Metrics.ConnectionsOpen.Inc()
	}
	return s, nil
}

// unavailableError refuses a session whose database's catalog cannot be
// read. It tells the client no more than that: the reason names pgguard's
// catalog connection.
type unavailableError struct{ database string }

func (e unavailableError) Error() string {
	return fmt.Sprintf("catalog unavailable for database %q; try again later", e.database)
}

func (e unavailableError) Unwrap() error { return catalog.ErrUnavailable }

// SQLState is cannot_connect_now, which pools take as a reason to retry.
func (unavailableError) SQLState() string { return "57P03" }

// RefreshCatalogs reloads, every interval until ctx ends, the catalog of
// each database sessions have used. Schema changes made around pgguard
// (a migration run directly against the database) thereby reach the
// verdicts within an interval, and no statement waits for the load: an
// unchanged schema keeps its version, and so its cached verdicts.
func (g *Guard) RefreshCatalogs(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, db := range g.usedDatabases() {
			if _, err := g.cfg.Catalogs.Reload(ctx, db); err != nil && ctx.Err() == nil {
				g.cfg.Logger.Warn().Err(err).Str("database", db).Msg("catalog refresh failed; statements are refused until a load succeeds")
			}
		}
	}
}

func (g *Guard) usedDatabases() []string {
	g.refreshMu.Lock()
	defer g.refreshMu.Unlock()
	out := make([]string, 0, len(g.databases))
	for db := range g.databases {
		out = append(out, db)
	}
	return out
}
