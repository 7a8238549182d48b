package policystore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pgguard/pgguard/authz"
	"github.com/rs/zerolog"
	"strings"
)

// applied records what a watcher applies and its status changes.
type applied struct {
	mu       sync.Mutex
	records  []Record
	statuses []Status
	reject   string // checksum to refuse
	changed  chan struct{}
}

func (a *applied) apply(r Record) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.Checksum == a.reject {
		return errors.New("refused")
	}
	a.records = append(a.records, r)
	return nil
}

func (a *applied) onStatus(s Status) {
	a.mu.Lock()
	a.statuses = append(a.statuses, s)
	a.mu.Unlock()
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds of the watcher's status.
func waitFor(t *testing.T, w *Watcher, a *applied, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		if s := w.Status(); cond(s) {
			return s
		}
		select {
		case <-a.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s; status %+v", what, w.Status())
		}
	}
}

func TestWatcherFollowsPushesAndReconnects(t *testing.T) {
	pg, db, url := storeDB(t)
	ctx := context.Background()
	admin := connect(t, url)
	first, _, err := Push(ctx, admin, "model.conf", "m", "policy.csv", "v1")
	if err != nil {
		t.Fatal(err)
	}
	role := "replica_" + db // roles are cluster-wide; databases are made per test run
	pg.MustExec(t, db, strings.ReplaceAll("CREATE ROLE RNAME LOGIN PASSWORD 'pw'; GRANT USAGE ON SCHEMA pgguard TO RNAME; "+
		"GRANT SELECT ON pgguard.policy TO RNAME; GRANT SELECT, INSERT, UPDATE, DELETE ON pgguard.policy_replicas TO RNAME", "RNAME", role))
	replicaURL := pg.URL(role, "pw", db) + "&application_name=watch_replica"
	held, err := Load(ctx, replicaURL, 0)
	if err != nil || held.Checksum != first.Checksum {
		t.Fatalf("Load: %+v, %v", held, err)
	}
	a := &applied{changed: make(chan struct{}, 1)}
	w, err := NewWatcher(WatcherConfig{
		URL: replicaURL, ReplicaID: "r1", Apply: a.apply, OnStatus: a.onStatus,
		Heartbeat: time.Hour, // only notifications and reconnections may bring versions here
		RetryMin:  50 * time.Millisecond, RetryMax: 200 * time.Millisecond, Logger: zerolog.Nop(),
	}, held)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitFor(t, w, a, "connected", func(s Status) bool { return s.Up })

	steps := []struct {
		name string
		do   func(t *testing.T) Record // returns the version the watcher must end up holding
	}{
		{"a push is applied through NOTIFY", func(t *testing.T) Record {
			rec, _, err := Push(ctx, admin, "model.conf", "m", "policy.csv", "v2")
			if err != nil {
				t.Fatal(err)
			}
			return rec
		}},
		{"a push made while the store refused the replica is applied on reconnection", func(t *testing.T) Record {
			pg.MustExec(t, db, "ALTER ROLE "+role+" NOLOGIN; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'watch_replica' AND datname = '"+db+"'")
			down := waitFor(t, w, a, "disconnected", func(s Status) bool { return !s.Up && s.Err != nil })
			rec, _, err := Push(ctx, admin, "model.conf", "m", "policy.csv", "v3")
			if err != nil {
				t.Fatal(err)
			}
			if down.Held.Version != 2 {
				t.Fatalf("held %d while away, want 2 kept", down.Held.Version)
			}
			pg.MustExec(t, db, "ALTER ROLE "+role+" LOGIN")
			return rec
		}},
		{"a version Apply refuses is not held, and a newer one is", func(t *testing.T) Record {
			a.mu.Lock()
			a.reject = authz.Checksum([]byte("m"), []byte("broken"))
			a.mu.Unlock()
			bad, _, err := Push(ctx, admin, "model.conf", "m", "policy.csv", "broken")
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, w, a, "rejection", func(s Status) bool { return s.Rejected == bad.Checksum })
			if w.Status().Held.Version != 3 {
				t.Fatalf("held %d after a rejected push, want 3", w.Status().Held.Version)
			}
			rec, _, err := Push(ctx, admin, "model.conf", "m", "policy.csv", "v5")
			if err != nil {
				t.Fatal(err)
			}
			return rec
		}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			want := step.do(t)
			s := waitFor(t, w, a, "version "+want.Policy, func(s Status) bool { return s.Up && s.Held.Checksum == want.Checksum })
			if s.Held.Policy != want.Policy || s.Rejected != "" {
				t.Fatalf("status %+v", s)
			}
		})
	}
	// the heartbeat row says what the replica holds; it is written right
	// after the version is applied, so it may trail the status a moment
	deadline := time.Now().Add(10 * time.Second)
	for {
		reps, newest, err := Replicas(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		if len(reps) == 1 && reps[0].ID == "r1" && reps[0].Live && reps[0].Current && reps[0].Version == newest.Version {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas %+v, newest %d", reps, newest.Version)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWatcherConfigValidation(t *testing.T) {
	ok := func(Record) error { return nil }
	for _, tc := range []struct {
		name string
		cfg  WatcherConfig
		want string
	}{
		{"no URL", WatcherConfig{ReplicaID: "r", Apply: ok}, "URL is required"},
		{"no replica", WatcherConfig{URL: "postgres://h/db", Apply: ok}, "ReplicaID is required"},
		{"no apply", WatcherConfig{URL: "postgres://h/db", ReplicaID: "r"}, "Apply is required"},
		{"negative heartbeat", WatcherConfig{URL: "postgres://h/db", ReplicaID: "r", Apply: ok, Heartbeat: -time.Second}, "Heartbeat -1s: must not be negative"},
		{"backoff upside down", WatcherConfig{URL: "postgres://h/db", ReplicaID: "r", Apply: ok, RetryMin: time.Minute, RetryMax: time.Second}, "RetryMax 1s is less than RetryMin 1m0s"},
		{"bad URL", WatcherConfig{URL: "postgres://h:notaport/db", ReplicaID: "r", Apply: ok}, "URL:"},
		{"defaults", WatcherConfig{URL: "postgres://h/db", ReplicaID: "r", Apply: ok}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewWatcher(tc.cfg, Record{})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
