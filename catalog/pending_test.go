package catalog_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgguard/pgguard/catalog"
)

// TestInvalidateRelations: after DDL of named relations the snapshot stays
// served without waiting while the names are pending; only a load begun
// after a name's invalidation clears it (one already under way predates
// the DDL), and AwaitPending returns that load's snapshot. Without names it is
// a full invalidation, which Get waits for.
func TestInvalidateRelations(t *testing.T) {
	var loads atomic.Int32
	gate := make(chan struct{}, 8)
	c := catalog.NewCache(func(ctx context.Context, db string) (*catalog.Snapshot, error) {
		n := loads.Add(1)
		if n > 1 {
			<-gate
		}
		return catalog.New(catalog.Contents{Database: db, Schemas: []string{"s" + string(rune('0'+n))}}), nil
	}, 0)
	ctx := context.Background()
	first, err := c.Get(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	quick := func(what string) *catalog.Snapshot {
		t.Helper()
		done := make(chan *catalog.Snapshot, 1)
		go func() { s, _ := c.Get(ctx, "db"); done <- s }()
		select {
		case s := <-done:
			return s
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Get waited", what)
		}
		return nil
	}
	c.InvalidateRelations("db", []string{"b", "a"})
	if p := c.Pending("db"); !slices.Equal(p, []string{"a", "b"}) {
		t.Fatalf("pending %v", p)
	}
	if s := quick("while loading"); s != first {
		t.Fatal("Get did not return the snapshot it had")
	}
	if _, ok := c.Current("db"); ok {
		t.Fatal("Current with names pending")
	}
	// More DDL while the second load is under way: that load covers the
	// names marked before it began, not this one; a third one does.
	c.InvalidateRelations("db", []string{"c"})
	gate <- struct{}{}
	deadline := time.Now().Add(5 * time.Second)
	for loads.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if p := c.Pending("db"); !slices.Equal(p, []string{"c"}) {
		t.Fatalf("pending after a load that predates the last DDL: %v", p)
	}
	gate <- struct{}{}
	fresh, err := c.AwaitPending(ctx, "db")
	if err != nil || fresh == nil || !fresh.HasSchema("s3") {
		t.Fatalf("AwaitPending: %v, %v", fresh, err)
	}
	if p := c.Pending("db"); p != nil {
		t.Fatalf("still pending: %v", p)
	}
	if s, ok := c.Current("db"); !ok || s != fresh {
		t.Fatal("the new snapshot is not current")
	}
	// A full invalidation makes Get wait for the load.
	c.InvalidateRelations("db", nil)
	done := make(chan struct{})
	go func() { _, _ = c.Get(ctx, "db"); close(done) }()
	select {
	case <-done:
		t.Fatal("Get did not wait after a full invalidation")
	case <-time.After(100 * time.Millisecond):
	}
	gate <- struct{}{}
	<-done
	if n := loads.Load(); n != 4 {
		t.Fatalf("%d loads, want 4", n)
	}
}
