package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"github.com/pgguard/pgguard/internal/sqldepth"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/grants"
	"github.com/pgguard/pgguard/guard"
	"github.com/pgguard/pgguard/policystore"
	"github.com/pgguard/pgguard/proxy"
	"github.com/pgguard/pgguard/sqlscan"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
)

// serveConfig is everything `pgguard serve` is configured with.
type serveConfig struct {
	listen, upstream, catalogURL string
	model, policy                string
	mode, unclassified           string
	tlsCert, tlsKey              string
	metrics, alertWebhook        string
	logLevel, logFormat          string
	maxMessageSize, eventLoops   int
	maxStatementSize             int
	maxStatementTokens           int
	verdictCacheBytes            int64
	decisionCacheBytes           int64
	sessionPreparedBytes         int64
	shutdownGrace, catalogMaxAge time.Duration
	startupTimeout               time.Duration
	cancelSpareAge               time.Duration
	catalogConnectTimeout        time.Duration
	catalogStatementTimeout      time.Duration
	catalogRefresh               time.Duration
	grantsCheck                  bool
	purposeRoles                 bool
	reloadInterval               time.Duration
	policyStore, replicaID       string
	policyMaxAge                 time.Duration
}

func serveFlags(c *serveConfig) *flag.FlagSet {
	fs := newFlagSet("serve", "pgguard serve [flags]\n\nEvery flag can also be set as PGGUARD_<FLAG> (upper case, '-' as '_'); the flag wins.")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:6432", "address to accept clients on")
	fs.StringVar(&c.upstream, "upstream", "", "PostgreSQL server: postgres://HOST:PORT[/?sslmode=...&sslrootcert=FILE]")
	fs.StringVar(&c.catalogURL, "catalog-url", "", "connection URL pgguard reads pg_catalog with (default: --upstream, whose user and password serve only this)")
	fs.StringVar(&c.model, "model", "model.conf", "Casbin model file")
	fs.StringVar(&c.policy, "policy", "policy.csv", "Casbin policy file")
	fs.StringVar(&c.mode, "mode", "enforce", "enforce: refuse denied statements; monitor: forward them and alert")
	fs.StringVar(&c.unclassified, "unclassified", "allow", "allow|deny: columns no g2 rule classifies")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "certificate for TLS towards clients")
	fs.StringVar(&c.tlsKey, "tls-key", "", "key for TLS towards clients")
	fs.StringVar(&c.metrics, "metrics", "", "address for /metrics and the health checks /livez, /readyz and /healthz (off when empty)")
	fs.StringVar(&c.alertWebhook, "alert-webhook", "", "URL to POST each alert to as JSON (off when empty)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug|info|warn|error")
	fs.StringVar(&c.logFormat, "log-format", "json", "json|console")
	fs.IntVar(&c.maxMessageSize, "max-message-size", proxy.DefaultMaxMessageSize, "largest client message accepted, in bytes")
	fs.IntVar(&c.maxStatementSize, "max-statement-size", sqlscan.DefaultMaxBytes, "longest statement text decided on, in bytes; longer ones are refused (54000) unread")
	fs.IntVar(&c.maxStatementTokens, "max-statement-tokens", sqlscan.DefaultMaxTokens, "most tokens a statement text may have; more are refused (54000) before it is parsed")
	fs.Int64Var(&c.verdictCacheBytes, "verdict-cache-bytes", guard.DefaultCacheBytes, "bytes the verdict cache, shared by all sessions, may hold")
	fs.Int64Var(&c.decisionCacheBytes, "decision-cache-bytes", authz.DefaultCacheBytes, "bytes the policy's cache of column decisions may hold; each policy reload starts it empty")
	fs.Int64Var(&c.sessionPreparedBytes, "session-prepared-bytes", guard.DefaultSessionPreparedBytes, "bytes of statement text one session's prepared statements may hold; a Parse or PREPARE beyond it is refused (54000)")
	fs.IntVar(&c.eventLoops, "event-loops", 0, "event loops relaying plain TCP and Unix sessions (0: half the CPUs, at least one; -1: a goroutine pair per session, as for TLS)")
	fs.DurationVar(&c.startupTimeout, "startup-timeout", proxy.DefaultStartupTimeout, "how long a client may take from connecting to its session being established (TLS, startup packet, authentication, opening)")
	fs.DurationVar(&c.cancelSpareAge, "cancel-spare-age", proxy.DefaultCancelSpareAge, "how long the upstream connection opened ahead of the next cancel request is kept before a new one replaces it, below the server's authentication_timeout (0: none, each cancel request opens its own)")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 30*time.Second, "how long SIGTERM waits for sessions to end")
	fs.DurationVar(&c.catalogMaxAge, "catalog-max-age", 5*time.Minute, "oldest catalog a statement may be decided on; older ones are read again first")
	fs.DurationVar(&c.catalogConnectTimeout, "catalog-connect-timeout", catalog.DefaultConnectTimeout, "how long connecting to read a catalog may take")
	fs.DurationVar(&c.catalogStatementTimeout, "catalog-statement-timeout", catalog.DefaultStatementTimeout, "how long reading a catalog may take once connected")
	fs.DurationVar(&c.catalogRefresh, "catalog-refresh-interval", 30*time.Second, "how often the catalogs in use are read again in the background (0: never)")
	fs.BoolVar(&c.grantsCheck, "grants-check", false, "compare the users' column privileges in the catalog URL's database with the policy's grants every catalog refresh interval; report differences in pgguard_grants_drift and a grants_drift alert")
	fs.BoolVar(&c.purposeRoles, "purpose-roles", false, "run each statement in the role of its purpose (SET ROLE before it when the purpose changes); needs the roles of pgguard grants --purpose-roles")
	fs.DurationVar(&c.reloadInterval, "policy-check-interval", 30*time.Second, "how often the policy files' checksum is compared, besides file events")
	fs.StringVar(&c.policyStore, "policy-store", "", "load the policy from this PostgreSQL policy store (pgguard policy push) instead of --model and --policy, and follow its new versions")
	fs.DurationVar(&c.policyMaxAge, "policy-max-age", 5*time.Minute, "with --policy-store: how long the policy in force may go unconfirmed by the store before a policy_stale alert")
	fs.StringVar(&c.replicaID, "replica-id", "", "with --policy-store: this replica's name in the store's heartbeats (default: host name and --listen port)")
	return fs
}

// validate checks the values that the packages do not.
func (c *serveConfig) validate() error {
	if c.upstream == "" {
		return usageError("--upstream is required (or PGGUARD_UPSTREAM)")
	}
	if c.mode != "enforce" && c.mode != "monitor" {
		return usageError(fmt.Sprintf("--mode %q: must be enforce or monitor", c.mode))
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return usageError("--tls-cert and --tls-key go together")
	}
	for _, b := range []struct {
		name  string
		value int64
	}{
		{"max-statement-size", int64(c.maxStatementSize)}, {"max-statement-tokens", int64(c.maxStatementTokens)},
		{"verdict-cache-bytes", c.verdictCacheBytes}, {"session-prepared-bytes", c.sessionPreparedBytes},
		{"decision-cache-bytes", c.decisionCacheBytes},
	} {
		if b.value <= 0 {
			return usageError(fmt.Sprintf("--%s %d: must be positive", b.name, b.value))
		}
	}
	if c.cancelSpareAge < 0 || (c.cancelSpareAge > 0 && c.cancelSpareAge < proxy.MinCancelSpareAge) {
		return usageError(fmt.Sprintf("--cancel-spare-age %s: must be at least %s, or 0 for none", c.cancelSpareAge, proxy.MinCancelSpareAge))
	}
	for _, d := range []struct {
		flag  string
		value time.Duration
	}{{"startup-timeout", c.startupTimeout}, {"catalog-connect-timeout", c.catalogConnectTimeout}, {"catalog-statement-timeout", c.catalogStatementTimeout},
		{"policy-max-age", c.policyMaxAge}} {
		if d.value <= 0 {
			return usageError(fmt.Sprintf("--%s %s: must be positive", d.flag, d.value))
		}
	}
	if c.policyStore != "" && c.policyMaxAge <= policystore.DefaultHeartbeat {
		return usageError(fmt.Sprintf("--policy-max-age %s: must be longer than the policy store heartbeat (%s), which confirms the policy", c.policyMaxAge, policystore.DefaultHeartbeat))
	}
	return nil
}

// serve runs the proxy until ctx ends (SIGINT/SIGTERM), then drains.
func serve(ctx context.Context, args []string, stderr io.Writer) error {
	var c serveConfig
	fs := serveFlags(&c)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := noArguments(fs, rest); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	log, err := newLogger(c.logLevel, c.logFormat, stderr)
	if err != nil {
		return err
	}
	app, err := build(&c, log)
	if err != nil {
		return err
	}
	defer app.close()
	ls, err := listen(&c)
	if err != nil {
		return err
	}
	defer ls.close()
	if err := app.checkCatalog(ctx, &c); err != nil {
		return err
	}
	return app.serveOn(ctx, ls, &c)
}

// listeners are the sockets serve binds before it says it serves.
type listeners struct {
	clients net.Listener
	metrics net.Listener // nil without --metrics
}

// listen binds --metrics and then --listen, so that an address in use is
// an error at start, before anything is served.
func listen(c *serveConfig) (listeners, error) {
	var ls listeners
	if c.metrics != "" {
		ln, err := net.Listen("tcp", c.metrics)
		if err != nil {
			return ls, fmt.Errorf("--metrics %s: %w", c.metrics, err)
		}
		ls.metrics = ln
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		ls.close()
		return ls, fmt.Errorf("--listen %s: %w", c.listen, err)
	}
	ls.clients = ln
	return ls, nil
}

// close closes the listeners serveOn has not taken over.
func (ls listeners) close() {
	for _, ln := range []net.Listener{ls.clients, ls.metrics} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// app is a wired pgguard.
type app struct {
	log     zerolog.Logger
	reg     *prometheus.Registry
	metrics *alert.Metrics
	alerts  *alert.Dispatcher
	engine  *authz.Engine
	catalog *catalog.Cache
	// catalogSource keeps a connection per database open for reading the
	// relations DDL changed.
	catalogSource *catalog.Source
	// purposeRoles: the grants check expects the purpose roles too.
	purposeRoles bool
	proxy        *proxy.Server
	guard        *guard.Guard
	// draining is set once shutdown began: new connections are refused.
	draining atomic.Bool
	// catalogDown holds the error of the catalog connection checked at
	// start while it fails; nil once it worked.
	catalogDown atomic.Pointer[error]
	// store is the policy store replica's state; nil when the policy comes
	// from files.
	store *storeReplica
}

// purposeRoleFunc names the purpose roles for --purpose-roles; nil
// without it, so that roles are never switched.
func purposeRoleFunc(on bool) func(pol *authz.Policy, user, purpose string) (string, bool) {
	if !on {
		return nil
	}
	return grants.PurposeRoleFunc("")
}

func build(c *serveConfig, log zerolog.Logger) (*app, error) {
	a := &app{log: log, reg: prometheus.NewRegistry(), purposeRoles: c.purposeRoles}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.metrics = alert.NewMetrics(a.reg)
	engine, err := a.loadPolicy(c)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	a.engine = engine
	a.metrics.MeasureDecisionCache(func() int64 { return engine.Policy().CacheBytes() })
	a.metrics.SetPolicyVersion(engine.Policy().Version())
	if a.alerts, err = alert.New(alert.Config{WebhookURL: c.alertWebhook}, log, a.reg); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	if a.catalog, err = a.newCatalogCache(c); err != nil {
		return nil, err
	}
	a.guard, err = guard.New(guard.Config{
		Policy: engine, Catalogs: a.catalog,
		Alerts: a.alerts, Metrics: a.metrics, Mode: alert.Mode(c.mode), Logger: log,
		CacheBytes: c.verdictCacheBytes, MaxStatementSize: c.maxStatementSize,
		MaxStatementTokens: c.maxStatementTokens, SessionPreparedBytes: c.sessionPreparedBytes,
		PurposeRole: purposeRoleFunc(c.purposeRoles),
	})
	if err != nil {
		return nil, err
	}
	tlsCfg, err := clientTLS(c.tlsCert, c.tlsKey)
	if err != nil {
		return nil, err
	}
	a.proxy, err = proxy.New(proxy.Config{
		Upstream: c.upstream, TLS: tlsCfg, Interceptor: a.guard, Logger: log, MaxMessageSize: c.maxMessageSize,
		EventLoops: c.eventLoops, StartupTimeout: c.startupTimeout, CancelSpareAge: cmp.Or(c.cancelSpareAge, -1),
	})
	if err != nil {
		return nil, err
	}
	a.metrics.CountStarting(a.proxy.Starting)
	return a, nil
}

// catalogURLOrUpstream is the URL catalogs are read with.
func (c *serveConfig) catalogURLOrUpstream() string {
	if c.catalogURL != "" {
		return c.catalogURL
	}
	return c.upstream
}

// newCatalogCache reads catalogs over --catalog-url (or --upstream) within
// the catalog timeouts, and logs and alerts when one becomes unavailable.
func (a *app) newCatalogCache(c *serveConfig) (*catalog.Cache, error) {
	catalogURL := c.catalogURL
	if catalogURL == "" {
		catalogURL = c.upstream
	}
	src, err := catalog.NewSource(catalogURL, catalog.DialerConfig{
		ConnectTimeout: c.catalogConnectTimeout, StatementTimeout: c.catalogStatementTimeout,
	})
	if err != nil {
		return nil, err
	}
	a.catalogSource = src
	return catalog.NewCacheWith(catalog.CacheConfig{
		Load: src.Load, LoadRelations: src.LoadRelations, MaxAge: c.catalogMaxAge,
		OnUnavailable: func(db string, err error) {
			a.log.Error().Err(err).Str("database", db).Msg("catalog unavailable; sessions of the database are refused until it loads")
			a.alerts.Emit(alert.Event{Kind: alert.KindCatalogUnavailable, Database: db, Error: err.Error()})
		},
		OnAvailable: func(db string) {
			a.log.Info().Str("database", db).Msg("catalog available again")
		},
	})
}

func (a *app) close() {
	a.catalog.Close()
	if a.catalogSource != nil {
		a.catalogSource.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.alerts.Close(ctx)
}

// serveOn serves on ls until ctx ends, reloading the policy on file
// changes and SIGHUP, then drains.
func (a *app) serveOn(ctx context.Context, ls listeners, c *serveConfig) error {
	ln := ls.clients
	if ls.metrics != nil {
		stopMetrics := a.serveMetrics(ls.metrics)
		defer stopMetrics()
	}
	ev := a.log.Info().Str("listen", ln.Addr().String()).Str("mode", c.mode).
		Str("policy_version", a.engine.Policy().Version())
	if ls.metrics != nil {
		ev = ev.Str("metrics", ls.metrics.Addr().String())
	}
	ev.Msg("pgguard serving")
	if stack, limit := sqldepth.Stack(); limit < sqldepth.MaxLimit {
		a.log.Warn().Int64("stack_bytes", stack).Int("nesting_limit", limit).
			Msgf("threads have a small stack: statements nesting more than %d levels are refused (%d with ulimit -s of 2 MiB or more)", limit, sqldepth.MaxLimit)
	}
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	if a.store != nil {
		if err := a.followStore(bg, c, ln.Addr()); err != nil {
			return err
		}
	} else {
		go func() { _ = a.engine.Watch(bg, watchLogger(a.log), c.reloadInterval, a.onReload) }()
	}
	go a.reloadOnSIGHUP(bg)
	if c.catalogRefresh > 0 {
		go a.guard.RefreshCatalogs(bg, c.catalogRefresh)
	}
	if c.grantsCheck {
		interval := c.catalogRefresh
		if interval <= 0 {
			interval = 30 * time.Second
		}
		go a.watchGrants(bg, c.catalogURLOrUpstream(), interval)
	}
	served := make(chan error, 1)
	go func() { served <- a.proxy.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	a.draining.Store(true)
	a.log.Info().Str("grace", c.shutdownGrace.String()).Msg("shutting down: waiting for sessions to end")
	drain, cancel := context.WithTimeout(context.Background(), c.shutdownGrace)
	defer cancel()
	if err := a.proxy.Shutdown(drain); err != nil {
		a.log.Warn().Msg("grace period over: remaining sessions closed")
	}
	return nil
}

func (a *app) reloadOnSIGHUP(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if a.store != nil {
				a.store.checkNow()
				continue
			}
			res, _ := a.engine.Reload()
			a.onReload(res)
		}
	}
}

// onReload counts and alerts one reload attempt. The alert is the one log
// line of the reload: it goes to the log (at warn) with its error or
// change, whatever --log-level says.
func (a *app) onReload(res authz.ReloadResult) {
	if res.Err != nil {
		a.metrics.PolicyReloads.WithLabelValues(alert.ReloadFailure).Inc()
		a.alerts.Emit(alert.Event{Kind: alert.KindPolicyReloadFailed, PolicyVersion: res.OldVersion, Error: res.Err.Error()})
		return
	}
	if !res.Swapped {
		return
	}
	a.metrics.PolicyReloads.WithLabelValues(alert.ReloadSuccess).Inc()
	a.metrics.SetPolicyVersion(res.NewVersion)
	if a.store == nil {
		a.metrics.SetPolicyInfo(fileVersion, a.engine.Policy().Checksum(), time.Now())
	}
	c := res.Change()
	a.alerts.Emit(alert.Event{Kind: alert.KindPolicyReloaded, PolicyVersion: res.NewVersion, Change: &alert.PolicyChange{
		OldVersion: res.OldVersion, Classified: nonNil(c.Classified), Declassified: nonNil(c.Declassified),
		RulesAdded: nonNil(c.RulesAdded), RulesRemoved: nonNil(c.RulesRemoved),
		WidensAccess: len(c.Widens) > 0, Widens: nonNil(c.Widens),
	}})
}

// watchLogger is the logger the policy watcher gets. The watcher reports
// the outcome of each reload at info (reloaded) and error (rejected), which
// onReload's alert already puts on the log; its warnings (file events
// unavailable, a folder that cannot be watched) and debug lines pass.
func watchLogger(log zerolog.Logger) zerolog.Logger {
	return log.Hook(zerolog.HookFunc(func(e *zerolog.Event, level zerolog.Level, _ string) {
		if level == zerolog.InfoLevel || level == zerolog.ErrorLevel {
			e.Discard()
		}
	}))
}

func (a *app) serveMetrics(ln net.Listener) func() {
	var status func() string
	if a.store != nil {
		status = a.store.health
	}
	srv := &http.Server{Handler: alert.HandlerWithStatus(a.reg, a.ready, status), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error().Err(err).Msg("metrics server stopped")
		}
	}()
	return func() { _ = srv.Close() }
}

// ready says why pgguard should get no new clients now, or nil: /readyz
// and /healthz answer 503 with it.
func (a *app) ready() error {
	if a.draining.Load() {
		return errors.New("shutting down: new connections are refused")
	}
	if err := a.catalogDown.Load(); err != nil {
		return fmt.Errorf("catalog connection failing: %w", *err)
	}
	for db, err := range a.catalog.Unavailable() {
		if catalogServerDown(err) {
			return fmt.Errorf("catalog of database %q unavailable: %w", db, err)
		}
	}
	return nil
}

// catalogServerDown reports whether a failed catalog load says the server
// could not be reached or did not answer in time (no answer at all, a
// timeout, too many connections, shutting down), which every database
// shares. An error about one database alone (it does not exist, the
// catalog role may not connect to it) leaves readiness alone: another
// instance would fail the same way, and the other databases still work.
func catalogServerDown(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return true
	}
	switch pe.Code[:2] {
	case "08", "53", "57":
		return true
	}
	return false
}

func clientTLS(cert, key string) (*tls.Config, error) {
	if cert == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

func newLogger(level, format string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil {
		return zerolog.Logger{}, usageError(fmt.Sprintf("--log-level %q: %v", level, err))
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !isTerminal(w)}
	default:
		return zerolog.Logger{}, usageError(fmt.Sprintf("--log-format %q: must be json or console", format))
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// isTerminal reports whether w is a terminal, where colours are welcome,
// and NO_COLOR (https://no-color.org) is not set.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// nonNil makes an empty list [] rather than null in JSON.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// checkCatalog connects once with the catalog URL before pgguard serves,
// so that a wrong one is reported at start rather than at the first
// session. When the server answered and refused (a wrong role, password
// or database, pg_hba.conf), nothing will change by waiting: the error is
// returned and serve exits. When the server could not be reached, pgguard
// serves anyway, as it does when the server goes away later: sessions are
// refused with 57P03 and /readyz answers 503 while the connection is
// retried in the background, the error logged at each attempt, until it
// succeeds.
func (a *app) checkCatalog(ctx context.Context, c *serveConfig) error {
	cfg := catalog.DialerConfig{ConnectTimeout: c.catalogConnectTimeout, StatementTimeout: c.catalogStatementTimeout}
	err := catalog.Ping(ctx, c.catalogSource(), cfg)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !catalogServerDown(err) {
		return errors.New(c.catalogProblem(err))
	}
	a.catalogDown.Store(&err)
	a.log.Error().Msg(c.catalogProblem(err))
	go func() {
		wait := catalog.DefaultRetryMin
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			err := catalog.Ping(ctx, c.catalogSource(), cfg)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				a.catalogDown.Store(nil)
				a.log.Info().Str("catalog_url", redactURL(c.catalogSource())).Msg("catalog connection works")
				return
			}
			a.catalogDown.Store(&err)
			a.log.Error().Msg(c.catalogProblem(err))
			wait = min(2*wait, catalog.DefaultRetryMax)
		}
	}()
	return nil
}

// catalogSource is the URL pgguard reads catalogs with.
func (c *serveConfig) catalogSource() string {
	if c.catalogURL != "" {
		return c.catalogURL
	}
	return c.upstream
}

// catalogProblem says, in one line, which catalog connection failed (its
// URL without the password, and the role it connected as), why, and what
// to change.
func (c *serveConfig) catalogProblem(err error) string {
	u := c.catalogSource()
	flagName := "--catalog-url"
	if c.catalogURL == "" {
		flagName = "--upstream (--catalog-url is not set)"
	}
	role := ""
	if cfg, perr := pgconn.ParseConfig(u); perr == nil {
		role = cfg.User
	}
	msg := fmt.Sprintf("catalog connection %s, as role %q, from %s failed: %v; ", redactURL(u), role, flagName, err)
	var pe *pgconn.PgError
	switch {
	case c.catalogURL == "" && !urlNamesUser(c.upstream):
		return msg + fmt.Sprintf("fix: --upstream names no user, so the catalog was read as %q (PGUSER or the operating-system user); "+
			"set --catalog-url (PGGUARD_CATALOG_URL) to a URL with a role that may connect, e.g. postgres://pgguard_catalog:PASSWORD@HOST:PORT/postgres", role)
	case errors.As(err, &pe) && strings.HasPrefix(pe.Code, "28"):
		return msg + "fix: give a role that exists, may log in, with its password, and that pg_hba.conf admits from this host (docs/operations.md, \"The catalog\")"
	case errors.As(err, &pe) && pe.Code == "3D000":
		return msg + "fix: name a database that exists in the URL, e.g. /postgres"
	case catalogServerDown(err):
		return msg + "fix: check the host, port and sslmode of the URL and that PostgreSQL runs and is reachable from here; " +
			"until it connects, sessions are refused (57P03) and /readyz answers 503; retrying"
	}
	return msg + "fix: correct the URL"
}

// urlNamesUser reports whether a connection URL or keyword/value string
// names a user itself.
func urlNamesUser(s string) bool {
	if u, err := url.Parse(s); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		return u.User != nil && u.User.Username() != ""
	}
	return regexp.MustCompile(`(^|\s)user\s*=`).MatchString(s)
}

// passwordSetting is a password in a keyword/value connection string.
var passwordSetting = regexp.MustCompile(`(^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// redactURL is a connection URL or keyword/value string without its
// password, for messages.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if u.User != nil {
			u.User = url.User(u.User.Username())
		}
		q := u.Query()
		if q.Has("password") {
			q.Del("password")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return strings.TrimSpace(passwordSetting.ReplaceAllString(s, "$1"))
}
