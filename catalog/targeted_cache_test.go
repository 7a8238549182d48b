package catalog_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgguard/pgguard/catalog"
)

// fakeSource counts whole loads and reads of names, each of which waits
// for a value on its gate when the gate is set, and records the names
// each read was asked for.
type fakeSource struct {
	wholes, reads atomic.Int32
	gate          chan struct{}
	failReads     atomic.Bool
	mu            sync.Mutex
	asked         [][]string
}

func (f *fakeSource) load(ctx context.Context, db string) (*catalog.Snapshot, error) {
	n := f.wholes.Add(1)
	if n > 1 && f.gate != nil {
		<-f.gate
	}
	return catalog.New(catalog.Contents{Database: db, Complete: true, Schemas: []string{"whole" + string(rune('0'+n))},
		Relations: []catalog.Relation{
			{Schema: "s", Name: "parent", Kind: catalog.Table, OID: 1},
			{Schema: "s", Name: "child", Kind: catalog.Table, OID: 2, Parents: []catalog.QualifiedName{{Schema: "s", Name: "parent"}}},
			{Schema: "s", Name: "v", Kind: catalog.View, OID: 3, DependsOn: []uint32{2}},
			{Schema: "s", Name: "other", Kind: catalog.Table, OID: 4},
		}}), nil
}

func (f *fakeSource) loadRelations(ctx context.Context, db string, base *catalog.Snapshot, names []string) (*catalog.Snapshot, error) {
	n := f.reads.Add(1)
	f.mu.Lock()
	f.asked = append(f.asked, names)
	f.mu.Unlock()
	if f.gate != nil {
		<-f.gate
	}
	if f.failReads.Load() {
		return nil, errors.New("connection lost (simulated)")
	}
	return catalog.New(catalog.Contents{Database: db, Complete: true, Schemas: []string{"read" + string(rune('0'+n))}}), nil
}

func newFakeCache(t *testing.T, f *fakeSource) *catalog.Cache {
	t.Helper()
	c, err := catalog.NewCacheWith(catalog.CacheConfig{Load: f.load, LoadRelations: f.loadRelations})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.Get(context.Background(), "db"); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInvalidateRelationsReadsOnlyTheNames(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name       string
		invalidate []string
		wantAsked  []string
	}{
		{"a table with a child and a view over the child", []string{"parent"}, []string{"child", "parent", "v"}},
		{"a view alone", []string{"v"}, []string{"v"}},
		{"a name the snapshot does not know", []string{"new"}, []string{"new"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeSource{}
			cache := newFakeCache(t, f)
			cache.InvalidateRelations("db", c.invalidate)
			s, err := cache.AwaitPending(ctx, "db")
			if err != nil || !s.HasSchema("read1") {
				t.Fatalf("AwaitPending: %v, %v", s, err)
			}
			if p := cache.Pending("db"); p != nil {
				t.Fatalf("still pending: %v", p)
			}
			if cur, ok := cache.Current("db"); !ok || cur != s {
				t.Fatal("the snapshot read is not current")
			}
			if n := f.wholes.Load(); n != 1 {
				t.Fatalf("%d whole loads, want only the first", n)
			}
			if !slices.Equal(f.asked[0], c.wantAsked) {
				t.Fatalf("read asked for %v, want %v", f.asked[0], c.wantAsked)
			}
		})
	}
}

// TestInvalidateRelationsDuringARead: DDL marked while a read is under
// way is not covered by it; AwaitPending waits for the names pending
// when it was called, not for those marked after.
func TestInvalidateRelationsDuringARead(t *testing.T) {
	ctx := context.Background()
	f := &fakeSource{gate: make(chan struct{})}
	cache := newFakeCache(t, f)
	cache.InvalidateRelations("db", []string{"other"})
	eventually(t, "the first read", func() bool { return f.reads.Load() == 1 })
	// The DDL of "v" commits while the read of "other" runs.
	cache.InvalidateRelations("db", []string{"v", "other"})
	awaited := make(chan *catalog.Snapshot, 1)
	go func() { s, _ := cache.AwaitPending(ctx, "db"); awaited <- s }()
	f.gate <- struct{}{}
	eventually(t, "the second read", func() bool { return f.reads.Load() == 2 })
	if p := cache.Pending("db"); !slices.Equal(p, []string{"other", "v"}) {
		t.Fatalf("pending after a read that began before the last DDL: %v", p)
	}
	select {
	case <-awaited:
		t.Fatal("AwaitPending returned before the names were read after their DDL")
	case <-time.After(50 * time.Millisecond):
	}
	// More DDL during the second read: AwaitPending does not wait for it.
	cache.InvalidateRelations("db", []string{"parent"})
	f.gate <- struct{}{}
	s := <-awaited
	if !s.HasSchema("read2") {
		t.Fatalf("AwaitPending returned %v", s.Schemas())
	}
	// (The snapshot the reads return knows no relations depending on it.)
	if p := cache.Pending("db"); !slices.Equal(p, []string{"parent"}) {
		t.Fatalf("pending: %v", p)
	}
	f.gate <- struct{}{}
	eventually(t, "the names read", func() bool { return cache.Pending("db") == nil })
}

// TestInvalidateRelationsReadFails: when reading the names fails, the
// whole catalog is loaded instead; the failure does not make the catalog
// unavailable.
func TestInvalidateRelationsReadFails(t *testing.T) {
	ctx := context.Background()
	f := &fakeSource{}
	f.failReads.Store(true)
	unavailable := atomic.Int32{}
	c, err := catalog.NewCacheWith(catalog.CacheConfig{Load: f.load, LoadRelations: f.loadRelations,
		OnUnavailable: func(string, error) { unavailable.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	c.InvalidateRelations("db", []string{"other"})
	s, err := c.AwaitPending(ctx, "db")
	if err != nil || !s.HasSchema("whole2") {
		t.Fatalf("AwaitPending: %v, %v", s, err)
	}
	if f.reads.Load() != 1 || f.wholes.Load() != 2 || unavailable.Load() != 0 || c.Pending("db") != nil {
		t.Fatalf("%d reads, %d whole loads, %d unavailable, pending %v", f.reads.Load(), f.wholes.Load(), unavailable.Load(), c.Pending("db"))
	}
}

// TestReloadDuringReads: a whole load asked for while reads of names
// follow one another comes next, not after all of them.
func TestReloadDuringReads(t *testing.T) {
	ctx := context.Background()
	f := &fakeSource{gate: make(chan struct{})}
	cache := newFakeCache(t, f)
	cache.InvalidateRelations("db", []string{"other"})
	eventually(t, "the first read", func() bool { return f.reads.Load() == 1 })
	reloaded := make(chan *catalog.Snapshot, 1)
	go func() { s, _ := cache.Reload(ctx, "db"); reloaded <- s }()
	time.Sleep(20 * time.Millisecond)
	cache.InvalidateRelations("db", []string{"v"})
	f.gate <- struct{}{} // the read ends; the whole load begins
	f.gate <- struct{}{} // and ends
	if s := <-reloaded; !s.HasSchema("whole2") {
		t.Fatalf("Reload returned %v", s.Schemas())
	}
	if f.reads.Load() != 1 || cache.Pending("db") != nil {
		t.Fatalf("%d reads, pending %v", f.reads.Load(), cache.Pending("db"))
	}
}
