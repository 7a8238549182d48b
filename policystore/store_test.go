package policystore

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }

var dbSeq struct {
	sync.Mutex
	n int
}

// storeDB creates a fresh database on the shared cluster and returns its
// superuser URL.
func storeDB(t *testing.T) (*pgtest.Server, string, string) {
	t.Helper()
	pg := pgtest.Shared(t)
	dbSeq.Lock()
	dbSeq.n++
	name := strings.ToLower(strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	name = "ps_" + name + "_" + string(rune('a'+dbSeq.n%26))
	dbSeq.Unlock()
	ctx := context.Background()
	if err := pg.CreateDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
	return pg, name, pg.URL(pgtest.Superuser, "", name)
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestPushVersionsAndIdempotence(t *testing.T) {
	_, _, url := storeDB(t)
	conn := connect(t, url)
	ctx := context.Background()
	if _, err := Latest(ctx, conn); err != ErrEmpty {
		t.Fatalf("Latest before any push: %v, want ErrEmpty", err)
	}
	for _, tc := range []struct {
		name        string
		policy      string
		wantVersion int64
		wantCreated bool
	}{
		{"first push", "# a\np, sales, *, x, read, allow\n", 1, true},
		{"same text again", "# a\np, sales, *, x, read, allow\n", 1, false},
		{"a comment changes the checksum", "# b\np, sales, *, x, read, allow\n", 2, true},
		{"back to the first text is a new version", "# a\np, sales, *, x, read, allow\n", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, created, err := Push(ctx, conn, "model.conf", "[request_definition]\n", "policy.csv", tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Version != tc.wantVersion || created != tc.wantCreated || len(rec.Checksum) != 64 {
				t.Fatalf("push: version %d created %v checksum %q; want %d %v", rec.Version, created, rec.Checksum, tc.wantVersion, tc.wantCreated)
			}
			got, err := Latest(ctx, conn)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != tc.wantVersion || got.Policy != tc.policy || got.Checksum != rec.Checksum || got.PushedBy != pgtest.Superuser {
				t.Fatalf("latest %+v after pushing %q", got, tc.policy)
			}
		})
	}
}

func TestPushNotifiesAtCommit(t *testing.T) {
	_, _, url := storeDB(t)
	listener, pusher := connect(t, url), connect(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := listener.Exec(ctx, "LISTEN "+Channel); err != nil {
		t.Fatal(err)
	}
	rec, _, err := Push(ctx, pusher, "model.conf", "m", "policy.csv", "p")
	if err != nil {
		t.Fatal(err)
	}
	n, err := listener.WaitForNotification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Channel != Channel || n.Payload != "1" || rec.Version != 1 {
		t.Fatalf("notification %+v for version %d", n, rec.Version)
	}
}

func TestSetupConcurrentIsIdempotent(t *testing.T) {
	_, _, url := storeDB(t)
	const n = 4
	conns := make([]*pgx.Conn, n)
	for i := range conns {
		conns[i] = connect(t, url)
	}
	errs := make(chan error, n)
	for _, c := range conns {
		go func() { errs <- Setup(context.Background(), c) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := Setup(context.Background(), conns[0]); err != nil {
		t.Fatalf("setup again: %v", err)
	}
}

func TestReplicasExpire(t *testing.T) {
	_, _, url := storeDB(t)
	conn := connect(t, url)
	ctx := context.Background()
	if _, _, err := Replicas(ctx, conn); err != ErrEmpty {
		t.Fatalf("Replicas of an empty store: %v, want ErrEmpty", err)
	}
	old, _, err := Push(ctx, conn, "model.conf", "m", "policy.csv", "p1")
	if err != nil {
		t.Fatal(err)
	}
	newest, _, err := Push(ctx, conn, "model.conf", "m", "policy.csv", "p2")
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().Add(-time.Minute)
	beats := []struct {
		id          string
		held        Record
		ttl         time.Duration
		wantLive    bool
		wantCurrent bool
	}{
		{"a-current", newest, time.Minute, true, true},
		{"b-behind", old, time.Minute, true, false},
		{"c-expired", newest, -time.Second, false, true},
		{"d-expired-long-ago", newest, -25 * time.Hour, false, true},
	}
	for _, b := range beats {
		if err := Beat(ctx, conn, Heartbeat{ReplicaID: b.id, Version: b.held.Version, Checksum: b.held.Checksum, StartedAt: started, TTL: b.ttl}); err != nil {
			t.Fatal(err)
		}
	}
	// the next beat deletes rows expired for more than a day
	if err := Beat(ctx, conn, Heartbeat{ReplicaID: "a-current", Version: newest.Version, Checksum: newest.Checksum, StartedAt: started, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	got, head, err := Replicas(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if head.Version != newest.Version {
		t.Fatalf("newest %d, want %d", head.Version, newest.Version)
	}
	if len(got) != 3 {
		t.Fatalf("replicas %+v, want a-current, b-behind, c-expired", got)
	}
	for i, b := range beats[:3] {
		r := got[i]
		if r.ID != b.id || r.Live != b.wantLive || r.Current != b.wantCurrent || r.Version != b.held.Version {
			t.Errorf("replica %d: %+v, want %s live %v current %v", i, r, b.id, b.wantLive, b.wantCurrent)
		}
	}
}

func TestStatusStale(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		confirmed time.Time
		now       time.Time
		maxAge    time.Duration
		want      bool
	}{
		{"just confirmed", t0, t0, 5 * time.Minute, false},
		{"at the limit", t0, t0.Add(5 * time.Minute), 5 * time.Minute, false},
		{"past the limit", t0, t0.Add(5*time.Minute + time.Second), 5 * time.Minute, true},
		{"no limit", t0, t0.Add(time.Hour), 0, false},
		{"never confirmed", time.Time{}, t0, time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Status{Confirmed: tc.confirmed}).Stale(tc.now, tc.maxAge); got != tc.want {
				t.Fatalf("Stale = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPushNeedsOnlyTablePrivilegesOnceCreated: after the first push, a role
// with INSERT and SELECT on pgguard.policy (no CREATE anywhere) can push,
// and a replica role can read and beat but not push.
func TestPushNeedsOnlyTablePrivilegesOnceCreated(t *testing.T) {
	pg, db, url := storeDB(t)
	ctx := context.Background()
	admin := connect(t, url)
	if _, _, err := Push(ctx, admin, "model.conf", "m", "policy.csv", "v1"); err != nil {
		t.Fatal(err)
	}
	// roles are cluster-wide; databases are made per test run
	pusher, replica := "pusher_"+db, "replica_"+db
	pg.MustExec(t, db, strings.NewReplacer("PUSHER", pusher, "REPLICA", replica).Replace(`REVOKE CREATE ON SCHEMA public FROM PUBLIC;
		CREATE ROLE PUSHER LOGIN PASSWORD 'pw'; CREATE ROLE REPLICA LOGIN PASSWORD 'pw';
		GRANT USAGE ON SCHEMA pgguard TO PUSHER, REPLICA;
		GRANT SELECT, INSERT ON pgguard.policy TO PUSHER;
		GRANT SELECT ON pgguard.policy TO REPLICA;
		GRANT SELECT, INSERT, UPDATE, DELETE ON pgguard.policy_replicas TO REPLICA`))
	for _, tc := range []struct {
		role     string
		wantPush bool
	}{
		{pusher, true},
		{replica, false},
	} {
		t.Run(tc.role, func(t *testing.T) {
			conn := connect(t, pg.URL(tc.role, "pw", db))
			rec, created, err := Push(ctx, conn, "model.conf", "m", "policy.csv", "by "+tc.role)
			if tc.wantPush && (err != nil || !created || rec.PushedBy != tc.role) {
				t.Fatalf("push as %s: %+v %v %v", tc.role, rec, created, err)
			}
			if !tc.wantPush && err == nil {
				t.Fatalf("push as %s succeeded, want a permission error", tc.role)
			}
			if !tc.wantPush {
				if err := Beat(ctx, conn, Heartbeat{ReplicaID: "r", Version: 1, Checksum: "c", StartedAt: time.Now(), TTL: time.Minute}); err != nil {
					t.Fatalf("heartbeat as %s: %v", tc.role, err)
				}
				if _, err := Latest(ctx, conn); err != nil {
					t.Fatalf("read as %s: %v", tc.role, err)
				}
			}
		})
	}
}
