package authz

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// reloads collects what Watch reports.
type reloads struct {
	mu  sync.Mutex
	got []ReloadResult
	ch  chan struct{}
}

func newReloads() *reloads { return &reloads{ch: make(chan struct{}, 16)} }

func (r *reloads) add(res ReloadResult) {
	r.mu.Lock()
	r.got = append(r.got, res)
	r.mu.Unlock()
	r.ch <- struct{}{}
}

func (r *reloads) wait(t *testing.T) ReloadResult {
	t.Helper()
	select {
	case <-r.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no reload reported")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[len(r.got)-1]
}

// saveByRename saves like editors do: write a temporary file, rename it over.
func saveByRename(t *testing.T, path, data string) {
	t.Helper()
	tmp := writeFile(t, filepath.Dir(path), ".policy.csv.swp", data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestWatchPicksUpRenameSave(t *testing.T) {
	_, model, policy := tempPolicy(t)
	e, err := NewEngine(model, policy, Options{Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	got := newReloads()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Watch(ctx, zerolog.New(&syncWriter{w: &logs}), 0, got.add) }()
	time.Sleep(100 * time.Millisecond) // let the watch start

	good := readFile(t, policy)
	saveByRename(t, policy, good+"g, newsletter_app, marketing\n")
	res := got.wait(t)
	if !res.Swapped || !slices.Equal(res.Added, []string{"g, newsletter_app, marketing"}) {
		t.Fatalf("first save: %+v", res)
	}
	if !slices.Equal(e.Policy().Roles("newsletter_app"), []string{"marketing"}) {
		t.Error("watched change not in force")
	}

	// A second save is seen too: the watch survived the rename.
	saveByRename(t, policy, good+"g, newsletter_app, marketing\np, marketing, newsletter, customer_contact, read, allow # no\n")
	res = got.wait(t)
	if res.Swapped || res.Err == nil {
		t.Fatalf("broken save: %+v", res)
	}
	if !slices.Equal(e.Policy().Roles("newsletter_app"), []string{"marketing"}) {
		t.Error("broken save replaced the policy")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch returned %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "policy reloaded") || !strings.Contains(out, "policy change rejected") || !strings.Contains(out, "inline-comment") {
		t.Errorf("log lacks the reload and the rejection:\n%s", out)
	}
}

func TestWatchPeriodicCheck(t *testing.T) {
	_, model, policy := tempPolicy(t)
	e, err := NewEngine(model, policy, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := newReloads()
	log := zerolog.Nop()
	last := e.Policy().Version()
	if next := e.check(log, last, got.add, time.NewTimer(time.Hour)); next != last || len(got.got) != 0 {
		t.Fatalf("unchanged files reported: %v", got.got)
	}
	writeFile(t, dir(policy), "policy.csv", readFile(t, policy)+"g, new_app, sales\n")
	last = e.check(log, last, got.add, time.NewTimer(time.Hour))
	if res := got.wait(t); !res.Swapped || last != e.Policy().Version() {
		t.Fatalf("change not reloaded: %+v", res)
	}
	// A broken file is reported once, not on every tick.
	writeFile(t, dir(policy), "policy.csv", "p, x\n")
	last = e.check(log, last, got.add, time.NewTimer(time.Hour))
	if res := got.wait(t); res.Err == nil {
		t.Fatalf("broken file not reported: %+v", res)
	}
	e.check(log, last, got.add, time.NewTimer(time.Hour))
	if len(got.got) != 2 {
		t.Errorf("broken file reported %d times", len(got.got)-1)
	}
}

func TestWatchNeedsSomeWayToWatch(t *testing.T) {
	e, err := NewEngine(shippedModel, shippedPolicy, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// With polling, Watch runs until the context ends and returns nil.
	if err := e.Watch(ctx, zerolog.Nop(), 50*time.Millisecond, nil); err != nil {
		t.Errorf("Watch: %v", err)
	}
}

// syncWriter makes a buffer safe for the watcher goroutine and the test.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
