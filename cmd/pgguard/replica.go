package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/policystore"
)

// fileVersion is pgguard_policy_info's version label for a policy read
// from files, which have no version number of their own.
const fileVersion = "file"

// staleCheckInterval is how often serve compares the age of the policy's
// last confirmation with --policy-max-age.
const staleCheckInterval = time.Second

// storeReplica is what serve keeps of the policy store.
type storeReplica struct {
	url     string
	label   string // host:port/database, for logs, metrics and /healthz
	maxAge  time.Duration
	initial policystore.Record // loaded at start
	watcher atomic.Pointer[policystore.Watcher]
	alarm   staleAlarm
}

// loadPolicy loads the policy from the files, or, with --policy-store,
// the newest version from the store (which must hold one).
func (a *app) loadPolicy(c *serveConfig) (*authz.Engine, error) {
	opts := authz.Options{Unclassified: c.unclassified, CacheBytes: c.decisionCacheBytes}
	if c.policyStore == "" {
		e, err := authz.NewEngine(c.model, c.policy, opts)
		if err != nil {
			return nil, err
		}
		a.metrics.SetPolicyInfo(fileVersion, e.Policy().Checksum(), time.Now())
		return e, nil
	}
	label := storeLabel(c.policyStore)
	rec, err := policystore.Load(context.Background(), c.policyStore, policystore.DefaultConnectTimeout)
	if err != nil {
		return nil, fmt.Errorf("policy store %s: %w", redactURL(c.policyStore), err)
	}
	e, err := authz.NewEngineFromText(rec.ModelName, []byte(rec.Model), rec.PolicyName, []byte(rec.Policy), opts)
	if err != nil {
		return nil, fmt.Errorf("policy store %s, version %d: %w", label, rec.Version, err)
	}
	a.store = &storeReplica{url: c.policyStore, label: label, maxAge: c.policyMaxAge, initial: rec,
		alarm: staleAlarm{maxAge: c.policyMaxAge}}
	a.metrics.SetPolicyInfo(strconv.FormatInt(rec.Version, 10), rec.Checksum, time.Now())
	a.metrics.SetPolicyStore(label, true, time.Now())
	a.log.Info().Str("policy_store", label).Int64("store_version", rec.Version).Str("checksum", rec.Checksum).
		Msg("policy loaded from the policy store; --model and --policy are not read")
	return e, nil
}

// storeLabel names a store by host, port and database, without role or
// password.
func storeLabel(url string) string {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return redactURL(url)
	}
	return fmt.Sprintf("%s/%s", net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), cfg.Database)
}

// defaultReplicaID is the host name and the port clients connect to, which
// tells replicas apart on one host as well as in a cluster of pods.
func defaultReplicaID(listen net.Addr) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	if _, port, err := net.SplitHostPort(listen.String()); err == nil {
		return host + ":" + port
	}
	return host
}

// followStore starts the store's watcher and the staleness check, which
// run until ctx ends.
func (a *app) followStore(ctx context.Context, c *serveConfig, listen net.Addr) error {
	s := a.store
	id := c.replicaID
	if id == "" {
		id = defaultReplicaID(listen)
	}
	w, err := policystore.NewWatcher(policystore.WatcherConfig{
		URL: s.url, ReplicaID: id, Apply: a.applyStored, OnStatus: a.onStoreStatus,
		Logger: a.log.With().Str("policy_store", s.label).Str("replica_id", id).Logger(),
	}, s.initial)
	if err != nil {
		return err
	}
	s.watcher.Store(w)
	go func() {
		if err := w.Run(ctx); err != nil {
			a.log.Error().Err(err).Msg("policy store watcher stopped")
		}
	}()
	go a.watchStaleness(ctx, staleCheckInterval, time.Now)
	return nil
}

// applyStored puts a version from the store in force through the same swap
// as a file reload, with the same alerts and metrics.
func (a *app) applyStored(rec policystore.Record) error {
	res, err := a.engine.Swap(rec.ModelName, []byte(rec.Model), rec.PolicyName, []byte(rec.Policy))
	a.onReload(res)
	if err != nil {
		a.log.Error().Err(err).Int64("store_version", rec.Version).Str("checksum", rec.Checksum).
			Msg("policy store version rejected; keeping the policy in force")
		return err
	}
	a.metrics.SetPolicyInfo(strconv.FormatInt(rec.Version, 10), rec.Checksum, time.Now())
	a.log.Info().Int64("store_version", rec.Version).Str("checksum", rec.Checksum).Str("policy_version", res.NewVersion).
		Msg("policy store version in force")
	return nil
}

func (a *app) onStoreStatus(st policystore.Status) {
	a.metrics.SetPolicyStore(a.store.label, st.Up, st.Confirmed)
}

// checkNow asks the watcher to compare versions with the store (SIGHUP).
func (s *storeReplica) checkNow() {
	if w := s.watcher.Load(); w != nil {
		w.Check()
	}
}

// health is the policy store's line of /healthz.
func (s *storeReplica) health() string {
	w := s.watcher.Load()
	if w == nil {
		return fmt.Sprintf("policy store %s: version %d loaded, not followed yet\n", s.label, s.initial.Version)
	}
	st := w.Status()
	age := st.Age(time.Now()).Round(time.Second)
	held := fmt.Sprintf("version %d (checksum %s) confirmed %s ago", st.Held.Version, st.Held.Short(), age)
	switch {
	case st.Up && st.Rejected != "":
		return fmt.Sprintf("policy store %s: connected; newest version (checksum %s) rejected, keeping %s\n", s.label, short(st.Rejected), held)
	case st.Up:
		return fmt.Sprintf("policy store %s: connected; %s\n", s.label, held)
	}
	stale := ""
	if st.Stale(time.Now(), s.maxAge) {
		stale = fmt.Sprintf(", older than --policy-max-age %s", s.maxAge)
	}
	return fmt.Sprintf("policy store %s: connection lost (%v); keeping %s%s\n", s.label, st.Err, held, stale)
}

// watchStaleness raises policy_stale when the policy in force goes
// unconfirmed for longer than --policy-max-age, and policy_confirmed when
// it is confirmed again, checking every interval by now.
func (a *app) watchStaleness(ctx context.Context, interval time.Duration, now func() time.Time) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w := a.store.watcher.Load()
		if w == nil {
			continue
		}
		if ev, ok := a.store.alarm.step(now(), w.Status()); ok {
			a.alerts.Emit(ev)
		}
	}
}

// staleAlarm turns the store's status into one policy_stale alert when
// the policy in force outlives --policy-max-age unconfirmed, and one
// policy_confirmed when it is confirmed again. Only watchStaleness calls it.
type staleAlarm struct {
	maxAge time.Duration
	raised bool
}

// step returns the alert to raise at now, if any.
func (s *staleAlarm) step(now time.Time, st policystore.Status) (alert.Event, bool) {
	stale := st.Stale(now, s.maxAge)
	switch {
	case stale && !s.raised:
		s.raised = true
		why := "the store's newest version was rejected"
		if !st.Up {
			why = fmt.Sprintf("the store is unreachable: %v", st.Err)
		}
		return alert.Event{Kind: alert.KindPolicyStale, PolicyVersion: st.Held.Short(), Error: fmt.Sprintf(
			"policy store version %d not confirmed current for %s, longer than --policy-max-age %s: %s; still enforcing it",
			st.Held.Version, st.Age(now).Round(time.Second), s.maxAge, why)}, true
	case !stale && s.raised:
		s.raised = false
		return alert.Event{Kind: alert.KindPolicyConfirmed, PolicyVersion: st.Held.Short()}, true
	}
	return alert.Event{}, false
}
