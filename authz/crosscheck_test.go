package authz

import (
	"math/rand/v2"
	"testing"
)

// The fast path evaluates the matcher from tables; Casbin evaluates it from
// model.conf. They must agree on every question: this is what makes Casbin
// the source of truth rather than a comment.

func TestMatchesCasbinOnShippedPolicy(t *testing.T) {
	p := loadShipped(t, Options{})
	subjects := []string{"hr_app", "payroll_app", "payroll_clerk", "sales_app", "finance_app", "marketing_app",
		"support_app", "hr", "sales", "finance", "marketing", "customer_service", "intruder"}
	purposes := []string{"", "*", "unknown", "order_fulfilment", "shipping", "returns", "customer_support",
		"identity_verification", "erasure_request", "invoicing", "dunning", "accounting", "financial_reporting",
		"personnel_admin", "payroll", "sick_leave_admin", "marketing", "newsletter", "campaign_analysis"}
	objects := append(schemaColumns(t), "function:public.unaccent", "function:public.other", "public.t.c")
	n, allowed := 0, 0
	for _, sub := range subjects {
		for _, purpose := range purposes {
			for _, obj := range objects {
				for _, act := range []Act{ActRead, ActWrite, ActExecute} {
					if compareWithCasbin(t, p, sub, purpose, obj, act) {
						allowed++
					}
					n++
				}
			}
		}
	}
	if allowed == 0 || allowed == n {
		t.Errorf("%d of %d requests allowed; the comparison proves little", allowed, n)
	}
	t.Logf("%d requests (%d allowed) agree with Casbin", n, allowed)
}

func TestMatchesCasbinOnRandomPolicies(t *testing.T) {
	// Casbin's own Enforce costs about a millisecond per request on these
	// policies (ten times that under -race): a few thousand requests over
	// varied policies cover the rule shapes without dominating CI.
	const requests = 1000
	for seed := uint64(1); seed <= 3; seed++ {
		rnd := rand.New(rand.NewPCG(seed, 42))
		g := genPolicy(rnd, 300)
		dir := t.TempDir()
		policy := writeFile(t, dir, "policy.csv", g.text)
		p, err := Load(shippedModel, policy, Options{})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		subjects := append(g.subjects, "nobody")
		purposes := append(g.purposes, "", "unknown")
		columns := append(g.columns, "zz.t0.c0")
		allowed := 0
		for i := 0; i < requests; i++ {
			act := ActRead
			if rnd.IntN(2) == 0 {
				act = ActWrite
			}
			if compareWithCasbin(t, p, pick(rnd, subjects), pick(rnd, purposes), pick(rnd, columns), act) {
				allowed++
			}
		}
		t.Logf("seed %d: %d rules, %d of %d requests allowed", seed, g.rules, allowed, requests)
		// Both outcomes must occur, or the comparison proves little.
		if allowed < requests/100 || allowed > requests-requests/100 {
			t.Errorf("seed %d: %d of %d requests allowed; generator too one-sided", seed, allowed, requests)
		}
	}
}

// compareWithCasbin fails the test when the two disagree, and returns Casbin's answer.
func compareWithCasbin(t *testing.T, p *Policy, sub, purpose, obj string, act Act) bool {
	t.Helper()
	want, err := p.enforcer.Enforce(sub, purpose, obj, string(act))
	if err != nil {
		t.Fatalf("casbin: %v", err)
	}
	allow, deny := p.match(sub, purpose, obj, act, p.Categories(obj))
	if got := allow != nil && deny == nil; got != want {
		t.Errorf("Enforce(%s, %q, %s, %s): casbin %v, pgguard %v (allow %v, deny %v)", sub, purpose, obj, act, want, got, allow, deny)
	}
	return want
}
