package authz

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/persist"
)

// referenceMatch is MatchPattern written the slow, obvious way.
func referenceMatch(pattern, name string) bool {
	parts := strings.Split(pattern, ".")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(regexp.QuoteMeta(p), `\*`, `[^.]*`)
	}
	return regexp.MustCompile(`^(?s:` + strings.Join(parts, `\.`) + `)$`).MatchString(name)
}

func FuzzMatchPattern(f *testing.F) {
	for _, s := range [][2]string{{"crm.*.email", "crm.customers.email"}, {"hr.*", "hr.a.b"}, {"*a*b*", "xaybz"}, {"a.*.*", "a..b"}, {"**.x", ".x"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got := MatchPattern(pattern, name)
		if !utf8.ValidString(pattern) || !utf8.ValidString(name) {
			return // the regexp reference only speaks UTF-8; MatchPattern did not panic
		}
		if want := referenceMatch(pattern, name); got != want {
			t.Fatalf("MatchPattern(%q, %q) = %v, reference says %v", pattern, name, got, want)
		}
		if !strings.Contains(pattern, "*") && got != (pattern == name) {
			t.Fatalf("a pattern without '*' must match only itself: %q vs %q", pattern, name)
		}
	})
}

func FuzzLintPolicy(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "lint", "*.csv"))
	for _, path := range append(seeds, shippedPolicy) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	modelData, err := os.ReadFile(shippedModel)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, _ := lintFiles("model.conf", modelData, "policy.csv", data, []string{"crm.customers.email"})
		for _, fd := range fs {
			if fd.Line < 0 || fd.Severity != SeverityError && fd.Severity != SeverityWarning {
				t.Fatalf("bad finding %v", fd)
			}
		}
		checkSplitLikeCasbin(t, data)
		if !hasErrors(fs) {
			if _, err := loadBytes("model.conf", modelData, "policy.csv", data, Options{}); err != nil {
				t.Fatalf("lint-clean policy does not load: %v", err)
			}
		}
	})
}

// checkSplitLikeCasbin feeds each line to Casbin's own line loader and
// checks it reads the same fields as ours.
func checkSplitLikeCasbin(t *testing.T, data []byte) {
	for _, pl := range parsePolicy(data) {
		if pl.err != nil {
			continue
		}
		if n, known := fieldCounts[pl.fields[0]]; !known || len(pl.fields) != n+1 {
			continue // Casbin fails (or panics) on these; lint reports them
		}
		m, err := model.NewModelFromString(string(mustRead(t, shippedModel)))
		if err != nil {
			t.Fatal(err)
		}
		if err := persist.LoadPolicyLine(strings.TrimSpace(pl.raw), m); err != nil {
			t.Fatalf("line %d %q: casbin: %v", pl.line, pl.raw, err)
		}
		got := m[pl.fields[0][:1]][pl.fields[0]].Policy
		if len(got) != 1 || !slices.Equal(got[0], pl.fields[1:]) {
			t.Fatalf("line %d %q: casbin read %q, we read %q", pl.line, pl.raw, got, pl.fields[1:])
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func FuzzParseExpectations(f *testing.F) {
	f.Add(mustReadF(f, filepath.Join("..", "policy_tests.txt")))
	f.Add([]byte("deny a b c.d.e : x\n  y\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		xs, err := ParseExpectations(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, x := range xs {
			if x.Line <= 0 || x.SQL == "" || x.User == "" || (x.Allow && x.Column != "") {
				t.Fatalf("bad expectation %+v", x)
			}
		}
	})
}

func mustReadF(f *testing.F, path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return data
}
