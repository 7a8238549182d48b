package catalog_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/internal/pgtest"
)

// schemaFiles are the testdata schemas; each has a .golden rendering.
func schemaFiles(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.sql")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata schemas: %v", err)
	}
	files := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = string(b)
	}
	return files
}

// TestFromDDLGolden compares FromDDL of each testdata schema with its
// .golden file; PGGUARD_UPDATE_GOLDEN=1 rewrites them.
func TestFromDDLGolden(t *testing.T) {
	for path, src := range schemaFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			s, err := catalog.FromDDL("shop", src)
			if err != nil {
				t.Fatal(err)
			}
			got := render(s, userSchema, true)
			golden := strings.TrimSuffix(path, ".sql") + ".golden"
			if os.Getenv("PGGUARD_UPDATE_GOLDEN") == "1" {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("FromDDL(%s) differs from %s:\n%s", path, golden, lineDiff(string(want), got))
			}
		})
	}
}

// TestFromDDLAgreesWithLoad applies each testdata schema to a live database
// and checks that both loaders see the same user schemas, relations (kind,
// columns in order, parents), functions and operators.
func TestFromDDLAgreesWithLoad(t *testing.T) {
	for path, src := range schemaFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			srv, db := freshDB(t, withoutMetaCommands(src))
			live := load(t, srv.URL(pgtest.Superuser, "", db))
			fromFile, err := catalog.FromDDL(db, src)
			if err != nil {
				t.Fatal(err)
			}
			want, got := render(live, userSchema, false), render(fromFile, userSchema, false)
			if got != want {
				t.Errorf("FromDDL and Load disagree (- live, + file):\n%s", lineDiff(want, got))
			}
		})
	}
}

// withoutMetaCommands drops psql's backslash lines, which the server would
// refuse; the test files hold none inside literals.
func withoutMetaCommands(src string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(src))
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), `\`) {
			b.WriteString(sc.Text() + "\n")
		}
	}
	return b.String()
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	w, g := count(want), count(got)
	var out []string
	for _, l := range strings.Split(want, "\n") {
		if g[l] < w[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if w[l] < g[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
