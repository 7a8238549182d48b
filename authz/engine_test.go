package authz

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// tempPolicy copies the shipped model and policy into a fresh folder.
func tempPolicy(t *testing.T) (dir, model, policy string) {
	t.Helper()
	dir = t.TempDir()
	model = writeFile(t, dir, "model.conf", readFile(t, shippedModel))
	policy = writeFile(t, dir, "policy.csv", readFile(t, shippedPolicy))
	return dir, model, policy
}

func TestReload(t *testing.T) {
	_, model, policy := tempPolicy(t)
	e, err := NewEngine(model, policy, Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := e.Policy()
	newsletter := []Access{{Column: "crm.customers.email", Act: ActRead}}
	if !first.Decide("marketing_app", "newsletter", newsletter).Allowed {
		t.Fatal("newsletter denied before any change")
	}

	// Unchanged files: nothing happens.
	res, err := e.Reload()
	if err != nil || res.Swapped || res.NewVersion != first.Version() || e.Policy() != first {
		t.Fatalf("reload of unchanged files: %+v, %v", res, err)
	}

	// A broken file is rejected and the old policy stays.
	good := readFile(t, policy)
	writeFile(t, dir(policy), "policy.csv", good+"p, marketing, newsletter, customer_contact, read, Deny\n")
	res, err = e.Reload()
	var lint *LintError
	if !errors.As(err, &lint) || res.Swapped || res.Err == nil {
		t.Fatalf("broken policy: result %+v, error %v", res, err)
	}
	if res.OldVersion != first.Version() || res.NewVersion == first.Version() {
		t.Errorf("versions old %s new %s, policy %s", res.OldVersion, res.NewVersion, first.Version())
	}
	if !slices.ContainsFunc(res.Findings, func(f Finding) bool { return f.Code == "bad-effect" }) {
		t.Errorf("findings %v lack bad-effect", res.Findings)
	}
	if e.Policy() != first || !e.Policy().Decide("marketing_app", "newsletter", newsletter).Allowed {
		t.Fatal("old policy not kept")
	}

	// A good change is swapped in, with a diff.
	changed := strings.Replace(good, "p, marketing, newsletter, customer_contact, read, allow\n", "", 1) +
		"p, marketing, newsletter, crm.customers.first_name, read, allow\n"
	writeFile(t, dir(policy), "policy.csv", changed)
	res, err = e.Reload()
	if err != nil || !res.Swapped {
		t.Fatalf("good policy: %+v, %v", res, err)
	}
	if !slices.Equal(res.Added, []string{"p, marketing, newsletter, crm.customers.first_name, read, allow"}) ||
		!slices.Equal(res.Removed, []string{"p, marketing, newsletter, customer_contact, read, allow"}) {
		t.Errorf("added %v removed %v", res.Added, res.Removed)
	}
	if res.OldVersion != first.Version() || res.NewVersion != e.Policy().Version() {
		t.Errorf("versions %s -> %s, policy %s", res.OldVersion, res.NewVersion, e.Policy().Version())
	}
	if e.Policy().Decide("marketing_app", "newsletter", newsletter).Allowed {
		t.Error("new policy still allows the newsletter to read email (a stale cache?)")
	}
	if !first.Decide("marketing_app", "newsletter", newsletter).Allowed {
		t.Error("the old Policy object changed; it must be immutable")
	}

	// A missing file is an error too, and keeps the policy.
	current := e.Policy()
	os.Remove(policy)
	if _, err := e.Reload(); err == nil || e.Policy() != current {
		t.Errorf("missing file: %v", err)
	}
}

func dir(path string) string { return filepath.Dir(path) }

func TestNewEngineRefusesBrokenPolicy(t *testing.T) {
	_, err := NewEngine(shippedModel, filepath.Join("testdata", "lint", "inline_comment.csv"), Options{})
	var lint *LintError
	if !errors.As(err, &lint) {
		t.Fatalf("error %v, want a *LintError", err)
	}
	if _, err := NewEngine(shippedModel, filepath.Join("testdata", "nonexistent.csv"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestVersionIsContentHash(t *testing.T) {
	a := versionOf([]byte("model"), []byte("policy"))
	if a != versionOf([]byte("model"), []byte("policy")) || len(a) != 12 {
		t.Errorf("version %q not stable or not 12 hex digits", a)
	}
	if a == versionOf([]byte("mode"), []byte("lpolicy")) || a == versionOf([]byte("model"), []byte("policy ")) {
		t.Error("different files share a version")
	}
}

func TestConcurrentDecideAndReload(t *testing.T) {
	_, model, policy := tempPolicy(t)
	e, err := NewEngine(model, policy, Options{})
	if err != nil {
		t.Fatal(err)
	}
	good := readFile(t, policy)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := e.Policy().Decide("hr_app", "personnel_admin", []Access{{Column: "hr.employees.bsn", Act: ActRead}})
				if !d.Allowed {
					t.Error("hr lost access during reloads")
					return
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		writeFile(t, dir(policy), "policy.csv", good+"g, app"+itoa(i)+", sales\n")
		if _, err := e.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestEngineFromTextSwaps(t *testing.T) {
	modelData, policyData := readFile(t, shippedModel), readFile(t, shippedPolicy)
	e, err := NewEngineFromText("model.conf", []byte(modelData), "policy.csv", []byte(policyData), Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := e.Policy()
	if first.Checksum() != Checksum([]byte(modelData), []byte(policyData)) || !strings.HasPrefix(first.Checksum(), first.Version()) {
		t.Fatalf("checksum %s, version %s", first.Checksum(), first.Version())
	}
	newsletter := []Access{{Column: "crm.customers.email", Act: ActRead}}
	revoked := strings.Replace(policyData, "p, marketing, newsletter,", "p, marketing, nobody_purpose,", 1)
	if revoked == policyData {
		t.Fatal("the shipped policy has no marketing newsletter rule to revoke")
	}
	broken := policyData + "\np, marketing, newsletter, customer_contact, read, Deny\n"
	for _, tc := range []struct {
		name        string
		policy      string
		wantErr     bool
		wantSwapped bool
		wantAllowed bool
	}{
		{"unchanged text is a no-op", policyData, false, false, true},
		{"a lint error keeps the policy", broken, true, false, true},
		{"a revocation swaps in", revoked, false, true, false},
		{"the same revocation again is a no-op", revoked, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.Policy()
			res, err := e.Swap("model.conf", []byte(modelData), "policy.csv", []byte(tc.policy))
			if (err != nil) != tc.wantErr || res.Swapped != tc.wantSwapped {
				t.Fatalf("Swap: %+v, %v", res, err)
			}
			if !tc.wantSwapped && e.Policy() != before {
				t.Fatal("policy replaced although not swapped")
			}
			if got := e.Policy().Decide("marketing_app", "newsletter", newsletter).Allowed; got != tc.wantAllowed {
				t.Fatalf("newsletter allowed %v, want %v", got, tc.wantAllowed)
			}
		})
	}
	if _, err := e.Reload(); !errors.Is(err, ErrNoFiles) {
		t.Fatalf("Reload of a text engine: %v, want ErrNoFiles", err)
	}
}
