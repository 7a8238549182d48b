package authz

import (
	"errors"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A policy that classifies nothing would, with unclassified columns
// allowed, open every column to everyone. Empty, comment-only and
// truncated files must be refused at start and on reload.
func TestPolicyThatProtectsNothingIsRefused(t *testing.T) {
	_, model, policy := tempPolicy(t)
	good := readFile(t, policy)
	var onlyRules []string
	for _, line := range strings.Split(good, "\n") {
		if !strings.HasPrefix(line, "g2,") {
			onlyRules = append(onlyRules, line)
		}
	}
	cases := map[string]struct{ text, code string }{
		"empty":                {"", "no-classification"},
		"blank lines":          {"\n\n  \n", "no-classification"},
		"comments only":        {"# policy\n# to be written\n", "no-classification"},
		"no classification":    {strings.Join(onlyRules, "\n"), "no-classification"},
		"classifications only": {"g2, crm.customers.email, contact\n", "no-rule"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			writeFile(t, dir(policy), "policy.csv", tc.text)
			_, err := NewEngine(model, policy, Options{Settle: -1})
			var lint *LintError
			if !errors.As(err, &lint) || !slices.ContainsFunc(lint.Findings, func(f Finding) bool { return f.Code == tc.code }) {
				t.Fatalf("start: want lint error %s, got %v", tc.code, err)
			}
			writeFile(t, dir(policy), "policy.csv", good)
			e, err := NewEngine(model, policy, Options{Settle: -1})
			if err != nil {
				t.Fatal(err)
			}
			before := e.Policy()
			writeFile(t, dir(policy), "policy.csv", tc.text)
			res, err := e.Reload()
			if err == nil || res.Swapped || e.Policy() != before {
				t.Fatalf("reload: swapped=%v err=%v", res.Swapped, err)
			}
			bsn := []Access{{Column: "crm.customers.bsn", Act: ActRead}}
			if e.Policy().Decide("marketing_app", "newsletter", bsn).Allowed {
				t.Fatal("bsn readable after a refused reload")
			}
		})
	}
}

// A file caught while being written is not loaded: the reload reports
// ErrPolicyChanging and keeps the policy in force.
func TestReloadWaitsForTheFileToSettle(t *testing.T) {
	_, model, policy := tempPolicy(t)
	good := readFile(t, policy)
	e, err := NewEngine(model, policy, Options{Settle: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	before := e.Policy()
	// A writer that keeps appending lines, as a slow copy would.
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.OpenFile(policy, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		for i := 0; !stop.Load(); i++ {
			_, _ = f.WriteString("# still writing\n")
			time.Sleep(5 * time.Millisecond)
		}
	}()
	res, err := e.Reload()
	stop.Store(true)
	<-done
	if !errors.Is(err, ErrPolicyChanging) || res.Swapped || e.Policy() != before {
		t.Fatalf("reload during a write: swapped=%v err=%v", res.Swapped, err)
	}
	writeFile(t, dir(policy), "policy.csv", good+"p, marketing, newsletter, crm.customers.first_name, read, allow\n")
	if res, err := e.Reload(); err != nil || !res.Swapped {
		t.Fatalf("reload of a settled file: swapped=%v err=%v", res.Swapped, err)
	}
}

func TestChangeMarksWhatWidensAccess(t *testing.T) {
	res := ReloadResult{
		Added: []string{
			"g2, crm.customers.nickname, contact",
			"p, sales, *, identity, read, deny",
			"p, marketing, newsletter, contact, read, allow",
		},
		Removed: []string{
			"g2, crm.customers.bsn, identity",
			"p, support, *, financial, read, deny",
			"g, old_app, sales",
		},
	}
	c := res.Change()
	if !slices.Equal(c.Classified, []string{"crm.customers.nickname -> contact"}) ||
		!slices.Equal(c.Declassified, []string{"crm.customers.bsn -> identity"}) {
		t.Fatalf("classification diff: %+v", c)
	}
	want := []string{
		"added: p, marketing, newsletter, contact, read, allow",
		"declassified: crm.customers.bsn -> identity",
		"removed: p, support, *, financial, read, deny",
	}
	if !slices.Equal(c.Widens, want) {
		t.Fatalf("widens %q, want %q", c.Widens, want)
	}
	narrowing := ReloadResult{Added: []string{"p, sales, *, identity, read, deny", "g2, a.b.c, identity"}, Removed: []string{"g, old_app, sales"}}
	if w := narrowing.Change().Widens; len(w) != 0 {
		t.Fatalf("a narrowing change marked as widening: %q", w)
	}
}
